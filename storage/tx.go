package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLSTATEs of a transaction that lost against concurrent ones
// (PostgreSQL, Appendix A). The server has rolled the transaction back, so
// running it again from the start is safe.
const (
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlockDetected     = "40P01"
)

// retryPolicy bounds how the store runs a transaction again after a
// conflict.
type retryPolicy struct {
	// attempts is how many times a transaction runs at most.
	attempts int
	// base is the back-off before the second attempt; it doubles before
	// each further one, up to limit.
	base, limit time.Duration
}

// txRetry is the policy of every write transaction: five attempts, waiting
// about 5, 10, 20 and 40ms in between (never more than 200ms).
var txRetry = retryPolicy{attempts: 5, base: 5 * time.Millisecond, limit: 200 * time.Millisecond}

// transaction runs fn in a transaction and commits it. If the database
// reports that the transaction conflicted with concurrent ones (see
// conflict), it is rolled back and run again from the start, as txRetry
// allows. fn may therefore run more than once: it must set every value it
// hands out of the transaction afresh on each run, and must not act outside
// the transaction. An error of fn's own is returned as is.
func (s *gormStore) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return txRetry.run(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(fn)
	})
}

// run calls attempt until it returns nil or an error that is not a
// conflict, at most p.attempts times, backing off between calls. When the
// attempts are used up, the error wraps ErrConflict; when ctx is done
// during a back-off, it wraps ctx's error.
func (p retryPolicy) run(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || !conflict(err) {
			return err
		}
		if n >= p.attempts {
			return fmt.Errorf("%w: %d attempts, the last failed with: %v", ErrConflict, n, err)
		}
		wait := time.NewTimer(p.backoff(n))
		select {
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("%w, while waiting to retry a transaction that failed with: %v", ctx.Err(), err)
		case <-wait.C:
		}
	}
}

// backoff returns how long to wait after the nth failed attempt: between
// half and all of base·2ⁿ⁻¹ capped at limit, chosen at random so that
// transactions which conflicted with each other do not meet again.
func (p retryPolicy) backoff(n int) time.Duration {
	d := p.limit
	if n-1 < 31 && p.base<<(n-1) < p.limit {
		d = p.base << (n - 1)
	}
	return d/2 + rand.N(d/2+1)
}

// conflict reports whether err means that the transaction lost against
// concurrent ones and changed nothing: on PostgreSQL a serialization
// failure or a deadlock, on SQLite a busy or locked database (with any
// extended code, such as SQLITE_BUSY_SNAPSHOT). Nothing else is: not a
// constraint violation, and not a failed connection, which may have
// failed after the server committed.
func conflict(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == sqlstateSerializationFailure || pg.Code == sqlstateDeadlockDetected
	}
	var lite *moderncsqlite.Error
	if errors.As(err, &lite) {
		// The low byte of an extended result code is its primary code.
		switch lite.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}
