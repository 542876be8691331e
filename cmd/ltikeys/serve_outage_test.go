package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// TestServeDatabaseOutage runs serve on PostgreSQL through a proxy and
// stops the proxy, as a stopped database would be: calls that need the
// database fail UNAVAILABLE with a RetryInfo, and the log says so in a
// bounded number of lines however many fail; warm key lookups and the
// JWKS, global and per registration, keep working; gRPC health reports
// KeyService NOT_SERVING and JwksService SERVING, and /readyz, which the
// JWKS's load balancer probes, stays 200. Once the proxy is back, serve
// recovers by itself.
func TestServeDatabaseOutage(t *testing.T) {
	proxy, dbURL := storagetest.ProxyURL(t, storagetest.PostgresURL(t))
	const token = "ltk_outage-test-token"
	env := []string{
		"LTIKEYS_MASTER_KEYS=" + masterKeyLine(t, "k1"),
		"LTIKEYS_TOKENS=ops:keys.admin,keys.read,keys.read_private,keys.sign:" + server.HashToken(token),
		"LTIKEYS_DATABASE_URL=" + dbURL,
	}
	// Transitions are recorded hourly, so that the only background work
	// touching the database is the JWKS check.
	p := startServe(t, t.TempDir(), env, "--jwks-refresh", "200ms", "--transition-interval", "1h")
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	keys, jwks, health := ltikeysv1.NewKeyServiceClient(conn), ltikeysv1.NewJwksServiceClient(conn), healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(withBearer(context.Background(), token), 2*time.Minute)
	defer cancel()

	warm, err := keys.CreateRegistration(ctx, platformRegistration())
	if err != nil {
		t.Fatal(err)
	}
	coldReq := platformRegistration()
	coldReq.ClientId = "cold-tool"
	cold, err := keys.CreateRegistration(ctx, coldReq)
	if err != nil {
		t.Fatal(err)
	}
	warmID, coldID := warm.GetRegistration().GetId(), cold.GetRegistration().GetId()
	kid := warm.GetKey().GetKid()
	getToolKey := func(id string) (*ltikeysv1.GetToolKeyResponse, error) {
		return keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	}
	signJwt := func(id string) (*ltikeysv1.SignJwtResponse, error) {
		return keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}, ClaimsJson: `{"sub":"user"}`})
	}
	if _, err := getToolKey(warmID); err != nil { // warms the key cache
		t.Fatal(err)
	}
	httpBase := "http://" + p.httpAddr
	jwksPaths := []string{server.JWKSPath, "/registrations/" + warmID + "/jwks.json"}
	before := map[string]string{}
	for _, path := range jwksPaths {
		code, body := httpGet(t, httpBase+path)
		if code != http.StatusOK || !strings.Contains(body, kid) {
			t.Fatalf("GET %s before the outage = %d %s", path, code, body)
		}
		before[path] = body
	}
	statusOf := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check of %q: %v", service, err)
		}
		return resp.GetStatus()
	}
	const keySvc, jwksSvc = "ltikeys.v1.KeyService", "ltikeys.v1.JwksService"
	waitStatus := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		watch, err := health.Watch(wctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := watch.Recv()
			if err != nil {
				t.Fatalf("%s did not become %v: %v\n%s", service, want, err, p.stderr)
			}
			if resp.GetStatus() == want {
				return
			}
		}
	}

	logMark := len(p.stderr.String())
	proxy.Stop()
	waitStatus(keySvc, healthpb.HealthCheckResponse_NOT_SERVING)

	const failedCalls = 50
	databaseBound := []struct {
		name string
		call func() error
	}{
		{"GetRegistration", func() error {
			_, err := keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: warmID})
			return err
		}},
		{"RotateKey", func() error {
			_, err := keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: warmID})
			return err
		}},
		{"cold GetToolKey", func() error { _, err := getToolKey(coldID); return err }},
		{"cold SignJwt", func() error { _, err := signJwt(coldID); return err }},
	}
	for i := range failedCalls {
		c := databaseBound[i%len(databaseBound)]
		err := c.call()
		st := status.Convert(err)
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if st.Code() != codes.Unavailable || st.Message() != server.UnavailableMessage || retry.GetRetryDelay().AsDuration() <= 0 {
			t.Fatalf("%s during the outage = %v (details %v); want UNAVAILABLE %q with a RetryInfo", c.name, err, st.Details(), server.UnavailableMessage)
		}
	}

	if got, err := getToolKey(warmID); err != nil || got.GetKid() != kid {
		t.Errorf("warm GetToolKey during the outage: %v, kid %q", err, got.GetKid())
	}
	if got, err := signJwt(warmID); err != nil || got.GetKid() != kid {
		t.Errorf("warm SignJwt during the outage: %v, kid %q", err, got.GetKid())
	}
	for _, path := range jwksPaths {
		if code, body := httpGet(t, httpBase+path); code != http.StatusOK || body != before[path] {
			t.Errorf("GET %s during the outage = %d %s, want the last good document", path, code, body)
		}
	}
	if _, err := jwks.GetJwks(ctx, &ltikeysv1.GetJwksRequest{}); err != nil {
		t.Errorf("GetJwks over gRPC during the outage: %v", err)
	}
	if code, body := httpGet(t, httpBase+server.ReadyzPath); code != http.StatusOK {
		t.Errorf("GET /readyz during the outage = %d %s, want 200", code, body)
	}
	if got := statusOf(jwksSvc); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("JwksService during the outage is %v, want SERVING", got)
	}
	if got := statusOf(""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("overall health during the outage is %v, want NOT_SERVING (it follows KeyService)", got)
	}

	// The log of the outage so far: no ERROR line, a few WARN lines
	// however many calls failed, and one INFO audit line per call.
	outage := logRecords(t, p.stderr.String()[logMark:])
	levels := map[string]int{}
	audited := 0
	for _, rec := range outage {
		levels[rec["level"].(string)]++
		if rec["msg"] == server.AuditMessage && rec["code"] == "Unavailable" {
			audited++
			if rec["level"] != "INFO" {
				t.Errorf("audit line of an UNAVAILABLE call at %v: %v", rec["level"], rec)
			}
		}
	}
	if levels["ERROR"] != 0 || levels["WARN"] > 6 {
		t.Errorf("the outage logged %d ERROR and %d WARN lines for %d failed calls, want none and at most 6:\n%s",
			levels["ERROR"], levels["WARN"], failedCalls, p.stderr.String()[logMark:])
	}
	if audited != failedCalls {
		t.Errorf("%d audit lines with code Unavailable, want one per failed call (%d)", audited, failedCalls)
	}
	if starts := countRecords(outage, server.OutageStartMessage); starts != 1 {
		t.Errorf("%d %q lines, want 1", starts, server.OutageStartMessage)
	}

	proxy.Restore()
	waitStatus(keySvc, healthpb.HealthCheckResponse_SERVING)
	if got := statusOf(""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("overall health after the outage is %v, want SERVING", got)
	}
	if _, err := keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: warmID}); err != nil {
		t.Errorf("GetRegistration after the outage: %v", err)
	}
	if _, err := signJwt(coldID); err != nil {
		t.Errorf("cold SignJwt after the outage: %v", err)
	}
	rotated, err := keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: warmID})
	if err != nil {
		t.Fatalf("RotateKey after the outage: %v", err)
	}
	if code, body := httpGet(t, httpBase+server.JWKSPath); code != http.StatusOK || !strings.Contains(body, rotated.GetNewKey().GetKid()) {
		t.Errorf("the JWKS after a rotation past the outage = %d %s, want the new key", code, body)
	}
	end := p.waitLog(t, server.OutageEndMessage, 1)
	if total, _ := end["total_failed_calls"].(float64); total != failedCalls {
		t.Errorf("%q counts %v failed calls, want %d", server.OutageEndMessage, end["total_failed_calls"], failedCalls)
	}
	p.stop(t)
}

// TestServeJWKSMaxStale runs serve with --jwks-max-stale 0 through an
// outage: JwksService, and with it /readyz, is not ready as soon as a check
// of the database fails, though the last good JWKS is still served to
// whoever asks.
func TestServeJWKSMaxStale(t *testing.T) {
	proxy, dbURL := storagetest.ProxyURL(t, storagetest.PostgresURL(t))
	env := []string{"LTIKEYS_MASTER_KEYS=" + masterKeyLine(t, "k1"), readOnlyTokens, "LTIKEYS_DATABASE_URL=" + dbURL}
	p := startServe(t, t.TempDir(), env, "--jwks-refresh", "200ms", "--jwks-max-stale", "0")
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "ltikeys.v1.JwksService"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("JwksService before the outage: %v, %v", resp.GetStatus(), err)
	}
	proxy.Stop()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("JwksService during the outage: %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	if code, _ := httpGet(t, "http://"+p.httpAddr+server.ReadyzPath); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz during the outage with --jwks-max-stale 0 = %d, want 503", code)
	}
	if code, body := httpGet(t, "http://"+p.httpAddr+server.JWKSPath); code != http.StatusOK || !strings.Contains(body, `"keys"`) {
		t.Errorf("GET %s during the outage = %d %s, want the last good document", server.JWKSPath, code, body)
	}
	p.stop(t)
}

// logRecords decodes the JSON log lines in text, skipping any other line.
func logRecords(t *testing.T, text string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(text) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// countRecords counts the records whose msg is msg.
func countRecords(recs []map[string]any, msg string) int {
	n := 0
	for _, rec := range recs {
		if rec["msg"] == msg {
			n++
		}
	}
	return n
}
