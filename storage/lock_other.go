//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package storage

import (
	"context"
	"log/slog"
	"sync"
)

// fileLocks holds a lock per SQLite lock file name.
var fileLocks sync.Map // name → chan struct{}

// lockFile serializes the migrations of one SQLite database within this
// process only: on this platform two processes migrating one database
// file at once are not kept apart.
func lockFile(ctx context.Context, name string, log *slog.Logger) (func(), error) {
	v, _ := fileLocks.LoadOrStore(name, make(chan struct{}, 1))
	ch := v.(chan struct{})
	err := pollLock(ctx, log, func() (bool, error) {
		select {
		case ch <- struct{}{}:
			return true, nil
		default:
			return false, nil
		}
	})
	if err != nil {
		return nil, err
	}
	return func() { <-ch }, nil
}
