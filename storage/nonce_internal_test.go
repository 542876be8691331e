package storage

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestPruneNoncesInBatches prunes more expired rows than a batch holds:
// each statement deletes at most nonceBatch rows, PruneNonces goes on
// until a batch comes up short, and the rows that have not expired stay.
func TestPruneNoncesInBatches(t *testing.T) {
	defer func(n int) { nonceBatch = n }(nonceBatch)
	nonceBatch = 3
	for _, c := range backendCases {
		t.Run(c.backend.name, func(t *testing.T) {
			url := c.url(t)
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			var statements atomic.Int64
			s, err := Open(t.Context(), url, WithClock(func() time.Time { return now }),
				WithStatementHook(func(context.Context) { statements.Add(1) }))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const expired, live = 10, 2
			for i := range expired + live {
				exp := now.Add(time.Duration(i+1) * time.Second)
				if i >= expired {
					exp = now.Add(time.Hour)
				}
				if err := s.UseNonce(t.Context(), "https://platform.example", fmt.Sprintf("n-%02d", i), exp); err != nil {
					t.Fatal(err)
				}
			}
			statements.Store(0)
			n, err := s.PruneNonces(t.Context(), now.Add(expired*time.Second))
			if err != nil || n != expired {
				t.Fatalf("PruneNonces = %d, %v; want %d", n, err, expired)
			}
			// 3, 3, 3, then 1: a batch shorter than nonceBatch is the last.
			if got, want := statements.Load(), int64((expired+nonceBatch-1)/nonceBatch); got != want {
				t.Errorf("PruneNonces ran %d statements, want %d batches of at most %d", got, want, nonceBatch)
			}
			var left int
			if err := sqlDB(t, url).QueryRowContext(t.Context(), "SELECT count(*) FROM lti_launch_nonces").Scan(&left); err != nil || left != live {
				t.Errorf("rows left after pruning: %d (%v), want the %d that have not expired", left, err, live)
			}
		})
	}
}
