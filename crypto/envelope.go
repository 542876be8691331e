package crypto

import (
	"errors"
	"fmt"
)

// Envelope format, version 1 (docs/encryption.md has the full description):
//
//	offset     size  field
//	0          1     format version, 1
//	1          1     L, length of the master key id, 1..64
//	2          L     master key id, [A-Za-z0-9._-]
//	2+L        12    AES-GCM nonce, random per Seal
//	14+L       n+16  AES-256-GCM ciphertext of n plaintext bytes, then the tag
//
// The associated data is the header (the first 2+L bytes), then aadDomain,
// then the kid of the row the envelope belongs to.
const (
	formatV1       = 1
	maxKeyIDLen    = 64
	gcmNonceSize   = 12
	gcmTagSize     = 16
	masterKeyBytes = 32
	aadDomain      = "ltikeys private_jwk v1\x00"
)

// ErrMalformed means the bytes are not an envelope this package can read:
// truncated, an unknown format version, or a bad master key id. Errors that
// match it with errors.Is carry the reason in their text.
var ErrMalformed = errors.New("crypto: malformed envelope")

// ErrDecrypt means authentication failed: the envelope was sealed under a
// different key with the same id, was altered, or belongs to another kid.
// Nothing about which is revealed, by design.
var ErrDecrypt = errors.New("crypto: envelope authentication failed (wrong master key, tampered data, or wrong kid)")

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

// parseHeader checks everything about sealed that can be checked without a
// key and returns the master key id and the header length.
func parseHeader(sealed []byte) (id string, headerLen int, err error) {
	if len(sealed) < 2 {
		return "", 0, malformed("too short for a header")
	}
	if v := sealed[0]; v != formatV1 {
		return "", 0, malformed(fmt.Sprintf("unsupported format version %d", v))
	}
	l := int(sealed[1])
	if l < 1 || l > maxKeyIDLen {
		return "", 0, malformed(fmt.Sprintf("master key id length %d is not in 1..%d", l, maxKeyIDLen))
	}
	if len(sealed) < 2+l {
		return "", 0, malformed("truncated master key id")
	}
	idBytes := sealed[2 : 2+l]
	if !validKeyID(idBytes) {
		return "", 0, malformed("master key id has characters outside [A-Za-z0-9._-]")
	}
	if len(sealed) < 2+l+gcmNonceSize+gcmTagSize {
		return "", 0, malformed("truncated ciphertext")
	}
	return string(idBytes), 2 + l, nil
}

// SealedBy returns the id of the master key that sealed the envelope,
// without decrypting it. Its error matches ErrMalformed. Rotation tooling
// uses it to count envelopes still under an old key.
func SealedBy(sealed []byte) (string, error) {
	id, _, err := parseHeader(sealed)
	return id, err
}

// additionalData binds an envelope to its header and to its row.
func additionalData(header []byte, kid string) []byte {
	aad := make([]byte, 0, len(header)+len(aadDomain)+len(kid))
	aad = append(aad, header...)
	aad = append(aad, aadDomain...)
	return append(aad, kid...)
}

// Seal encrypts plaintext under the primary master key, bound to kid: the
// result opens only with the same kid. Every call uses a fresh random nonce,
// so sealing the same plaintext twice gives different envelopes. Seal does
// not retain or modify plaintext.
func (k *Keyring) Seal(plaintext []byte, kid string) ([]byte, error) {
	if kid == "" {
		return nil, errors.New("crypto: seal needs a non-empty kid")
	}
	p := k.primary()
	out := make([]byte, 0, 2+len(p.id)+gcmNonceSize+len(plaintext)+gcmTagSize)
	out = append(out, formatV1, byte(len(p.id)))
	out = append(out, p.id...)
	// The random-nonce AEAD writes the nonce, then ciphertext and tag,
	// after the header.
	return p.aead.Seal(out, nil, plaintext, additionalData(out, kid)), nil
}

// Open authenticates and decrypts an envelope made by Seal with the same
// kid, under any master key in the keyring. Errors: ErrMalformed (matched
// with errors.Is) for bytes that are not an envelope, *MissingKeyError
// (matched with errors.As) when the master key is not in the keyring, and
// ErrDecrypt when authentication fails. The caller should Zero the
// plaintext when done with it.
func (k *Keyring) Open(sealed []byte, kid string) ([]byte, error) {
	id, headerLen, err := parseHeader(sealed)
	if err != nil {
		return nil, err
	}
	mk, ok := k.byID[id]
	if !ok {
		return nil, &MissingKeyError{ID: id}
	}
	plaintext, err := mk.aead.Open(nil, nil, sealed[headerLen:], additionalData(sealed[:headerLen], kid))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// Rewrap re-seals an envelope under the primary master key. It always
// opens the envelope first, so it also proves the envelope is intact and
// belongs to kid. If the envelope is already under the primary key it
// returns sealed itself and changed=false; otherwise it returns a new
// envelope and changed=true. The plaintext is zeroed before it returns.
// Errors are those of Open. Rewrap is idempotent: rewrapping its own output
// changes nothing.
func (k *Keyring) Rewrap(sealed []byte, kid string) (next []byte, changed bool, err error) {
	id, _, err := parseHeader(sealed)
	if err != nil {
		return nil, false, err
	}
	plaintext, err := k.Open(sealed, kid)
	if err != nil {
		return nil, false, err
	}
	defer Zero(plaintext)
	if id == k.PrimaryID() {
		return sealed, false, nil
	}
	next, err = k.Seal(plaintext, kid)
	if err != nil {
		return nil, false, err
	}
	return next, true, nil
}
