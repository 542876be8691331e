package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// dbPassword is the password in every database URL below: it must never be
// printed.
const dbPassword = "S3cret-db-pw"

// postgresSecrets lets serve start on PostgreSQL as far as the database.
var postgresSecrets = []string{
	"LTIKEYS_MASTER_KEYS=k1:" + strings.Repeat("A", 42) + "E=",
	"LTIKEYS_TOKENS=probe:keys.read:" + strings.Repeat("0", 64),
}

// fakePostgres accepts PostgreSQL connections on loopback and answers each
// startup with a FATAL error of the given SQLSTATE, over TLS with cert if
// the client asks for TLS and cert is not nil (and refusing TLS otherwise).
func fakePostgres(t *testing.T, code string, cert *tls.Certificate) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var conn net.Conn = c
				be := pgproto3.NewBackend(conn, conn)
				msg, err := be.ReceiveStartupMessage()
				if err != nil {
					return
				}
				if _, ok := msg.(*pgproto3.SSLRequest); ok {
					if cert == nil {
						c.Write([]byte("N"))
					} else {
						c.Write([]byte("S"))
						tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
						if tc.Handshake() != nil {
							return
						}
						conn = tc
						be = pgproto3.NewBackend(conn, conn)
					}
					if msg, err = be.ReceiveStartupMessage(); err != nil {
						return
					}
				}
				if _, ok := msg.(*pgproto3.StartupMessage); !ok {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: `refused for user "ltikeys"`})
				be.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// selfSignedCert returns a certificate for 127.0.0.1 issued by a CA of its
// own, and that CA's certificate in a PEM file in dir.
func selfSignedCert(t *testing.T, dir, name string) (tls.Certificate, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, name+"-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// setSchemaVersion records version in ltikeys_schema, as a later release
// would.
func setSchemaVersion(t *testing.T, driver, dsn string, version int) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "UPDATE ltikeys_schema SET version = $1", version); err != nil {
		t.Fatal(err)
	}
}

// openOnce creates the schema at databaseURL.
func openOnce(t *testing.T, databaseURL string) {
	t.Helper()
	s, err := storage.Open(t.Context(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestServeFailsFastOnPermanentDatabaseErrors runs serve against databases
// that no retry can make work: each run exits non-zero at once, with one
// line naming the flag and the problem, and nothing it prints holds the
// password.
func TestServeFailsFastOnPermanentDatabaseErrors(t *testing.T) {
	certDir := t.TempDir()
	serverCert, _ := selfSignedCert(t, certDir, "server")
	_, otherCA := selfSignedCert(t, certDir, "other")

	pgURL := storagetest.PostgresURL(t)
	missing, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	missing.User = url.UserPassword("postgres", dbPassword)
	missing.Path = "/ltikeys_no_such_database"
	newer := storagetest.PostgresURL(t)
	openOnce(t, newer)
	setSchemaVersion(t, "pgx", newer, storage.SchemaVersion+1)
	newerSQLite := filepath.Join(t.TempDir(), "newer.db")
	openOnce(t, "sqlite://"+newerSQLite)
	setSchemaVersion(t, "sqlite", newerSQLite, storage.SchemaVersion+1)

	for _, tt := range []struct {
		name, url, want string
	}{
		{"unknown scheme", "mysql://ltikeys:" + dbPassword + "@127.0.0.1/ltikeys", "unsupported database URL"},
		{"URL that does not parse", "postgres://ltikeys:" + dbPassword + "%ZZ@127.0.0.1/ltikeys", "does not parse"},
		{"keyword=value that does not parse", "host=127.0.0.1 password=" + dbPassword + " port=notaport", "does not parse"},
		{"database does not exist", missing.String() + "&password=" + dbPassword, "the database does not exist (SQLSTATE 3D000)"},
		{"authentication failed", "postgres://ltikeys:" + dbPassword + "@" + fakePostgres(t, "28P01", nil) + "/ltikeys?sslmode=disable", "authentication failed (SQLSTATE 28P01)"},
		{"TLS verification failed", "postgres://ltikeys:" + dbPassword + "@" + fakePostgres(t, "28P01", &serverCert) + "/ltikeys?sslmode=verify-full&sslrootcert=" + otherCA, "signed by an unknown authority"},
		{"server refuses TLS", "postgres://ltikeys:" + dbPassword + "@" + fakePostgres(t, "28P01", nil) + "/ltikeys?sslmode=require", "does not accept TLS"},
		{"schema newer than the binary", newer, "newer than this binary"},
		{"embedded schema newer than the binary", "sqlite://" + newerSQLite, "newer than this binary"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := command(ctx, t.TempDir(), append([]string{"LTIKEYS_DATABASE_URL=" + tt.url}, postgresSecrets...),
				"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) {
				t.Fatalf("serve did not exit with an error (%v; deadline: %v):\n%s", err, ctx.Err(), out)
			}
			text := strings.TrimSpace(string(out))
			if strings.Contains(text, dbPassword) {
				t.Errorf("output holds the password:\n%s", text)
			}
			if strings.Contains(text, "retrying") {
				t.Errorf("serve retried a permanent error:\n%s", text)
			}
			lines := strings.Split(text, "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "ltikeys: --database-url: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last line = %q, want the flag and %q\n%s", last, tt.want, text)
			}
			for _, l := range lines[:len(lines)-1] {
				if strings.Contains(l, tt.want) {
					t.Errorf("the problem is reported more than once:\n%s", text)
				}
			}
		})
	}
}

// TestServeRetriesTransientDatabaseErrors points serve at a port where
// nothing listens: it keeps retrying, logging why without the password,
// until it is stopped.
func TestServeRetriesTransientDatabaseErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	dbURL := "postgres://ltikeys:" + dbPassword + "@" + closed + "/ltikeys?sslmode=disable"
	cmd := command(context.Background(), t.TempDir(), append([]string{"LTIKEYS_DATABASE_URL=" + dbURL}, postgresSecrets...),
		"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	retries := make(chan string)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			retries <- sc.Text()
		}
		close(retries)
	}()
	var log strings.Builder
	seen := 0
	deadline := time.After(60 * time.Second)
	for seen < 3 {
		select {
		case line, ok := <-retries:
			if !ok {
				t.Fatalf("serve exited on a refused connection:\n%s", log.String())
			}
			log.WriteString(line + "\n")
			if strings.Contains(line, dbPassword) {
				t.Errorf("log line holds the password: %s", line)
			}
			if strings.Contains(line, "database not reachable; retrying") {
				seen++
				if !strings.Contains(line, "connection refused") {
					t.Errorf("retry line does not say why: %s", line)
				}
			}
		case <-deadline:
			t.Fatalf("serve logged %d retries in 60s:\n%s", seen, log.String())
		}
	}
}

// TestServeAcceptsKeywordValueDSN starts serve with a PostgreSQL
// connection string in keyword=value form, password included, which it
// never prints.
func TestServeAcceptsKeywordValueDSN(t *testing.T) {
	u, err := url.Parse(storagetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn := "host=" + u.Hostname() + " port=" + u.Port() + " user=" + u.User.Username() +
		" password='" + dbPassword + "' dbname=" + strings.TrimPrefix(u.Path, "/") + " sslmode=disable"
	p := startServe(t, t.TempDir(), append([]string{"LTIKEYS_DATABASE_URL=" + dsn}, postgresSecrets...))
	p.stop(t)
	if strings.Contains(p.stderr.String(), dbPassword) {
		t.Errorf("log holds the password:\n%s", p.stderr)
	}
}

// TestPrintConfigRedactsDatabaseURLs checks --print-config for every form
// of database URL, including ones net/url cannot parse, which are redacted
// whole.
func TestPrintConfigRedactsDatabaseURLs(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"postgres://u:" + dbPassword + "@db.internal/ltikeys", `"postgres://u:REDACTED@db.internal/ltikeys"`},
		{"postgres://u:S3cr#" + dbPassword + "@db.internal/ltikeys", `"REDACTED"`},
		{"postgres://u:p%ZZ" + dbPassword + "@db.internal/ltikeys", `"REDACTED"`},
		{"postgres://db.internal/ltikeys?user=u&password=" + dbPassword, `"postgres://db.internal/ltikeys?password=REDACTED&user=u"`},
		{"host=db.internal user=u password=" + dbPassword + " dbname=ltikeys", `"host=db.internal user=u password=REDACTED dbname=ltikeys"`},
		{"host=db.internal password = '" + dbPassword + ` \' x' sslpassword=` + dbPassword, `"host=db.internal password=REDACTED sslpassword=REDACTED"`},
		{"host=db.internal password='" + dbPassword, `"REDACTED"`},
		{"sqlite:///var/lib/ltikeys/ltikeys.db", `"sqlite:///var/lib/ltikeys/ltikeys.db"`},
	} {
		out := mustCLI(t, t.TempDir(), []string{"LTIKEYS_DATABASE_URL=" + tt.url}, "serve", "--print-config").stdout
		if strings.Contains(out, dbPassword) {
			t.Errorf("--print-config of %q prints the password:\n%s", tt.url, out)
		}
		if want := "database-url: " + tt.want + " # env"; !strings.Contains(out, want) {
			t.Errorf("--print-config of %q lacks %s:\n%s", tt.url, want, out)
		}
	}
}
