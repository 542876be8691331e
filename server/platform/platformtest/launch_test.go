package platformtest_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// getJWKS fetches l's key set, returning the response and its body.
func getJWKS(t *testing.T, l *platformtest.Launcher) (*http.Response, []byte, error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.CA.Pool}}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(l.JWKSURL)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestLauncher(t *testing.T) {
	l := platformtest.NewLauncher(t, platformtest.LauncherOptions{ClientID: "client-1"})
	if l.Issuer != l.URL || l.DeploymentID == "" {
		t.Errorf("Issuer %q, DeploymentID %q", l.Issuer, l.DeploymentID)
	}
	claims := l.LaunchClaims("n-1")
	if claims.With("nonce", "other")["nonce"] != "other" || claims["nonce"] != "n-1" {
		t.Error("With changed the claims it copied, or did not set")
	}
	if _, ok := claims.Without("iss")["iss"]; ok || claims["iss"] != l.Issuer {
		t.Error("Without changed the claims it copied, or did not remove")
	}

	// A token verifies against the key set as served, with go-jose.
	token, err := l.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	l.SetJWKSAnswer(platformtest.JWKSAnswer{CacheControl: "max-age=600"})
	resp, body, err := getJWKS(t, l)
	if err != nil {
		t.Fatal(err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=600" {
		t.Errorf("Cache-Control %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Protected.KeyID
	keys := set.Key(kid)
	if kid != l.KeyID() || len(keys) != 1 {
		t.Fatalf("kid %q, %d keys with it in the set", kid, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil || got["aud"] != "client-1" || got[platformtest.ClaimDeploymentID] != l.DeploymentID {
		t.Errorf("payload %s (%v)", payload, err)
	}

	// Rotations keep or drop the previous keys.
	first := l.KeyID()
	second := l.Rotate(t, nil, true)
	if ids := l.PublishedKeyIDs(); !slices.Equal(ids, []string{first, second}) || l.KeyID() != second {
		t.Errorf("after a rotation keeping the old key: %q, signing %q", ids, l.KeyID())
	}
	third := l.Rotate(t, nil, false)
	if ids := l.PublishedKeyIDs(); !slices.Equal(ids, []string{third}) {
		t.Errorf("after a rotation dropping the old keys: %q", ids)
	}

	// Failure modes, each counted.
	l.SetJWKSAnswer(platformtest.JWKSAnswer{Status: http.StatusInternalServerError})
	if resp, _, err := getJWKS(t, l); err != nil || resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status answer: %v, %v", resp, err)
	}
	l.SetJWKSAnswer(platformtest.JWKSAnswer{Body: []byte("{")})
	if _, body, err := getJWKS(t, l); err != nil || string(body) != "{" {
		t.Errorf("body answer: %q, %v", body, err)
	}
	l.SetOutage(true)
	if _, _, err := getJWKS(t, l); err == nil {
		t.Error("a request during an outage got an answer")
	}
	l.SetOutage(false)
	if n := l.JWKSFetches(); n < 4 {
		t.Errorf("%d fetches counted, want at least 4", n)
	}
}

func TestLauncherAttackTokens(t *testing.T) {
	l := platformtest.NewLauncher(t, platformtest.LauncherOptions{ClientID: "client-1"})
	claims := l.LaunchClaims("n-1")
	header := func(token string) map[string]any {
		t.Helper()
		jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.HS256})
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Protected
		return map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	}
	hs, err := l.SignHS256WithModulus(claims)
	if err != nil {
		t.Fatal(err)
	}
	if h := header(hs); h["alg"] != "HS256" || h["kid"] != l.KeyID() {
		t.Errorf("HS256 token header %v", h)
	}
	noKID, err := l.SignWith(claims, platformtest.SignOptions{NoKeyID: true})
	if err != nil {
		t.Fatal(err)
	}
	if h := header(noKID); h["kid"] != "" {
		t.Errorf("token without kid has header %v", h)
	}
	ps, err := l.SignWith(claims, platformtest.SignOptions{Algorithm: jose.PS256, KeyID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if h := header(ps); h["alg"] != "PS256" || h["kid"] != "other" {
		t.Errorf("PS256 token header %v", h)
	}
	none, err := l.SignAlgNone(claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jose.ParseSignedCompact(none, []jose.SignatureAlgorithm{jose.RS256}); err == nil {
		t.Error("go-jose parsed an alg none token as RS256")
	}
}
