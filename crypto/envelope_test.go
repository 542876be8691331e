package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := keyring(t, masterKey(t, "primary-2026"), masterKey(t, "old"))
	tests := []struct {
		name      string
		plaintext []byte
		kid       string
	}{
		{"empty", []byte{}, "kid"},
		{"one byte", []byte{0}, "kid"},
		{"private JWK", keyPairs(t)[0].PrivateJWK, keyPairs(t)[0].KID},
		{"large", bytes.Repeat([]byte("x"), 1<<20), "k"},
		{"kid with NUL and unicode", []byte("secret"), "a\x00b\u00e9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal(tt.plaintext, tt.kid)
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 + len("primary-2026") + 12 + len(tt.plaintext) + 16; len(sealed) != want {
				t.Errorf("sealed is %d bytes, want %d", len(sealed), want)
			}
			if len(tt.plaintext) > 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed contains plaintext")
			}
			got, err := k.Open(sealed, tt.kid)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Error("round trip changed the plaintext")
			}
		})
	}
}

func TestSealHeader(t *testing.T) {
	k := keyring(t, masterKey(t, "mk.2026_a-1"))
	sealed, err := k.Seal([]byte("x"), "kid")
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1, byte(len("mk.2026_a-1"))}, "mk.2026_a-1"...)
	if !bytes.HasPrefix(sealed, want) {
		t.Errorf("header %x, want %x", sealed[:len(want)], want)
	}
	if id, err := SealedBy(sealed); err != nil || id != "mk.2026_a-1" {
		t.Errorf("SealedBy = %q, %v", id, err)
	}
}

func TestSealRejectsEmptyKid(t *testing.T) {
	k := keyring(t, masterKey(t, "m"))
	if _, err := k.Seal([]byte("x"), ""); err == nil {
		t.Error("Seal with an empty kid succeeded")
	}
}

func TestSealFreshNonce(t *testing.T) {
	k := keyring(t, masterKey(t, "m"))
	pt := []byte("the same plaintext")
	a, _ := k.Seal(pt, "kid")
	b, _ := k.Seal(pt, "kid")
	if bytes.Equal(a, b) {
		t.Fatal("two seals are identical")
	}
	hdr := 2 + len("m")
	if bytes.Equal(a[hdr:hdr+12], b[hdr:hdr+12]) {
		t.Error("two seals share a nonce")
	}
}

// TestOpenDetectsEveryByteFlip changes each byte of an envelope in turn:
// header, nonce, ciphertext and tag are all authenticated.
func TestOpenDetectsEveryByteFlip(t *testing.T) {
	k := keyring(t, masterKey(t, "m-1"))
	sealed, err := k.Seal([]byte(`{"kty":"RSA","d":"secret"}`), "kid")
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			tampered := bytes.Clone(sealed)
			tampered[i] ^= mask
			pt, err := k.Open(tampered, "kid")
			if err == nil {
				t.Fatalf("byte %d ^ %#x: opened to %q", i, mask, pt)
			}
			var missing *MissingKeyError
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) && !errors.As(err, &missing) {
				t.Errorf("byte %d ^ %#x: unexpected error %v", i, mask, err)
			}
			if i >= 2+len("m-1") && !errors.Is(err, ErrDecrypt) {
				t.Errorf("byte %d (after the header) ^ %#x: %v, want ErrDecrypt", i, mask, err)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	mk := masterKey(t, "current")
	k := keyring(t, mk)
	sealed, err := k.Seal([]byte("plaintext-canary"), "kid-a")
	if err != nil {
		t.Fatal(err)
	}
	sameIDOtherKey := keyring(t, masterKey(t, "current"))
	without := keyring(t, masterKey(t, "other"))

	tests := []struct {
		name    string
		ring    *Keyring
		sealed  []byte
		kid     string
		wantErr error  // for errors.Is
		missing string // for errors.As *MissingKeyError
	}{
		{"wrong kid", k, sealed, "kid-b", ErrDecrypt, ""},
		{"kid prefix", k, sealed, "kid-", ErrDecrypt, ""},
		{"kid with suffix", k, sealed, "kid-a\x00", ErrDecrypt, ""},
		{"empty kid", k, sealed, "", ErrDecrypt, ""},
		{"wrong key, same id", sameIDOtherKey, sealed, "kid-a", ErrDecrypt, ""},
		{"key not in keyring", without, sealed, "kid-a", nil, "current"},
		{"truncated tag", k, sealed[:len(sealed)-1], "kid-a", ErrDecrypt, ""},
		{"extra byte", k, append(bytes.Clone(sealed), 0), "kid-a", ErrDecrypt, ""},
		{"header only", k, sealed[:2+len("current")], "kid-a", ErrMalformed, ""},
		{"minimum length, wrong bytes", k, sealed[:2+len("current")+12+16], "kid-a", ErrDecrypt, ""},
		{"one short of minimum", k, sealed[:2+len("current")+12+15], "kid-a", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.ring.Open(tt.sealed, tt.kid)
			if err == nil {
				t.Fatalf("opened to %q", pt)
			}
			if tt.missing != "" {
				var missing *MissingKeyError
				if !errors.As(err, &missing) || missing.ID != tt.missing {
					t.Fatalf("err = %v, want *MissingKeyError{%q}", err, tt.missing)
				}
				if want := `crypto: master key "` + tt.missing + `" is not in the keyring`; err.Error() != want {
					t.Errorf("message %q, want %q", err, want)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			assertNoSecret(t, err.Error(), []byte("plaintext-canary"), mk.Key)
		})
	}
}

// assertNoSecret fails if msg contains secret in raw, hex or base64 form.
func assertNoSecret(t *testing.T, msg string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range []string{
			string(s),
			hex.EncodeToString(s),
			strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s),
			base64.RawURLEncoding.EncodeToString(s),
		} {
			if len(form) >= 8 && strings.Contains(msg, form[:8]) {
				t.Errorf("%q contains secret material", msg)
			}
		}
	}
}

func TestMalformedEnvelopes(t *testing.T) {
	k := keyring(t, masterKey(t, "m"))
	body := make([]byte, 12+16)
	tests := []struct {
		name   string
		sealed []byte
		reason string
	}{
		{"nil", nil, "too short"},
		{"version only", []byte{1}, "too short"},
		{"version 0", append([]byte{0, 1, 'm'}, body...), "unsupported format version 0"},
		{"version 2", append([]byte{2, 1, 'm'}, body...), "unsupported format version 2"},
		{"version 255", append([]byte{255, 1, 'm'}, body...), "unsupported format version 255"},
		{"id length 0", append([]byte{1, 0}, body...), "length 0"},
		{"id length 65", append(append([]byte{1, 65}, strings.Repeat("m", 65)...), body...), "length 65"},
		{"id length 255", append([]byte{1, 255}, bytes.Repeat([]byte{'m'}, 300)...), "length 255"},
		{"truncated id", []byte{1, 10, 'm', 'm'}, "truncated master key id"},
		{"id with space", append([]byte{1, 2, 'm', ' '}, body...), "characters outside"},
		{"id with colon", append([]byte{1, 2, 'm', ':'}, body...), "characters outside"},
		{"id with NUL", append([]byte{1, 2, 'm', 0}, body...), "characters outside"},
		{"no nonce", []byte{1, 1, 'm'}, "truncated ciphertext"},
		{"short tag", append([]byte{1, 1, 'm'}, body[:27]...), "truncated ciphertext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Open(tt.sealed, "kid")
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open: %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Open: %q does not give the reason %q", err, tt.reason)
			}
			if id, err := SealedBy(tt.sealed); !errors.Is(err, ErrMalformed) || id != "" {
				t.Errorf("SealedBy = %q, %v, want ErrMalformed", id, err)
			}
			if _, _, err := k.Rewrap(tt.sealed, "kid"); !errors.Is(err, ErrMalformed) {
				t.Errorf("Rewrap: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestOpenWithOlderKey(t *testing.T) {
	oldKey, newKey := masterKey(t, "old"), masterKey(t, "new")
	sealed, err := keyring(t, oldKey).Seal([]byte("secret"), "kid")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := keyring(t, newKey, oldKey).Open(sealed, "kid")
	if err != nil || string(pt) != "secret" {
		t.Errorf("Open = %q, %v", pt, err)
	}
}

func TestRewrap(t *testing.T) {
	oldKey, newKey := masterKey(t, "old-2025"), masterKey(t, "new-2026")
	plaintext := []byte("private jwk")
	sealed, err := keyring(t, oldKey).Seal(plaintext, "kid")
	if err != nil {
		t.Fatal(err)
	}
	rotating := keyring(t, newKey, oldKey)

	next, changed, err := rotating.Rewrap(sealed, "kid")
	if err != nil || !changed {
		t.Fatalf("Rewrap = changed %v, %v; want changed", changed, err)
	}
	if id, _ := SealedBy(next); id != "new-2026" {
		t.Errorf("rewrapped envelope is sealed by %q", id)
	}
	// Once every row is rewrapped, the old key can go.
	pt, err := keyring(t, newKey).Open(next, "kid")
	if err != nil || !bytes.Equal(pt, plaintext) {
		t.Fatalf("Open after Rewrap = %q, %v", pt, err)
	}

	again, changed, err := rotating.Rewrap(next, "kid")
	if err != nil || changed {
		t.Fatalf("second Rewrap = changed %v, %v; want unchanged", changed, err)
	}
	if &again[0] != &next[0] {
		t.Error("unchanged Rewrap did not return its input")
	}

	// Rewrap authenticates even when it has nothing to do.
	tampered := bytes.Clone(next)
	tampered[len(tampered)-1] ^= 1
	if _, _, err := rotating.Rewrap(tampered, "kid"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap of a tampered envelope: %v, want ErrDecrypt", err)
	}
	if _, _, err := rotating.Rewrap(sealed, "other-kid"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap with the wrong kid: %v, want ErrDecrypt", err)
	}
	var missing *MissingKeyError
	if _, _, err := keyring(t, newKey).Rewrap(sealed, "kid"); !errors.As(err, &missing) || missing.ID != "old-2025" {
		t.Errorf("Rewrap without the old key: %v, want *MissingKeyError{old-2025}", err)
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	k := keyring(t, masterKey(t, "a"), masterKey(t, "b"))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			kid := string(rune('a' + g))
			for range 50 {
				sealed, err := k.Seal([]byte(kid), kid)
				if err != nil {
					t.Error(err)
					return
				}
				pt, err := k.Open(sealed, kid)
				if err != nil || string(pt) != kid {
					t.Errorf("Open = %q, %v", pt, err)
					return
				}
				if _, changed, err := k.Rewrap(sealed, kid); err != nil || changed {
					t.Errorf("Rewrap = %v, %v", changed, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
