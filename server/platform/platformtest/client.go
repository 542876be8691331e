package platformtest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Client is a tool's side of a registration, as a test holds it: a
// client_id and an RS256 key, to sign client assertions with.
type Client struct {
	// ID is the client_id.
	ID string
	// KeyID is the kid of the key: its RFC 7638 thumbprint.
	KeyID string
	key   *rsa.PrivateKey
}

// NewClient returns a client with a new 2048-bit key.
func NewClient(t testing.TB, clientID string) *Client {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("platformtest: client key: %v", err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("platformtest: thumbprint: %v", err)
	}
	return &Client{ID: clientID, KeyID: base64.RawURLEncoding.EncodeToString(thumb), key: key}
}

// KeySet returns the client's public key as a JWK Set.
func (c *Client) KeySet() *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &c.key.PublicKey, KeyID: c.KeyID, Algorithm: string(jose.RS256), Use: "sig",
	}}}
}

// Assertion signs a client assertion for the token endpoint aud, as the
// 1EdTech Security Framework has it: iss and sub the client_id, iat now,
// exp in five minutes, a new random jti.
func (c *Client) Assertion(aud string) (string, error) {
	now := time.Now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	return c.Sign(map[string]any{
		"iss": c.ID,
		"sub": c.ID,
		"aud": aud,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	})
}

// AssertionFunc returns a function signing a new Assertion for aud at
// each call, of the type platform.TokenRequest.Assertion has.
func (c *Client) AssertionFunc(aud string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return c.Assertion(aud) }
}

// Sign signs claims as an RS256 compact JWS with the client's key and
// kid, for tests that need claims Assertion would not write.
func (c *Client) Sign(claims map[string]any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.RS256,
		Key:       jose.JSONWebKey{Key: c.key, KeyID: c.KeyID},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("platformtest: signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("platformtest: claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("platformtest: sign: %w", err)
	}
	return jws.CompactSerialize()
}
