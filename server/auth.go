package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// Scope is a permission a caller holds. Scopes are independent: no scope
// implies another, so a caller that manages registrations or signs with
// their keys need not be able to read private keys.
type Scope string

const (
	// ScopeKeysRead allows reading public data about registrations and keys
	// (GetRegistration, ListRegistrations, ListKeys); it does not allow
	// GetToolKey.
	ScopeKeysRead Scope = "keys.read"
	// ScopeKeysReadPrivate allows exporting private keys (GetToolKey).
	ScopeKeysReadPrivate Scope = "keys.read_private"
	// ScopeKeysSign allows signing with a registration's key without seeing
	// it (SignJwt, CreateClientAssertion).
	ScopeKeysSign Scope = "keys.sign"
	// ScopeKeysAdmin allows the methods that create or change registrations
	// and keys (CreateRegistration, RotateKey, RetireKey,
	// UpdateRegistration, DeleteRegistration).
	ScopeKeysAdmin Scope = "keys.admin"
	// ScopePlatformToken allows obtaining platforms' access tokens for a
	// registration (GetPlatformAccessToken): ltikeys signs the client
	// assertion and exchanges it, so the caller handles neither a key nor
	// an assertion.
	ScopePlatformToken Scope = "platform.token"
	// ScopePlatformVerify allows verifying what platforms sign, such as
	// launch id_tokens (VerifyPlatformToken), against the platforms' keys
	// ltikeys keeps.
	ScopePlatformVerify Scope = "platform.verify"
)

// knownScopes are the scopes a token or certificate identity may be granted.
// Configuration naming any other scope is refused, so a typo fails loudly
// instead of granting nothing.
var knownScopes = []Scope{ScopeKeysRead, ScopeKeysReadPrivate, ScopeKeysSign, ScopeKeysAdmin, ScopePlatformToken, ScopePlatformVerify}

// methodScopes is the access-control table: the scope each non-public
// method requires. It is the only place authorization is decided. A method
// absent from it is refused to every caller, and a test fails for every
// method of the API that has no entry, so a new RPC cannot ship unguarded.
var methodScopes = map[string]Scope{
	ltikeysv1.KeyService_CreateRegistration_FullMethodName:     ScopeKeysAdmin,
	ltikeysv1.KeyService_GetToolKey_FullMethodName:             ScopeKeysReadPrivate,
	ltikeysv1.KeyService_SignJwt_FullMethodName:                ScopeKeysSign,
	ltikeysv1.KeyService_CreateClientAssertion_FullMethodName:  ScopeKeysSign,
	ltikeysv1.KeyService_GetPlatformAccessToken_FullMethodName: ScopePlatformToken,
	ltikeysv1.KeyService_VerifyPlatformToken_FullMethodName:    ScopePlatformVerify,
	ltikeysv1.KeyService_RotateKey_FullMethodName:              ScopeKeysAdmin,
	ltikeysv1.KeyService_RetireKey_FullMethodName:              ScopeKeysAdmin,
	ltikeysv1.KeyService_GetRegistration_FullMethodName:        ScopeKeysRead,
	ltikeysv1.KeyService_ListRegistrations_FullMethodName:      ScopeKeysRead,
	ltikeysv1.KeyService_ListKeys_FullMethodName:               ScopeKeysRead,
	ltikeysv1.KeyService_UpdateRegistration_FullMethodName:     ScopeKeysAdmin,
	ltikeysv1.KeyService_DeleteRegistration_FullMethodName:     ScopeKeysAdmin,
}

// publicMethods need no credentials: the JWKS holds only public keys. Like
// methodScopes, it names methods one by one, so a method added to
// JwksService is refused until it is listed in one of them. Calls to public
// methods are not audited.
var publicMethods = []string{
	ltikeysv1.JwksService_GetJwks_FullMethodName,
	ltikeysv1.JwksService_GetRegistrationJwks_FullMethodName,
}

// publicServices need no credentials either: health checking and reflection,
// should they be registered, reveal nothing.
var publicServices = []string{
	"grpc.health.v1.Health",
	"grpc.reflection.v1.ServerReflection",
	"grpc.reflection.v1alpha.ServerReflection",
}

// RequiredScope returns the scope a method, named as "/package.Service/Method",
// requires. ok is false for a method with no entry in the access-control
// table; such a method is refused unless it is public (IsPublicMethod).
func RequiredScope(fullMethod string) (scope Scope, ok bool) {
	scope, ok = methodScopes[fullMethod]
	return scope, ok
}

// IsPublicMethod reports whether a method, named as "/package.Service/Method",
// needs no credentials.
func IsPublicMethod(fullMethod string) bool {
	if slices.Contains(publicMethods, fullMethod) {
		return true
	}
	service, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return ok && slices.Contains(publicServices, service)
}

// TokenPrefix starts every token GenerateToken makes, so a leaked one is
// easy to recognize (and to scan for).
const TokenPrefix = "ltk_"

// GenerateToken returns a new bearer token: TokenPrefix followed by 32
// random bytes in unpadded base64url.
func GenerateToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the lowercase hex SHA-256 of token: the form in which
// tokens are configured and stored. A single fast hash is enough because
// tokens are long random strings, not passwords.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Token is one configured bearer token, known only by its hash.
type Token struct {
	// Name identifies the caller in logs; letters, digits and . _ - @ only.
	Name   string
	Scopes []Scope
	// Hash is the lowercase hex SHA-256 of the token (see HashToken).
	Hash string
}

// Line returns the token in the format ParseTokens reads.
func (t Token) Line() string {
	return t.Name + ":" + joinScopes(t.Scopes) + ":" + t.Hash
}

// ParseTokens reads token lines of the form
//
//	name:scope[,scope]:sha256hex
//
// one per line; blank lines and lines starting with # are ignored. Names and
// hashes must be unique and every scope known. The token itself never
// appears: only its SHA-256, as HashToken computes it.
func ParseTokens(text []byte) ([]Token, error) {
	var tokens []Token
	names := map[string]bool{}
	hashes := map[string]bool{}
	err := eachLine(text, func(n int, line string) error {
		name, rest, ok1 := strings.Cut(line, ":")
		scopeList, hash, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return fmt.Errorf("line %d: want name:scope[,scope]:sha256hex", n)
		}
		if !validName(name) {
			return fmt.Errorf("line %d: name %q: want 1 to 64 letters, digits or . _ - @", n, name)
		}
		scopes, err := parseScopes(scopeList)
		if err != nil {
			return fmt.Errorf("line %d (%s): %w", n, name, err)
		}
		hash = strings.ToLower(hash)
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("line %d (%s): the hash must be 64 hex digits (the SHA-256 of the token, never the token)", n, name)
		}
		if names[name] {
			return fmt.Errorf("line %d: name %q appears twice", n, name)
		}
		if hashes[hash] {
			return fmt.Errorf("line %d (%s): the same token hash appears twice", n, name)
		}
		names[name], hashes[hash] = true, true
		tokens = append(tokens, Token{Name: name, Scopes: scopes, Hash: hash})
		return nil
	})
	return tokens, err
}

// CertIdentity grants scopes to the clients whose verified certificate
// carries an identity.
type CertIdentity struct {
	// Identity is typed by where it is read from in the leaf certificate:
	// "uri:" and a URI SAN (such as a SPIFFE ID), "dns:" and a DNS SAN
	// (compared case-insensitively), or "cn:" and the subject common name.
	Identity string
	Scopes   []Scope
}

// ParseCertScopes reads lines of the form
//
//	identity:scope[,scope]
//
// where identity is uri:URI, dns:NAME or cn:NAME (see CertIdentity). The
// line is split at its last colon, so URIs may contain colons. Blank lines
// and lines starting with # are ignored; identities must be unique.
func ParseCertScopes(text []byte) ([]CertIdentity, error) {
	var ids []CertIdentity
	seen := map[string]bool{}
	err := eachLine(text, func(n int, line string) error {
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			return fmt.Errorf("line %d: want identity:scope[,scope]", n)
		}
		identity, scopeList := line[:i], line[i+1:]
		kind, value, _ := strings.Cut(identity, ":")
		switch {
		case value == "":
			return fmt.Errorf("line %d: identity %q: want uri:URI, dns:NAME or cn:NAME", n, identity)
		case kind == "dns":
			identity = "dns:" + strings.ToLower(value)
		case kind == "uri" || kind == "cn":
		default:
			return fmt.Errorf("line %d: identity %q: want uri:URI, dns:NAME or cn:NAME", n, identity)
		}
		scopes, err := parseScopes(scopeList)
		if err != nil {
			return fmt.Errorf("line %d (%s): %w", n, identity, err)
		}
		if seen[identity] {
			return fmt.Errorf("line %d: identity %q appears twice", n, identity)
		}
		seen[identity] = true
		ids = append(ids, CertIdentity{Identity: identity, Scopes: scopes})
		return nil
	})
	return ids, err
}

// certIdentities returns the identities a certificate carries, in the order
// they are matched: URI SANs, DNS SANs, then the subject common name.
func certIdentities(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, "uri:"+u.String())
	}
	for _, d := range cert.DNSNames {
		ids = append(ids, "dns:"+strings.ToLower(d))
	}
	if cn := cert.Subject.CommonName; cn != "" {
		ids = append(ids, "cn:"+cn)
	}
	return ids
}

// eachLine calls fn with every line of text that is neither blank nor a
// comment, trimmed, and its 1-based number.
func eachLine(text []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

func parseScopes(list string) ([]Scope, error) {
	var scopes []Scope
	for s := range strings.SplitSeq(list, ",") {
		scope := Scope(strings.TrimSpace(s))
		if !slices.Contains(knownScopes, scope) {
			return nil, fmt.Errorf("unknown scope %q (known: %s)", scope, joinScopes(knownScopes))
		}
		if !slices.Contains(scopes, scope) {
			scopes = append(scopes, scope)
		}
	}
	return scopes, nil
}

func joinScopes(scopes []Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-' || r == '@'
		if !ok {
			return false
		}
	}
	return true
}

// AuthConfig configures an Authenticator. With neither tokens nor
// certificate identities, every non-public method is refused.
type AuthConfig struct {
	// Tokens are the accepted bearer tokens.
	Tokens []Token
	// CertScopes map identities of verified client certificates to scopes.
	// They take effect only on a listener that verifies client certificates
	// (TLS with a client CA).
	CertScopes []CertIdentity
	// Log receives the audit log: one line per call of a non-public method,
	// but for the refusals that RefusalLogInterval summarises.
	Log *slog.Logger

	// FailureRate is how many failed authentications per second, on
	// average, a peer address may make, and FailureBurst how many in a row
	// (0: DefaultFailureRate, DefaultFailureBurst; a negative FailureRate
	// turns the throttle off). A peer address is an IPv4 address or an
	// IPv6 /64; peers without an IP address (in-process connections) are
	// not throttled. While a peer is over its budget, every call it makes
	// to a method in the access-control table is RESOURCE_EXHAUSTED, before
	// its credentials are looked at, so a valid token from that address is
	// refused too until the budget refills: a caller with a misconfigured
	// token that retries in a loop gets FailureRate answers per second.
	FailureRate  float64
	FailureBurst int
	// RefusalLogInterval bounds the audit lines of the calls refused before
	// their caller was known (UNAUTHENTICATED, or RESOURCE_EXHAUSTED from
	// the throttle): of those from one peer address, the first in each
	// interval has its audit line; the others are counted, and one
	// AuditSummaryMessage line per address and interval gives the counts
	// (0: DefaultRefusalLogInterval).
	RefusalLogInterval time.Duration
	// Now is the clock of the throttle and of the intervals; nil: time.Now.
	Now func() time.Time
}

// Authenticator authenticates and authorizes every gRPC call, and writes the
// audit log. Public methods (GetJwks, health checking, reflection) pass
// through untouched. For every other method:
//
//   - The caller is identified by the bearer token of its "authorization:
//     Bearer <token>" metadata, or, when there is no such metadata, by the
//     identities of its verified client certificate. A presented token must
//     be valid even if the certificate alone would do. Failure, for whatever
//     reason, is UNAUTHENTICATED with one fixed message.
//   - The caller must hold the scope the access-control table gives the
//     method; otherwise, or when the method is not in the table, the call is
//     PERMISSION_DENIED.
//
// The accepted tokens and certificate identities can be replaced while
// calls run (SetCredentials). Safe for concurrent use.
type Authenticator struct {
	creds atomic.Pointer[credentialSet]
	log   *slog.Logger
	// failures throttles failed authentications per peer address and
	// summarises their audit lines.
	failures *throttle
	// hashed, if set, counts the presented tokens hashed (for tests).
	hashed *atomic.Int64
}

// credentialSet is what an Authenticator accepts. It is never changed once
// built, only replaced whole, so a call that loaded it once sees one
// consistent set.
type credentialSet struct {
	tokens []authToken
	certs  map[string][]Scope
}

type authToken struct {
	name   string
	scopes []Scope
	hash   [sha256.Size]byte
}

// NewAuthenticator returns an Authenticator. It fails on a malformed token
// hash or an unknown scope.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.FailureBurst < 0 || math.IsNaN(cfg.FailureRate) || math.IsInf(cfg.FailureRate, 0) {
		return nil, fmt.Errorf("server: failure rate %v and burst %d: want a finite rate and a burst of at least 0", cfg.FailureRate, cfg.FailureBurst)
	}
	a := &Authenticator{log: cfg.Log}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.failures = newThrottle(cfg, a.summarise)
	if err := a.SetCredentials(cfg.Tokens, cfg.CertScopes); err != nil {
		return nil, err
	}
	return a, nil
}

// SetCredentials replaces the tokens and certificate identities the
// Authenticator accepts, as AuthConfig's Tokens and CertScopes would set
// them, in one atomic swap: every call is authenticated against either the
// previous set or the new one, never a mix, and calls already admitted run
// on. It fails on a malformed token hash or an unknown scope, and then
// changes nothing.
func (a *Authenticator) SetCredentials(tokens []Token, certScopes []CertIdentity) error {
	set := &credentialSet{certs: map[string][]Scope{}}
	for _, t := range tokens {
		b, err := hex.DecodeString(t.Hash)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("server: token %q: the hash must be 64 hex digits", t.Name)
		}
		if err := checkScopes(t.Scopes); err != nil {
			return fmt.Errorf("server: token %q: %w", t.Name, err)
		}
		at := authToken{name: t.Name, scopes: slices.Clone(t.Scopes)}
		copy(at.hash[:], b)
		set.tokens = append(set.tokens, at)
	}
	for _, c := range certScopes {
		if err := checkScopes(c.Scopes); err != nil {
			return fmt.Errorf("server: certificate identity %q: %w", c.Identity, err)
		}
		set.certs[c.Identity] = slices.Clone(c.Scopes)
	}
	a.creds.Store(set)
	return nil
}

func checkScopes(scopes []Scope) error {
	for _, s := range scopes {
		if !slices.Contains(knownScopes, s) {
			return fmt.Errorf("unknown scope %q", s)
		}
	}
	return nil
}

// Caller is an authenticated caller.
type Caller struct {
	// Name is the token's name, or the matched certificate identity
	// ("uri:…", "dns:…" or "cn:…").
	Name   string
	Scopes []Scope
}

// Has reports whether the caller holds scope.
func (c Caller) Has(scope Scope) bool { return slices.Contains(c.Scopes, scope) }

// admittedCall is what the interceptors keep in the context of a call they
// admitted: its caller, and the registration its handler resolved (see
// auditRegistration), for the call's audit line. The handler runs on the
// interceptor's goroutine, and the audit reads it after the handler
// returned.
type admittedCall struct {
	caller         Caller
	registrationID string
}

type callerKey struct{}

// CallerFromContext returns the caller an Authenticator admitted, inside a
// handler of a non-public method.
func CallerFromContext(ctx context.Context) (Caller, bool) {
	if c, ok := ctx.Value(callerKey{}).(*admittedCall); ok {
		return c.caller, true
	}
	return Caller{}, false
}

// errUnauthenticated is the one answer to every authentication failure, so
// a caller learns nothing about which part of its credentials was wrong.
var errUnauthenticated = status.Error(codes.Unauthenticated, "missing or invalid credentials")

// errThrottled answers every call from a peer address over its budget of
// failed authentications.
var errThrottled = status.Error(codes.ResourceExhausted, "too many failed authentications from this address; retry later")

// UnaryInterceptor returns the interceptor for unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if IsPublicMethod(info.FullMethod) {
			return handler(ctx, req)
		}
		if err := refusedByTap(ctx); err != nil {
			return nil, err // audited by the tap handle
		}
		start := time.Now()
		caller, err := a.admit(ctx, info.FullMethod)
		if err != nil && caller.Name == "" {
			a.refuse(ctx, info.FullMethod, start, err, req)
			return nil, err
		}
		var resp any
		call := admittedCall{caller: caller}
		if err == nil {
			resp, err = handler(context.WithValue(ctx, callerKey{}, &call), req)
		}
		a.audit(ctx, info.FullMethod, call, start, err, req, resp)
		return resp, err
	}
}

// StreamInterceptor returns the interceptor for streaming calls. The audit
// line of a stream names the registration and kid of the first messages that
// carry them.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if IsPublicMethod(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx := ss.Context()
		if err := refusedByTap(ctx); err != nil {
			return err // audited by the tap handle
		}
		start := time.Now()
		caller, err := a.admit(ctx, info.FullMethod)
		if err != nil && caller.Name == "" {
			a.refuse(ctx, info.FullMethod, start, err, nil)
			return err
		}
		var seen auditedStream
		call := admittedCall{caller: caller}
		if err == nil {
			seen = auditedStream{ServerStream: ss, ctx: context.WithValue(ctx, callerKey{}, &call)}
			err = handler(srv, &seen)
		}
		a.audit(ctx, info.FullMethod, call, start, err, seen.first, seen.last)
		return err
	}
}

// admit authenticates the caller and authorizes it for method. A refusal
// before the caller is known (UNAUTHENTICATED, RESOURCE_EXHAUSTED) returns
// the zero Caller.
func (a *Authenticator) admit(ctx context.Context, method string) (Caller, error) {
	if addr, ok := peerAddr(ctx); ok && a.failures.blocked(addr) {
		return Caller{}, errThrottled
	}
	caller, ok := a.authenticate(ctx)
	if !ok {
		return Caller{}, errUnauthenticated
	}
	scope, ok := RequiredScope(method)
	if !ok {
		return caller, status.Error(codes.PermissionDenied, "method is not open to any caller")
	}
	if !caller.Has(scope) {
		return caller, status.Errorf(codes.PermissionDenied, "this method requires scope %s", scope)
	}
	return caller, nil
}

// authenticate identifies the caller by its bearer token or, without one,
// by its verified client certificate, against the credential set current
// when the call came in.
func (a *Authenticator) authenticate(ctx context.Context) (Caller, bool) {
	set := a.creds.Load()
	switch values := metadata.ValueFromIncomingContext(ctx, "authorization"); len(values) {
	case 0:
		return set.certCaller(ctx)
	case 1:
		return set.tokenCaller(values[0], a.hashed)
	default:
		return Caller{}, false
	}
}

// MaxTokenLen bounds a bearer token. Tokens that GenerateToken makes are 47
// bytes; a longer one than this is refused without being hashed.
const MaxTokenLen = 1024

// bearerToken returns the token of an authorization value of the form
// "Bearer <token>", the scheme in any case; ok is false for another scheme,
// an empty token or one longer than MaxTokenLen. It allocates nothing.
func bearerToken(header string) (token string, ok bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > MaxTokenLen {
		return "", false
	}
	return token, true
}

func (s *credentialSet) tokenCaller(header string, hashed *atomic.Int64) (Caller, bool) {
	token, ok := bearerToken(header)
	if !ok {
		return Caller{}, false
	}
	if hashed != nil {
		hashed.Add(1)
	}
	presented := sha256.Sum256([]byte(token))
	// Compare against every stored hash, without stopping at a match, so the
	// time taken says nothing about which entry matched.
	match := -1
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(presented[:], s.tokens[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Caller{}, false
	}
	t := s.tokens[match]
	return Caller{Name: t.name, Scopes: t.scopes}, true
}

// certCaller maps the identities of a verified client certificate to
// scopes: the caller holds the scopes of every mapped identity and is named
// after the first (URI SANs, then DNS SANs, then the common name).
func (s *credentialSet) certCaller(ctx context.Context) (Caller, bool) {
	if len(s.certs) == 0 {
		return Caller{}, false
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, false
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.VerifiedChains) == 0 || len(tlsInfo.State.VerifiedChains[0]) == 0 {
		return Caller{}, false
	}
	var caller Caller
	for _, id := range certIdentities(tlsInfo.State.VerifiedChains[0][0]) {
		scopes, ok := s.certs[id]
		if !ok {
			continue
		}
		if caller.Name == "" {
			caller.Name = id
		}
		for _, s := range scopes {
			if !caller.Has(s) {
				caller.Scopes = append(caller.Scopes, s)
			}
		}
	}
	return caller, caller.Name != ""
}

// auditedStream gives the handler the context carrying the caller and
// remembers the first message received and the last sent, for the audit.
type auditedStream struct {
	grpc.ServerStream
	ctx         context.Context
	first, last any
}

func (s *auditedStream) Context() context.Context { return s.ctx }

func (s *auditedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.first == nil {
		s.first = m
	}
	return err
}

func (s *auditedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.last = m
	}
	return err
}
