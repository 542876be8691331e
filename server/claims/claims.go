package claims

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds how deeply arrays and objects nest, the claims object
// itself being depth 1. LTI messages nest a handful of levels; the bound
// keeps a hostile document from costing more than its length.
const MaxDepth = 64

// appendRoom is the spare capacity of Set.Compact.
const appendRoom = 64

// Set is a claims set Parse accepted.
type Set struct {
	// Compact is the object as given with insignificant whitespace removed:
	// member order, escapes and the spelling of numbers are kept, byte for
	// byte, as json.Compact would write them. It has room for a few more
	// members (iat and exp) to be appended without a copy.
	Compact []byte
	// Times holds the registered time claims of the object's top level.
	Times Times
}

// Times holds the registered time claims of a claims set (RFC 7519,
// sections 4.1.4 to 4.1.6).
type Times struct {
	Exp, Nbf, Iat NumericDate
}

// NumericDate is the value of a time claim: seconds since the epoch, not
// necessarily whole.
type NumericDate struct {
	Set     bool
	Seconds float64
}

// Date returns the NumericDate of a whole second.
func Date(unix int64) NumericDate { return NumericDate{Set: true, Seconds: float64(unix)} }

// linearNames is how many member names an object may have before its
// duplicates are looked up in a map rather than by comparing with each.
const linearNames = 16

// Parse checks that text is one I-JSON object as the package comment says
// and returns it compacted, with its time claims. exp, nbf and iat, when
// present, must be non-negative JSON numbers; their bounds are Window's.
func Parse(text string) (*Set, error) {
	p := parser{s: text, out: make([]byte, 0, len(text)+appendRoom)}
	p.space()
	if p.i == len(p.s) {
		return nil, errors.New("is not valid JSON: no value")
	}
	if c := p.s[p.i]; c != '{' {
		if kind := kindOf(p.s[p.i:]); kind != "" {
			return nil, fmt.Errorf("must be a JSON object, got %s", kind)
		}
		return nil, p.syntax("unexpected %s", describe(c))
	}
	if err := p.object(); err != nil {
		return nil, err
	}
	p.out = append(p.out, p.s[p.flushed:p.i]...)
	p.flushed = p.i
	if p.space(); p.i != len(p.s) {
		return nil, p.syntax("text after the object")
	}

	set := &Set{Compact: p.out}
	for _, tc := range []struct {
		name string
		raw  *span
		date *NumericDate
	}{
		{"exp", &p.exp, &set.Times.Exp},
		{"nbf", &p.nbf, &set.Times.Nbf},
		{"iat", &p.iat, &set.Times.Iat},
	} {
		if !tc.raw.set {
			continue
		}
		value := p.s[tc.raw.start:tc.raw.end]
		if kind := kindOf(value); kind != "a number" {
			return nil, fmt.Errorf("claim %q must be a NumericDate (a JSON number of seconds since the epoch), got %s", tc.name, kind)
		}
		// number refused those beyond the range of a double already.
		seconds, err := strconv.ParseFloat(value, 64)
		switch {
		case err != nil:
			return nil, fmt.Errorf("claim %q is not a valid NumericDate", tc.name)
		case seconds < 0:
			return nil, fmt.Errorf("claim %q must not be negative", tc.name)
		}
		*tc.date = NumericDate{Set: true, Seconds: seconds}
	}
	return set, nil
}

// parser is one pass over a document. Between tokens, s[flushed:i] is the
// text not yet copied to out; whitespace is skipped by moving flushed past
// it.
type parser struct {
	s       string
	i       int
	out     []byte
	flushed int
	depth   int
	// path holds, outermost first, the member or element being read in each
	// open container.
	path []step
	// names holds the member names read so far in each open object,
	// outermost first; an object's names past linearNames are in
	// seen[depth] instead.
	names []nameRef
	seen  [MaxDepth + 1]map[string]struct{}
	// unescaped holds the text of the escaped member names read so far.
	unescaped []string
	scratch   []byte
	// The raw values of the top-level time claims.
	exp, nbf, iat span
}

// step is a member, whose name is s[start:end] (escaped as in the input),
// or an array element.
type step struct {
	start, end int
	index      int // of an array element; -1 for a member
}

// nameRef is a member name, s[start:end] as written; the text of a name
// with escapes is unescaped[unescaped-1]. It holds no pointer, so recording
// one costs no write barrier.
type nameRef struct {
	start, end int
	unescaped  int
}

type span struct {
	set        bool
	start, end int
}

func (p *parser) space() {
	j := p.i
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t' || p.s[j] == '\n' || p.s[j] == '\r') {
		j++
	}
	if j > p.i {
		p.out = append(p.out, p.s[p.flushed:p.i]...)
		p.flushed, p.i = j, j
	}
}

func (p *parser) value() error {
	if p.i == len(p.s) {
		return p.syntax("unexpected end of input")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		_, err := p.str(false)
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return p.syntax("unexpected %s", describe(c))
	}
}

func (p *parser) enter() error {
	if p.depth++; p.depth > MaxDepth {
		return fmt.Errorf("nests arrays and objects more than %d deep (at byte %d)", MaxDepth, p.i)
	}
	p.i++
	p.space()
	return nil
}

func (p *parser) object() error {
	if err := p.enter(); err != nil {
		return err
	}
	base := len(p.names)
	err := p.members(base)
	p.names = p.names[:base]
	p.depth--
	return err
}

// members reads the members of an object whose names start at
// p.names[base], and its closing brace.
func (p *parser) members(base int) error {
	depth := p.depth
	mapped := false // whether the names are in p.seen[depth]
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i == len(p.s) {
			return p.syntax("unexpected end of input")
		}
		if p.s[p.i] != '"' {
			return p.syntax("unexpected %s, want a member name", describe(p.s[p.i]))
		}
		start := p.i
		escaped, err := p.str(true)
		if err != nil {
			return err
		}
		name := nameRef{start: start + 1, end: p.i - 1}
		if escaped {
			name = p.unescapeName(name)
		}
		p.path = append(p.path, step{start: start + 1, end: p.i - 1, index: -1})
		if p.duplicate(base, name, &mapped) {
			return fmt.Errorf("member %s appears more than once (at byte %d)", p.where(), start)
		}

		p.space()
		if p.i == len(p.s) {
			return p.syntax("unexpected end of input")
		}
		if p.s[p.i] != ':' {
			return p.syntax("unexpected %s, want ':'", describe(p.s[p.i]))
		}
		p.i++
		p.space()
		valueStart := p.i
		if err := p.value(); err != nil {
			return err
		}
		if depth == 1 {
			switch p.text(name) {
			case "exp":
				p.exp = span{true, valueStart, p.i}
			case "nbf":
				p.nbf = span{true, valueStart, p.i}
			case "iat":
				p.iat = span{true, valueStart, p.i}
			}
		}
		p.path = p.path[:len(p.path)-1]
		p.space()
		if p.i == len(p.s) {
			return p.syntax("unexpected end of input")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return nil
		default:
			return p.syntax("unexpected %s, want ',' or '}'", describe(p.s[p.i]))
		}
	}
}

// duplicate reports whether name is among the names of the object whose
// names start at p.names[base], and adds it if not. The first linearNames
// names are compared one by one; from then on (mapped), the names are kept
// in p.seen[p.depth] instead, a map reused by later objects at the same
// depth unless it grew large: clearing a map costs its capacity.
func (p *parser) duplicate(base int, name nameRef, mapped *bool) bool {
	names := p.names[base:]
	if !*mapped {
		if len(names) < linearNames {
			for _, n := range names {
				if p.text(n) == p.text(name) {
					return true
				}
			}
			p.names = append(p.names, name)
			return false
		}
		seen := p.seen[p.depth]
		if seen == nil || len(seen) > 4*linearNames {
			seen = make(map[string]struct{}, 4*linearNames)
			p.seen[p.depth] = seen
		} else {
			clear(seen)
		}
		for _, n := range names {
			seen[p.text(n)] = struct{}{}
		}
		*mapped = true
	}
	seen := p.seen[p.depth]
	text := p.text(name)
	if _, ok := seen[text]; ok {
		return true
	}
	seen[text] = struct{}{}
	return false
}

// text returns the unescaped text of a member name.
func (p *parser) text(n nameRef) string {
	if n.unescaped > 0 {
		return p.unescaped[n.unescaped-1]
	}
	return p.s[n.start:n.end]
}

// unescapeName returns n, a name with escapes, with its text unescaped.
func (p *parser) unescapeName(n nameRef) nameRef {
	p.scratch = appendUnescaped(p.scratch[:0], p.s[n.start:n.end])
	p.unescaped = append(p.unescaped, string(p.scratch))
	n.unescaped = len(p.unescaped)
	return n
}

func (p *parser) array() error {
	if err := p.enter(); err != nil {
		return err
	}
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		p.depth--
		return nil
	}
	p.path = append(p.path, step{index: 0})
	for {
		if err := p.value(); err != nil {
			return err
		}
		p.space()
		if p.i == len(p.s) {
			return p.syntax("unexpected end of input")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
			p.path[len(p.path)-1].index++
		case ']':
			p.i++
			p.path = p.path[:len(p.path)-1]
			p.depth--
			return nil
		default:
			return p.syntax("unexpected %s, want ',' or ']'", describe(p.s[p.i]))
		}
	}
}

func (p *parser) literal(word string) error {
	if !strings.HasPrefix(p.s[p.i:], word) {
		return p.syntax("unexpected %s", describe(p.s[p.i]))
	}
	p.i += len(word)
	return nil
}

// number reads a number (RFC 8259, section 6) and refuses one beyond the
// range of a double. Numbers that only lose precision as doubles (more
// digits than 17, or tinier than 5e-324) are kept: they are signed as
// written.
func (p *parser) number() error {
	s, start := p.s, p.i
	i := start
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	var intDigits int
	switch {
	case i < len(s) && s[i] == '0':
		i++
		intDigits = 1
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		intDigits = digits()
	default:
		p.i = i
		return p.syntax("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			p.i = i
			return p.syntax("invalid number")
		}
	}
	// The number is below 10^magnitude, so finite if magnitude <= 308.
	magnitude := intDigits
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		sign := 1
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			if s[i] == '-' {
				sign = -1
			}
			i++
		}
		exp, n := 0, 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i, n = i+1, n+1 {
			if exp < 1e6 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if n == 0 {
			p.i = i
			return p.syntax("invalid number")
		}
		magnitude += sign * exp
	}
	p.i = i
	if magnitude > 308 {
		if _, err := strconv.ParseFloat(s[start:i], 64); err != nil {
			return fmt.Errorf("number at %s is beyond the range of IEEE 754 double precision (at byte %d)", p.where(), start)
		}
	}
	return nil
}

// str reads the string at s[i] == '"', leaving i just past its closing
// quote, and reports whether it has escapes. name says whether it is a
// member name, for errors.
func (p *parser) str(name bool) (escaped bool, err error) {
	s := p.s
	for i := p.i + 1; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			p.i = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 == len(s) {
				p.i = len(s)
				return false, p.syntax("unexpected end of input")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			case 'u':
			default:
				p.i = i
				return false, p.syntax("invalid escape in a string")
			}
			r, ok := hex4(s, i+2)
			if !ok {
				p.i = i
				return false, p.syntax("invalid \\u escape in a string")
			}
			at := i
			i += 6
			if utf16.IsSurrogate(r) {
				low := rune(-1)
				if r < 0xdc00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if low, ok = hex4(s, i+2); !ok {
						p.i = i
						return false, p.syntax("invalid \\u escape in a string")
					}
				}
				if low < 0xdc00 || low > 0xdfff {
					return false, p.stringError(name, at, "has an unpaired UTF-16 surrogate "+s[at:at+6])
				}
				r = utf16.DecodeRune(r, low)
				i += 6
			}
			if isNoncharacter(r) {
				return false, p.stringError(name, at, fmt.Sprintf("has the Unicode noncharacter %U", r))
			}
		case c < 0x20:
			p.i = i
			return false, p.syntax("control character in a string")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return false, p.stringError(name, i, "is not valid UTF-8")
			}
			if isNoncharacter(r) {
				return false, p.stringError(name, i, fmt.Sprintf("has the Unicode noncharacter %U", r))
			}
			i += size
		}
	}
	p.i = len(s)
	return false, p.syntax("unexpected end of input")
}

// plain marks the bytes that stand for themselves in a JSON string: ASCII
// but for control characters, '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (p *parser) stringError(name bool, at int, problem string) error {
	what := "string at " + p.where()
	if name {
		what = "member name in " + p.where()
	}
	return fmt.Errorf("%s %s (at byte %d)", what, problem, at)
}

// hex4 decodes the four hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// isNoncharacter reports whether r is one of Unicode's 66 noncharacters,
// which I-JSON refuses like surrogates.
func isNoncharacter(r rune) bool {
	return r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
}

// appendUnescaped appends to b the content of raw, the text between the
// quotes of a JSON string str accepted.
func appendUnescaped(b []byte, raw string) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			b = append(b, raw[i])
			i++
			continue
		}
		c := raw[i+1]
		i += 2
		switch c {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, _ := hex4(raw, i)
			i += 4
			if utf16.IsSurrogate(r) {
				low, _ := hex4(raw, i+2)
				r = utf16.DecodeRune(r, low)
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, c)
		}
	}
	return b
}

func (p *parser) syntax(format string, args ...any) error {
	return fmt.Errorf("is not valid JSON: %s (at byte %d)", fmt.Sprintf(format, args...), p.i)
}

// describe names the byte c for an error message without quoting more of
// the input.
func describe(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// kindOf names the kind of JSON value text starts with, or returns "" if
// it starts none.
func kindOf(text string) string {
	if text == "" {
		return ""
	}
	switch c := text[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case strings.HasPrefix(text, "true"), strings.HasPrefix(text, "false"):
		return "a boolean"
	case strings.HasPrefix(text, "null"):
		return "null"
	}
	return ""
}

// Path elision: a path of more than maxSteps steps shows the first
// headSteps and the last maxSteps-headSteps, and names longer than
// maxNameLen bytes are cut.
const (
	maxSteps   = 8
	headSteps  = 3
	maxNameLen = 40
)

// where is the JSON path of the value being read, as in RFC 9535: $ for
// the claims object, .name or ["name"] for a member, [i] for an element.
func (p *parser) where() string {
	var b strings.Builder
	b.WriteByte('$')
	for i, st := range p.path {
		if len(p.path) > maxSteps && i >= headSteps && i < len(p.path)-(maxSteps-headSteps) {
			if i == headSteps {
				b.WriteString("…")
			}
			continue
		}
		if st.index >= 0 {
			fmt.Fprintf(&b, "[%d]", st.index)
			continue
		}
		name := p.s[st.start:st.end]
		if strings.IndexByte(name, '\\') >= 0 {
			name = string(appendUnescaped(nil, name))
		}
		switch {
		case isIdentifier(name):
			b.WriteByte('.')
			b.WriteString(name)
		default:
			cut := false
			if len(name) > maxNameLen {
				n := maxNameLen
				for n > 0 && !utf8.RuneStart(name[n]) {
					n--
				}
				name, cut = name[:n], true
			}
			q := strconv.Quote(name)
			if cut {
				q = q[:len(q)-1] + `…"`
			}
			b.WriteString("[" + q + "]")
		}
	}
	return b.String()
}

func isIdentifier(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Window bounds the time claims of a token signed at Now.
type Window struct {
	Now time.Time
	// MaxLifetime is how far after Now exp may lie.
	MaxLifetime time.Duration
	// Skew is how far after Now nbf and iat may lie, for a caller whose
	// clock runs ahead.
	Skew time.Duration
}

// Check reports the first time claim of t outside the window: exp must lie
// after Now and at most MaxLifetime after it; nbf and iat at most Skew
// after Now and, with an exp, before it. Far past nbf and iat are
// accepted: a token signed now is no more useful for them.
func (w Window) Check(t Times) error {
	now := float64(w.Now.Unix()) + float64(w.Now.Nanosecond())/1e9
	if t.Exp.Set {
		switch {
		case t.Exp.Seconds <= now:
			return errors.New(`claim "exp" must be in the future`)
		case t.Exp.Seconds > now+w.MaxLifetime.Seconds():
			return fmt.Errorf(`claim "exp" must be at most %s from now`, w.MaxLifetime)
		}
	}
	for _, c := range []struct {
		name string
		date NumericDate
	}{{"nbf", t.Nbf}, {"iat", t.Iat}} {
		switch {
		case !c.date.Set:
		case c.date.Seconds > now+w.Skew.Seconds():
			return fmt.Errorf("claim %q must not be more than %s in the future", c.name, w.Skew)
		case t.Exp.Set && c.date.Seconds >= t.Exp.Seconds:
			return fmt.Errorf("claim %q must be before exp", c.name)
		}
	}
	return nil
}
