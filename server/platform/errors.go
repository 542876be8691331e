package platform

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The kinds of error, for errors.Is. Every error of this package but a
// failure of the caller's assertion function, and the caller's own
// context ending, matches exactly one of them (an *OAuthError whose code
// says the platform is temporarily unable matches ErrUnavailable too).
var (
	// ErrInvalidRequest: the caller's TokenRequest is wrong (*RequestError).
	ErrInvalidRequest = errors.New("invalid token request")
	// ErrRefused: this client will not send the request where it would go:
	// a scheme other than https, a refused address (*AddressError), a
	// redirect (*RedirectError). Retrying changes nothing until the
	// registration or the configuration does.
	ErrRefused = errors.New("refused")
	// ErrUnavailable: the platform could not be asked or did not answer
	// usefully (*UnavailableError): worth retrying later.
	ErrUnavailable = errors.New("platform unavailable")
	// ErrMalformed: the platform answered, but not with a valid token
	// response or OAuth error. It comes inside an *UnavailableError.
	ErrMalformed = errors.New("malformed answer")
	// ErrResponseTooLarge: a response body went past the client's
	// MaxResponseBytes. In a token exchange it comes inside an
	// *UnavailableError, with ErrMalformed.
	ErrResponseTooLarge = errors.New("response body too large")
)

// RequestError is a TokenRequest the caller got wrong. Nothing was sent.
type RequestError struct {
	// Field is the TokenRequest field at fault: "RegistrationID",
	// "Scopes" or "Assertion".
	Field string
	// Reason says what is wrong with it, without quoting it.
	Reason string
}

func (e *RequestError) Error() string {
	return "invalid token request: " + e.Field + ": " + e.Reason
}

// Is makes a *RequestError match ErrInvalidRequest.
func (e *RequestError) Is(target error) bool { return target == ErrInvalidRequest }

// AddressError is a connection the address guard refused.
type AddressError struct {
	// Host is the host being dialled, a name or an IP literal.
	Host string
	// Addr is the refused address.
	Addr netip.Addr
	// Class says why: "private", "loopback", "link-local", "shared
	// (carrier-grade NAT)", "reserved or special-purpose", "unspecified",
	// "multicast or broadcast".
	Class string
}

func (e *AddressError) Error() string {
	if e.Host == e.Addr.String() {
		return fmt.Sprintf("refusing to connect to %s, a %s address", e.Host, e.Class)
	}
	return fmt.Sprintf("refusing to connect to %s: it resolves to %s, a %s address", e.Host, e.Addr, e.Class)
}

// Is makes an *AddressError match ErrRefused.
func (e *AddressError) Is(target error) bool { return target == ErrRefused }

// RedirectError is a redirect the client did not follow. Where it pointed
// is not kept: a Location may carry anything.
type RedirectError struct {
	StatusCode int
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the platform answered %s; redirects are not followed", statusText(e.StatusCode))
}

// Is makes a *RedirectError match ErrRefused.
func (e *RedirectError) Is(target error) bool { return target == ErrRefused }

// UnavailableError is a token exchange that failed for a reason worth
// retrying: no connection, a timeout, 429 or 5xx, or an answer that is
// not a token response (then Err matches ErrMalformed).
type UnavailableError struct {
	// Reason says what happened, without any of the response body.
	Reason string
	// StatusCode is the platform's HTTP status, 0 if it did not answer.
	StatusCode int
	// RetryAfter is the platform's Retry-After, at most MaxRetryAfter; 0
	// if it gave none.
	RetryAfter time.Duration
	// Err is the cause, if any.
	Err error
}

func (e *UnavailableError) Error() string {
	msg := "platform unavailable: " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes an *UnavailableError match ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// MaxRetryAfter bounds UnavailableError.RetryAfter.
const MaxRetryAfter = time.Hour

// OAuthError is the platform's refusal of a token request, the error
// response of RFC 6749, section 5.2. Code and Description are the
// platform's, sanitised: at most maxOAuthField bytes each of valid UTF-8,
// with no control or format characters; Code holds only the characters
// RFC 6749 allows in it, and any part of the client assertion the
// description repeated is replaced by "[redacted]".
type OAuthError struct {
	// Code is the OAuth error code: "invalid_client", "invalid_grant",
	// "invalid_scope", "unauthorized_client", "invalid_request",
	// "unsupported_grant_type", or another the platform chose.
	Code string
	// Description is the platform's error_description, or "".
	Description string
	// HTTPStatus is the status of the answer (usually 400 or 401).
	HTTPStatus int
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("platform refused the token request: %s %s", statusText(e.HTTPStatus), e.Code)
	if e.Description != "" {
		msg += ": " + strconv.Quote(e.Description)
	}
	return msg
}

// Is makes an OAuth error whose code says the platform cannot serve the
// request for now ("temporarily_unavailable", "server_error") match
// ErrUnavailable.
func (e *OAuthError) Is(target error) bool {
	return target == ErrUnavailable && (e.Code == "temporarily_unavailable" || e.Code == "server_error")
}

// maxOAuthField bounds OAuthError.Code and OAuthError.Description, in
// bytes.
const maxOAuthField = 200

// sanitizeCode keeps the characters RFC 6749, section 5.2, allows in an
// error code (%x20-21 / %x23-5B / %x5D-7E), at most maxOAuthField bytes,
// trimmed of spaces.
func sanitizeCode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxOAuthField; i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// sanitizeDescription makes s safe to show and log: valid UTF-8, control
// and line-separating characters turned to spaces, format characters
// (bidirectional overrides, zero-width ones…) dropped, any run of
// base64url that is part of secret replaced by "[redacted]", and at most
// maxOAuthField bytes, cut at a character boundary.
func sanitizeDescription(s, secret string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Cc, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return ' '
		case unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, s)
	s = redact(s, secret)
	s = strings.TrimSpace(s)
	if len(s) > maxOAuthField {
		cut := maxOAuthField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

// minSecretRun is the shortest run of base64url characters that redact
// checks against the secret: shorter ones are too short to matter and too
// likely to be ordinary words.
const minSecretRun = 16

// redact replaces every run of base64url characters and dots in s that
// has minSecretRun bytes in common with secret by "[redacted]", so that a
// platform that echoes the client assertion, or part of it, does not put
// it in an error message.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && isJWTChar(s[j]) {
			j++
		}
		if j == i {
			b.WriteByte(s[i])
			i++
			continue
		}
		if run := s[i:j]; sharesRun(run, secret) {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(run)
		}
		i = j
	}
	return b.String()
}

// sharesRun reports whether run and secret have minSecretRun consecutive
// bytes in common.
func sharesRun(run, secret string) bool {
	for k := 0; k+minSecretRun <= len(run); k++ {
		if strings.Contains(secret, run[k:k+minSecretRun]) {
			return true
		}
	}
	return false
}

func isJWTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// statusText is "400 Bad Request" for 400.
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}
