package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestJWKSOrderAndMembers(t *testing.T) {
	pairs := keyPairs(t)
	// Deliberately not generation order.
	in := [][]byte{pairs[2].PublicJWK, pairs[0].PublicJWK, pairs[1].PublicJWK}
	doc, err := JWKS(in)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	if got := memberNames(t, doc); !slices.Equal(got, []string{"keys"}) {
		t.Errorf("top-level members %v, want [keys]", got)
	}
	if len(set.Keys) != len(in) {
		t.Fatalf("%d keys, want %d", len(set.Keys), len(in))
	}
	for i, k := range set.Keys {
		// Generated public JWKs are already compact and canonical, so the
		// output reproduces them byte for byte.
		if !bytes.Equal(k, in[i]) {
			t.Errorf("key %d:\n got %s\nwant %s", i, k, in[i])
		}
	}
	if _, err := jwk.Parse(doc); err != nil {
		t.Errorf("jwk.Parse: %v", err)
	}
}

func TestJWKSEmpty(t *testing.T) {
	for _, in := range [][][]byte{nil, {}} {
		doc, err := JWKS(in)
		if err != nil || string(doc) != `{"keys":[]}` {
			t.Errorf("JWKS(%v) = %s, %v", in, doc, err)
		}
	}
}

func TestJWKSNormalizes(t *testing.T) {
	pub := keyPairs(t)[0].PublicJWK
	want := mustJWKS(t, [][]byte{pub})

	// The same key as jwx writes it, with its own member order, plus
	// members that are dropped.
	key, err := jwk.ParseKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	jwxJSON, err := json.MarshalIndent(key, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"jwx indented", jwxJSON},
		{"extra members", withMember(t, withMember(t, pub, "key_ops", `["verify"]`), "x5t", `"abc"`)},
		// Member names are case-sensitive: "D" is not "d", and is dropped.
		{"upper-case D", withMember(t, pub, "D", `"AQAB"`)},
		{"escaped kid", withMember(t, pub, "kid", fmt.Sprintf("%q", keyPairs(t)[0].KID))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := JWKS([][]byte{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestJWKSKidEscaping(t *testing.T) {
	pub := keyPairs(t)[0].PublicJWK
	for _, kid := range []string{`a"b`, `back\slash`, "tab\tnewline\n", "ünïcödé", "<script>"} {
		raw, _ := json.Marshal(kid)
		doc, err := JWKS([][]byte{withMember(t, pub, "kid", string(raw))})
		if err != nil {
			t.Fatalf("kid %q: %v", kid, err)
		}
		set, err := jwk.Parse(doc)
		if err != nil {
			t.Fatalf("kid %q: output is not a JWK Set: %v\n%s", kid, err, doc)
		}
		k, _ := set.Key(0)
		if k.KeyID() != kid {
			t.Errorf("kid %q came back as %q", kid, k.KeyID())
		}
	}
}

func TestJWKSRejects(t *testing.T) {
	pairs := keyPairs(t)
	pub := pairs[0].PublicJWK
	n := members(t, pub)["n"]
	nText := strings.Trim(string(n), `"`)
	nBytes, _ := b64.DecodeString(nText)

	tests := []struct {
		name string
		in   [][]byte
		want string // in the error
	}{
		{"private JWK", [][]byte{pub, pairs[1].PrivateJWK}, `entry 1: has private member "d"`},
		{"not JSON", [][]byte{[]byte("{")}, "not a JSON object"},
		{"array", [][]byte{[]byte(`[1]`)}, "not a JSON object"},
		{"null", [][]byte{[]byte(`null`)}, "not a JSON object"},
		{"string", [][]byte{[]byte(`"RSA"`)}, "not a JSON object"},
		{"empty", [][]byte{nil}, "not a JSON object"},
		{"EC key", [][]byte{[]byte(`{"kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB","kid":"k"}`)}, `kty is not "RSA"`},
		{"oct key", [][]byte{[]byte(`{"kty":"oct","k":"c2VjcmV0","kid":"k"}`)}, `private member "k"`},
		{"lower-case kty", [][]byte{withMember(t, pub, "kty", `"rsa"`)}, `kty is not "RSA"`},
		{"no kty", [][]byte{withoutMember(t, pub, "kty")}, `kty is not "RSA"`},
		{"no n", [][]byte{withoutMember(t, pub, "n")}, "n is missing"},
		{"n is a number", [][]byte{withMember(t, pub, "n", "12345")}, "n is missing"},
		{"n has padding", [][]byte{withMember(t, pub, "n", `"`+nText+`="`)}, "n is not base64url"},
		{"n has a line break", [][]byte{withMember(t, pub, "n", `"`+nText[:40]+`\n`+nText[40:]+`"`)}, "n is not base64url"},
		{"n is std base64", [][]byte{withMember(t, pub, "n", `"+/`+nText[2:]+`"`)}, "n is not base64url"},
		{"n non-canonical trailing bits", [][]byte{withMember(t, pub, "n", `"`+nText[:len(nText)-1]+"x"+`"`)}, "n is not canonical"},
		{"n leading zero", [][]byte{withMember(t, pub, "n", `"`+b64.EncodeToString(append([]byte{0}, nBytes...))+`"`)}, "leading zero"},
		{"n 1024 bits", [][]byte{withMember(t, pub, "n", `"`+b64.EncodeToString(nBytes[:128])+`"`)}, "n is 1024 bits"},
		{"n even", [][]byte{withMember(t, pub, "n", `"`+b64.EncodeToString(append(nBytes[:255:255], 2))+`"`)}, "n is even"},
		{"n too long", [][]byte{withMember(t, pub, "n", `"`+strings.Repeat("A", 2000)+`"`)}, "n is too long"},
		{"e even", [][]byte{withMember(t, pub, "e", `"AQAA"`)}, "e is not"},
		{"e one", [][]byte{withMember(t, pub, "e", `"AQ"`)}, "e is not"},
		{"e 2^31+1", [][]byte{withMember(t, pub, "e", `"`+b64.EncodeToString([]byte{0x80, 0, 0, 1})+`"`)}, "e is not"},
		{"e too long", [][]byte{withMember(t, pub, "e", `"AQABAQAB"`)}, "e is too long"},
		{"e leading zero", [][]byte{withMember(t, pub, "e", `"AAEAAQ"`)}, "leading zero"},
		{"no kid", [][]byte{withoutMember(t, pub, "kid")}, "kid is missing"},
		{"empty kid", [][]byte{withMember(t, pub, "kid", `""`)}, "kid is missing"},
		{"kid not UTF-8", [][]byte{append([]byte("{\"kid\":\"\x80\","), withoutMember(t, pub, "kid")[1:]...)}, "kid is not valid UTF-8"},
		{"kid is a number", [][]byte{withMember(t, pub, "kid", `7`)}, "kid is missing"},
		{"duplicate kid", [][]byte{pub, pairs[1].PublicJWK, pub}, "entry 2: kid already used by entry 0"},
		{"alg HS256", [][]byte{withMember(t, pub, "alg", `"HS256"`)}, `alg is not "RS256"`},
		{"alg null", [][]byte{withMember(t, pub, "alg", `null`)}, `alg is not "RS256"`},
		{"use enc", [][]byte{withMember(t, pub, "use", `"enc"`)}, `use is not "sig"`},
		{"n twice", [][]byte{append([]byte(`{"n":"AQAB",`), pub[1:]...)}, `member "n" appears twice`},
		{"kid twice", [][]byte{append([]byte(`{"kid":"other",`), pub[1:]...)}, `member "kid" appears twice`},
		{"escaped d", [][]byte{append([]byte(`{"\u0064":"AQAB",`), pub[1:]...)}, `private member "d"`},
		{"trailing data", [][]byte{append(slices.Clone(pub), `{}`...)}, "not a JSON object"},
		{"trailing comma", [][]byte{append(slices.Clone(pub[:len(pub)-1]), `,}`...)}, "not a JSON object"},
		{"bad nested value", [][]byte{append([]byte(`{"x5c":[1,}],`), pub[1:]...)}, "not a JSON object"},
		{"control character", [][]byte{append([]byte("{\"x\":\"a\x01b\","), pub[1:]...)}, "not a JSON object"},
	}
	for _, member := range append(privateMembers[:], "oth", "k") {
		tests = append(tests, struct {
			name string
			in   [][]byte
			want string
		}{"private member " + member, [][]byte{withMember(t, pub, member, `"AQAB"`)}, fmt.Sprintf("private member %q", member)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := JWKS(tt.in)
			if err == nil {
				t.Fatalf("JWKS accepted it: %s", doc)
			}
			if doc != nil {
				t.Errorf("JWKS returned output with an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if strings.Contains(msg, nText[:16]) {
				t.Errorf("error echoes the input: %q", msg)
			}
		})
	}
}

// syntheticPublicJWKs returns count distinct public JWKs shaped like real
// 2048-bit ones. The moduli are random odd numbers, not RSA moduli: JWKS
// does not factor, and generating 10,000 real keys would take minutes.
func syntheticPublicJWKs(tb testing.TB, count int) [][]byte {
	tb.Helper()
	out := make([][]byte, count)
	n := make([]byte, 256)
	for i := range out {
		rand.Read(n)
		n[0] |= 0x80
		n[255] |= 1
		nText := b64.AppendEncode(nil, n)
		out[i] = appendRSAJWK(nil, nText, []byte("AQAB"), nil, thumbprintRSA(n, []byte{1, 0, 1}), AlgRS256, useSig)
	}
	return out
}

func TestJWKSLarge(t *testing.T) {
	in := syntheticPublicJWKs(t, 2000)
	doc, err := JWKS(in)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != len(in) {
		t.Errorf("%d keys, want %d", set.Len(), len(in))
	}
}

func BenchmarkJWKS(b *testing.B) {
	for _, count := range []int{10, 1000, 10000} {
		in := syntheticPublicJWKs(b, count)
		b.Run(fmt.Sprint(count), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := JWKS(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJWKSViaJWX is the alternative JWKS avoids: parse every entry with
// jwx, check it, and marshal a jwk.Set.
func BenchmarkJWKSViaJWX(b *testing.B) {
	for _, count := range []int{10, 1000, 10000} {
		in := syntheticPublicJWKs(b, count)
		b.Run(fmt.Sprint(count), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set := jwk.NewSet()
				for _, e := range in {
					k, err := jwk.ParseKey(e)
					if err != nil {
						b.Fatal(err)
					}
					if private, _ := jwk.IsPrivateKey(k); private {
						b.Fatal("private")
					}
					set.AddKey(k)
				}
				if _, err := json.Marshal(set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
