package platformtest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TokenPath is the path of the fake's token endpoint.
const TokenPath = "/token"

// The form values of a client_credentials request with a JWT client
// assertion.
const (
	GrantType     = "client_credentials"
	AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Options configures New.
type Options struct {
	// ClientID is the client_id the assertions must carry as iss and sub.
	// Required.
	ClientID string
	// Keys are the keys assertions verify against.
	Keys *jose.JSONWebKeySet
	// JWKSURL, if set, is where the keys are fetched from (a
	// registration's JWKS), at the first assertion and again whenever one
	// names a kid the last fetch did not have.
	JWKSURL string
	// JWKSClient fetches JWKSURL; nil means a client with a 5 s timeout.
	JWKSClient *http.Client
	// Host is the host of TokenURL, and so the aud assertions must carry;
	// "" means "127.0.0.1". The certificate covers it, 127.0.0.1 and
	// localhost; a test that uses a name resolves it to 127.0.0.1.
	Host string
	// Now is the clock exp is checked against; nil means time.Now.
	Now func() time.Time
}

// Answer is how the fake answers token requests whose assertion
// verified. The zero Answer is a success: {"access_token": a new random
// token, "token_type": "Bearer", "expires_in": 3600, "scope": the scope
// requested}. The first of these that is set decides the answer:
//
//   - Body: exactly these bytes, with Status (default 200);
//   - Error: an OAuth error {"error": Error, "error_description":
//     Description}, with Status (default 400);
//   - Location: a redirect there, with Status (default 302);
//   - Status other than 200: that status with its text as body;
//
// and otherwise the success, with Fields merged into it (a nil value
// removes the member). Header is added to every answer.
type Answer struct {
	Status      int
	Body        []byte
	Error       string
	Description string
	Location    string
	Fields      map[string]any
	Header      http.Header
	// Arrived, if not nil, receives a value when a request has verified,
	// before any waiting; the fake does not wait for room in it, so a
	// test gives it room for every request it waits for.
	Arrived chan<- struct{}
	// Hold, if not nil, holds the answer until it is closed; Delay holds
	// it that long. Either gives up when the client does.
	Hold  <-chan struct{}
	Delay time.Duration
}

// Request is what the fake received in one request to its token endpoint.
type Request struct {
	Method      string
	UserAgent   string
	ContentType string
	Form        url.Values
	// Assertion is the client_assertion sent.
	Assertion string
	// KeyID is the assertion's kid, if it parsed.
	KeyID string
	// Claims are the assertion's claims, if it verified.
	Claims map[string]any
	// Rejected says why the fake refused the request, "" if it verified.
	Rejected string
	// AccessToken is the token issued, "" if none.
	AccessToken string
}

// Platform is a running fake platform. Its methods are safe for
// concurrent use.
type Platform struct {
	// URL is the server's base URL, https://<Host>:<port>.
	URL string
	// TokenURL is the token endpoint, URL + TokenPath: the only aud the
	// fake accepts.
	TokenURL string
	// Addr is the address it listens on, 127.0.0.1:<port>.
	Addr string
	// CA issued its certificate; give CA.Pool to clients as their roots.
	CA *CA

	opts Options
	now  func() time.Time
	srv  *httptest.Server

	mu       sync.Mutex
	answer   Answer
	keys     *jose.JSONWebKeySet
	jtis     map[string]bool
	requests []Request
}

// New starts a fake platform on 127.0.0.1 with a certificate from a new
// CA, and stops it when the test ends.
func New(t testing.TB, opts Options) *Platform {
	t.Helper()
	if opts.ClientID == "" {
		t.Fatal("platformtest: Options.ClientID is required")
	}
	if opts.Keys == nil && opts.JWKSURL == "" {
		t.Fatal("platformtest: Options.Keys or Options.JWKSURL is required")
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	if opts.JWKSClient == nil {
		opts.JWKSClient = &http.Client{Timeout: 5 * time.Second}
	}
	p := &Platform{CA: NewCA(t), opts: opts, now: opts.Now, keys: opts.Keys, jtis: map[string]bool{}}
	if p.now == nil {
		p.now = time.Now
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.CA.Issue(t, host, "127.0.0.1", "localhost")}}
	// Clients that refuse its certificate or give up are what tests do.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)

	p.Addr = p.srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(p.Addr)
	p.URL = "https://" + net.JoinHostPort(host, port)
	p.TokenURL = p.URL + TokenPath
	return p
}

// SetAnswer sets how the requests that verify from now on are answered.
func (p *Platform) SetAnswer(a Answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = a
}

// Requests returns the requests made to the token endpoint so far, in
// order, rejected ones included.
func (p *Platform) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Count returns how many requests were made to the token endpoint.
func (p *Platform) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

// rejection is a request the fake refuses: an OAuth error.
type rejection struct {
	status int
	code   string
	reason string
}

func (r *rejection) Error() string { return r.reason }

func reject(status int, code, format string, args ...any) *rejection {
	return &rejection{status: status, code: code, reason: fmt.Sprintf(format, args...)}
}

func (p *Platform) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != TokenPath {
		http.NotFound(w, r)
		return
	}
	rec := Request{Method: r.Method, UserAgent: r.UserAgent(), ContentType: r.Header.Get("Content-Type")}
	answer, rej := p.check(r, &rec)
	if rej != nil {
		rec.Rejected = rej.reason
		p.record(rec)
		writeJSON(w, rej.status, nil, map[string]any{"error": rej.code, "error_description": rej.reason})
		return
	}
	if answer.Arrived != nil {
		select {
		case answer.Arrived <- struct{}{}:
		default:
		}
	}
	if answer.Hold != nil {
		select {
		case <-answer.Hold:
		case <-r.Context().Done():
		}
	}
	if answer.Delay > 0 {
		timer := time.NewTimer(answer.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
		}
	}

	switch {
	case answer.Body != nil:
		p.record(rec)
		writeRaw(w, cmpOr(answer.Status, http.StatusOK), answer.Header, answer.Body)
	case answer.Error != "":
		p.record(rec)
		body := map[string]any{"error": answer.Error}
		if answer.Description != "" {
			body["error_description"] = answer.Description
		}
		writeJSON(w, cmpOr(answer.Status, http.StatusBadRequest), answer.Header, body)
	case answer.Location != "":
		p.record(rec)
		h := answer.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Location", answer.Location)
		writeRaw(w, cmpOr(answer.Status, http.StatusFound), h, nil)
	case answer.Status != 0 && answer.Status != http.StatusOK:
		p.record(rec)
		writeRaw(w, answer.Status, answer.Header, []byte(http.StatusText(answer.Status)))
	default:
		token := randomToken()
		rec.AccessToken = token
		p.record(rec)
		body := map[string]any{
			"access_token": token,
			"token_type":   "Bearer",
			"expires_in":   3600,
			"scope":        rec.Form.Get("scope"),
		}
		for k, v := range answer.Fields {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		writeJSON(w, http.StatusOK, answer.Header, body)
	}
}

// check verifies the request, recording what it sees in rec, and returns
// the answer to give, or why it is refused.
func (p *Platform) check(r *http.Request, rec *Request) (Answer, *rejection) {
	if r.Method != http.MethodPost {
		return Answer{}, reject(http.StatusMethodNotAllowed, "invalid_request", "method %s, not POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(rec.ContentType); err != nil || mt != "application/x-www-form-urlencoded" {
		return Answer{}, reject(http.StatusBadRequest, "invalid_request", "content type %q, not application/x-www-form-urlencoded", rec.ContentType)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return Answer{}, reject(http.StatusBadRequest, "invalid_request", "form: %v", err)
	}
	rec.Form = r.PostForm
	for name, vs := range r.PostForm {
		if len(vs) != 1 {
			return Answer{}, reject(http.StatusBadRequest, "invalid_request", "%s given %d times", name, len(vs))
		}
	}
	if len(r.URL.Query()) != 0 {
		return Answer{}, reject(http.StatusBadRequest, "invalid_request", "parameters in the query")
	}
	rec.Assertion = r.PostForm.Get("client_assertion")
	switch {
	case r.PostForm.Get("grant_type") != GrantType:
		return Answer{}, reject(http.StatusBadRequest, "unsupported_grant_type", "grant_type is not %s", GrantType)
	case r.PostForm.Get("client_assertion_type") != AssertionType:
		return Answer{}, reject(http.StatusBadRequest, "invalid_request", "client_assertion_type is not %s", AssertionType)
	case rec.Assertion == "":
		return Answer{}, reject(http.StatusBadRequest, "invalid_request", "no client_assertion")
	case strings.TrimSpace(r.PostForm.Get("scope")) == "":
		return Answer{}, reject(http.StatusBadRequest, "invalid_scope", "no scope")
	}
	claims, kid, rej := p.verify(rec.Assertion)
	rec.KeyID = kid
	if rej != nil {
		return Answer{}, rej
	}
	rec.Claims = claims

	p.mu.Lock()
	defer p.mu.Unlock()
	jti, _ := claims["jti"].(string)
	if p.jtis[jti] {
		return Answer{}, reject(http.StatusBadRequest, "invalid_grant", "jti already used")
	}
	p.jtis[jti] = true
	a := p.answer
	a.Fields = maps.Clone(a.Fields)
	return a, nil
}

// verify checks the assertion and returns its claims and kid.
func (p *Platform) verify(assertion string) (map[string]any, string, *rejection) {
	jws, err := jose.ParseSignedCompact(assertion, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, "", reject(http.StatusUnauthorized, "invalid_client", "assertion: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", reject(http.StatusUnauthorized, "invalid_client", "assertion has %d signatures", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Protected.KeyID
	key, err := p.key(kid)
	if err != nil {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "%v", err)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "signature: %v", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "claims: %v", err)
	}
	id := p.opts.ClientID
	if iss, _ := claims["iss"].(string); iss != id {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "iss is not the client_id")
	}
	if sub, _ := claims["sub"].(string); sub != id {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "sub is not the client_id")
	}
	if !p.audOK(claims["aud"]) {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "aud is not exactly the token URL")
	}
	now := p.now()
	exp, ok := numericDate(claims["exp"])
	switch {
	case !ok:
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "no exp")
	case !now.Before(exp):
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "expired")
	}
	for _, name := range []string{"iat", "nbf"} {
		if v, present := claims[name]; present {
			if t, ok := numericDate(v); !ok || t.After(now.Add(time.Minute)) {
				return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "%s is not a time before now", name)
			}
		}
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return nil, kid, reject(http.StatusUnauthorized, "invalid_client", "no jti")
	}
	return claims, kid, nil
}

// audOK reports whether aud is exactly the token URL, alone: a string,
// or an array of one string.
func (p *Platform) audOK(aud any) bool {
	switch a := aud.(type) {
	case string:
		return a == p.TokenURL
	case []any:
		if len(a) != 1 {
			return false
		}
		s, ok := a[0].(string)
		return ok && s == p.TokenURL
	}
	return false
}

// key returns the one key of the set with kid, fetching the set again
// from JWKSURL when it has none.
func (p *Platform) key(kid string) (jose.JSONWebKey, error) {
	p.mu.Lock()
	keys := p.keys
	p.mu.Unlock()
	if keys != nil {
		if found := keys.Key(kid); len(found) == 1 {
			return found[0], nil
		}
	}
	if p.opts.JWKSURL == "" {
		return jose.JSONWebKey{}, fmt.Errorf("no key with kid %q", kid)
	}
	fetched, err := p.fetchKeys()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	p.mu.Lock()
	p.keys = fetched
	p.mu.Unlock()
	found := fetched.Key(kid)
	if len(found) != 1 {
		return jose.JSONWebKey{}, fmt.Errorf("%d keys with kid %q in the JWKS", len(found), kid)
	}
	return found[0], nil
}

func (p *Platform) fetchKeys() (*jose.JSONWebKeySet, error) {
	resp, err := p.opts.JWKSClient.Get(p.opts.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("fetch the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the JWKS: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode the JWKS: %w", err)
	}
	return &set, nil
}

func (p *Platform) record(r Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, r)
}

// numericDate reads a JWT NumericDate.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(f*float64(time.Second))), true
}

func writeJSON(w http.ResponseWriter, status int, h http.Header, body map[string]any) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(errors.Join(errors.New("platformtest: answer"), err))
	}
	if h.Get("Content-Type") == "" {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
	}
	writeRaw(w, status, h, b)
}

// writeRaw answers with body, with a Content-Length unless h has one.
func writeRaw(w http.ResponseWriter, status int, h http.Header, body []byte) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Cache-Control", "no-store")
	if _, ok := h["Content-Length"]; !ok && status != http.StatusNoContent && status != http.StatusNotModified && status >= 200 {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	w.Write(body)
}

// randomToken returns a new access token: 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
