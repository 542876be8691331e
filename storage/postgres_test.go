package storage_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
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

// TestPostgresOutage takes the database away from an open store, with
// connections in its pool, and brings it back: every call meanwhile fails
// with an error storage.Unavailable recognizes, quoting no part of the URL,
// and the ORM's logger writes nothing for any of them; once the database
// is back, the store serves again without being reopened.
func TestPostgresOutage(t *testing.T) {
	proxy, dbURL := storagetest.ProxyURL(t, storagetest.PostgresURL(t))
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := openStore(t, dbURL, storage.WithLogger(log))
	ctx := t.Context()
	reg, key := fixture("outage")
	if _, _, err := s.CreateRegistration(ctx, reg, key); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with open connections for the outage to cut.
	var warm sync.WaitGroup
	for range 4 {
		warm.Go(func() {
			if _, err := s.GetRegistration(ctx, reg.ID); err != nil {
				t.Error(err)
			}
		})
	}
	warm.Wait()
	// What the ORM wrote so far (a slow statement, on a busy machine) is
	// not about the outage.
	buf.Reset()

	proxy.Stop()
	fresh, freshKey := fixture("during")
	calls := map[string]func() error{
		"Version":            func() error { _, err := s.Version(ctx); return err },
		"GetRegistration":    func() error { _, err := s.GetRegistration(ctx, reg.ID); return err },
		"ActiveKeys":         func() error { _, err := s.ActiveKeys(ctx); return err },
		"CreateRegistration": func() error { _, _, err := s.CreateRegistration(ctx, fresh, freshKey); return err },
		"UseNonce": func() error {
			return s.UseNonce(ctx, reg.Issuer, "during", time.Now().Add(time.Hour))
		},
		"PruneNonces": func() error { _, err := s.PruneNonces(ctx, time.Now()); return err },
	}
	for round := range 3 {
		for name, call := range calls {
			err := call()
			if !storage.Unavailable(err) || storage.IsPermanent(err) {
				t.Errorf("round %d: %s during the outage: %v; want an error storage.Unavailable reports", round, name, err)
			}
			if err != nil && strings.Contains(err.Error(), proxy.Addr()) {
				t.Errorf("%s: the error quotes the database address: %v", name, err)
			}
		}
	}
	if buf.Len() != 0 {
		t.Errorf("the ORM logged the outage:\n%s", buf.String())
	}

	proxy.Restore()
	if _, err := s.GetRegistration(ctx, reg.ID); err != nil {
		t.Errorf("GetRegistration after the outage: %v", err)
	}
}
