package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// MasterKey is one AES-256 key that seals private JWKs, with the id written
// into every envelope it seals.
//
// Its String, GoString, Format and LogValue show only the id, and it refuses
// to be marshaled to JSON, so printing or logging a MasterKey (%v, %+v, %#v,
// slog) cannot leak the key. Line is the one deliberate way to write the key
// out. Printing m.Key itself, or a MasterKey held in an unexported struct
// field (which fmt reads by reflection), is not covered.
type MasterKey struct {
	// ID names the key in envelopes and in the keyring file: 1 to 64
	// characters from [A-Za-z0-9._-]. It is not secret.
	ID string
	// Key is the 32-byte AES-256 key.
	Key []byte
}

// GenerateMasterKey returns a new random master key named id.
func GenerateMasterKey(id string) (MasterKey, error) {
	if !validKeyID(id) {
		return MasterKey{}, fmt.Errorf("crypto: master key %w", errInvalidKeyID)
	}
	key := make([]byte, masterKeyBytes)
	rand.Read(key) // never fails; it crashes the program instead
	// NewKeyring refuses a key that is one byte repeated. 32 random bytes
	// are that with probability 2^-248; drawing again keeps a generated key
	// from ever being refused.
	for repeatedByte(key) {
		rand.Read(key)
	}
	return MasterKey{ID: id, Key: key}, nil
}

// Line returns the key as a keyring file line, "id:base64key" (standard
// base64 with padding), without a newline. The result is secret.
func (m MasterKey) Line() string {
	return m.ID + ":" + base64.StdEncoding.EncodeToString(m.Key)
}

// String returns "MasterKey(id)".
func (m MasterKey) String() string {
	return "MasterKey(" + m.ID + ")"
}

// GoString returns a Go-like form with the key redacted.
func (m MasterKey) GoString() string {
	return "crypto.MasterKey{ID:" + strconv.Quote(m.ID) + ", Key:REDACTED}"
}

// Format writes String (GoString for %#v) for every verb, so no fmt verb
// prints the key bytes.
func (m MasterKey) Format(f fmt.State, verb rune) {
	s := m.String()
	switch {
	case verb == 'v' && f.Flag('#'):
		s = m.GoString()
	case verb == 'q':
		s = strconv.Quote(s)
	}
	io.WriteString(f, s)
}

// LogValue makes log/slog record only the id.
func (m MasterKey) LogValue() slog.Value {
	return slog.StringValue(m.String())
}

// MarshalJSON always fails: a master key has no business in JSON.
func (m MasterKey) MarshalJSON() ([]byte, error) {
	return nil, errors.New("crypto: refusing to marshal a MasterKey to JSON")
}

// Keyring holds the master keys that can open envelopes, one of them the
// primary that seals new ones. It is immutable and safe for concurrent use.
// To rotate, build a new Keyring with the new key first (see
// docs/encryption.md).
type Keyring struct {
	keys []*ringKey // keys[0] is the primary
	byID map[string]*ringKey
}

type ringKey struct {
	id   string
	aead cipher.AEAD
}

var errInvalidKeyID = errors.New("id must be 1 to 64 characters from [A-Za-z0-9._-]")

// repeatedByteReason completes the message refusing a key that
// repeatedByte reports; it says nothing of which byte.
const repeatedByteReason = "is one byte value repeated 32 times, not a random key: generate one (see docs/encryption.md)"

// repeatedByte reports whether key is one byte value throughout, in time
// that does not depend on where it first differs.
func repeatedByte(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	var diff byte
	for _, b := range key {
		diff |= b ^ key[0]
	}
	return diff == 0
}

// NewKeyring returns a keyring holding keys; the first is the primary. It
// fails if keys is empty, an id is invalid or repeated, or a key is not 32
// bytes or is one byte value repeated (all zero, all 0x41, …: a
// placeholder, never a random key). It does not keep the callers' slices,
// which may be zeroed after.
func NewKeyring(keys ...MasterKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("crypto: keyring needs at least one master key")
	}
	k := &Keyring{byID: make(map[string]*ringKey, len(keys))}
	for i, mk := range keys {
		if !validKeyID(mk.ID) {
			return nil, fmt.Errorf("crypto: master key %d: %w", i, errInvalidKeyID)
		}
		if _, dup := k.byID[mk.ID]; dup {
			return nil, fmt.Errorf("crypto: duplicate master key id %q", mk.ID)
		}
		if len(mk.Key) != masterKeyBytes {
			return nil, fmt.Errorf("crypto: master key %q is %d bytes, want %d", mk.ID, len(mk.Key), masterKeyBytes)
		}
		if repeatedByte(mk.Key) {
			return nil, fmt.Errorf("crypto: master key %q %s", mk.ID, repeatedByteReason)
		}
		block, err := aes.NewCipher(mk.Key) // copies the key into its schedule
		if err != nil {
			return nil, fmt.Errorf("crypto: master key %q: %w", mk.ID, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("crypto: master key %q: %w", mk.ID, err)
		}
		rk := &ringKey{id: mk.ID, aead: aead}
		k.keys = append(k.keys, rk)
		k.byID[mk.ID] = rk
	}
	return k, nil
}

// ParseKeyring parses a keyring file: one key per line as "id:base64key",
// where base64key is standard base64 (with padding) of 32 bytes. The first
// key is the primary. Blank lines and lines whose first non-blank character
// is '#' are ignored; spaces and tabs around a line, an id or a key are
// trimmed, and CRLF line ends are accepted.
//
// Errors name the line number and the problem, and the id once it is known
// valid, but never any part of a key or of a line that failed to parse.
// The caller should Zero text when done with it.
func ParseKeyring(text []byte) (*Keyring, error) {
	var keys []MasterKey
	defer func() {
		for _, mk := range keys {
			Zero(mk.Key)
		}
	}()
	firstLine := map[string]int{}
	for n := 1; len(text) > 0; n++ {
		var line []byte
		line, text, _ = bytes.Cut(text, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		idText, keyText, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return nil, fmt.Errorf("crypto: keyring line %d: want id:base64key", n)
		}
		idText, keyText = bytes.TrimSpace(idText), bytes.TrimSpace(keyText)
		if !validKeyID(idText) {
			return nil, fmt.Errorf("crypto: keyring line %d: master key %w", n, errInvalidKeyID)
		}
		id := string(idText)
		if first, dup := firstLine[id]; dup {
			return nil, fmt.Errorf("crypto: keyring line %d: master key id %q already on line %d", n, id, first)
		}
		firstLine[id] = n
		key := make([]byte, base64.StdEncoding.DecodedLen(len(keyText)))
		m, err := base64.StdEncoding.Strict().Decode(key, keyText)
		// The decoder skips CR, which is not part of the format.
		if err != nil || bytes.IndexByte(keyText, '\r') >= 0 {
			Zero(key)
			return nil, fmt.Errorf("crypto: keyring line %d: key for %q is not standard base64", n, id)
		}
		if m != masterKeyBytes {
			Zero(key)
			return nil, fmt.Errorf("crypto: keyring line %d: key for %q is %d bytes, want %d", n, id, m, masterKeyBytes)
		}
		if repeatedByte(key[:m]) {
			Zero(key)
			return nil, fmt.Errorf("crypto: keyring line %d: key for %q %s", n, id, repeatedByteReason)
		}
		keys = append(keys, MasterKey{ID: id, Key: key[:m]})
	}
	if len(keys) == 0 {
		return nil, errors.New("crypto: keyring has no keys")
	}
	return NewKeyring(keys...)
}

// PrimaryID returns the id of the master key that Seal uses.
func (k *Keyring) PrimaryID() string {
	return k.primary().id
}

// IDs returns the ids of all master keys, primary first, in the order given.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, rk := range k.keys {
		ids[i] = rk.id
	}
	return ids
}

// Has reports whether the keyring holds the master key id.
func (k *Keyring) Has(id string) bool {
	_, ok := k.byID[id]
	return ok
}

func (k *Keyring) primary() *ringKey {
	return k.keys[0]
}

// validKeyID reports whether id is a valid master key id: 1 to 64
// characters from [A-Za-z0-9._-].
func validKeyID[T string | []byte](id T) bool {
	if len(id) < 1 || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !keyIDChar(id[i]) {
			return false
		}
	}
	return true
}

func keyIDChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
