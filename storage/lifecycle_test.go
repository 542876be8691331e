package storage_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/conformance"
)

// The schema before key lifecycles, as the previous release created it.
type v0Key struct {
	ID             int64     `gorm:"column:id;primaryKey;autoIncrement"`
	KID            string    `gorm:"column:kid;size:255;not null;uniqueIndex:idx_lti_jwks_kid"`
	Alg            string    `gorm:"column:alg;size:16;not null"`
	RegistrationID string    `gorm:"column:registration_id;size:36;not null;index"`
	PublicJWK      string    `gorm:"column:public_jwk;type:text;not null"`
	PrivateJWK     []byte    `gorm:"column:private_jwk;not null"`
	Active         bool      `gorm:"column:active;not null;default:true"`
	CreatedAt      time.Time `gorm:"column:created_at;not null"`
	UpdatedAt      time.Time `gorm:"column:updated_at;not null"`
}

func (v0Key) TableName() string { return "lti_jwks" }

type v0Registration struct {
	ID            string    `gorm:"column:id;primaryKey;size:36;not null"`
	Issuer        string    `gorm:"column:issuer;size:255;not null;uniqueIndex:idx_platform_registrations_issuer_client_id,priority:1"`
	ClientID      string    `gorm:"column:client_id;size:255;not null;uniqueIndex:idx_platform_registrations_issuer_client_id,priority:2"`
	AuthEndpoint  string    `gorm:"column:auth_endpoint;type:text;not null"`
	JWKSURI       string    `gorm:"column:jwks_uri;type:text;not null"`
	TokenEndpoint string    `gorm:"column:token_endpoint;type:text;not null"`
	JWKID         int64     `gorm:"column:jwk_id;not null;index"`
	JWK           *v0Key    `gorm:"foreignKey:JWKID;constraint:OnUpdate:RESTRICT,OnDelete:RESTRICT"`
	CreatedAt     time.Time `gorm:"column:created_at;not null"`
	UpdatedAt     time.Time `gorm:"column:updated_at;not null"`
}

func (v0Registration) TableName() string { return "platform_registrations" }

type v0Change struct {
	ID      int64 `gorm:"column:id;primaryKey;autoIncrement:false"`
	Version int64 `gorm:"column:version;not null;default:0"`
}

func (v0Change) TableName() string { return "ltikeys_changes" }

// openBeforeLifecycle creates at url the schema of the release before key
// lifecycles as that release did, with GORM's AutoMigrate, and returns the
// connection. Without changeCounter, it leaves out ltikeys_changes, as the
// first release did.
func openBeforeLifecycle(t *testing.T, url string, changeCounter bool) *gorm.DB {
	t.Helper()
	var dialector gorm.Dialector
	if strings.HasPrefix(url, "sqlite://") {
		dialector = sqlite.Open(strings.TrimPrefix(url, "sqlite://"))
	} else {
		dialector = postgres.Open(url)
	}
	db, err := gorm.Open(dialector, &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	models := []any{&v0Key{}, &v0Registration{}}
	if changeCounter {
		models = append(models, &v0Change{})
	}
	if err := db.AutoMigrate(models...); err != nil {
		t.Fatal(err)
	}
	return db
}

// schemaBeforeLifecycle creates the schema of the release before key
// lifecycles at url (see openBeforeLifecycle), and returns url.
func schemaBeforeLifecycle(t *testing.T, url string, changeCounter bool) string {
	t.Helper()
	db := openBeforeLifecycle(t, url, changeCounter)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlDB.Close(); err != nil {
		t.Fatal(err)
	}
	return url
}

// TestUpgradeFromSchemaBeforeLifecycle writes rows with the previous schema,
// then opens the database with this one: taking over the schema adds the
// columns, and the rows read as the states they were in.
func TestUpgradeFromSchemaBeforeLifecycle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			db := openBeforeLifecycle(t, url, true)
			t0 := time.Date(2029, 6, 1, 0, 0, 0, 0, time.UTC)
			key := func(regID string, at time.Time) v0Key {
				return v0Key{KID: uuid.NewString(), Alg: "RS256", RegistrationID: regID, PublicJWK: `{"kty":"RSA"}`,
					PrivateJWK: []byte{1}, Active: true, CreatedAt: at, UpdatedAt: at}
			}
			regID := uuid.NewString()
			// Rotated twice; the first key retired by hand.
			keys := []v0Key{key(regID, t0), key(regID, t0.Add(time.Hour)), key(regID, t0.Add(2*time.Hour))}
			if err := db.Create(&keys).Error; err != nil {
				t.Fatal(err)
			}
			err := db.Model(&v0Key{}).Where("id = ?", keys[0].ID).
				Updates(map[string]any{"active": false, "updated_at": t0.Add(3 * time.Hour)}).Error
			if err != nil {
				t.Fatal(err)
			}
			reg := v0Registration{ID: regID, Issuer: "https://old.example", ClientID: "c", AuthEndpoint: "https://old.example/a",
				JWKSURI: "https://old.example/j", TokenEndpoint: "https://old.example/t", JWKID: keys[2].ID, CreatedAt: t0, UpdatedAt: t0}
			if err := db.Create(&reg).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Create(&v0Change{ID: 1, Version: 7}).Error; err != nil {
				t.Fatal(err)
			}
			sqlDB, _ := db.DB()
			sqlDB.Close()

			now := t0.Add(10 * time.Hour)
			s := openStore(t, url, storage.WithClock(func() time.Time { return now }))
			// Opening twice more must change nothing.
			openStore(t, url).Close()
			got, err := s.GetRegistration(t.Context(), regID)
			if err != nil || got.KID != keys[2].KID || got.PendingKID != "" {
				t.Fatalf("GetRegistration after upgrade: %+v, %v", got, err)
			}
			for i, want := range []storage.KeyState{storage.KeyRetired, storage.KeyPrevious, storage.KeyCurrent} {
				k, err := s.GetKey(t.Context(), keys[i].KID)
				if err != nil {
					t.Fatal(err)
				}
				if st := k.State(now); st != want {
					t.Errorf("key %d after upgrade: state %d, want %d (%+v)", i+1, st, want, k)
				}
				if !k.ActivatesAt.Equal(keys[i].CreatedAt) {
					t.Errorf("key %d: activates at %v, want its creation %v", i+1, k.ActivatesAt, keys[i].CreatedAt)
				}
			}
			if k, _ := s.GetKey(t.Context(), keys[1].KID); !k.SupersededAt.Equal(keys[2].CreatedAt) || !k.RetireAt.IsZero() {
				t.Errorf("previous key: superseded at %v (want %v), retire at %v (want none)", k.SupersededAt, keys[2].CreatedAt, k.RetireAt)
			}
			if v, err := s.Version(t.Context()); err != nil || v != 7 {
				t.Errorf("Version after upgrade = %d, %v; want 7", v, err)
			}
			// The new schema works on the old rows: rotate, delete, reuse.
			if _, err := s.Rotate(t.Context(), regID, storage.Key{KID: uuid.NewString(), Alg: "RS256", PublicJWK: []byte(`{}`), PrivateJWK: []byte{1}},
				storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour}); err != nil {
				t.Fatalf("Rotate after upgrade: %v", err)
			}
			if _, err := s.DeleteRegistration(t.Context(), regID); err != nil {
				t.Fatalf("DeleteRegistration after upgrade: %v", err)
			}
			again := storage.Registration{ID: uuid.NewString(), Issuer: reg.Issuer, ClientID: reg.ClientID,
				AuthEndpoint: reg.AuthEndpoint, JWKSURI: reg.JWKSURI, TokenEndpoint: reg.TokenEndpoint}
			if _, _, err := s.CreateRegistration(t.Context(), again, storage.Key{KID: uuid.NewString(), Alg: "RS256", RegistrationID: again.ID,
				PublicJWK: []byte(`{}`), PrivateJWK: []byte{1}}); err != nil {
				t.Errorf("CreateRegistration reusing the deleted pair after upgrade: %v", err)
			}
		})
	}
}

// TestTransitionsApplyOnce runs ApplyTransitions from two stores (two
// server instances) on one database at once, repeatedly: every due
// transition is applied, and counted, exactly once.
func TestTransitionsApplyOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			clock := conformance.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			s1 := openStore(t, url, storage.WithClock(clock.Now))
			s2 := openStore(t, url, storage.WithClock(clock.Now))
			const regs = 20
			for i := range regs {
				reg := storage.Registration{ID: uuid.NewString(), Issuer: "https://p.example", ClientID: uuid.NewString(),
					AuthEndpoint: "https://p.example/a", JWKSURI: "https://p.example/j", TokenEndpoint: "https://p.example/t"}
				newKey := func() storage.Key {
					return storage.Key{KID: uuid.NewString(), Alg: "RS256", RegistrationID: reg.ID, PublicJWK: []byte(`{}`), PrivateJWK: []byte{1}}
				}
				s := []storage.Store{s1, s2}[i%2]
				if _, _, err := s.CreateRegistration(t.Context(), reg, newKey()); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Rotate(t.Context(), reg.ID, newKey(), storage.RotateOptions{PublishAhead: time.Hour, RetirePreviousAfter: time.Hour}); err != nil {
					t.Fatal(err)
				}
			}
			before, err := s1.Version(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// Both kinds due at once: 20 activations, then 20 retirements.
			clock.Set(clock.Now().Add(3 * time.Hour))
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				applied int
			)
			for w := range 4 {
				s := []storage.Store{s1, s2}[w%2]
				wg.Go(func() {
					for range 3 {
						n, err := s.ApplyTransitions(t.Context())
						if err != nil {
							t.Errorf("ApplyTransitions: %v", err)
						}
						mu.Lock()
						applied += n
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			after, err := s2.Version(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if applied != 2*regs || after-before != 2*regs {
				t.Errorf("applied %d transitions, version moved by %d; want %d and %d", applied, after-before, 2*regs, 2*regs)
			}
			if keys, err := s1.ActiveKeys(t.Context()); err != nil || len(keys) != regs {
				t.Errorf("ActiveKeys: %d keys, %v; want %d", len(keys), err, regs)
			}
		})
	}
}
