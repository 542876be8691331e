package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// switchProxy is a TCP proxy to target that, until enabled, accepts and at
// once closes every connection: a database that is down.
type switchProxy struct {
	ln      net.Listener
	target  string
	enabled atomic.Bool
	wg      sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.enabled.Load() {
				c.Close()
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) forward(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// TestHealthWaitsForDatabase starts serve against a PostgreSQL server that
// is down: it listens at once and answers health checks NOT_SERVING,
// /readyz 503 and KeyService UNAVAILABLE, then turns SERVING by itself once
// the database comes up, and serves calls.
func TestHealthWaitsForDatabase(t *testing.T) {
	dbURL := storagetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	proxy := newSwitchProxy(t, target)
	u.Host = proxy.ln.Addr().String()

	const token = "ltk_health-test-token"
	sum := sha256.Sum256([]byte(token))
	env := []string{
		"LTIKEYS_MASTER_KEYS=" + masterKeyLine(t, "k1"),
		"LTIKEYS_TOKENS=ops:keys.admin:" + hex.EncodeToString(sum[:]),
		"LTIKEYS_DATABASE_URL=" + u.String(),
	}
	p := startServeUntil(t, t.TempDir(), env, "listening", "--metrics-addr", "127.0.0.1:0")

	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	health := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		return resp.GetStatus()
	}

	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health while the database is down = %v, want NOT_SERVING", got)
	}
	for path, want := range map[string]int{
		"/healthz": 200, "/readyz": 503, "/.well-known/jwks.json": 503,
		"/registrations/0190a5c0-0000-7000-8000-0000000000ff/jwks.json": 503, "/nowhere": 404,
	} {
		if code, _ := httpGet(t, "http://"+p.httpAddr+path); code != want {
			t.Errorf("GET %s while the database is down = %d, want %d", path, code, want)
		}
	}
	_, err = ltikeysv1.NewJwksServiceClient(conn).GetJwks(ctx, &ltikeysv1.GetJwksRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetJwks while the database is down = %v, want UNAVAILABLE", err)
	}
	wantCLIError(t, t.TempDir(), []string{"LTIKEYS_TOKEN=" + token, "LTIKEYS_SERVER=" + p.grpcAddr}, "UNAVAILABLE", "key", "rotate", "--registration-id", "0190a5c0-0000-7000-8000-0000000000ff")

	// Let serve's retries through; the watch must see SERVING without
	// anyone polling /readyz.
	proxy.enabled.Store(true)
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("health watch ended before SERVING: %v", err)
		}
		if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	if code, _ := httpGet(t, "http://"+p.httpAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz once the database is up = %d, want 200", code)
	}
	mustCLI(t, t.TempDir(), []string{"LTIKEYS_TOKEN=" + token, "LTIKEYS_SERVER=" + p.grpcAddr},
		"registration", "create", "--issuer", "https://platform.example.com", "--client-id", "tool",
		"--auth-endpoint", "https://platform.example.com/auth", "--jwks-uri", "https://platform.example.com/jwks",
		"--token-endpoint", "https://platform.example.com/token")
	if _, metrics := httpGet(t, "http://"+p.metricsAddr+"/metrics"); !strings.Contains(metrics, `ltikeys_storage_errors_total{op="open"}`) {
		t.Errorf("/metrics does not count the failed connections")
	}
	p.stop(t)
}

// TestPrintConfig checks the precedence flag > environment > file > default
// in --print-config's output, that the output is itself a config file, and
// that no secret appears in it.
func TestPrintConfig(t *testing.T) {
	dir := t.TempDir()
	const (
		masterKey = "k1:c2VjcmV0LW1hc3Rlci1rZXktbWF0ZXJpYWwtMzJieXRlcyE="
		tokenHash = "ops:keys.admin:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
	)
	config := filepath.Join(dir, "ltikeys.yaml")
	if err := os.WriteFile(config, []byte("grpc-addr: 0.0.0.0:7001\nhttp-addr: 0.0.0.0:7002\nkey-bits: 3072\nreflection: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"LTIKEYS_MASTER_KEYS=" + masterKey,
		"LTIKEYS_TOKENS=" + tokenHash,
		"LTIKEYS_HTTP_ADDR=127.0.0.1:7003",
		"LTIKEYS_DATABASE_URL=postgres://ltikeys:pg-s3cret@db.internal:5432/ltikeys?sslmode=verify-full&sslpassword=ssl-s3cret",
	}
	out := mustCLI(t, dir, env, "serve", "--config", config, "--key-bits", "4096", "--print-config").stdout
	for _, secret := range []string{"c2VjcmV0LW1hc3Rlci1rZXktbWF0ZXJpYWwtMzJieXRlcyE", "5e884898da28047151d0e56f8dc6292773603d0d", "pg-s3cret", "ssl-s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("--print-config prints a secret (%s):\n%s", secret, out)
		}
	}
	for _, want := range []string{
		`grpc-addr: "0.0.0.0:7001" # file ` + config,
		`http-addr: "127.0.0.1:7003" # env LTIKEYS_HTTP_ADDR`,
		`key-bits: 4096 # flag`,
		`reflection: false # file`,
		`shutdown-timeout: 15s # default`,
		`database-url: "postgres://ltikeys:REDACTED@db.internal:5432/ltikeys?sslmode=verify-full&sslpassword=REDACTED" # env`,
		`# LTIKEYS_MASTER_KEYS: set (value redacted)`,
		`# LTIKEYS_TOKENS: set (value redacted)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}

	// The output is a configuration file that gives the same values.
	printed := filepath.Join(dir, "printed.yaml")
	if err := os.WriteFile(printed, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	again := mustCLI(t, dir, nil, "serve", "--config", printed, "--print-config").stdout
	for _, want := range []string{`http-addr: "127.0.0.1:7003" # file`, `key-bits: 4096 # file`} {
		if !strings.Contains(again, want) {
			t.Errorf("re-reading the printed config: lacks %q:\n%s", want, again)
		}
	}

	// A key that is no flag is refused.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("grpc-adr: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCLIError(t, dir, nil, `unknown key "grpc-adr"`, "serve", "--config", bad, "--print-config")
}
