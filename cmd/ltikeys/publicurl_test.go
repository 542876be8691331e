package main_test

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeRefusesBadPublicURL checks that serve refuses a --public-url
// it could not build a platform's URL from, whether it comes from the
// command line, the environment or a --config file, naming the flag and
// the problem.
func TestServeRefusesBadPublicURL(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "ltikeys.yaml")
	writeFile(t, config, "public-url: https://keys.example.com/#jwks\n")
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"http beyond loopback", nil, []string{"--public-url", "http://keys.example.com"}, "--public-url: must use https (http is allowed only for localhost)"},
		{"no scheme", nil, []string{"--public-url", "keys.example.com"}, "--public-url: must be an absolute https URL"},
		{"doubled slash", nil, []string{"--public-url", "https://keys.example.com//"}, "--public-url: the path must not have empty segments"},
		{"query from the environment", []string{"LTIKEYS_PUBLIC_URL=https://keys.example.com/?tenant=1"}, nil, "--public-url: must not have a query"},
		{"fragment from a config file", nil, []string{"--config", config}, "--public-url: must not have a fragment"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, tt.args...)
			res := runCLI(t, t.TempDir(), tt.env, args...)
			if res.exit == 0 {
				t.Fatalf("serve started; want a refusal\n%s", res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, res.stderr)
			}
		})
	}
}

// freePort returns a loopback port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRegistrationToolJWKSURL runs serve with --public-url (with a
// trailing slash) and checks that registration create, get, list and
// update show each registration's own key set URL under it, and that the
// URL serves that registration's key.
func TestRegistrationToolJWKSURL(t *testing.T) {
	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startServe(t, dir, nil, "--http-addr", httpAddr, "--public-url", "http://"+httpAddr+"/")
	cli := func(args ...string) []string { return append(args, "--server", p.grpcAddr) }

	var created ltikeysv1.CreateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "create", "-o", "json",
		"--issuer", "https://platform.example.com", "--client-id", "tool",
		"--auth-endpoint", "https://platform.example.com/auth",
		"--jwks-uri", "https://platform.example.com/jwks",
		"--token-endpoint", "https://platform.example.com/token")...).stdout, &created)
	id := created.GetRegistration().GetId()
	want := "http://" + httpAddr + "/registrations/" + id + "/jwks.json"
	if got := created.GetRegistration().GetToolJwksUrl(); got != want {
		t.Fatalf("create: tool_jwks_url = %q, want %q", got, want)
	}
	code, body := httpGet(t, want)
	if kid := created.GetKey().GetKid(); code != http.StatusOK || !strings.Contains(body, kid) {
		t.Errorf("GET %s = %d %s, want 200 with kid %s", want, code, body, kid)
	}

	for _, args := range [][]string{
		{"registration", "get", "--registration-id", id},
		{"registration", "list"},
		{"registration", "update", "--registration-id", id, "--jwks-uri", "https://platform.example.com/jwks2"},
	} {
		out := mustCLI(t, dir, nil, cli(args...)...).stdout
		if !strings.Contains(out, "TOOL JWKS URL") || !strings.Contains(out, want) {
			t.Errorf("ltikeys %s does not show TOOL JWKS URL %s:\n%s", strings.Join(args, " "), want, out)
		}
	}
}
