package platformtest_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// post sends a token request to p and returns the status and the decoded
// JSON answer.
func post(t *testing.T, p *platformtest.Platform, form url.Values) (int, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool}}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.PostForm(p.TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("status %d, body: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func form(assertion string) url.Values {
	return url.Values{
		"grant_type":            {platformtest.GrantType},
		"client_assertion_type": {platformtest.AssertionType},
		"client_assertion":      {assertion},
		"scope":                 {"s1 s2"},
	}
}

func TestPlatformVerifiesAssertions(t *testing.T) {
	c := platformtest.NewClient(t, "client-1")
	other := platformtest.NewClient(t, "client-1")
	p := platformtest.New(t, platformtest.Options{ClientID: c.ID, Keys: c.KeySet()})
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{"iss": c.ID, "sub": c.ID, "aud": p.TokenURL, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomJTI(t)}
		if edit != nil {
			edit(m)
		}
		return m
	}
	sign := func(cl *platformtest.Client, m map[string]any) string {
		s, err := cl.Sign(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs256 := func() string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims(nil))
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}

	good := sign(c, claims(nil))
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"valid", form(good), 200, ""},
		{"replayed", form(good), 400, "invalid_grant"},
		{"array aud of one", form(sign(c, claims(func(m map[string]any) { m["aud"] = []string{p.TokenURL} }))), 200, ""},
		{"aud with a trailing slash", form(sign(c, claims(func(m map[string]any) { m["aud"] = p.TokenURL + "/" }))), 401, "invalid_client"},
		{"aud of two", form(sign(c, claims(func(m map[string]any) { m["aud"] = []string{p.TokenURL, "x"} }))), 401, "invalid_client"},
		{"aud in upper case", form(sign(c, claims(func(m map[string]any) { m["aud"] = strings.ToUpper(p.TokenURL) }))), 401, "invalid_client"},
		{"another iss", form(sign(c, claims(func(m map[string]any) { m["iss"] = "client-2" }))), 401, "invalid_client"},
		{"another sub", form(sign(c, claims(func(m map[string]any) { m["sub"] = "client-2" }))), 401, "invalid_client"},
		{"expired", form(sign(c, claims(func(m map[string]any) { m["exp"] = now.Add(-time.Second).Unix() }))), 401, "invalid_client"},
		{"no exp", form(sign(c, claims(func(m map[string]any) { delete(m, "exp") }))), 401, "invalid_client"},
		{"iat in the future", form(sign(c, claims(func(m map[string]any) { m["iat"] = now.Add(time.Hour).Unix() }))), 401, "invalid_client"},
		{"no jti", form(sign(c, claims(func(m map[string]any) { delete(m, "jti") }))), 401, "invalid_client"},
		{"another key", form(sign(other, claims(nil))), 401, "invalid_client"},
		{"HS256", form(hs256()), 401, "invalid_client"},
		{"not a JWS", form("not.a.jws"), 401, "invalid_client"},
		{"wrong grant_type", func() url.Values { f := form(sign(c, claims(nil))); f.Set("grant_type", "password"); return f }(), 400, "unsupported_grant_type"},
		{"wrong assertion type", func() url.Values { f := form(sign(c, claims(nil))); f.Set("client_assertion_type", "saml"); return f }(), 400, "invalid_request"},
		{"no assertion", func() url.Values { f := form(""); return f }(), 400, "invalid_request"},
		{"no scope", func() url.Values { f := form(sign(c, claims(nil))); f.Del("scope"); return f }(), 400, "invalid_scope"},
		{"a parameter twice", func() url.Values { f := form(sign(c, claims(nil))); f.Add("scope", "s3"); return f }(), 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, p, tc.form)
			if status != tc.status || tc.code != "" && body["error"] != tc.code {
				t.Fatalf("status %d, %v; want %d %q", status, body, tc.status, tc.code)
			}
			if tc.status == 200 {
				if body["token_type"] != "Bearer" || body["expires_in"] != 3600.0 || body["scope"] != "s1 s2" || body["access_token"] == "" {
					t.Errorf("answer %v", body)
				}
			}
		})
	}
	reqs := p.Requests()
	if len(reqs) != p.Count() || reqs[0].Rejected != "" || reqs[1].Rejected == "" || reqs[0].AccessToken == "" || reqs[1].AccessToken != "" {
		t.Errorf("requests recorded wrong: %d, %+v", p.Count(), reqs[:2])
	}
	if reqs[0].KeyID != c.KeyID || reqs[0].Claims["iss"] != c.ID {
		t.Errorf("the first request's kid %q and claims %v", reqs[0].KeyID, reqs[0].Claims)
	}
}

func TestPlatformFetchesJWKS(t *testing.T) {
	c := platformtest.NewClient(t, "client-1")
	var set atomic.Pointer[jose.JSONWebKeySet]
	set.Store(&jose.JSONWebKeySet{})
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(set.Load())
	}))
	t.Cleanup(jwks.Close)
	p := platformtest.New(t, platformtest.Options{ClientID: c.ID, JWKSURL: jwks.URL})

	a, err := c.Assertion(p.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := post(t, p, form(a)); status != 401 {
		t.Fatalf("a kid the JWKS lacks: status %d, want 401", status)
	}
	// The key is published: the next assertion naming it is fetched for.
	set.Store(c.KeySet())
	for range 2 {
		a, err := c.Assertion(p.TokenURL)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := post(t, p, form(a)); status != 200 {
			t.Fatalf("status %d, %v", status, body)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (one per unknown kid)", n)
	}
}

func TestPlatformAnswers(t *testing.T) {
	c := platformtest.NewClient(t, "client-1")
	p := platformtest.New(t, platformtest.Options{ClientID: c.ID, Keys: c.KeySet(), Host: "platform.example"})
	if !strings.HasPrefix(p.TokenURL, "https://platform.example:") {
		t.Errorf("TokenURL %s", p.TokenURL)
	}
	hc := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool},
			DialContext:     (&resolvingDialer{platformtest.Resolver{"platform.example": {netip.MustParseAddr("127.0.0.1")}}}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		name   string
		answer platformtest.Answer
		status int
		check  func(t *testing.T, resp *http.Response, body string)
	}{
		{"OAuth error", platformtest.Answer{Error: "invalid_scope", Description: "no"}, 400, func(t *testing.T, _ *http.Response, body string) {
			if body != `{"error":"invalid_scope","error_description":"no"}` {
				t.Errorf("body %s", body)
			}
		}},
		{"fields", platformtest.Answer{Fields: map[string]any{"expires_in": "3600", "scope": nil}}, 200, func(t *testing.T, _ *http.Response, body string) {
			if !strings.Contains(body, `"expires_in":"3600"`) || strings.Contains(body, "scope") {
				t.Errorf("body %s", body)
			}
		}},
		{"raw", platformtest.Answer{Status: 202, Body: []byte("raw")}, 202, func(t *testing.T, _ *http.Response, body string) {
			if body != "raw" {
				t.Errorf("body %s", body)
			}
		}},
		{"redirect", platformtest.Answer{Location: "/elsewhere"}, 302, func(t *testing.T, resp *http.Response, _ string) {
			if resp.Header.Get("Location") != "/elsewhere" {
				t.Errorf("Location %q", resp.Header.Get("Location"))
			}
		}},
		{"status", platformtest.Answer{Status: 503, Header: http.Header{"Retry-After": {"7"}}}, 503, func(t *testing.T, resp *http.Response, _ string) {
			if resp.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.SetAnswer(tc.answer)
			a, err := c.Assertion(p.TokenURL)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.PostForm(p.TokenURL, form(a))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			tc.check(t, resp, strings.TrimSpace(string(b)))
		})
	}
}

func randomJTI(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// resolvingDialer dials the first address its resolver gives a host.
type resolvingDialer struct{ r platformtest.Resolver }

func (d *resolvingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := d.r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, net.JoinHostPort(addrs[0].String(), port))
}
