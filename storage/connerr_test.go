package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestOpenErrorsQuoteNoPartOfTheURL opens databases that cannot be used
// and checks the errors: classified, and without the URL's user, password,
// database name or address.
func TestOpenErrorsQuoteNoPartOfTheURL(t *testing.T) {
	addr := closedPort(t)
	for _, tt := range []struct {
		name, url string
		permanent bool
	}{
		{"unknown scheme", "mysql://marker-user:marker-pw@" + addr + "/marker-db", true},
		{"URL that does not parse", "postgres://marker-user:marker-pw%ZZ@" + addr + "/marker-db", true},
		{"keyword=value that does not parse", "host=127.0.0.1 user=marker-user password=marker-pw dbname=marker-db port=x", true},
		{"connection refused", "postgres://marker-user:marker-pw@" + addr + "/marker-db?sslmode=disable&connect_timeout=5", false},
		{"keyword=value, connection refused", "host=127.0.0.1 port=" + addr[strings.LastIndex(addr, ":")+1:] + " user=marker-user password=marker-pw dbname=marker-db sslmode=disable", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			var ce *ConnectionError
			if !errors.As(err, &ce) || ce.Permanent != tt.permanent || IsPermanent(err) != tt.permanent {
				t.Errorf("Open: %v; want a ConnectionError with Permanent %v", err, tt.permanent)
			}
			for _, part := range []string{"marker", addr, "127.0.0.1"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error quotes %q: %v", part, err)
				}
			}
		})
	}
}

// TestGormLoggerFormatsSafely checks that the ORM's printf-style messages
// reach the log formatted.
func TestGormLoggerFormatsSafely(t *testing.T) {
	var buf bytes.Buffer
	l := newGormLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Error(context.Background(), "failed to migrate, got error %v", errors.New("relation exists"))
	out := buf.String()
	if strings.Contains(out, "%v") || strings.Contains(out, "BADKEY") {
		t.Errorf("message not formatted: %s", out)
	}
	if !strings.Contains(out, "failed to migrate, got error relation exists") {
		t.Errorf("message lost: %s", out)
	}
}

// TestLostConnectionIsTransient: a connection closed under a statement, in
// any of the forms the driver reports it, is a transient ConnectionError
// whose text is not the driver's.
func TestLostConnectionIsTransient(t *testing.T) {
	for name, err := range map[string]error{
		"unexpected EOF": fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF),
		"EOF":            fmt.Errorf("read: %w", io.EOF),
		"conn closed":    fmt.Errorf("query: %w", pgconn.ErrConnClosed),
		"closed socket":  &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed},
	} {
		got := safe(err)
		var ce *ConnectionError
		if !errors.As(got, &ce) || ce.Permanent || !Unavailable(got) {
			t.Errorf("%s: safe = %v; want a transient ConnectionError", name, got)
			continue
		}
		if got.Error() != "database not reachable: connection lost" {
			t.Errorf("%s: error text %q", name, got)
		}
	}
	if Unavailable(errors.New("syntax error at or near \"SELEC\"")) {
		t.Error("a statement's own error is reported unavailable")
	}
}

// TestGormLoggerDropsConnectionFailures: the ORM's messages about a failure
// to connect, which Open returns to its caller, are not logged.
func TestGormLoggerDropsConnectionFailures(t *testing.T) {
	var buf bytes.Buffer
	l := newGormLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	_, err := Open(t.Context(), "postgres://marker-user@"+closedPort(t)+"/marker-db?sslmode=disable")
	var ce *ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v, want a ConnectionError", err)
	}
	l.Error(context.Background(), "failed to initialize database, got error %v", ce.Unwrap())
	l.Trace(context.Background(), time.Now().Add(-time.Second), func() (string, int64) { return "SELECT 1", 0 }, ce.Unwrap())
	if buf.Len() != 0 {
		t.Errorf("logged a failure to connect:\n%s", buf.String())
	}
}
