package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// BenchmarkKeyPool measures CreateRegistration and RotateKey, called on the
// service in process over SQLite, with a warm key pool and without one, in
// the same run, for 2048- and 4096-bit keys. The pool is refilled between
// calls, outside the timed region, as Run does between requests. It reports
// the median latency (ms/median) besides the mean.
//
//	go test -run '^$' -bench '^BenchmarkKeyPool$' -benchtime 10x ./server/
func BenchmarkKeyPool(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		for _, pooled := range []bool{false, true} {
			name := fmt.Sprintf("bits=%d/pool=%v", bits, pooled)
			for _, op := range []string{"CreateRegistration", "RotateKey"} {
				b.Run(name+"/"+op, func(b *testing.B) { benchKeyPool(b, bits, pooled, op) })
			}
		}
	}
}

func benchKeyPool(b *testing.B, bits int, pooled bool, op string) {
	ctx := context.Background()
	store, err := storage.Open(ctx, "sqlite://"+b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var pool *server.KeyPool
	if pooled {
		pool = server.NewKeyPool(1, bits)
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: bits, KeyPool: pool})
	if err != nil {
		b.Fatal(err)
	}
	var regID string
	if op == "RotateKey" {
		resp, err := keys.CreateRegistration(ctx, validCreate("rotate"))
		if err != nil {
			b.Fatal(err)
		}
		regID = resp.GetRegistration().GetId()
	}
	var times []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		if pool != nil {
			if err := pool.Fill(ctx); err != nil {
				b.Fatal(err)
			}
		}
		i++
		b.StartTimer()
		start := time.Now()
		if op == "CreateRegistration" {
			_, err = keys.CreateRegistration(ctx, validCreate(fmt.Sprint("bench-", i)))
		} else {
			_, err = keys.RotateKey(ctx, rotateNow(regID))
		}
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2])/float64(time.Millisecond), "ms/median")
}
