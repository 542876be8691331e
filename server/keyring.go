package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/storage"
)

// KeyringCheck is what CheckKeyring found.
type KeyringCheck struct {
	// Keys is the number of stored private keys, every one of which opened.
	Keys int
	// Format1 is how many of them are version 1 envelopes, bound to their
	// kid but not to their registration until Rewrap (ltikeys rewrap)
	// upgrades them.
	Format1 int
}

// CheckKeyring opens every stored private key with keyring, as the
// registration its row names as owner, and fails on the first that does
// not open, naming the master key it needs (a *crypto.MissingKeyError when
// that key is absent from the keyring) or crypto.ErrDecrypt (among other
// causes, a version 2 envelope whose row names another owner). It writes
// nothing, and costs one read and one decryption per key. serve runs it
// before accepting requests, so a server never starts with keys it cannot
// use, and never overwrites them, and logs Format1 when it is not zero.
func CheckKeyring(ctx context.Context, store storage.Store, keyring *crypto.Keyring) (KeyringCheck, error) {
	var check KeyringCheck
	kids, err := store.KeyIDs(ctx)
	if err != nil {
		return check, fmt.Errorf("list keys: %w", err)
	}
	for _, kid := range kids {
		key, err := store.GetKey(ctx, kid)
		if err != nil {
			return check, fmt.Errorf("read key %s: %w", kid, err)
		}
		private, err := keyring.Open(key.PrivateJWK, kid, key.RegistrationID)
		if err != nil {
			return check, fmt.Errorf("key %s of registration %s: %w", kid, key.RegistrationID, err)
		}
		crypto.Zero(private)
		check.Keys++
		if v, _ := crypto.FormatVersion(key.PrivateJWK); v == 1 {
			check.Format1++
		}
	}
	return check, nil
}

// RewrapStats counts what Rewrap did.
type RewrapStats struct {
	// Rewrapped is the number of keys re-sealed under the primary master
	// key, in the current envelope format.
	Rewrapped int
	// Upgraded is how many of the Rewrapped were in envelope format 1,
	// bound to their kid alone, and are now bound to their registration
	// too.
	Upgraded int
	// Current is the number already sealed under the primary key in the
	// current format, left untouched.
	Current int
}

// Rewrap re-seals every stored private key under keyring's primary master
// key in the current envelope format, one key per transaction: envelopes
// under an older master key, and version 1 envelopes under any key, are
// rewritten; version 2 envelopes under the primary key are authenticated
// and left alone. Upgrading a version 1 envelope binds it to the
// registration its row names as owner. It is idempotent and safe while
// servers are running (each row is locked while it is re-sealed, and
// servers only read it); cancelled part-way, it leaves every row either old
// or new, both readable with the same keyring, and a rerun finishes the
// job. The stats count what was done before any error.
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
		// A key's owner is written with the key and never changes, so it
		// may be read outside the transaction that re-seals the key.
		key, err := store.GetKey(ctx, kid)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // deleted since it was listed; nothing to protect
		case err != nil:
			return stats, fmt.Errorf("read key %s: %w", kid, err)
		}
		var changed, upgraded bool
		err = store.UpdatePrivateKey(ctx, kid, func(sealed []byte) ([]byte, bool, error) {
			version, err := crypto.FormatVersion(sealed)
			if err != nil {
				return nil, false, err
			}
			next, ch, err := keyring.Rewrap(sealed, kid, key.RegistrationID)
			changed, upgraded = ch, ch && version < crypto.CurrentFormat
			return next, ch, err
		})
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue // deleted since it was read
		case err != nil:
			return stats, fmt.Errorf("rewrap key %s of registration %s: %w", kid, key.RegistrationID, err)
		case changed:
			stats.Rewrapped++
			if upgraded {
				stats.Upgraded++
			}
		default:
			stats.Current++
		}
	}
	return stats, nil
}
