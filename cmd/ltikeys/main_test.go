package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the ltikeys executable built once for the tests in this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ltikeys-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ltikeys")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ltikeys:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command returns an ltikeys command run in dir with a clean LTIKEYS_
// environment plus env.
func command(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LTIKEYS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// process is a running `ltikeys serve`.
type process struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	// metricsAddr is empty unless serve runs with --metrics-addr.
	metricsAddr string
	stderr      *logBuffer
	done        chan error
	// started is closed once serve has logged the message it was started
	// to wait for (see spawnServe).
	started chan struct{}
}

// logBuffer holds what serve writes to stderr; it may be read while serve
// runs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records returns the JSON log records written so far whose msg is msg.
func (l *logBuffer) records(msg string) []map[string]any {
	var recs []map[string]any
	for line := range strings.SplitSeq(l.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			recs = append(recs, rec)
		}
	}
	return recs
}

// waitLog waits until serve has logged msg n times and returns the nth
// record; it fails the test if serve exits first or takes too long.
func (p *process) waitLog(t *testing.T, msg string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if recs := p.stderr.records(msg); len(recs) >= n {
			return recs[n-1]
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("serve exited (%v) before logging %q %d times\n%s", err, msg, n, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q %d times in time\n%s", msg, n, p.stderr)
		}
	}
}

// running fails the test if serve has exited.
func (p *process) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited: %v\n%s", err, p.stderr)
	default:
	}
}

// startServe starts `ltikeys serve` on free ports and waits until it logs
// that it is serving.
func startServe(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	return startServeUntil(t, dir, env, "serving", args...)
}

// startServeUntil starts `ltikeys serve` on free ports and waits until it
// logs msg ("listening" once its listeners are up, "serving" once it is
// ready) with the listeners' addresses.
func startServeUntil(t *testing.T, dir string, env []string, msg string, args ...string) *process {
	t.Helper()
	p := spawnServe(t, dir, env, msg, args...)
	p.waitStarted(t)
	return p
}

// spawnServe starts `ltikeys serve` on free ports and returns at once; its
// started channel closes when serve logs msg with the listeners'
// addresses.
func spawnServe(t *testing.T, dir string, env []string, msg string, args ...string) *process {
	t.Helper()
	args = append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := command(context.Background(), dir, env, args...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &logBuffer{}, done: make(chan error, 1), started: make(chan struct{})}
	go func() {
		seen := false
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Bytes()
			p.stderr.Write(append(line, '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == msg && !seen {
				p.grpcAddr, _ = rec["grpc_addr"].(string)
				p.httpAddr, _ = rec["http_addr"].(string)
				p.metricsAddr, _ = rec["metrics_addr"].(string)
				close(p.started)
				seen = true
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return p
}

// waitStarted waits until serve has logged the message spawnServe was
// given, failing the test if it exits first or takes over 60s.
func (p *process) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-p.started:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited before serving: %v\n%s", err, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start in time\n%s", p.stderr)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM")
	}
}

// TestServeStartsWithNoConfiguration starts serve in an empty directory with
// nothing but free ports, as a newcomer would: it creates its data directory
// and a private master key file, serves an empty JWKS, and stops cleanly on
// SIGTERM.
func TestServeStartsWithNoConfiguration(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil)

	resp, err := http.Get("http://" + p.httpAddr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"keys":[]}` {
		t.Errorf("GET jwks = %d %s, want 200 {\"keys\":[]}", resp.StatusCode, body)
	}

	keyFile := filepath.Join(dir, "ltikeys-data", "master.keys")
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no generated master key file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("master key file mode = %#o, want 0600", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "ltikeys-data", "ltikeys.db")); err != nil {
		t.Errorf("no embedded database: %v", err)
	}
	secret, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// The log is complete, and no longer written to, once serve has exited.
	p.stop(t)
	for _, line := range strings.Split(string(secret), "\n") {
		if id, key, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			if strings.Contains(p.stderr.String(), key) {
				t.Errorf("the log contains master key %q's material", id)
			}
		}
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"postgres without master key", nil, []string{"--database-url", "postgres://postgres@127.0.0.1:1/none"}, "no master key configured"},
		{"bad key size", nil, []string{"--key-bits", "1024"}, "--key-bits"},
		{"bad key size from the environment", []string{"LTIKEYS_KEY_BITS=512"}, nil, "--key-bits"},
		{"malformed master keys", []string{"LTIKEYS_MASTER_KEYS=k1:not-base64"}, nil, "LTIKEYS_MASTER_KEYS"},
		{"all-zero master key", []string{"LTIKEYS_MASTER_KEYS=zero-1:" + strings.Repeat("A", 43) + "="}, nil, `key for "zero-1" is one byte value repeated`},
		{"no concurrent streams", nil, []string{"--grpc-max-concurrent-streams", "0"}, "--grpc-max-concurrent-streams"},
		{"no failure burst", []string{"LTIKEYS_AUTH_FAILURE_BURST=0"}, nil, "--auth-failure-burst"},
		{"negative staleness bound", nil, []string{"--jwks-max-stale", "-1s"}, "--jwks-max-stale"},
		{"negative JWKS coalescing", nil, []string{"--jwks-coalesce", "-1s"}, "--jwks-coalesce"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, tt.args...)
			out, err := command(context.Background(), t.TempDir(), tt.env, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("serve started; want a refusal\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, out)
			}
		})
	}
}
