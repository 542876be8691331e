package main

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/spf13/pflag"
)

// Defaults of the HTTP listeners' limits.
const (
	defaultHTTPMaxConnections = 1000
	defaultHTTPIdleTimeout    = 30 * time.Second
	defaultHTTPMaxHeaderBytes = 16 << 10
)

// netHTTPHeaderSlack is how many bytes net/http reads beyond
// http.Server.MaxHeaderBytes before it answers 431.
const netHTTPHeaderSlack = 4096

// httpLimits bound what the clients of serve's HTTP listeners (the public
// one and the metrics one) can hold: open connections, which share the
// process's descriptor limit with gRPC and the database pool, the time a
// keep-alive connection may sit idle, and the size of a request's headers.
type httpLimits struct {
	maxConnections int
	idleTimeout    time.Duration
	maxHeaderBytes int
}

func (l *httpLimits) register(flags *pflag.FlagSet) {
	flags.IntVar(&l.maxConnections, "http-max-connections", defaultHTTPMaxConnections, "the most connections the public HTTP listener holds open at once (and, separately, the metrics listener); a connection beyond them waits unanswered in the kernel's accept queue until one closes")
	flags.DurationVar(&l.idleTimeout, "http-idle-timeout", defaultHTTPIdleTimeout, "how long an HTTP keep-alive connection may wait for its next request before serve closes it; a proxy in front should drop its idle connections sooner")
	flags.IntVar(&l.maxHeaderBytes, "http-max-header-bytes", defaultHTTPMaxHeaderBytes, fmt.Sprintf("the largest request line and headers, in bytes, the HTTP listeners read; beyond them (and the %d bytes net/http allows on top) a request is answered 431", netHTTPHeaderSlack))
}

func (l *httpLimits) validate() error {
	switch {
	case l.maxConnections <= 0:
		return fmt.Errorf("--http-max-connections: must be positive, got %d", l.maxConnections)
	case l.idleTimeout <= 0:
		return fmt.Errorf("--http-idle-timeout: must be positive, got %s", l.idleTimeout)
	case l.maxHeaderBytes <= 0:
		return fmt.Errorf("--http-max-header-bytes: must be positive, got %d", l.maxHeaderBytes)
	}
	return nil
}

// listen opens a TCP listener on addr that holds at most
// --http-max-connections connections open at once.
func (l *httpLimits) listen(addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return limitListener(lis.(*net.TCPListener), l.maxConnections), nil
}

// limitListener returns a listener that holds at most n of lis's
// connections open at once. While n are open, Accept waits for one to
// close before it accepts another, so a connection beyond them waits in the
// kernel's accept queue: its handshake is complete, but nothing reads from
// it until it is accepted; once the queue is full too, new connections are
// refused or time out.
//
// It is golang.org/x/net/netutil.LimitListener but for one thing: its
// connections are *net.TCPConn, so they keep CloseWrite, with which
// net/http half-closes a connection it is about to drop (a 431, a body it
// will not read) so that the client reads the response before the reset.
func limitListener(lis *net.TCPListener, n int) net.Listener {
	return &limitedListener{TCPListener: lis, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

type limitedListener struct {
	*net.TCPListener
	// slots holds one value per open connection.
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	c, err := l.AcceptTCP()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{TCPConn: c, release: func() { <-l.slots }}, nil
}

func (l *limitedListener) Close() error {
	err := l.TCPListener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	*net.TCPConn
	releaseOnce sync.Once
	release     func()
}

func (c *limitedConn) Close() error {
	err := c.TCPConn.Close()
	c.releaseOnce.Do(c.release)
	return err
}
