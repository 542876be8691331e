package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned by every backend. Callers test them with
// errors.Is; backends translate driver errors into them.
var (
	// ErrNotFound means the registration or key does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists means a unique constraint would be violated: a second
	// registration for one (issuer, client_id), or a second key with one kid.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrKeyInUse means a key cannot be retired because it is some
	// registration's current signing key.
	ErrKeyInUse = errors.New("storage: key is a registration's current signing key")
)

// Key is one stored key pair (a row of lti_jwks).
type Key struct {
	// KID is the RFC 7638 thumbprint; unique across all keys.
	KID string
	// Alg is the JWS algorithm, "RS256".
	Alg string
	// RegistrationID is the registration the key was generated for.
	RegistrationID string
	// PublicJWK is the public JWK as JSON; serving the JWKS needs nothing else.
	PublicJWK []byte
	// PrivateJWK is the sealed (encrypted) private JWK. Storage treats it as
	// opaque bytes and never sees plaintext.
	PrivateJWK []byte
	// Active reports whether the key is published in the JWKS.
	Active    bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Registration is one platform registration (a row of
// platform_registrations), with the kid of its current signing key.
type Registration struct {
	// ID is a UUID assigned by the caller before CreateRegistration.
	ID            string
	Issuer        string
	ClientID      string
	AuthEndpoint  string
	JWKSURI       string
	TokenEndpoint string
	// KID is the kid of the current signing key.
	KID       string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is the persistence contract of ltikeys. Every method is safe for
// concurrent use, and every method that writes does so in one transaction:
// on error nothing it was asked to write remains.
type Store interface {
	// CreateRegistration inserts key and reg, with reg pointing at key, in one
	// transaction. reg.ID and key.RegistrationID must be set by the caller and
	// equal. The key is stored active, and the store sets both timestamps
	// (input timestamps and key.Active are ignored). Returns ErrAlreadyExists
	// for a duplicate id, (issuer, client_id) or kid. The returned values
	// carry the stored timestamps.
	CreateRegistration(ctx context.Context, reg Registration, key Key) (Registration, Key, error)

	// GetRegistration returns the registration with id, or ErrNotFound.
	GetRegistration(ctx context.Context, id string) (Registration, error)

	// GetRegistrationByIssuerClient returns the registration for the pair, or
	// ErrNotFound.
	GetRegistrationByIssuerClient(ctx context.Context, issuer, clientID string) (Registration, error)

	// GetKey returns the key with kid, or ErrNotFound.
	GetKey(ctx context.Context, kid string) (Key, error)

	// RotateKey inserts newKey and points the registration at it, in one
	// transaction that locks the registration row, so concurrent rotations of
	// one registration serialize. newKey.RegistrationID may be left empty;
	// if set it must equal registrationID. The new key is stored active, and
	// the previous key stays active. It returns the updated registration, the
	// stored new key and the previous key.
	// Returns ErrNotFound if the registration does not exist (and inserts
	// nothing), ErrAlreadyExists if newKey's kid is taken.
	RotateKey(ctx context.Context, registrationID string, newKey Key) (reg Registration, current Key, previous Key, err error)

	// RetireKey marks the key inactive. It is idempotent: retiring a retired
	// key returns it unchanged. Returns ErrNotFound for an unknown kid and
	// ErrKeyInUse, changing nothing, when a registration signs with the key.
	RetireKey(ctx context.Context, kid string) (Key, error)

	// ActiveKeys returns every active key, newest first: by creation time,
	// then, among equal times, the later insertion first. PrivateJWK is not
	// loaded: the JWKS needs only public halves.
	ActiveKeys(ctx context.Context) ([]Key, error)

	// KeyIDs returns the kid of every key, active or not, in a stable order.
	KeyIDs(ctx context.Context) ([]string, error)

	// UpdatePrivateKey replaces a key's sealed private JWK with what update
	// returns, in one transaction holding a lock on the row, so two
	// concurrent updates of one key serialize and each sees the other's
	// result. If update returns changed=false nothing is written. Returns
	// ErrNotFound for an unknown kid; an error from update aborts the
	// transaction and is returned as is.
	UpdatePrivateKey(ctx context.Context, kid string, update func(sealed []byte) (next []byte, changed bool, err error)) error

	// Version returns the change counter: a number that every committed
	// CreateRegistration, RotateKey and RetireKey that changes something
	// increases, in the same transaction, whichever process made it. Readers
	// compare it with the version their cached data was built at; it is one
	// single-row read, cheap enough to poll every second. Re-sealing a
	// private key (UpdatePrivateKey) changes nothing a reader sees and does
	// not count.
	Version(ctx context.Context) (int64, error)
	// Close releases the underlying connections.
	Close() error
}

// Notifier is implemented by backends that push change notifications: the
// PostgreSQL backend, through LISTEN/NOTIFY. SQLite has none; callers poll
// Version instead (and should poll as a safety net in any case).
type Notifier interface {
	// Listen calls changed after each committed change made by any process
	// sharing the database, and once each time its connection is
	// established, since changes made while it was down were not heard. It
	// holds one dedicated connection, re-established by itself with backoff
	// whenever it fails or stops answering, and blocks until ctx is done.
	// changed must not block.
	Listen(ctx context.Context, changed func())
}
