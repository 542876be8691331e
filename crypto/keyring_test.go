package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestGenerateMasterKey(t *testing.T) {
	a, b := masterKey(t, "a"), masterKey(t, "a")
	if len(a.Key) != 32 || a.ID != "a" {
		t.Errorf("got id %q and %d key bytes", a.ID, len(a.Key))
	}
	if bytes.Equal(a.Key, b.Key) {
		t.Error("two generated keys are equal")
	}
	for _, id := range []string{"", strings.Repeat("x", 65), "a b", "a:b", "ключ", "a/b", "a\n"} {
		if _, err := GenerateMasterKey(id); err == nil {
			t.Errorf("GenerateMasterKey(%q) accepted the id", id)
		}
	}
	if _, err := GenerateMasterKey(strings.Repeat("x", 64)); err != nil {
		t.Errorf("64-character id: %v", err)
	}
}

// TestRepeatedByteKeys: a key that is one byte value throughout is refused
// however it arrives, and keys that differ in a single byte are not.
func TestRepeatedByteKeys(t *testing.T) {
	for _, b := range []byte{0x00, 0x41, 0xff} {
		key := bytes.Repeat([]byte{b}, 32)
		if !repeatedByte(key) {
			t.Errorf("repeatedByte(32 x %#x) = false", b)
		}
		for _, i := range []int{0, 15, 31} {
			other := bytes.Clone(key)
			other[i] ^= 1
			if repeatedByte(other) {
				t.Errorf("repeatedByte(32 x %#x, byte %d changed) = true", b, i)
			}
			if _, err := NewKeyring(MasterKey{ID: "k", Key: other}); err != nil {
				t.Errorf("NewKeyring refused a key that is not one repeated byte: %v", err)
			}
		}
	}
	if repeatedByte(nil) {
		t.Error("repeatedByte(nil) = true")
	}
}

func TestNewKeyring(t *testing.T) {
	a, b, c := masterKey(t, "a"), masterKey(t, "b.2026"), masterKey(t, "c_x-1")
	k := keyring(t, b, a, c)
	if got := k.PrimaryID(); got != "b.2026" {
		t.Errorf("PrimaryID = %q", got)
	}
	ids := k.IDs()
	if want := []string{"b.2026", "a", "c_x-1"}; !slices.Equal(ids, want) {
		t.Errorf("IDs = %v, want %v", ids, want)
	}
	ids[0] = "changed"
	if k.IDs()[0] != "b.2026" {
		t.Error("IDs exposes the keyring's slice")
	}
	for id, want := range map[string]bool{"a": true, "b.2026": true, "c_x-1": true, "d": false, "": false} {
		if k.Has(id) != want {
			t.Errorf("Has(%q) = %v", id, !want)
		}
	}

	// The keyring keeps no reference to the caller's key bytes.
	sealed, _ := k.Seal([]byte("x"), "kid", regA)
	Zero(b.Key)
	if _, err := k.Open(sealed, "kid", regA); err != nil {
		t.Errorf("Open after zeroing the caller's key: %v", err)
	}
}

func TestNewKeyringRejects(t *testing.T) {
	good := masterKey(t, "good")
	tests := []struct {
		name string
		keys []MasterKey
		want string
	}{
		{"none", nil, "at least one"},
		{"duplicate id", []MasterKey{good, masterKey(t, "good")}, `duplicate master key id "good"`},
		{"empty id", []MasterKey{{ID: "", Key: good.Key}}, "master key 0"},
		{"long id", []MasterKey{good, {ID: strings.Repeat("k", 65), Key: good.Key}}, "master key 1"},
		{"id with colon", []MasterKey{{ID: "a:b", Key: good.Key}}, "[A-Za-z0-9._-]"},
		{"short key", []MasterKey{{ID: "k", Key: good.Key[:16]}}, "16 bytes, want 32"},
		{"long key", []MasterKey{{ID: "k", Key: append(bytes.Clone(good.Key), 0)}}, "33 bytes, want 32"},
		{"nil key", []MasterKey{{ID: "k"}}, "0 bytes, want 32"},
		{"all zero", []MasterKey{good, {ID: "zero-1", Key: make([]byte, 32)}}, `master key "zero-1" is one byte value repeated 32 times`},
		{"all 0x41", []MasterKey{{ID: "aaa.2026", Key: bytes.Repeat([]byte{0x41}, 32)}}, `master key "aaa.2026" is one byte value repeated 32 times`},
		{"all 0xff", []MasterKey{{ID: "ones", Key: bytes.Repeat([]byte{0xff}, 32)}}, `master key "ones" is one byte value repeated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.keys...)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			assertNoSecret(t, err.Error(), good.Key)
		})
	}
}

func TestParseKeyring(t *testing.T) {
	a, b := masterKey(t, "new-2026"), masterKey(t, "old-2025")
	text := "# ltikeys master keys; the first is the primary\n" +
		"\n" +
		"  " + a.Line() + "  \r\n" +
		"\t# retired after rewrap\n" +
		"old-2025 : " + strings.TrimPrefix(b.Line(), "old-2025:") + "\n" +
		"   \n"
	k, err := ParseKeyring([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if ids := k.IDs(); !slices.Equal(ids, []string{"new-2026", "old-2025"}) {
		t.Errorf("IDs = %v", ids)
	}
	// The parsed keys are the same keys.
	sealed, _ := keyring(t, b).Seal([]byte("x"), "kid", regA)
	if _, err := k.Open(sealed, "kid", regA); err != nil {
		t.Errorf("parsed keyring cannot open: %v", err)
	}

	// Line round-trips, with or without a final newline.
	for _, text := range []string{a.Line(), a.Line() + "\n"} {
		k, err := ParseKeyring([]byte(text))
		if err != nil || k.PrimaryID() != a.ID {
			t.Errorf("ParseKeyring(Line()) = %v", err)
		}
	}
	if !strings.HasPrefix(a.Line(), "new-2026:") || len(a.Line()) != len("new-2026:")+44 {
		t.Errorf("Line has the wrong shape (%d characters)", len(a.Line()))
	}
}

func TestParseKeyringErrors(t *testing.T) {
	mk := masterKey(t, "k1")
	key := base64.StdEncoding.EncodeToString(mk.Key)
	short := base64.StdEncoding.EncodeToString(mk.Key[:31])
	long := base64.StdEncoding.EncodeToString(append(bytes.Clone(mk.Key), mk.Key[:8]...))
	tests := []struct {
		name string
		text string
		want string
	}{
		{"empty", "", "no keys"},
		{"only comments", "# a\n\n  # b\n", "no keys"},
		{"no colon", "# c\n" + key + "\n", "line 2: want id:base64key"},
		{"empty id", ":" + key, "line 1: master key id must be"},
		{"bad id", "k 1:" + key, "line 1: master key id must be"},
		{"key as id", key + ":" + key, "line 1: master key id must be"},
		{"duplicate id", "k1:" + key + "\n\nk1:" + key, `line 3: master key id "k1" already on line 1`},
		{"url-safe base64", "k1:" + strings.NewReplacer("+", "-", "/", "_").Replace(key) + "-_", `line 1: key for "k1" is not standard base64`},
		{"unpadded", "k1:" + strings.TrimRight(key, "="), `key for "k1" is not standard base64`},
		{"space inside key", "k1:" + key[:20] + " " + key[20:], `key for "k1" is not standard base64`},
		{"CR inside key", "k1:" + key[:20] + "\r" + key[20:], `key for "k1" is not standard base64`},
		{"inline comment", "k1:" + key + " # primary", `key for "k1" is not standard base64`},
		{"31 bytes", "k1:" + short, `line 1: key for "k1" is 31 bytes, want 32`},
		{"40 bytes", "\n\nk1:" + long, `line 3: key for "k1" is 40 bytes, want 32`},
		{"empty key", "k1:", `line 1: key for "k1" is 0 bytes, want 32`},
		{"good then bad", mk.Line() + "\nk2:" + short, "line 2:"},
		{"all zero", mk.Line() + "\nzero-1:" + strings.Repeat("A", 43) + "=", `line 2: key for "zero-1" is one byte value repeated 32 times, not a random key`},
		{"all 0x41", "\nk-41:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x41}, 32)), `line 2: key for "k-41" is one byte value repeated 32 times, not a random key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyring([]byte(tt.text))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			assertNoSecret(t, msg, mk.Key)
			for _, part := range []string{key, short, long} {
				if strings.Contains(msg, part[:8]) {
					t.Errorf("error %q contains key text", msg)
				}
			}
		})
	}
}

// TestMasterKeyDoesNotLeak prints and logs a MasterKey every way a careless
// caller might.
func TestMasterKeyDoesNotLeak(t *testing.T) {
	mk := masterKey(t, "prod-1")
	type config struct {
		Listen string
		Master MasterKey
		Ptr    *MasterKey
	}
	cfg := config{Listen: ":8080", Master: mk, Ptr: &mk}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, mk),
			fmt.Sprintf(verb, &mk),
			fmt.Sprintf(verb, cfg),
			fmt.Sprintf(verb, []MasterKey{mk}))
	}
	outputs = append(outputs, fmt.Sprint(mk), fmt.Sprintln(mk), mk.String(), mk.GoString())

	for _, handler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		logger := slog.New(handler(&buf))
		logger.Info("loaded", "key", mk, "ptr", &mk, "cfg", cfg, slog.Any("any", mk))
		outputs = append(outputs, buf.String())
	}

	if _, err := json.Marshal(mk); err == nil {
		t.Error("json.Marshal(MasterKey) succeeded")
	}
	if _, err := json.Marshal(cfg); err == nil {
		t.Error("json.Marshal of a struct holding a MasterKey succeeded")
	}

	for _, out := range outputs {
		assertNoSecret(t, out, mk.Key)
		// fmt's rendering of a byte slice: [12 200 ...]
		if strings.Contains(out, fmt.Sprint(mk.Key[:4])[1:10]) {
			t.Errorf("output shows key bytes: %q", out)
		}
		if !strings.Contains(out, "prod-1") {
			t.Errorf("output does not name the key: %q", out)
		}
	}
	if got := mk.String(); got != "MasterKey(prod-1)" {
		t.Errorf("String = %q", got)
	}
	if got := fmt.Sprintf("%#v", mk); got != `crypto.MasterKey{ID:"prod-1", Key:REDACTED}` {
		t.Errorf("%%#v = %q", got)
	}
}
