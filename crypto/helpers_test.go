package crypto

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"
)

// RSA generation costs ~100ms per 2048-bit key (more under -race), so the
// tests share a few.
var sharedKeyPairs = sync.OnceValues(func() ([]KeyPair, error) {
	pairs := make([]KeyPair, 3)
	for i := range pairs {
		kp, err := GenerateKeyPair(2048)
		if err != nil {
			return nil, err
		}
		pairs[i] = kp
	}
	return pairs, nil
})

// keyPairs returns three 2048-bit key pairs shared by all tests. Tests must
// not modify them.
func keyPairs(t testing.TB) []KeyPair {
	t.Helper()
	pairs, err := sharedKeyPairs()
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	return pairs
}

func masterKey(t testing.TB, id string) MasterKey {
	t.Helper()
	mk, err := GenerateMasterKey(id)
	if err != nil {
		t.Fatalf("GenerateMasterKey(%q): %v", id, err)
	}
	return mk
}

func keyring(t testing.TB, keys ...MasterKey) *Keyring {
	t.Helper()
	k, err := NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

// members decodes a JSON object into its members.
func members(t testing.TB, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	return m
}

// withMember returns the JSON object b with member name set to the JSON
// value raw.
func withMember(t testing.TB, b []byte, name, raw string) []byte {
	t.Helper()
	m := members(t, b)
	m[name] = json.RawMessage(raw)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutMember returns the JSON object b without member name.
func withoutMember(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	m := members(t, b)
	delete(m, name)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// memberNames returns the sorted member names of the JSON object b.
func memberNames(t testing.TB, b []byte) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(members(t, b)))
}
