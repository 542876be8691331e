package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/google/uuid"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// memStore is a Store over fixed data, so benchmarks measure the server and
// not a database. Methods it does not override panic.
type memStore struct {
	storage.Store
	version int64
	keys    []storage.Key
	regs    map[string]storage.Registration
	byKID   map[string]storage.Key
}

func (m *memStore) Version(context.Context) (int64, error)            { return m.version, nil }
func (m *memStore) ActiveKeys(context.Context) ([]storage.Key, error) { return m.keys, nil }
func (m *memStore) KeysChangedSince(context.Context, int64) (int64, []storage.Key, error) {
	return m.version, nil, nil
}
func (m *memStore) GetRegistration(_ context.Context, id string) (storage.Registration, error) {
	if r, ok := m.regs[id]; ok {
		return r, nil
	}
	return storage.Registration{}, storage.ErrNotFound
}
func (m *memStore) GetKey(_ context.Context, kid string) (storage.Key, error) {
	if k, ok := m.byKID[kid]; ok {
		return k, nil
	}
	return storage.Key{}, storage.ErrNotFound
}

// syntheticKeys returns n active keys, one per registration, whose public
// halves are random 2048-bit odd moduli: valid to publish, never used.
func syntheticKeys(b testing.TB, n int) []storage.Key {
	keys := make([]storage.Key, n)
	for i := range keys {
		kid := "synthetic-" + strconv.Itoa(i)
		keys[i] = storage.Key{
			KID: kid, Alg: "RS256", RegistrationID: uuid.NewString(), Active: true,
			PublicJWK: storagetest.SyntheticPublicJWK(kid),
		}
	}
	return keys
}

// BenchmarkJWKSRebuild measures a full build, what a process's first
// refresh costs (later ones apply only what changed: see
// BenchmarkJWKSRotation): the active keys' public halves validated and
// serialized into the global set, hashed; nothing is decrypted. The gzip
// copy is made on the first request that accepts it and is measured apart.
func BenchmarkJWKSRebuild(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		store := &memStore{keys: syntheticKeys(b, n)}
		load := func(b *testing.B) *server.JWKSCache {
			cache := server.NewJWKSCache(store)
			if err := cache.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			return cache
		}
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			var doc []byte
			for b.Loop() {
				doc = load(b).Document()
			}
			b.ReportMetric(float64(len(doc)), "doc-bytes")
		})
		b.Run("keys="+strconv.Itoa(n)+"/gzip", func(b *testing.B) {
			var size int
			for b.Loop() {
				b.StopTimer()
				cache := load(b)
				cache.Document()
				h, err := server.NewHTTPHandler(context.Background(), server.NewJwksService(cache), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, server.JWKSPath, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				h.ServeHTTP(rec, req)
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "gzip-bytes")
		})
	}
}

// BenchmarkJWKSHandler serves the 3-key document in process, through a
// bare handler writing the same bytes with the same headers, through the
// whole public handler (where JwksService answers from memory, before the
// gateway) and through the gateway alone, each both 200 and, to a matching
// If-None-Match, 304.
func BenchmarkJWKSHandler(b *testing.B) {
	store := &memStore{keys: syntheticKeys(b, 3)}
	cache := server.NewJWKSCache(store)
	if err := cache.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	doc := cache.Document()
	public, err := server.NewHTTPHandler(context.Background(), server.NewJwksService(cache), nil)
	if err != nil {
		b.Fatal(err)
	}
	// The same service without its ServeFromMemory: the gateway answers all.
	gwOnly, err := server.NewHTTPHandler(context.Background(), struct{ ltikeysv1.JwksServiceServer }{server.NewJwksService(cache)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	public.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, server.JWKSPath, nil))
	etag, okHeader := rec.Header().Get("ETag"), rec.Header().Clone()
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		for k, v := range okHeader {
			h[k] = v
		}
		w.Write(doc)
	})
	for _, c := range []struct {
		name        string
		h           http.Handler
		ifNoneMatch string
		want        int
	}{
		{"bare", bare, "", http.StatusOK},
		{"public", public, "", http.StatusOK},
		{"public-304", public, etag, http.StatusNotModified},
		{"gateway", gwOnly, "", http.StatusOK},
		{"gateway-304", gwOnly, etag, http.StatusNotModified},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, server.JWKSPath, nil)
			if c.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", c.ifNoneMatch)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				c.h.ServeHTTP(rec, req)
				if rec.Code != c.want {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}

// BenchmarkKeyCacheMemory reports the heap a cached registration costs: its
// registration, its opened private JWK as text and parsed.
func BenchmarkKeyCacheMemory(b *testing.B) {
	env := newTestEnvWith(b, "sqlite://"+b.TempDir()+"/bench.db", testKeyring)
	created, err := env.keys.CreateRegistration(context.Background(), validCreate("mem"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := env.store.GetKey(context.Background(), created.GetKey().GetKid())
	if err != nil {
		b.Fatal(err)
	}
	reg, err := env.store.GetRegistration(context.Background(), created.GetRegistration().GetId())
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	store := &memStore{version: 1, regs: map[string]storage.Registration{}, byKID: map[string]storage.Key{}}
	ids := make([]string, n)
	for i := range ids {
		r := reg
		r.ID = uuid.NewString()
		r.Issuer += strconv.Itoa(i)
		store.regs[r.ID] = r
		ids[i] = r.ID
	}
	store.byKID[key.KID] = key
	for b.Loop() {
		cache := server.NewJWKSCache(store)
		if err := cache.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		keys, err := server.NewKeyService(server.KeyServiceConfig{Store: store, Keyring: testKeyring, KeyBits: 2048, JWKS: cache})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, id := range ids {
			if _, err := keys.GetToolKey(context.Background(), &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/registration")
		runtime.KeepAlive(keys)
	}
}
