package main_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// tokenRecorder is a gRPC server that answers every call UNAUTHENTICATED
// and keeps the authorization metadata each call carried.
type tokenRecorder struct {
	addr  string
	mu    sync.Mutex
	calls [][]string
}

func startTokenRecorder(t *testing.T, lis net.Listener, addr string, opts ...grpc.ServerOption) *tokenRecorder {
	t.Helper()
	r := &tokenRecorder{addr: addr}
	srv := grpc.NewServer(append(opts, grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(stream.Context())
		r.mu.Lock()
		r.calls = append(r.calls, md.Get("authorization"))
		r.mu.Unlock()
		return status.Error(codes.Unauthenticated, "recorded")
	}))...)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return r
}

// last returns the authorization values of the latest call, failing the
// test if no call arrived.
func (r *tokenRecorder) last(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatalf("no call reached %s", r.addr)
	}
	return r.calls[len(r.calls)-1]
}

// listenBeyondLoopback listens on an address that the CLI does not take
// for loopback, and returns it as --server should name it: one of this
// machine's own non-loopback addresses, reached as another host would be;
// or, on a machine with none, a loopback listener reached through 0.0.0.0,
// which Linux connects to the local host.
func listenBeyondLoopback(t *testing.T) (net.Listener, string) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || !ipnet.IP.IsGlobalUnicast() {
			continue
		}
		if lis, err := net.Listen("tcp", net.JoinHostPort(ipnet.IP.String(), "0")); err == nil {
			return lis, lis.Addr().String()
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return lis, net.JoinHostPort("0.0.0.0", port)
}

// writeAdminToken writes dir/ltikeys-data/admin.token as a local serve
// would, and returns the token.
func writeAdminToken(t *testing.T, dir string) string {
	t.Helper()
	token := "ltk_" + rand.Text()
	if err := os.MkdirAll(filepath.Join(dir, "ltikeys-data"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ltikeys-data", "admin.token"), token+"\n")
	return token
}

// TestCLITokenSources runs the CLI from a directory holding a local
// serve's admin.token against servers that record what they receive: the
// token goes to a loopback server only, and never along with a client
// certificate; --token, LTIKEYS_TOKEN and a --config file's token go
// everywhere, in that precedence. Each UNAUTHENTICATED error names the
// token's source and never holds the token.
func TestCLITokenSources(t *testing.T) {
	dir := t.TempDir()
	dataDirToken := writeAdminToken(t, dir)
	flagToken, envToken, fileToken := "ltk_flag-"+rand.Text(), "ltk_env-"+rand.Text(), "ltk_file-"+rand.Text()
	config := filepath.Join(dir, "client.yaml")
	writeFile(t, config, "token: "+fileToken+"\n")

	lis, addr := listenBeyondLoopback(t)
	remote := startTokenRecorder(t, lis, addr)
	loopbackLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopback := startTokenRecorder(t, loopbackLis, loopbackLis.Addr().String())

	// A TLS server on loopback that asks for client certificates.
	serverCA, clientCA := newCA(t, "server CA"), newCA(t, "client CA")
	serverCert, _ := serverCA.issue(t, 2, "localhost", true)
	clientCert, clientKeyPEM := clientCA.issue(t, 3, "reader", false)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writeFile(t, caFile, serverCA.pem())
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCert.Certificate[0]})))
	writeFile(t, keyFile, clientKeyPEM)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.cert)
	tlsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mtls := startTokenRecorder(t, tlsLis, tlsLis.Addr().String(), grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	withCert := []string{"--tls-ca", caFile, "--tls-server-name", "localhost", "--tls-client-cert", certFile, "--tls-client-key", keyFile}

	for _, tt := range []struct {
		name   string
		server *tokenRecorder
		env    []string
		args   []string
		// want is the token the server must receive, "" for none.
		want string
		// hint is what the error must say of the token it sent.
		hint []string
	}{
		{"data directory, another host", remote, nil, nil, "", []string{"the call carried no token", "admin.token is sent only to a loopback --server", addr}},
		{"--token, another host", remote, nil, []string{"--token", flagToken}, flagToken, []string{"the call carried the token from --token"}},
		{"LTIKEYS_TOKEN, another host", remote, []string{"LTIKEYS_TOKEN=" + envToken}, nil, envToken, []string{"the call carried the token from LTIKEYS_TOKEN"}},
		{"--token over LTIKEYS_TOKEN", remote, []string{"LTIKEYS_TOKEN=" + envToken}, []string{"--token", flagToken}, flagToken, []string{"the call carried the token from --token"}},
		{"LTIKEYS_TOKEN over --config", remote, []string{"LTIKEYS_TOKEN=" + envToken}, []string{"--config", config}, envToken, []string{"the call carried the token from LTIKEYS_TOKEN"}},
		{"--config, another host", remote, nil, []string{"--config", config}, fileToken, []string{"the call carried the token from the --config file"}},

		{"data directory, loopback", loopback, nil, nil, dataDirToken, []string{"the call carried the token from the data directory", filepath.Join("ltikeys-data", "admin.token")}},
		{"no data directory, loopback", loopback, nil, []string{"--data-dir", filepath.Join(dir, "elsewhere")}, "", []string{"the call carried no token", "run in the directory of a local 'ltikeys serve'"}},
		{"--token, loopback", loopback, nil, []string{"--token", flagToken}, flagToken, []string{"the call carried the token from --token"}},

		{"client certificate", mtls, nil, withCert, "", []string{"the call carried no token", "not sent with a client certificate"}},
		{"client certificate and LTIKEYS_TOKEN", mtls, []string{"LTIKEYS_TOKEN=" + envToken}, withCert, envToken, []string{"the call carried the token from LTIKEYS_TOKEN"}},
		{"client certificate and --token", mtls, nil, append([]string{"--token", flagToken}, withCert...), flagToken, []string{"the call carried the token from --token"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"registration", "list", "--server", tt.server.addr}, tt.args...)
			res := wantCLIError(t, dir, tt.env, "UNAUTHENTICATED", args...)
			got := tt.server.last(t)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("the server received authorization %d time(s), want none", len(got))
			case tt.want != "" && (len(got) != 1 || got[0] != "Bearer "+tt.want):
				t.Errorf("the server did not receive exactly the expected token (%d authorization values)", len(got))
			}
			for _, want := range tt.hint {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
				}
			}
			for _, token := range []string{dataDirToken, flagToken, envToken, fileToken} {
				if strings.Contains(res.stderr, token) || strings.Contains(res.stdout, token) {
					t.Errorf("the output holds a token:\n%s", res.stderr)
				}
			}
		})
	}
}

// TestCLIClientCertificateBesideStaleAdminToken runs serve with mTLS and a
// certificate identity, from a directory still holding the admin.token of
// an earlier start without them. The CLI presenting its certificate there
// is served: the stale token is not sent, so it cannot stand in for the
// certificate and be refused.
func TestCLIClientCertificateBesideStaleAdminToken(t *testing.T) {
	dir := t.TempDir()
	writeAdminToken(t, dir)
	serverCA, clientCA := newCA(t, "server CA"), newCA(t, "client CA")
	serverCert, serverKeyPEM := serverCA.issue(t, 2, "localhost", true)
	clientCert, clientKeyPEM := clientCA.issue(t, 3, "reader", false)
	files := map[string]string{
		"server.crt":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCert.Certificate[0]})),
		"server.key":    serverKeyPEM,
		"client-ca.crt": clientCA.pem(),
		"scopes":        "cn:reader:keys.read\n",
		"ca.crt":        serverCA.pem(),
		"client.crt":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCert.Certificate[0]})),
		"client.key":    clientKeyPEM,
	}
	for name, text := range files {
		writeFile(t, filepath.Join(dir, name), text)
	}
	p := startServe(t, dir, nil, "--tls-cert", "server.crt", "--tls-key", "server.key",
		"--client-ca", "client-ca.crt", "--client-cert-scopes-file", "scopes")
	out := mustCLI(t, dir, nil, "registration", "list", "--server", p.grpcAddr,
		"--tls-ca", "ca.crt", "--tls-server-name", "localhost", "--tls-client-cert", "client.crt", "--tls-client-key", "client.key").stdout
	if !strings.Contains(out, "0 registration") {
		t.Errorf("registration list with the client certificate:\n%s", out)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), `"caller":"cn:reader"`) {
		t.Errorf("the audit line does not name the certificate's identity:\n%s", p.stderr)
	}
}
