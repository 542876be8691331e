package claims_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/server/claims"
)

// nested returns a claims object of depth nested containers with innermost
// in the last, each below the claims object a one-member object or (arrays)
// a one-element array.
func nested(depth int, arrays bool, innermost string) string {
	var b strings.Builder
	b.WriteString(`{"a":`)
	for d := 1; d < depth; d++ {
		if arrays {
			b.WriteString("[")
		} else {
			b.WriteString(`{"a":`)
		}
	}
	b.WriteString(innermost)
	for d := 1; d < depth; d++ {
		if arrays {
			b.WriteString("]")
		} else {
			b.WriteString("}")
		}
	}
	b.WriteString("}")
	return b.String()
}

// parseCases are the documents Parse must accept or refuse, with a piece of
// the reason it must give. FuzzParse starts from them.
var parseCases = []struct {
	name   string
	text   string
	ok     bool
	reason string
}{
	{name: "empty object", text: `{}`, ok: true},
	{name: "LTI claims", text: `{"iss":"10000000000001","aud":["https://canvas.instructure.com"],"nonce":"n-0S6",` +
		`"https://purl.imsglobal.org/spec/lti-dl/claim/content_items":[{"type":"ltiResourceLink","lineItem":{"scoreMaximum":100}}]}`, ok: true},
	{name: "whitespace", text: " \t\n{ \"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } } \n", ok: true},
	{name: "every kind of value", text: `{"s":"x","n":-1.5e-3,"z":0,"t":true,"f":false,"null":null,"a":[],"o":{}}`, ok: true},
	{name: "same name in sibling objects", text: `{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":1}]}`, ok: true},
	{name: "same name at two depths", text: `{"x":{"x":{"x":1}}}`, ok: true},
	{name: "escapes", text: `{"e":"\"\\\/\b\f\n\r\t\u0041\u00e9"}`, ok: true},
	{name: "surrogate pair", text: `{"smile":"\ud83d\ude00"}`, ok: true},
	{name: "surrogate pair, upper case", text: `{"smile":"\uD83D\uDE00"}`, ok: true},
	{name: "raw UTF-8", text: `{"name":"Zoë 😀"}`, ok: true},
	{name: "big integer elsewhere", text: `{"id":123456789012345678901234567890}`, ok: true},
	{name: "tiny number", text: `{"n":1e-400}`, ok: true},
	{name: "largest double", text: `{"n":1.7976931348623157e308}`, ok: true},
	{name: "time claims", text: `{"iat":1764600000,"nbf":1764600000.5,"exp":1.7646e9}`, ok: true},
	{name: "nested time claims are data", text: `{"x":{"exp":"never","iat":-1}}`, ok: true},
	{name: "depth limit", text: nested(claims.MaxDepth, false, "1"), ok: true},
	{name: "depth limit, arrays", text: nested(claims.MaxDepth, true, "1"), ok: true},

	{name: "array", text: `[1]`, reason: "must be a JSON object, got an array"},
	{name: "string", text: `"x"`, reason: "got a string"},
	{name: "number", text: `-1`, reason: "got a number"},
	{name: "boolean", text: `false`, reason: "got a boolean"},
	{name: "null", text: `null`, reason: "got null"},
	{name: "nothing", text: ` `, reason: "not valid JSON: no value"},
	{name: "garbage", text: `nope`, reason: "unexpected character 'n' (at byte 0)"},
	{name: "byte order mark", text: "\ufeff{}", reason: "unexpected byte 0xef"},
	{name: "truncated", text: `{"a":1`, reason: "unexpected end of input"},
	{name: "truncated string", text: `{"a":"x`, reason: "unexpected end of input"},
	{name: "truncated escape", text: `{"a":"\`, reason: "unexpected end of input"},
	{name: "missing value", text: `{"a":}`, reason: "unexpected character '}' (at byte 5)"},
	{name: "missing colon", text: `{"a" 1}`, reason: "want ':'"},
	{name: "trailing comma", text: `{"a":1,}`, reason: "want a member name"},
	{name: "trailing comma in array", text: `{"a":[1,]}`, reason: "unexpected character ']'"},
	{name: "unquoted name", text: `{a:1}`, reason: "want a member name"},
	{name: "two values", text: `{} {}`, reason: "text after the object (at byte 3)"},
	{name: "leading zero", text: `{"a":01}`, reason: "not valid JSON"},
	{name: "bare minus", text: `{"a":-}`, reason: "invalid number"},
	{name: "bare point", text: `{"a":1.}`, reason: "invalid number"},
	{name: "bare exponent", text: `{"a":1e}`, reason: "invalid number"},
	{name: "plus sign", text: `{"a":+1}`, reason: "unexpected character '+'"},
	{name: "NaN", text: `{"a":NaN}`, reason: "unexpected character 'N'"},
	{name: "bad literal", text: `{"a":tru}`, reason: "unexpected character 't'"},
	{name: "control character", text: "{\"a\":\"\x01\"}", reason: "control character in a string"},
	{name: "bad escape", text: `{"a":"\x"}`, reason: "invalid escape"},
	{name: "bad unicode escape", text: `{"a":"\u12g4"}`, reason: `invalid \u escape`},

	{name: "duplicate at depth 1", text: `{"sub":"a","sub":"b"}`, reason: "member $.sub appears more than once (at byte 11)"},
	{name: "duplicate at depth 2", text: `{"a":{"x":1,"y":2,"x":3}}`, reason: "member $.a.x appears more than once"},
	{name: "duplicate at depth 3", text: `{"a":[{"b":{"k":1,"k":1}}]}`, reason: "member $.a[0].b.k appears more than once"},
	{name: "duplicate in the second element", text: `{"a":[{"k":1},{"k":1,"k":2}]}`, reason: "member $.a[1].k appears more than once"},
	{name: "duplicate, escaped", text: `{"aud":"a","\u0061ud":"b"}`, reason: "member $.aud appears more than once"},
	{name: "duplicate, escaped pair", text: `{"😀":1,"\ud83d\ude00":2}`, reason: `member $["😀"] appears more than once`},
	{name: "duplicate after many names", text: `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,` +
		`"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9,"a3":3}`, reason: "member $.a3 appears more than once"},
	{name: "duplicate after many names, nested", text: `{"o":{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,` +
		`"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9,"c":{"b9":0}},"p":{"b9":1,"b9":2}}`, reason: "member $.p.b9 appears more than once"},
	{name: "duplicate, long name", text: `{"` + strings.Repeat("n", 1000) + `":1,"` + strings.Repeat("n", 1000) + `":2}`,
		reason: `member $["` + strings.Repeat("n", 40) + `…"] appears more than once`},

	{name: "lone high surrogate", text: `{"s":"\ud800"}`, reason: `string at $.s has an unpaired UTF-16 surrogate \ud800 (at byte 6)`},
	{name: "lone low surrogate", text: `{"s":"\udc00"}`, reason: `unpaired UTF-16 surrogate \udc00`},
	{name: "high surrogate, then text", text: `{"s":"\ud800x"}`, reason: `unpaired UTF-16 surrogate \ud800`},
	{name: "high surrogate, then another", text: `{"s":"\ud800\ud800"}`, reason: `unpaired UTF-16 surrogate \ud800`},
	{name: "high surrogate, then a bad escape", text: `{"s":"\ud800\uzzzz"}`, reason: `invalid \u escape`},
	{name: "pair reversed", text: `{"s":"\ude00\ud83d"}`, reason: `unpaired UTF-16 surrogate \ude00`},
	{name: "lone surrogate in a name", text: `{"o":{"\ud800":1}}`, reason: `member name in $.o has an unpaired UTF-16 surrogate`},
	{name: "lone surrogate in an array", text: `{"a":["ok","\udfff"]}`, reason: `string at $.a[1] has an unpaired`},
	{name: "invalid UTF-8", text: "{\"s\":\"\xff\"}", reason: "string at $.s is not valid UTF-8 (at byte 6)"},
	{name: "UTF-8 surrogate", text: "{\"s\":\"\xed\xa0\x80\"}", reason: "is not valid UTF-8"},
	{name: "overlong UTF-8", text: "{\"s\":\"\xc0\xaf\"}", reason: "is not valid UTF-8"},
	{name: "truncated UTF-8", text: "{\"s\":\"\xe2\x82\"}", reason: "is not valid UTF-8"},
	{name: "invalid UTF-8 in a name", text: "{\"\xfe\":1}", reason: "member name in $ is not valid UTF-8"},
	{name: "noncharacter, escaped", text: `{"s":"\uffff"}`, reason: "noncharacter U+FFFF"},
	{name: "noncharacter, raw", text: "{\"s\":\"\uFDD0\"}", reason: "noncharacter U+FDD0"},
	{name: "noncharacter, pair", text: `{"s":"\ud83f\udffe"}`, reason: "noncharacter U+1FFFE"},

	{name: "1e400", text: `{"n":1e400}`, reason: "number at $.n is beyond the range of IEEE 754 double precision"},
	{name: "-1e400", text: `{"a":[-1e400]}`, reason: "number at $.a[0] is beyond the range"},
	{name: "just past the largest double", text: `{"n":1.7976931348623159e308}`, reason: "beyond the range"},
	{name: "309 digits", text: `{"n":1` + strings.Repeat("0", 308) + `}`, ok: true}, // 1e308
	{name: "309 digits, beyond", text: `{"n":2` + strings.Repeat("0", 308) + `}`, reason: "beyond the range"},

	{name: "one past the depth limit", text: nested(claims.MaxDepth+1, false, "1"), reason: "nests arrays and objects more than 64 deep"},
	{name: "one past the depth limit, arrays", text: nested(claims.MaxDepth+1, true, "1"), reason: "more than 64 deep"},
	{name: "far past the depth limit", text: strings.Repeat(`{"a":`, 100000), reason: "more than 64 deep (at byte 320)"},

	{name: "exp as a string", text: `{"exp":"99999999999"}`, reason: `claim "exp" must be a NumericDate (a JSON number of seconds since the epoch), got a string`},
	{name: "iat as a boolean", text: `{"iat":true}`, reason: `claim "iat" must be a NumericDate`},
	{name: "nbf as null", text: `{"nbf":null}`, reason: `claim "nbf" must be a NumericDate (a JSON number of seconds since the epoch), got null`},
	{name: "exp as an object", text: `{"exp":{"v":1}}`, reason: `got an object`},
	{name: "exp as an array", text: `{"exp":[1]}`, reason: `got an array`},
	{name: "negative exp", text: `{"exp":-1}`, reason: `claim "exp" must not be negative`},
	{name: "negative iat", text: `{"iat":-1764600000}`, reason: `claim "iat" must not be negative`},
	{name: "escaped exp name", text: `{"\u0065xp":"x"}`, reason: `claim "exp" must be a NumericDate`},
}

func TestClaimsParse(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			set, err := claims.Parse(tt.text)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				var want bytes.Buffer
				if err := json.Compact(&want, []byte(tt.text)); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(set.Compact, want.Bytes()) {
					t.Errorf("compact = %s\nwant      %s", set.Compact, want.Bytes())
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error saying %q", tt.reason)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if len(err.Error()) > maxErrorLen {
				t.Errorf("error of %d bytes: %q", len(err.Error()), err)
			}
		})
	}
}

// maxErrorLen bounds Parse's error messages, whatever the input.
const maxErrorLen = 400

func TestClaimsParseTimes(t *testing.T) {
	set, err := claims.Parse(`{"iat":1764600000,"nbf":1764600000.25,"exp":1.7646003e9,"x":{"exp":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := claims.Times{
		Iat: claims.NumericDate{Set: true, Seconds: 1764600000},
		Nbf: claims.NumericDate{Set: true, Seconds: 1764600000.25},
		Exp: claims.NumericDate{Set: true, Seconds: 1764600300},
	}
	if set.Times != want {
		t.Errorf("times %+v, want %+v", set.Times, want)
	}
	set, err = claims.Parse(`{"sub":"x"}`)
	if err != nil || set.Times != (claims.Times{}) {
		t.Errorf("no time claims: %+v, %v", set.Times, err)
	}
}

func TestClaimsWindow(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 500_000_000, time.UTC)
	w := claims.Window{Now: now, MaxLifetime: 24 * time.Hour, Skew: time.Minute}
	sec := func(d time.Duration) claims.NumericDate { return claims.Date(now.Add(d).Unix()) }
	exact := func(d time.Duration) claims.NumericDate {
		return claims.NumericDate{Set: true, Seconds: float64(now.Add(d).UnixNano()) / 1e9}
	}
	for _, tt := range []struct {
		name   string
		times  claims.Times
		reason string // empty: accepted
	}{
		{name: "none", times: claims.Times{}},
		{name: "exp in a minute", times: claims.Times{Exp: sec(time.Minute)}},
		{name: "exp at the bound", times: claims.Times{Exp: exact(24 * time.Hour)}},
		{name: "exp a second inside the bound", times: claims.Times{Exp: sec(24*time.Hour - time.Second)}},
		{name: "exp a second outside the bound", times: claims.Times{Exp: sec(24*time.Hour + time.Second)}, reason: `claim "exp" must be at most 24h0m0s from now`},
		{name: "exp a millisecond outside the bound", times: claims.Times{Exp: exact(24*time.Hour + time.Millisecond)}, reason: "at most 24h0m0s"},
		{name: "exp of the issue", times: claims.Times{Exp: claims.Date(99999999999)}, reason: "at most 24h0m0s"},
		{name: "exp now", times: claims.Times{Exp: exact(0)}, reason: `claim "exp" must be in the future`},
		{name: "exp in the past", times: claims.Times{Exp: sec(-time.Hour)}, reason: "in the future"},
		{name: "exp zero", times: claims.Times{Exp: claims.Date(0)}, reason: "in the future"},
		{name: "iat now", times: claims.Times{Iat: sec(0), Exp: sec(time.Minute)}},
		{name: "iat and nbf within the skew", times: claims.Times{Iat: exact(time.Minute), Nbf: exact(time.Minute), Exp: sec(time.Hour)}},
		{name: "iat and nbf long ago", times: claims.Times{Iat: claims.Date(0), Nbf: claims.Date(1), Exp: sec(time.Hour)}},
		{name: "nbf past the skew", times: claims.Times{Nbf: sec(61 * time.Second), Exp: sec(time.Hour)}, reason: `claim "nbf" must not be more than 1m0s in the future`},
		{name: "iat past the skew", times: claims.Times{Iat: sec(2 * time.Minute), Exp: sec(time.Hour)}, reason: `claim "iat" must not be more than 1m0s in the future`},
		{name: "iat past the skew, no exp", times: claims.Times{Iat: sec(time.Hour)}, reason: `claim "iat" must not be more than`},
		{name: "nbf far ahead", times: claims.Times{Nbf: claims.Date(1 << 53)}, reason: `claim "nbf" must not be more than`},
		{name: "nbf at exp", times: claims.Times{Nbf: sec(30 * time.Second), Exp: sec(30 * time.Second)}, reason: `claim "nbf" must be before exp`},
		{name: "iat after exp", times: claims.Times{Iat: sec(50 * time.Second), Exp: sec(10 * time.Second)}, reason: `claim "iat" must be before exp`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Check(tt.times)
			switch {
			case tt.reason == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.reason != "" && err == nil:
				t.Errorf("accepted, want %q", tt.reason)
			case tt.reason != "" && !strings.Contains(err.Error(), tt.reason):
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}
