// Package examples_test runs the Python and Node clients of docs/clients.md
// against a real `ltikeys serve` and checks what they print: every JWT they
// report is verified against the server's JWKS, so the clients are checked
// rather than trusted.
//
// A client whose runtime is missing (python3 with grpc and grpc_tools; node
// and npm) is skipped; .ci/run installs both first and fails on any skip.
package examples_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// issuer is the platform both clients register (their ISSUER constant).
const issuer = "https://canvas.instructure.com"

// examples are the client programs, relative to this directory, that
// docs/clients.md must show verbatim.
var examples = []string{"python/client.py", "node/client.js"}

// TestClientsDocShowsExamples checks that docs/clients.md shows each
// example file, in full and unchanged, as one fenced code block, so the
// code readers copy is the code TestClients runs.
func TestClientsDocShowsExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(doc))
	for _, name := range examples {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range blocks {
			if b == string(src) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/clients.md has no code block equal to examples/%s (paste the file between ``` fences)", name)
		}
	}
}

// fencedBlocks returns the contents of the ``` fenced code blocks of a
// Markdown document, each with its trailing newline.
func fencedBlocks(doc string) []string {
	var blocks []string
	var cur *strings.Builder
	for line := range strings.SplitAfterSeq(doc, "\n") {
		fence := strings.HasPrefix(line, "```")
		switch {
		case cur == nil && fence:
			cur = &strings.Builder{}
		case cur != nil && fence:
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return blocks
}

// TestClients runs each client against a plaintext server on loopback
// (registering, then again to see ALREADY_EXISTS, then with a wrong token)
// and against a TLS server with a CA of the test's own.
func TestClients(t *testing.T) {
	bin := buildLtikeys(t)
	plain := spawnServe(t, bin)
	ca, certFile, keyFile := platformtest.NewCA(t).WriteFiles(t, t.TempDir(), "127.0.0.1", "localhost")
	secure := spawnServe(t, bin, "--tls-cert", certFile, "--tls-key", keyFile)
	plain.waitServing(t)
	secure.waitServing(t)

	t.Run("python", func(t *testing.T) {
		python := findPython(t)
		stubs := t.TempDir()
		protos, err := filepath.Glob(filepath.Join("..", "proto", "ltikeys", "v1", "*.proto"))
		if err != nil {
			t.Fatal(err)
		}
		google, err := filepath.Glob(filepath.Join("..", "proto", "google", "api", "*.proto"))
		if err != nil {
			t.Fatal(err)
		}
		// docs/clients.md's protoc command.
		args := append([]string{"-m", "grpc_tools.protoc", "-I", filepath.Join("..", "proto"),
			"--python_out=" + stubs, "--grpc_python_out=" + stubs}, append(protos, google...)...)
		mustRun(t, exec.Command(python, args...))
		env := []string{"PYTHONPATH=" + stubs}
		// Every generated module imports, JwksService's too (it needs the
		// google/api stubs).
		mustRun(t, command(env, python, "-c",
			"import ltikeys.v1.key_service_pb2_grpc, ltikeys.v1.jwks_service_pb2_grpc"))
		script, err := filepath.Abs(filepath.Join("python", "client.py"))
		if err != nil {
			t.Fatal(err)
		}
		checkClient(t, "python-example", plain, secure, ca, func(extra ...string) *exec.Cmd {
			return command(append(env, extra...), python, script)
		})
	})

	t.Run("node", func(t *testing.T) {
		node, npm := findNode(t)
		// npm ci into a copy, so the test leaves no node_modules behind.
		dir := t.TempDir()
		for _, name := range []string{"package.json", "package-lock.json", "client.js"} {
			src, err := os.ReadFile(filepath.Join("node", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		install := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		install.Dir = dir
		mustRun(t, install)
		protoDir, err := filepath.Abs(filepath.Join("..", "proto"))
		if err != nil {
			t.Fatal(err)
		}
		checkClient(t, "node-example", plain, secure, ca, func(env ...string) *exec.Cmd {
			cmd := command(append(env, "LTIKEYS_PROTO_DIR="+protoDir), node, "client.js")
			cmd.Dir = dir
			return cmd
		})
	})
}

// checkClient runs a client (client returns its command with env added)
// four times with clientID as its registration's
// client_id: against plain twice (the first run creates the registration,
// the second gets ALREADY_EXISTS and signs with the same key), once with a
// wrong token, and once against secure with caFile as its CA.
func checkClient(t *testing.T, clientID string, plain, secure *server, caFile string, client func(env ...string) *exec.Cmd) {
	t.Helper()
	env := func(s *server, extra ...string) []string {
		return append([]string{"LTIKEYS_SERVER=" + s.grpcAddr, "LTIKEYS_TOKEN=" + s.token(t), "LTIKEYS_CLIENT_ID=" + clientID}, extra...)
	}

	first := runClient(t, client(env(plain)...))
	id := first["registration_id"]
	if id == "" || first["already_exists"] != "" {
		t.Fatalf("first run printed %q, want a registration_id", first)
	}
	kid := verifyJWT(t, plain, id, clientID, first)

	again := runClient(t, client(env(plain)...))
	if again["registration_id"] != "" || !strings.Contains(again["already_exists"], clientID) {
		t.Errorf("second run printed %q, want already_exists naming %q", again, clientID)
	}
	if got := verifyJWT(t, plain, id, clientID, again); got != kid {
		t.Errorf("second run signed with kid %q, want the registration's %q", got, kid)
	}

	bad := client(env(plain, "LTIKEYS_TOKEN=not-a-token")...)
	var stdout, stderr bytes.Buffer
	bad.Stdout, bad.Stderr = &stdout, &stderr
	var exit *exec.ExitError
	if err := bad.Run(); !errors.As(err, &exit) {
		t.Errorf("run with a wrong token: %v, want a failing exit status\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if !strings.Contains(stderr.String(), "UNAUTHENTICATED: ") || stdout.Len() != 0 {
		t.Errorf("run with a wrong token printed\nstdout:\n%s\nstderr:\n%s\nwant only UNAUTHENTICATED and the message on stderr", &stdout, &stderr)
	}

	// Over TLS, verified against the test's CA; a client still speaking
	// plaintext would fail here.
	overTLS := runClient(t, client(env(secure, "LTIKEYS_TLS_CA="+caFile)...))
	if overTLS["registration_id"] == "" {
		t.Fatalf("run over TLS printed %q, want a registration_id", overTLS)
	}
	verifyJWT(t, secure, overTLS["registration_id"], clientID, overTLS)
}

// runClient runs cmd, which must succeed, and returns the key=value lines
// it printed.
func runClient(t *testing.T, cmd *exec.Cmd) map[string]string {
	t.Helper()
	out := mustRun(t, cmd)
	vals := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("%s printed a line that is not key=value: %q", cmd, line)
		}
		vals[k] = v
	}
	return vals
}

// verifyJWT verifies the jwt a client printed against the JWKS of
// registration id on s, checks its header kid is the kid printed and its
// claims are those the clients send (iss clientID, aud the issuer, a nonce,
// and exp 300 s after iat from expires_in), and returns the kid.
func verifyJWT(t *testing.T, s *server, id, clientID string, printed map[string]string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/registrations/" + id + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the JWKS of registration %s: %s", id, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	jws, err := jose.ParseSigned(printed["jwt"], []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse the printed jwt %q: %v", printed["jwt"], err)
	}
	kid := jws.Signatures[0].Protected.KeyID
	if kid != printed["kid"] {
		t.Errorf("the JWT's kid is %q, the client printed kid=%q", kid, printed["kid"])
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("the JWKS of registration %s has %d keys with kid %q", id, len(keys), kid)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("the JWT does not verify with the registration's key: %v", err)
	}
	var claims struct {
		Iss, Aud, Nonce string
		Iat, Exp        float64
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Iss != clientID || claims.Aud != issuer || claims.Nonce == "" || claims.Exp-claims.Iat != 300 {
		t.Errorf("claims %s, want iss %q, aud %q, a nonce and exp = iat + 300", payload, clientID, issuer)
	}
	return kid
}

// findPython returns a python3 that imports grpc and grpc_tools: the one on
// PATH, else /usr/bin/python3 (Debian's python3-grpcio and
// python3-grpc-tools are for it, and a pyenv python3 on PATH lacks them).
func findPython(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import grpc, grpc_tools.protoc").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 that imports grpc and grpc_tools: apt-get install python3-grpcio python3-grpc-tools, or pip install grpcio grpcio-tools")
	return ""
}

// findNode returns node and npm.
func findNode(t *testing.T) (node, npm string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		npm, err = exec.LookPath("npm")
	}
	if err != nil {
		t.Skipf("%v: install Node.js 18 or newer with npm (apt-get install nodejs npm)", err)
	}
	return node, npm
}

// clientCommand returns a command with the environment of the test minus
// LTIKEYS_ variables, plus env.
func command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LTIKEYS_") && !strings.HasPrefix(kv, "PYTHONPATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// mustRun runs cmd with a time limit and returns its standard output,
// failing the test with both outputs if it fails.
func mustRun(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", cmd, err, &stdout, &stderr)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in time\nstdout:\n%s\nstderr:\n%s", cmd, &stdout, &stderr)
	}
	return stdout.String()
}

// buildLtikeys builds cmd/ltikeys into a temporary directory.
func buildLtikeys(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ltikeys")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ltikeys")
	build.Dir = ".."
	mustRun(t, build)
	return bin
}

// server is a running `ltikeys serve` with its own data directory.
type server struct {
	dataDir            string
	grpcAddr, httpAddr string
	serving            chan struct{}
	done               chan error
	mu                 sync.Mutex
	log                bytes.Buffer
}

// spawnServe starts `ltikeys serve` on free loopback ports with a new data
// directory (the embedded SQLite database) and returns at once; see
// waitServing. The server is killed when the test ends.
func spawnServe(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{dataDir: t.TempDir(), serving: make(chan struct{}), done: make(chan error, 1)}
	args = append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--data-dir", s.dataDir, "--log-format", "json"}, args...)
	cmd := command(nil, bin, args...)
	cmd.Dir = s.dataDir
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.mu.Lock()
			s.log.Write(append(sc.Bytes(), '\n'))
			s.mu.Unlock()
			var raw map[string]any
			if json.Unmarshal(sc.Bytes(), &raw) == nil && raw["msg"] == "serving" && s.grpcAddr == "" {
				s.grpcAddr, _ = raw["grpc_addr"].(string)
				s.httpAddr, _ = raw["http_addr"].(string)
				close(s.serving)
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	return s
}

// waitServing waits until the server logs that it is serving, failing the
// test if it exits first or takes over a minute.
func (s *server) waitServing(t *testing.T) {
	t.Helper()
	select {
	case <-s.serving:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("serve exited before serving: %v\n%s", err, s.logs())
	case <-time.After(time.Minute):
		t.Fatalf("serve did not start in time\n%s", s.logs())
	}
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// token returns the admin token serve generated in its data directory.
func (s *server) token(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}
