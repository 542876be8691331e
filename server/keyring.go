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

// keyringBatch is how many keys CheckKeyring and Rewrap read per query. A
// row is about 2 KB with a 2048-bit key (4 KB at 4096 bits), so a batch
// holds one or two megabytes, and a pass over 100,000 keys costs 200
// queries rather than 100,001.
const keyringBatch = 500

// CheckKeyring opens every stored private key with keyring, as the
// registration its row names as owner, in the order keys were inserted,
// and fails on the first that does not open, naming it and its
// registration and wrapping why: the master key it needs (a
// *crypto.MissingKeyError when that key is absent from the keyring) or
// crypto.ErrDecrypt (among other causes, a version 2 envelope whose row
// names another owner). It writes nothing, and reads the keys a batch at a
// time, one query per batch, so its cost is one decryption per key and
// few round trips. serve runs it before accepting requests, so a server
// never starts with keys it cannot use, and never overwrites them, and
// logs Format1 when it is not zero.
func CheckKeyring(ctx context.Context, store storage.Store, keyring *crypto.Keyring) (KeyringCheck, error) {
	return checkKeyring(ctx, store, keyring, keyringBatch)
}

// checkKeyring is CheckKeyring reading batch keys per query.
func checkKeyring(ctx context.Context, store storage.Store, keyring *crypto.Keyring, batch int) (KeyringCheck, error) {
	var check KeyringCheck
	err := eachPrivateKey(ctx, store, batch, func(key storage.Key) error {
		private, err := keyring.Open(key.PrivateJWK, key.KID, key.RegistrationID)
		if err != nil {
			return fmt.Errorf("key %s of registration %s: %w", key.KID, key.RegistrationID, err)
		}
		crypto.Zero(private)
		check.Keys++
		if v, _ := crypto.FormatVersion(key.PrivateJWK); v == 1 {
			check.Format1++
		}
		return nil
	})
	return check, err
}

// eachPrivateKey calls fn with every stored key, private half included, in
// Seq order, reading batch keys per query, and stops at the first error,
// which it returns as fn returned it.
func eachPrivateKey(ctx context.Context, store storage.Store, batch int, fn func(storage.Key) error) error {
	var after int64
	for {
		keys, err := store.PrivateKeys(ctx, after, batch)
		if err != nil {
			return fmt.Errorf("read keys after seq %d: %w", after, err)
		}
		for _, key := range keys {
			if err := fn(key); err != nil {
				return err
			}
		}
		if len(keys) < batch {
			return nil
		}
		after = keys[len(keys)-1].Seq
	}
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
// registration its row names as owner. Keys are read a batch at a time
// (one query per batch) and each is then re-sealed in a transaction of its
// own. It is idempotent and safe while servers are running (each row is
// locked while it is re-sealed, and servers only read it); cancelled
// part-way, it leaves every row either old or new, both readable with the
// same keyring, and a rerun finishes the job. The stats count what was
// done before any error.
func Rewrap(ctx context.Context, store storage.Store, keyring *crypto.Keyring) (RewrapStats, error) {
	var stats RewrapStats
	err := eachPrivateKey(ctx, store, keyringBatch, func(key storage.Key) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The batch's copy of the envelope may be stale by now: the
		// transaction re-reads it under the row lock. A key's owner is
		// written with the key and never changes, so the batch's is right.
		var changed, upgraded bool
		err := store.UpdatePrivateKey(ctx, key.KID, func(sealed []byte) ([]byte, bool, error) {
			version, err := crypto.FormatVersion(sealed)
			if err != nil {
				return nil, false, err
			}
			next, ch, err := keyring.Rewrap(sealed, key.KID, key.RegistrationID)
			changed, upgraded = ch, ch && version < crypto.CurrentFormat
			return next, ch, err
		})
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// deleted since it was read; nothing to protect
		case err != nil:
			return fmt.Errorf("rewrap key %s of registration %s: %w", key.KID, key.RegistrationID, err)
		case changed:
			stats.Rewrapped++
			if upgraded {
				stats.Upgraded++
			}
		default:
			stats.Current++
		}
		return nil
	})
	return stats, err
}
