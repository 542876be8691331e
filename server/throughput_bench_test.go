package server_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// BenchmarkCreateRegistrationSustained measures sustained CreateRegistration
// throughput at concurrency 8, on the service in process with its JWKS
// cache and a key pool of serve's default size refilled in the background
// (as serve runs them), each round starting with the pool empty,
// against bare RSA-2048 key generation by 8 goroutines on the same cores,
// in the same run. Each iteration is one round of each, alternating, and
// the benchmark reports both rates and their ratio over all rounds; key
// generation is the floor, so the ratio says what storage, the JWKS update
// and the RPC cost on top of it. Sub-benchmarks start from databases that
// already publish 1,000 and 10,000 keys (synthetic public keys, inserted
// through the store), so the ratio shows whether a change costs more as the
// key set grows.
//
//	go test -run '^$' -bench '^BenchmarkCreateRegistrationSustained$' -benchtime 3x -timeout 30m ./server/
func BenchmarkCreateRegistrationSustained(b *testing.B) {
	const (
		workers = 8
		round   = 3 * time.Second
	)
	for _, backend := range backends {
		for _, existing := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("%s/keys=%d", backend.name, existing), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				store, err := storage.Open(ctx, backend.url(b))
				if err != nil {
					b.Fatal(err)
				}
				defer store.Close()
				if err := insertSyntheticRegistrations(ctx, store, existing); err != nil {
					b.Fatal(err)
				}
				jwks := server.NewJWKSCache(store)
				if err := jwks.Refresh(ctx); err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				create := func(keys *server.KeyService) func() error {
					return func() error {
						_, err := keys.CreateRegistration(ctx, validCreate(fmt.Sprintf("sustained-%d", n.Add(1))))
						return err
					}
				}
				generate := func() error {
					k, err := crypto.GenerateKeyPair(2048)
					crypto.Zero(k.PrivateJWK)
					return err
				}
				var bare, created sustained
				for b.Loop() {
					if err := bare.measure(workers, round, generate); err != nil {
						b.Fatal(err)
					}
					// Each round starts with an empty pool, refilled in the
					// background as serve runs it: what it generates is
					// generated in the round, on the same cores, so the
					// rate is sustained rather than a pool's stock spent.
					roundCtx, stop := context.WithCancel(ctx)
					pool := server.NewKeyPool(server.DefaultKeyPoolSize, 2048)
					refilled := make(chan struct{})
					go func() { pool.Run(roundCtx, nil); close(refilled) }()
					keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, KeyPool: pool, JWKS: jwks})
					if err != nil {
						b.Fatal(err)
					}
					err = created.measure(workers, round, create(keys))
					stop()
					<-refilled // no generation left running into the next round
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(bare.rate(), "bare-keys/s")
				b.ReportMetric(created.rate(), "creates/s")
				b.ReportMetric(created.rate()/bare.rate(), "ratio")
			})
		}
	}
}

// sustained accumulates the operations done and the time taken over the
// rounds of one side of a comparison.
type sustained struct {
	ops     int64
	elapsed time.Duration
}

// measure runs op in workers goroutines until d has passed, and adds what
// they completed.
func (s *sustained) measure(workers int, d time.Duration, op func() error) error {
	var (
		wg    sync.WaitGroup
		done  atomic.Int64
		first atomic.Pointer[error]
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := op(); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	s.ops += done.Load()
	s.elapsed += time.Since(start)
	return nil
}

func (s sustained) rate() float64 { return float64(s.ops) / s.elapsed.Seconds() }

// insertSyntheticRegistrations creates n registrations through store, each
// publishing one synthetic key (storagetest.SyntheticPublicJWK) whose
// private half is a placeholder no keyring opens: enough to time writes
// against a large key set, not to sign.
func insertSyntheticRegistrations(ctx context.Context, store storage.Store, n int) error {
	for i := range n {
		id := uuid.NewString()
		kid := "synthetic-" + strconv.Itoa(i) + "-" + id
		reg := storage.Registration{
			ID: id, Issuer: "https://synthetic.example/" + id, ClientID: "client",
			AuthEndpoint: "https://synthetic.example/auth", JWKSURI: "https://synthetic.example/jwks",
			TokenEndpoint: "https://synthetic.example/token",
		}
		key := storage.Key{KID: kid, Alg: "RS256", RegistrationID: id, PublicJWK: storagetest.SyntheticPublicJWK(kid), PrivateJWK: []byte{0}}
		if _, _, err := store.CreateRegistration(ctx, reg, key); err != nil {
			return err
		}
	}
	return nil
}
