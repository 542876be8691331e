package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logRecords parses JSON log output.
func logRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		recs = append(recs, rec)
	}
	return recs
}

// dialFrom returns a dial option that connects from the local address ip.
func dialFrom(ip string) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return d.DialContext(ctx, "tcp", addr)
	})
}

// TestFailedAuthenticationThrottle: a burst of wrong tokens from one peer
// address runs out its budget, and from then on every call from that
// address is RESOURCE_EXHAUSTED without its token being hashed, a valid
// token's included, until the budget refills at the configured rate. A
// peer at another address is unaffected. The log holds one audit line per
// address and interval, and one summary line counting the rest, however
// many calls are refused.
func TestFailedAuthenticationThrottle(t *testing.T) {
	clock := newFakeClock()
	const rate, burst = 5, 20
	env := startGuarded(t, guardedConfig{limits: server.DefaultLimits(), auth: func(c *server.AuthConfig) {
		c.FailureRate, c.FailureBurst, c.Now = rate, burst, clock.Now
	}})
	throttled := ltikeysv1.NewKeyServiceClient(env.dial(t, dialFrom("127.0.0.1")))
	other := ltikeysv1.NewKeyServiceClient(env.dial(t, dialFrom("127.0.0.2")))
	wrongToken, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wrong := withAuthorization(ctx, "Bearer "+wrongToken)
	valid := withAuthorization(ctx, "Bearer "+env.token)
	req := &ltikeysv1.SignJwtRequest{ClaimsJson: `{"sub":"1"}`}
	sign := func(keys ltikeysv1.KeyServiceClient, ctx context.Context) codes.Code {
		_, err := keys.SignJwt(ctx, req)
		return status.Code(err)
	}

	for i := range burst {
		if got := sign(throttled, wrong); got != codes.Unauthenticated {
			t.Fatalf("wrong token %d of the burst: %v, want UNAUTHENTICATED", i+1, got)
		}
	}
	hashed := env.hashed.Load()
	const over = 500
	for i := range over {
		ctxs := []context.Context{wrong, valid, ctx} // wrong, valid, no token
		if got := sign(throttled, ctxs[i%len(ctxs)]); got != codes.ResourceExhausted {
			t.Fatalf("call %d after the burst: %v, want RESOURCE_EXHAUSTED", i+1, got)
		}
	}
	if n := env.hashed.Load() - hashed; n != 0 {
		t.Errorf("%d tokens hashed while the address was over its budget", n)
	}

	if got := sign(other, valid); got != codes.OK {
		t.Errorf("another address, valid token: %v, want OK", got)
	}
	if got := sign(other, wrong); got != codes.Unauthenticated {
		t.Errorf("another address, wrong token: %v, want UNAUTHENTICATED", got)
	}

	// The budget refills at the rate: one failed authentication per 1/rate.
	clock.Advance(time.Second / rate)
	if got := sign(throttled, valid); got != codes.OK {
		t.Errorf("valid token once the budget refilled: %v, want OK", got)
	}
	if got := sign(throttled, wrong); got != codes.Unauthenticated {
		t.Errorf("wrong token once the budget refilled: %v, want UNAUTHENTICATED", got)
	}
	if got := sign(throttled, valid); got != codes.ResourceExhausted {
		t.Errorf("valid token after that failure: %v, want RESOURCE_EXHAUSTED", got)
	}

	// Everything so far is one interval: per address one audit line for
	// the refusals, and no summary yet.
	refusals := func(peer string) (audit []map[string]any, summaries []map[string]any, loud int) {
		for _, rec := range logRecords(t, env.logs.String()) {
			p, _ := rec["peer"].(string)
			if p != peer && !strings.HasPrefix(p, peer+":") {
				continue
			}
			switch {
			case rec["msg"] == server.AuditMessage && rec["caller"] == "":
				audit = append(audit, rec)
			case rec["msg"] == server.AuditSummaryMessage:
				summaries = append(summaries, rec)
			}
			if rec["level"] != "DEBUG" && rec["msg"] != server.AuditMessage && rec["msg"] != server.AuditSummaryMessage {
				loud++
			}
		}
		return audit, summaries, loud
	}
	audit, summaries, loud := refusals("127.0.0.1")
	if len(audit) != 1 || len(summaries) != 0 || loud != 0 {
		t.Fatalf("after %d refusals from one address in one interval: %d audit lines, %d summaries, %d other lines above debug; want 1, 0, 0\n%s",
			burst+over+2, len(audit), len(summaries), loud, env.logs)
	}
	if audit[0]["code"] != "Unauthenticated" || audit[0]["level"] != "WARN" {
		t.Errorf("the audit line: %v", audit[0])
	}

	// In the next interval the first refusal is logged, and the previous
	// interval's are counted on one line.
	clock.Advance(server.DefaultRefusalLogInterval)
	for range 3 {
		sign(throttled, wrong)
	}
	audit, summaries, _ = refusals("127.0.0.1")
	if len(audit) != 2 || len(summaries) != 1 {
		t.Fatalf("next interval: %d audit lines, %d summaries; want 2 and 1\n%s", len(audit), len(summaries), env.logs)
	}
	s := summaries[0]
	// The burst but its first, the wrong token after the refill; the
	// calls over budget, and the valid token after the refill.
	if s["unauthenticated"] != float64(burst-1+1) || s["resource_exhausted"] != float64(over+1) || s["level"] != "WARN" || s["peer"] != "127.0.0.1" {
		t.Errorf("summary: %v; want %d unauthenticated and %d resource_exhausted from 127.0.0.1", s, burst, over+1)
	}
}

// tapCall calls the tap handle as grpc-go would for a KeyService call
// without credentials from addr.
func tapCall(h tap.ServerInHandle, addr string) error {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))})
	_, err := h(ctx, &tap.Info{FullMethodName: ltikeysv1.KeyService_GetToolKey_FullMethodName, Header: metadata.MD{}})
	return err
}

// TestThrottleAddresses: IPv6 addresses of one /64 share a budget, other
// prefixes do not; the addresses remembered are bounded, the one refused
// longest ago forgotten first, its pending count written as it goes.
func TestThrottleAddresses(t *testing.T) {
	logs := &syncBuffer{}
	clock := newFakeClock()
	auth, err := server.NewAuthenticator(server.AuthConfig{
		Tokens:       []server.Token{{Name: "a", Scopes: []server.Scope{server.ScopeKeysRead}, Hash: server.HashToken("x")}},
		FailureRate:  1,
		FailureBurst: 2,
		Now:          clock.Now,
		Log:          slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := auth.TapHandle()
	codesOf := func(addrs ...string) []codes.Code {
		var got []codes.Code
		for _, a := range addrs {
			got = append(got, status.Code(tapCall(h, a)))
		}
		return got
	}
	un, re := codes.Unauthenticated, codes.ResourceExhausted
	if got := codesOf("[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:2000", "[2001:db8:1:2::1]:1000"); fmt.Sprint(got) != fmt.Sprint([]codes.Code{un, un, re}) {
		t.Errorf("one /64: %v, want the third over its budget", got)
	}
	if got := codesOf("[2001:db8:1:3::1]:1000", "[::ffff:192.0.2.1]:1000", "192.0.2.1:2000", "192.0.2.1:3000"); fmt.Sprint(got) != fmt.Sprint([]codes.Code{un, un, un, re}) {
		t.Errorf("another /64, then an IPv4 address written two ways: %v", got)
	}

	// 192.0.2.1 is over its budget, with one refusal counted. Ten thousand
	// other addresses failing make it forgotten: its count is written, and
	// its budget is full again.
	for i := range 10_000 {
		tapCall(h, fmt.Sprintf("10.%d.%d.1:1", i/256, i%256))
	}
	var summary map[string]any
	for _, rec := range logRecords(t, logs.String()) {
		if rec["msg"] == server.AuditSummaryMessage && rec["peer"] == "2001:db8:1:2::/64" {
			summary = rec
		}
	}
	if summary == nil || summary["unauthenticated"] != float64(1) || summary["resource_exhausted"] != float64(1) {
		t.Errorf("summary of the forgotten 2001:db8:1:2::/64: %v, want 1 unauthenticated and 1 resource_exhausted", summary)
	}
	if got := codesOf("192.0.2.1:4000"); got[0] != un {
		t.Errorf("forgotten 192.0.2.1: %v, want UNAUTHENTICATED with a full budget", got[0])
	}
}

// TestRefusalSummaryTimer: a peer's count is written when its interval
// ends, even if nothing is refused after it.
func TestRefusalSummaryTimer(t *testing.T) {
	logs := &syncBuffer{}
	auth, err := server.NewAuthenticator(server.AuthConfig{
		RefusalLogInterval: 50 * time.Millisecond,
		Log:                slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := auth.TapHandle()
	for range 4 {
		tapCall(h, "192.0.2.7:1000")
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, rec := range logRecords(t, logs.String()) {
			if rec["msg"] == server.AuditSummaryMessage {
				if rec["peer"] != "192.0.2.7" || rec["unauthenticated"] != float64(3) {
					t.Errorf("summary %v, want 3 unauthenticated from 192.0.2.7", rec)
				}
				return
			}
		}
	}
	t.Fatalf("no summary written:\n%s", logs)
}
