package storage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
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
// reach the log formatted, with a failure to connect described by its
// ConnectionError rather than the driver's text.
func TestGormLoggerFormatsSafely(t *testing.T) {
	var buf bytes.Buffer
	l := newGormLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	_, err := Open(t.Context(), "postgres://marker-user@"+closedPort(t)+"/marker-db?sslmode=disable")
	var ce *ConnectionError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v, want a ConnectionError", err)
	}
	l.Error(context.Background(), "failed to initialize database, got error %v", ce.Unwrap())
	out := buf.String()
	if strings.Contains(out, "%v") || strings.Contains(out, "BADKEY") {
		t.Errorf("message not formatted: %s", out)
	}
	if !strings.Contains(out, "got error database not reachable: connection refused") {
		t.Errorf("error not described by its classification: %s", out)
	}
	if strings.Contains(out, "marker") {
		t.Errorf("log quotes the connection string: %s", out)
	}
}
