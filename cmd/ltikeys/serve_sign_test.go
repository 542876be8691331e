package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeDisableKeyExport starts serve with LTIKEYS_DISABLE_KEY_EXPORT:
// the generated admin token, which holds every scope, cannot export a
// private key but can sign with it.
func TestServeDisableKeyExport(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, []string{"LTIKEYS_DISABLE_KEY_EXPORT=true"})
	keys := p.keyClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = withBearer(ctx, adminToken(t, dir))

	created, err := keys.CreateRegistration(ctx, platformRegistration())
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
