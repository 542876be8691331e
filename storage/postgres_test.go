package storage_test

import (
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

func TestPostgres(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Store {
		return openStore(t, storagetest.PostgresURL(t))
	})
}

func TestPostgresLifecycle(t *testing.T) {
	conformance.RunLifecycleTests(t, func(t *testing.T, now func() time.Time) storage.Store {
		return openStore(t, storagetest.PostgresURL(t), storage.WithClock(now))
	})
}

func TestPostgresSharedDatabase(t *testing.T) {
	conformance.RunSharedDatabaseTests(t, func(t *testing.T) conformance.Opener {
		url := storagetest.PostgresURL(t)
		return func(t *testing.T, now func() time.Time) storage.Store {
			return openStore(t, url, storage.WithClock(now))
		}
	})
}
