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
	for _, want := range []string{"REGISTRATION ID", "CLIENT ID", "tool-2", "KEY KID", "KEY STATE", "current"} {
		if !strings.Contains(table, want) {
			t.Errorf("create table lacks %q:\n%s", want, table)
		}
	}
	wantCLIError(t, dir, nil, "ALREADY_EXISTS", create("tool-1")...)
	wantCLIError(t, dir, nil, "INVALID_ARGUMENT", append([]string{"registration", "create"}, append(srv,
		"--issuer", "x", "--client-id", "y", "--auth-endpoint", "ftp://a", "--jwks-uri", "https://a", "--token-endpoint", "https://a")...)...)

	// Rotate, through the environment twin of --server. Without
	// --publish-ahead the server's default applies: the larger of its
	// --jwks-max-age (5m by default) and 1m, so the new key is pending.
	var scheduled ltikeysv1.RotateKeyResponse
	parseJSON(t, mustCLI(t, dir, []string{"LTIKEYS_SERVER=" + p.grpcAddr}, "key", "rotate", "--registration-id", regID, "-o", "json").stdout, &scheduled)
	if k := scheduled.GetNewKey(); k.GetState() != ltikeysv1.KeyState_KEY_STATE_PENDING ||
		k.GetActivateTime().AsTime().Sub(k.GetCreateTime().AsTime()) != 5*time.Minute || scheduled.GetPreviousKey().GetKid() != kid1 {
		t.Fatalf("rotate without --publish-ahead returned %v; want a key pending for 5m", &scheduled)
	}
	// --publish-ahead 0s is sent as 0s: the new key signs at once, and
	// replaces the pending one.
	var rotated ltikeysv1.RotateKeyResponse
	parseJSON(t, mustCLI(t, dir, nil, append([]string{"key", "rotate", "--registration-id", regID, "--publish-ahead", "0s", "-o", "json"}, srv...)...).stdout, &rotated)
	kid2 := rotated.GetNewKey().GetKid()
	if kid2 == "" || kid2 == kid1 || rotated.GetNewKey().GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT || rotated.GetPreviousKey().GetKid() != kid1 ||
		rotated.GetReplacedPendingKey().GetKid() != scheduled.GetNewKey().GetKid() {
		t.Fatalf("rotate --publish-ahead 0s returned %v", &rotated)
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
		`ltikeys_keys{state="current"} 2`,
		`ltikeys_keys{state="pending"} 0`,
		`ltikeys_keys{state="previous"} 0`,
		`ltikeys_keys{state="retired"} 2`, // kid1 and the replaced pending key
		`ltikeys_key_pool_keys{bits="2048"} `,
		`ltikeys_cache_lookups_total{cache="keys",result="miss"} `,
		`ltikeys_cache_lookups_total{cache="keys",result="hit"} `,
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
		{"registration", "get", "--help"},
		{"registration", "list", "--help"},
		{"registration", "update", "--help"},
		{"registration", "delete", "--help"},
		{"key", "list", "--help"},
		{"key", "rotate", "--help"},
		{"key", "retire", "--help"},
		{"key", "export", "--help"},
		{"sign", "jwt", "--help"},
		{"sign", "client-assertion", "--help"},
		{"platform", "token", "--help"},
		{"platform", "verify", "--help"},
		{"jwks", "--help"},
		{"serve", "--help"},
	} {
		out := mustCLI(t, t.TempDir(), nil, args...).stdout
		if !strings.Contains(out, "Usage:") || len(out) < 400 {
			t.Errorf("ltikeys %s is too thin:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestCLIRegistrationsAndKeys drives the read, list, update and delete
// commands and scheduled rotation against a real serve: get, list with
// paging (one page at a time and --all), update with its field mask and a
// refused URL, delete then NOT_FOUND, and key list by state after a
// rotation that publishes ahead.
func TestCLIRegistrationsAndKeys(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil)
	cli := func(args ...string) []string { return append(args, "--server", p.grpcAddr) }
	var ids []string
	for _, clientID := range []string{"tool-a", "tool-b", "tool-c"} {
		var created ltikeysv1.CreateRegistrationResponse
		parseJSON(t, mustCLI(t, dir, nil, cli("registration", "create", "-o", "json",
			"--issuer", "https://platform.example.com", "--client-id", clientID,
			"--auth-endpoint", "https://platform.example.com/auth",
			"--jwks-uri", "https://platform.example.com/jwks",
			"--token-endpoint", "https://platform.example.com/token")...).stdout, &created)
		ids = append(ids, created.GetRegistration().GetId())
	}
	regID := ids[0]

	// get, as JSON and as a table.
	var got ltikeysv1.GetRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "get", "--registration-id", regID, "-o", "json")...).stdout, &got)
	if got.GetRegistration().GetClientId() != "tool-a" || got.GetRegistration().GetKid() == "" {
		t.Errorf("get returned %v", &got)
	}
	if out := mustCLI(t, dir, nil, cli("registration", "get", "--registration-id", regID)...).stdout; !strings.Contains(out, "CURRENT KID") || !strings.Contains(out, "tool-a") {
		t.Errorf("get table:\n%s", out)
	} else if !strings.Contains(out, "TOOL JWKS URL") || !strings.Contains(out, "without --public-url") {
		t.Errorf("get table without serve --public-url does not say why TOOL JWKS URL is unknown:\n%s", out)
	}
	// Without --public-url the server cannot say where platforms fetch the
	// registration's key set.
	if u := got.GetRegistration().GetToolJwksUrl(); u != "" {
		t.Errorf("get without serve --public-url: tool_jwks_url = %q, want empty", u)
	}

	// list: a page of two with a token, the token's page, then --all.
	var page1 ltikeysv1.ListRegistrationsResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "list", "--page-size", "2", "-o", "json")...).stdout, &page1)
	if len(page1.GetRegistrations()) != 2 || page1.GetNextPageToken() == "" {
		t.Fatalf("list --page-size 2 returned %v", &page1)
	}
	var page2 ltikeysv1.ListRegistrationsResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "list", "--page-size", "2", "--page-token", page1.GetNextPageToken(), "-o", "json")...).stdout, &page2)
	if len(page2.GetRegistrations()) != 1 || page2.GetRegistrations()[0].GetId() != ids[2] || page2.GetNextPageToken() != "" {
		t.Errorf("the second page = %v, want only %s", &page2, ids[2])
	}
	var all ltikeysv1.ListRegistrationsResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "list", "--page-size", "1", "--all", "--issuer", "https://platform.example.com", "-o", "json")...).stdout, &all)
	if len(all.GetRegistrations()) != 3 || all.GetNextPageToken() != "" {
		t.Errorf("list --all returned %d registrations, next token %q; want 3 and none", len(all.GetRegistrations()), all.GetNextPageToken())
	}
	out := mustCLI(t, dir, nil, cli("registration", "list", "--page-size", "2")...).stdout
	if !strings.Contains(out, "CLIENT ID") || !strings.Contains(out, "tool-b") || !strings.Contains(out, "NEXT PAGE TOKEN: "+page1.GetNextPageToken()) {
		t.Errorf("list table:\n%s", out)
	}
	wantCLIError(t, dir, nil, "INVALID_ARGUMENT", cli("registration", "list", "--page-token", page1.GetNextPageToken(), "--issuer", "https://other.example.com")...)

	// update changes only the flags given.
	var updated ltikeysv1.UpdateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "update", "--registration-id", regID, "--jwks-uri", "https://platform.example.com/jwks2", "-o", "json")...).stdout, &updated)
	if r := updated.GetRegistration(); r.GetJwksUri() != "https://platform.example.com/jwks2" || r.GetAuthEndpoint() != "https://platform.example.com/auth" || r.GetTokenEndpoint() != "https://platform.example.com/token" {
		t.Errorf("update --jwks-uri returned %v", r)
	}
	res := wantCLIError(t, dir, nil, "INVALID_ARGUMENT", cli("registration", "update", "--registration-id", regID, "--token-endpoint", "ftp://platform.example.com/token")...)
	if res.exit != 1 || !strings.Contains(res.stderr, "token_endpoint") {
		t.Errorf("update with a bad URL: exit %d, stderr %q; want 1 naming token_endpoint", res.exit, res.stderr)
	}
	if res := runCLI(t, dir, nil, cli("registration", "update", "--registration-id", regID)...); res.exit == 0 {
		t.Errorf("update without a field succeeded: %s", res.stdout)
	}

	// rotate publishing ahead: the new key is pending, the old one current.
	var rotated ltikeysv1.RotateKeyResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("key", "rotate", "--registration-id", regID, "--publish-ahead", "24h", "--retire-previous-after", "72h", "-o", "json")...).stdout, &rotated)
	pending := rotated.GetNewKey()
	if pending.GetState() != ltikeysv1.KeyState_KEY_STATE_PENDING || rotated.GetRegistration().GetPendingKid() != pending.GetKid() ||
		pending.GetActivateTime().AsTime().Sub(pending.GetCreateTime().AsTime()) < 23*time.Hour {
		t.Errorf("rotate --publish-ahead 24h returned new key %v", pending)
	}
	if prev := rotated.GetPreviousKey(); prev.GetRetireTime().AsTime().Sub(prev.GetSupersedeTime().AsTime()) != 72*time.Hour {
		t.Errorf("rotate --retire-previous-after 72h: previous key %v", prev)
	}
	wantCLIError(t, dir, nil, "INVALID_ARGUMENT", cli("key", "rotate", "--registration-id", regID, "--publish-ahead", "1s")...)
	var forced ltikeysv1.RotateKeyResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("key", "rotate", "--registration-id", ids[1], "--publish-ahead", "0s", "--retire-previous-after", "1s", "--force", "-o", "json")...).stdout, &forced)
	if prev := forced.GetPreviousKey(); forced.GetNewKey().GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT ||
		prev.GetRetireTime().AsTime().Sub(prev.GetSupersedeTime().AsTime()) != time.Second {
		t.Errorf("rotate --force returned %v", &forced)
	}

	// key list by state.
	var listed ltikeysv1.ListKeysResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("key", "list", "--state", "pending", "-o", "json")...).stdout, &listed)
	if len(listed.GetKeys()) != 1 || listed.GetKeys()[0].GetKid() != pending.GetKid() {
		t.Errorf("key list --state pending = %v, want only %s", &listed, pending.GetKid())
	}
	out = mustCLI(t, dir, nil, cli("key", "list", "--registration-id", regID)...).stdout
	for _, want := range []string{"STATE", "ACTIVATES", "RETIRES", pending.GetKid() + "  " + regID + "  pending", "current", "2 key(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("key list table lacks %q:\n%s", want, out)
		}
	}
	var pagedKeys ltikeysv1.ListKeysResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("key", "list", "--page-size", "2", "--all", "-o", "json")...).stdout, &pagedKeys)
	if len(pagedKeys.GetKeys()) != 5 {
		t.Errorf("key list --all returned %d keys, want 5", len(pagedKeys.GetKeys()))
	}
	wantCLIError(t, dir, nil, "--state", cli("key", "list", "--state", "active")...)

	// delete retires the keys; the registration is then NOT_FOUND.
	var deleted ltikeysv1.DeleteRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "delete", "--registration-id", regID, "-o", "json")...).stdout, &deleted)
	if len(deleted.GetRetiredKeys()) != 2 {
		t.Errorf("delete retired %d keys, want 2", len(deleted.GetRetiredKeys()))
	}
	for _, k := range deleted.GetRetiredKeys() {
		if k.GetState() != ltikeysv1.KeyState_KEY_STATE_RETIRED {
			t.Errorf("key %s after delete: %v", k.GetKid(), k.GetState())
		}
	}
	wantCLIError(t, dir, nil, "NOT_FOUND", cli("registration", "get", "--registration-id", regID)...)
	parseJSON(t, mustCLI(t, dir, nil, cli("key", "list", "--state", "pending", "-o", "json")...).stdout, &listed)
	if len(listed.GetKeys()) != 0 {
		t.Errorf("pending keys after delete: %v", &listed)
	}
	if out := mustCLI(t, dir, nil, cli("registration", "delete", "--registration-id", ids[2])...).stdout; !strings.Contains(out, "deleted; 1 key(s) retired") {
		t.Errorf("delete table:\n%s", out)
	}
}
