package platform_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// errDialled is what the dial hook of guardClient answers: the guard let
// the address through.
var errDialled = errors.New("dialled")

// guardClient returns a client resolving platform.example to addrs, whose
// admitted connections go to dial (nil: fail with errDialled after
// recording the address), and the addresses it was asked to connect to.
func guardClient(t *testing.T, opts platform.HTTPOptions, addrs []netip.Addr, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*http.Client, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var dialled []string
	if opts.Resolver == nil {
		opts.Resolver = platformtest.Resolver{"platform.example": addrs}
	}
	if opts.Proxy == nil {
		opts.Proxy = noProxy
	}
	platform.SetDial(&opts, func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		mu.Unlock()
		if dial == nil {
			return nil, errDialled
		}
		return dial(ctx, network, addr)
	})
	hc, err := platform.NewHTTPClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return hc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), dialled...)
	}
}

func TestGuardAddresses(t *testing.T) {
	for _, c := range []struct {
		addr string
		// class is the refusal's class by default, "" for an address the
		// guard lets through.
		class string
	}{
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "link-local"},
		{"127.0.0.1", "loopback"},
		{"127.1.2.3", "loopback"},
		{"100.64.0.1", "shared (carrier-grade NAT)"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"224.0.0.1", "multicast or broadcast"},
		{"255.255.255.255", "multicast or broadcast"},
		{"192.0.2.1", "reserved or special-purpose"},
		{"198.18.0.1", "reserved or special-purpose"},
		{"240.0.0.1", "reserved or special-purpose"},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"fe80::1", "link-local"},
		{"fd00::1", "private"},
		{"ff02::1", "multicast or broadcast"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:127.0.0.1", "loopback"},
		{"64:ff9b::a00:1", "private"},        // NAT64 of 10.0.0.1
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of 169.254.169.254
		{"2001:db8::1", "reserved or special-purpose"},
		{"2002:a00:1::1", "reserved or special-purpose"}, // 6to4 of 10.0.0.1
		{"fec0::1", "reserved or special-purpose"},
		{"100::1", "reserved or special-purpose"},
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"2606:4700:4700::1111", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
	} {
		addr := netip.MustParseAddr(c.addr)
		for _, allowPrivate := range []bool{false, true} {
			refused := c.class != "" && (!allowPrivate || c.class == "unspecified" || c.class == "multicast or broadcast")
			name := c.addr
			if allowPrivate {
				name += " AllowPrivate"
			}
			t.Run(name, func(t *testing.T) {
				hc, dialled := guardClient(t, platform.HTTPOptions{AllowPrivate: allowPrivate}, []netip.Addr{addr}, nil)
				_, err := hc.Get("https://platform.example:8443/token")
				var ae *platform.AddressError
				if !refused {
					want := netip.AddrPortFrom(addr.Unmap(), 8443).String()
					if !errors.Is(err, errDialled) || len(dialled()) != 1 || dialled()[0] != want {
						t.Fatalf("got %v, dialled %q; want %s dialled", err, dialled(), want)
					}
					return
				}
				if !errors.As(err, &ae) || !errors.Is(err, platform.ErrRefused) {
					t.Fatalf("got %v, want an *AddressError", err)
				}
				if ae.Class != c.class || ae.Host != "platform.example" || ae.Addr != addr.Unmap() {
					t.Errorf("refused %s %s as %q, want %s %s as %q", ae.Host, ae.Addr, ae.Class, "platform.example", addr, c.class)
				}
				if d := dialled(); len(d) != 0 {
					t.Errorf("dialled %q", d)
				}
			})
		}
	}
}

func TestGuardEveryAddressChecked(t *testing.T) {
	for _, addrs := range [][]string{
		{"8.8.8.8", "10.0.0.1"},
		{"169.254.169.254", "8.8.8.8"},
		{"2606:4700:4700::1111", "::1"},
	} {
		t.Run(strings.Join(addrs, ","), func(t *testing.T) {
			var list []netip.Addr
			for _, a := range addrs {
				list = append(list, netip.MustParseAddr(a))
			}
			hc, dialled := guardClient(t, platform.HTTPOptions{}, list, nil)
			_, err := hc.Get("https://platform.example/token")
			var ae *platform.AddressError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *AddressError", err)
			}
			if d := dialled(); len(d) != 0 {
				t.Errorf("dialled %q", d)
			}
		})
	}
	// Unresolvable: not refused, unavailable.
	hc, _ := guardClient(t, platform.HTTPOptions{}, nil, nil)
	_, err := hc.Get("https://nowhere.example/token")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || errors.Is(err, platform.ErrRefused) {
		t.Errorf("an unknown name: %v, want a DNS error", err)
	}
}

// TestGuardReachesPlatform follows a token exchange to the fake through
// names resolving to private addresses: refused by default, the fake
// reached with AllowPrivate.
func TestGuardReachesPlatform(t *testing.T) {
	for _, c := range []struct {
		addr string
		// real: the fake is reached at this address itself; otherwise the
		// admitted connection is taken to the fake's address.
		real bool
	}{
		{"10.0.0.1", false},
		{"169.254.169.254", false},
		{"127.0.0.1", true},
	} {
		t.Run(c.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(c.addr)
			resolver := platformtest.Resolver{"platform.example": {addr}}
			f := newFixture(t, fixtureOptions{host: "platform.example", http: platform.HTTPOptions{Resolver: resolver}})
			_, err := f.tc.Token(t.Context(), f.request(scopeLineItem))
			var ae *platform.AddressError
			if !errors.As(err, &ae) || ae.Addr != addr {
				t.Fatalf("by default: %v, want an *AddressError for %s", err, addr)
			}
			if got := f.obs.outcome(platform.OutcomeRefused); got != 1 {
				t.Errorf("%d refused outcomes, want 1", got)
			}

			opts := platform.HTTPOptions{AllowPrivate: true, Resolver: resolver, RootCAs: f.p.CA.Pool, Proxy: noProxy}
			var dialled []string
			if !c.real {
				platform.SetDial(&opts, func(ctx context.Context, network, a string) (net.Conn, error) {
					dialled = append(dialled, a)
					var d net.Dialer
					return d.DialContext(ctx, network, f.p.Addr)
				})
			}
			hc, err := platform.NewHTTPClient(opts)
			if err != nil {
				t.Fatal(err)
			}
			tc, err := platform.NewTokenClient(platform.TokenClientOptions{HTTPClient: hc})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tc.Token(t.Context(), f.request(scopeLineItem))
			if err != nil {
				t.Fatalf("with AllowPrivate: %v", err)
			}
			if reqs := f.p.Requests(); len(reqs) != 1 || reqs[0].AccessToken != tok.AccessToken {
				t.Errorf("the token is not the fake's")
			}
			_, port, _ := net.SplitHostPort(f.p.Addr)
			if want := net.JoinHostPort(c.addr, port); !c.real && (len(dialled) != 1 || dialled[0] != want) {
				t.Errorf("dialled %q, want %s", dialled, want)
			}
		})
	}
}

func TestGuardLoopbackEndpoint(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	_, port, _ := net.SplitHostPort(f.p.Addr)
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{
		RootCAs:  f.p.CA.Pool,
		Proxy:    noProxy,
		Resolver: platformtest.Resolver{"localhost": {netip.MustParseAddr("127.0.0.1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "LocalHost"} {
		resp, err := hc.Get("https://" + net.JoinHostPort(host, port) + platformtest.TokenPath)
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want the fake's 405 to a GET", host, resp.StatusCode)
		}
	}
	if n := f.p.Count(); n != 3 {
		t.Errorf("the platform got %d requests, want 3", n)
	}

	// localhost is allowed loopback, not anything it resolves to.
	hc, dialled := guardClient(t, platform.HTTPOptions{Resolver: platformtest.Resolver{"localhost": {netip.MustParseAddr("10.0.0.1")}}}, nil, nil)
	_, err = hc.Get("https://localhost/token")
	var ae *platform.AddressError
	if !errors.As(err, &ae) || ae.Class != "private" || len(dialled()) != 0 {
		t.Errorf("localhost resolving to 10.0.0.1: %v, want refused", err)
	}
}

func TestSchemes(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(plain.Close)
	hc, dialled := guardClient(t, platform.HTTPOptions{}, []netip.Addr{netip.MustParseAddr("8.8.8.8")}, func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	resp, err := hc.Get(plain.URL) // http://127.0.0.1:port
	if err != nil {
		t.Fatalf("http to a loopback literal: %v", err)
	}
	resp.Body.Close()
	for _, u := range []string{
		"http://platform.example/token",
		"http://8.8.8.8/token",
		"ftp://platform.example/token",
		"https://user:secret@platform.example/token",
	} {
		_, err := hc.Get(u)
		if !errors.Is(err, platform.ErrRefused) {
			t.Errorf("%s: %v, want refused", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && !strings.Contains(u, "secret") {
			t.Errorf("%s: the message shows credentials: %v", u, err)
		}
	}
	if d := dialled(); len(d) != 1 {
		t.Errorf("dialled %q, want the loopback server only", d)
	}
}

func TestNoRedirects(t *testing.T) {
	var mu sync.Mutex
	targetHits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/target":
			mu.Lock()
			targetHits++
			mu.Unlock()
			io.WriteString(w, "followed")
		case "/not-modified":
			w.WriteHeader(http.StatusNotModified)
		default:
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			w.Header().Set("Location", "/target")
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(srv.Close)
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{Proxy: noProxy})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{300, 301, 302, 303, 307, 308} {
		_, err := hc.Get(srv.URL + "/" + strconv.Itoa(code))
		var re *platform.RedirectError
		if !errors.As(err, &re) || re.StatusCode != code || !errors.Is(err, platform.ErrRefused) {
			t.Errorf("%d: %v, want a *RedirectError", code, err)
		}
		if err != nil && strings.Contains(err.Error(), "/target") {
			t.Errorf("%d: the message shows the Location: %v", code, err)
		}
	}
	mu.Lock()
	if targetHits != 0 {
		t.Errorf("a redirect was followed %d times", targetHits)
	}
	mu.Unlock()
	resp, err := hc.Get(srv.URL + "/not-modified")
	if err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("304: %v, %v; want the response", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestResponseLimit(t *testing.T) {
	const limit = 1024
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", strconv.Itoa(limit+1))
			w.Write(bytes.Repeat([]byte("x"), limit+1))
		case "/chunked":
			w.Write(bytes.Repeat([]byte("x"), limit))
			w.(http.Flusher).Flush()
			w.Write([]byte("y"))
		case "/exact":
			w.(http.Flusher).Flush()
			w.Write(bytes.Repeat([]byte("x"), limit))
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(make([]byte, 1<<20))
			zw.Close()
		}
	}))
	t.Cleanup(srv.Close)
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{Proxy: noProxy, MaxResponseBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	read := func(path string) ([]byte, error) {
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	for _, path := range []string{"/length", "/chunked", "/gzip"} {
		if _, err := read(path); !errors.Is(err, platform.ErrResponseTooLarge) {
			t.Errorf("%s: %v, want ErrResponseTooLarge", path, err)
		}
	}
	if body, err := read("/exact"); err != nil || len(body) != limit {
		t.Errorf("/exact: %d bytes, %v; want %d bytes", len(body), err, limit)
	}
}

func TestTimeouts(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop) // before the servers' cleanups, which wait for their handlers
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(slow.Close)

	// A listener that accepts connections and never says a word.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	hc, err := platform.NewHTTPClient(platform.HTTPOptions{Proxy: noProxy, Timeout: 200 * time.Millisecond, TLSHandshakeTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{slow.URL, "https://" + silent.Addr().String()} {
		_, err := hc.Get(u)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v, want a timeout", u, err)
		}
	}

	// A slow platform, through a token exchange.
	f := newFixture(t, fixtureOptions{http: platform.HTTPOptions{Timeout: 200 * time.Millisecond}})
	f.p.SetAnswer(platformtest.Answer{Hold: stop})
	_, err = f.tc.Token(t.Context(), f.request(scopeLineItem))
	var ue *platform.UnavailableError
	if !errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow platform: %v, want an *UnavailableError", err)
	}
}

func TestUserAgent(t *testing.T) {
	agents := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { agents <- r.UserAgent() }))
	t.Cleanup(srv.Close)
	for _, c := range []struct{ version, want string }{{"1.2.3", "ltikeys/1.2.3"}, {"", "ltikeys"}, {"v0.9.0-rc.1+abc", "ltikeys/v0.9.0-rc.1+abc"}} {
		hc, err := platform.NewHTTPClient(platform.HTTPOptions{Proxy: noProxy, Version: c.version})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := <-agents; got != c.want {
			t.Errorf("version %q: User-Agent %q, want %q", c.version, got, c.want)
		}
	}
}

func TestHTTPOptionsChecked(t *testing.T) {
	for name, o := range map[string]platform.HTTPOptions{
		"version with a space":      {Version: "1.2 beta"},
		"version with a line break": {Version: "1\r\nX: y"},
		"negative timeout":          {Timeout: -time.Second},
		"negative connect timeout":  {ConnectTimeout: -time.Second},
		"negative handshake":        {TLSHandshakeTimeout: -time.Second},
		"negative size":             {MaxResponseBytes: -1},
	} {
		if _, err := platform.NewHTTPClient(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, o := range map[string]platform.TokenClientOptions{
		"no HTTP client":  {},
		"negative margin": {HTTPClient: http.DefaultClient, ExpiryMargin: -time.Second},
		"negative size":   {HTTPClient: http.DefaultClient, MaxTokens: -1},
		"negative fetch":  {HTTPClient: http.DefaultClient, FetchTimeout: -time.Second},
	} {
		if _, err := platform.NewTokenClient(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// connectProxy is an HTTP CONNECT proxy on 127.0.0.1 that resolves
// platform.example to 127.0.0.1 itself.
type connectProxy struct {
	URL *url.URL

	mu      sync.Mutex
	targets []string
	conns   []net.Conn
}

func newConnectProxy(t *testing.T) *connectProxy {
	t.Helper()
	cp := &connectProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		cp.mu.Lock()
		cp.targets = append(cp.targets, r.Host)
		cp.mu.Unlock()
		host, port, _ := net.SplitHostPort(r.Host)
		if host != "platform.example" {
			http.Error(w, "unknown host", http.StatusBadGateway)
			return
		}
		up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		cp.mu.Lock()
		cp.conns = append(cp.conns, conn, up)
		cp.mu.Unlock()
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() {
			io.Copy(up, brw)
			up.Close()
		}()
		io.Copy(conn, up)
		conn.Close()
	}))
	t.Cleanup(func() {
		srv.Close()
		cp.mu.Lock()
		defer cp.mu.Unlock()
		for _, c := range cp.conns {
			c.Close()
		}
	})
	cp.URL, _ = url.Parse(srv.URL)
	return cp
}

func (cp *connectProxy) Targets() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.targets...)
}

// TestProxy checks the guard's rule for proxies: the proxy (here on
// loopback) is reached, the target's name is the proxy's to resolve
// (platform.example resolves to a private address here, which would be
// refused), and a target written as a private IP literal is refused
// before the proxy is asked.
func TestProxy(t *testing.T) {
	cp := newConnectProxy(t)
	resolver := platformtest.Resolver{"platform.example": {netip.MustParseAddr("10.0.0.1")}}
	f := newFixture(t, fixtureOptions{host: "platform.example", http: platform.HTTPOptions{
		Resolver: resolver,
	}})
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{
		RootCAs:  f.p.CA.Pool,
		Resolver: resolver,
		Proxy:    func(*http.Request) (*url.URL, error) { return cp.URL, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	tc, err := platform.NewTokenClient(platform.TokenClientOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Token(t.Context(), f.request(scopeLineItem)); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	_, port, _ := net.SplitHostPort(f.p.Addr)
	if got := cp.Targets(); len(got) != 1 || got[0] != "platform.example:"+port {
		t.Errorf("the proxy was asked for %q", got)
	}

	_, err = hc.Get("https://10.0.0.1/token")
	var ae *platform.AddressError
	if !errors.As(err, &ae) {
		t.Errorf("a private literal through the proxy: %v, want an *AddressError", err)
	}
	if got := cp.Targets(); len(got) != 1 {
		t.Errorf("the proxy was asked for %q", got)
	}
}

// TestProxyFromEnvironment checks that HTTPS_PROXY and NO_PROXY are
// honoured by default. http.ProxyFromEnvironment reads the environment
// once per process, so the check runs in a process of its own.
func TestProxyFromEnvironment(t *testing.T) {
	const child = "LTIKEYS_PLATFORM_PROXY_CHILD"
	if os.Getenv(child) != "1" {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestProxyFromEnvironment$", "-test.count=1")
		cmd.Env = append(os.Environ(), child+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	cp := newConnectProxy(t)
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		t.Setenv(name, cp.URL.String())
	}
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		t.Setenv(name, "direct.example")
	}
	private := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	resolver := platformtest.Resolver{"platform.example": private, "direct.example": private}
	f := newFixture(t, fixtureOptions{host: "platform.example", http: platform.HTTPOptions{Resolver: resolver}})
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{RootCAs: f.p.CA.Pool, Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get(f.p.TokenURL)
	if err != nil {
		t.Fatalf("through HTTPS_PROXY: %v", err)
	}
	resp.Body.Close()
	if got := cp.Targets(); len(got) != 1 {
		t.Errorf("the proxy was asked for %q", got)
	}
	_, err = hc.Get("https://direct.example/token")
	var ae *platform.AddressError
	if !errors.As(err, &ae) {
		t.Errorf("a NO_PROXY host resolving to 10.0.0.1: %v, want an *AddressError", err)
	}
	if got := cp.Targets(); len(got) != 1 {
		t.Errorf("the proxy was asked for %q", got)
	}
}
