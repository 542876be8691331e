package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestCLISuggestions checks that a misspelt command or flag is refused
// with the names it was probably meant as, for the root, for a group
// (which without its own check would print its help and succeed) and for
// a leaf command.
func TestCLISuggestions(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"subcommand of a group", []string{"key", "lst"}, `unknown command "lst" for "ltikeys key"; did you mean "list"?`},
		{"subcommand of another group", []string{"registration", "craete"}, `did you mean "create"?`},
		{"command", []string{"regstration", "list"}, `unknown command "regstration" for "ltikeys"; did you mean "registration"?`},
		{"no suggestion", []string{"key", "frobnicate"}, `unknown command "frobnicate" for "ltikeys key" (see 'ltikeys key --help')`},
		{"flag", []string{"key", "list", "--registraton-id", "x"}, "unknown flag: --registraton-id; did you mean --registration-id?"},
		{"flag with its value", []string{"key", "list", "--registraton-id=x"}, "did you mean --registration-id?"},
		{"abbreviated flag", []string{"sign", "jwt", "--claim", "{}"}, "did you mean --claims?"},
		{"inherited flag", []string{"key", "list", "--sever", "127.0.0.1:1"}, "did you mean --server?"},
		{"long flag with one dash", []string{"key", "list", "-registration-id", "x"}, "did you mean --registration-id? (long flags take two dashes)"},
		{"another command's flag", []string{"key", "list", "--issuer", "x"}, "--issuer is a flag of other commands (ltikeys key export, ltikeys platform token, ltikeys platform verify, ltikeys registration create, "},
		{"serve flag", []string{"serve", "--grpc-adr", "127.0.0.1:0"}, "did you mean --grpc-addr?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := wantCLIError(t, t.TempDir(), nil, tt.want, tt.args...)
			if res.stdout != "" {
				t.Errorf("stdout is not empty:\n%s", res.stdout)
			}
		})
	}
	// A group named alone still prints its help.
	if out := mustCLI(t, t.TempDir(), nil, "key").stdout; !strings.Contains(out, "Available Commands:") {
		t.Errorf("ltikeys key does not print its help:\n%s", out)
	}
}

// TestCLIConfigKeys checks the keys a --config file may hold: those of
// flags that have environment twins. A misspelt key names the key it was
// probably meant as; a flag that says what a command does is refused, not
// applied.
func TestCLIConfigKeys(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, text string
		args       []string
		want       string
	}{
		{"underscores", "grpc_addr: 127.0.0.1:0\n", []string{"serve", "--print-config"}, `unknown key "grpc_addr": keys are flag names without the dashes; did you mean "grpc-addr"?`},
		{"a typo", "grpc-adr: 127.0.0.1:0\n", []string{"serve", "--print-config"}, `unknown key "grpc-adr": keys are flag names without the dashes; did you mean "grpc-addr"?`},
		{"a typo of a client key", "sever: 127.0.0.1:1\n", []string{"key", "list"}, `did you mean "server"?`},
		{"a data flag of the command", "registration-id: x\n", []string{"key", "list", "--server", "127.0.0.1:1"}, `key "registration-id": --registration-id says what a command does, so it is given on the command line only`},
		{"a data flag of another command", "claims: '{}'\n", []string{"serve", "--print-config"}, `key "claims": --claims says what a command does`},
		{"-o", "output: json\n", []string{"registration", "list", "--server", "127.0.0.1:1"}, `key "output": --output says what a command does`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			writeFile(t, config, tt.text)
			wantCLIError(t, dir, nil, tt.want, append(tt.args, "--config", config)...)
		})
	}
}

// TestCLIDataFlagsIgnoreEnvironment exports the environment twin that
// --registration-id had: key list still lists every registration's keys,
// and says it ignored the variable, while the connection flags' twins
// still apply. --help shows a twin only for flags that have one.
func TestCLIDataFlagsIgnoreEnvironment(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil)
	var ids []string
	for _, clientID := range []string{"tool-a", "tool-b"} {
		var created ltikeysv1.CreateRegistrationResponse
		parseJSON(t, mustCLI(t, dir, nil, "registration", "create", "-o", "json", "--server", p.grpcAddr,
			"--issuer", "https://platform.example.com", "--client-id", clientID,
			"--auth-endpoint", "https://platform.example.com/auth",
			"--jwks-uri", "https://platform.example.com/jwks",
			"--token-endpoint", "https://platform.example.com/token").stdout, &created)
		ids = append(ids, created.GetRegistration().GetId())
	}
	env := []string{"LTIKEYS_SERVER=" + p.grpcAddr, "LTIKEYS_REGISTRATION_ID=" + ids[0], "LTIKEYS_OUTPUT=json"}
	res := mustCLI(t, dir, env, "key", "list")
	if !strings.Contains(res.stdout, "2 key(s)") || !strings.Contains(res.stdout, ids[0]) || !strings.Contains(res.stdout, ids[1]) {
		t.Errorf("key list with LTIKEYS_REGISTRATION_ID set does not list both registrations' keys as a table:\n%s", res.stdout)
	}
	for _, v := range []string{"LTIKEYS_REGISTRATION_ID", "LTIKEYS_OUTPUT"} {
		if !strings.Contains(res.stderr, "ignoring "+v) {
			t.Errorf("key list does not say it ignored %s:\n%s", v, res.stderr)
		}
	}
	// The flag itself still works.
	if out := mustCLI(t, dir, env, "key", "list", "--registration-id", ids[1]).stdout; !strings.Contains(out, "1 key(s)") || strings.Contains(out, ids[0]) {
		t.Errorf("key list --registration-id:\n%s", out)
	}

	help := mustCLI(t, dir, nil, "key", "list", "--help").stdout
	for _, want := range []string{"[$LTIKEYS_SERVER]", "[$LTIKEYS_TOKEN]", "[$LTIKEYS_TLS_CA]", "[$LTIKEYS_CONFIG]"} {
		if !strings.Contains(help, want) {
			t.Errorf("key list --help lacks %s:\n%s", want, help)
		}
	}
	for _, unwanted := range []string{"[$LTIKEYS_REGISTRATION_ID]", "[$LTIKEYS_STATE]", "[$LTIKEYS_PAGE_TOKEN]", "[$LTIKEYS_OUTPUT]", "[$LTIKEYS_HELP]"} {
		if strings.Contains(help, unwanted) {
			t.Errorf("key list --help shows %s:\n%s", unwanted, help)
		}
	}
	p.stop(t)
}

// TestCLITransportHints points the CLI at servers it cannot talk to, real
// listeners each: a TLS gRPC server, one that requires client
// certificates, a plaintext one, a plain HTTP/1.1 server, and a closed
// port. Each failure is UNAVAILABLE with one hint, the one that names its
// cause and the flag to change.
func TestCLITransportHints(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newCA(t, "server CA"), newCA(t, "client CA"), newCA(t, "other CA")
	serverCert, _ := serverCA.issue(t, 2, "localhost", true)
	clientCert, clientKeyPEM := clientCA.issue(t, 3, "reader", false)
	strayCert, strayKeyPEM := otherCA.issue(t, 4, "stray", false)
	certPEM := func(c tls.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	}
	files := map[string]string{
		"ca.crt": serverCA.pem(), "other-ca.crt": otherCA.pem(),
		"client.crt": certPEM(clientCert), "client.key": clientKeyPEM,
		"stray.crt": certPEM(strayCert), "stray.key": strayKeyPEM,
	}
	for name, text := range files {
		writeFile(t, filepath.Join(dir, name), text)
	}
	listen := func() net.Listener {
		t.Helper()
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return lis
	}
	serve := func(opts ...grpc.ServerOption) string {
		lis := listen()
		return startTokenRecorder(t, lis, lis.Addr().String(), opts...).addr
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.cert)
	tlsAddr := serve(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})))
	mtlsAddr := serve(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	plainAddr := serve()
	httpServer := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(httpServer.Close)
	httpAddr := httpServer.Listener.Addr().String()
	closed := listen()
	closedAddr := closed.Addr().String()
	closed.Close()

	const (
		speaksTLS    = "the server speaks TLS: pass --tls, or --tls-ca"
		asksCert     = "the server speaks TLS and asks for a client certificate: pass --tls-ca (or --tls) with --tls-client-cert and --tls-client-key"
		needsCert    = "the server requires a client certificate: pass --tls-client-cert and --tls-client-key"
		refusedCert  = "the server refused the client certificate (--tls-client-cert stray.crt"
		unverified   = `the server's certificate does not verify against --tls-ca other-ca.crt for the name "localhost"`
		plaintext    = "the server does not speak TLS (it answered in plaintext HTTP/2): drop --tls"
		httpListener = "this looks like the HTTP listener (serve's --http-addr), not gRPC: use --server 127.0.0.1:50051"
		notRunning   = "is 'ltikeys serve' running and listening there? (--server, LTIKEYS_SERVER)"
	)
	hints := []string{speaksTLS, asksCert, needsCert, refusedCert, unverified, plaintext, httpListener, notRunning}
	withCA := []string{"--tls-ca", "ca.crt", "--tls-server-name", "localhost"}
	for _, tt := range []struct {
		name   string
		server string
		args   []string
		want   string
	}{
		{"plaintext to TLS", tlsAddr, nil, speaksTLS},
		{"plaintext to mTLS", mtlsAddr, nil, asksCert},
		{"TLS without a client certificate to mTLS", mtlsAddr, withCA, needsCert},
		{"a client certificate of another CA to mTLS", mtlsAddr, append([]string{"--tls-client-cert", "stray.crt", "--tls-client-key", "stray.key"}, withCA...), refusedCert},
		{"TLS with the wrong CA", tlsAddr, []string{"--tls-ca", "other-ca.crt", "--tls-server-name", "localhost"}, unverified},
		{"TLS to plaintext", plainAddr, withCA, plaintext},
		{"plaintext to HTTP", httpAddr, nil, httpListener},
		{"TLS to HTTP", httpAddr, withCA, httpListener},
		{"closed port", closedAddr, nil, notRunning},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"registration", "list", "--server", tt.server}, tt.args...)
			res := wantCLIError(t, dir, nil, "UNAVAILABLE", args...)
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, res.stderr)
			}
			for _, other := range hints {
				if other != tt.want && strings.Contains(res.stderr, other) {
					t.Errorf("stderr also says %q:\n%s", other, res.stderr)
				}
			}
		})
	}

	// ltikeys jwks, pointed at the gRPC listener, or at nothing.
	res := wantCLIError(t, dir, nil, "this looks like the gRPC listener (serve's --grpc-addr), not the HTTP one: use --http-server http://127.0.0.1:8080", "jwks", "--http-server", "http://"+plainAddr)
	if strings.Contains(res.stderr, "is 'ltikeys serve' running") {
		t.Errorf("jwks against a gRPC listener asks whether serve runs:\n%s", res.stderr)
	}
	wantCLIError(t, dir, nil, "is 'ltikeys serve' running with its HTTP listener at http://"+closedAddr, "jwks", "--http-server", "http://"+closedAddr)

	// With the right flags the same servers are reached: the call gets as
	// far as authentication.
	for name, args := range map[string][]string{
		"TLS":  append([]string{"--server", tlsAddr}, withCA...),
		"mTLS": append([]string{"--server", mtlsAddr, "--tls-client-cert", "client.crt", "--tls-client-key", "client.key"}, withCA...),
	} {
		res := wantCLIError(t, dir, nil, "UNAUTHENTICATED", append([]string{"registration", "list"}, args...)...)
		for _, h := range hints {
			if strings.Contains(res.stderr, h) {
				t.Errorf("%s: a call that reached the server says %q:\n%s", name, h, res.stderr)
			}
		}
	}
}

// TestCLIVersion checks that "ltikeys version" and "ltikeys --version"
// print the same description of the binary, built with this test's Go.
func TestCLIVersion(t *testing.T) {
	out := mustCLI(t, t.TempDir(), nil, "version").stdout
	if flag := mustCLI(t, t.TempDir(), nil, "--version").stdout; flag != out {
		t.Errorf("ltikeys --version prints\n%s\nltikeys version prints\n%s", flag, out)
	}
	// A broken --config does not stop it: it reads only the binary.
	if again := mustCLI(t, t.TempDir(), []string{"LTIKEYS_CONFIG=/nonexistent.yaml"}, "version").stdout; again != out {
		t.Errorf("ltikeys version with a missing LTIKEYS_CONFIG prints\n%s", again)
	}
	fields := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ": ")
		if !ok || value == "" {
			t.Fatalf("line %q is not name: value\n%s", line, out)
		}
		fields[name] = value
	}
	if len(lines) != 4 || fields["version"] == "" || fields["commit"] == "" {
		t.Errorf("want version, commit, go and platform lines:\n%s", out)
	}
	if fields["go"] != runtime.Version() {
		t.Errorf("go: %q, want %q", fields["go"], runtime.Version())
	}
	if want := runtime.GOOS + "/" + runtime.GOARCH; fields["platform"] != want {
		t.Errorf("platform: %q, want %q", fields["platform"], want)
	}
}
