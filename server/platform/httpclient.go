package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of HTTPOptions.
const (
	DefaultConnectTimeout      = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
	DefaultRequestTimeout      = 10 * time.Second
	// DefaultMaxResponseBytes bounds a response body: a token response or
	// a platform's JWK Set is a few KiB at most.
	DefaultMaxResponseBytes = 64 << 10
)

// Resolver looks up the addresses of a host name. *net.Resolver
// implements it; tests give a map of their own.
type Resolver interface {
	// LookupNetIP returns the addresses of host; network is "ip", "ip4"
	// or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// HTTPOptions configures NewHTTPClient. The zero value is a usable
// configuration: every zero field takes its default.
type HTTPOptions struct {
	// Version is ltikeys' version, sent in the User-Agent header as
	// "ltikeys/<Version>" ("ltikeys" alone when empty). It must be a
	// header token: letters, digits and !#$%&'*+-.^_`|~.
	Version string
	// ConnectTimeout bounds each TCP connection attempt.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout time.Duration
	// Timeout bounds a whole request, from dialling to reading the last
	// byte of the body.
	Timeout time.Duration
	// MaxResponseBytes bounds a response body. Reading past it fails with
	// ErrResponseTooLarge; a body is never silently truncated.
	MaxResponseBytes int64
	// AllowPrivate lets requests reach addresses that are not global
	// unicast: private, loopback, link-local, shared (CGNAT) and reserved
	// ones. Unspecified, multicast and broadcast addresses stay refused.
	AllowPrivate bool
	// Proxy chooses the proxy of a request, as http.Transport.Proxy does;
	// nil means http.ProxyFromEnvironment (HTTPS_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)
	// RootCAs, if not nil, replaces the system's roots (tests).
	RootCAs *x509.CertPool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver

	// dial, if set, connects to an address the guard admitted instead of
	// a net.Dialer (tests: an address that does not exist here).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewHTTPClient returns the client ltikeys makes every outbound request
// to platforms with. Whoever sends through it (Do, Get, Post…) gets:
//
//   - https only, except http to an endpoint whose host is itself
//     loopback (localhost, 127.0.0.0/8, ::1), as registration validation
//     allows; any other scheme, and a URL with credentials, fails with an
//     error matching ErrRefused before anything is sent;
//   - no redirects: a 3xx answer other than 304 fails with *RedirectError;
//   - the timeouts of opts, and a body that fails with ErrResponseTooLarge
//     when read past MaxResponseBytes (a Content-Length above it fails the
//     request at once); the bound applies after transparent decompression;
//   - the address guard, at dial time (see the package documentation):
//     the host is resolved once, every address it resolves to is checked,
//     and the connection goes to a checked address, so a DNS answer that
//     changes between check and use cannot get around it. A refused
//     address fails with *AddressError.
//   - the proxy opts.Proxy chooses. A proxy's own address is the
//     operator's choice and is not checked, and the proxy resolves the
//     target's name, so the guard checks a proxied target only when its
//     host is an IP literal: egress policy for names is the proxy's.
//
// The client is safe for concurrent use and keeps connections alive; one
// per process is enough.
func NewHTTPClient(opts HTTPOptions) (*http.Client, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ConnectTimeout", &opts.ConnectTimeout, DefaultConnectTimeout},
		{"TLSHandshakeTimeout", &opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout},
		{"Timeout", &opts.Timeout, DefaultRequestTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("platform: HTTP client: %s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case opts.MaxResponseBytes < 0:
		return nil, errors.New("platform: HTTP client: MaxResponseBytes must not be negative")
	case opts.MaxResponseBytes == 0:
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	userAgent := "ltikeys"
	if opts.Version != "" {
		if !isToken(opts.Version) {
			return nil, errors.New("platform: HTTP client: Version must be a header token (letters, digits, .-_ and the like)")
		}
		userAgent += "/" + opts.Version
	}
	if opts.Proxy == nil {
		opts.Proxy = http.ProxyFromEnvironment
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	g := &guard{
		allowPrivate:   opts.AllowPrivate,
		resolver:       opts.Resolver,
		connectTimeout: opts.ConnectTimeout,
		dial:           opts.dial,
	}
	base := &http.Transport{
		// The proxy was chosen by guardedTransport.RoundTrip, which put it
		// in the request's context; asking opts.Proxy again could answer
		// differently.
		Proxy: func(r *http.Request) (*url.URL, error) {
			u, _ := r.Context().Value(proxyKey{}).(*url.URL)
			return u, nil
		},
		DialContext:           g.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		TLSHandshakeTimeout:   opts.TLSHandshakeTimeout,
		ForceAttemptHTTP2:     true, // a custom DialContext turns HTTP/2 off unless asked
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: &guardedTransport{
			base:      base,
			proxy:     opts.Proxy,
			userAgent: userAgent,
			maxBytes:  opts.MaxResponseBytes,
			guard:     g,
		},
		// guardedTransport turns every redirect into an error before the
		// client sees it; this is the second line.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return &RedirectError{StatusCode: req.Response.StatusCode}
		},
		Timeout: opts.Timeout,
	}, nil
}

// proxyKey is the context key under which guardedTransport.RoundTrip
// leaves the proxy URL of a proxied request, for the transport's Proxy and
// the guard's DialContext.
type proxyKey struct{}

// guardedTransport applies the scheme rule, the proxy choice, the
// User-Agent, the redirect refusal and the size bound around base.
type guardedTransport struct {
	base      *http.Transport
	proxy     func(*http.Request) (*url.URL, error)
	userAgent string
	maxBytes  int64
	guard     *guard
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkEndpoint(req.URL); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	proxyURL, err := t.proxy(req)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("choose a proxy: %w", err)
	}
	if proxyURL != nil {
		host := req.URL.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			if err := t.guard.check(host, ip, IsLoopbackHost(host)); err != nil {
				closeBody(req)
				return nil, err
			}
		}
		ctx = context.WithValue(ctx, proxyKey{}, proxyURL)
	}
	out := req.Clone(ctx)
	if out.Header.Get("User-Agent") == "" {
		out.Header.Set("User-Agent", t.userAgent)
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified:
		resp.Body.Close()
		return nil, &RedirectError{StatusCode: resp.StatusCode}
	case resp.ContentLength > t.maxBytes:
		resp.Body.Close()
		return nil, tooLarge(t.maxBytes)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.maxBytes, limit: t.maxBytes}
	return resp, nil
}

// closeBody closes the body of a request that will not be sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// checkEndpoint applies the scheme rule of NewHTTPClient to u.
func checkEndpoint(u *url.URL) error {
	switch {
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: the URL has no host", ErrRefused)
	case u.User != nil:
		return fmt.Errorf("%w: the URL must not carry credentials", ErrRefused)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%w: the URL must use https (http is allowed only for a loopback host)", ErrRefused)
	}
	return fmt.Errorf("%w: the URL must use https", ErrRefused)
}

// IsLoopbackHost reports whether host, a URL's host without brackets or
// port, is localhost or a loopback IP literal: the hosts a developer's
// platform runs on, which registration validation accepts over http.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// limitedBody reads at most limit bytes of rc and fails, rather than
// stopping, when there are more.
type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, tooLarge(b.limit)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

func tooLarge(limit int64) error {
	return fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, limit)
}

// guard checks the addresses the transport dials.
type guard struct {
	allowPrivate   bool
	resolver       Resolver
	connectTimeout time.Duration
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext resolves addr's host, checks every address it resolves to,
// and connects to the checked addresses in turn. Connections to a proxy
// (a request RoundTrip marked as proxied) are not checked.
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, proxied := ctx.Value(proxyKey{}).(*url.URL); proxied {
		return g.connect(ctx, network, addr, nil)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portText, err)
	}
	loopbackOK := IsLoopbackHost(host)
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		if addrs, err = g.resolver.LookupNetIP(ctx, lookup, host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	// Every address is checked before any is tried: a name that resolves
	// to one refused address is refused, whichever address would have
	// answered first.
	for _, ip := range addrs {
		if err := g.check(host, ip, loopbackOK); err != nil {
			return nil, err
		}
	}
	control := func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot check the address %q", ErrRefused, address)
		}
		return g.check(host, ap.Addr(), loopbackOK)
	}
	var first error
	for _, ip := range addrs {
		conn, err := g.connect(ctx, network, netip.AddrPortFrom(ip.Unmap().WithZone(""), uint16(port)).String(), control)
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// connect opens a TCP connection to addr, an address already checked
// (or a proxy's), running control on the socket's address before it
// connects.
func (g *guard) connect(ctx context.Context, network, addr string, control func(network, address string, c syscall.RawConn) error) (net.Conn, error) {
	if g.dial != nil {
		return g.dial(ctx, network, addr)
	}
	d := net.Dialer{Timeout: g.connectTimeout, KeepAlive: 30 * time.Second, Control: control}
	return d.DialContext(ctx, network, addr)
}

// check returns nil if the guard lets host's address ip be reached, and
// an *AddressError otherwise. loopbackOK says that host is itself
// loopback (localhost or a loopback literal).
func (g *guard) check(host string, ip netip.Addr, loopbackOK bool) error {
	ip = ip.Unmap().WithZone("")
	class := addressClass(ip)
	switch {
	case class == "":
		return nil
	case class == classUnspecified || class == classMulticast:
	case class == classLoopback && loopbackOK:
		return nil
	case g.allowPrivate:
		return nil
	}
	return &AddressError{Host: host, Addr: ip, Class: class}
}

// Address classes of AddressError.Class.
const (
	classUnspecified = "unspecified"
	classMulticast   = "multicast or broadcast"
	classLoopback    = "loopback"
	classPrivate     = "private"
	classLinkLocal   = "link-local"
	classShared      = "shared (carrier-grade NAT)"
	classReserved    = "reserved or special-purpose"
)

// Special-purpose IPv4 blocks that are not globally reachable, from the
// IANA IPv4 Special-Purpose Address Registry, beyond those netip names.
var reservedV4 = []netip.Prefix{
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
}

var (
	thisNetworkV4 = netip.MustParsePrefix("0.0.0.0/8")
	sharedV4      = netip.MustParsePrefix("100.64.0.0/10")
	broadcastV4   = netip.MustParseAddr("255.255.255.255")
	globalV6      = netip.MustParsePrefix("2000::/3")
	nat64V6       = netip.MustParsePrefix("64:ff9b::/96")
)

// Blocks inside 2000::/3 that are not globally reachable, or embed an
// IPv4 address the guard could not check (Teredo, 6to4).
var reservedV6 = []netip.Prefix{
	netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments, Teredo
	netip.MustParsePrefix("2001:db8::/32"), // documentation
	netip.MustParsePrefix("2002::/16"),     // 6to4
	netip.MustParsePrefix("3fff::/20"),     // documentation
	netip.MustParsePrefix("5f00::/16"),     // segment routing
}

// addressClass returns "" for a global unicast address, and otherwise
// the class that keeps ip from being one. ip is unmapped, without zone.
// An address in the NAT64 prefix 64:ff9b::/96 is classed as the IPv4
// address it embeds.
func addressClass(ip netip.Addr) string {
	if ip.Is6() && nat64V6.Contains(ip) {
		b := ip.As16()
		return addressClass(netip.AddrFrom4([4]byte(b[12:])))
	}
	switch {
	case ip.IsUnspecified(), ip.Is4() && thisNetworkV4.Contains(ip):
		return classUnspecified
	case ip.IsMulticast(), ip == broadcastV4:
		return classMulticast
	case ip.IsLoopback():
		return classLoopback
	case ip.IsPrivate():
		return classPrivate
	case ip.IsLinkLocalUnicast():
		return classLinkLocal
	case ip.Is4() && sharedV4.Contains(ip):
		return classShared
	case ip.Is6() && !globalV6.Contains(ip):
		return classReserved
	}
	reserved := reservedV4
	if ip.Is6() {
		reserved = reservedV6
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return classReserved
		}
	}
	return ""
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
