package main_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn is one TCP connection to an HTTP listener, spoken to byte for
// byte so that the test decides when it opens, idles and closes.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// send writes a GET of path with the given extra header lines.
func (c *rawConn) send(t *testing.T, path string, headers ...string) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: ltikeys.test\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatalf("send GET %s: %v", path, err)
	}
}

// response reads one response, body included, waiting at most d.
func (c *rawConn) response(d time.Duration) (int, error) {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// get sends GET path and fails the test unless the answer is 200.
func (c *rawConn) get(t *testing.T, what, path string) {
	t.Helper()
	c.send(t, path)
	if code, err := c.response(30 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("%s: GET %s = %d, %v; want 200", what, path, code, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestServeHTTPHeaderLimit sends the public listener requests whose
// request line and headers are exactly --http-max-header-bytes' default
// (16 KiB), and one byte more than net/http reads beyond it: the first is
// served, the second answered 431. Before the limit, 1 MiB passed.
func TestServeHTTPHeaderLimit(t *testing.T) {
	p := startServe(t, t.TempDir(), nil)
	const (
		limit = 16 << 10
		slack = 4096 // what net/http reads beyond MaxHeaderBytes
	)
	// request returns a GET of the JWKS whose request line and headers,
	// blank line included, are n bytes long.
	request := func(n int) string {
		head := "GET /.well-known/jwks.json HTTP/1.1\r\nHost: ltikeys.test\r\nX-Pad: "
		tail := "\r\n\r\n"
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	for _, tt := range []struct {
		name string
		size int
		want int
	}{
		{"at the limit", limit, http.StatusOK},
		{"over the limit", limit + slack + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"far over the limit", 256 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, p.httpAddr)
			req := request(tt.size)
			if len(req) != tt.size {
				t.Fatalf("built a request of %d bytes, want %d", len(req), tt.size)
			}
			// The server may answer and close before it has read all of
			// a request it refuses, so a failed write is no failure.
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(c, req)
			code, err := c.response(30 * time.Second)
			if err != nil || code != tt.want {
				t.Errorf("%d bytes of headers: %d, %v; want %d", tt.size, code, err, tt.want)
			}
		})
	}
	// The listener still serves after the refusals.
	dialRaw(t, p.httpAddr).get(t, "after the refusals", "/.well-known/jwks.json")
}

// TestServeHTTPConnectionLimit runs serve with --http-max-connections 3:
// three idle keep-alive connections are accepted and served, a fourth
// connects but gets no answer until one of the three closes, and then it
// does; the metrics listener has a limit of its own, as large.
func TestServeHTTPConnectionLimit(t *testing.T) {
	const limit = 3
	p := startServe(t, t.TempDir(), nil, "--http-max-connections", fmt.Sprint(limit), "--metrics-addr", "127.0.0.1:0")
	for _, l := range []struct{ name, addr, path string }{
		{"public", p.httpAddr, "/.well-known/jwks.json"},
		{"metrics", p.metricsAddr, "/metrics"},
	} {
		t.Run(l.name, func(t *testing.T) {
			var held []*rawConn
			for i := range limit {
				c := dialRaw(t, l.addr)
				c.get(t, fmt.Sprintf("connection %d", i+1), l.path)
				held = append(held, c)
			}
			// Idle and kept alive, each is served again.
			for i, c := range held {
				c.get(t, fmt.Sprintf("connection %d again", i+1), l.path)
			}

			extra := dialRaw(t, l.addr)
			extra.send(t, l.path)
			if code, err := extra.response(time.Second); !isTimeout(err) {
				t.Fatalf("connection %d while %d are open: %d, %v; want no answer", limit+1, limit, code, err)
			}
			held[0].Close()
			if code, err := extra.response(30 * time.Second); err != nil || code != http.StatusOK {
				t.Fatalf("connection %d after one closed: %d, %v; want 200", limit+1, code, err)
			}
			held[1].get(t, "connection 2 after the fourth was served", l.path)
		})
	}
}

// TestServeHTTPIdleTimeout runs serve with --http-idle-timeout 1s: a
// keep-alive connection is served twice in a row, then closed by serve
// once it has been idle, well before the 30 s default would.
func TestServeHTTPIdleTimeout(t *testing.T) {
	p := startServe(t, t.TempDir(), nil, "--http-idle-timeout", "1s")
	c := dialRaw(t, p.httpAddr)
	c.get(t, "first request", "/.well-known/jwks.json")
	c.get(t, "second request on the same connection", "/healthz")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := c.r.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Errorf("read from an idle connection = %d bytes, %v; want EOF: serve closes it", n, err)
	}
}

// TestServeRefusesBadHTTPLimits checks that a limit of zero is refused
// rather than read as no limit.
func TestServeRefusesBadHTTPLimits(t *testing.T) {
	for _, flag := range []string{"--http-max-connections", "--http-idle-timeout", "--http-max-header-bytes"} {
		value := "0"
		if flag == "--http-idle-timeout" {
			value = "0s"
		}
		res := runCLI(t, t.TempDir(), nil, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", flag, value)
		if res.exit == 0 || !strings.Contains(res.stderr, flag+": must be positive") {
			t.Errorf("serve %s %s: exit %d, stderr:\n%s\nwant a refusal naming %s", flag, value, res.exit, res.stderr, flag)
		}
	}
}
