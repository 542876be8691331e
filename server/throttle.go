package server

import (
	"container/list"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
)

// The defaults of AuthConfig's throttle of failed authentications.
const (
	DefaultFailureRate        = 5.0
	DefaultFailureBurst       = 20
	DefaultRefusalLogInterval = time.Minute
	// maxTrackedPeers bounds the peer addresses the throttle remembers; the
	// one refused longest ago is forgotten first.
	maxTrackedPeers = 10_000
)

// peerAddr returns the address a call's failed authentications are counted
// against: the peer's IPv4 address, or the /64 prefix of its IPv6 address
// (one host commonly holds a whole /64). ok is false for a peer without an
// IP address, such as an in-process connection.
func peerAddr(ctx context.Context) (addr netip.Prefix, ok bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return netip.Prefix{}, false
	}
	tcp, ok := p.Addr.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	addr, err := ip.Prefix(bits)
	return addr, err == nil
}

// throttle keeps, per peer address, a token bucket of failed
// authentications and the count of refusals not yet logged one by one.
// Safe for concurrent use.
type throttle struct {
	limit    rate.Limit // 0: the throttle is off, only refusals are counted
	burst    int
	interval time.Duration
	maxPeers int
	now      func() time.Time
	// report writes the summaries of a flush from its timer.
	report func([]refusalSummary)

	// tracked is len(peers), so that blocked need not lock while no peer
	// has failed.
	tracked atomic.Int64

	mu        sync.Mutex
	peers     map[netip.Prefix]*peerRecord
	recent    list.List // of *peerRecord, the most recently refused first
	lastSweep time.Time
	flushing  bool // a flush is scheduled
}

type peerRecord struct {
	addr netip.Prefix
	// budget holds the failed authentications the peer may still make;
	// nil when the throttle is off.
	budget *rate.Limiter
	// since starts the interval in which the peer's first refusal was
	// logged; the refusals after it are counted until the interval ends.
	since                      time.Time
	unauthenticated, throttled int
	elem                       *list.Element
}

// refusalSummary counts the refusals from addr, since a time, that were
// not logged one by one.
type refusalSummary struct {
	addr                       netip.Prefix
	since                      time.Time
	unauthenticated, throttled int
}

func newThrottle(cfg AuthConfig, report func([]refusalSummary)) *throttle {
	t := &throttle{
		limit:    rate.Limit(cfg.FailureRate),
		burst:    cfg.FailureBurst,
		interval: cfg.RefusalLogInterval,
		maxPeers: maxTrackedPeers,
		now:      cfg.Now,
		report:   report,
		peers:    map[netip.Prefix]*peerRecord{},
	}
	if t.limit == 0 {
		t.limit = DefaultFailureRate
	}
	if t.burst == 0 {
		t.burst = DefaultFailureBurst
	}
	if t.limit < 0 {
		t.limit = 0
	}
	if t.interval <= 0 {
		t.interval = DefaultRefusalLogInterval
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t
}

// blocked reports whether addr has spent its budget of failed
// authentications: its calls are then refused before their credentials
// are looked at. It locks only while some peer has failed.
func (t *throttle) blocked(addr netip.Prefix) bool {
	if t.limit == 0 || t.tracked.Load() == 0 {
		return false
	}
	t.mu.Lock()
	p := t.peers[addr]
	t.mu.Unlock()
	return p != nil && p.budget.TokensAt(t.now()) < 1
}

// refused records the refusal of an unauthenticated call from addr with
// code: UNAUTHENTICATED spends one of the peer's budget, RESOURCE_EXHAUSTED
// (refused because the budget was spent) does not. It reports whether the
// refusal gets its audit line, the peer's first in the interval, and
// returns the summaries now due: those of intervals that ended, and of
// peers forgotten to make room.
func (t *throttle) refused(addr netip.Prefix, code codes.Code) (logIt bool, due []refusalSummary) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[addr]
	if p == nil {
		for len(t.peers) >= t.maxPeers {
			due = t.forget(t.recent.Back().Value.(*peerRecord), due)
		}
		p = &peerRecord{addr: addr}
		if t.limit > 0 {
			p.budget = rate.NewLimiter(t.limit, t.burst)
		}
		p.elem = t.recent.PushFront(p)
		t.peers[addr] = p
		t.tracked.Store(int64(len(t.peers)))
	} else {
		t.recent.MoveToFront(p.elem)
	}
	if code == codes.Unauthenticated && p.budget != nil {
		p.budget.AllowN(now, 1)
	}
	switch {
	case p.since.IsZero() || now.Sub(p.since) >= t.interval:
		due = p.summary(due)
		p.since = now
		logIt = true
	case code == codes.ResourceExhausted:
		p.throttled++
	default:
		p.unauthenticated++
	}
	if !logIt && !t.flushing {
		t.flushing = true
		time.AfterFunc(t.interval, t.flush)
	}
	if now.Sub(t.lastSweep) >= t.interval {
		due = t.sweep(now, due)
	}
	return logIt, due
}

// sweep collects the summaries of the intervals that have ended and
// forgets the peers that have nothing left to tell: no refusal counted and
// a full budget.
func (t *throttle) sweep(now time.Time, due []refusalSummary) []refusalSummary {
	t.lastSweep = now
	for _, p := range t.peers {
		if now.Sub(p.since) < t.interval {
			continue
		}
		due = p.summary(due)
		if p.budget == nil || p.budget.TokensAt(now) >= float64(t.burst) {
			due = t.forget(p, due)
		}
	}
	return due
}

// flush writes the summaries of the intervals that have ended, so that a
// peer's count is reported even when nothing is refused after it; it runs
// again while counts are pending.
func (t *throttle) flush() {
	t.mu.Lock()
	due := t.sweep(t.now(), nil)
	t.flushing = false
	for _, p := range t.peers {
		if p.unauthenticated+p.throttled > 0 {
			t.flushing = true
			time.AfterFunc(t.interval, t.flush)
			break
		}
	}
	t.mu.Unlock()
	t.report(due)
}

func (t *throttle) forget(p *peerRecord, due []refusalSummary) []refusalSummary {
	due = p.summary(due)
	t.recent.Remove(p.elem)
	delete(t.peers, p.addr)
	t.tracked.Store(int64(len(t.peers)))
	return due
}

// summary appends p's counts to due, if any, and resets them.
func (p *peerRecord) summary(due []refusalSummary) []refusalSummary {
	if p.unauthenticated+p.throttled == 0 {
		return due
	}
	due = append(due, refusalSummary{addr: p.addr, since: p.since, unauthenticated: p.unauthenticated, throttled: p.throttled})
	p.unauthenticated, p.throttled = 0, 0
	return due
}

// addrString names a peer address as the audit log shows it: the address
// alone, or the IPv6 prefix.
func addrString(addr netip.Prefix) string {
	if addr.IsSingleIP() {
		return addr.Addr().String()
	}
	return addr.String()
}
