package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Envelope formats (docs/encryption.md has the full description). Both
// versions share one layout:
//
//	offset     size  field
//	0          1     format version, 1 or 2
//	1          1     L, length of the master key id, 1..64
//	2          L     master key id, [A-Za-z0-9._-]
//	2+L        12    AES-GCM nonce, random per Seal
//	14+L       n+16  AES-256-GCM ciphertext of n plaintext bytes, then the tag
//
// They differ in the associated data, which begins with the header (the
// first 2+L bytes) in both. Version 2, which Seal writes, binds the
// envelope to the kid and to the registration that owns the key:
//
//	header || "ltikeys private_jwk v2" 0x00 || len(kid) || kid || len(registration id) || registration id
//
// with each length two bytes, big-endian, so no two (kid, registration id)
// pairs give the same bytes. Version 1, which Open still reads, binds the
// kid alone:
//
//	header || "ltikeys private_jwk v1" 0x00 || kid
const (
	formatV1       = 1
	formatV2       = 2
	maxKeyIDLen    = 64
	gcmNonceSize   = 12
	gcmTagSize     = 16
	masterKeyBytes = 32
	aadDomainV1    = "ltikeys private_jwk v1\x00"
	aadDomainV2    = "ltikeys private_jwk v2\x00"
	// maxBoundLen is the longest kid or registration id a version 2
	// envelope can be bound to: its length must fit in two bytes.
	maxBoundLen = 1<<16 - 1
)

// CurrentFormat is the envelope format version Seal writes. Envelopes of
// an older version still open; Rewrap upgrades them.
const CurrentFormat = formatV2

// ErrMalformed means the bytes are not an envelope this package can read:
// truncated, an unknown format version, or a bad master key id. Errors that
// match it with errors.Is carry the reason in their text.
var ErrMalformed = errors.New("crypto: malformed envelope")

// ErrDecrypt means authentication failed: the envelope was sealed under a
// different key with the same id, was altered, or belongs to another kid
// or (version 2) another registration. Nothing about which is revealed, by
// design.
var ErrDecrypt = errors.New("crypto: envelope authentication failed (wrong master key, tampered data, or wrong kid or registration)")

// MissingKeyError means the envelope names a master key the keyring does
// not hold. ID is the master key id from the envelope header; it is not
// secret. Use errors.As to get it.
type MissingKeyError struct {
	ID string
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("crypto: master key %q is not in the keyring", e.ID)
}

func malformed(reason string) error {
	return fmt.Errorf("%w: %s", ErrMalformed, reason)
}

// header is what parseHeader reads from an envelope.
type header struct {
	version int
	// id is the master key id.
	id string
	// len is the header's length in bytes.
	len int
}

// parseHeader checks everything about sealed that can be checked without a
// key.
func parseHeader(sealed []byte) (header, error) {
	if len(sealed) < 2 {
		return header{}, malformed("too short for a header")
	}
	v := sealed[0]
	if v != formatV1 && v != formatV2 {
		return header{}, malformed(fmt.Sprintf("unsupported format version %d", v))
	}
	l := int(sealed[1])
	if l < 1 || l > maxKeyIDLen {
		return header{}, malformed(fmt.Sprintf("master key id length %d is not in 1..%d", l, maxKeyIDLen))
	}
	if len(sealed) < 2+l {
		return header{}, malformed("truncated master key id")
	}
	idBytes := sealed[2 : 2+l]
	if !validKeyID(idBytes) {
		return header{}, malformed("master key id has characters outside [A-Za-z0-9._-]")
	}
	if len(sealed) < 2+l+gcmNonceSize+gcmTagSize {
		return header{}, malformed("truncated ciphertext")
	}
	return header{version: int(v), id: string(idBytes), len: 2 + l}, nil
}

// SealedBy returns the id of the master key that sealed the envelope,
// without decrypting it. Its error matches ErrMalformed. Rotation tooling
// uses it to count envelopes still under an old key.
func SealedBy(sealed []byte) (string, error) {
	h, err := parseHeader(sealed)
	return h.id, err
}

// FormatVersion returns the format version of the envelope, 1 or 2,
// without decrypting it. Its error matches ErrMalformed. Envelopes older
// than CurrentFormat are not bound to their registration; Rewrap upgrades
// them.
func FormatVersion(sealed []byte) (int, error) {
	h, err := parseHeader(sealed)
	return h.version, err
}

// additionalData binds an envelope to its header and to its row: to kid
// alone in version 1, to kid and registrationID in version 2. ok is false
// when a version 2 binding cannot be written (a kid or registration id too
// long to have been sealed).
func additionalData(hdr []byte, kid, registrationID string) (aad []byte, ok bool) {
	if hdr[0] == formatV1 {
		aad = make([]byte, 0, len(hdr)+len(aadDomainV1)+len(kid))
		aad = append(aad, hdr...)
		aad = append(aad, aadDomainV1...)
		return append(aad, kid...), true
	}
	if len(kid) > maxBoundLen || len(registrationID) > maxBoundLen {
		return nil, false
	}
	aad = make([]byte, 0, len(hdr)+len(aadDomainV2)+2+len(kid)+2+len(registrationID))
	aad = append(aad, hdr...)
	aad = append(aad, aadDomainV2...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(kid)))
	aad = append(aad, kid...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(registrationID)))
	return append(aad, registrationID...), true
}

// Seal encrypts plaintext under the primary master key into a version 2
// envelope bound to kid and to registrationID, the registration that owns
// the key: the result opens only with the same two. Both must be 1 to
// 65535 bytes. Every call uses a fresh random nonce, so sealing the same
// plaintext twice gives different envelopes. Seal does not retain or
// modify plaintext.
func (k *Keyring) Seal(plaintext []byte, kid, registrationID string) ([]byte, error) {
	switch {
	case kid == "":
		return nil, errors.New("crypto: seal needs a non-empty kid")
	case registrationID == "":
		return nil, errors.New("crypto: seal needs a non-empty registration id")
	}
	p := k.primary()
	out := make([]byte, 0, 2+len(p.id)+gcmNonceSize+len(plaintext)+gcmTagSize)
	out = append(out, formatV2, byte(len(p.id)))
	out = append(out, p.id...)
	aad, ok := additionalData(out, kid, registrationID)
	if !ok {
		return nil, fmt.Errorf("crypto: seal needs a kid and a registration id of at most %d bytes", maxBoundLen)
	}
	// The random-nonce AEAD writes the nonce, then ciphertext and tag,
	// after the header.
	return p.aead.Seal(out, nil, plaintext, aad), nil
}

// Open authenticates and decrypts an envelope made by Seal, under any
// master key in the keyring. A version 2 envelope opens only with the kid
// and registration id it was sealed with. A version 1 envelope is bound to
// its kid alone and opens whatever registrationID is: for those, the
// caller's own check of the owner is the only one.
//
// Errors: ErrMalformed (matched with errors.Is) for bytes that are not an
// envelope, *MissingKeyError (matched with errors.As) when the master key
// is not in the keyring, and ErrDecrypt when authentication fails. The
// caller should Zero the plaintext when done with it.
func (k *Keyring) Open(sealed []byte, kid, registrationID string) ([]byte, error) {
	h, err := parseHeader(sealed)
	if err != nil {
		return nil, err
	}
	return k.open(h, sealed, kid, registrationID)
}

func (k *Keyring) open(h header, sealed []byte, kid, registrationID string) ([]byte, error) {
	mk, ok := k.byID[h.id]
	if !ok {
		return nil, &MissingKeyError{ID: h.id}
	}
	aad, ok := additionalData(sealed[:h.len], kid, registrationID)
	if !ok {
		return nil, ErrDecrypt // no envelope can be bound to it
	}
	plaintext, err := mk.aead.Open(nil, nil, sealed[h.len:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// Rewrap re-seals an envelope under the primary master key in the current
// format. It always opens the envelope first, so it also proves the
// envelope is intact and belongs to kid (and, for version 2, to
// registrationID). If the envelope is already a version 2 envelope under
// the primary key it returns sealed itself and changed=false; otherwise
// (another master key, or version 1) it returns a new version 2 envelope
// bound to kid and registrationID, and changed=true. The plaintext is
// zeroed before it returns. Errors are those of Open and Seal. Rewrap is
// idempotent: rewrapping its own output changes nothing.
//
// Upgrading a version 1 envelope binds it to registrationID, which the
// envelope itself cannot confirm: the caller vouches for the owner.
func (k *Keyring) Rewrap(sealed []byte, kid, registrationID string) (next []byte, changed bool, err error) {
	h, err := parseHeader(sealed)
	if err != nil {
		return nil, false, err
	}
	plaintext, err := k.open(h, sealed, kid, registrationID)
	if err != nil {
		return nil, false, err
	}
	defer Zero(plaintext)
	if h.version == CurrentFormat && h.id == k.PrimaryID() {
		return sealed, false, nil
	}
	next, err = k.Seal(plaintext, kid, registrationID)
	if err != nil {
		return nil, false, err
	}
	return next, true, nil
}
