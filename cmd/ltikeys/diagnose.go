package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// A call that no gRPC server answered fails UNAVAILABLE with whatever the
// transport last saw ("error reading server preface: EOF", "write: broken
// pipe", "http2: frame too large"), which rarely says why. transportHint
// finds out by looking at what listens at --server: it connects again,
// sends the HTTP/2 client preface and reads what comes back, then tries a
// TLS handshake, and turns what it found into a hint that names the flag
// to change.

// probeTimeout bounds the probes of one diagnosis together.
const probeTimeout = 5 * time.Second

// http2Preface is what every HTTP/2 client sends first, before any frame
// (RFC 9113, section 3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// serverKind is what listens at an address, as probe found it.
type serverKind int

const (
	// kindUnknown: something accepted the connection but answered neither
	// the HTTP/2 preface nor a TLS handshake recognizably, or not in time.
	kindUnknown serverKind = iota
	// kindRefused: nothing listens there.
	kindRefused
	// kindUnreachable: the address could not be reached (no such host, no
	// route, or the connection timed out).
	kindUnreachable
	// kindHTTP2: a plaintext HTTP/2 server, as a gRPC server without TLS
	// is: it answered the preface with a SETTINGS frame.
	kindHTTP2
	// kindHTTP1: a plaintext HTTP/1.x server, such as serve's --http-addr:
	// it answered the preface with an HTTP/1 status line.
	kindHTTP1
	// kindTLS: a TLS server: it answered a ClientHello.
	kindTLS
)

// probeResult is what probe found.
type probeResult struct {
	kind serverKind
	// dialErr is why the connection failed, for kindRefused and
	// kindUnreachable.
	dialErr error
	// certRequested says a TLS server asked for a client certificate;
	// alpn is the application protocol it chose of h2 and http/1.1, if
	// any.
	certRequested bool
	alpn          string
}

// probe finds out what listens at addr on network. serverName is the name
// to send in a TLS handshake's server name indication.
func probe(ctx context.Context, network, addr, serverName string) probeResult {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return probeResult{kind: kindRefused, dialErr: err}
		}
		return probeResult{kind: kindUnreachable, dialErr: err}
	}
	// A server that answers nothing leaves the TLS probe half the time.
	plainCtx, cancel := context.WithTimeout(ctx, probeTimeout/2)
	plain := plainProbe(plainCtx, conn)
	cancel()
	conn.Close()
	if plain == kindHTTP2 {
		return probeResult{kind: kindHTTP2}
	}
	// An HTTPS server may answer plaintext with an HTTP/1 error too, so a
	// TLS handshake decides.
	if conn, err = d.DialContext(ctx, network, addr); err == nil {
		r, isTLS := tlsProbe(ctx, conn, serverName)
		conn.Close()
		if isTLS {
			return r
		}
	}
	return probeResult{kind: plain}
}

// plainProbe sends the HTTP/2 client preface on conn and reads the first
// bytes of the answer: a SETTINGS frame on stream 0 is HTTP/2, a status
// line HTTP/1; anything else, or nothing, is kindUnknown.
func plainProbe(ctx context.Context, conn net.Conn) serverKind {
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// A gRPC server sends its SETTINGS without waiting for the preface, so
	// a failed write still leaves something to read.
	_, _ = io.WriteString(conn, http2Preface)
	// A frame header is 9 bytes: length (3), type (1), flags (1), stream
	// (4); SETTINGS is type 4.
	var b [9]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return kindUnknown
	}
	switch {
	case bytes.HasPrefix(b[:], []byte("HTTP/")):
		return kindHTTP1
	case b[3] == 0x4 && binary.BigEndian.Uint32(b[5:])&0x7fffffff == 0:
		return kindHTTP2
	}
	return kindUnknown
}

// tlsProbe tries a TLS handshake on conn, and reports whether the server
// answered it as a TLS server, whether it asked for a client certificate
// and which protocol it chose.
func tlsProbe(ctx context.Context, conn net.Conn, serverName string) (probeResult, bool) {
	var requested bool
	tc := tls.Client(conn, &tls.Config{
		// The probe only learns what the server speaks: it sends nothing
		// over the connection and believes nothing it receives, so there is
		// nothing to verify.
		InsecureSkipVerify: true,
		ServerName:         serverName,
		NextProtos:         []string{"h2", "http/1.1"},
		MinVersion:         tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			requested = true
			return &tls.Certificate{}, nil
		},
	})
	err := tc.HandshakeContext(ctx)
	r := probeResult{kind: kindTLS, certRequested: requested}
	switch {
	case err == nil:
		r.alpn = tc.ConnectionState().NegotiatedProtocol
		return r, true
	case requested || remoteAlert(err) != nil:
		// It answered in TLS, if only to refuse (a TLS 1.2 server that
		// requires a certificate refuses the empty one in the handshake).
		return r, true
	}
	return probeResult{}, false
}

// remoteAlert returns the alert a TLS peer sent, if err is one.
func remoteAlert(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return op.Err
	}
	return nil
}

// certificateAlerts are the TLS alerts (RFC 8446, section 6.2) with which a
// server refuses a client certificate: bad_certificate,
// unsupported_certificate, certificate_revoked, certificate_expired,
// certificate_unknown, unknown_ca and certificate_required.
var certificateAlerts = []tls.AlertError{42, 43, 44, 45, 46, 48, 116}

// isCertificateAlert reports whether alert, as remoteAlert returns it, is
// one of certificateAlerts.
func isCertificateAlert(alert error) bool {
	return alert != nil && slices.ContainsFunc(certificateAlerts, func(a tls.AlertError) bool {
		return alert.Error() == a.Error()
	})
}

// verifyOutcome is how a TLS handshake with the client's own configuration
// went.
type verifyOutcome int

const (
	verifiedOK verifyOutcome = iota
	// verifyFailed: the server's certificate does not verify.
	verifyFailed
	// certRefused: the server refused the client certificate.
	certRefused
)

// verifyProbe makes the handshake the call made, with the client's TLS
// configuration, and says how it went; with a client certificate, it
// reads the server's first record, since a TLS 1.3 server refuses a
// certificate only after the client has finished its handshake.
func verifyProbe(ctx context.Context, network, addr string, cfg *tls.Config) (verifyOutcome, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return verifiedOK, nil
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	tc := tls.Client(conn, cfg)
	err = tc.HandshakeContext(ctx)
	if err == nil && len(cfg.Certificates) > 0 {
		_, err = tc.Read(make([]byte, 1))
	}
	var unverified *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unverified):
		return verifyFailed, unverified.Err
	case len(cfg.Certificates) > 0 && isCertificateAlert(remoteAlert(err)):
		return certRefused, remoteAlert(err)
	}
	return verifiedOK, nil
}

// dialTarget returns the network and address of a gRPC target: host:port
// (port 443 if it has none, as gRPC assumes), dns:///host:port,
// passthrough:///host:port, unix:PATH or unix:///PATH. ok is false for any
// other target (another resolver, or a DNS server named in it), which the
// probes do not follow.
func dialTarget(target string) (network, addr string, ok bool) {
	if path, ok := strings.CutPrefix(target, "unix://"); ok {
		return "unix", path, path != ""
	}
	if path, ok := strings.CutPrefix(target, "unix:"); ok {
		return "unix", path, path != ""
	}
	for _, scheme := range []string{"dns:///", "passthrough:///"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			target = rest
			break
		}
	}
	if target == "" || strings.Contains(target, "/") {
		return "", "", false
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		target = net.JoinHostPort(strings.Trim(target, "[]"), "443")
	}
	return "tcp", target, true
}

// transportHint says why a call that no gRPC server answered failed, from
// what listens at --server, and which flag to change; "" when it finds
// nothing wrong with the transport, or cannot tell.
func (o *clientOptions) transportHint(ctx context.Context) string {
	network, addr, ok := dialTarget(o.server)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	serverName := o.tlsServerName
	if serverName == "" {
		serverName = host
	}
	httpHint := fmt.Sprintf("this looks like the HTTP listener (serve's --http-addr), not gRPC: use --server %s (serve's --grpc-addr)", net.JoinHostPort(host, "50051"))
	r := probe(ctx, network, addr, serverName)
	switch r.kind {
	case kindRefused:
		return fmt.Sprintf("nothing accepts connections on %s: is 'ltikeys serve' running and listening there? (--server, %s)", escapeText(o.server), envName("server"))
	case kindUnreachable:
		return fmt.Sprintf("%s cannot be reached (%s): check the host and port of --server", escapeText(o.server), escapeText(r.dialErr.Error()))
	case kindHTTP1:
		return httpHint
	case kindHTTP2:
		if o.usesTLS() {
			return "the server does not speak TLS (it answered in plaintext HTTP/2): drop --tls, --tls-ca and --tls-client-cert, or serve with --tls-cert and --tls-key"
		}
	case kindTLS:
		switch {
		case r.alpn == "http/1.1":
			return httpHint
		case !o.usesTLS() && r.certRequested:
			return "the server speaks TLS and asks for a client certificate: pass --tls-ca (or --tls) with --tls-client-cert and --tls-client-key"
		case !o.usesTLS():
			return "the server speaks TLS: pass --tls, or --tls-ca with the CA that issued its certificate"
		case r.certRequested && o.tlsClientCert == "":
			return "the server requires a client certificate: pass --tls-client-cert and --tls-client-key (one issued by a CA of the server's --client-ca)"
		}
		cfg, err := o.tlsConfig()
		if err != nil {
			return ""
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		outcome, why := verifyProbe(ctx, network, addr, cfg)
		switch outcome {
		case verifyFailed:
			cas := "the system's CAs"
			if o.tlsCA != "" {
				cas = "--tls-ca " + o.tlsCA
			}
			return escapeText(fmt.Sprintf("the server's certificate does not verify against %s for the name %q (%v): pass --tls-ca with the CA that issued it, or --tls-server-name with a name it holds", cas, cfg.ServerName, why))
		case certRefused:
			return escapeText(fmt.Sprintf("the server refused the client certificate (--tls-client-cert %s: %v): is it issued by a CA of the server's --client-ca?", o.tlsClientCert, why))
		}
	}
	return ""
}
