package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// TestPruneNonces records launch nonces with several expiries and prunes
// at the service's clock, on both backends: only the nonces whose expiry
// the clock has reached are deleted, and one that has not expired is still
// refused as used.
func TestPruneNonces(t *testing.T) {
	forEachBackendWithClock(t, func(t *testing.T, env *clockEnv) {
		ctx := context.Background()
		t0 := env.clock.Now()
		const issuer = "https://platform.example.com"
		for nonce, expires := range map[string]time.Duration{"a": time.Minute, "b": 2 * time.Minute, "c": time.Hour} {
			if err := env.store.UseNonce(ctx, issuer, nonce, t0.Add(expires)); err != nil {
				t.Fatalf("UseNonce(%s): %v", nonce, err)
			}
		}
		if n, err := env.service.PruneNonces(ctx); err != nil || n != 0 {
			t.Errorf("PruneNonces before any expiry = %d, %v; want 0", n, err)
		}
		env.clock.Set(t0.Add(2 * time.Minute))
		if n, err := env.service.PruneNonces(ctx); err != nil || n != 2 {
			t.Errorf("PruneNonces at the second expiry = %d, %v; want 2", n, err)
		}
		if err := env.store.UseNonce(ctx, issuer, "c", t0.Add(2*time.Hour)); !errors.Is(err, storage.ErrNonceUsed) {
			t.Errorf("UseNonce of the nonce not yet expired, after pruning: %v, want ErrNonceUsed", err)
		}
		if n, err := env.service.PruneNonces(ctx); err != nil || n != 0 {
			t.Errorf("PruneNonces again = %d, %v; want 0", n, err)
		}
		env.clock.Set(t0.Add(time.Hour))
		if n, err := env.service.PruneNonces(ctx); err != nil || n != 1 {
			t.Errorf("PruneNonces at the last expiry = %d, %v; want 1", n, err)
		}
	})
}
