package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// gormStore implements Store on PostgreSQL and SQLite. On PostgreSQL, row
// locks (SELECT … FOR UPDATE) serialize writers of one row; on SQLite, where
// the dialect drops FOR UPDATE, every write transaction begins IMMEDIATE and
// so holds the database's write lock throughout.
type gormStore struct {
	db  *gorm.DB
	now func() time.Time
	// notify makes every change also pg_notify ChangesChannel (PostgreSQL).
	notify bool
}

// ChangesChannel is the PostgreSQL notification channel every committed
// change is announced on, with an empty payload.
const ChangesChannel = "ltikeys_changes"

// changed records a change inside tx: it increments the change counter and,
// on PostgreSQL, queues a notification, which the server delivers only if
// and when tx commits. Called last in a transaction, so the counter's row
// lock, which serializes all writers, is held as briefly as possible.
func (s *gormStore) changed(tx *gorm.DB) error {
	err := tx.Model(&changeModel{}).Where("id = ?", changeRowID).
		UpdateColumn("version", gorm.Expr("version + 1")).Error
	if err != nil || !s.notify {
		return err
	}
	return tx.Exec("SELECT pg_notify(?, '')", ChangesChannel).Error
}

func (s *gormStore) Version(ctx context.Context) (int64, error) {
	var m changeModel
	if err := s.db.WithContext(ctx).Where("id = ?", changeRowID).Take(&m).Error; err != nil {
		return 0, wrap(err, "read change counter")
	}
	return m.Version, nil
}

var _ Store = (*gormStore)(nil)

// forUpdate locks the selected rows until the transaction ends.
var forUpdate = clause.Locking{Strength: "UPDATE"}

// wrap adds context to err, translating the ORM's errors to sentinels:
// every error of a Store method reads "<operation>: storage: <cause>".
// Messages carry identifiers, never key material.
func wrap(err error, format string, args ...any) error {
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		err = ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		err = ErrAlreadyExists
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrKeyInUse):
	default:
		err = fmt.Errorf("storage: %w", err)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func (s *gormStore) CreateRegistration(ctx context.Context, reg Registration, key Key) (Registration, Key, error) {
	if reg.ID == "" || key.RegistrationID != reg.ID {
		err := fmt.Errorf("key.RegistrationID %q must equal the non-empty reg.ID", key.RegistrationID)
		return Registration{}, Key{}, wrap(err, "create registration %q", reg.ID)
	}
	now := s.now()
	k := newJWKModel(key, now)
	var r registrationModel
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&k).Error; err != nil {
			return err
		}
		r = newRegistrationModel(reg, k.ID, now)
		if err := tx.Create(&r).Error; err != nil {
			return err
		}
		return s.changed(tx)
	})
	if err != nil {
		return Registration{}, Key{}, wrap(err, "create registration %q", reg.ID)
	}
	return r.registration(k.KID), k.key(), nil
}

// registrations selects registrations joined with their current kid.
func (s *gormStore) registrations(ctx context.Context) *gorm.DB {
	return s.db.WithContext(ctx).Table("platform_registrations").
		Select("platform_registrations.*, lti_jwks.kid AS kid").
		Joins("JOIN lti_jwks ON lti_jwks.id = platform_registrations.jwk_id")
}

func (s *gormStore) GetRegistration(ctx context.Context, id string) (Registration, error) {
	var row registrationRow
	if err := s.registrations(ctx).Where("platform_registrations.id = ?", id).Take(&row).Error; err != nil {
		return Registration{}, wrap(err, "get registration %q", id)
	}
	return row.Reg.registration(row.KID), nil
}

func (s *gormStore) GetRegistrationByIssuerClient(ctx context.Context, issuer, clientID string) (Registration, error) {
	var row registrationRow
	err := s.registrations(ctx).
		Where("platform_registrations.issuer = ? AND platform_registrations.client_id = ?", issuer, clientID).
		Take(&row).Error
	if err != nil {
		return Registration{}, wrap(err, "get registration for issuer %q, client_id %q", issuer, clientID)
	}
	return row.Reg.registration(row.KID), nil
}

func (s *gormStore) GetKey(ctx context.Context, kid string) (Key, error) {
	var m jwkModel
	if err := s.db.WithContext(ctx).Where("kid = ?", kid).Take(&m).Error; err != nil {
		return Key{}, wrap(err, "get key %q", kid)
	}
	return m.key(), nil
}

func (s *gormStore) RotateKey(ctx context.Context, registrationID string, newKey Key) (Registration, Key, Key, error) {
	if newKey.RegistrationID != "" && newKey.RegistrationID != registrationID {
		err := fmt.Errorf("newKey.RegistrationID is %q", newKey.RegistrationID)
		return Registration{}, Key{}, Key{}, wrap(err, "rotate key of registration %q", registrationID)
	}
	newKey.RegistrationID = registrationID
	now := s.now()
	var (
		r         registrationModel
		prev, cur jwkModel
	)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(forUpdate).Where("id = ?", registrationID).Take(&r).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", r.JWKID).Take(&prev).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			// The foreign key rules this out; not the caller's ErrNotFound.
			return fmt.Errorf("current key (id %d) is missing", r.JWKID)
		} else if err != nil {
			return err
		}
		cur = newJWKModel(newKey, now)
		if err := tx.Create(&cur).Error; err != nil {
			return err
		}
		r.JWKID, r.UpdatedAt = cur.ID, now
		err := tx.Model(&registrationModel{}).Where("id = ?", r.ID).
			Updates(map[string]any{"jwk_id": r.JWKID, "updated_at": r.UpdatedAt}).Error
		if err != nil {
			return err
		}
		return s.changed(tx)
	})
	if err != nil {
		return Registration{}, Key{}, Key{}, wrap(err, "rotate key of registration %q", registrationID)
	}
	return r.registration(cur.KID), cur.key(), prev.key(), nil
}

func (s *gormStore) RetireKey(ctx context.Context, kid string) (Key, error) {
	var m jwkModel
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(forUpdate).Where("kid = ?", kid).Take(&m).Error; err != nil {
			return err
		}
		if !m.Active {
			return nil
		}
		var users int64
		if err := tx.Model(&registrationModel{}).Where("jwk_id = ?", m.ID).Count(&users).Error; err != nil {
			return err
		}
		if users > 0 {
			return ErrKeyInUse
		}
		m.Active, m.UpdatedAt = false, s.now()
		err := tx.Model(&jwkModel{}).Where("id = ?", m.ID).
			Updates(map[string]any{"active": m.Active, "updated_at": m.UpdatedAt}).Error
		if err != nil {
			return err
		}
		return s.changed(tx)
	})
	if err != nil {
		return Key{}, wrap(err, "retire key %q", kid)
	}
	return m.key(), nil
}

func (s *gormStore) ActiveKeys(ctx context.Context) ([]Key, error) {
	var rows []jwkModel
	err := s.db.WithContext(ctx).Select(publicColumns).Where("active = ?", true).
		Order("created_at DESC").Order("id DESC").Find(&rows).Error
	if err != nil {
		return nil, wrap(err, "list active keys")
	}
	keys := make([]Key, len(rows))
	for i, m := range rows {
		keys[i] = m.key()
	}
	return keys, nil
}

func (s *gormStore) KeyIDs(ctx context.Context) ([]string, error) {
	var kids []string
	if err := s.db.WithContext(ctx).Model(&jwkModel{}).Order("id").Pluck("kid", &kids).Error; err != nil {
		return nil, wrap(err, "list key ids")
	}
	return kids, nil
}

func (s *gormStore) UpdatePrivateKey(ctx context.Context, kid string, update func(sealed []byte) (next []byte, changed bool, err error)) error {
	var updateErr error
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m jwkModel
		if err := tx.Clauses(forUpdate).Where("kid = ?", kid).Take(&m).Error; err != nil {
			return err
		}
		next, changed, err := update(m.PrivateJWK)
		if err != nil {
			updateErr = err
			return err
		}
		if !changed {
			return nil
		}
		return tx.Model(&jwkModel{}).Where("id = ?", m.ID).
			Updates(map[string]any{"private_jwk": next, "updated_at": s.now()}).Error
	})
	switch {
	case updateErr != nil:
		return updateErr
	case err != nil:
		return wrap(err, "update private key %q", kid)
	}
	return nil
}

func (s *gormStore) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return sqlDB.Close()
}
