package cryptotest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// SealV1 seals plaintext as a version 1 envelope, bound to kid alone,
// under the 32-byte AES-256 key named masterKeyID (1 to 64 characters from
// [A-Za-z0-9._-], as in a keyring). It does not retain or modify its
// arguments.
func SealV1(masterKeyID string, masterKey, plaintext []byte, kid string) ([]byte, error) {
	if len(masterKeyID) < 1 || len(masterKeyID) > 64 {
		return nil, errors.New("cryptotest: master key id must be 1 to 64 characters")
	}
	if kid == "" {
		return nil, errors.New("cryptotest: seal needs a non-empty kid")
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	header := append([]byte{1, byte(len(masterKeyID))}, masterKeyID...)
	aad := append(append(append([]byte{}, header...), "ltikeys private_jwk v1\x00"...), kid...)
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	out := append(header, nonce...)
	return gcm.Seal(out, nonce, plaintext, aad), nil
}
