package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"https://canvas.instructure.com", "https://canvas.instructure.com"},
		{`back\slash and "quotes"`, `back\slash and "quotes"`},
		{"outil-é 例え 🙂 a b", "outil-é 例え 🙂 a b"},
		{"a\tb\nc\rd", `a\tb\nc\rd`},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\a`},
		{"\x00\x7f", `\x00\x7f`},
		{"a\u0085b\u009b31m", `a\u0085b\u009b31m`},
		{"admin\u200b", `admin\u200b`},
		{"abc\u202egnp.exe", `abc\u202egnp.exe`},
		{"\u2066x\u2069\ufeff\u00ad", `\u2066x\u2069\ufeff\u00ad`},
		{"a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"a\x85b\x9b", `a\x85b\x9b`},
		{"\xff\xc0\xaf", `\xff\xc0\xaf`},
	} {
		got := escapeText(tc.in)
		if got != tc.want {
			t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, unsafeRune) {
			t.Errorf("escapeText(%q) = %q still holds unsafe text", tc.in, got)
		}
	}
}

// TestEscapeJSON checks that the escaped JSON decodes to the same value and
// holds no unsafe rune but the newlines between lines.
func TestEscapeJSON(t *testing.T) {
	value := map[string]string{
		"plain":   `https://canvas.instructure.com/ "é" \`,
		"c1":      "a\u0085b\u009b31m\u007f",
		"format":  "admin\u200b abc\u202egnp.exe \ufeff \U000e0041",
		"lines":   "a\u2028b\u2029c",
		"escaped": "\x1b\n\t",
	}
	b, err := json.MarshalIndent(value, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json escapes U+2028 and U+2029 but not C1, DEL or Cf;
	// protojson escapes none of them.
	raw := strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(string(b))
	out := escapeJSON([]byte(raw))
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("escaped JSON does not parse: %v\n%s", err, out)
	}
	for k, v := range value {
		if got[k] != v {
			t.Errorf("%s: %q after escaping, want %q", k, got[k], v)
		}
	}
	if strings.ContainsFunc(strings.ReplaceAll(string(out), "\n", ""), unsafeRune) {
		t.Errorf("escaped JSON holds unsafe runes: %q", out)
	}
	if got := escapeJSON([]byte(`{"kid": "a` + "\x9b" + `b"}`)); string(got) != `{"kid": "a\ufffdb"}` {
		t.Errorf("escapeJSON of an invalid byte = %q", got)
	}
	plain := []byte("{\n  \"a\": \"é\"\n}")
	if got := escapeJSON(plain); string(got) != string(plain) {
		t.Errorf("escapeJSON changed %q to %q", plain, got)
	}
}

// TestWriteTableEscapesCells checks one table path: a cell's tab or
// newline is escaped rather than starting a column or a line.
func TestWriteTableEscapesCells(t *testing.T) {
	var b strings.Builder
	if err := printRows(&b, [][2]string{{"CLIENT ID", "a\tb\nc\u202e"}, {"ISSUER", "https://p.example"}}); err != nil {
		t.Fatal(err)
	}
	want := "CLIENT ID  a\\tb\\nc\\u202e\nISSUER     https://p.example\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
}
