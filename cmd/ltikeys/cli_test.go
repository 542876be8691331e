package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// cliResult is what one run of the CLI printed.
type cliResult struct {
	stdout, stderr string
	exit           int
}

// runCLI runs the ltikeys CLI in dir (where a local serve keeps
// ltikeys-data/admin.token) and returns its output and exit status.
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := command(ctx, dir, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.exit = exit.ExitCode()
	case err != nil:
		t.Fatalf("ltikeys %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, dir, env, args...)
	if res.exit != 0 {
		t.Fatalf("ltikeys %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.exit, res.stdout, res.stderr)
	}
	return res
}

// wantCLIError runs the CLI and checks that it fails, naming code on stderr.
func wantCLIError(t *testing.T, dir string, env []string, code string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, dir, env, args...)
	if res.exit == 0 {
		t.Errorf("ltikeys %s: exit 0, want a failure with %s\n%s", strings.Join(args, " "), code, res.stdout)
	}
	if !strings.Contains(res.stderr, code) {
		t.Errorf("ltikeys %s: stderr does not name %s:\n%s", strings.Join(args, " "), code, res.stderr)
	}
	return res
}

func parseJSON(t *testing.T, text string, msg proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(text), msg); err != nil {
		t.Fatalf("-o json output does not parse as %T: %v\n%s", msg, err, text)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestCLIEndToEnd drives a real serve with the CLI alone, as the README's
// walk-through does: create a registration, rotate its key, retire the
// previous key and read the JWKS, in tables and in JSON; errors exit non-zero
// naming the gRPC code. It then checks what operators probe: gRPC health and
// reflection, the request id, and the metrics.
func TestCLIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil, "--metrics-addr", "127.0.0.1:0")
	srv := []string{"--server", p.grpcAddr}
	create := func(clientID string, extra ...string) []string {
		args := append([]string{"registration", "create"}, srv...)
		args = append(args,
			"--issuer", "https://platform.example.com", "--client-id", clientID,
			"--auth-endpoint", "https://platform.example.com/auth",
			"--jwks-uri", "https://platform.example.com/jwks",
			"--token-endpoint", "https://platform.example.com/token")
		return append(args, extra...)
	}

	// Create, with the admin token found in ./ltikeys-data by default.
	var created ltikeysv1.CreateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, create("tool-1", "-o", "json")...).stdout, &created)
	regID, kid1 := created.GetRegistration().GetId(), created.GetKey().GetKid()
	if regID == "" || kid1 == "" || created.GetRegistration().GetKid() != kid1 {
		t.Fatalf("create returned %v", &created)
	}
	table := mustCLI(t, dir, nil, create("tool-2")...).stdout
	for _, want := range []string{"REGISTRATION ID", "CLIENT ID", "tool-2", "KEY KID", "active"} {
		if !strings.Contains(table, want) {
			t.Errorf("create table lacks %q:\n%s", want, table)
		}
	}
	wantCLIError(t, dir, nil, "ALREADY_EXISTS", create("tool-1")...)
	wantCLIError(t, dir, nil, "INVALID_ARGUMENT", append([]string{"registration", "create"}, append(srv,
		"--issuer", "x", "--client-id", "y", "--auth-endpoint", "ftp://a", "--jwks-uri", "https://a", "--token-endpoint", "https://a")...)...)

	// Rotate, through the environment twin of --server.
	var rotated ltikeysv1.RotateKeyResponse
	parseJSON(t, mustCLI(t, dir, []string{"LTIKEYS_SERVER=" + p.grpcAddr}, "key", "rotate", "--registration-id", regID, "-o", "json").stdout, &rotated)
	kid2 := rotated.GetNewKey().GetKid()
	if kid2 == "" || kid2 == kid1 || rotated.GetPreviousKey().GetKid() != kid1 {
		t.Fatalf("rotate returned %v", &rotated)
	}
	res := wantCLIError(t, dir, nil, "NOT_FOUND", append([]string{"key", "rotate", "--registration-id", "0190a5c0-0000-7000-8000-0000000000ff"}, srv...)...)
	if res.exit != 1 {
		t.Errorf("NOT_FOUND exit status = %d, want 1", res.exit)
	}
	if !strings.Contains(res.stderr, "request id ") {
		t.Errorf("the error does not give the request id:\n%s", res.stderr)
	}

	// Retire the previous key; the current one cannot be.
	var retired ltikeysv1.RetireKeyResponse
	parseJSON(t, mustCLI(t, dir, nil, append([]string{"key", "retire", "--kid", kid1, "-o", "json"}, srv...)...).stdout, &retired)
	if retired.GetKey().GetKid() != kid1 || retired.GetKey().GetActive() {
		t.Errorf("retire returned %v", &retired)
	}
	wantCLIError(t, dir, nil, "FAILED_PRECONDITION", append([]string{"key", "retire", "--kid", kid2}, srv...)...)

	// The JWKS, as platforms see it.
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	out := mustCLI(t, dir, nil, "jwks", "--http-server", "http://"+p.httpAddr, "-o", "json").stdout
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("jwks -o json: %v\n%s", err, out)
	}
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k.Kid)
	}
	if len(kids) != 2 || strings.Contains(out, kid1) || !strings.Contains(out, kid2) {
		t.Errorf("JWKS kids = %v; want kid2 %s and tool-2's key, not retired %s", kids, kid2, kid1)
	}
	out = mustCLI(t, dir, []string{"LTIKEYS_HTTP_SERVER=http://" + p.httpAddr}, "jwks").stdout
	if !strings.Contains(out, kid2) || !strings.Contains(out, "RS256") || !strings.Contains(out, "2048") {
		t.Errorf("jwks table:\n%s", out)
	}

	// Export warns on stderr.
	res = mustCLI(t, dir, nil, append([]string{"key", "export", "--issuer", "https://platform.example.com", "--client-id", "tool-1", "-o", "json"}, srv...)...)
	var exported ltikeysv1.GetToolKeyResponse
	parseJSON(t, res.stdout, &exported)
	if exported.GetKid() != kid2 || !strings.Contains(exported.GetPrivateJwk(), `"d"`) {
		t.Errorf("export returned kid %q", exported.GetKid())
	}
	if !strings.Contains(res.stderr, "private key") {
		t.Errorf("export does not warn on stderr: %q", res.stderr)
	}
	wantCLIError(t, dir, nil, "", append([]string{"key", "export", "--registration-id", regID, "--issuer", "x"}, srv...)...)

	// Signing, with the key that never leaves the service.
	var signed ltikeysv1.SignJwtResponse
	parseJSON(t, mustCLI(t, dir, nil, append([]string{"sign", "jwt", "--registration-id", regID,
		"--claims", `{"iss":"tool-1","nonce":"n-1"}`, "--expires-in", "5m", "-o", "json"}, srv...)...).stdout, &signed)
	if signed.GetKid() != kid2 || strings.Count(signed.GetJwt(), ".") != 2 {
		t.Errorf("sign jwt returned kid %q, jwt %q", signed.GetKid(), signed.GetJwt())
	}
	out = mustCLI(t, dir, nil, append([]string{"sign", "client-assertion", "--issuer", "https://platform.example.com", "--client-id", "tool-1"}, srv...)...).stdout
	if !strings.Contains(out, "CLIENT ASSERTION") || !strings.Contains(out, kid2) {
		t.Errorf("sign client-assertion table:\n%s", out)
	}
	wantCLIError(t, dir, nil, "INVALID_ARGUMENT", append([]string{"sign", "jwt", "--registration-id", regID, "--claims", "[1]"}, srv...)...)

	// Without a token.
	wantCLIError(t, t.TempDir(), nil, "UNAUTHENTICATED", append([]string{"key", "rotate", "--registration-id", regID}, srv...)...)

	// Health, reflection and the request id over gRPC.
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, svc := range []string{"", "ltikeys.v1.KeyService", "ltikeys.v1.JwksService"} {
		hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", svc, hc.GetStatus(), err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	listed, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range listed.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"ltikeys.v1.KeyService", "ltikeys.v1.JwksService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}
	stream.CloseSend()
	var header metadata.MD
	if _, err := ltikeysv1.NewJwksServiceClient(conn).GetJwks(metadata.AppendToOutgoingContext(ctx, "x-request-id", "trace-e2e-1"),
		&ltikeysv1.GetJwksRequest{}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "trace-e2e-1" {
		t.Errorf("x-request-id header = %v, want the client's", got)
	}

	// Metrics, on their own listener only.
	code, metrics := httpGet(t, "http://"+p.metricsAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateRegistration",grpc_service="ltikeys.v1.KeyService",grpc_type="unary"} 2`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="RotateKey",grpc_service="ltikeys.v1.KeyService",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_bucket{`,
		`ltikeys_jwks_requests_total{code="200"} 2`,
		`ltikeys_jwks_requests_total{code="304"} 0`,
		`ltikeys_keys{state="active"} 2`,
		`ltikeys_keys{state="retired"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := httpGet(t, "http://"+p.httpAddr+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener = %d, want 404", code)
	}

	p.stop(t)
	if !strings.Contains(p.stderr.String(), `"request_id":"trace-e2e-1"`) {
		t.Errorf("no log line carries the client's request id")
	}
}

// TestCLIHelp checks that every command documents itself.
func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"registration", "create", "--help"},
		{"key", "rotate", "--help"},
		{"key", "retire", "--help"},
		{"key", "export", "--help"},
		{"sign", "jwt", "--help"},
		{"sign", "client-assertion", "--help"},
		{"jwks", "--help"},
		{"serve", "--help"},
	} {
		out := mustCLI(t, t.TempDir(), nil, args...).stdout
		if !strings.Contains(out, "Usage:") || len(out) < 400 {
			t.Errorf("ltikeys %s is too thin:\n%s", strings.Join(args, " "), out)
		}
	}
}
