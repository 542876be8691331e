package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ltikeys/ltikeys/crypto/cryptotest"
)

// Registration ids the tests bind envelopes to.
const (
	regA = "0190a5c0-0000-7000-8000-00000000000a"
	regB = "0190a5c0-0000-7000-8000-00000000000b"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := keyring(t, masterKey(t, "primary-2026"), masterKey(t, "old"))
	tests := []struct {
		name      string
		plaintext []byte
		kid, reg  string
	}{
		{"empty", []byte{}, "kid", regA},
		{"one byte", []byte{0}, "kid", regA},
		{"private JWK", keyPairs(t)[0].PrivateJWK, keyPairs(t)[0].KID, regB},
		{"large", bytes.Repeat([]byte("x"), 1<<20), "k", "r"},
		{"kid with NUL and unicode", []byte("secret"), "a\x00b\u00e9", regA},
		{"registration id with NUL and unicode", []byte("secret"), "kid", "r\x00\u00e9"},
		{"longest kid and registration id", []byte("secret"), strings.Repeat("k", 1<<16-1), strings.Repeat("r", 1<<16-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal(tt.plaintext, tt.kid, tt.reg)
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 + len("primary-2026") + 12 + len(tt.plaintext) + 16; len(sealed) != want {
				t.Errorf("sealed is %d bytes, want %d", len(sealed), want)
			}
			if len(tt.plaintext) > 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed contains plaintext")
			}
			if v, err := FormatVersion(sealed); err != nil || v != 2 {
				t.Errorf("FormatVersion = %d, %v; want 2", v, err)
			}
			got, err := k.Open(sealed, tt.kid, tt.reg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Error("round trip changed the plaintext")
			}
			if _, err := k.Open(sealed, tt.kid, tt.reg+"x"); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open with another registration id: %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestSealHeader(t *testing.T) {
	k := keyring(t, masterKey(t, "mk.2026_a-1"))
	sealed, err := k.Seal([]byte("x"), "kid", regA)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{2, byte(len("mk.2026_a-1"))}, "mk.2026_a-1"...)
	if !bytes.HasPrefix(sealed, want) {
		t.Errorf("header %x, want %x", sealed[:len(want)], want)
	}
	if id, err := SealedBy(sealed); err != nil || id != "mk.2026_a-1" {
		t.Errorf("SealedBy = %q, %v", id, err)
	}
}

func TestSealRejectsBadBinding(t *testing.T) {
	k := keyring(t, masterKey(t, "m"))
	long := strings.Repeat("x", 1<<16)
	for _, tt := range []struct{ name, kid, reg string }{
		{"empty kid", "", regA},
		{"empty registration id", "kid", ""},
		{"kid too long", long, regA},
		{"registration id too long", "kid", long},
	} {
		if sealed, err := k.Seal([]byte("x"), tt.kid, tt.reg); err == nil {
			t.Errorf("%s: Seal succeeded (%d bytes)", tt.name, len(sealed))
		}
		if _, err := k.Open(append([]byte{2, 1, 'm'}, make([]byte, 28)...), tt.kid, tt.reg); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: Open = %v, want ErrDecrypt", tt.name, err)
		}
	}
}

func TestSealFreshNonce(t *testing.T) {
	k := keyring(t, masterKey(t, "m"))
	pt := []byte("the same plaintext")
	a, _ := k.Seal(pt, "kid", regA)
	b, _ := k.Seal(pt, "kid", regA)
	if bytes.Equal(a, b) {
		t.Fatal("two seals are identical")
	}
	hdr := 2 + len("m")
	if bytes.Equal(a[hdr:hdr+12], b[hdr:hdr+12]) {
		t.Error("two seals share a nonce")
	}
}

// TestOpenDetectsEveryByteFlip changes each byte of an envelope in turn:
// header, nonce, ciphertext and tag are all authenticated, in both formats.
func TestOpenDetectsEveryByteFlip(t *testing.T) {
	k := keyring(t, masterKey(t, "m-1"), fixtureKey())
	v2, err := k.Seal([]byte(`{"kty":"RSA","d":"secret"}`), "kid", regA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		sealed []byte
		kid    string
	}{
		{"version 2", v2, "kid"},
		{"version 1", fixtureV1(t), fixtureKID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			headerLen := 2 + int(tt.sealed[1])
			for i := range tt.sealed {
				for _, mask := range []byte{0x01, 0x03, 0x80, 0xff} {
					tampered := bytes.Clone(tt.sealed)
					tampered[i] ^= mask
					pt, err := k.Open(tampered, tt.kid, regA)
					if err == nil {
						t.Fatalf("byte %d ^ %#x: opened to %q", i, mask, pt)
					}
					var missing *MissingKeyError
					if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) && !errors.As(err, &missing) {
						t.Errorf("byte %d ^ %#x: unexpected error %v", i, mask, err)
					}
					if i >= headerLen && !errors.Is(err, ErrDecrypt) {
						t.Errorf("byte %d (after the header) ^ %#x: %v, want ErrDecrypt", i, mask, err)
					}
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	mk := masterKey(t, "current")
	k := keyring(t, mk)
	sealed, err := k.Seal([]byte("plaintext-canary"), "kid-a", "reg-1")
	if err != nil {
		t.Fatal(err)
	}
	sameIDOtherKey := keyring(t, masterKey(t, "current"))
	without := keyring(t, masterKey(t, "other"))
	downgraded := bytes.Clone(sealed)
	downgraded[0] = 1

	tests := []struct {
		name    string
		ring    *Keyring
		sealed  []byte
		kid     string
		reg     string
		wantErr error  // for errors.Is
		missing string // for errors.As *MissingKeyError
	}{
		{"wrong kid", k, sealed, "kid-b", "reg-1", ErrDecrypt, ""},
		{"kid prefix", k, sealed, "kid-", "reg-1", ErrDecrypt, ""},
		{"kid with suffix", k, sealed, "kid-a\x00", "reg-1", ErrDecrypt, ""},
		{"empty kid", k, sealed, "", "reg-1", ErrDecrypt, ""},
		{"wrong registration", k, sealed, "kid-a", "reg-2", ErrDecrypt, ""},
		{"registration prefix", k, sealed, "kid-a", "reg-", ErrDecrypt, ""},
		{"registration with suffix", k, sealed, "kid-a", "reg-1\x00", ErrDecrypt, ""},
		{"empty registration", k, sealed, "kid-a", "", ErrDecrypt, ""},
		{"kid and registration swapped", k, sealed, "reg-1", "kid-a", ErrDecrypt, ""},
		{"boundary moved into the registration", k, sealed, "kid-", "areg-1", ErrDecrypt, ""},
		{"boundary moved into the kid", k, sealed, "kid-ar", "eg-1", ErrDecrypt, ""},
		{"downgraded to version 1", k, downgraded, "kid-a", "reg-1", ErrDecrypt, ""},
		{"wrong key, same id", sameIDOtherKey, sealed, "kid-a", "reg-1", ErrDecrypt, ""},
		{"key not in keyring", without, sealed, "kid-a", "reg-1", nil, "current"},
		{"truncated tag", k, sealed[:len(sealed)-1], "kid-a", "reg-1", ErrDecrypt, ""},
		{"extra byte", k, append(bytes.Clone(sealed), 0), "kid-a", "reg-1", ErrDecrypt, ""},
		{"header only", k, sealed[:2+len("current")], "kid-a", "reg-1", ErrMalformed, ""},
		{"minimum length, wrong bytes", k, sealed[:2+len("current")+12+16], "kid-a", "reg-1", ErrDecrypt, ""},
		{"one short of minimum", k, sealed[:2+len("current")+12+15], "kid-a", "reg-1", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.ring.Open(tt.sealed, tt.kid, tt.reg)
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
		{"version 3", append([]byte{3, 1, 'm'}, body...), "unsupported format version 3"},
		{"version 255", append([]byte{255, 1, 'm'}, body...), "unsupported format version 255"},
		{"id length 0", append([]byte{1, 0}, body...), "length 0"},
		{"version 2, id length 0", append([]byte{2, 0}, body...), "length 0"},
		{"version 2, id with colon", append([]byte{2, 2, 'm', ':'}, body...), "characters outside"},
		{"version 2, short tag", append([]byte{2, 1, 'm'}, body[:27]...), "truncated ciphertext"},
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
			_, err := k.Open(tt.sealed, "kid", regA)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open: %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Open: %q does not give the reason %q", err, tt.reason)
			}
			if id, err := SealedBy(tt.sealed); !errors.Is(err, ErrMalformed) || id != "" {
				t.Errorf("SealedBy = %q, %v, want ErrMalformed", id, err)
			}
			if v, err := FormatVersion(tt.sealed); !errors.Is(err, ErrMalformed) || v != 0 {
				t.Errorf("FormatVersion = %d, %v, want ErrMalformed", v, err)
			}
			if _, _, err := k.Rewrap(tt.sealed, "kid", regA); !errors.Is(err, ErrMalformed) {
				t.Errorf("Rewrap: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestOpenWithOlderKey(t *testing.T) {
	oldKey, newKey := masterKey(t, "old"), masterKey(t, "new")
	sealed, err := keyring(t, oldKey).Seal([]byte("secret"), "kid", regA)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := keyring(t, newKey, oldKey).Open(sealed, "kid", regA)
	if err != nil || string(pt) != "secret" {
		t.Errorf("Open = %q, %v", pt, err)
	}
}

func TestRewrap(t *testing.T) {
	oldKey, newKey := masterKey(t, "old-2025"), masterKey(t, "new-2026")
	plaintext := []byte("private jwk")
	sealed, err := keyring(t, oldKey).Seal(plaintext, "kid", regA)
	if err != nil {
		t.Fatal(err)
	}
	rotating := keyring(t, newKey, oldKey)

	next, changed, err := rotating.Rewrap(sealed, "kid", regA)
	if err != nil || !changed {
		t.Fatalf("Rewrap = changed %v, %v; want changed", changed, err)
	}
	if id, _ := SealedBy(next); id != "new-2026" {
		t.Errorf("rewrapped envelope is sealed by %q", id)
	}
	// Once every row is rewrapped, the old key can go.
	pt, err := keyring(t, newKey).Open(next, "kid", regA)
	if err != nil || !bytes.Equal(pt, plaintext) {
		t.Fatalf("Open after Rewrap = %q, %v", pt, err)
	}
	if _, err := keyring(t, newKey).Open(next, "kid", regB); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open of the rewrapped envelope with another registration: %v, want ErrDecrypt", err)
	}

	again, changed, err := rotating.Rewrap(next, "kid", regA)
	if err != nil || changed {
		t.Fatalf("second Rewrap = changed %v, %v; want unchanged", changed, err)
	}
	if &again[0] != &next[0] {
		t.Error("unchanged Rewrap did not return its input")
	}

	// Rewrap authenticates even when it has nothing to do.
	tampered := bytes.Clone(next)
	tampered[len(tampered)-1] ^= 1
	if _, _, err := rotating.Rewrap(tampered, "kid", regA); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap of a tampered envelope: %v, want ErrDecrypt", err)
	}
	if _, _, err := rotating.Rewrap(sealed, "other-kid", regA); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap with the wrong kid: %v, want ErrDecrypt", err)
	}
	if _, _, err := rotating.Rewrap(sealed, "kid", regB); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap with the wrong registration: %v, want ErrDecrypt", err)
	}
	if _, _, err := rotating.Rewrap(next, "kid", regB); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap of a current envelope with the wrong registration: %v, want ErrDecrypt", err)
	}
	var missing *MissingKeyError
	if _, _, err := keyring(t, newKey).Rewrap(sealed, "kid", regA); !errors.As(err, &missing) || missing.ID != "old-2025" {
		t.Errorf("Rewrap without the old key: %v, want *MissingKeyError{old-2025}", err)
	}
}

// fixtureKID and fixturePlaintext are what fixtureV1 seals.
const (
	fixtureKID       = "kid-v1"
	fixturePlaintext = `{"kty":"RSA","d":"v1 fixture"}`
)

// fixtureKey returns the master key fixtureV1 is sealed under: "fixture-v1",
// the bytes 0, 1, …, 31.
func fixtureKey() MasterKey {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return MasterKey{ID: "fixture-v1", Key: key}
}

// fixtureV1 returns a version 1 envelope as the release before version 2
// sealed it: fixturePlaintext under fixtureKey, bound to fixtureKID.
func fixtureV1(t testing.TB) []byte {
	t.Helper()
	b, err := hex.DecodeString("010a666978747572652d7631309827df29da8d3bb657bfa25574f2b58d516b7ac7840ac2329b55e19205e06d326eee69b7e942e66f5f49b65301768e9b5650d33e4791245551")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenVersion1 opens envelopes that rows sealed before version 2 hold:
// bound to their kid, and to no registration.
func TestOpenVersion1(t *testing.T) {
	k := keyring(t, masterKey(t, "new"), fixtureKey())
	v1 := fixtureV1(t)
	if v, err := FormatVersion(v1); err != nil || v != 1 {
		t.Fatalf("FormatVersion = %d, %v; want 1", v, err)
	}
	for _, reg := range []string{regA, regB, ""} {
		pt, err := k.Open(v1, fixtureKID, reg)
		if err != nil || string(pt) != fixturePlaintext {
			t.Errorf("Open with registration %q = %q, %v", reg, pt, err)
		}
	}
	if _, err := k.Open(v1, "kid-v2", regA); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with another kid: %v, want ErrDecrypt", err)
	}
	// A version 1 envelope relabelled version 2 does not open: the version
	// is in the associated data, and so is a different domain.
	relabelled := bytes.Clone(v1)
	relabelled[0] = 2
	if _, err := k.Open(relabelled, fixtureKID, regA); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open of a version 1 envelope labelled 2: %v, want ErrDecrypt", err)
	}

	// cryptotest writes the same format.
	mk := masterKey(t, "other")
	sealed, err := cryptotest.SealV1(mk.ID, mk.Key, []byte("secret"), "kid")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := keyring(t, mk).Open(sealed, "kid", regA); err != nil || string(pt) != "secret" {
		t.Errorf("Open of cryptotest.SealV1's envelope = %q, %v", pt, err)
	}
	if v, err := FormatVersion(sealed); err != nil || v != 1 {
		t.Errorf("FormatVersion of cryptotest.SealV1's envelope = %d, %v", v, err)
	}
}

// TestRewrapUpgradesVersion1: Rewrap turns a version 1 envelope into a
// version 2 one bound to the registration it is given, whether or not its
// master key changes, and is then idempotent.
func TestRewrapUpgradesVersion1(t *testing.T) {
	for _, tt := range []struct {
		name    string
		k       *Keyring
		primary string
	}{
		{"under the primary key", keyring(t, fixtureKey()), "fixture-v1"},
		{"under an older key", keyring(t, masterKey(t, "new-2026"), fixtureKey()), "new-2026"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v1 := fixtureV1(t)
			next, changed, err := tt.k.Rewrap(v1, fixtureKID, regA)
			if err != nil || !changed {
				t.Fatalf("Rewrap = changed %v, %v; want changed", changed, err)
			}
			if !bytes.Equal(v1, fixtureV1(t)) {
				t.Error("Rewrap modified its input")
			}
			if v, err := FormatVersion(next); err != nil || v != 2 {
				t.Errorf("FormatVersion after Rewrap = %d, %v; want 2", v, err)
			}
			if id, _ := SealedBy(next); id != tt.primary {
				t.Errorf("rewrapped envelope is sealed by %q, want %q", id, tt.primary)
			}
			pt, err := tt.k.Open(next, fixtureKID, regA)
			if err != nil || string(pt) != fixturePlaintext {
				t.Fatalf("Open after Rewrap = %q, %v", pt, err)
			}
			// Now bound to its registration.
			if _, err := tt.k.Open(next, fixtureKID, regB); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open of the upgraded envelope with another registration: %v, want ErrDecrypt", err)
			}
			again, changed, err := tt.k.Rewrap(next, fixtureKID, regA)
			if err != nil || changed || &again[0] != &next[0] {
				t.Errorf("second Rewrap = changed %v, %v; want its input unchanged", changed, err)
			}
			// Without a registration to bind it to, there is no upgrade.
			if _, changed, err := tt.k.Rewrap(v1, fixtureKID, ""); err == nil || changed {
				t.Errorf("Rewrap of version 1 with no registration id = changed %v, %v; want an error", changed, err)
			}
		})
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	k := keyring(t, masterKey(t, "a"), masterKey(t, "b"))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			kid := string(rune('a' + g))
			for range 50 {
				sealed, err := k.Seal([]byte(kid), kid, regA)
				if err != nil {
					t.Error(err)
					return
				}
				pt, err := k.Open(sealed, kid, regA)
				if err != nil || string(pt) != kid {
					t.Errorf("Open = %q, %v", pt, err)
					return
				}
				if _, changed, err := k.Rewrap(sealed, kid, regA); err != nil || changed {
					t.Errorf("Rewrap = %v, %v", changed, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
