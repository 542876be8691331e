package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ltikeys/ltikeys/crypto/cryptotest"
)

// FuzzOpen feeds arbitrary bytes to every function that parses an
// envelope. None may panic, and they must agree on what is malformed.
// Without -fuzz, go test runs the seeds below.
func FuzzOpen(f *testing.F) {
	current, old := masterKey(f, "current"), masterKey(f, "old-2025")
	k := keyring(f, current, old, fixtureKey())
	valid, err := k.Seal([]byte(`{"kty":"RSA","d":"x"}`), "kid", regA)
	if err != nil {
		f.Fatal(err)
	}
	underOld, err := keyring(f, old).Seal([]byte("secret"), "kid", regA)
	if err != nil {
		f.Fatal(err)
	}
	empty, err := k.Seal(nil, "kid", regA)
	if err != nil {
		f.Fatal(err)
	}
	v1 := fixtureV1(f)
	v1UnderPrimary, err := cryptotest.SealV1(current.ID, current.Key, []byte("secret"), "kid")
	if err != nil {
		f.Fatal(err)
	}
	body := bytes.Repeat([]byte{0xAA}, 12+16)

	f.Add(valid, "kid", regA)
	f.Add(valid, "other", regA)
	f.Add(valid, "kid", regB)
	f.Add(valid, "kid", "")
	f.Add(valid, "ki", "d"+regA)
	f.Add(underOld, "kid", regA)
	f.Add(empty, "kid", regA)
	f.Add(v1, fixtureKID, regA)
	f.Add(v1, fixtureKID, "")
	f.Add(v1, "other", regA)
	f.Add(v1UnderPrimary, "kid", regB)
	f.Add(append([]byte{2}, v1[1:]...), fixtureKID, regA) // version 1 relabelled 2
	f.Add(append([]byte{1}, valid[1:]...), "kid", regA)   // version 2 relabelled 1
	f.Add(valid[:len(valid)-1], "kid", regA)
	f.Add(valid[:2+len("current")+12+16], "kid", regA)
	f.Add(valid[:2+len("current")], "kid", regA)
	f.Add(valid[:5], "kid", regA)
	f.Add([]byte{}, "", "")
	f.Add([]byte{1}, "kid", regA)
	f.Add([]byte{2}, "kid", regA)
	f.Add(append([]byte{0, 7}, valid[2:]...), "kid", regA)   // version 0
	f.Add(append([]byte{3, 7}, valid[2:]...), "kid", regA)   // version 3
	f.Add(append([]byte{2, 255}, valid[2:]...), "kid", regA) // id longer than the input
	f.Add(append([]byte{1, 65}, bytes.Repeat([]byte{'a'}, 200)...), "kid", regA)
	f.Add(append([]byte{2, 0}, body...), "kid", regA)
	f.Add(append([]byte{2, 7, 'm', 'i', 's', 's', 'i', 'n', 'g'}, body...), "kid", regA)
	f.Add(append([]byte{1, 2, 0xff, 0xfe}, body...), "kid", regA)
	f.Add(append([]byte{2, 1, 'm'}, body...), strings.Repeat("k", 1<<16), regA)

	f.Fuzz(func(t *testing.T, sealed []byte, kid, reg string) {
		input := bytes.Clone(sealed)
		id, headerErr := SealedBy(sealed)
		version, versionErr := FormatVersion(sealed)
		pt, openErr := k.Open(sealed, kid, reg)
		next, changed, rewrapErr := k.Rewrap(sealed, kid, reg)
		if !bytes.Equal(sealed, input) {
			t.Fatal("input modified")
		}

		if headerErr != nil {
			if !errors.Is(headerErr, ErrMalformed) || id != "" || !errors.Is(versionErr, ErrMalformed) || version != 0 {
				t.Fatalf("SealedBy = %q, %v; FormatVersion = %d, %v", id, headerErr, version, versionErr)
			}
			if !errors.Is(openErr, ErrMalformed) || !errors.Is(rewrapErr, ErrMalformed) {
				t.Fatalf("SealedBy says malformed (%v), Open says %v, Rewrap says %v", headerErr, openErr, rewrapErr)
			}
			return
		}
		if !validKeyID(id) {
			t.Fatalf("SealedBy returned invalid id %q", id)
		}
		if versionErr != nil || (version != 1 && version != 2) {
			t.Fatalf("FormatVersion = %d, %v for a well-formed header", version, versionErr)
		}
		var missing *MissingKeyError
		switch {
		case openErr == nil:
			if rewrapErr != nil {
				// Only a version 1 envelope opens where a version 2 one
				// cannot be sealed: it is bound to no registration.
				if version == 1 && (reg == "" || kid == "" || len(kid) > maxBoundLen || len(reg) > maxBoundLen) {
					return
				}
				t.Fatalf("Open succeeded, Rewrap failed: %v", rewrapErr)
			}
			if changed != (id != k.PrimaryID() || version != CurrentFormat) {
				t.Fatalf("Rewrap changed=%v for a version %d envelope under %q", changed, version, id)
			}
			if v, _ := FormatVersion(next); v != CurrentFormat {
				t.Fatalf("Rewrap output is version %d", v)
			}
			again, err := k.Open(next, kid, reg)
			if err != nil || !bytes.Equal(again, pt) {
				t.Fatalf("Rewrap output does not open: %v", err)
			}
		case errors.As(openErr, &missing):
			if missing.ID != id || k.Has(id) {
				t.Fatalf("MissingKeyError{%q} for envelope under %q", missing.ID, id)
			}
		case errors.Is(openErr, ErrDecrypt):
			if !errors.Is(rewrapErr, ErrDecrypt) {
				t.Fatalf("Open says ErrDecrypt, Rewrap says %v", rewrapErr)
			}
		default:
			t.Fatalf("Open returned an unexpected error: %v", openErr)
		}
	})
}

// FuzzParseKeyring checks that no keyring text panics the parser and that
// errors never quote the key part of a line.
func FuzzParseKeyring(f *testing.F) {
	a, b := masterKey(f, "a"), masterKey(f, "b.2026")
	f.Add(a.Line())
	f.Add(a.Line() + "\n" + b.Line() + "\n")
	f.Add("# comment\n\n  " + a.Line() + "  \r\n")
	f.Add(a.Line() + "\n" + a.Line())
	f.Add("a:" + strings.Repeat("A", 44))
	f.Add(a.Line()[:20])
	f.Add(":")
	f.Add("")
	f.Add("\n\n\n")
	f.Add("a:b:c")
	f.Add(strings.Repeat("x", 65) + ":" + a.Line()[2:])

	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKeyring([]byte(text))
		if err == nil {
			if len(k.IDs()) == 0 || !k.Has(k.PrimaryID()) {
				t.Fatal("parsed an empty keyring")
			}
			return
		}
		msg := err.Error()
		ids := ""
		for line := range strings.Lines(text) {
			id, _, _ := strings.Cut(line, ":")
			ids += id
		}
		for line := range strings.Lines(text) {
			_, key, ok := strings.Cut(line, ":")
			key = strings.TrimSpace(key)
			// A key part of 12 or more characters must not show up in the
			// error, unless it also occurs among the ids, which may.
			if ok && len(key) >= 12 && strings.Contains(msg, key) && !strings.Contains(ids, key) {
				t.Fatalf("error %q quotes key text %q", msg, key)
			}
		}
	})
}

// FuzzJWKSEntry checks JWKS against encoding/json on single entries: it
// accepts only valid JSON objects, never publishes a private member, and
// its output is a fixed point.
func FuzzJWKSEntry(f *testing.F) {
	pub := keyPairs(f)[0].PublicJWK
	f.Add(pub)
	f.Add(keyPairs(f)[0].PrivateJWK)
	f.Add(append([]byte(`{"x5c":["a",{"b":[1,2.5e3,null,true]}],`), pub[1:]...))
	f.Add(append([]byte(`{"\u006e":"AQAB",`), pub[1:]...))
	f.Add(append([]byte(" \t\r\n"), pub...))
	f.Add([]byte(`{"kty":"RSA"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":}`))
	f.Add([]byte(`{"a":1}x`))
	f.Add([]byte(`{"a":"\ud800"}`))
	f.Add([]byte(`{"a":[}`))
	f.Add([]byte(`[`))

	f.Fuzz(func(t *testing.T, entry []byte) {
		out, err := JWKS([][]byte{entry})
		if err != nil {
			return
		}
		if !json.Valid(entry) {
			t.Fatal("accepted invalid JSON")
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(entry, &in); err != nil {
			t.Fatalf("accepted a non-object: %v", err)
		}
		for _, name := range forbiddenMembers {
			if _, ok := in[name]; ok {
				t.Fatalf("accepted an entry with private member %q", name)
			}
		}
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		if err := json.Unmarshal(out, &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("output is not a one-key set: %v\n%s", err, out)
		}
		for name, v := range set.Keys[0] {
			var want string
			if err := json.Unmarshal(in[name], &want); err != nil || v != want {
				t.Fatalf("member %q is %q in the output, %s in the input", name, v, in[name])
			}
		}
		again, err := JWKS([][]byte{out[len(`{"keys":[`) : len(out)-2]})
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("output is not a fixed point: %v\n%s\n%s", err, out, again)
		}
	})
}
