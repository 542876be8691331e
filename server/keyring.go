package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/storage"
)

// CheckKeyring opens every stored private key with keyring and fails on the
// first that does not open, naming the master key it needs (a
// *crypto.MissingKeyError when that key is absent from the keyring). It
// writes nothing. serve runs it before accepting requests, so a server never
// starts with keys it cannot use, and never overwrites them.
func CheckKeyring(ctx context.Context, store storage.Store, keyring *crypto.Keyring) error {
	kids, err := store.KeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	for _, kid := range kids {
		key, err := store.GetKey(ctx, kid)
		if err != nil {
			return fmt.Errorf("read key %s: %w", kid, err)
		}
		private, err := keyring.Open(key.PrivateJWK, kid)
		if err != nil {
			return fmt.Errorf("key %s: %w", kid, err)
		}
		crypto.Zero(private)
	}
	return nil
}

// RewrapStats counts what Rewrap did.
type RewrapStats struct {
	// Rewrapped is the number of keys re-sealed under the primary master key.
	Rewrapped int
	// Current is the number already sealed under it, left untouched.
	Current int
}

// Rewrap re-seals every stored private key under keyring's primary master
// key, one key per transaction. It is idempotent and safe while servers are
// running (each row is locked while it is re-sealed, and servers only read
// it); cancelled part-way, it leaves every row either old or new, both
// readable with the same keyring, and a rerun finishes the job. The stats
// count what was done before any error.
func Rewrap(ctx context.Context, store storage.Store, keyring *crypto.Keyring) (RewrapStats, error) {
	var stats RewrapStats
	kids, err := store.KeyIDs(ctx)
	if err != nil {
		return stats, fmt.Errorf("list keys: %w", err)
	}
	for _, kid := range kids {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		var changed bool
		err := store.UpdatePrivateKey(ctx, kid, func(sealed []byte) ([]byte, bool, error) {
			next, ch, err := keyring.Rewrap(sealed, kid)
			changed = ch
			return next, ch, err
		})
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // deleted since it was listed; nothing to protect
		case err != nil:
			return stats, fmt.Errorf("rewrap key %s: %w", kid, err)
		case changed:
			stats.Rewrapped++
		default:
			stats.Current++
		}
	}
	return stats, nil
}
