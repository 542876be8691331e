package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// pruneStore answers ApplyTransitions and PruneNonces from scripts, one
// entry per call, and records the time each PruneNonces call was given.
// Each ApplyTransitions moves clock forward by 10s, as time passes between
// ticks.
type pruneStore struct {
	storage.Store
	clock       *fakeClock
	mu          sync.Mutex
	transitions []error
	prunes      []pruneResult
	befores     []time.Time
}

type pruneResult struct {
	n   int
	err error
}

func (s *pruneStore) ApplyTransitions(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.transitions[0]
	s.transitions = s.transitions[1:]
	s.clock.advance(10 * time.Second)
	return 0, err
}

func (s *pruneStore) PruneNonces(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.befores = append(s.befores, before)
	r := s.prunes[0]
	s.prunes = s.prunes[1:]
	return r.n, r.err
}

// TestRunLifecyclePrunesNonces drives the lifecycle loop tick by tick: each
// tick records transitions and then prunes the nonces expired at the
// service's clock, whether or not recording the transitions failed; a
// pruning that deletes any logs its count at debug; a pruning that fails
// is logged once until it succeeds again, and its recovery at info.
func TestRunLifecyclePrunesNonces(t *testing.T) {
	down := fmt.Errorf("prune nonces: %w", &storage.ConnectionError{Problem: "connection refused"})
	transitionsDown := fmt.Errorf("find due activations: %w", &storage.ConnectionError{Problem: "connection refused"})
	script := []struct {
		transitions error
		prune       pruneResult
	}{
		{nil, pruneResult{3, nil}},
		{nil, pruneResult{0, nil}},
		{transitionsDown, pruneResult{0, down}}, // the outage starts
		{transitionsDown, pruneResult{0, down}},
		{nil, pruneResult{0, down}},
		{nil, pruneResult{2, nil}}, // it ends
		{nil, pruneResult{0, errors.New("prune nonces: storage: ERROR: relation does not exist")}},
		{nil, pruneResult{0, nil}},
		{nil, pruneResult{0, nil}}, // a last tick, to know the one before has ended
	}
	clock := newFakeClock()
	start := clock.now()
	store := &pruneStore{clock: clock}
	var wantBefores []time.Time
	for i, s := range script {
		store.transitions = append(store.transitions, s.transitions)
		store.prunes = append(store.prunes, s.prune)
		wantBefores = append(wantBefores, start.Add(time.Duration(i+1)*10*time.Second))
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &KeyService{store: store, log: slog.New(slog.DiscardHandler), now: clock.now}

	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.runLifecycle(ctx, ticks, time.Minute, log)
	}()
	for range script {
		ticks <- time.Time{}
	}
	// The loop takes a tick only once it is done with the one before, so
	// every tick but the last has been handled; the last one's pruning
	// succeeds with nothing to log, whether or not it runs.
	cancel()
	<-done

	// Each pruning was given the service's clock as it read then.
	n := len(script) - 1
	if got := store.befores; len(got) < n || !slices.EqualFunc(got[:n], wantBefores[:n], time.Time.Equal) {
		t.Errorf("PruneNonces was given %v, want the service's clock at each tick %v", got, wantBefores)
	}

	type line struct{ level, msg string }
	var got []line
	for _, rec := range logLines(t, &buf) {
		l := line{rec["level"].(string), rec["msg"].(string)}
		switch l.msg {
		case NoncesPrunedMessage:
			l.msg += fmt.Sprintf(" count=%v", rec["count"])
		case PruneFailedMessage:
			if rec["err"] == nil {
				t.Errorf("%q without the error", l.msg)
			}
		}
		got = append(got, l)
	}
	transitionsFailed := line{"WARN", "recording key transitions failed; retrying at the next tick"}
	want := []line{
		{"DEBUG", NoncesPrunedMessage + " count=3"},
		transitionsFailed,
		{"WARN", PruneFailedMessage},
		transitionsFailed,
		{"INFO", PruneRecoveredMessage},
		{"DEBUG", NoncesPrunedMessage + " count=2"},
		{"WARN", PruneFailedMessage},
		{"INFO", PruneRecoveredMessage},
	}
	if !slices.Equal(got, want) {
		t.Errorf("log lines:\n%v\nwant\n%v", got, want)
	}
}
