package storage_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// TestPostgresListen checks that a change committed through one store is
// heard by another store's listener, and that the listener announces its
// connection, which is when a caller catches up on what it missed.
func TestPostgresListen(t *testing.T) {
	url := storagetest.PostgresURL(t)
	listener := openStore(t, url)
	writer := openStore(t, url)
	n, ok := listener.(storage.Notifier)
	if !ok {
		t.Fatalf("the PostgreSQL store does not implement storage.Notifier")
	}
	heard := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Listen(ctx, func() { heard <- struct{}{} })
	}()
	t.Cleanup(func() { cancel(); <-done })

	wait := func(what string) {
		t.Helper()
		select {
		case <-heard:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification %s", what)
		}
	}
	wait("on connecting")
	reg, key := fixture("k")
	if _, _, err := writer.CreateRegistration(t.Context(), reg, key); err != nil {
		t.Fatal(err)
	}
	wait("after CreateRegistration")
	_, next := fixture("k2")
	next.RegistrationID = reg.ID
	if _, _, _, err := writer.RotateKey(t.Context(), reg.ID, next); err != nil {
		t.Fatal(err)
	}
	wait("after RotateKey")
	if _, err := writer.RetireKey(t.Context(), key.KID); err != nil {
		t.Fatal(err)
	}
	wait("after RetireKey")
}

func TestSQLiteIsNotANotifier(t *testing.T) {
	if _, ok := openStore(t, storagetest.SQLiteURL(t)).(storage.Notifier); ok {
		t.Errorf("the SQLite store claims to push notifications")
	}
}

func TestStatementHook(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var n atomic.Int64
			s := openStore(t, b.url(t), storage.WithStatementHook(func(context.Context) { n.Add(1) }))
			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"Version", func() error { _, err := s.Version(t.Context()); return err }},
				{"ActiveKeys", func() error { _, err := s.ActiveKeys(t.Context()); return err }},
				{"CreateRegistration", func() error {
					reg, key := fixture("k")
					_, _, err := s.CreateRegistration(t.Context(), reg, key)
					return err
				}},
			} {
				before := n.Load()
				if err := op.run(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				if n.Load() == before {
					t.Errorf("%s ran no statement the hook saw", op.name)
				}
			}
		})
	}
}
