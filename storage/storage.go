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
	// ErrTooManyKeys means a rotation would leave its registration with
	// more published keys than RotateOptions.MaxPublished allows.
	ErrTooManyKeys = errors.New("storage: the registration would publish too many keys")
	// ErrConflict means a transaction kept failing against concurrent ones
	// (serialization failures, deadlocks, a busy database) after the store
	// had retried it as often as it does: nothing was written, and a later
	// retry may succeed.
	ErrConflict = errors.New("storage: the transaction kept conflicting with concurrent ones")
	// ErrNonceUsed means UseNonce found the (issuer, nonce) pair recorded
	// already, by an earlier call in any process sharing the database, and
	// not yet expired: the launch that carries it is a replay.
	ErrNonceUsed = errors.New("storage: the nonce has been used already")
)

// MaxNonceLen bounds, in bytes, both the issuer and the nonce that
// UseNonce records: the size of their varchar(255) columns, which count
// characters on PostgreSQL, so a value within it fits on every backend.
const MaxNonceLen = 255

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
	// Active reports whether the key is published in the JWKS as stored. A
	// key whose RetireAt has passed is no longer published even before the
	// background transition clears Active: see State.
	Active    bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// Seq orders keys by insertion; it is the cursor of ListKeys.
	Seq int64

	// The schedule. ActivatesAt is when the key starts signing (its
	// creation, unless a rotation published it ahead); SupersededAt, when a
	// later key takes over (zero while none is scheduled); RetireAt, when it
	// leaves the JWKS (zero if not scheduled); RetiredAt, when it was
	// retired (zero while it is not).
	ActivatesAt  time.Time
	SupersededAt time.Time
	RetireAt     time.Time
	RetiredAt    time.Time
}

// KeyState is a key's place in its lifecycle at some instant.
type KeyState int

// The states of a key, in lifecycle order.
const (
	// KeyStateUnspecified matches every state in a KeyQuery.
	KeyStateUnspecified KeyState = iota
	// KeyPending keys are published but do not sign yet.
	KeyPending
	// KeyCurrent is a registration's signing key.
	KeyCurrent
	// KeyPrevious keys are published for verification only.
	KeyPrevious
	// KeyRetired keys are not published.
	KeyRetired
)

// State derives the key's state at now from its schedule alone, so it is
// right at every instant whether or not ApplyTransitions has recorded the
// transitions that are due.
func (k Key) State(now time.Time) KeyState {
	switch {
	case !k.Active || (!k.RetireAt.IsZero() && !now.Before(k.RetireAt)):
		return KeyRetired
	case now.Before(k.ActivatesAt):
		return KeyPending
	case !k.SupersededAt.IsZero() && !now.Before(k.SupersededAt):
		return KeyPrevious
	}
	return KeyCurrent
}

// NextTransition returns the first instant after now at which the key's
// State changes, or the zero time if it never changes by schedule.
func (k Key) NextTransition(now time.Time) time.Time {
	if !k.Active {
		return time.Time{}
	}
	for _, t := range []time.Time{k.ActivatesAt, k.SupersededAt, k.RetireAt} {
		if t.After(now) {
			return t
		}
	}
	return time.Time{}
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
	// KID is the kid of the current signing key as stored: once
	// PendingActivatesAt has passed, PendingKID signs instead, even before
	// ApplyTransitions records it (see SigningKID).
	KID       string
	CreatedAt time.Time
	UpdatedAt time.Time
	// PendingKID is the kid of the key a pending rotation makes current at
	// PendingActivatesAt; empty when no rotation is pending.
	PendingKID         string
	PendingActivatesAt time.Time
	// DeploymentIDs are the LTI deployment ids the platform may launch
	// the tool with, in the order they were given; nil (as read back, for
	// an empty list too) allows any deployment. Storage keeps them as
	// given: each must be valid UTF-8, and the caller checks the rest
	// (length, repeats).
	DeploymentIDs []string
}

// SigningKID returns the kid of the key that signs for the registration at
// now.
func (r Registration) SigningKID(now time.Time) string {
	if r.PendingKID != "" && !now.Before(r.PendingActivatesAt) {
		return r.PendingKID
	}
	return r.KID
}

// RotateOptions schedule a rotation (see Store.Rotate).
type RotateOptions struct {
	// PublishAhead delays the new key's activation: it is published at once
	// and signs from now+PublishAhead. Zero or negative: it signs at once.
	PublishAhead time.Duration
	// RetirePreviousAfter is how long after the new key activates the key
	// it replaces is retired; 0 retires it at that instant. Negative: no
	// scheduled retirement (RetireKey retires it).
	RetirePreviousAfter time.Duration
	// MaxPublished, if positive, bounds the registration's published keys
	// (pending, current and previous) once the rotation is done: counting
	// the new key, and not a pending key it replaces or a previous key it
	// retires at once. A rotation past it fails with ErrTooManyKeys.
	MaxPublished int
}

// Rotation is what Store.Rotate did.
type Rotation struct {
	// Registration is the registration after the rotation.
	Registration Registration
	// New is the stored new key.
	New Key
	// Previous is the key New replaces, with its new schedule.
	Previous Key
	// Replaced is the pending key of an earlier rotation that this one
	// replaced and retired; zero (empty KID) if none was pending.
	Replaced Key
}

// RegistrationQuery selects a page of ListRegistrations.
type RegistrationQuery struct {
	// Issuer, if set, keeps only registrations of that issuer.
	Issuer string
	// AfterID, if set, starts the page after the registration with that id
	// (registrations are ordered by id).
	AfterID string
	// Limit is the most registrations to return; it must be positive.
	Limit int
}

// KeyQuery selects a page of ListKeys.
type KeyQuery struct {
	// RegistrationID, if set, keeps only that registration's keys.
	RegistrationID string
	// State, if set, keeps only keys in that state at Now.
	State KeyState
	Now   time.Time
	// AfterSeq starts the page after the key with that Seq (keys are
	// ordered by Seq); 0 for the first page.
	AfterSeq int64
	// Limit is the most keys to return; it must be positive.
	Limit int
}

// Store is the persistence contract of ltikeys. Every method is safe for
// concurrent use, and every method that writes does so in one transaction:
// on error nothing it was asked to write remains. A transaction that
// conflicts with concurrent ones (in this process or another sharing the
// database) is retried a few times by the store; if it keeps conflicting,
// the method fails with an error wrapping ErrConflict.
type Store interface {
	// CreateRegistration inserts key and reg, with reg pointing at key, in one
	// transaction. reg.ID and key.RegistrationID must be set by the caller and
	// equal. The key is stored active, and the store sets both timestamps
	// (input timestamps and key.Active are ignored). reg.DeploymentIDs are
	// stored with it. Returns ErrAlreadyExists
	// for a duplicate id, (issuer, client_id) or kid. The returned values
	// carry the stored timestamps.
	CreateRegistration(ctx context.Context, reg Registration, key Key) (Registration, Key, error)

	// GetRegistration returns the registration with id, or ErrNotFound (also
	// for a deleted one).
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
	// stored new key and the previous key. It is Rotate with a zero
	// PublishAhead and no scheduled retirement.
	// Returns ErrNotFound if the registration does not exist (and inserts
	// nothing), ErrAlreadyExists if newKey's kid is taken.
	RotateKey(ctx context.Context, registrationID string, newKey Key) (reg Registration, current Key, previous Key, err error)

	// Rotate inserts newKey and schedules it to replace the registration's
	// current key as opts say, in one transaction that locks the
	// registration row. If a rotation is pending, its key is retired and
	// replaced by newKey (or, if its activation has already passed, it is
	// the key newKey replaces). With a zero PublishAhead the registration
	// points at newKey at once; otherwise newKey is its pending key. The
	// replaced key gets SupersededAt (newKey's activation) and, unless
	// RetirePreviousAfter is negative, RetireAt; a RetireAt that is not in
	// the future retires it in the same transaction. Returns ErrNotFound
	// for an unknown or deleted registration (inserting nothing),
	// ErrAlreadyExists if newKey's kid is taken, ErrTooManyKeys (changing
	// nothing) past opts.MaxPublished.
	Rotate(ctx context.Context, registrationID string, newKey Key, opts RotateOptions) (Rotation, error)

	// RetireKey marks the key inactive. It is idempotent: retiring a retired
	// key returns it unchanged. Returns ErrNotFound for an unknown kid and
	// ErrKeyInUse, changing nothing, when a registration signs with the key
	// or will once its pending rotation activates.
	RetireKey(ctx context.Context, kid string) (Key, error)

	// ApplyTransitions records the scheduled transitions that are due: it
	// points registrations at pending keys whose activation has passed and
	// retires keys whose RetireAt has passed. Each transition is one
	// conditional update in its own transaction that counts as a change,
	// and applies only if its condition still holds, so concurrent callers,
	// in any number of processes, never apply one twice. It returns how
	// many transitions this call applied.
	ApplyTransitions(ctx context.Context) (int, error)

	// ListRegistrations returns registrations that are not deleted, ordered
	// by id, as q selects.
	ListRegistrations(ctx context.Context, q RegistrationQuery) ([]Registration, error)

	// UpdateRegistration replaces the endpoints (AuthEndpoint, JWKSURI,
	// TokenEndpoint) and the DeploymentIDs of a registration with those of
	// the value update returns, in one transaction holding a lock on the
	// row; other fields of that value are ignored. An error from update aborts and is
	// returned as is. Returns ErrNotFound for an unknown or deleted id.
	// update may be called more than once, each time in a new transaction
	// on the registration as it then is, if an earlier one conflicted: it
	// must be safe to call again, and only what the last call returns is
	// written.
	UpdateRegistration(ctx context.Context, id string, update func(Registration) (Registration, error)) (Registration, error)

	// DeleteRegistration marks a registration deleted, freeing its
	// (issuer, client_id), and retires its keys, in one transaction. Rows
	// are kept. Deleting a deleted registration changes nothing and
	// succeeds. It returns the registration's keys, newest first. Returns
	// ErrNotFound for an id that never existed.
	DeleteRegistration(ctx context.Context, id string) ([]Key, error)

	// ListKeys returns keys, with their public halves only, ordered by Seq,
	// as q selects. Keys of deleted registrations are included.
	ListKeys(ctx context.Context, q KeyQuery) ([]Key, error)

	// ActiveKeys returns every active key, newest first: by creation time,
	// then, among equal times, the later insertion first. PrivateJWK is not
	// loaded: the JWKS needs only public halves.
	ActiveKeys(ctx context.Context) ([]Key, error)

	// KeyIDs returns the kid of every key, active or not, in a stable order.
	KeyIDs(ctx context.Context) ([]string, error)

	// PrivateKeys returns a page of keys with every field set, their sealed
	// private halves included: at most limit keys, active or not (of
	// deleted registrations too), whose Seq is greater than afterSeq,
	// ordered by Seq, in one query. Paging from afterSeq 0, each page
	// after the last Seq of the one before, until a page is shorter than
	// limit, visits every key committed before the first page once; keys
	// inserted meanwhile may or may not be visited. It is for whole-store
	// passes over private keys (checking that they open, re-sealing them),
	// which would otherwise cost a GetKey per key. A limit that is not
	// positive is an error.
	PrivateKeys(ctx context.Context, afterSeq int64, limit int) ([]Key, error)

	// UpdatePrivateKey replaces a key's sealed private JWK with what update
	// returns, in one transaction holding a lock on the row, so two
	// concurrent updates of one key serialize and each sees the other's
	// result. If update returns changed=false nothing is written. Returns
	// ErrNotFound for an unknown kid; an error from update aborts the
	// transaction and is returned as is. update may be called more than
	// once, each time in a new transaction on the bytes as they then are,
	// if an earlier one conflicted: it must be safe to call again, and
	// only what the last call returns is written.
	UpdatePrivateKey(ctx context.Context, kid string, update func(sealed []byte) (next []byte, changed bool, err error)) error

	// Version returns the change counter: a number that every committed
	// CreateRegistration, RotateKey and RetireKey that changes something
	// increases, in the same transaction, whichever process made it (as do
	// Rotate, UpdateRegistration, DeleteRegistration and each transition
	// ApplyTransitions applies). Readers
	// compare it with the version their cached data was built at; it is one
	// single-row read, cheap enough to poll every second. Re-sealing a
	// private key (UpdatePrivateKey) changes nothing a reader sees and does
	// not count.
	//
	// Each increment is one transaction's, and transactions commit in the
	// order of their values. A transaction that inserts a key or changes
	// its active flag or schedule also records its value on that key (see
	// KeysChangedSince).
	Version(ctx context.Context) (int64, error)

	// KeysChangedSince returns current, a value of the change counter, and
	// the public halves (PrivateJWK not loaded) of every key, active or
	// not, that a transaction with a counter value above version inserted,
	// or whose active flag or schedule it changed, ordered by Seq. Each key
	// is as last committed, which may be newer than current. A reader
	// whose keys are as of version (or newer) and that applies these holds
	// keys as of current (or newer), and asks next for the keys changed
	// since current. It costs in proportion to the keys returned. Keys
	// last changed before the store recorded versions on keys carry none
	// and are returned for no version: a reader loads them once with
	// ActiveKeys, labelled with the Version read before it.
	//
	// Why nothing up to current is missed: the counter is read first, the
	// keys second, each in its own snapshot. Every transaction with a value
	// up to current had committed when current was read (each one's update
	// of the counter waits for the one before it to end), so the second
	// read sees its rows, or later versions of them, which have a value
	// above version too. A change committed between the two reads may show
	// in the keys but not in current; the next call returns it again, which
	// is harmless. A current below version means the database is not the
	// one version was read from (a restored copy): reload everything.
	KeysChangedSince(ctx context.Context, version int64) (current int64, keys []Key, err error)

	// UseNonce records that a launch carrying nonce from issuer was
	// accepted, until expiresAt (when its token expires), or returns
	// ErrNonceUsed, recording nothing, if the pair is recorded already and
	// has not expired (its expiresAt is after the store's clock). It is
	// one statement in one transaction, so of any number of concurrent
	// calls for one pair, in any number of processes sharing the database,
	// exactly one succeeds while the pair is recorded. A pair whose record
	// has expired is recorded afresh, in the same statement, as if it were
	// new. issuer and nonce must each be 1 to MaxNonceLen bytes of UTF-8
	// without NUL, and expiresAt set; otherwise it is an error, and nothing
	// is recorded. It counts as no change (see Version): nothing a cache
	// holds depends on it.
	UseNonce(ctx context.Context, issuer, nonce string, expiresAt time.Time) error

	// PruneNonces deletes the pairs UseNonce recorded whose expiresAt is at
	// or before before, a bounded batch per transaction until none is
	// left, and returns how many it deleted (also when it fails part way:
	// the batches before stay deleted). Pruning pairs that have expired
	// changes no answer of UseNonce; it only keeps the table small. Safe to
	// run in every replica at once.
	PruneNonces(ctx context.Context, before time.Time) (int, error)

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
