package crypto

import (
	"encoding/json"
	"errors"
)

// scanObject checks that b is exactly one JSON object (RFC 8259, surrounding
// whitespace allowed) and calls fn with each member's name, unescaped, and
// raw value, in order. Names without escapes and all values are sub-slices of b and are valid JSON.
//
// It exists because JWKS handles one small object per key, thousands at a
// time, and encoding/json spends most of its time validating and
// allocating: this walks the object once and hands string values over
// without copying. Nested values, rare in a JWK, are checked with
// json.Valid. FuzzJWKSEntry compares it with encoding/json.
//
// Its errors never contain any part of b.
func scanObject(b []byte, fn func(name, value []byte) error) error {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i == len(b) || b[i] != '"' {
			return errNotObject
		}
		end, escaped, err := scanString(b, i)
		if err != nil {
			return err
		}
		name := b[i+1 : end-1]
		if escaped {
			var s string
			if json.Unmarshal(b[i:end], &s) != nil {
				return errNotObject
			}
			name = []byte(s)
		}
		i = skipSpace(b, end)
		if i == len(b) || b[i] != ':' {
			return errNotObject
		}
		i = skipSpace(b, i+1)
		end, err = skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(name, b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i == len(b) {
			return errNotObject
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return errNotObject
		}
	}
}

var errNotObject = errors.New("not a JSON object")

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errNotObject
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString checks the JSON string starting at b[i] == '"' and returns the
// index just past its closing quote, and whether it has escapes. Like
// encoding/json, it accepts any byte from 0x20 up, including invalid UTF-8.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i == len(b) {
				return 0, false, errNotObject
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, false, errNotObject
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false, errNotObject
					}
				}
				i += 4
			default:
				return 0, false, errNotObject
			}
		case c < 0x20:
			return 0, false, errNotObject
		}
	}
	return 0, false, errNotObject
}

// skipValue returns the index just past the JSON value starting at b[i].
// Strings are checked here; anything else is delimited here and checked by
// json.Valid.
func skipValue(b []byte, i int) (int, error) {
	if i == len(b) {
		return 0, errNotObject
	}
	start := i
	switch b[i] {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, err := scanString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			i++
			if depth == 0 {
				break
			}
		}
		if depth != 0 {
			return 0, errNotObject
		}
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' &&
			b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
	}
	if !json.Valid(b[start:i]) {
		return 0, errNotObject
	}
	return i, nil
}
