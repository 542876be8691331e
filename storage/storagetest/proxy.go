package storagetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a database server, so that a test can
// take the database away from the code under test and give it back without
// touching the server: Stop cuts every connection through it and refuses
// new ones, as a stopped server does, and Restore accepts them again, on
// the same address. Safe for concurrent use.
type Proxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	lis   net.Listener // nil while stopped
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy returns a running proxy to target (host:port) on a loopback
// address of its own. It stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("storagetest: proxy: %v", err)
	}
	p := &Proxy{t: t, addr: lis.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.start(lis)
	t.Cleanup(func() {
		p.Stop()
		p.wg.Wait()
	})
	return p
}

// ProxyURL returns a proxy to the server of databaseURL (a postgres://
// URL) and databaseURL with its host replaced by the proxy's.
func ProxyURL(t testing.TB, databaseURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("storagetest: proxy: the database URL does not parse")
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := NewProxy(t, target)
	u.Host = p.Addr()
	return p, u.String()
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) start(lis net.Listener) {
	p.lis = lis
	p.wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

// Stop closes every connection through the proxy and stops listening, so
// that new connections are refused. Stopping a stopped proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore listens again on the proxy's address. Restoring a running proxy
// does nothing.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		return
	}
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("storagetest: proxy: listen again on %s: %v", p.addr, err)
	}
	p.start(lis)
}

// track records c as open, unless the proxy stopped meanwhile.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) forward(client net.Conn) {
	defer client.Close()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	if !p.track(upstream) {
		return
	}
	defer p.untrack(upstream)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
}
