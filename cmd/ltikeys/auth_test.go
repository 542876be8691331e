package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
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
	"google.golang.org/grpc/test/bufconn"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// unsetEnv unsets the variables for the test, restoring them after.
func unsetEnv(t *testing.T, names ...string) {
	for _, name := range names {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

func captureLog() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// TestGeneratedAdminToken starts the embedded default twice: the first start
// generates an admin token, the second reuses it, and the options it returns
// guard KeyService with it.
func TestGeneratedAdminToken(t *testing.T) {
	unsetEnv(t, tokensEnv, certScopesEnv)
	dir := filepath.Join(t.TempDir(), "data")
	store := &storeOptions{dataDir: dir}
	var auth authOptions

	log, logs := captureLog()
	access, err := auth.accessControl(log, store, "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	tokenPath, hashPath := filepath.Join(dir, adminTokenFileName), filepath.Join(dir, generatedTokensName)
	for _, p := range []string{tokenPath, hashPath} {
		if mode := fileMode(t, p); mode != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", p, mode)
		}
	}
	raw, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(token, server.TokenPrefix) || len(token) < 40 {
		t.Fatalf("admin.token holds %d characters, want an %s token", len(token), server.TokenPrefix)
	}
	hashes, err := os.ReadFile(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(hashes), token) {
		t.Errorf("the token file holds the token itself")
	}
	tokens, err := server.ParseTokens(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 1 || tokens[0].Name != "admin" || tokens[0].Hash != server.HashToken(token) ||
		tokens[0].Line() != "admin:keys.admin,keys.read,keys.read_private,keys.sign,platform.token,platform.verify:"+server.HashToken(token) {
		t.Errorf("token file = %+v, want admin with keys.admin,keys.read,keys.read_private,keys.sign,platform.token,platform.verify and the token's hash", tokens)
	}
	if !strings.Contains(logs.String(), tokenPath) {
		t.Errorf("the log does not name %s:\n%s", tokenPath, logs)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log holds the token")
	}
	checkGuarded(t, access.serverOptions(), token)

	log, logs = captureLog()
	access, err = auth.accessControl(log, store, "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(tokenPath)
	if err != nil || !bytes.Equal(again, raw) {
		t.Errorf("second start changed admin.token (%v)", err)
	}
	if now, _ := os.ReadFile(hashPath); !bytes.Equal(now, hashes) {
		t.Errorf("second start changed the token file")
	}
	if strings.Contains(logs.String(), token) || !strings.Contains(logs.String(), hashPath) {
		t.Errorf("second start log should name %s and not hold the token:\n%s", hashPath, logs)
	}
	checkGuarded(t, access.serverOptions(), token)

	// A lost hash file with the token still there is not papered over.
	if err := os.Remove(hashPath); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.accessControl(log, store, "127.0.0.1:50051"); err == nil || !strings.Contains(err.Error(), tokenPath) {
		t.Errorf("admin.token without the token file: err = %v, want one naming %s", err, tokenPath)
	}
}

// checkGuarded serves KeyService with opts on an embedded database and
// checks that token opens it and nothing else does.
func checkGuarded(t *testing.T, opts []grpc.ServerOption, token string) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mk, err := crypto.GenerateMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.NewKeyring(mk)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: kr, KeyBits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(opts...)
	ltikeysv1.RegisterKeyServiceServer(srv, keys)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ltikeysv1.NewKeyServiceClient(conn)
	req := &ltikeysv1.CreateRegistrationRequest{
		Issuer: "https://platform.example.com", ClientId: "c-" + rand.Text(),
		AuthEndpoint: "https://platform.example.com/auth", JwksUri: "https://platform.example.com/jwks", TokenEndpoint: "https://platform.example.com/token",
	}
	if _, err := client.CreateRegistration(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v, want UNAUTHENTICATED", err)
	}
	if _, err := client.CreateRegistration(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), req); err != nil {
		t.Errorf("with the admin token: %v", err)
	}
}

func TestPostgresWithoutCredentialsRefusesToStart(t *testing.T) {
	unsetEnv(t, tokensEnv, certScopesEnv)
	dir := t.TempDir()
	store := &storeOptions{databaseURL: "postgres://db.example/ltikeys", dataDir: dir}
	var auth authOptions
	log, _ := captureLog()
	_, err := auth.accessControl(log, store, "127.0.0.1:50051")
	if err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("err = %v, want a refusal naming --token-file", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused start wrote %d files to the data directory", len(entries))
	}

	t.Setenv(tokensEnv, "ci:keys.read:"+server.HashToken("t1")+";ops:keys.admin:"+server.HashToken("t2"))
	if _, err := auth.accessControl(log, store, "127.0.0.1:50051"); err != nil {
		t.Errorf("PostgreSQL with %s: %v", tokensEnv, err)
	}
}

func TestAuthOptionErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("tokens", "ci:keys.read:"+server.HashToken("t")+"\n", 0o600)
	certFile, keyFile, caFile := writeTLSFiles(t, dir)
	scopes := write("scopes", "cn:client:keys.read\n", 0o600)

	for _, tt := range []struct {
		name string
		opts authOptions
		env  map[string]string
		want string
	}{
		{"file and env", authOptions{tokenFile: good}, map[string]string{tokensEnv: "x"}, tokensEnv},
		{"empty file", authOptions{tokenFile: write("empty", "# nothing\n", 0o600)}, nil, "no tokens"},
		{"group-writable file", authOptions{tokenFile: write("writable", "ci:keys.read:"+server.HashToken("t")+"\n", 0o620)}, nil, "writable"},
		{"bad line", authOptions{tokenFile: write("bad", "ci:keys.read:ltk_secret\n", 0o600)}, nil, "bad"},
		{"empty env", authOptions{}, map[string]string{tokensEnv: ""}, "no tokens"},
		{"missing file", authOptions{tokenFile: filepath.Join(dir, "nope")}, nil, "nope"},
		{"cert without key", authOptions{tokenFile: good, tlsCert: certFile}, nil, "--tls-key"},
		{"client CA without TLS", authOptions{tokenFile: good, clientCA: caFile}, nil, "--tls-cert"},
		{"scopes without client CA", authOptions{tokenFile: good, tlsCert: certFile, tlsKey: keyFile, certScopesFile: scopes}, nil, "--client-ca"},
		{"CA file without certificates", authOptions{tokenFile: good, tlsCert: certFile, tlsKey: keyFile, clientCA: good}, nil, "no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			unsetEnv(t, tokensEnv, certScopesEnv)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			log, _ := captureLog()
			_, err := tt.opts.accessControl(log, &storeOptions{dataDir: t.TempDir()}, "127.0.0.1:50051")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "ltk_secret") {
				t.Errorf("the error repeats a token: %v", err)
			}
		})
	}

	t.Run("mTLS with certificate scopes", func(t *testing.T) {
		unsetEnv(t, tokensEnv, certScopesEnv)
		log, logs := captureLog()
		opts := authOptions{tlsCert: certFile, tlsKey: keyFile, clientCA: caFile, certScopesFile: scopes}
		dataDir := t.TempDir()
		if _, err := opts.accessControl(log, &storeOptions{dataDir: dataDir}, "0.0.0.0:50051"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "INSECURE") {
			t.Errorf("warned about plaintext with TLS on:\n%s", logs)
		}
		if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
			t.Errorf("generated a token although certificate identities are configured")
		}
	})
}

// TestPlaintextListener checks which gRPC listen addresses serve without
// TLS: loopback ones freely, others only with --insecure-allow-plaintext,
// and then with an INSECURE warning; otherwise the error names the TLS
// flags and --insecure-allow-plaintext.
func TestPlaintextListener(t *testing.T) {
	unsetEnv(t, tokensEnv, certScopesEnv)
	t.Setenv(tokensEnv, "ci:keys.read:"+server.HashToken("t"))
	for addr, loopback := range map[string]bool{
		"127.0.0.1:50051": true,
		"127.0.0.2:50051": true,
		"[::1]:50051":     true,
		"localhost:50051": true,
		"0.0.0.0:50051":   false,
		":50051":          false,
		"[::]:50051":      false,
		"10.0.0.5:50051":  false,
		"keys.internal:1": false,
	} {
		for _, allow := range []bool{false, true} {
			log, logs := captureLog()
			opts := &authOptions{insecureAllowPlaintext: allow}
			_, err := opts.accessControl(log, &storeOptions{dataDir: t.TempDir()}, addr)
			if refuse := !loopback && !allow; refuse {
				if err == nil {
					t.Errorf("%s without TLS or --insecure-allow-plaintext: started, want a refusal", addr)
					continue
				}
				for _, want := range []string{"refusing to serve gRPC without TLS on " + addr, "--tls-cert", "--tls-key", "--insecure-allow-plaintext"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: the refusal %q does not say %q", addr, err, want)
					}
				}
				if opts.checkPlaintext(addr) == nil {
					t.Errorf("%s: checkPlaintext passes what accessControl refuses", addr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s, --insecure-allow-plaintext=%v: %v", addr, allow, err)
				continue
			}
			if got := strings.Contains(logs.String(), `level=WARN msg="INSECURE:`); got != !loopback {
				t.Errorf("%s, --insecure-allow-plaintext=%v: warned %v, want %v:\n%s", addr, allow, got, !loopback, logs)
			}
		}
	}
}

// writeTLSFiles writes a CA and a server certificate and key it issued, as
// PEM files in dir.
func writeTLSFiles(t *testing.T, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ltikeys"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return writePEM("server.crt", "CERTIFICATE", der), writePEM("server.key", "PRIVATE KEY", keyDER), writePEM("ca.crt", "CERTIFICATE", caDER)
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.1.2.3:1": true, "[::1]:1": true, "LOCALHOST:1": true,
		":1": false, "0.0.0.0:1": false, "[::]:1": false, "192.168.1.1:1": false, "example.com:1": false, "garbage": false,
	} {
		if got := isLoopbackAddr(addr); got != want {
			t.Errorf("isLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestReloadAccessControl reloads the access control of a listener with a
// token file, client certificate scopes and TLS files: a good reload swaps
// all of them and logs one INFO line without secrets; every bad one fails,
// logs why at ERROR and leaves the previous set in force.
func TestReloadAccessControl(t *testing.T) {
	unsetEnv(t, tokensEnv, certScopesEnv)
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Base(to), string(b), 0o600)
	}
	line := func(name, token string) string { return name + ":keys.read:" + server.HashToken(token) + "\n" }
	firstDir, secondDir := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	for _, d := range []string{firstDir, secondDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	firstCert, firstKey, firstCA := writeTLSFiles(t, firstDir)
	secondCert, secondKey, _ := writeTLSFiles(t, secondDir)
	opts := authOptions{
		tokenFile:      write("tokens", line("a", "ltk_a")+line("b", "ltk_b"), 0o600),
		certScopesFile: write("scopes", "cn:old:keys.read\n", 0o600),
		tlsCert:        filepath.Join(dir, "server.crt"),
		tlsKey:         filepath.Join(dir, "server.key"),
		clientCA:       filepath.Join(dir, "ca.crt"),
	}
	copyFile(firstCert, opts.tlsCert)
	copyFile(firstKey, opts.tlsKey)
	copyFile(firstCA, opts.clientCA)

	log, logs := captureLog()
	access, err := opts.accessControl(log, &storeOptions{dataDir: t.TempDir()}, "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	code := func(token string) codes.Code {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
		_, err := access.auth.UnaryInterceptor()(ctx, &ltikeysv1.ListRegistrationsRequest{},
			&grpc.UnaryServerInfo{FullMethod: ltikeysv1.KeyService_ListRegistrations_FullMethodName},
			func(context.Context, any) (any, error) { return &ltikeysv1.ListRegistrationsResponse{}, nil })
		return status.Code(err)
	}
	servedCert := func() []byte { return access.tls.Load().Certificates[0].Certificate[0] }
	certDER := func(path string) []byte {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".crt")+".key")
		if err != nil {
			t.Fatal(err)
		}
		return pair.Certificate[0]
	}

	// A good reload: a removed, b kept, c added, the second certificate.
	write("tokens", line("b", "ltk_b")+line("c", "ltk_c"), 0o600)
	write("scopes", "cn:new:keys.read\ncn:other:keys.read\n", 0o600)
	copyFile(secondCert, opts.tlsCert)
	copyFile(secondKey, opts.tlsKey)
	logs.Reset()
	if err := access.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	want := `level=INFO msg="reloaded access control" token_source=` + opts.tokenFile + ` tokens=2 client_cert_identities=2 tls=true tls_cert_serial=2 `
	if got := logs.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(strings.SplitN(got, " ", 2)[1], want) {
		t.Errorf("reload log = %q, want one line starting %q", got, want)
	}
	if strings.Contains(logs.String(), server.HashToken("ltk_b")) {
		t.Errorf("the reload log holds a token hash")
	}
	for token, want := range map[string]codes.Code{"ltk_a": codes.Unauthenticated, "ltk_b": codes.OK, "ltk_c": codes.OK} {
		if got := code(token); got != want {
			t.Errorf("after the reload, %s = %v, want %v", token, got, want)
		}
	}
	if !bytes.Equal(servedCert(), certDER(secondCert)) {
		t.Errorf("after the reload, new handshakes do not get the second certificate")
	}

	// Bad reloads: each keeps b, c and the second certificate.
	good := line("b", "ltk_b") + line("c", "ltk_c")
	for _, tt := range []struct {
		name  string
		spoil func()
		want  string
	}{
		{"bad token line", func() { write("tokens", good+"d:keys.read:ltk_secret\n", 0o600) }, "line 3 (d)"},
		{"unknown scope", func() { write("tokens", good+"d:keys.all:"+server.HashToken("ltk_d")+"\n", 0o600) }, "unknown scope"},
		{"empty token file", func() { write("tokens", "# revoked everything\n", 0o600) }, "no tokens"},
		{"group-writable token file", func() { write("tokens", good, 0o620) }, "writable by group or others"},
		{"missing token file", func() { os.Remove(opts.tokenFile) }, "no such file"},
		{"bad scopes line", func() { write("scopes", "new:keys.read\n", 0o600) }, "want uri:URI, dns:NAME or cn:NAME"},
		{"key of another certificate", func() { copyFile(firstKey, opts.tlsKey) }, "private key does not match public key"},
		{"unreadable certificate", func() { write("server.crt", "not PEM\n", 0o600) }, "--tls-cert/--tls-key"},
		{"client CA file without certificates", func() { write("ca.crt", "nothing\n", 0o600) }, "holds no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			write("tokens", good, 0o600)
			write("scopes", "cn:new:keys.read\n", 0o600)
			copyFile(secondCert, opts.tlsCert)
			copyFile(secondKey, opts.tlsKey)
			copyFile(firstCA, opts.clientCA)
			tt.spoil()
			logs.Reset()
			err := access.reload()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("reload: err = %v, want one containing %q", err, tt.want)
			}
			got := logs.String()
			if !strings.Contains(got, `level=ERROR msg="reload failed; keeping the previous access control"`) ||
				!strings.Contains(got, tt.want) || strings.Contains(got, "level=INFO") {
				t.Errorf("reload log = %q, want one ERROR line saying %q", got, tt.want)
			}
			if strings.Contains(got, "ltk_secret") {
				t.Errorf("the reload log holds a token")
			}
			for token, want := range map[string]codes.Code{"ltk_a": codes.Unauthenticated, "ltk_b": codes.OK, "ltk_c": codes.OK} {
				if got := code(token); got != want {
					t.Errorf("after the failed reload, %s = %v, want %v", token, got, want)
				}
			}
			if !bytes.Equal(servedCert(), certDER(secondCert)) {
				t.Errorf("after the failed reload, new handshakes do not get the second certificate")
			}
		})
	}
}

// TestReloadGeneratedAndEnvironmentTokens reloads the embedded default,
// whose <data-dir>/tokens is read again, and tokens from LTIKEYS_TOKENS,
// which stay as they were.
func TestReloadGeneratedAndEnvironmentTokens(t *testing.T) {
	unsetEnv(t, tokensEnv, certScopesEnv)
	dataDir := t.TempDir()
	log, logs := captureLog()
	access, err := (&authOptions{}).accessControl(log, &storeOptions{dataDir: dataDir}, "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, generatedTokensName)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("ci:keys.read:" + server.HashToken("ltk_ci") + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	logs.Reset()
	if err := access.reload(); err != nil {
		t.Fatal(err)
	}
	if want := "token_source=" + path + " tokens=2 "; !strings.Contains(logs.String(), want) {
		t.Errorf("reload log = %q, want %q", logs, want)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 2 {
		t.Errorf("the reload changed the data directory: %d files, want 2", len(entries))
	}

	t.Setenv(tokensEnv, "ci:keys.read:"+server.HashToken("t1")+";ops:keys.admin:"+server.HashToken("t2"))
	access, err = (&authOptions{}).accessControl(log, &storeOptions{dataDir: t.TempDir()}, "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := access.reload(); err != nil {
		t.Fatal(err)
	}
	if want := "token_source=" + tokensEnv + " tokens=2 client_cert_identities=0 tls=false\n"; !strings.Contains(logs.String(), want) {
		t.Errorf("reload log = %q, want %q", logs, want)
	}
}
