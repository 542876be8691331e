package claims_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ltikeys/ltikeys/server/claims"
)

// FuzzClaims feeds arbitrary text to Parse and Window.Check and compares
// what they accept with encoding/json. Without -fuzz, go test runs the
// seeds: parseCases and the time claims below.
//
// Whatever Parse accepts must be one valid JSON object, compacted as
// json.Compact does, valid UTF-8, with unique member names at every depth,
// at most MaxDepth deep, every number a finite double, and its time claims
// those the object holds; whatever Check also accepts must have its time
// claims inside the window. Conversely, JSON with none of those problems
// and no \u escapes (which encoding/json decodes lossily, so the walk
// cannot judge surrogates) must be accepted. Errors stay short.
func FuzzClaims(f *testing.F) {
	for _, tt := range parseCases {
		f.Add(tt.text)
	}
	now := fuzzWindow.Now.Unix()
	for _, text := range []string{
		`{"exp":99999999999,"sub":"client","aud":"https://token"}`,
		`{"exp":` + strconv.FormatInt(now+3600, 10) + `,"iat":` + strconv.FormatInt(now, 10) + `}`,
		`{"exp":` + strconv.FormatInt(now+86399, 10) + `}`,
		`{"exp":` + strconv.FormatInt(now+86401, 10) + `}`,
		`{"exp":` + strconv.FormatInt(now-1, 10) + `}`,
		`{"nbf":` + strconv.FormatInt(now+59, 10) + `,"exp":` + strconv.FormatInt(now+120, 10) + `}`,
		`{"nbf":` + strconv.FormatInt(now+61, 10) + `}`,
		`{"iat":1.7646e9,"exp":1.7e9}`,
		`{"\u0065xp":1e3}`,
	} {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		set, err := claims.Parse(text)
		walk := walkJSON(text)
		if err != nil {
			if len(err.Error()) > maxErrorLen {
				t.Errorf("error of %d bytes: %q", len(err.Error()), err)
			}
			if walk.acceptable() && !strings.Contains(text, `\u`) {
				t.Fatalf("refused %q, which has none of the problems Parse refuses: %v", text, err)
			}
			return
		}
		if !json.Valid([]byte(text)) {
			t.Fatalf("accepted invalid JSON %q", text)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(set.Compact, want.Bytes()) {
			t.Fatalf("compact %q, json.Compact %q", set.Compact, want.Bytes())
		}
		if !walk.acceptable() {
			t.Fatalf("accepted %q: %+v", text, walk)
		}
		for name, got := range map[string]claims.NumericDate{"exp": set.Times.Exp, "nbf": set.Times.Nbf, "iat": set.Times.Iat} {
			if value, ok := walk.times[name]; ok != got.Set || ok && value != got.Seconds {
				t.Fatalf("%s: Parse says %+v, encoding/json %v (present %v)", name, got, value, ok)
			}
		}

		if fuzzWindow.Check(set.Times) != nil {
			return
		}
		nowSeconds := float64(fuzzWindow.Now.UnixNano()) / 1e9
		exp, hasExp := walk.times["exp"]
		if hasExp && (exp <= nowSeconds || exp > nowSeconds+fuzzWindow.MaxLifetime.Seconds()) {
			t.Fatalf("window accepted exp %v, now %v", exp, nowSeconds)
		}
		for _, name := range []string{"nbf", "iat"} {
			if v, ok := walk.times[name]; ok && (v < 0 || v > nowSeconds+fuzzWindow.Skew.Seconds() || hasExp && v >= exp) {
				t.Fatalf("window accepted %s %v, now %v, exp %v", name, v, nowSeconds, exp)
			}
		}
	})
}

var fuzzWindow = claims.Window{
	Now:         time.Date(2026, 12, 1, 12, 0, 0, 250_000_000, time.UTC),
	MaxLifetime: 24 * time.Hour,
	Skew:        time.Minute,
}

// walk is what an encoding/json token walk finds in a document.
type walk struct {
	valid, object, utf8        bool
	duplicate, nonchar, number bool // a problem of its kind was found
	depth                      int
	badTime                    bool // a top-level time claim that is not a non-negative number
	times                      map[string]float64
}

func (w walk) acceptable() bool {
	return w.valid && w.object && w.utf8 && !w.duplicate && !w.nonchar && !w.number && w.depth <= claims.MaxDepth && !w.badTime
}

// walkJSON walks text with encoding/json's Decoder.Token, independently of
// Parse.
func walkJSON(text string) walk {
	w := walk{
		valid:  json.Valid([]byte(text)),
		object: strings.HasPrefix(strings.TrimLeft(text, " \t\r\n"), "{"),
		utf8:   utf8.ValidString(text),
		times:  map[string]float64{},
	}
	if !w.valid {
		return w
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	checkString := func(s string) {
		for _, r := range s {
			if r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe {
				w.nonchar = true
			}
		}
	}
	// One frame per open container: its member names (nil for an array),
	// and the name whose value comes next.
	type frame struct {
		names   map[string]bool
		pending string
		inValue bool
	}
	var stack []*frame
	value := func(tok json.Token) {
		// A top-level time claim's value.
		if len(stack) == 1 && stack[0].names != nil {
			switch name := stack[0].pending; name {
			case "exp", "nbf", "iat":
				n, ok := tok.(json.Number)
				if !ok {
					w.badTime = true
					return
				}
				f, err := strconv.ParseFloat(string(n), 64)
				if err != nil || f < 0 {
					w.badTime = true
					return
				}
				w.times[name] = f
			}
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return w
		}
		if err != nil {
			w.valid = false
			return w
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isName := top != nil && top.names != nil && !top.inValue
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				if top != nil && top.names != nil {
					value(nil) // an object or array: not a number
					top.inValue = false
				}
				f := &frame{}
				if tok == '{' {
					f.names = map[string]bool{}
				}
				stack = append(stack, f)
				w.depth = max(w.depth, len(stack))
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			checkString(tok)
			if isName {
				if top.names[tok] {
					w.duplicate = true
				}
				top.names[tok] = true
				top.pending, top.inValue = tok, true
				continue
			}
		case json.Number:
			if f, err := strconv.ParseFloat(string(tok), 64); err != nil || math.IsInf(f, 0) {
				w.number = true
			}
		}
		if top != nil && top.names != nil {
			value(tok)
			top.inValue = false
		}
	}
}
