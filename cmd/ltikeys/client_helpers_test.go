package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// adminToken returns the admin token serve generated in dir's data
// directory.
func adminToken(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "ltikeys-data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// keyClient returns a KeyService client of p over plaintext gRPC, closed
// when the test ends.
func (p *process) keyClient(t *testing.T) ltikeysv1.KeyServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ltikeysv1.NewKeyServiceClient(conn)
}

// withBearer returns ctx with token as its calls' bearer token.
func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// platformRegistration is a valid CreateRegistration request.
func platformRegistration() *ltikeysv1.CreateRegistrationRequest {
	return &ltikeysv1.CreateRegistrationRequest{
		Issuer: "https://platform.example.com", ClientId: "tool",
		AuthEndpoint: "https://platform.example.com/auth", JwksUri: "https://platform.example.com/jwks", TokenEndpoint: "https://platform.example.com/token",
	}
}
