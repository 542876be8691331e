package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// gormStore implements Store on PostgreSQL and SQLite. On PostgreSQL, row
// locks (SELECT … FOR UPDATE, and every UPDATE) serialize writers of one
// row, and every transaction takes them in the order the package
// documentation gives; on SQLite, where the dialect drops FOR UPDATE, every
// write transaction begins IMMEDIATE and so holds the database's write lock
// throughout. Every write transaction runs through transaction, which
// retries it when it conflicted with concurrent ones anyway.
type gormStore struct {
	db  *gorm.DB
	now func() time.Time
	// notify makes every change also pg_notify ChangesChannel (PostgreSQL).
	notify bool
}

// ChangesChannel is the PostgreSQL notification channel every committed
// change is announced on, with an empty payload.
const ChangesChannel = "ltikeys_changes"

// changed records a change inside tx: it increments the change counter,
// stamps the key rows keyIDs (rows tx has written: their active flag or
// schedule changed, or they are new) with the counter's new value, and, on
// PostgreSQL, queues a notification, which the server delivers only if and
// when tx commits. It must be the transaction's last lock, and so its last
// write: the counter's row lock, which serializes all writers, is then held
// as briefly as possible, and no transaction holding it waits for another
// lock (the rows it stamps are already locked by tx).
func (s *gormStore) changed(tx *gorm.DB, keyIDs ...int64) error {
	var version int64
	res := tx.Raw("UPDATE ltikeys_changes SET version = version + 1 WHERE id = ? RETURNING version", changeRowID).Scan(&version)
	switch {
	case res.Error != nil:
		return res.Error
	case res.RowsAffected != 1:
		return errors.New("the change counter's row is missing")
	}
	if len(keyIDs) > 0 {
		if err := tx.Model(&jwkModel{}).Where("id IN ?", keyIDs).UpdateColumn("version", version).Error; err != nil {
			return err
		}
	}
	if !s.notify {
		return nil
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

// wrap adds context to err, translating the ORM's errors to sentinels and a
// failure to connect to its ConnectionError: every error of a Store method
// reads "<operation>: storage: <cause>". Messages carry identifiers, never
// key material or any part of the database URL.
func wrap(err error, format string, args ...any) error {
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		err = ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		err = ErrAlreadyExists
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrKeyInUse), errors.Is(err, ErrTooManyKeys), errors.Is(err, ErrConflict),
		errors.Is(err, ErrNonceUsed):
	default:
		err = fmt.Errorf("storage: %w", safe(err))
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func (s *gormStore) CreateRegistration(ctx context.Context, reg Registration, key Key) (Registration, Key, error) {
	if reg.ID == "" || key.RegistrationID != reg.ID {
		err := fmt.Errorf("key.RegistrationID %q must equal the non-empty reg.ID", key.RegistrationID)
		return Registration{}, Key{}, wrap(err, "create registration %q", reg.ID)
	}
	var (
		k jwkModel
		r registrationModel
	)
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		// The key first, which the registration references: both rows
		// are new, so no other transaction can hold a lock on them.
		now := s.now()
		k = newJWKModel(key, now)
		if err := tx.Create(&k).Error; err != nil {
			return err
		}
		r = newRegistrationModel(reg, k.ID, now)
		if err := tx.Create(&r).Error; err != nil {
			return err
		}
		return s.changed(tx, k.ID)
	})
	if err != nil {
		return Registration{}, Key{}, wrap(err, "create registration %q", reg.ID)
	}
	return r.registration(k.KID), k.key(), nil
}

// registrations selects the registrations that are not deleted, joined
// with their current kid and their pending key, if any.
func (s *gormStore) registrations(ctx context.Context) *gorm.DB {
	return registrationsIn(s.db.WithContext(ctx))
}

// registrationsIn is registrations, in db (a transaction).
func registrationsIn(db *gorm.DB) *gorm.DB {
	return db.Table("platform_registrations").
		Select("platform_registrations.*, cur.kid AS kid, pend.kid AS pending_kid, pend.activates_at AS pending_activates_at").
		Joins("JOIN lti_jwks cur ON cur.id = platform_registrations.jwk_id").
		Joins("LEFT JOIN lti_jwks pend ON pend.id = platform_registrations.pending_jwk_id").
		Where("platform_registrations.deleted_at IS NULL")
}

func (s *gormStore) GetRegistration(ctx context.Context, id string) (Registration, error) {
	var row registrationRow
	if err := s.registrations(ctx).Where("platform_registrations.id = ?", id).Take(&row).Error; err != nil {
		return Registration{}, wrap(err, "get registration %q", id)
	}
	return row.registration(), nil
}

func (s *gormStore) GetRegistrationByIssuerClient(ctx context.Context, issuer, clientID string) (Registration, error) {
	var row registrationRow
	err := s.registrations(ctx).
		Where("platform_registrations.issuer = ? AND platform_registrations.client_id = ?", issuer, clientID).
		Take(&row).Error
	if err != nil {
		return Registration{}, wrap(err, "get registration for issuer %q, client_id %q", issuer, clientID)
	}
	return row.registration(), nil
}

func (s *gormStore) GetKey(ctx context.Context, kid string) (Key, error) {
	var m jwkModel
	if err := s.db.WithContext(ctx).Where("kid = ?", kid).Take(&m).Error; err != nil {
		return Key{}, wrap(err, "get key %q", kid)
	}
	return m.key(), nil
}

func (s *gormStore) RotateKey(ctx context.Context, registrationID string, newKey Key) (Registration, Key, Key, error) {
	r, err := s.Rotate(ctx, registrationID, newKey, RotateOptions{RetirePreviousAfter: -1})
	return r.Registration, r.New, r.Previous, err
}

func (s *gormStore) Rotate(ctx context.Context, registrationID string, newKey Key, opts RotateOptions) (Rotation, error) {
	if newKey.RegistrationID != "" && newKey.RegistrationID != registrationID {
		err := fmt.Errorf("newKey.RegistrationID is %q", newKey.RegistrationID)
		return Rotation{}, wrap(err, "rotate key of registration %q", registrationID)
	}
	newKey.RegistrationID = registrationID
	var out Rotation
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		out = Rotation{}
		now := s.now()
		activates := now.Add(max(opts.PublishAhead, 0))
		// touched collects the key rows written, for changed to stamp.
		var touched []int64
		var r registrationModel
		if err := tx.Clauses(forUpdate).Where("id = ? AND deleted_at IS NULL", registrationID).Take(&r).Error; err != nil {
			return err
		}
		// Then the keys it may change, the current and the pending one.
		ids := []int64{r.JWKID}
		if r.PendingJWKID != nil {
			ids = append(ids, *r.PendingJWKID)
		}
		keys, err := lockKeys(tx, ids)
		if err != nil {
			return err
		}
		prev := keys[r.JWKID]
		// A pending rotation is either due, and its key is the one being
		// replaced, or not, and its key is replaced before it ever signed.
		if r.PendingJWKID != nil {
			pending := keys[*r.PendingJWKID]
			if !now.Before(timeOrZero(pending.ActivatesAt)) {
				prev = pending
				r.JWKID = pending.ID
			} else {
				pending.Active, pending.RetiredAt, pending.UpdatedAt = false, &now, now
				if err := saveSchedule(tx, &pending); err != nil {
					return err
				}
				touched = append(touched, pending.ID)
				out.Replaced = pending.key()
			}
			r.PendingJWKID = nil
		}
		cur := newJWKModel(newKey, now)
		cur.ActivatesAt = &activates
		if err := tx.Create(&cur).Error; err != nil {
			return err
		}
		prev.SupersededAt, prev.RetireAt, prev.UpdatedAt = &activates, nil, now
		if opts.RetirePreviousAfter >= 0 {
			retireAt := activates.Add(opts.RetirePreviousAfter)
			prev.RetireAt = &retireAt
			if !retireAt.After(now) && prev.Active {
				prev.Active, prev.RetiredAt = false, &now
			}
		}
		if err := saveSchedule(tx, &prev); err != nil {
			return err
		}
		if activates.Equal(now) {
			r.JWKID = cur.ID
		} else {
			r.PendingJWKID = &cur.ID
		}
		r.UpdatedAt = now
		err = tx.Model(&registrationModel{}).Where("id = ?", r.ID).
			Updates(map[string]any{"jwk_id": r.JWKID, "pending_jwk_id": r.PendingJWKID, "updated_at": r.UpdatedAt}).Error
		if err != nil {
			return err
		}
		if opts.MaxPublished > 0 {
			// Counted in the transaction that holds the registration's
			// lock, after this rotation's changes: concurrent rotations of
			// one registration cannot both pass.
			var published int64
			err := tx.Model(&jwkModel{}).
				Where("registration_id = ? AND active = ? AND (retire_at IS NULL OR retire_at > ?)", registrationID, true, now).
				Count(&published).Error
			if err != nil {
				return err
			}
			if published > int64(opts.MaxPublished) {
				return ErrTooManyKeys
			}
		}
		out.New, out.Previous = cur.key(), prev.key()
		if r.PendingJWKID == nil {
			out.Registration = r.registration(cur.KID)
		} else {
			out.Registration = r.registration(prev.KID)
			out.Registration.PendingKID, out.Registration.PendingActivatesAt = cur.KID, activates
		}
		return s.changed(tx, append(touched, cur.ID, prev.ID)...)
	})
	if err != nil {
		return Rotation{}, wrap(err, "rotate key of registration %q", registrationID)
	}
	return out, nil
}

// lockKeys locks the key rows with ids, which registrations reference, in
// id order, and returns them by id.
func lockKeys(tx *gorm.DB, ids []int64) (map[int64]jwkModel, error) {
	var rows []jwkModel
	if err := tx.Clauses(forUpdate).Where("id IN ?", ids).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	keys := make(map[int64]jwkModel, len(rows))
	for _, m := range rows {
		keys[m.ID] = m
	}
	for _, id := range ids {
		if _, ok := keys[id]; !ok {
			return nil, missingKey(id)
		}
	}
	return keys, nil
}

// missingKey is the error for a key row that a registration references
// but that does not exist. Registrations only reference existing keys; it
// is not the caller's ErrNotFound.
func missingKey(id int64) error {
	return fmt.Errorf("referenced key (id %d) is missing", id)
}

// keyByID loads the key row with id, which a registration references,
// without locking it.
func keyByID(tx *gorm.DB, id int64) (jwkModel, error) {
	var m jwkModel
	err := tx.Where("id = ?", id).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return m, missingKey(id)
	}
	return m, err
}

// saveSchedule writes m's active flag, schedule and updated_at.
func saveSchedule(tx *gorm.DB, m *jwkModel) error {
	return tx.Model(&jwkModel{}).Where("id = ?", m.ID).Updates(map[string]any{
		"active":        m.Active,
		"superseded_at": m.SupersededAt,
		"retire_at":     m.RetireAt,
		"retired_at":    m.RetiredAt,
		"updated_at":    m.UpdatedAt,
	}).Error
}

func (s *gormStore) RetireKey(ctx context.Context, kid string) (Key, error) {
	var out jwkModel
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var m jwkModel
		if err := tx.Where("kid = ?", kid).Take(&m).Error; err != nil {
			return err
		}
		if out = m; !m.Active {
			return nil // a retired key is never active again
		}
		// Registrations before keys: find the registrations that use the
		// key without locking anything, lock them, and only then the key.
		// Nothing can start using a key after the transaction that
		// inserted it, so no user can be missing from this list; those
		// that stopped using it meanwhile are dropped as they are locked.
		var ids []string
		err := tx.Model(&registrationModel{}).
			Where("deleted_at IS NULL AND (jwk_id = ? OR pending_jwk_id = ?)", m.ID, m.ID).
			Order("id").Pluck("id", &ids).Error
		if err != nil {
			return err
		}
		var users []registrationModel
		if len(ids) > 0 {
			err := tx.Clauses(forUpdate).
				Where("id IN ? AND deleted_at IS NULL AND (jwk_id = ? OR pending_jwk_id = ?)", ids, m.ID, m.ID).
				Order("id").Find(&users).Error
			if err != nil {
				return err
			}
		}
		if err := tx.Clauses(forUpdate).Where("id = ?", m.ID).Take(&m).Error; err != nil {
			return err
		}
		if out = m; !m.Active {
			return nil // retired by a transaction that committed meanwhile
		}
		now := s.now()
		for _, r := range users {
			if r.PendingJWKID == nil || *r.PendingJWKID == m.ID {
				return ErrKeyInUse
			}
			// The key is current only until the pending key activates: if
			// that has passed, record it, and the key is free to retire.
			// The pending key's activation never changes, and only a
			// holder of the registration's lock can replace it.
			pending, err := keyByID(tx, *r.PendingJWKID)
			if err != nil {
				return err
			}
			if now.Before(timeOrZero(pending.ActivatesAt)) {
				return ErrKeyInUse
			}
			if _, err := promote(tx, r.ID, pending.ID, now); err != nil {
				return err
			}
		}
		m.Active, m.RetiredAt, m.UpdatedAt = false, &now, now
		if err := saveSchedule(tx, &m); err != nil {
			return err
		}
		out = m
		return s.changed(tx, m.ID)
	})
	if err != nil {
		return Key{}, wrap(err, "retire key %q", kid)
	}
	return out.key(), nil
}

// promote points registration id at its pending key pendingID, if that is
// still its pending key, and reports whether it did.
func promote(tx *gorm.DB, id string, pendingID int64, now time.Time) (bool, error) {
	res := tx.Model(&registrationModel{}).Where("id = ? AND pending_jwk_id = ?", id, pendingID).
		Updates(map[string]any{"jwk_id": pendingID, "pending_jwk_id": nil, "updated_at": now})
	return res.RowsAffected == 1, res.Error
}

func (s *gormStore) ApplyTransitions(ctx context.Context) (int, error) {
	now := s.now()
	db := s.db.WithContext(ctx)
	var due []struct {
		ID           string `gorm:"column:id"`
		PendingJWKID int64  `gorm:"column:pending_jwk_id"`
	}
	err := db.Table("platform_registrations").
		Select("platform_registrations.id, platform_registrations.pending_jwk_id").
		Joins("JOIN lti_jwks ON lti_jwks.id = platform_registrations.pending_jwk_id").
		Where("platform_registrations.deleted_at IS NULL AND lti_jwks.activates_at <= ?", now).
		Order("platform_registrations.id").Scan(&due).Error
	if err != nil {
		return 0, wrap(err, "find due activations")
	}
	applied := 0
	for _, d := range due {
		// The registration's row, then (the foreign key's check) the
		// pending key's, then the counter.
		var ok bool
		err := s.transaction(ctx, func(tx *gorm.DB) error {
			var err error
			if ok, err = promote(tx, d.ID, d.PendingJWKID, now); err != nil || !ok {
				return err
			}
			return s.changed(tx)
		})
		if err != nil {
			return applied, wrap(err, "activate pending key of registration %q", d.ID)
		}
		if ok {
			applied++
		}
	}

	var retire []int64
	err = db.Model(&jwkModel{}).Where("active = ? AND retire_at <= ?", true, now).Order("id").Pluck("id", &retire).Error
	if err != nil {
		return applied, wrap(err, "find due retirements")
	}
	for _, id := range retire {
		var ok bool
		err := s.transaction(ctx, func(tx *gorm.DB) error {
			// Never a key some registration signs with or will: that would
			// take a promotion first, which the next call applies. The
			// subquery locks no registration, and needs not: a key that no
			// registration uses is never used again (keys gain users only
			// in the transaction that inserts them), so what it reads
			// stays true until this commits. The key's row is the only
			// lock before the counter's.
			res := tx.Model(&jwkModel{}).
				Where("id = ? AND active = ? AND retire_at <= ?", id, true, now).
				Where("NOT EXISTS (SELECT 1 FROM platform_registrations r WHERE r.deleted_at IS NULL AND (r.jwk_id = lti_jwks.id OR r.pending_jwk_id = lti_jwks.id))").
				Updates(map[string]any{"active": false, "retired_at": gorm.Expr("retire_at"), "updated_at": now})
			if ok = res.Error == nil && res.RowsAffected == 1; !ok {
				return res.Error
			}
			return s.changed(tx, id)
		})
		if err != nil {
			return applied, wrap(err, "retire key (id %d)", id)
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}

func (s *gormStore) ListRegistrations(ctx context.Context, q RegistrationQuery) ([]Registration, error) {
	db := s.registrations(ctx)
	if q.Issuer != "" {
		db = db.Where("platform_registrations.issuer = ?", q.Issuer)
	}
	if q.AfterID != "" {
		db = db.Where("platform_registrations.id > ?", q.AfterID)
	}
	var rows []registrationRow
	if err := db.Order("platform_registrations.id").Limit(q.Limit).Find(&rows).Error; err != nil {
		return nil, wrap(err, "list registrations")
	}
	regs := make([]Registration, len(rows))
	for i, row := range rows {
		regs[i] = row.registration()
	}
	return regs, nil
}

func (s *gormStore) UpdateRegistration(ctx context.Context, id string, update func(Registration) (Registration, error)) (Registration, error) {
	var (
		updateErr error
		out       Registration
	)
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		updateErr, out = nil, Registration{}
		var m registrationModel
		if err := tx.Clauses(forUpdate).Where("id = ? AND deleted_at IS NULL", id).Take(&m).Error; err != nil {
			return err
		}
		var row registrationRow
		if err := registrationsIn(tx).Where("platform_registrations.id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		next, err := update(row.registration())
		if err != nil {
			updateErr = err
			return err
		}
		now := s.now()
		ids := deploymentIDs(next.DeploymentIDs)
		err = tx.Model(&registrationModel{}).Where("id = ?", id).Updates(map[string]any{
			"auth_endpoint":  next.AuthEndpoint,
			"jwks_uri":       next.JWKSURI,
			"token_endpoint": next.TokenEndpoint,
			"deployment_ids": ids,
			"updated_at":     now,
		}).Error
		if err != nil {
			return err
		}
		out = row.registration()
		out.AuthEndpoint, out.JWKSURI, out.TokenEndpoint, out.UpdatedAt = next.AuthEndpoint, next.JWKSURI, next.TokenEndpoint, now
		out.DeploymentIDs = ids.list()
		return s.changed(tx)
	})
	switch {
	case updateErr != nil:
		return Registration{}, updateErr
	case err != nil:
		return Registration{}, wrap(err, "update registration %q", id)
	}
	return out, nil
}

func (s *gormStore) DeleteRegistration(ctx context.Context, id string) ([]Key, error) {
	var rows []jwkModel
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		rows = nil
		var r registrationModel
		if err := tx.Clauses(forUpdate).Where("id = ?", id).Take(&r).Error; err != nil {
			return err
		}
		if r.DeletedAt != nil {
			return tx.Select(publicColumns).Where("registration_id = ?", id).Order("id DESC").Find(&rows).Error
		}
		now := s.now()
		err := tx.Model(&registrationModel{}).Where("id = ?", id).
			Updates(map[string]any{"deleted_at": now, "pending_jwk_id": nil, "updated_at": now}).Error
		if err != nil {
			return err
		}
		// Its active keys, locked in id order before they are updated.
		var active []int64
		err = tx.Model(&jwkModel{}).Clauses(forUpdate).Where("registration_id = ? AND active = ?", id, true).
			Order("id").Pluck("id", &active).Error
		if err != nil {
			return err
		}
		if len(active) > 0 {
			err = tx.Model(&jwkModel{}).Where("id IN ?", active).
				Updates(map[string]any{"active": false, "retired_at": now, "updated_at": now}).Error
			if err != nil {
				return err
			}
		}
		if err := tx.Select(publicColumns).Where("registration_id = ?", id).Order("id DESC").Find(&rows).Error; err != nil {
			return err
		}
		return s.changed(tx, active...)
	})
	if err != nil {
		return nil, wrap(err, "delete registration %q", id)
	}
	return keysOf(rows), nil
}

func (s *gormStore) ListKeys(ctx context.Context, q KeyQuery) ([]Key, error) {
	db := s.db.WithContext(ctx).Select(publicColumns).Where("id > ?", q.AfterSeq)
	if q.RegistrationID != "" {
		db = db.Where("registration_id = ?", q.RegistrationID)
	}
	now := q.Now.UTC().Truncate(time.Microsecond)
	live := s.db.Where("active = ? AND (retire_at IS NULL OR retire_at > ?)", true, now)
	switch q.State {
	case KeyStateUnspecified:
	case KeyRetired:
		db = db.Where("active = ? OR retire_at <= ?", false, now)
	case KeyPending:
		db = db.Where(live).Where("activates_at > ?", now)
	case KeyPrevious:
		db = db.Where(live).Where("activates_at <= ? AND superseded_at <= ?", now, now)
	case KeyCurrent:
		db = db.Where(live).Where("activates_at <= ? AND (superseded_at IS NULL OR superseded_at > ?)", now, now)
	default:
		return nil, fmt.Errorf("list keys: storage: unknown state %d", q.State)
	}
	var rows []jwkModel
	if err := db.Order("id").Limit(q.Limit).Find(&rows).Error; err != nil {
		return nil, wrap(err, "list keys")
	}
	return keysOf(rows), nil
}

func keysOf(rows []jwkModel) []Key {
	keys := make([]Key, len(rows))
	for i, m := range rows {
		keys[i] = m.key()
	}
	return keys
}

func (s *gormStore) ActiveKeys(ctx context.Context) ([]Key, error) {
	var rows []jwkModel
	err := s.db.WithContext(ctx).Select(publicColumns).Where("active = ?", true).
		Order("created_at DESC").Order("id DESC").Find(&rows).Error
	if err != nil {
		return nil, wrap(err, "list active keys")
	}
	return keysOf(rows), nil
}

// KeysChangedSince reads the counter first and the rows second, in two
// statements, each its own snapshot (READ COMMITTED on PostgreSQL, a WAL
// read on SQLite): see the interface for why that order returns every
// change up to the counter value it returns.
func (s *gormStore) KeysChangedSince(ctx context.Context, version int64) (int64, []Key, error) {
	db := s.db.WithContext(ctx)
	var m changeModel
	if err := db.Where("id = ?", changeRowID).Take(&m).Error; err != nil {
		return 0, nil, wrap(err, "keys changed since version %d: read change counter", version)
	}
	// Sorted here, not by the query: ordered by id, SQLite's planner would
	// rather scan the table in id order than the version index.
	var rows []jwkModel
	if err := db.Select(publicColumns).Where("version > ?", version).Find(&rows).Error; err != nil {
		return 0, nil, wrap(err, "keys changed since version %d", version)
	}
	slices.SortFunc(rows, func(a, b jwkModel) int { return cmp.Compare(a.ID, b.ID) })
	return m.Version, keysOf(rows), nil
}

func (s *gormStore) KeyIDs(ctx context.Context) ([]string, error) {
	var kids []string
	if err := s.db.WithContext(ctx).Model(&jwkModel{}).Order("id").Pluck("kid", &kids).Error; err != nil {
		return nil, wrap(err, "list key ids")
	}
	return kids, nil
}

func (s *gormStore) PrivateKeys(ctx context.Context, afterSeq int64, limit int) ([]Key, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list private keys: storage: the limit must be positive, got %d", limit)
	}
	var rows []jwkModel
	if err := s.db.WithContext(ctx).Where("id > ?", afterSeq).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, wrap(err, "list private keys after %d", afterSeq)
	}
	return keysOf(rows), nil
}

func (s *gormStore) UpdatePrivateKey(ctx context.Context, kid string, update func(sealed []byte) (next []byte, changed bool, err error)) error {
	var updateErr error
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		updateErr = nil
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

// useNonceSQL records an (issuer, nonce) pair until its expiry, unless it
// is recorded already and not expired: a conflicting row is overwritten
// only if its expires_at is not after the last argument, the store's now.
// It affects one row when it records the pair, none when it does not. On
// PostgreSQL a concurrent insert of the same pair waits for the first to
// commit and then meets its row as a conflict, and the WHERE is evaluated
// on the newest version of the conflicting row, under its lock; on SQLite
// writers are serialized by the database's write lock.
const useNonceSQL = `INSERT INTO lti_launch_nonces (issuer, nonce, expires_at, created_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (issuer, nonce) DO UPDATE SET expires_at = excluded.expires_at, created_at = excluded.created_at
	WHERE lti_launch_nonces.expires_at <= ?`

func (s *gormStore) UseNonce(ctx context.Context, issuer, nonce string, expiresAt time.Time) error {
	if err := checkNonce(issuer, nonce, expiresAt); err != nil {
		return fmt.Errorf("use nonce: storage: %w", err)
	}
	expires := expiresAt.UTC().Truncate(time.Microsecond)
	var recorded bool
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		now := s.now()
		res := tx.Exec(useNonceSQL, issuer, nonce, expires, now, now)
		recorded = res.Error == nil && res.RowsAffected == 1
		return res.Error
	})
	if err == nil && !recorded {
		err = ErrNonceUsed
	}
	if err != nil {
		// The nonce is the caller's one-time value: only the issuer is named.
		return wrap(err, "use nonce of issuer %q", issuer)
	}
	return nil
}

// checkNonce checks UseNonce's arguments: the backends would store an
// over-long value differently (PostgreSQL refuses it, SQLite keeps it),
// and PostgreSQL refuses text that is not UTF-8 or holds NUL.
func checkNonce(issuer, nonce string, expiresAt time.Time) error {
	for _, f := range []struct{ name, value string }{{"issuer", issuer}, {"nonce", nonce}} {
		switch {
		case f.value == "" || len(f.value) > MaxNonceLen:
			return fmt.Errorf("the %s must be 1 to %d bytes, not %d", f.name, MaxNonceLen, len(f.value))
		case !utf8.ValidString(f.value) || strings.ContainsRune(f.value, 0):
			return fmt.Errorf("the %s must be UTF-8 without NUL", f.name)
		}
	}
	if expiresAt.IsZero() {
		return errors.New("the expiry must be set")
	}
	return nil
}

// nonceBatch is how many rows each of PruneNonces's transactions deletes
// at most, so that pruning a large backlog holds no lock for long.
var nonceBatch = 1000

func (s *gormStore) PruneNonces(ctx context.Context, before time.Time) (int, error) {
	// Stored expiries have microseconds at most: truncating before
	// selects the same rows.
	before = before.UTC().Truncate(time.Microsecond)
	pruned := 0
	for {
		var n int
		err := s.transaction(ctx, func(tx *gorm.DB) error {
			res := tx.Exec(`DELETE FROM lti_launch_nonces WHERE (issuer, nonce) IN
				(SELECT issuer, nonce FROM lti_launch_nonces WHERE expires_at <= ? LIMIT ?)`, before, nonceBatch)
			n = int(res.RowsAffected)
			return res.Error
		})
		if err != nil {
			return pruned, wrap(err, "prune nonces")
		}
		pruned += n
		if n < nonceBatch {
			return pruned, nil
		}
	}
}

func (s *gormStore) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return sqlDB.Close()
}
