package storage_test

import (
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Store {
		return openStore(t, storagetest.SQLiteURL(t))
	})
}

func TestSQLiteLifecycle(t *testing.T) {
	conformance.RunLifecycleTests(t, func(t *testing.T, now func() time.Time) storage.Store {
		return openStore(t, storagetest.SQLiteURL(t), storage.WithClock(now))
	})
}
