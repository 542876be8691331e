package crypto

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// AlgRS256 is the JWS algorithm of every key pair this package generates.
const AlgRS256 = "RS256"

// useSig is the JWK "use" of every key: signatures, never encryption.
const useSig = "sig"

// b64 is base64url without padding, the encoding of every JWK binary member
// and of the kid.
var b64 = base64.RawURLEncoding

// ValidKeyBits reports whether bits is an RSA modulus size GenerateKeyPair
// accepts: 2048, 3072 or 4096.
func ValidKeyBits(bits int) bool {
	switch bits {
	case 2048, 3072, 4096:
		return true
	}
	return false
}

// KeyPair is a freshly generated RS256 signing key.
//
// PublicJWK is safe to store and publish: a compact JSON object with exactly
// the members kty, n, e, kid, alg ("RS256") and use ("sig").
//
// PrivateJWK is plaintext secret material: the full private JWK (kty, n, e,
// d, p, q, dp, dq, qi, kid, alg, use) as compact JSON. The caller must seal
// it (Keyring.Seal) before it leaves memory and should Zero it once sealed.
// It is never written to a log or an error by this package.
type KeyPair struct {
	// KID is the RFC 7638 JWK thumbprint (SHA-256) of the public key,
	// base64url without padding. It depends only on n and e, so it is stable:
	// the same key always has the same kid.
	KID string
	// Alg is AlgRS256.
	Alg        string
	PublicJWK  []byte
	PrivateJWK []byte
}

// GenerateKeyPair generates an RSA key of the given modulus size, which must
// satisfy ValidKeyBits, with public exponent 65537. Generating a 2048-bit key
// takes on the order of 100ms, a 4096-bit key several times that.
//
// The intermediate big integers are wiped before it returns; copies made
// inside crypto/rsa are beyond its reach.
func GenerateKeyPair(bits int) (KeyPair, error) {
	if !ValidKeyBits(bits) {
		return KeyPair{}, fmt.Errorf("crypto: unsupported RSA key size %d bits (want 2048, 3072 or 4096)", bits)
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return KeyPair{}, fmt.Errorf("crypto: generate RSA key: %w", err)
	}
	defer wipeRSA(priv)
	if len(priv.Primes) != 2 || priv.Precomputed.Dp == nil || priv.Precomputed.Dq == nil || priv.Precomputed.Qinv == nil {
		return KeyPair{}, errors.New("crypto: generated RSA key lacks CRT parameters")
	}

	n := priv.N.Bytes()
	e := big.NewInt(int64(priv.E)).Bytes()
	kid := thumbprintRSA(n, e)

	secrets := [][]byte{
		priv.D.Bytes(),
		priv.Primes[0].Bytes(),
		priv.Primes[1].Bytes(),
		priv.Precomputed.Dp.Bytes(),
		priv.Precomputed.Dq.Bytes(),
		priv.Precomputed.Qinv.Bytes(),
	}
	defer func() {
		for _, s := range secrets {
			Zero(s)
		}
	}()

	nText, eText := b64.AppendEncode(nil, n), b64.AppendEncode(nil, e)
	pub := appendRSAJWK(nil, nText, eText, nil, kid, AlgRS256, useSig)
	// Size the private buffer up front so append never reallocates and
	// leaves a stray copy of the secret members behind.
	size := len(pub) + len(privateMembers)*8
	for _, s := range secrets {
		size += b64.EncodedLen(len(s))
	}
	privJWK := appendRSAJWK(make([]byte, 0, size), nText, eText, secrets, kid, AlgRS256, useSig)

	return KeyPair{KID: kid, Alg: AlgRS256, PublicJWK: pub, PrivateJWK: privJWK}, nil
}

// privateMembers are the JWK members that carry RSA private key material,
// in the order GenerateKeyPair writes them.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi"}

// appendRSAJWK appends a compact RSA JWK. nText and eText are the modulus
// and exponent already in base64url; secrets, if not nil, holds the values
// of privateMembers in order, as big-endian unsigned octets. alg and use
// are written only if not empty.
func appendRSAJWK(dst, nText, eText []byte, secrets [][]byte, kid, alg, use string) []byte {
	dst = append(dst, `{"kty":"RSA","n":"`...)
	dst = append(dst, nText...)
	dst = append(dst, `","e":"`...)
	dst = append(dst, eText...)
	dst = append(dst, '"')
	for i, s := range secrets {
		dst = appendB64Member(dst, privateMembers[i], s)
	}
	dst = append(dst, `,"kid":`...)
	dst = appendJSONString(dst, kid)
	if alg != "" {
		dst = append(dst, `,"alg":`...)
		dst = appendJSONString(dst, alg)
	}
	if use != "" {
		dst = append(dst, `,"use":`...)
		dst = appendJSONString(dst, use)
	}
	return append(dst, '}')
}

func appendB64Member(dst []byte, name string, v []byte) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":"`...)
	dst = b64.AppendEncode(dst, v)
	return append(dst, '"')
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// thumbprintRSA returns the RFC 7638 SHA-256 thumbprint of the RSA public
// key (n, e), base64url without padding. The members are hashed in the
// lexicographic order the RFC requires: e, kty, n.
func thumbprintRSA(n, e []byte) string {
	h := sha256.New()
	h.Write([]byte(`{"e":"`))
	h.Write(b64.AppendEncode(nil, e))
	h.Write([]byte(`","kty":"RSA","n":"`))
	h.Write(b64.AppendEncode(nil, n))
	h.Write([]byte(`"}`))
	return b64.EncodeToString(h.Sum(nil))
}

// wipeRSA overwrites the private big integers of k. It is best effort:
// crypto/rsa keeps its own copies, which the garbage collector reclaims.
func wipeRSA(k *rsa.PrivateKey) {
	ints := []*big.Int{k.D, k.Precomputed.Dp, k.Precomputed.Dq, k.Precomputed.Qinv}
	ints = append(ints, k.Primes...)
	for _, x := range ints {
		if x != nil {
			clear(x.Bits())
		}
	}
}

// Zero overwrites b with zeros. Use it on a PrivateJWK, or a plaintext
// returned by Keyring.Open, once it is no longer needed.
func Zero(b []byte) {
	clear(b)
}

// ParsePrivateJWK parses a private JWK such as KeyPair.PrivateJWK (after
// Keyring.Open) into a jwx key ready for jws.Sign with AlgRS256.
//
// It accepts only what GenerateKeyPair produces: an RSA private key with all
// CRT members, a modulus size that satisfies ValidKeyBits, a kid equal to
// the key's RFC 7638 thumbprint, and alg and use, if present, equal to
// "RS256" and "sig". The key is checked for internal consistency.
//
// Its errors never contain any part of b.
func ParsePrivateJWK(b []byte) (jwk.Key, error) {
	// jwx and JSON errors can quote the input, so none is wrapped.
	if !json.Valid(b) {
		return nil, errors.New("crypto: private JWK is not valid JSON")
	}
	key, err := jwk.ParseKey(b)
	if err != nil {
		return nil, errors.New("crypto: private JWK is not a valid JWK")
	}
	if _, ok := key.(jwk.RSAPrivateKey); !ok {
		return nil, errors.New("crypto: JWK is not an RSA private key")
	}
	if alg := key.Algorithm().String(); alg != "" && alg != AlgRS256 {
		return nil, errors.New(`crypto: private JWK alg is not "RS256"`)
	}
	if use := key.KeyUsage(); use != "" && use != useSig {
		return nil, errors.New(`crypto: private JWK use is not "sig"`)
	}

	var raw rsa.PrivateKey
	if err := key.Raw(&raw); err != nil {
		return nil, errors.New("crypto: private JWK is not a valid RSA private key")
	}
	defer wipeRSA(&raw)
	if raw.N == nil || !ValidKeyBits(raw.N.BitLen()) {
		return nil, errors.New("crypto: private JWK modulus is not 2048, 3072 or 4096 bits")
	}
	if raw.Precomputed.Dp == nil || raw.Precomputed.Dq == nil || raw.Precomputed.Qinv == nil {
		return nil, errors.New("crypto: private JWK lacks dp, dq or qi")
	}
	if err := raw.Validate(); err != nil {
		return nil, errors.New("crypto: private JWK is not a consistent RSA private key")
	}
	if key.KeyID() != thumbprintRSA(raw.N.Bytes(), big.NewInt(int64(raw.E)).Bytes()) {
		return nil, errors.New("crypto: private JWK kid is not its RFC 7638 thumbprint")
	}
	return key, nil
}
