package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

func TestKeyPool(t *testing.T) {
	pool := server.NewKeyPool(2, 2048)
	if _, ok := pool.Take(2048); ok {
		t.Fatal("an empty pool handed out a key")
	}
	if err := pool.Fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, okA := pool.Take(2048)
	b, okB := pool.Take(2048)
	_, okC := pool.Take(2048)
	if !okA || !okB || okC || a.KID == b.KID {
		t.Fatalf("took %v %v %v from a pool of 2 (kids %s, %s)", okA, okB, okC, a.KID, b.KID)
	}
	if _, ok := pool.Take(4096); ok {
		t.Error("a pool without 4096-bit keys handed one out")
	}
	var nilPool *server.KeyPool
	if _, ok := nilPool.Take(2048); ok {
		t.Error("a nil pool handed out a key")
	}
}

// TestKeyPoolServesRequests checks that requests use pooled keys, that a
// pooled key is stored only once a request takes it, and that Run refills.
func TestKeyPoolServesRequests(t *testing.T) {
	ctx := t.Context()
	store, err := storage.Open(ctx, "sqlite://"+t.TempDir()+"/pool.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pool := server.NewKeyPool(1, 2048)
	if err := pool.Fill(ctx); err != nil {
		t.Fatal(err)
	}
	if kids, _ := store.KeyIDs(ctx); len(kids) != 0 {
		t.Fatalf("filling the pool stored %d keys", len(kids))
	}
	keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, KeyPool: pool})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(runCtx, nil) }()
	defer func() { cancel(); <-done }()
	var kids []string
	for i := range 3 {
		resp, err := keys.CreateRegistration(ctx, validCreate("pool-"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, resp.GetKey().GetKid())
	}
	slices.Sort(kids)
	if len(slices.Compact(kids)) != 3 {
		t.Errorf("kids repeat: %v", kids)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if k, ok := pool.Take(2048); ok {
			crypto.Zero(k.PrivateJWK)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not refill the pool")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
