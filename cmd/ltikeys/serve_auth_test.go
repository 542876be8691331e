package main_test

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeGuardsKeyService starts serve with no configuration: it writes
// an admin token to the data directory without logging it, KeyService
// refuses calls without it and accepts them with it, JwksService and the
// health endpoints stay open, and a restart keeps the token.
func TestServeGuardsKeyService(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil)
	tokenPath := filepath.Join(dir, "ltikeys-data", "admin.token")
	info, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("no admin token file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin.token mode = %#o, want 0600", perm)
	}
	raw, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))

	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys := ltikeysv1.NewKeyServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := platformRegistration()
	if _, err := keys.CreateRegistration(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CreateRegistration without a token = %v, want UNAUTHENTICATED", err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	created, err := keys.CreateRegistration(authed, req)
	if err != nil {
		t.Fatalf("CreateRegistration with the admin token: %v", err)
	}
	if _, err := keys.GetToolKey(authed, &ltikeysv1.GetToolKeyRequest{
		Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: created.GetRegistration().GetId()}}); err != nil {
		t.Errorf("GetToolKey with the admin token: %v", err)
	}
	if _, err := ltikeysv1.NewJwksServiceClient(conn).GetJwks(ctx, &ltikeysv1.GetJwksRequest{}); err != nil {
		t.Errorf("GetJwks without a token: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/.well-known/jwks.json"} {
		resp, err := http.Get("http://" + p.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	p.stop(t)

	logs := p.stderr.String()
	if strings.Contains(logs, token) || strings.Contains(logs, strings.TrimPrefix(token, "ltk_")) {
		t.Errorf("the log holds the admin token")
	}
	if !strings.Contains(logs, tokenPath) {
		t.Errorf("the log does not name %s", tokenPath)
	}
	if !strings.Contains(logs, `"msg":"audit"`) || !strings.Contains(logs, `"caller":"admin"`) {
		t.Errorf("no audit line names the admin caller")
	}

	// A restart reuses the token.
	p = startServe(t, dir, nil)
	again, err := os.ReadFile(tokenPath)
	if err != nil || string(again) != string(raw) {
		t.Errorf("restart changed admin.token (%v)", err)
	}
	conn2, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := ltikeysv1.NewKeyServiceClient(conn2).RotateKey(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token),
		&ltikeysv1.RotateKeyRequest{RegistrationId: created.GetRegistration().GetId()}); err != nil {
		t.Errorf("RotateKey with the admin token after a restart: %v", err)
	}
	p.stop(t)
}

func TestServeRefusesPostgresWithoutTokens(t *testing.T) {
	out, err := command(context.Background(), t.TempDir(), []string{"LTIKEYS_MASTER_KEYS=" + masterKeyLine(t, "k1")},
		"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--database-url", "postgres://postgres@127.0.0.1:1/none").CombinedOutput()
	if err == nil {
		t.Fatalf("serve started; want a refusal\n%s", out)
	}
	if !strings.Contains(string(out), "no API credentials configured") {
		t.Errorf("output does not explain the refusal:\n%s", out)
	}
}

// TestServePlaintextOnlyOnLoopback starts serve's gRPC listener without
// TLS on every interface: it refuses, naming the TLS flags and
// --insecure-allow-plaintext, and writes nothing; with that flag, or its
// environment twin, it starts and warns. Loopback addresses need no flag,
// and with TLS every interface needs none either.
func TestServePlaintextOnlyOnLoopback(t *testing.T) {
	const insecureWarning = `"level":"WARN","msg":"INSECURE:`
	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			env  []string
			args []string
		}{
			{"flag", nil, []string{"--grpc-addr", "0.0.0.0:0"}},
			{"environment", []string{"LTIKEYS_GRPC_ADDR=0.0.0.0:0"}, nil},
			{"every interface, no host", nil, []string{"--grpc-addr", ":0"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				dir := t.TempDir()
				res := runCLI(t, dir, tt.env, append([]string{"serve", "--http-addr", "127.0.0.1:0"}, tt.args...)...)
				if res.exit == 0 {
					t.Fatalf("serve exited 0; want a refusal\n%s", res.stderr)
				}
				for _, want := range []string{"refusing to serve gRPC without TLS on ", "other hosts can reach", "set --tls-cert and --tls-key", "--insecure-allow-plaintext (LTIKEYS_INSECURE_ALLOW_PLAINTEXT=true)"} {
					if !strings.Contains(res.stderr, want) {
						t.Errorf("the refusal does not say %q:\n%s", want, res.stderr)
					}
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a refused start wrote %d files", len(entries))
				}
			})
		}
	})

	for _, tt := range []struct {
		name string
		env  []string
		args []string
		warn bool
	}{
		{"allowed by flag", nil, []string{"--grpc-addr", "0.0.0.0:0", "--insecure-allow-plaintext"}, true},
		{"allowed by environment", []string{"LTIKEYS_INSECURE_ALLOW_PLAINTEXT=true"}, []string{"--grpc-addr", "0.0.0.0:0"}, true},
		{"IPv4 loopback", nil, []string{"--grpc-addr", "127.0.0.1:0"}, false},
		{"IPv6 loopback", nil, []string{"--grpc-addr", "[::1]:0"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startServe(t, t.TempDir(), tt.env, tt.args...)
			p.stop(t)
			if got := strings.Contains(p.stderr.String(), insecureWarning); got != tt.warn {
				t.Errorf("INSECURE warning logged: %v, want %v\n%s", got, tt.warn, p.stderr)
			}
		})
	}

	t.Run("TLS on every interface", func(t *testing.T) {
		dir := t.TempDir()
		cert, keyPEM := newCA(t, "server CA").issue(t, 2, "localhost", true)
		certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})))
		writeFile(t, keyFile, keyPEM)
		p := startServe(t, dir, nil, "--grpc-addr", "0.0.0.0:0", "--tls-cert", certFile, "--tls-key", keyFile)
		p.stop(t)
		if strings.Contains(p.stderr.String(), insecureWarning) {
			t.Errorf("warned about plaintext with TLS on:\n%s", p.stderr)
		}
	})
}
