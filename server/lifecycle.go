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

// PruneNonces deletes the launch nonces recorded until an expiry that the
// service's clock has reached (see storage.Store.PruneNonces) and returns
// how many it deleted. Pruning changes no verification's outcome, since an
// expired record no longer counts; it keeps the table small. Safe to run
// in every replica at once.
func (s *KeyService) PruneNonces(ctx context.Context) (int, error) {
	return s.store.PruneNonces(ctx, s.now())
}

// Messages of the pruning in RunTransitions.
const (
	// NoncesPrunedMessage is logged at debug with the count, after a
	// pruning that deleted any.
	NoncesPrunedMessage = "expired launch nonces pruned"
	// PruneFailedMessage is logged at warn once when pruning starts
	// failing, however many ticks it keeps failing.
	PruneFailedMessage = "pruning expired launch nonces failed; retrying at each tick"
	// PruneRecoveredMessage is logged at info when pruning succeeds again
	// after PruneFailedMessage.
	PruneRecoveredMessage = "pruning expired launch nonces works again"
)

// RunTransitions calls ApplyTransitions, then PruneNonces, every interval
// until ctx is done. A failure to record transitions is logged at each
// tick that fails (the next tick retries); a failure to prune is logged
// once until pruning succeeds again, since nothing waits for it.
func (s *KeyService) RunTransitions(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.runLifecycle(ctx, t.C, max(interval, 30*time.Second), log)
}

// runLifecycle does RunTransitions's work at each tick until ctx is done,
// giving each of the two steps timeout.
func (s *KeyService) runLifecycle(ctx context.Context, ticks <-chan time.Time, timeout time.Duration, log *slog.Logger) {
	pruneFailing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		runCtx, cancel := context.WithTimeout(ctx, timeout)
		_, err := s.ApplyTransitions(runCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "recording key transitions failed; retrying at the next tick", "err", err)
		}

		runCtx, cancel = context.WithTimeout(ctx, timeout)
		n, err := s.PruneNonces(runCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !pruneFailing {
				log.WarnContext(ctx, PruneFailedMessage, "err", err)
				pruneFailing = true
			}
			continue
		case pruneFailing:
			log.InfoContext(ctx, PruneRecoveredMessage)
			pruneFailing = false
		}
		if n > 0 {
			log.DebugContext(ctx, NoncesPrunedMessage, "count", n)
		}
	}
}
