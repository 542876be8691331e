package crypto

import (
	stdcrypto "crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func TestValidKeyBits(t *testing.T) {
	tests := []struct {
		bits int
		want bool
	}{
		{2048, true},
		{3072, true},
		{4096, true},
		{0, false},
		{-2048, false},
		{1024, false},
		{2047, false},
		{2049, false},
		{8192, false},
	}
	for _, tt := range tests {
		if got := ValidKeyBits(tt.bits); got != tt.want {
			t.Errorf("ValidKeyBits(%d) = %v, want %v", tt.bits, got, tt.want)
		}
	}
}

func TestGenerateKeyPairRejectsInvalidBits(t *testing.T) {
	for _, bits := range []int{0, -1, 512, 1024, 2047, 2049, 8192} {
		if _, err := GenerateKeyPair(bits); err == nil {
			t.Errorf("GenerateKeyPair(%d): no error", bits)
		}
	}
}

func TestGenerateKeyPairSizes(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		t.Run(big.NewInt(int64(bits)).String(), func(t *testing.T) {
			var kp KeyPair
			if bits == 2048 {
				kp = keyPairs(t)[0]
			} else {
				if testing.Short() {
					t.Skip("slow key generation; skipped with -short")
				}
				var err error
				if kp, err = GenerateKeyPair(bits); err != nil {
					t.Fatal(err)
				}
			}
			key, err := ParsePrivateJWK(kp.PrivateJWK)
			if err != nil {
				t.Fatalf("ParsePrivateJWK: %v", err)
			}
			var raw rsa.PrivateKey
			if err := key.Raw(&raw); err != nil {
				t.Fatal(err)
			}
			if got := raw.N.BitLen(); got != bits {
				t.Errorf("modulus is %d bits, want %d", got, bits)
			}
			if raw.E != 65537 {
				t.Errorf("e = %d, want 65537", raw.E)
			}
			if _, err := JWKS([][]byte{kp.PublicJWK}); err != nil {
				t.Errorf("JWKS rejects the public JWK: %v", err)
			}
		})
	}
}

func TestThumbprintRFC7638Example(t *testing.T) {
	// RFC 7638 section 3.1.
	const (
		n    = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
		e    = "AQAB"
		want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	)
	nb, _ := b64.DecodeString(n)
	eb, _ := b64.DecodeString(e)
	if got := thumbprintRSA(nb, eb); got != want {
		t.Errorf("thumbprint = %q, want %q", got, want)
	}
}

func TestKIDIsJWXThumbprint(t *testing.T) {
	for i, kp := range keyPairs(t) {
		if kp.Alg != AlgRS256 {
			t.Errorf("pair %d: Alg = %q, want %q", i, kp.Alg, AlgRS256)
		}
		for name, b := range map[string][]byte{"public": kp.PublicJWK, "private": kp.PrivateJWK} {
			// Parsed twice: the thumbprint is a function of the key alone.
			for range 2 {
				key, err := jwk.ParseKey(b)
				if err != nil {
					t.Fatalf("pair %d %s: jwk.ParseKey: %v", i, name, err)
				}
				tp, err := key.Thumbprint(stdcrypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if got := base64.RawURLEncoding.EncodeToString(tp); got != kp.KID {
					t.Errorf("pair %d %s: jwx thumbprint %q, KID %q", i, name, got, kp.KID)
				}
				if key.KeyID() != kp.KID {
					t.Errorf("pair %d %s: kid member %q, KID %q", i, name, key.KeyID(), kp.KID)
				}
			}
		}
	}
	pairs := keyPairs(t)
	if pairs[0].KID == pairs[1].KID || len(pairs[0].KID) != 43 {
		t.Errorf("KIDs %q and %q: want distinct 43-character thumbprints", pairs[0].KID, pairs[1].KID)
	}
}

func TestJWKMembers(t *testing.T) {
	kp := keyPairs(t)[0]
	tests := []struct {
		name string
		jwk  []byte
		want []string
	}{
		{"public", kp.PublicJWK, []string{"alg", "e", "kid", "kty", "n", "use"}},
		{"private", kp.PrivateJWK, []string{"alg", "d", "dp", "dq", "e", "kid", "kty", "n", "p", "q", "qi", "use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := memberNames(t, tt.jwk); !slices.Equal(got, tt.want) {
				t.Errorf("members %v, want %v", got, tt.want)
			}
			var m map[string]string
			if err := json.Unmarshal(tt.jwk, &m); err != nil {
				t.Fatalf("members are not all strings: %v", err)
			}
			want := map[string]string{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kp.KID, "e": "AQAB"}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %q, want %q", k, m[k], v)
				}
			}
		})
	}
}

// TestSignVerifyWithJWKS signs with each private JWK and verifies against
// the published JWKS, as an LTI platform would.
func TestSignVerifyWithJWKS(t *testing.T) {
	pairs := keyPairs(t)
	var pubs [][]byte
	for _, kp := range pairs {
		pubs = append(pubs, kp.PublicJWK)
	}
	doc, err := JWKS(pubs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatalf("jwk.Parse(JWKS): %v", err)
	}
	others, err := jwk.Parse(mustJWKS(t, pubs[1:]))
	if err != nil {
		t.Fatal(err)
	}

	for i, kp := range pairs {
		key, err := ParsePrivateJWK(kp.PrivateJWK)
		if err != nil {
			t.Fatalf("pair %d: ParsePrivateJWK: %v", i, err)
		}
		payload := []byte(`{"iss":"tool","aud":"platform"}`)
		signed, err := jws.Sign(payload, jws.WithKey(jwa.RS256, key))
		if err != nil {
			t.Fatalf("pair %d: jws.Sign: %v", i, err)
		}
		msg, err := jws.Parse(signed)
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Signatures()[0].ProtectedHeaders().KeyID(); got != kp.KID {
			t.Errorf("pair %d: header kid %q, want %q", i, got, kp.KID)
		}
		got, err := jws.Verify(signed, jws.WithKeySet(set))
		if err != nil {
			t.Fatalf("pair %d: jws.Verify against JWKS: %v", i, err)
		}
		if string(got) != string(payload) {
			t.Errorf("pair %d: payload %q", i, got)
		}
		if i == 0 {
			if _, err := jws.Verify(signed, jws.WithKeySet(others)); err == nil {
				t.Error("verified against a JWKS without the signing key")
			}
		}
	}
}

func mustJWKS(t *testing.T, pubs [][]byte) []byte {
	t.Helper()
	doc, err := JWKS(pubs)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestParsePrivateJWKRejects(t *testing.T) {
	const canary = "Q0FOQVJZLXNlY3JldC1tYXRlcmlhbA"
	pairs := keyPairs(t)
	priv := pairs[0].PrivateJWK

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecJWK, err := jwk.FromRaw(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecJSON, err := json.Marshal(ecJWK)
	if err != nil {
		t.Fatal(err)
	}
	// A d from another key: well-formed, but inconsistent with n, p and q.
	otherD := members(t, pairs[1].PrivateJWK)["d"]

	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not JSON", []byte(canary)},
		{"truncated", priv[:len(priv)/2]},
		{"kty is garbage", []byte(`{"kty":"` + canary + `","d":"` + canary + `"}`)},
		{"kty is a number", []byte(`{"kty":1,"d":"` + canary + `"}`)},
		{"d is garbage", withMember(t, priv, "d", `"`+canary+`!!"`)},
		{"d is a number", withMember(t, priv, "d", `12345`)},
		{"array", []byte(`["` + canary + `"]`)},
		{"public only", pairs[0].PublicJWK},
		{"EC private key", ecJSON},
		{"alg HS256", withMember(t, priv, "alg", `"HS256"`)},
		{"use enc", withMember(t, priv, "use", `"enc"`)},
		{"no kid", withoutMember(t, priv, "kid")},
		{"wrong kid", withMember(t, priv, "kid", `"`+pairs[1].KID+`"`)},
		{"no p", withoutMember(t, priv, "p")},
		{"no dp", withoutMember(t, priv, "dp")},
		{"inconsistent d", withMember(t, priv, "d", string(otherD))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParsePrivateJWK(tt.in)
			if err == nil {
				t.Fatalf("ParsePrivateJWK accepted it (kid %q)", key.KeyID())
			}
			msg := err.Error()
			if strings.Contains(msg, canary) || strings.Contains(msg, "CANARY") {
				t.Errorf("error echoes input: %q", msg)
			}
			for name, v := range members(t, priv) {
				if len(v) > 20 && strings.Contains(msg, strings.Trim(string(v), `"`)) {
					t.Errorf("error contains member %s: %q", name, msg)
				}
			}
		})
	}
}

func TestZero(t *testing.T) {
	b := []byte("secret")
	Zero(b)
	if string(b) != "\x00\x00\x00\x00\x00\x00" {
		t.Errorf("Zero left %q", b)
	}
	Zero(nil) // must not panic
}
