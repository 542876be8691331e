package main_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeMaxTokenLifetime starts serve with LTIKEYS_MAX_TOKEN_LIFETIME:
// SignJwt refuses a longer expires_in and gives claims without exp that
// lifetime, shorter than the usual five minutes.
func TestServeMaxTokenLifetime(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, []string{"LTIKEYS_MAX_TOKEN_LIFETIME=2m"})
	keys := p.keyClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = withBearer(ctx, adminToken(t, dir))

	created, err := keys.CreateRegistration(ctx, platformRegistration())
	if err != nil {
		t.Fatal(err)
	}
	lookup := &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: created.GetRegistration().GetId()}

	_, err = keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: lookup, ClaimsJson: `{}`, ExpiresIn: durationpb.New(3 * time.Minute)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "at most 2m0s") {
		t.Errorf("expires_in 3m: %v, want INVALID_ARGUMENT saying at most 2m0s", err)
	}
	signed, err := keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: lookup, ClaimsJson: `{"sub":"user"}`})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(signed.GetJwt(), ".")
	if len(parts) != 3 {
		t.Fatalf("jwt %q", signed.GetJwt())
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Iat, Exp int64 }
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp-claims.Iat != 120 {
		t.Errorf("payload %s: want exp = iat + 120 (%v)", payload, err)
	}
}

// TestServeRefusesBadMaxTokenLifetime: serve refuses a lifetime that is
// not whole seconds of at least one, before it listens.
func TestServeRefusesBadMaxTokenLifetime(t *testing.T) {
	for _, value := range []string{"1.5s", "0s", "-1h"} {
		args := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--max-token-lifetime", value}
		out, err := command(context.Background(), t.TempDir(), nil, args...).CombinedOutput()
		if err == nil {
			t.Errorf("--max-token-lifetime %s: serve started", value)
			continue
		}
		if !strings.Contains(string(out), "--max-token-lifetime: must be whole seconds") || strings.Contains(string(out), "listening") {
			t.Errorf("--max-token-lifetime %s:\n%s", value, out)
		}
	}
}
