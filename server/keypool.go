package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/ltikeys/ltikeys/crypto"
)

// DefaultKeyPoolSize is how many pre-generated keys per key size a pool
// holds unless configured otherwise.
const DefaultKeyPoolSize = 4

// KeyPool holds a few pre-generated key pairs per key size, so
// CreateRegistration and RotateKey take one instead of waiting for RSA
// generation (tens of milliseconds at 2048 bits, up to seconds at 4096).
// Pooled keys live only in this process's memory: none is stored, or even
// sealed, before a request takes it, and a key is never handed out twice.
// Run refills it in the background. Safe for concurrent use.
type KeyPool struct {
	pools map[int]chan crypto.KeyPair
	// taken wakes Run after a take.
	taken chan struct{}
}

// NewKeyPool returns an empty pool of size keys for each of bits; call Run
// to fill it.
func NewKeyPool(size int, bits ...int) *KeyPool {
	p := &KeyPool{pools: make(map[int]chan crypto.KeyPair, len(bits)), taken: make(chan struct{}, 1)}
	for _, b := range bits {
		p.pools[b] = make(chan crypto.KeyPair, size)
	}
	return p
}

// Take returns a pooled key of bits, or false if none is ready (the caller
// generates one itself).
func (p *KeyPool) Take(bits int) (crypto.KeyPair, bool) {
	if p == nil {
		return crypto.KeyPair{}, false
	}
	select {
	case k := <-p.pools[bits]:
		select {
		case p.taken <- struct{}{}:
		default:
		}
		return k, true
	default:
		return crypto.KeyPair{}, false
	}
}

// Depth returns how many keys of each size are ready now.
func (p *KeyPool) Depth() map[int]int {
	if p == nil {
		return nil
	}
	depth := make(map[int]int, len(p.pools))
	for bits, pool := range p.pools {
		depth[bits] = len(pool)
	}
	return depth
}

// Fill generates keys until every size is full or ctx is done.
func (p *KeyPool) Fill(ctx context.Context) error {
	for bits, pool := range p.pools {
		for len(pool) < cap(pool) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			k, err := crypto.GenerateKeyPair(bits)
			if err != nil {
				return err
			}
			select {
			case pool <- k:
			default: // filled meanwhile; drop it
				crypto.Zero(k.PrivateJWK)
			}
		}
	}
	return nil
}

// Run keeps the pool full until ctx is done, generating one key at a time
// (so refilling never takes more than one core). On exit it wipes the keys
// it still holds.
func (p *KeyPool) Run(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer p.drain()
	for {
		if err := p.Fill(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "key pool refill failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.taken:
		}
	}
}

func (p *KeyPool) drain() {
	for _, pool := range p.pools {
		for {
			select {
			case k := <-pool:
				crypto.Zero(k.PrivateJWK)
				continue
			default:
			}
			break
		}
	}
}
