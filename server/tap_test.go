package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// countingCodec is the proto codec, counting the messages it decodes.
type countingCodec struct {
	encoding.CodecV2
	decoded atomic.Int64
}

func (c *countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.decoded.Add(1)
	return c.CodecV2.Unmarshal(data, v)
}

// TestRefusedBeforeRead drives many large SignJwt calls without
// credentials, or with credentials that cannot pass, with and without a
// deadline, 4 MB and just over the maximum message size: every one is
// UNAUTHENTICATED (not RESOURCE_EXHAUSTED: credentials are looked at
// first), none is decoded, no token is hashed, and each has its audit
// line or is counted in its summary. An authenticated call is decoded
// once, its token hashed once. (The throttle is off here: it would answer
// most of these calls RESOURCE_EXHAUSTED, before reading them too.)
func TestRefusedBeforeRead(t *testing.T) {
	codec := &countingCodec{CodecV2: encoding.GetCodecV2("proto")}
	limits := server.DefaultLimits()
	clock := newFakeClock()
	env := startGuarded(t, guardedConfig{
		limits:        limits,
		serverOptions: []grpc.ServerOption{grpc.ForceServerCodecV2(codec)},
		auth:          func(c *server.AuthConfig) { c.FailureRate, c.Now = -1, clock.Now },
	})
	keys := ltikeysv1.NewKeyServiceClient(env.dial(t))

	sign := &ltikeysv1.SignJwtRequest{ClaimsJson: `{"sub":"1"}`}
	large := padded(t, sign, 4<<20)
	justOver := padded(t, sign, limits.MaxRecvMsgSize+1)
	refused := []struct {
		name          string
		authorization []string
	}{
		{"no token", nil},
		{"token over MaxTokenLen", []string{"Bearer " + strings.Repeat("t", server.MaxTokenLen+2048)}},
		{"no scheme", []string{env.token}},
		{"other scheme", []string{"Basic " + env.token}},
		{"empty bearer", []string{"Bearer "}},
		{"two tokens", []string{"Bearer " + env.token, "Bearer " + env.token}},
	}
	const parallel = 8
	var calls atomic.Int64
	var wg sync.WaitGroup
	for _, tt := range refused {
		for _, req := range []*ltikeysv1.SignJwtRequest{large, justOver} {
			for _, deadline := range []bool{false, true} {
				for range parallel {
					wg.Go(func() {
						ctx := withAuthorization(context.Background(), tt.authorization...)
						if deadline {
							var cancel context.CancelFunc
							ctx, cancel = context.WithTimeout(ctx, time.Hour)
							defer cancel()
						}
						calls.Add(1)
						_, err := keys.SignJwt(ctx, req)
						if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "missing or invalid credentials" {
							t.Errorf("%s, %d bytes, deadline %v: %v, want UNAUTHENTICATED", tt.name, len(req.GetClaimsJson()), deadline, err)
						}
					})
				}
			}
		}
	}
	wg.Wait()
	if n := codec.decoded.Load(); n != 0 {
		t.Errorf("%d refused requests were decoded, want none", n)
	}
	if n := env.hashed.Load(); n != 0 {
		t.Errorf("%d tokens of refused calls were hashed, want none", n)
	}
	// The next interval's first refusal writes the count of the others.
	clock.Advance(server.DefaultRefusalLogInterval)
	if _, err := keys.SignJwt(context.Background(), sign); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("refusal in the next interval: %v", err)
	}
	counted := 0
	for _, rec := range logRecords(t, env.logs.String()) {
		if rec["msg"] == server.AuditSummaryMessage {
			counted += int(rec["unauthenticated"].(float64))
		}
	}
	if lines := auditLines(t, env.logs.String()); int64(len(lines)+counted) != calls.Load()+1 {
		t.Errorf("%d audit lines and %d counted for %d refused calls", len(lines), counted, calls.Load()+1)
	} else if lines[0]["code"] != "Unauthenticated" || lines[0]["level"] != "WARN" || lines[0]["peer"] == nil {
		t.Errorf("audit line of a refusal: %v", lines[0])
	}

	// A wrong token of the longest length is refused after the request is
	// read and the token hashed.
	wrong := withAuthorization(context.Background(), "Bearer "+strings.Repeat("t", server.MaxTokenLen))
	if _, err := keys.SignJwt(wrong, sign); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token of MaxTokenLen bytes: %v, want UNAUTHENTICATED", err)
	}
	if d, h := codec.decoded.Load(), env.hashed.Load(); d != 1 || h != 1 {
		t.Errorf("wrong token of MaxTokenLen bytes: decoded %d, hashed %d; want 1 and 1", d, h)
	}

	authed := withAuthorization(context.Background(), "Bearer "+env.token)
	resp, err := keys.SignJwt(authed, sign)
	if err != nil || resp.GetJwt() == "" {
		t.Fatalf("authenticated SignJwt: %v, %v", resp, err)
	}
	if d, h := codec.decoded.Load(), env.hashed.Load(); d != 2 || h != 2 {
		t.Errorf("after an authenticated call: decoded %d, hashed %d; want 2 and 2", d, h)
	}
}

// TestInterceptorRefusesLongTokens: without the tap handle, the interceptor
// refuses a token over MaxTokenLen, 8 MB here, without hashing it.
func TestInterceptorRefusesLongTokens(t *testing.T) {
	token, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: []server.Token{{
		Name: "signer", Scopes: []server.Scope{server.ScopeKeysSign}, Hash: server.HashToken(token)}}})
	if err != nil {
		t.Fatal(err)
	}
	hashed := server.CountTokenHashes(auth)
	for _, tt := range []struct {
		name, token string
		want        codes.Code
		hashes      int64
	}{
		{"8 MB", strings.Repeat("t", 8<<20), codes.Unauthenticated, 0},
		{"one byte over MaxTokenLen", strings.Repeat("t", server.MaxTokenLen+1), codes.Unauthenticated, 0},
		{"MaxTokenLen", strings.Repeat("t", server.MaxTokenLen), codes.Unauthenticated, 1},
		{"valid", token, codes.OK, 1},
	} {
		hashed.Store(0)
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tt.token))
		_, err := auth.UnaryInterceptor()(ctx, &ltikeysv1.SignJwtRequest{}, &grpc.UnaryServerInfo{FullMethod: ltikeysv1.KeyService_SignJwt_FullMethodName},
			func(context.Context, any) (any, error) { return &ltikeysv1.SignJwtResponse{}, nil })
		if got := status.Code(err); got != tt.want || hashed.Load() != tt.hashes {
			t.Errorf("%s: %v, %d hashes; want %v, %d", tt.name, err, hashed.Load(), tt.want, tt.hashes)
		}
	}
}

// TestTapHandleAndCertificates: without a token, a call passes the tap
// handle only from a connection with a verified client certificate while
// certificate identities are configured; whether the certificate is mapped
// is for the interceptor.
func TestTapHandleAndCertificates(t *testing.T) {
	ca := newTestCA(t, "tap CA")
	leaf, err := x509.ParseCertificate(ca.issue(t, false, "ops", nil).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	over := func(chains [][]*x509.Certificate) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: chains}},
		})
	}
	identities := []server.CertIdentity{{Identity: "cn:someone-else", Scopes: []server.Scope{server.ScopeKeysRead}}}
	for _, tt := range []struct {
		name       string
		identities []server.CertIdentity
		ctx        context.Context
		want       codes.Code
	}{
		{"verified certificate, identities configured", identities, over([][]*x509.Certificate{{leaf, ca.cert}}), codes.OK},
		{"TLS without a client certificate", identities, over(nil), codes.Unauthenticated},
		{"no peer", identities, context.Background(), codes.Unauthenticated},
		{"verified certificate, no identities configured", nil, over([][]*x509.Certificate{{leaf, ca.cert}}), codes.Unauthenticated},
	} {
		auth, err := server.NewAuthenticator(server.AuthConfig{CertScopes: tt.identities})
		if err != nil {
			t.Fatal(err)
		}
		_, err = auth.TapHandle()(tt.ctx, &tap.Info{FullMethodName: ltikeysv1.KeyService_GetToolKey_FullMethodName, Header: metadata.MD{}})
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
