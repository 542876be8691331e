package storage

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// jwkModel is a row of lti_jwks. registration_id is indexed but carries no
// foreign key: CreateRegistration inserts the key before its registration.
type jwkModel struct {
	ID             int64     `gorm:"column:id;primaryKey;autoIncrement"`
	KID            string    `gorm:"column:kid;size:255;not null;uniqueIndex:idx_lti_jwks_kid"`
	Alg            string    `gorm:"column:alg;size:16;not null"`
	RegistrationID string    `gorm:"column:registration_id;size:36;not null;index"`
	PublicJWK      string    `gorm:"column:public_jwk;type:text;not null"`
	PrivateJWK     []byte    `gorm:"column:private_jwk;not null"` // bytea / blob
	Active         bool      `gorm:"column:active;not null;default:true"`
	CreatedAt      time.Time `gorm:"column:created_at;not null"`
	UpdatedAt      time.Time `gorm:"column:updated_at;not null"`
	// The schedule (see Key). NULL activates_at only in rows written before
	// these columns existed, until migrate fills it in.
	ActivatesAt  *time.Time `gorm:"column:activates_at"`
	SupersededAt *time.Time `gorm:"column:superseded_at"`
	RetireAt     *time.Time `gorm:"column:retire_at;index"`
	RetiredAt    *time.Time `gorm:"column:retired_at"`
	// Version is the change counter value of the transaction that last
	// changed the row (see Store.Version); 0 in rows written before it was
	// recorded.
	Version int64 `gorm:"column:version;not null;default:0;index:idx_lti_jwks_version"`
}

func (jwkModel) TableName() string { return "lti_jwks" }

// publicColumns are the lti_jwks columns other than private_jwk.
var publicColumns = []string{"id", "kid", "alg", "registration_id", "public_jwk", "active", "created_at", "updated_at",
	"activates_at", "superseded_at", "retire_at", "retired_at"}

// registrationModel is a row of platform_registrations. JWK exists only to
// declare the foreign key jwk_id → lti_jwks.id; it is never loaded or saved.
type registrationModel struct {
	ID            string    `gorm:"column:id;primaryKey;size:36;not null"`
	Issuer        string    `gorm:"column:issuer;size:255;not null;uniqueIndex:idx_platform_registrations_live_issuer_client_id,priority:1,where:deleted_at IS NULL"`
	ClientID      string    `gorm:"column:client_id;size:255;not null;uniqueIndex:idx_platform_registrations_live_issuer_client_id,priority:2,where:deleted_at IS NULL"`
	AuthEndpoint  string    `gorm:"column:auth_endpoint;type:text;not null"`
	JWKSURI       string    `gorm:"column:jwks_uri;type:text;not null"`
	TokenEndpoint string    `gorm:"column:token_endpoint;type:text;not null"`
	JWKID         int64     `gorm:"column:jwk_id;not null;index"`
	JWK           *jwkModel `gorm:"foreignKey:JWKID;constraint:OnUpdate:RESTRICT,OnDelete:RESTRICT"`
	CreatedAt     time.Time `gorm:"column:created_at;not null"`
	UpdatedAt     time.Time `gorm:"column:updated_at;not null"`
	// PendingJWKID is the key a pending rotation makes current at its
	// activates_at; NULL when none is pending. Like jwk_id it references
	// lti_jwks.id, but without a declared foreign key: the schema of the
	// releases that added the column to existing tables, which SQLite's
	// ALTER TABLE cannot give one, has none.
	PendingJWKID *int64 `gorm:"column:pending_jwk_id;index"`
	// DeletedAt marks a deleted registration, kept for audit. Only
	// registrations with NULL deleted_at hold their (issuer, client_id).
	DeletedAt *time.Time `gorm:"column:deleted_at"`
	// DeploymentIDs are the deployment ids the registration allows, as a
	// JSON array; '[]' (every row written before the column existed)
	// allows any.
	DeploymentIDs deploymentIDs `gorm:"column:deployment_ids;type:text;not null;default:'[]'"`
}

func (registrationModel) TableName() string { return "platform_registrations" }

// registrationRow is a registration joined with its current key's kid and
// its pending key's kid and activation time.
type registrationRow struct {
	Reg                registrationModel `gorm:"embedded"`
	KID                string            `gorm:"column:kid"`
	PendingKID         *string           `gorm:"column:pending_kid"`
	PendingActivatesAt *time.Time        `gorm:"column:pending_activates_at"`
}

func (r registrationRow) registration() Registration {
	reg := r.Reg.registration(r.KID)
	if r.PendingKID != nil && r.PendingActivatesAt != nil {
		reg.PendingKID = *r.PendingKID
		reg.PendingActivatesAt = r.PendingActivatesAt.UTC()
	}
	return reg
}

// timeOrZero returns *t in UTC, or the zero time for nil.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func newJWKModel(k Key, now time.Time) jwkModel {
	activates := now
	return jwkModel{
		ActivatesAt:    &activates,
		KID:            k.KID,
		Alg:            k.Alg,
		RegistrationID: k.RegistrationID,
		PublicJWK:      string(k.PublicJWK),
		PrivateJWK:     k.PrivateJWK,
		Active:         true,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
}

func (m jwkModel) key() Key {
	k := Key{
		KID:            m.KID,
		Alg:            m.Alg,
		RegistrationID: m.RegistrationID,
		PrivateJWK:     m.PrivateJWK,
		Active:         m.Active,
		Seq:            m.ID,
		CreatedAt:      m.CreatedAt.UTC(),
		UpdatedAt:      m.UpdatedAt.UTC(),
		ActivatesAt:    timeOrZero(m.ActivatesAt),
		SupersededAt:   timeOrZero(m.SupersededAt),
		RetireAt:       timeOrZero(m.RetireAt),
		RetiredAt:      timeOrZero(m.RetiredAt),
	}
	if m.ActivatesAt == nil {
		k.ActivatesAt = k.CreatedAt
	}
	if m.PublicJWK != "" {
		k.PublicJWK = []byte(m.PublicJWK)
	}
	return k
}

func newRegistrationModel(r Registration, jwkID int64, now time.Time) registrationModel {
	return registrationModel{
		DeploymentIDs: deploymentIDs(r.DeploymentIDs),
		ID:            r.ID,
		Issuer:        r.Issuer,
		ClientID:      r.ClientID,
		AuthEndpoint:  r.AuthEndpoint,
		JWKSURI:       r.JWKSURI,
		TokenEndpoint: r.TokenEndpoint,
		JWKID:         jwkID,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
}

func (m registrationModel) registration(kid string) Registration {
	return Registration{
		ID:            m.ID,
		Issuer:        m.Issuer,
		ClientID:      m.ClientID,
		AuthEndpoint:  m.AuthEndpoint,
		JWKSURI:       m.JWKSURI,
		TokenEndpoint: m.TokenEndpoint,
		KID:           kid,
		CreatedAt:     m.CreatedAt.UTC(),
		UpdatedAt:     m.UpdatedAt.UTC(),
		DeploymentIDs: m.DeploymentIDs.list(),
	}
}

// deploymentIDs is the deployment_ids column: a list of strings, stored as
// a JSON array. A registration that allows any deployment holds none (nil),
// stored as '[]'. Reading a value that is not an array of strings fails
// the query rather than reading as an empty list, which would allow any
// deployment.
type deploymentIDs []string

// list returns the ids as Registration carries them: a copy, nil when
// there are none.
func (d deploymentIDs) list() []string {
	if len(d) == 0 {
		return nil
	}
	return slices.Clone(d)
}

// Value implements driver.Valuer. An id that is not valid UTF-8, which
// JSON cannot hold unchanged, is an error.
func (d deploymentIDs) Value() (driver.Value, error) {
	if len(d) == 0 {
		return "[]", nil
	}
	for i, id := range d {
		if !utf8.ValidString(id) {
			return nil, fmt.Errorf("deployment id %d is not valid UTF-8", i)
		}
	}
	b, err := json.Marshal([]string(d))
	return string(b), err
}

// Scan implements sql.Scanner.
func (d *deploymentIDs) Scan(src any) error {
	var text []byte
	switch v := src.(type) {
	case string:
		text = []byte(v)
	case []byte:
		text = v
	default:
		return fmt.Errorf("deployment_ids: unexpected %T", src)
	}
	var ids []string
	if err := json.Unmarshal(text, &ids); err != nil {
		return fmt.Errorf("deployment_ids: not a JSON array of strings: %w", err)
	}
	if ids == nil {
		return errors.New("deployment_ids: null, not a JSON array")
	}
	*d = ids
	return nil
}

// changeModel is the single row of ltikeys_changes: the change counter that
// Store.Version reads. Every write transaction that changes what readers see
// increments it last, so readers see the new value only once the change is
// committed.
type changeModel struct {
	ID      int64 `gorm:"column:id;primaryKey;autoIncrement:false"`
	Version int64 `gorm:"column:version;not null;default:0"`
}

func (changeModel) TableName() string { return "ltikeys_changes" }

// changeRowID is the id of the counter's only row.
const changeRowID = 1

// nonceModel is a row of lti_launch_nonces: an (issuer, nonce) pair that
// UseNonce accepted, recorded until the token that carried it expires.
type nonceModel struct {
	Issuer    string    `gorm:"column:issuer;primaryKey;size:255;not null"`
	Nonce     string    `gorm:"column:nonce;primaryKey;size:255;not null"`
	ExpiresAt time.Time `gorm:"column:expires_at;not null;index"`
	CreatedAt time.Time `gorm:"column:created_at;not null"`
}

func (nonceModel) TableName() string { return "lti_launch_nonces" }
