package platformtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JWKSPath is the path of a Launcher's key set.
const JWKSPath = "/jwks"

// The LTI claims of a launch (LTI Core 1.3, section 5.3).
const (
	ClaimDeploymentID  = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
	ClaimMessageType   = "https://purl.imsglobal.org/spec/lti/claim/message_type"
	ClaimVersion       = "https://purl.imsglobal.org/spec/lti/claim/version"
	ClaimTargetLinkURI = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri"
	ClaimResourceLink  = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
	ClaimRoles         = "https://purl.imsglobal.org/spec/lti/claim/roles"
)

// LauncherOptions configures NewLauncher.
type LauncherOptions struct {
	// ClientID is the tool's client_id, the aud of the launches. Required.
	ClientID string
	// Issuer is the platform's issuer, the iss of the launches; "" means
	// the Launcher's URL.
	Issuer string
	// DeploymentID is the deployment_id of the launches; "" means
	// "deployment-1".
	DeploymentID string
	// Host is the host of the URLs, as for Options.Host; "" means
	// "127.0.0.1".
	Host string
	// CA issues the server's certificate; nil means a new CA.
	CA *CA
	// Key is the first signing key; nil means a new 2048-bit key.
	Key *rsa.PrivateKey
	// Now is the clock of LaunchClaims' iat and exp; nil means time.Now.
	Now func() time.Time
}

// JWKSAnswer is how a Launcher answers requests for its key set. The zero
// JWKSAnswer is the published keys, status 200, with no Cache-Control.
type JWKSAnswer struct {
	// CacheControl, if set, is sent as the Cache-Control header.
	CacheControl string
	// Header is added to the answer.
	Header http.Header
	// Status, if set and not 200, is sent with its text as body.
	Status int
	// Body, if not nil, is sent instead of the keys (with Status, default
	// 200): a malformed or oversized set.
	Body []byte
	// Arrived, if not nil, receives a value when a request arrives, before
	// any waiting; the Launcher does not wait for room in it.
	Arrived chan<- struct{}
	// Hold, if not nil, holds the answer until it is closed; Delay holds
	// it that long. Either gives up when the client does.
	Hold  <-chan struct{}
	Delay time.Duration
}

// Launcher is a fake platform on the launch side: it signs id_tokens
// with go-jose, as a platform does, and serves its public keys over TLS
// at JWKSURL, where a test can change how it answers, take it down, and
// rotate its keys. Its methods are safe for concurrent use.
type Launcher struct {
	// URL is the server's base URL, https://<Host>:<port>.
	URL string
	// JWKSURL is URL + JWKSPath.
	JWKSURL string
	// Addr is the address it listens on, 127.0.0.1:<port>.
	Addr string
	// CA issued its certificate; give CA.Pool to clients as their roots.
	CA *CA
	// Issuer, ClientID and DeploymentID are the iss, aud and
	// deployment_id of LaunchClaims.
	Issuer, ClientID, DeploymentID string

	now func() time.Time
	srv *httptest.Server

	mu sync.Mutex
	// keys are the published keys, oldest first; current signs.
	keys    []launchKey
	current launchKey
	answer  JWKSAnswer
	outage  bool
	fetches int
}

// launchKey is one of a Launcher's key pairs.
type launchKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// NewLauncher starts a Launcher on 127.0.0.1 and stops it when the test
// ends.
func NewLauncher(t testing.TB, opts LauncherOptions) *Launcher {
	t.Helper()
	if opts.ClientID == "" {
		t.Fatal("platformtest: LauncherOptions.ClientID is required")
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	l := &Launcher{CA: opts.CA, ClientID: opts.ClientID, DeploymentID: opts.DeploymentID, now: opts.Now}
	if l.CA == nil {
		l.CA = NewCA(t)
	}
	if l.DeploymentID == "" {
		l.DeploymentID = "deployment-1"
	}
	if l.now == nil {
		l.now = time.Now
	}
	priv := opts.Key
	if priv == nil {
		priv = newRSAKey(t)
	}
	l.current = launchKey{kid: thumbprint(t, &priv.PublicKey), priv: priv}
	l.keys = []launchKey{l.current}

	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(l.serve))
	l.srv.TLS = &tls.Config{Certificates: []tls.Certificate{l.CA.Issue(t, host, "127.0.0.1", "localhost")}}
	l.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	l.srv.StartTLS()
	t.Cleanup(l.srv.Close)

	l.Addr = l.srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(l.Addr)
	l.URL = "https://" + net.JoinHostPort(host, port)
	l.JWKSURL = l.URL + JWKSPath
	l.Issuer = opts.Issuer
	if l.Issuer == "" {
		l.Issuer = l.URL
	}
	return l
}

// KeyID returns the kid of the key that signs now.
func (l *Launcher) KeyID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current.kid
}

// PublishedKeyIDs returns the kids of the key set, oldest first.
func (l *Launcher) PublishedKeyIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, k := range l.keys {
		out = append(out, k.kid)
	}
	return out
}

// PublicKey returns the public part of the key that signs now.
func (l *Launcher) PublicKey() *rsa.PublicKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &l.current.priv.PublicKey
}

// Rotate makes a new key the signing key and publishes it, keeping the
// previous keys in the set if keepOld, dropping them otherwise, and
// returns its kid. key nil means a new 2048-bit key.
func (l *Launcher) Rotate(t testing.TB, key *rsa.PrivateKey, keepOld bool) string {
	t.Helper()
	if key == nil {
		key = newRSAKey(t)
	}
	k := launchKey{kid: thumbprint(t, &key.PublicKey), priv: key}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !keepOld {
		l.keys = nil
	}
	l.keys = append(l.keys, k)
	l.current = k
	return k.kid
}

// SetJWKSAnswer sets how requests for the key set are answered from now
// on.
func (l *Launcher) SetJWKSAnswer(a JWKSAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answer = a
}

// SetOutage takes the key set down (on: every request's connection is
// closed without an answer) or brings it back.
func (l *Launcher) SetOutage(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outage = on
}

// JWKSFetches returns how many requests for the key set arrived, those
// that failed included.
func (l *Launcher) JWKSFetches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetches
}

// KeySet returns the key set as the Launcher publishes it.
func (l *Launcher) KeySet() *jose.JSONWebKeySet {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keySetLocked()
}

func (l *Launcher) keySetLocked() *jose.JSONWebKeySet {
	set := &jose.JSONWebKeySet{}
	for _, k := range l.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set
}

func (l *Launcher) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != JWKSPath {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	l.fetches++
	a, outage := l.answer, l.outage
	body, err := json.Marshal(l.keySetLocked())
	l.mu.Unlock()
	if err != nil {
		panic(fmt.Sprintf("platformtest: key set: %v", err))
	}
	if a.Arrived != nil {
		select {
		case a.Arrived <- struct{}{}:
		default:
		}
	}
	if outage {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if a.Hold != nil {
		select {
		case <-a.Hold:
		case <-r.Context().Done():
			return
		}
	}
	if a.Delay > 0 {
		timer := time.NewTimer(a.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
	h := a.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if a.CacheControl != "" {
		h.Set("Cache-Control", a.CacheControl)
	}
	switch {
	case a.Body != nil:
		body = a.Body
	case a.Status != 0 && a.Status != http.StatusOK:
		body = []byte(http.StatusText(a.Status))
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.WriteHeader(cmpOr(a.Status, http.StatusOK))
	w.Write(body)
}

// Claims are the claims of a token, to sign with a Launcher. With and
// Without return changed copies, for tampering one claim at a time.
type Claims map[string]any

// With returns a copy of c with name set to v (nil is JSON null).
func (c Claims) With(name string, v any) Claims {
	out := maps.Clone(c)
	out[name] = v
	return out
}

// Without returns a copy of c without name.
func (c Claims) Without(name string) Claims {
	out := maps.Clone(c)
	delete(out, name)
	return out
}

// Names returns the claim names, sorted.
func (c Claims) Names() []string { return slices.Sorted(maps.Keys(c)) }

// LaunchClaims returns the claims of a valid resource link launch for
// nonce: iss, aud the client_id, sub, iat now and exp in five minutes by
// the Launcher's clock, nonce, and the LTI claims (deployment_id,
// message_type LtiResourceLinkRequest, version 1.3.0, target_link_uri,
// resource_link, roles).
func (l *Launcher) LaunchClaims(nonce string) Claims {
	now := l.now()
	return Claims{
		"iss":              l.Issuer,
		"aud":              l.ClientID,
		"sub":              "user-" + randomToken()[:12],
		"iat":              now.Unix(),
		"exp":              now.Add(5 * time.Minute).Unix(),
		"nonce":            nonce,
		"name":             "Ada Lovelace",
		"email":            "ada@example.edu",
		ClaimDeploymentID:  l.DeploymentID,
		ClaimMessageType:   "LtiResourceLinkRequest",
		ClaimVersion:       "1.3.0",
		ClaimTargetLinkURI: "https://tool.example/launch",
		ClaimResourceLink:  map[string]any{"id": "resource-" + randomToken()[:8]},
		ClaimRoles:         []string{"http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"},
	}
}

// SignOptions changes how SignWith signs.
type SignOptions struct {
	// Algorithm is an RSA signature algorithm (RS256, PS256…); "" means
	// RS256.
	Algorithm jose.SignatureAlgorithm
	// KeyID, if set, is the header's kid instead of the signing key's:
	// a kid the key set may not have.
	KeyID string
	// NoKeyID leaves kid out of the header.
	NoKeyID bool
	// Key, if not nil, signs instead of the current key (a key that is
	// not published, say).
	Key *rsa.PrivateKey
	// Header holds more protected header members (jku, x5u, crit…).
	Header map[string]any
	// JSON gives the JWS in the flattened JSON serialization rather than
	// the compact one.
	JSON bool
}

// Sign signs claims as an RS256 compact JWS with the current key and its
// kid, and typ JWT.
func (l *Launcher) Sign(claims Claims) (string, error) {
	return l.SignWith(claims, SignOptions{})
}

// SignWith signs claims with the current key (or o.Key), as o says.
func (l *Launcher) SignWith(claims Claims, o SignOptions) (string, error) {
	l.mu.Lock()
	cur := l.current
	l.mu.Unlock()
	priv := cur.priv
	if o.Key != nil {
		priv = o.Key
	}
	alg := o.Algorithm
	if alg == "" {
		alg = jose.RS256
	}
	kid := cur.kid
	if o.KeyID != "" {
		kid = o.KeyID
	}
	so := (&jose.SignerOptions{}).WithType("JWT")
	if !o.NoKeyID {
		so = so.WithHeader("kid", kid)
	}
	for k, v := range o.Header {
		if k == "crit" {
			names, _ := v.([]string)
			so = so.WithCritical(names...)
			continue
		}
		so = so.WithHeader(jose.HeaderKey(k), v)
	}
	return sign(jose.SigningKey{Algorithm: alg, Key: priv}, so, claims, o.JSON)
}

// SignHS256WithModulus signs claims with HS256, the secret being the
// big-endian bytes of the current key's public modulus, and the current
// kid: the key-confusion attack on a verifier that takes the alg from the
// header and the public key as an HMAC secret.
func (l *Launcher) SignHS256WithModulus(claims Claims) (string, error) {
	l.mu.Lock()
	cur := l.current
	l.mu.Unlock()
	so := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", cur.kid)
	return sign(jose.SigningKey{Algorithm: jose.HS256, Key: cur.priv.PublicKey.N.Bytes()}, so, claims, false)
}

// SignAlgNone returns claims as an unsecured JWS (alg none, an empty
// signature) naming the current kid. go-jose will not make one, so it is
// put together by hand.
func (l *Launcher) SignAlgNone(claims Claims) (string, error) {
	header, err := json.Marshal(map[string]any{"alg": "none", "typ": "JWT", "kid": l.KeyID()})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("platformtest: claims: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + ".", nil
}

func sign(key jose.SigningKey, so *jose.SignerOptions, claims Claims, asJSON bool) (string, error) {
	signer, err := jose.NewSigner(key, so)
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
	if asJSON {
		return jws.FullSerialize(), nil
	}
	return jws.CompactSerialize()
}

// NewRSAKey returns a new 2048-bit RSA key, for LauncherOptions.Key,
// Rotate and SignOptions.Key.
func NewRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	return newRSAKey(t)
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("platformtest: RSA key: %v", err)
	}
	return key
}

// thumbprint is the RFC 7638 thumbprint of pub, base64url: the kid.
func thumbprint(t testing.TB, pub *rsa.PublicKey) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("platformtest: thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
