package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeLimits runs serve with its gRPC limits and throttle set low:
// a request over the message size is RESOURCE_EXHAUSTED, a large one
// without a token UNAUTHENTICATED, wrong tokens beyond the burst
// RESOURCE_EXHAUSTED, and a health Watch ends after its duration, with
// each limit's flag taking effect.
func TestServeLimits(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil,
		"--grpc-max-recv-msg-size", "4096",
		"--auth-failure-burst", "3", "--auth-failure-rate", "0.001",
		"--grpc-max-stream-duration", "300ms")
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys := ltikeysv1.NewKeyServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := withBearer(ctx, adminToken(t, dir))
	big := &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: "0190a5c0-0000-7000-8000-000000000001"}, ClaimsJson: `{"pad":"` + strings.Repeat("p", 8192) + `"}`}
	if _, err := keys.SignJwt(admin, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("authenticated SignJwt over --grpc-max-recv-msg-size: %v, want RESOURCE_EXHAUSTED", err)
	}
	huge := &ltikeysv1.SignJwtRequest{ClaimsJson: strings.Repeat("p", 4<<20)}
	if _, err := keys.SignJwt(ctx, huge); status.Code(err) != codes.Unauthenticated {
		t.Errorf("4 MB SignJwt without a token: %v, want UNAUTHENTICATED", err)
	}
	if _, err := keys.ListKeys(admin, &ltikeysv1.ListKeysRequest{}); err != nil {
		t.Errorf("ListKeys with the admin token: %v", err)
	}

	wrong := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer ltk_wrong")
	// The 4 MB call above was one failure of the burst of 3.
	for i, want := range []codes.Code{codes.Unauthenticated, codes.Unauthenticated, codes.ResourceExhausted} {
		if _, err := keys.ListKeys(wrong, &ltikeysv1.ListKeysRequest{}); status.Code(err) != want {
			t.Errorf("wrong token %d: %v, want %v", i+1, err, want)
		}
	}
	if _, err := keys.ListKeys(admin, &ltikeysv1.ListKeysRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("admin token from the throttled address: %v, want RESOURCE_EXHAUSTED", err)
	}

	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v", resp, err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Watch after --grpc-max-stream-duration: %v, want DEADLINE_EXCEEDED", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health Check: %v", err)
	}
	p.stop(t)
}
