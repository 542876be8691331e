package storage

import (
	"sync"
	"testing"

	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// TestPostgresPoolKeepsConnections checks that concurrent callers reuse
// the pool's connections rather than each opening one (a new server
// process on PostgreSQL) and closing it after use, as database/sql does
// beyond its default of two idle connections.
func TestPostgresPoolKeepsConnections(t *testing.T) {
	st, err := Open(t.Context(), storagetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sqlDB, err := st.(*pgStore).db.DB()
	if err != nil {
		t.Fatal(err)
	}
	const callers = 8
	for round := range 5 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range callers {
			wg.Go(func() {
				<-start
				for range 20 {
					if _, err := st.Version(t.Context()); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if closed := sqlDB.Stats().MaxIdleClosed; closed != 0 {
			t.Fatalf("after round %d of %d concurrent callers, %d connections were closed for want of idle slots", round+1, callers, closed)
		}
	}
	if open := sqlDB.Stats().OpenConnections; open > callers+1 {
		t.Errorf("%d connections open for %d callers", open, callers)
	}
}
