package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// The log messages of a reload.
const (
	reloadedMsg     = "reloaded access control"
	reloadFailedMsg = "reload failed; keeping the previous access control"
)

// hangup sends serve SIGHUP.
func (p *process) hangup(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes a file of mode 0600.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReloadsTokensOnHangup revokes and adds tokens in a running serve:
// after SIGHUP a removed token is refused and kept and added ones work; a
// broken token file is refused, logged, and the previous tokens stay in
// force with serve still running.
func TestServeReloadsTokensOnHangup(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		token, err := server.GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = token
	}
	line := func(name string) string { return name + ":keys.read:" + server.HashToken(tokens[name]) + "\n" }
	tokenFile := filepath.Join(dir, "tokens")
	writeFile(t, tokenFile, line("a")+line("b"))
	p := startServe(t, dir, nil, "--token-file", tokenFile)

	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys := ltikeysv1.NewKeyServiceClient(conn)
	check := func(when string, want map[string]codes.Code) {
		t.Helper()
		for name, code := range want {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := keys.ListRegistrations(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tokens[name]), &ltikeysv1.ListRegistrationsRequest{})
			cancel()
			if got := status.Code(err); got != code {
				t.Errorf("%s: ListRegistrations with token %s = %v, want %v", when, name, err, code)
			}
		}
	}
	check("at start", map[string]codes.Code{"a": codes.OK, "b": codes.OK, "c": codes.Unauthenticated})

	writeFile(t, tokenFile, line("b")+line("c"))
	p.hangup(t)
	rec := p.waitLog(t, reloadedMsg, 1)
	if rec["level"] != "INFO" || rec["tokens"] != 2.0 || rec["token_source"] != tokenFile {
		t.Errorf("reload logged %v, want INFO with tokens 2 from %s", rec, tokenFile)
	}
	check("after the reload", map[string]codes.Code{"a": codes.Unauthenticated, "b": codes.OK, "c": codes.OK})

	writeFile(t, tokenFile, line("b")+"c:keys.read:"+tokens["c"]+"\n")
	p.hangup(t)
	rec = p.waitLog(t, reloadFailedMsg, 1)
	if errText, _ := rec["err"].(string); rec["level"] != "ERROR" || !strings.Contains(errText, tokenFile+": line 2 (c): the hash must be 64 hex digits") {
		t.Errorf("failed reload logged %v, want ERROR naming %s line 2", rec, tokenFile)
	}
	p.running(t)
	check("after the failed reload", map[string]codes.Code{"a": codes.Unauthenticated, "b": codes.OK, "c": codes.OK})
	if n := len(p.stderr.records(reloadedMsg)); n != 1 {
		t.Errorf("%d successful reloads logged, want 1", n)
	}

	p.stop(t)
	logs := p.stderr.String()
	for name, token := range tokens {
		if strings.Contains(logs, token) || strings.Contains(logs, server.HashToken(token)) {
			t.Errorf("the log holds token %s or its hash", name)
		}
	}
}

// TestServeReloadsTLSOnHangup replaces the gRPC listener's certificate, key
// and client CA in a running serve: after SIGHUP new connections get the new
// certificate and must present a client certificate of the new CA, while a
// connection made before goes on; a certificate with the wrong key is
// refused and the previous certificate stays in force.
func TestServeReloadsTLSOnHangup(t *testing.T) {
	dir := t.TempDir()
	serverCA1, serverCA2 := newCA(t, "server CA 1"), newCA(t, "server CA 2")
	clientCA1, clientCA2 := newCA(t, "client CA 1"), newCA(t, "client CA 2")
	client1, _ := clientCA1.issue(t, 101, "reader", false)
	client2, _ := clientCA2.issue(t, 102, "reader", false)

	certFile, keyFile, caFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "client-ca.crt")
	install := func(cert tls.Certificate, keyPEM string) {
		t.Helper()
		writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})))
		if keyPEM != "" {
			writeFile(t, keyFile, keyPEM)
		}
	}
	first, firstKey := serverCA1.issue(t, 11, "localhost", true)
	install(first, firstKey)
	writeFile(t, caFile, clientCA1.pem())
	scopesFile := filepath.Join(dir, "scopes")
	writeFile(t, scopesFile, "cn:reader:keys.read\n")
	p := startServe(t, dir, nil, "--tls-cert", certFile, "--tls-key", keyFile, "--client-ca", caFile, "--client-cert-scopes-file", scopesFile)

	roots := x509.NewCertPool()
	roots.AddCert(serverCA1.cert)
	roots.AddCert(serverCA2.cert)
	dial := func(client tls.Certificate) *grpc.ClientConn {
		t.Helper()
		conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &client, nil },
		})))
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// list calls ListRegistrations on conn and returns the serial of the
	// certificate the server presented.
	list := func(conn *grpc.ClientConn) (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var pr peer.Peer
		_, err := ltikeysv1.NewKeyServiceClient(conn).ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{}, grpc.Peer(&pr))
		if err != nil {
			return 0, err
		}
		info, ok := pr.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.PeerCertificates) == 0 {
			return 0, nil
		}
		return info.State.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	// newConnection calls once over a new connection presenting client.
	newConnection := func(client tls.Certificate) (int64, error) {
		conn := dial(client)
		defer conn.Close()
		return list(conn)
	}
	check := func(when string, client tls.Certificate, wantSerial int64, wantCode codes.Code) {
		t.Helper()
		serial, err := newConnection(client)
		if status.Code(err) != wantCode || err == nil && serial != wantSerial {
			t.Errorf("%s: new connection = serial %d, %v; want serial %d, %v", when, serial, err, wantSerial, wantCode)
		}
	}

	check("at start, client of CA 1", client1, 11, codes.OK)
	check("at start, client of CA 2", client2, 0, codes.Unavailable)
	held := dial(client1)
	defer held.Close()
	if serial, err := list(held); err != nil || serial != 11 {
		t.Fatalf("held connection: serial %d, %v; want 11", serial, err)
	}

	second, secondKey := serverCA2.issue(t, 22, "localhost", true)
	install(second, secondKey)
	writeFile(t, caFile, clientCA2.pem())
	p.hangup(t)
	rec := p.waitLog(t, reloadedMsg, 1)
	if rec["tls"] != true || rec["tls_cert_serial"] != "22" || rec["client_cert_identities"] != 1.0 {
		t.Errorf("reload logged %v, want tls with certificate serial 22 and 1 client certificate identity", rec)
	}
	check("after the reload, client of CA 2", client2, 22, codes.OK)
	check("after the reload, client of CA 1", client1, 0, codes.Unavailable)
	if serial, err := list(held); err != nil || serial != 11 {
		t.Errorf("connection made before the reload: serial %d, %v; want it to go on with 11", serial, err)
	}

	// A new certificate whose key was not installed: the key on disk is the
	// second certificate's.
	third, _ := serverCA1.issue(t, 33, "localhost", true)
	install(third, "")
	p.hangup(t)
	rec = p.waitLog(t, reloadFailedMsg, 1)
	if errText, _ := rec["err"].(string); rec["level"] != "ERROR" || !strings.Contains(errText, "private key does not match public key") {
		t.Errorf("failed reload logged %v, want ERROR saying the key does not match", rec)
	}
	p.running(t)
	check("after the failed reload", client2, 22, codes.OK)

	p.stop(t)
	for _, key := range []string{firstKey, secondKey} {
		body := strings.Split(key, "\n")[1]
		if strings.Contains(p.stderr.String(), body) {
			t.Errorf("the log holds private key material")
		}
	}
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// pem returns the CA's certificate in PEM.
func (ca *testCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
}

// issue returns a certificate the CA issued to cn, for a server (with cn
// as its DNS name) or a client, and its private key in PEM.
func (ca *testCA) issue(t *testing.T, serial int64, cn string, forServer bool) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if forServer {
		tmpl.DNSNames = []string{cn}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}
