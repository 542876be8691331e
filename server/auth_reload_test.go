package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// listRegistrations stands for any method that needs keys.read.
var listRegistrations = &grpc.UnaryServerInfo{FullMethod: ltikeysv1.KeyService_ListRegistrations_FullMethodName}

// callAs runs auth's unary interceptor for ListRegistrations in ctx and
// returns the code and the caller the handler saw.
func callAs(auth *server.Authenticator, ctx context.Context) (codes.Code, server.Caller) {
	var caller server.Caller
	_, err := auth.UnaryInterceptor()(ctx, &ltikeysv1.ListRegistrationsRequest{}, listRegistrations,
		func(ctx context.Context, _ any) (any, error) {
			caller, _ = server.CallerFromContext(ctx)
			return &ltikeysv1.ListRegistrationsResponse{}, nil
		})
	return status.Code(err), caller
}

func bearer(token string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
}

// withClientCert returns a context whose peer presented a verified client
// certificate with common name cn.
func withClientCert(cn string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}},
	}})
}

// TestSetCredentials replaces an Authenticator's tokens and certificate
// identities: a removed token or identity is refused at once, kept and added
// ones are accepted, and a bad set changes nothing.
func TestSetCredentials(t *testing.T) {
	read := []server.Scope{server.ScopeKeysRead}
	a, b, c := "ltk_token-a", "ltk_token-b", "ltk_token-c"
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens:     []server.Token{{Name: "a", Scopes: read, Hash: server.HashToken(a)}, {Name: "b", Scopes: read, Hash: server.HashToken(b)}},
		CertScopes: []server.CertIdentity{{Identity: "cn:old", Scopes: read}},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]codes.Code) {
		t.Helper()
		for who, code := range want {
			ctx := bearer(who)
			if cn, ok := strings.CutPrefix(who, "cn:"); ok {
				ctx = withClientCert(cn)
			}
			if got, _ := callAs(auth, ctx); got != code {
				t.Errorf("%s: %s = %v, want %v", when, who, got, code)
			}
		}
	}
	check("at start", map[string]codes.Code{a: codes.OK, b: codes.OK, c: codes.Unauthenticated, "cn:old": codes.OK, "cn:new": codes.Unauthenticated})

	if err := auth.SetCredentials(
		[]server.Token{{Name: "b", Scopes: read, Hash: server.HashToken(b)}, {Name: "c", Scopes: read, Hash: server.HashToken(c)}},
		[]server.CertIdentity{{Identity: "cn:new", Scopes: read}},
	); err != nil {
		t.Fatal(err)
	}
	after := map[string]codes.Code{a: codes.Unauthenticated, b: codes.OK, c: codes.OK, "cn:old": codes.Unauthenticated, "cn:new": codes.OK}
	check("after the swap", after)

	for name, tokens := range map[string][]server.Token{
		"malformed hash": {{Name: "a", Scopes: read, Hash: server.HashToken(a)}, {Name: "x", Scopes: read, Hash: "ltk_x"}},
		"unknown scope":  {{Name: "a", Scopes: []server.Scope{"keys.all"}, Hash: server.HashToken(a)}},
	} {
		if err := auth.SetCredentials(tokens, nil); err == nil {
			t.Errorf("%s: SetCredentials accepted a bad set", name)
		}
		check("after a refused "+name, after)
	}
	if err := auth.SetCredentials(nil, []server.CertIdentity{{Identity: "cn:old", Scopes: []server.Scope{"keys.all"}}}); err == nil {
		t.Errorf("SetCredentials accepted an unknown certificate scope")
	}
	check("after a refused certificate scope", after)

	if err := auth.SetCredentials(nil, nil); err != nil {
		t.Fatal(err)
	}
	check("with no credentials", map[string]codes.Code{a: codes.Unauthenticated, b: codes.Unauthenticated, c: codes.Unauthenticated, "cn:new": codes.Unauthenticated})
}

// TestSetCredentialsWhileCalling swaps between two sets while calls run
// (run it with -race): the one token is named and scoped differently in
// each, and every call sees the name and the scopes of one set, never one
// set's name with the other's scopes.
func TestSetCredentialsWhileCalling(t *testing.T) {
	const token = "ltk_shared"
	sets := [][]server.Token{
		{{Name: "first", Scopes: []server.Scope{server.ScopeKeysRead}, Hash: server.HashToken(token)}},
		{{Name: "second", Scopes: []server.Scope{server.ScopeKeysRead, server.ScopeKeysSign, server.ScopeKeysAdmin}, Hash: server.HashToken(token)}},
	}
	want := map[string][]server.Scope{"first": sets[0][0].Scopes, "second": sets[1][0].Scopes}
	auth, err := server.NewAuthenticator(server.AuthConfig{Tokens: sets[0]})
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n++
			if err := auth.SetCredentials(sets[n%2], nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ctx := bearer(token)
			for range 2000 {
				code, caller := callAs(auth, ctx)
				if code != codes.OK {
					t.Errorf("call = %v, want OK: the token is in both sets", code)
					return
				}
				if !slices.Equal(caller.Scopes, want[caller.Name]) {
					t.Errorf("caller %q has scopes %v, want %v", caller.Name, caller.Scopes, want[caller.Name])
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-swapped; n == 0 {
		t.Errorf("no swap happened while calls ran")
	}
}
