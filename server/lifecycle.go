package server

import (
	"context"
	"log/slog"
	"time"
)

// DefaultTransitionInterval is how often RunTransitions records due key
// transitions unless told otherwise.
const DefaultTransitionInterval = 10 * time.Second

// ApplyTransitions records the key transitions that are due (pending keys
// activating, previous keys retiring), then, if it applied any, refreshes
// this process's caches. Other replicas follow through the change counter.
// Reads never wait for it: which key signs and which keys are published
// follow from the schedule at read time, so recording is bookkeeping
// (ListKeys with a state filter, audit, metrics). Safe to run in every
// replica at once: each transition applies exactly once.
func (s *KeyService) ApplyTransitions(ctx context.Context) (int, error) {
	n, err := s.store.ApplyTransitions(ctx)
	if n > 0 {
		s.keysChanged(ctx)
		s.log.InfoContext(ctx, "key transitions recorded", "count", n)
	}
	return n, err
}

// RunTransitions calls ApplyTransitions every interval until ctx is done,
// logging failures (the next tick retries).
func (s *KeyService) RunTransitions(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		runCtx, cancel := context.WithTimeout(ctx, max(interval, 30*time.Second))
		_, err := s.ApplyTransitions(runCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "recording key transitions failed; retrying at the next tick", "err", err)
		}
	}
}
