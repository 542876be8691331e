package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/storage"
)

// KeyServiceConfig configures a KeyService.
type KeyServiceConfig struct {
	Store storage.Store
	// Keyring seals new private keys and opens stored ones.
	Keyring *crypto.Keyring
	// KeyBits is the RSA modulus size of generated keys (2048, 3072, 4096).
	KeyBits int
	// JWKS, when set, is refreshed after every change to the published keys,
	// so this process serves the change at once.
	JWKS *JWKSCache
	Log  *slog.Logger
	// KeyCacheSize bounds how many opened signing keys stay in memory
	// (lookups by id and by issuer and client_id count separately): 0 means
	// DefaultKeyCacheSize, a negative value turns the cache off. Keys are
	// cached only with JWKS set, whose version tells when they change.
	KeyCacheSize int
	// DisableKeyExport makes GetToolKey refuse every caller with
	// PERMISSION_DENIED, whatever its scopes: private keys then never leave
	// the service, and callers sign through SignJwt and
	// CreateClientAssertion.
	DisableKeyExport bool
	// Now is the clock of signed tokens' iat and exp, of every key
	// lifecycle decision (which key signs, which state a key is in) and of
	// the outage log; time.Now if nil. The store's clock and the JWKS
	// cache's (WithCacheClock) should agree with it.
	Now func() time.Time
	// KeyPool, if set, supplies pre-generated keys of KeyBits; without one,
	// or when it is empty, keys are generated per request.
	KeyPool *KeyPool
	// JWKSMaxAge is the max-age the JWKS is served with
	// (DefaultJWKSMaxAge if zero, none if negative): RotateKey refuses a
	// nonzero window shorter than it unless forced.
	JWKSMaxAge time.Duration
	// DefaultPublishAhead is the publish_ahead of a RotateKey that leaves
	// it unset: how long the new key is published before it signs. Zero
	// means DefaultPublishAheadFor(JWKSMaxAge); negative, none (the new key
	// signs at once). Otherwise it must be at least JWKSMaxAge, as an
	// explicit publish_ahead must be without force, and at most
	// MaxRotationWindow.
	DefaultPublishAhead time.Duration
	// Metrics, if set, counts the signing-key cache's hits and misses as
	// ltikeys_cache_lookups_total{cache="keys"}. Nil turns counting off.
	Metrics *Metrics
	// MaxPublishedKeys bounds the keys one registration publishes
	// (pending, current and previous): a RotateKey past it is
	// FAILED_PRECONDITION. 0 means DefaultMaxPublishedKeys; negative, no
	// bound.
	MaxPublishedKeys int
	// MaxTokenLifetime bounds how long after signing any token the service
	// signs may expire (see SignJwt and CreateClientAssertion): whole
	// seconds, DefaultMaxTokenLifetime if zero.
	MaxTokenLifetime time.Duration
	// PublicURL is the base URL at which platforms reach the public HTTP
	// listener, as CheckPublicURL checks it, possibly with a path prefix.
	// Every Registration a response carries then has tool_jwks_url set to
	// its JWK Set's URL under it; empty leaves the field empty.
	PublicURL string
	// PlatformTokens, if set, serves GetPlatformAccessToken: it exchanges
	// client assertions for platforms' access tokens and caches them. Nil
	// leaves the method UNIMPLEMENTED.
	PlatformTokens *platform.TokenClient
	// PlatformKeys, if set, serves VerifyPlatformToken: the platforms' key
	// sets, fetched from registrations' jwks_uri and kept in memory. Nil
	// leaves the method UNIMPLEMENTED.
	PlatformKeys *platform.KeySetCache
	// VerifyLeeway is the clock skew VerifyPlatformToken allows for exp,
	// iat and nbf: DefaultVerifyLeeway if zero, none if negative.
	VerifyLeeway time.Duration
	// OutageLogInterval is how often, at most, the service logs the count
	// of calls that failed UNAVAILABLE because the database was away (see
	// storeError): DefaultOutageLogInterval if zero.
	OutageLogInterval time.Duration
}

// MinDefaultPublishAhead is the least publish-ahead DefaultPublishAheadFor
// gives, whatever the JWKS max-age. Verifiers cache the JWKS whatever
// Cache-Control says; panva/jose refetches a key set that lacks a token's
// kid, but at most once per 30 s (its cooldownDuration), so one that
// fetched just before a new key was published refuses what the key signs
// for up to 30 s. See docs/platform-caching.md.
const MinDefaultPublishAhead = time.Minute

// DefaultPublishAheadFor is the default publish-ahead of a service whose
// JWKS is served with jwksMaxAge: the larger of it and
// MinDefaultPublishAhead, so that a new key is in every copy a cache may
// keep under Cache-Control, and in every verifier that refetches on an
// unknown kid, before it signs.
func DefaultPublishAheadFor(jwksMaxAge time.Duration) time.Duration {
	return max(jwksMaxAge, MinDefaultPublishAhead)
}

// DefaultVerifyLeeway is the clock skew VerifyPlatformToken allows for
// exp, iat and nbf unless configured otherwise.
const DefaultVerifyLeeway = platform.DefaultLeeway

// DefaultMaxPublishedKeys is how many keys one registration may publish
// unless configured otherwise: every platform's cached copy and every
// tenant's global JWKS carry them all.
const DefaultMaxPublishedKeys = 10

// KeyService implements ltikeysv1.KeyServiceServer.
type KeyService struct {
	ltikeysv1.UnimplementedKeyServiceServer

	store   storage.Store
	keyring *crypto.Keyring
	bits    int
	jwks    *JWKSCache
	keys    *keyCache
	log     *slog.Logger

	disableKeyExport bool
	now              func() time.Time
	jwksMaxAge       time.Duration
	// publishAhead is the publish_ahead of a RotateKey without one.
	publishAhead time.Duration
	pool         *KeyPool
	metrics      *Metrics
	// maxPublished is Rotate's MaxPublished: 0 for no bound.
	maxPublished     int
	maxTokenLifetime time.Duration
	jwksURLs         jwksURLs
	outage           *outageLog
	platformTokens   *platform.TokenClient
	platformKeys     *platform.KeySetCache
	verifyLeeway     time.Duration
}

// NewKeyService returns a KeyService. It fails on an invalid configuration.
func NewKeyService(cfg KeyServiceConfig) (*KeyService, error) {
	if cfg.Store == nil || cfg.Keyring == nil {
		return nil, errors.New("server: KeyService needs a store and a keyring")
	}
	if !crypto.ValidKeyBits(cfg.KeyBits) {
		return nil, fmt.Errorf("server: unsupported key size %d (want 2048, 3072 or 4096)", cfg.KeyBits)
	}
	if cfg.MaxTokenLifetime < 0 || cfg.MaxTokenLifetime%time.Second != 0 {
		return nil, fmt.Errorf("server: the maximum token lifetime must be whole seconds, at least 1s, got %s", cfg.MaxTokenLifetime)
	}
	urls, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("server: public URL: %w", err)
	}
	if cfg.OutageLogInterval < 0 {
		return nil, fmt.Errorf("server: the outage log interval must not be negative, got %s", cfg.OutageLogInterval)
	}
	jwksMaxAge := max(cmp.Or(cfg.JWKSMaxAge, DefaultJWKSMaxAge), 0)
	publishAhead := max(cmp.Or(cfg.DefaultPublishAhead, DefaultPublishAheadFor(jwksMaxAge)), 0)
	switch {
	case publishAhead > MaxRotationWindow:
		return nil, fmt.Errorf("server: the default publish-ahead must be at most %s, got %s", MaxRotationWindow, publishAhead)
	case publishAhead > 0 && publishAhead < jwksMaxAge:
		return nil, fmt.Errorf("server: the default publish-ahead must be 0 or at least the JWKS max-age (%s), got %s", jwksMaxAge, publishAhead)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &KeyService{
		store:            cfg.Store,
		keyring:          cfg.Keyring,
		bits:             cfg.KeyBits,
		jwks:             cfg.JWKS,
		keys:             newKeyCache(cfg.KeyCacheSize),
		log:              log,
		disableKeyExport: cfg.DisableKeyExport,
		now:              now,
		jwksMaxAge:       jwksMaxAge,
		publishAhead:     publishAhead,
		pool:             cfg.KeyPool,
		metrics:          cfg.Metrics,
		maxPublished:     max(cmp.Or(cfg.MaxPublishedKeys, DefaultMaxPublishedKeys), 0),
		maxTokenLifetime: cmp.Or(cfg.MaxTokenLifetime, DefaultMaxTokenLifetime),
		jwksURLs:         urls,
		platformTokens:   cfg.PlatformTokens,
		platformKeys:     cfg.PlatformKeys,
		verifyLeeway:     max(cmp.Or(cfg.VerifyLeeway, DefaultVerifyLeeway), 0),
		outage:           &outageLog{log: log, now: now, interval: cmp.Or(cfg.OutageLogInterval, DefaultOutageLogInterval)},
	}, nil
}

// CreateRegistration implements ltikeysv1.KeyServiceServer.
func (s *KeyService) CreateRegistration(ctx context.Context, req *ltikeysv1.CreateRegistrationRequest) (*ltikeysv1.CreateRegistrationResponse, error) {
	if err := validateCreateRegistration(req); err != nil {
		return nil, err
	}

	id, err := uuid.NewV7()
	if err != nil {
		return nil, s.storeError(ctx, "CreateRegistration", err)
	}
	reg := storage.Registration{
		ID:            id.String(),
		Issuer:        req.GetIssuer(),
		ClientID:      req.GetClientId(),
		AuthEndpoint:  req.GetAuthEndpoint(),
		JWKSURI:       req.GetJwksUri(),
		TokenEndpoint: req.GetTokenEndpoint(),
		DeploymentIDs: slices.Clone(req.GetDeploymentIds()),
	}
	// Generate outside any transaction: it takes far longer than the insert.
	key, err := s.newKey(reg.ID)
	if err != nil {
		return nil, s.storeError(ctx, "CreateRegistration", err)
	}
	reg, key, err = s.store.CreateRegistration(ctx, reg, key)
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return nil, status.Errorf(codes.AlreadyExists, "a registration for issuer %q and client_id %q already exists", req.GetIssuer(), req.GetClientId())
	case err != nil:
		return nil, s.storeError(ctx, "CreateRegistration", err)
	}
	s.keysChanged(ctx)
	s.log.InfoContext(ctx, "registration created", "registration_id", reg.ID, "kid", key.KID)
	return &ltikeysv1.CreateRegistrationResponse{
		Registration: s.registrationProto(reg, s.now()),
		Key:          keyProto(key, s.now()),
	}, nil
}

// GetToolKey implements ltikeysv1.KeyServiceServer.
func (s *KeyService) GetToolKey(ctx context.Context, req *ltikeysv1.GetToolKeyRequest) (*ltikeysv1.GetToolKeyResponse, error) {
	if s.disableKeyExport {
		return nil, status.Error(codes.PermissionDenied, "private key export is disabled on this service: sign with SignJwt or CreateClientAssertion")
	}
	sk, err := s.signingKey(ctx, "GetToolKey", req.GetRegistrationId(), req.GetIssuerClient(), req.GetLookup() != nil)
	if err != nil {
		return nil, err
	}
	return &ltikeysv1.GetToolKeyResponse{
		Registration: s.registrationProto(sk.reg, s.now()),
		Kid:          sk.kid,
		PrivateJwk:   sk.privateJWK,
	}, nil
}

// signingKey is a registration's current signing key, opened.
type signingKey struct {
	reg storage.Registration
	kid string
	// privateJWK is the private JWK as JSON text. Secret.
	privateJWK string
	// key is privateJWK parsed, ready to sign with.
	key jwk.Key
	// until, if set, is when a pending rotation activates: from then on,
	// next signs instead.
	until time.Time
	next  *signingKey
}

// at returns the key that signs at now.
func (sk *signingKey) at(now time.Time) *signingKey {
	if sk.next != nil && !now.Before(sk.until) {
		return sk.next
	}
	return sk
}

// signingKey resolves the registration a request names (see lookup) and
// opens its current signing key. Every path that needs a private key goes
// through here. A warm lookup is answered from the key cache without
// touching the database, decrypting or parsing; the returned value may be
// shared with other callers and must not be modified. Once resolved, the
// registration is recorded for the call's audit line, whatever happens
// next.
func (s *KeyService) signingKey(ctx context.Context, method, id string, ic *ltikeysv1.IssuerClient, set bool) (*signingKey, error) {
	if err := validateLookup(id, ic, set); err != nil {
		return nil, err
	}
	if ic == nil {
		id = canonicalRegistrationID(id)
	}
	ck := lookupKey(id, ic)
	epoch := s.keys.begin(s.jwks)
	if sk := s.keys.get(ck, epoch); sk != nil {
		s.metrics.CacheLookup(keyCacheName, true)
		auditRegistration(ctx, sk.reg.ID)
		return sk.at(s.now()), nil
	}
	if s.keys != nil {
		s.metrics.CacheLookup(keyCacheName, false)
	}
	reg, err := s.lookup(ctx, method, id, ic)
	if err != nil {
		return nil, err
	}
	auditRegistration(ctx, reg.ID)
	// The key that signs follows from the schedule, now, whether or not the
	// background worker has recorded a due activation. While a rotation is
	// pending, both keys are opened, so the entry switches to the new one
	// at its activation without a query.
	now := s.now()
	signing := reg
	signing.KID = reg.SigningKID(now)
	if signing.KID == reg.PendingKID {
		signing.PendingKID, signing.PendingActivatesAt = "", time.Time{}
	}
	sk, err := s.openKey(ctx, method, signing)
	if err != nil {
		return nil, err
	}
	if signing.PendingKID != "" {
		next := reg
		next.KID, next.PendingKID, next.PendingActivatesAt = reg.PendingKID, "", time.Time{}
		if sk.next, err = s.openKey(ctx, method, next); err != nil {
			return nil, err
		}
		sk.until = reg.PendingActivatesAt
	}
	s.keys.put(ck, epoch, sk)
	return sk.at(s.now()), nil
}

// openKeyOp is the op label of ltikeys_storage_errors_total under which
// openKey counts stored keys it refuses.
const openKeyOp = "open_key"

// openKey loads and opens the key reg.KID of reg. The key's row must name
// reg as its owner, which is checked before anything is decrypted, and a
// version 2 envelope must be bound to reg, so a registration pointed at
// another registration's key never signs with it, whichever column was
// rewritten. Every refusal is a fault of the stored data: logged at error
// level with the ids involved, counted in ltikeys_storage_errors_total
// {op="open_key"}, and answered INTERNAL.
func (s *KeyService) openKey(ctx context.Context, method string, reg storage.Registration) (*signingKey, error) {
	key, err := s.store.GetKey(ctx, reg.KID)
	if err != nil {
		// The registration references the row; any error here is a fault
		// or the database unavailable, not a client mistake.
		return nil, s.storeError(ctx, method, err)
	}
	if key.RegistrationID != reg.ID {
		return nil, s.keyError(ctx, method, fmt.Errorf("key %s belongs to registration %s, not to registration %s, which references it", key.KID, key.RegistrationID, reg.ID),
			reg.ID, key)
	}
	private, err := s.keyring.Open(key.PrivateJWK, key.KID, reg.ID)
	if err != nil {
		return nil, s.keyError(ctx, method, fmt.Errorf("open private key %s of registration %s: %w", key.KID, reg.ID, err), reg.ID, key)
	}
	defer crypto.Zero(private)
	parsed, err := crypto.ParsePrivateJWK(private)
	if err != nil {
		return nil, s.keyError(ctx, method, fmt.Errorf("parse private key %s of registration %s: %w", key.KID, reg.ID, err), reg.ID, key)
	}
	return &signingKey{reg: reg, kid: key.KID, privateJWK: string(private), key: parsed}, nil
}

// keyError reports a stored key that registration id cannot use: counted
// as a storage error, logged with the registration asking and the key's
// owner and kid, and answered INTERNAL.
func (s *KeyService) keyError(ctx context.Context, method string, err error, id string, key storage.Key) error {
	s.metrics.StorageError(openKeyOp)
	return s.storeError(ctx, method, err,
		"registration_id", id, "key_registration_id", key.RegistrationID, "kid", key.KID)
}

// DefaultRetirePreviousAfter is how long a rotated-out key stays published
// unless RotateKey's retire_previous_after says otherwise.
const DefaultRetirePreviousAfter = 48 * time.Hour

// MaxRotationWindow bounds publish_ahead and retire_previous_after, and
// the default publish-ahead.
const MaxRotationWindow = 366 * 24 * time.Hour

// RotateKey implements ltikeysv1.KeyServiceServer.
func (s *KeyService) RotateKey(ctx context.Context, req *ltikeysv1.RotateKeyRequest) (*ltikeysv1.RotateKeyResponse, error) {
	var v violations
	id := canonicalRegistrationID(req.GetRegistrationId())
	v.requireUUID("registration_id", id)
	opts := storage.RotateOptions{
		PublishAhead:        v.window("publish_ahead", req.GetPublishAhead(), s.publishAhead, s.jwksMaxAge, req.GetForce()),
		RetirePreviousAfter: v.window("retire_previous_after", req.GetRetirePreviousAfter(), DefaultRetirePreviousAfter, s.jwksMaxAge, req.GetForce()),
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	// Fail fast, before spending a key generation, for an unknown id. The
	// transaction below checks again.
	if _, err := s.store.GetRegistration(ctx, id); err != nil {
		return nil, s.registrationError(ctx, "RotateKey", err, id)
	}
	auditRegistration(ctx, id)
	key, err := s.newKey(id)
	if err != nil {
		return nil, s.storeError(ctx, "RotateKey", err)
	}
	opts.MaxPublished = s.maxPublished
	r, err := s.store.Rotate(ctx, id, key, opts)
	if errors.Is(err, storage.ErrTooManyKeys) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"registration %q would publish more than %d keys: retire previous keys first (RetireKey; ltikeys key list --registration-id %s --state previous, then ltikeys key retire --kid …), or rotate with a shorter retire_previous_after",
			id, s.maxPublished, id)
	}
	if err != nil {
		return nil, s.registrationError(ctx, "RotateKey", err, id)
	}
	s.keysChanged(ctx)
	s.platformTokens.Invalidate(id)
	s.log.InfoContext(ctx, "key rotated", "registration_id", r.Registration.ID, "kid", r.New.KID,
		"previous_kid", r.Previous.KID, "activates_at", r.New.ActivatesAt, "previous_retire_at", r.Previous.RetireAt,
		"replaced_pending_kid", r.Replaced.KID)
	now := s.now()
	resp := &ltikeysv1.RotateKeyResponse{
		Registration: s.registrationProto(r.Registration, now),
		NewKey:       keyProto(r.New, now),
		PreviousKey:  keyProto(r.Previous, now),
	}
	if r.Replaced.KID != "" {
		resp.ReplacedPendingKey = keyProto(r.Replaced, now)
	}
	return resp, nil
}

// window checks an optional rotation window: def if unset (the proto
// field is a message, so unset and 0s differ), else a non-negative
// duration that is zero or, unless force, at least maxAge (a shorter
// window ends before platforms' cached key sets expire).
func (v *violations) window(field string, d *durationpb.Duration, def, maxAge time.Duration, force bool) time.Duration {
	if d == nil {
		return def
	}
	if err := d.CheckValid(); err != nil {
		v.add(field, "must be a valid duration")
		return 0
	}
	w := d.AsDuration()
	switch {
	case w < 0:
		v.add(field, "must not be negative")
	case w > MaxRotationWindow:
		v.add(field, "must be at most %s", MaxRotationWindow)
	case w > 0 && w < maxAge && !force:
		v.add(field, "must be 0 or at least the JWKS max-age (%s), or platforms' cached key sets would not have seen the change; set force to allow it", maxAge)
	}
	return w
}

// RetireKey implements ltikeysv1.KeyServiceServer.
func (s *KeyService) RetireKey(ctx context.Context, req *ltikeysv1.RetireKeyRequest) (*ltikeysv1.RetireKeyResponse, error) {
	var v violations
	v.requireText("kid", req.GetKid(), maxFieldLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	key, err := s.store.RetireKey(ctx, req.GetKid())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "key %q not found", req.GetKid())
	case errors.Is(err, storage.ErrKeyInUse):
		return nil, status.Errorf(codes.FailedPrecondition, "key %q is a registration's current or pending signing key: rotate the registration first", req.GetKid())
	case err != nil:
		return nil, s.storeError(ctx, "RetireKey", err)
	}
	s.keysChanged(ctx)
	s.log.InfoContext(ctx, "key retired", "registration_id", key.RegistrationID, "kid", key.KID)
	return &ltikeysv1.RetireKeyResponse{Key: keyProto(key, s.now())}, nil
}

// lookup resolves the registration a request names, by issuer and client_id
// if ic is set, else by id. The caller has checked them with validateLookup.
func (s *KeyService) lookup(ctx context.Context, method, id string, ic *ltikeysv1.IssuerClient) (storage.Registration, error) {
	if ic != nil {
		reg, err := s.store.GetRegistrationByIssuerClient(ctx, ic.GetIssuer(), ic.GetClientId())
		if errors.Is(err, storage.ErrNotFound) {
			return reg, status.Errorf(codes.NotFound, "no registration for issuer %q and client_id %q", ic.GetIssuer(), ic.GetClientId())
		}
		if err != nil {
			return reg, s.storeError(ctx, method, err)
		}
		return reg, nil
	}
	reg, err := s.store.GetRegistration(ctx, id)
	if err != nil {
		return reg, s.registrationError(ctx, method, err, id)
	}
	return reg, nil
}

// validateLookup checks a request's lookup oneof; set tells whether it was
// set at all.
func validateLookup(id string, ic *ltikeysv1.IssuerClient, set bool) error {
	var v violations
	switch {
	case !set:
		v.add("lookup", "one of registration_id or issuer_client is required")
	case ic != nil:
		v.requireText("issuer_client.issuer", ic.GetIssuer(), maxFieldLen)
		v.requireText("issuer_client.client_id", ic.GetClientId(), maxClientIDLen)
	default:
		v.requireUUID("registration_id", id)
	}
	return v.err()
}

// registrationError maps an error from a lookup by registration id.
func (s *KeyService) registrationError(ctx context.Context, method string, err error, id string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return status.Errorf(codes.NotFound, "registration %q not found", id)
	}
	return s.storeError(ctx, method, err)
}

// newKey takes a key pair from the pool, or generates one, for a
// registration and seals its private half. The plaintext is zeroed before
// it returns.
func (s *KeyService) newKey(registrationID string) (storage.Key, error) {
	pair, ok := s.pool.Take(s.bits)
	if !ok {
		var err error
		if pair, err = crypto.GenerateKeyPair(s.bits); err != nil {
			return storage.Key{}, fmt.Errorf("generate key: %w", err)
		}
	}
	defer crypto.Zero(pair.PrivateJWK)
	sealed, err := s.keyring.Seal(pair.PrivateJWK, pair.KID, registrationID)
	if err != nil {
		return storage.Key{}, fmt.Errorf("seal key %s: %w", pair.KID, err)
	}
	return storage.Key{
		KID:            pair.KID,
		Alg:            pair.Alg,
		RegistrationID: registrationID,
		PublicJWK:      pair.PublicJWK,
		PrivateJWK:     sealed,
		Active:         true,
	}, nil
}

// keysChanged drops this process's cached signing keys and refreshes its
// JWKS after a committed change. A refresh failure is logged, not returned:
// the change is durable and the periodic refresh will publish it.
func (s *KeyService) keysChanged(ctx context.Context) {
	s.keys.purge()
	if s.jwks == nil {
		return
	}
	if err := s.jwks.Refresh(context.WithoutCancel(ctx)); err != nil {
		s.log.WarnContext(ctx, "jwks refresh after change failed; the periodic refresh will retry", "err", err)
	}
}

// registrationProto renders r as of now: kid is the key signing at now,
// and tool_jwks_url its JWK Set's URL under the public URL, if any. Its
// deployment_ids are a copy: r may be shared (see signingKey).
func (s *KeyService) registrationProto(r storage.Registration, now time.Time) *ltikeysv1.Registration {
	p := &ltikeysv1.Registration{
		Id:            r.ID,
		Issuer:        r.Issuer,
		ClientId:      r.ClientID,
		AuthEndpoint:  r.AuthEndpoint,
		JwksUri:       r.JWKSURI,
		TokenEndpoint: r.TokenEndpoint,
		Kid:           r.SigningKID(now),
		CreateTime:    timestamppb.New(r.CreatedAt),
		UpdateTime:    timestamppb.New(r.UpdatedAt),
		ToolJwksUrl:   s.jwksURLs.registration(r.ID),
		DeploymentIds: slices.Clone(r.DeploymentIDs),
	}
	if r.PendingKID != "" && now.Before(r.PendingActivatesAt) {
		p.PendingKid = r.PendingKID
		p.PendingActivateTime = timestamppb.New(r.PendingActivatesAt)
	}
	return p
}

// keyStates maps storage states to the API's.
var keyStates = map[storage.KeyState]ltikeysv1.KeyState{
	storage.KeyPending:  ltikeysv1.KeyState_KEY_STATE_PENDING,
	storage.KeyCurrent:  ltikeysv1.KeyState_KEY_STATE_CURRENT,
	storage.KeyPrevious: ltikeysv1.KeyState_KEY_STATE_PREVIOUS,
	storage.KeyRetired:  ltikeysv1.KeyState_KEY_STATE_RETIRED,
}

// keyProto renders k as of now: state and active are derived from its
// schedule at now.
func keyProto(k storage.Key, now time.Time) *ltikeysv1.Key {
	state := k.State(now)
	return &ltikeysv1.Key{
		Kid:            k.KID,
		Alg:            k.Alg,
		Active:         state != storage.KeyRetired,
		PublicJwk:      string(k.PublicJWK),
		CreateTime:     timestamppb.New(k.CreatedAt),
		UpdateTime:     timestamppb.New(k.UpdatedAt),
		RegistrationId: k.RegistrationID,
		State:          keyStates[state],
		ActivateTime:   optionalTime(k.ActivatesAt),
		SupersedeTime:  optionalTime(k.SupersededAt),
		RetireTime:     optionalTime(k.RetireAt),
		RetiredTime:    optionalTime(k.RetiredAt),
	}
}

// optionalTime is t, or nil for the zero time.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
