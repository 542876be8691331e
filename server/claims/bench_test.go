package claims_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ltikeys/ltikeys/server/claims"
)

// wideThenSiblings is an object of nearly size bytes whose first member is
// an object with thousands of members, followed by objects of 17 members at
// the same depth: each of those looks its names up in a map.
func wideThenSiblings(size int) string {
	var sb strings.Builder
	sb.WriteString(`{"w":{`)
	for i := 0; sb.Len() < size/2; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `"m%d":0`, i)
	}
	sb.WriteString("}")
	sibling := `{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0,"q":0}`
	for i := 0; sb.Len()+len(sibling)+16 < size; i++ {
		fmt.Fprintf(&sb, `,"s%d":%s`, i, sibling)
	}
	sb.WriteString("}")
	return sb.String()
}

// BenchmarkParse checks claims sets of nearly 64 KiB, SignJwt's limit: a
// deep-linking response with many content items, and shapes that load
// Parse's slow paths (many small objects, names found by map, escaped
// names, deep nesting, long numbers). Each is measured against
// encoding/json's json.Valid on the same text, in the same run, so the
// ratio holds on a loaded machine; json.Valid checks syntax only.
func BenchmarkParse(b *testing.B) {
	const size = 64 << 10
	fill := func(head, item, sep, tail string, n func(i int) string) string {
		var sb strings.Builder
		sb.WriteString(head)
		for i := 0; sb.Len()+len(item)+len(tail)+16 < size; i++ {
			if i > 0 {
				sb.WriteString(sep)
			}
			sb.WriteString(strings.ReplaceAll(item, "#", n(i)))
		}
		sb.WriteString(tail)
		return sb.String()
	}
	itoa := strconv.Itoa
	docs := []struct{ name, text string }{
		{"deep-linking", fill(`{"iss":"10000000000001","aud":"https://canvas.instructure.com","nonce":"4f3c0e2a-7b1d",`+
			`"https://purl.imsglobal.org/spec/lti-dl/claim/content_items":[`,
			`{"type":"ltiResourceLink","title":"Quiz #: Thermodynamics","url":"https://tool.example.edu/launch/quiz-#",`+
				`"lineItem":{"scoreMaximum":100,"label":"Quiz #"},"custom":{"quiz_id":"#","attempts":3}}`, ",", `]}`, itoa)},
		{"small-objects", fill(`{"a":[`, `{"k":#}`, ",", `]}`, itoa)},
		{"wide-object", fill(`{`, `"member-#":#`, ",", `}`, itoa)},
		{"wide-then-siblings", wideThenSiblings(size)},
		{"escaped-names", fill(`{`, `"\u006e#":1`, ",", `}`, itoa)},
		{"non-ascii", fill(`{"s":[`, `"Zoë 😀 Ελληνικά \ud83d\ude00"`, ",", `]}`, itoa)},
		{"numbers", fill(`{"n":[`, `-1234.5678e-9`, ",", `]}`, itoa)},
		{"nested", fill(`{"a":[`, strings.Repeat("[", claims.MaxDepth-2)+"#"+strings.Repeat("]", claims.MaxDepth-2), ",", `]}`, itoa)},
	}
	for _, d := range docs {
		if _, err := claims.Parse(d.text); err != nil {
			b.Fatalf("%s: %v", d.name, err)
		}
		b.Run(d.name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(d.text)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := claims.Parse(d.text); err != nil {
					b.Fatal(err)
				}
			}
		})
		raw := []byte(d.text)
		b.Run(d.name+"/json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(raw) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
