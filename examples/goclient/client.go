package goclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// Dial connects to the ltikeys gRPC API at addr (host:port) and sends token
// as "authorization: Bearer" on every call. The connection is made lazily:
// an unreachable server fails the first call, UNAVAILABLE. With tlsConfig
// nil (&tls.Config{} verifies the server against the system's CAs) the
// connection is plaintext, which Dial allows only to a loopback address, as
// serve listens in plaintext only there; elsewhere the token would cross
// the network in clear text. Close the connection when done.
func Dial(addr, token string, tlsConfig *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	} else if !isLoopback(addr) {
		return nil, fmt.Errorf("dial ltikeys: plaintext to %s, which is not a loopback address: give a TLS configuration", addr)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(bearerToken{token: token, requireTLS: tlsConfig != nil}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial ltikeys: %w", err)
	}
	return conn, nil
}

// isLoopback reports whether addr's host is localhost or a loopback IP.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// bearerToken is a per-call credential carrying an ltikeys API token.
type bearerToken struct {
	token      string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity makes gRPC refuse to send the token over a
// connection without TLS, unless Dial chose plaintext to loopback.
func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// SignDeepLinkingResponse has ltikeys sign the claims of an
// LtiDeepLinkingResponse with the current key of the registration of
// issuer and clientID, valid for five minutes (ltikeys adds iat and exp, so
// claims must hold neither). It needs a token with scope keys.sign. Post the
// JWT it returns as the form field JWT to the launch's
// deep_link_return_url.
func SignDeepLinkingResponse(ctx context.Context, keys ltikeysv1.KeyServiceClient, issuer, clientID string, claims map[string]any) (string, error) {
	claimsJSON, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode the deep-linking claims: %w", err)
	}
	resp, err := keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{
		Lookup:     &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: issuer, ClientId: clientID}},
		ClaimsJson: string(claimsJSON),
		ExpiresIn:  durationpb.New(5 * time.Minute),
	})
	if err != nil {
		return "", fmt.Errorf("sign the deep-linking response: %w", err)
	}
	return resp.GetJwt(), nil
}
