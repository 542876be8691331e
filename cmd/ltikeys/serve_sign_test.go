package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeDisableKeyExport starts serve with LTIKEYS_DISABLE_KEY_EXPORT:
// the generated admin token, which holds every scope, cannot export a
// private key but can sign with it.
func TestServeDisableKeyExport(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, []string{"LTIKEYS_DISABLE_KEY_EXPORT=true"})
	raw, err := os.ReadFile(filepath.Join(dir, "ltikeys-data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys := ltikeysv1.NewKeyServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(raw)))

	created, err := keys.CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
		Issuer: "https://platform.example.com", ClientId: "tool",
		AuthEndpoint: "https://platform.example.com/auth", JwksUri: "https://platform.example.com/jwks", TokenEndpoint: "https://platform.example.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetRegistration().GetId()
	resp, err := keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	if status.Code(err) != codes.PermissionDenied || resp.GetPrivateJwk() != "" {
		t.Errorf("GetToolKey with the admin token = %v, want PERMISSION_DENIED", err)
	}
	signed, err := keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{
		Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}, ClaimsJson: `{"sub":"user"}`,
	})
	if err != nil || signed.GetKid() != created.GetKey().GetKid() {
		t.Errorf("SignJwt with the admin token: kid %q, %v", signed.GetKid(), err)
	}
	if _, err := keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{
		Lookup: &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: id},
	}); err != nil {
		t.Errorf("CreateClientAssertion with the admin token: %v", err)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), `"key_export":false`) {
		t.Errorf("the start-up log does not say key export is off")
	}
}
