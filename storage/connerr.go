package storage

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectionError is why the store could not reach or use its database,
// described without any part of the database URL: no password, user, host,
// port or database name, not even in the wrapped driver error's text, which
// Error never includes (the driver's own messages quote the connection's
// user, database and address). Open and every Store method return one,
// wrapped, for a failure to connect; errors.As finds it.
type ConnectionError struct {
	// Problem says what went wrong, for an operator: "connection refused",
	// "the database does not exist (SQLSTATE 3D000)".
	Problem string
	// Permanent is true for a configuration that no retry can fix: a URL
	// that does not parse, an unknown database, failed authentication, a
	// server certificate that does not verify, a schema newer than this
	// binary. It is false for what may pass: a refused or timed-out
	// connection, one lost under a statement, a server starting up or
	// shutting down.
	Permanent bool

	cause error
}

func (e *ConnectionError) Error() string {
	if e.Permanent {
		return "database configuration: " + e.Problem
	}
	return "database not reachable: " + e.Problem
}

// Unwrap returns the driver's error, for errors.Is and errors.As. Its text
// may quote the connection string's user, database and host: never print
// it.
func (e *ConnectionError) Unwrap() error { return e.cause }

// IsPermanent reports whether err carries a permanent ConnectionError.
func IsPermanent(err error) bool {
	var ce *ConnectionError
	return errors.As(err, &ce) && ce.Permanent
}

// Unavailable reports whether err means the database could not serve the
// request for now, and a retry may succeed: a ConnectionError that is not
// permanent, or ErrConflict. Callers report such errors as unavailable
// rather than as faults.
func Unavailable(err error) bool {
	var ce *ConnectionError
	if errors.As(err, &ce) {
		return !ce.Permanent
	}
	return errors.Is(err, ErrConflict)
}

func permanent(problem string, cause error) *ConnectionError {
	return &ConnectionError{Problem: problem, Permanent: true, cause: cause}
}

func transient(problem string, cause error) *ConnectionError {
	return &ConnectionError{Problem: problem, cause: cause}
}

// SQLSTATE classes and codes that concern the connection rather than a
// statement (PostgreSQL, Appendix A).
const (
	sqlstateInvalidAuthorization = "28000"
	sqlstateInvalidPassword      = "28P01"
	sqlstateInvalidCatalog       = "3D000" // the database does not exist
	sqlstateTooManyConnections   = "53300"
	sqlstateAdminShutdown        = "57P01"
	sqlstateCrashShutdown        = "57P02"
	sqlstateCannotConnectNow     = "57P03" // starting up or shutting down
)

// connectionError returns err's ConnectionError if err is a failure to
// connect (which it classifies), and nil otherwise: a statement's error
// names tables and constraints, never the connection, and stays as it is.
func connectionError(err error) *ConnectionError {
	if err == nil {
		return nil
	}
	var ce *ConnectionError
	if errors.As(err, &ce) {
		return ce
	}
	var parse *pgconn.ParseConfigError
	if errors.As(err, &parse) {
		return permanent("the PostgreSQL connection string does not parse", err)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case sqlstateInvalidCatalog:
			return permanent("the database does not exist (SQLSTATE 3D000)", err)
		case sqlstateInvalidPassword, sqlstateInvalidAuthorization:
			return permanent(fmt.Sprintf("authentication failed (SQLSTATE %s)", pg.Code), err)
		case sqlstateCannotConnectNow, sqlstateAdminShutdown, sqlstateCrashShutdown, sqlstateTooManyConnections:
			return transient(fmt.Sprintf("the server is not accepting connections (SQLSTATE %s)", pg.Code), err)
		}
		var connect *pgconn.ConnectError
		if errors.As(err, &connect) {
			// Another refusal at connection time: its code says which.
			return permanent(fmt.Sprintf("the server refused the connection (SQLSTATE %s)", pg.Code), err)
		}
		return nil
	}
	if problem := tlsProblem(err); problem != "" {
		return permanent(problem, err)
	}
	var connect *pgconn.ConnectError
	isConnect := errors.As(err, &connect)
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return transient("the host name does not resolve", err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return transient("connection refused", err)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return transient("connection reset", err)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return transient("the host is unreachable", err)
	case isTimeout(err):
		return transient("timed out", err)
	case isConnect && strings.Contains(connect.Error(), "server refused TLS connection"):
		return permanent("the server does not accept TLS, which the connection string's sslmode requires", err)
	case isConnect:
		return transient("could not connect", err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, net.ErrClosed):
		// An open connection that the server, or something between, closed
		// under a statement.
		return transient("connection lost", err)
	}
	return nil
}

// tlsProblem describes a failure to verify the server's certificate, or ""
// if err is not one. The descriptions leave out the host name and
// certificate names the errors carry.
func tlsProblem(err error) string {
	const prefix = "TLS verification of the database server failed: "
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		return prefix + "its certificate is signed by an unknown authority (see sslrootcert)"
	case errors.As(err, &hostname):
		return prefix + "its certificate is not valid for the host in the connection string"
	case errors.As(err, &invalid):
		return prefix + "its certificate is invalid (expired, not yet valid, or not for a server)"
	case errors.As(err, &verify):
		return prefix + "its certificate does not verify"
	}
	return ""
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// safe returns err with a failure to connect replaced by its
// ConnectionError, so that no caller can print the driver's text.
func safe(err error) error {
	if ce := connectionError(err); ce != nil {
		return ce
	}
	return err
}

// Redacted replaces what RedactDatabaseURL hides.
const Redacted = "REDACTED"

// RedactDatabaseURL returns databaseURL fit to print: the password of a
// PostgreSQL URL's user information and the values of its password and
// sslpassword parameters, in URL or keyword=value form, are replaced by
// Redacted. A value it cannot take apart with certainty (one that does not
// parse, or that has a fragment, where a password containing "#" would
// end up) is replaced whole. SQLite URLs hold no secrets and are returned
// as they are.
func RedactDatabaseURL(databaseURL string) string {
	scheme, _, _ := strings.Cut(databaseURL, ":")
	switch {
	case databaseURL == "":
		return ""
	case strings.EqualFold(scheme, "sqlite"), strings.EqualFold(scheme, "file"):
		return databaseURL
	case keywordValue.MatchString(databaseURL):
		return redactKeywordValue(databaseURL)
	}
	u, err := url.Parse(databaseURL)
	if err != nil || u.Fragment != "" || u.Opaque != "" || strings.Contains(databaseURL, "#") {
		return Redacted
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Redacted)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Redacted
	}
	for name := range q {
		if isPasswordKey(name) {
			q[name] = []string{Redacted}
		}
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func isPasswordKey(name string) bool {
	return strings.EqualFold(name, "password") || strings.EqualFold(name, "sslpassword")
}

// redactKeywordValue redacts a libpq keyword=value connection string:
// keywords, "=", then a value that is either single-quoted (with \' and \\
// escapes) or runs to the next space (with \ escapes).
func redactKeywordValue(s string) string {
	var out strings.Builder
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out.String()
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return Redacted
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		vstart := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return Redacted // unterminated quote
			}
			i++
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(s) {
				return Redacted // a trailing backslash
			}
		}
		value := s[vstart:i]
		if isPasswordKey(key) {
			value = Redacted
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(key + "=" + value)
	}
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'
}
