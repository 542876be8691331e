package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Bounds on a published RSA modulus. The lower bound is the smallest size
// GenerateKeyPair makes; the upper bound only stops absurd input.
const (
	minPublicModulusBits = 2048
	maxPublicModulusBits = 8192
)

// JWKS returns the JWK Set {"keys":[...]} of the given public JWKs, in the
// given order, as compact JSON.
//
// Every entry is parsed and checked, and the whole call fails if any entry:
//   - is not a JSON object, or has kty other than "RSA";
//   - carries private key material (a d, p, q, dp, dq, qi, oth or k member),
//     so a private key can never be published by mistake;
//   - has an n or e that is not canonical base64url of a plausible RSA
//     public key (n of 2048 to 8192 bits, e odd and at least 3);
//   - has no kid, a kid that is not valid UTF-8, or a kid already used by
//     an earlier entry;
//   - has any of kty, n, e, kid, alg or use twice;
//   - has an alg other than "RS256" or a use other than "sig".
//
// Each output key has only the members kty, n, e, kid, alg and use (the last
// two only if present in the entry); any other member is dropped. Errors name
// the entry's index and the problem, never the entry's content.
func JWKS(publicJWKs [][]byte) ([]byte, error) {
	size := len(`{"keys":[]}`)
	for _, b := range publicJWKs {
		size += len(b) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"keys":[`...)

	var p jwkParser
	seen := make(map[string]int, len(publicJWKs))
	for i, b := range publicJWKs {
		k, err := p.parsePublic(b)
		if err != nil {
			return nil, fmt.Errorf("crypto: jwks entry %d: %w", i, err)
		}
		if j, dup := seen[k.kid]; dup {
			return nil, fmt.Errorf("crypto: jwks entry %d: kid already used by entry %d", i, j)
		}
		seen[k.kid] = i
		if i > 0 {
			out = append(out, ',')
		}
		out = appendRSAJWK(out, k.n, k.e, nil, k.kid, k.alg, k.use)
	}
	return append(out, ']', '}'), nil
}

// publicRSA is a validated RSA public JWK. n and e are the base64url texts,
// already checked to be canonical.
type publicRSA struct {
	n, e          []byte
	kid, alg, use string
}

// jwkParser reuses its decode buffer across entries.
type jwkParser struct {
	buf []byte
}

// forbiddenMembers carry secret material: RSA private members, RFC 7518
// multi-prime "oth", and the symmetric key "k".
var forbiddenMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// rawJWK holds the members of a JWK object that JWKS interprets, each as
// the raw JSON value, nil if absent.
type rawJWK struct {
	kty, n, e, kid, alg, use []byte
	private                  string // the first forbidden member seen
}

func (r *rawJWK) member(name []byte) *[]byte {
	switch string(name) {
	case "kty":
		return &r.kty
	case "n":
		return &r.n
	case "e":
		return &r.e
	case "kid":
		return &r.kid
	case "alg":
		return &r.alg
	case "use":
		return &r.use
	}
	return nil
}

func (p *jwkParser) parsePublic(b []byte) (publicRSA, error) {
	var r rawJWK
	err := scanObject(b, func(name, value []byte) error {
		if slot := r.member(name); slot != nil {
			if *slot != nil {
				return fmt.Errorf("member %q appears twice", name) // one of ours
			}
			*slot = value
			return nil
		}
		for _, f := range forbiddenMembers {
			if string(name) == f && r.private == "" {
				r.private = f
			}
		}
		return nil
	})
	if err != nil {
		return publicRSA{}, err
	}
	if r.private != "" {
		return publicRSA{}, fmt.Errorf("has private member %q", r.private)
	}
	if kty, ok := jsonString(r.kty); !ok || string(kty) != "RSA" {
		return publicRSA{}, errors.New(`kty is not "RSA"`)
	}

	var k publicRSA
	if k.n, err = p.uint(r.n, "n", maxPublicModulusBits/8); err != nil {
		return publicRSA{}, err
	}
	if bits := bitLen(p.buf); bits < minPublicModulusBits || bits > maxPublicModulusBits {
		return publicRSA{}, fmt.Errorf("n is %d bits, want %d to %d", bits, minPublicModulusBits, maxPublicModulusBits)
	}
	if p.buf[len(p.buf)-1]&1 == 0 {
		return publicRSA{}, errors.New("n is even")
	}
	if k.e, err = p.uint(r.e, "e", 4); err != nil {
		return publicRSA{}, err
	}
	if e := p.buf; e[len(e)-1]&1 == 0 || (len(e) == 1 && e[0] < 3) || (len(e) == 4 && e[0] >= 0x80) {
		return publicRSA{}, errors.New("e is not an odd exponent from 3 to 2^31-1")
	}

	var ok bool
	if k.kid, ok = optionalString(r.kid); !ok || k.kid == "" {
		return publicRSA{}, errors.New("kid is missing or not a non-empty string")
	}
	// JSON text is UTF-8 (RFC 8259), and encoding/json would silently turn
	// each invalid byte into U+FFFD, letting two distinct kids collide.
	if !utf8.ValidString(k.kid) {
		return publicRSA{}, errors.New("kid is not valid UTF-8")
	}
	if k.alg, ok = optionalString(r.alg); !ok || (k.alg != "" && k.alg != AlgRS256) {
		return publicRSA{}, errors.New(`alg is not "RS256"`)
	}
	if k.use, ok = optionalString(r.use); !ok || (k.use != "" && k.use != useSig) {
		return publicRSA{}, errors.New(`use is not "sig"`)
	}
	return k, nil
}

// base64URLAlphabet marks the bytes of the base64url alphabet.
var base64URLAlphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()

// uint checks that raw is a JSON string holding the canonical base64url
// (no padding, no line breaks, zero trailing bits) of a big-endian unsigned
// integer with no leading zero octet and at most maxLen octets. It returns
// the text and leaves the decoded octets in p.buf.
func (p *jwkParser) uint(raw []byte, name string, maxLen int) ([]byte, error) {
	s, ok := jsonString(raw)
	if !ok || len(s) == 0 {
		return nil, fmt.Errorf("%s is missing or not a non-empty string", name)
	}
	if b64.DecodedLen(len(s)) > maxLen {
		return nil, fmt.Errorf("%s is too long", name)
	}
	// The decoder skips \r and \n, so the alphabet is checked here.
	for _, c := range s {
		if !base64URLAlphabet[c] {
			return nil, fmt.Errorf("%s is not base64url", name)
		}
	}
	if cap(p.buf) < maxLen {
		p.buf = make([]byte, maxLen)
	}
	p.buf = p.buf[:cap(p.buf)]
	n, err := b64.Strict().Decode(p.buf, s)
	if err != nil {
		return nil, fmt.Errorf("%s is not canonical base64url", name)
	}
	p.buf = p.buf[:n]
	if n == 0 || p.buf[0] == 0 {
		return nil, fmt.Errorf("%s has a leading zero octet", name)
	}
	return s, nil
}

// jsonString returns the contents of the JSON string literal raw, which
// scanObject has already validated. ok is false if raw is not a string.
func jsonString(raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], true
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return []byte(v), true
}

// optionalString returns the JSON string raw: "" and true if raw is nil
// (the member is absent), false if it is present but not a string.
func optionalString(raw []byte) (string, bool) {
	if raw == nil {
		return "", true
	}
	s, ok := jsonString(raw)
	return string(s), ok
}

// bitLen is the bit length of the big-endian unsigned integer b, whose first
// octet is not zero.
func bitLen(b []byte) int {
	n := (len(b) - 1) * 8
	for c := b[0]; c != 0; c >>= 1 {
		n++
	}
	return n
}
