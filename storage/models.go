package storage

import "time"

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
}

func (jwkModel) TableName() string { return "lti_jwks" }

// publicColumns are the lti_jwks columns other than private_jwk.
var publicColumns = []string{"id", "kid", "alg", "registration_id", "public_jwk", "active", "created_at", "updated_at"}

// registrationModel is a row of platform_registrations. JWK exists only to
// declare the foreign key jwk_id → lti_jwks.id; it is never loaded or saved.
type registrationModel struct {
	ID            string    `gorm:"column:id;primaryKey;size:36;not null"`
	Issuer        string    `gorm:"column:issuer;size:255;not null;uniqueIndex:idx_platform_registrations_issuer_client_id,priority:1"`
	ClientID      string    `gorm:"column:client_id;size:255;not null;uniqueIndex:idx_platform_registrations_issuer_client_id,priority:2"`
	AuthEndpoint  string    `gorm:"column:auth_endpoint;type:text;not null"`
	JWKSURI       string    `gorm:"column:jwks_uri;type:text;not null"`
	TokenEndpoint string    `gorm:"column:token_endpoint;type:text;not null"`
	JWKID         int64     `gorm:"column:jwk_id;not null;index"`
	JWK           *jwkModel `gorm:"foreignKey:JWKID;constraint:OnUpdate:RESTRICT,OnDelete:RESTRICT"`
	CreatedAt     time.Time `gorm:"column:created_at;not null"`
	UpdatedAt     time.Time `gorm:"column:updated_at;not null"`
}

func (registrationModel) TableName() string { return "platform_registrations" }

// registrationRow is a registration joined with its current key's kid.
type registrationRow struct {
	Reg registrationModel `gorm:"embedded"`
	KID string            `gorm:"column:kid"`
}

func newJWKModel(k Key, now time.Time) jwkModel {
	return jwkModel{
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
		CreatedAt:      m.CreatedAt.UTC(),
		UpdatedAt:      m.UpdatedAt.UTC(),
	}
	if m.PublicJWK != "" {
		k.PublicJWK = []byte(m.PublicJWK)
	}
	return k
}

func newRegistrationModel(r Registration, jwkID int64, now time.Time) registrationModel {
	return registrationModel{
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
	}
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
