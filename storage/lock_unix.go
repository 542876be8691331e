//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on the file name, creating it (mode
// 0600) if missing, and returns the function that releases it. flock locks
// belong to an open file, so two opens in one process exclude each other
// as two processes do, and the kernel drops the lock when the process
// ends. The lock is on a file of its own rather than on the database:
// SQLite locks the database with fcntl locks, and on NFS Linux implements
// flock with those too, so the two would collide.
func lockFile(ctx context.Context, name string, log *slog.Logger) (func(), error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the lock file: %w", err)
	}
	fd := int(f.Fd())
	err = pollLock(ctx, log, func() (bool, error) {
		switch err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
			return false, nil
		default:
			return false, fmt.Errorf("lock the lock file: %w", err)
		}
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		// Closing the file releases the lock.
		_ = f.Close()
	}, nil
}
