package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// flakyStore answers what a JWKSCache reads (the change counter and the
// active keys: none) and GetRegistration (never found), or, while down,
// fails them all as an unreachable database does. Any other method panics.
type flakyStore struct {
	storage.Store
	down atomic.Bool
}

func (s *flakyStore) unreachable(op string) error {
	return fmt.Errorf("%s: storage: %w", op, &storage.ConnectionError{Problem: "connection refused"})
}

func (s *flakyStore) Version(context.Context) (int64, error) {
	if s.down.Load() {
		return 0, s.unreachable("read change counter")
	}
	return 1, nil
}

func (s *flakyStore) ActiveKeys(context.Context) ([]storage.Key, error) {
	if s.down.Load() {
		return nil, s.unreachable("list active keys")
	}
	return nil, nil
}

func (s *flakyStore) GetRegistration(_ context.Context, id string) (storage.Registration, error) {
	if s.down.Load() {
		return storage.Registration{}, s.unreachable("get registration")
	}
	return storage.Registration{}, fmt.Errorf("get registration %q: %w", id, storage.ErrNotFound)
}

// manualClock is a clock moved by hand.
type manualClock struct{ t atomic.Pointer[time.Time] }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return c
}

func (c *manualClock) now() time.Time          { return *c.t.Load() }
func (c *manualClock) set(t time.Time)         { c.t.Store(&t) }
func (c *manualClock) advance(d time.Duration) { c.set(c.now().Add(d)) }

// TestJWKSReadyStalenessBound moves a clock through a database outage:
// JwksService stays ready on its last good document until that document
// is older than the bound, and is ready again after the next successful
// refresh.
func TestJWKSReadyStalenessBound(t *testing.T) {
	ctx := context.Background()
	clock := newManualClock()
	store := &flakyStore{}
	cache := server.NewJWKSCache(store, server.WithCacheClock(clock.now))
	ready := server.JWKSReady(cache, 24*time.Hour, clock.now)
	if ready(ctx) == nil {
		t.Errorf("ready before the first refresh")
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	refreshed := clock.now()
	if got := cache.LastRefresh(); !got.Equal(refreshed) {
		t.Errorf("LastRefresh = %v, want %v", got, refreshed)
	}
	if err := ready(ctx); err != nil {
		t.Errorf("after a refresh: %v", err)
	}

	store.down.Store(true)
	clock.advance(time.Hour)
	if cache.Refresh(ctx) == nil {
		t.Fatal("Refresh of an unreachable database succeeded")
	}
	if err := cache.Ready(ctx); !errors.Is(err, server.ErrStale) {
		t.Fatalf("cache.Ready during the outage = %v, want ErrStale", err)
	}
	if got := cache.LastRefresh(); !got.Equal(refreshed) {
		t.Errorf("a failed refresh moved LastRefresh to %v", got)
	}
	if err := ready(ctx); err != nil {
		t.Errorf("an hour into the outage: %v, want ready on the last good document", err)
	}
	clock.set(refreshed.Add(24 * time.Hour))
	if err := ready(ctx); err != nil {
		t.Errorf("at the bound: %v, want ready", err)
	}
	clock.advance(time.Second)
	if err := ready(ctx); !errors.Is(err, server.ErrStale) {
		t.Errorf("past the bound: %v, want not ready (ErrStale)", err)
	}
	if cache.Document() == nil {
		t.Errorf("the document is gone; it is still served whatever the health")
	}

	store.down.Store(false)
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ready(ctx); err != nil {
		t.Errorf("after the database came back: %v", err)
	}

	// With no bound, a failed refresh is not ready at once.
	strict := server.JWKSReady(cache, 0, clock.now)
	store.down.Store(true)
	clock.advance(time.Millisecond)
	_ = cache.Refresh(ctx)
	if strict(ctx) == nil {
		t.Errorf("bound 0: ready after a failed refresh")
	}
}

// TestKeyServiceReadyFollowsTheDatabase: KeyService is ready while the JWKS
// cache's latest check of the database succeeded; calls that fail meanwhile
// are UNAVAILABLE and logged as one outage, which ends, with its count,
// when the database answers again.
func TestKeyServiceReadyFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	clock := newManualClock()
	store := &flakyStore{}
	cache := server.NewJWKSCache(store, server.WithCacheClock(clock.now))
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	keys, err := server.NewKeyService(server.KeyServiceConfig{
		Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: cache, Now: clock.now,
		Log: slog.New(slog.NewJSONHandler(&buf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	health := server.NewHealth(nil, "ltikeys.v1.KeyService", "ltikeys.v1.JwksService")
	health.MarkStarted(ctx, map[string]func(context.Context) error{
		"ltikeys.v1.KeyService":  keys.Ready,
		"ltikeys.v1.JwksService": server.JWKSReady(cache, time.Hour, clock.now),
	})
	if err := health.Ready(ctx); err != nil {
		t.Fatalf("before the outage: %v", err)
	}

	store.down.Store(true)
	req := &ltikeysv1.GetRegistrationRequest{Id: uuid.NewString()}
	for range 20 {
		clock.advance(100 * time.Millisecond)
		if _, err := keys.GetRegistration(ctx, req); status.Code(err) != codes.Unavailable {
			t.Fatalf("GetRegistration during the outage = %v, want UNAVAILABLE", err)
		}
	}
	clock.advance(100 * time.Millisecond)
	_ = cache.Refresh(ctx)
	if err := health.ServiceReady(ctx, "ltikeys.v1.KeyService"); err == nil {
		t.Errorf("KeyService ready while the database is away")
	}
	if err := health.ServiceReady(ctx, "ltikeys.v1.JwksService"); err != nil {
		t.Errorf("JwksService not ready on its last good document: %v", err)
	}

	store.down.Store(false)
	clock.advance(100 * time.Millisecond)
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := health.Ready(ctx); err != nil {
		t.Errorf("after the outage: %v", err)
	}
	_ = health.Ready(ctx) // a second evaluation ends nothing more
	if _, err := keys.GetRegistration(ctx, req); status.Code(err) != codes.NotFound {
		t.Errorf("GetRegistration after the outage = %v, want NOT_FOUND", err)
	}

	var msgs []string
	var total float64
	for line := range strings.Lines(buf.String()) {
		var rec struct {
			Msg, Level string
			Total      float64 `json:"total_failed_calls"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rec.Level+" "+rec.Msg)
		total += rec.Total
	}
	want := []string{"WARN " + server.OutageStartMessage, "INFO " + server.OutageEndMessage}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") || total != 20 {
		t.Errorf("the outage of 20 failed calls logged:\n%s\nwant:\n%s\nwith a total of 20 (got %v)", strings.Join(msgs, "\n"), strings.Join(want, "\n"), total)
	}
}
