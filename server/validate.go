package server

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/net/idna"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform"
)

// Length limits, in bytes of UTF-8. PostgreSQL's varchar(n) counts
// characters and SQLite counts nothing, so a limit of n bytes on a varchar(n)
// column is the one that both backends accept alike, whatever the text and
// the database's encoding: a value is refused by the validator, naming its
// field, or stored by either backend. See storage/models.go.
const (
	// maxIssuerLen is the size of platform_registrations.issuer.
	maxIssuerLen = 255
	// maxClientIDLen is the size of platform_registrations.client_id, and
	// the bound the LTI registration schema gives client_id.
	maxClientIDLen = 255
	// maxEndpointLen bounds the three endpoints. Their columns are text: the
	// bound keeps a request from storing arbitrarily large rows.
	maxEndpointLen = 2048
	// maxFieldLen bounds every other free-text field, for the same reason.
	maxFieldLen = 2048
	// maxDeploymentIDLen bounds each of a registration's deployment ids,
	// as the LTI deployment_id claim is bounded (LTI Core 1.3, section
	// 5.3.3).
	maxDeploymentIDLen = 255
	// maxDeploymentIDs bounds how many deployment ids a registration
	// lists: they are read with it on every launch.
	maxDeploymentIDs = 100
)

// violations collects the problems of one request, so a caller learns about
// every bad field at once.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: fmt.Sprintf(format, args...),
	})
}

// err returns nil when there are no violations, and otherwise an
// INVALID_ARGUMENT status whose message names every offending field and whose
// details carry a google.rpc.BadRequest.
func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	parts := make([]string, len(v))
	for i, fv := range v {
		parts[i] = fv.Field + ": " + fv.Description
	}
	st := status.New(codes.InvalidArgument, strings.Join(parts, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// validateCreateRegistration checks every field of a new registration.
// UpdateRegistration checks the endpoints it changes with the same
// requireEndpoint, and deployment ids with the same deploymentIDs, so a
// value one of them refuses the other refuses too.
func validateCreateRegistration(req *ltikeysv1.CreateRegistrationRequest) error {
	var v violations
	v.requireIssuer("issuer", req.GetIssuer())
	v.requireClientID("client_id", req.GetClientId())
	v.requireEndpoint("auth_endpoint", req.GetAuthEndpoint())
	v.requireEndpoint("jwks_uri", req.GetJwksUri())
	v.requireEndpoint("token_endpoint", req.GetTokenEndpoint())
	v.deploymentIDs("deployment_ids", req.GetDeploymentIds())
	return v.err()
}

// deploymentIDs checks a registration's list of deployment ids, which may
// be empty (any deployment): at most maxDeploymentIDs, each text as
// requireText checks it, of at most maxDeploymentIDLen bytes, and none
// repeated, since the platform's deployment_id is compared with them byte
// for byte. A violation names the element, field[i].
func (v *violations) deploymentIDs(field string, ids []string) {
	if len(ids) > maxDeploymentIDs {
		v.add(field, "must list at most %d deployment ids, not %d", maxDeploymentIDs, len(ids))
		return
	}
	first := make(map[string]int, len(ids))
	for i, id := range ids {
		name := fmt.Sprintf("%s[%d]", field, i)
		n := len(*v)
		v.requireText(name, id, maxDeploymentIDLen)
		if len(*v) > n {
			continue
		}
		if j, ok := first[id]; ok {
			v.add(name, "repeats %s[%d]", field, j)
			continue
		}
		first[id] = i
	}
}

// requireText checks a required free-text field: not blank, at most maxLen
// bytes, and text as textProblem defines it.
func (v *violations) requireText(field, value string, maxLen int) {
	switch {
	case strings.TrimSpace(value) == "":
		v.add(field, "required")
	case len(value) > maxLen:
		v.add(field, "must be at most %d bytes of UTF-8, not %d", maxLen, len(value))
	default:
		if p := textProblem(value); p != "" {
			v.add(field, "%s", p)
		}
	}
}

// requireClientID checks a registration's client_id: text of at most
// maxClientIDLen bytes, without leading or trailing white space (which would
// make "admin " a second, indistinguishable "admin").
func (v *violations) requireClientID(field, value string) {
	n := len(*v)
	v.requireText(field, value, maxClientIDLen)
	if len(*v) == n && strings.TrimFunc(value, unicode.IsSpace) != value {
		v.add(field, "must not begin or end with white space")
	}
}

// requireIssuer checks a registration's issuer: a URL as requireURL
// checks it, at most maxIssuerLen bytes, with no query or fragment (OpenID
// Connect Discovery 1.0, section 3).
func (v *violations) requireIssuer(field, value string) {
	v.requireURL(field, value, maxIssuerLen, true)
}

// requireEndpoint checks a platform endpoint: a URL as requireURL checks it,
// at most maxEndpointLen bytes. A query is allowed, a fragment is not
// (RFC 6749, sections 3.1 and 3.2).
func (v *violations) requireEndpoint(field, value string) {
	v.requireURL(field, value, maxEndpointLen, false)
}

// requireURL checks a required URL. The service stores it as given and
// compares what platforms send with it byte for byte, so a URL outside these
// rules is refused, never rewritten:
//
//   - text as textProblem defines it, at most maxLen bytes;
//   - an absolute URL with the scheme https, written in lower case, or http
//     for a loopback host (localhost, 127.0.0.0/8, ::1: a platform on the
//     developer's machine);
//   - no raw white space anywhere, and no ASCII character that RFC 3986 does
//     not allow unencoded (" < > \ ^ ` { | }): the message says to
//     percent-encode it;
//   - a host: an IP address (IPv6 in brackets, without a zone) or an ASCII
//     domain name of letters, digits, hyphens and underscores, labels of at
//     most 63 bytes; an internationalised domain name is refused with its
//     ASCII (punycode) form to use instead, since the issuer must equal the
//     platform's iss claim and a silently converted value would not;
//   - a port, if any, from 1 to 65535;
//   - no credentials (they would end up in logs and API responses), no
//     fragment, and for an issuer (noQuery) no query.
//
// Non-ASCII text is allowed in the path and query, as IRIs allow it.
func (v *violations) requireURL(field, value string, maxLen int, noQuery bool) {
	if strings.TrimSpace(value) == "" {
		v.add(field, "required")
		return
	}
	if len(value) > maxLen {
		v.add(field, "must be at most %d bytes of UTF-8, not %d", maxLen, len(value))
		return
	}
	if p := textProblem(value); p != "" {
		v.add(field, "%s", p)
		return
	}
	scheme, rest, ok := strings.Cut(value, "://")
	if !ok {
		v.add(field, "must be an absolute https URL, such as https://platform.example/path")
		return
	}
	if p := urlCharProblem(value); p != "" {
		v.add(field, "%s", p)
		return
	}
	switch scheme {
	case "https", "http":
	default:
		if strings.EqualFold(scheme, "https") || strings.EqualFold(scheme, "http") {
			v.add(field, "the scheme must be written in lower case")
		} else {
			v.add(field, "must use https")
		}
		return
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	switch {
	case strings.Contains(authority, "@"):
		v.add(field, "must not contain credentials")
		return
	case strings.Contains(authority, "%"):
		v.add(field, "the host must not be percent-encoded")
		return
	}
	u, err := url.Parse(value)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		v.add(field, "must be a valid URL: %v", err)
		return
	}
	if !isASCII(u.Host) && !strings.HasPrefix(u.Host, "[") {
		if ascii, ok := asciiURL(u, scheme, rest); ok {
			v.add(field, "the host is an internationalised domain name, which the service does not convert: use the ASCII form %q", ascii)
		} else {
			v.add(field, "the host must be an ASCII domain name or an IP address")
		}
		return
	}
	if p := hostProblem(u); p != "" {
		v.add(field, "%s", p)
		return
	}
	switch {
	case scheme == "http" && !platform.IsLoopbackHost(u.Hostname()):
		v.add(field, "must use https (http is allowed only for localhost)")
	case strings.Contains(value, "#"):
		v.add(field, "must not have a fragment")
	case noQuery && strings.Contains(value, "?"):
		v.add(field, "must not have a query")
	}
}

// asciiURL returns the URL scheme://rest, whose unbracketed host u has
// parsed as not ASCII, with the host in its ASCII (punycode) form, if that
// form is a valid host.
func asciiURL(u *url.URL, scheme, rest string) (string, bool) {
	host, err := idna.Lookup.ToASCII(u.Hostname())
	if err != nil {
		return "", false
	}
	// The authority, at the start of rest, is the host and maybe a port,
	// unencoded (requireURL has refused % and @ in it).
	ascii := scheme + "://" + host + rest[len(u.Hostname()):]
	au, err := url.Parse(ascii)
	if err != nil || hostProblem(au) != "" {
		return "", false
	}
	return ascii, true
}

// hostProblem describes what is wrong with the host and port of u, a URL
// with an ASCII authority, or returns "".
func hostProblem(u *url.URL) string {
	host := u.Hostname()
	if host == "" {
		return "must have a host"
	}
	if strings.HasSuffix(u.Host, ":") || u.Port() != "" {
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			return "the port must be a number from 1 to 65535"
		}
	}
	if strings.HasPrefix(u.Host, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "the host in brackets must be an IPv6 address without a zone"
		}
		return ""
	}
	if len(host) > 253 {
		return "the host must be at most 253 bytes"
	}
	for label := range strings.SplitSeq(host, ".") {
		switch {
		case label == "":
			return "the host must not have empty labels"
		case len(label) > 63:
			return "the host's labels must be at most 63 bytes"
		case strings.ContainsFunc(label, func(r rune) bool { return !hostLabelRune(r) }):
			return "the host must be a domain name of letters, digits, hyphens and underscores, or an IP address"
		}
	}
	return ""
}

// requireUUID checks a required registration id.
func (v *violations) requireUUID(field, value string) {
	if value == "" {
		v.add(field, "required")
		return
	}
	if _, err := uuid.Parse(value); err != nil || len(value) != 36 {
		v.add(field, "must be a UUID")
	}
}

// canonicalRegistrationID returns id in lower case, the form in which
// registration ids are generated and stored, if it is a UUID of 36
// characters, and id unchanged otherwise. UUIDs are case-insensitive (RFC
// 9562, section 4), but both backends compare ids as strings: every
// registration id a request carries is canonicalised before it is looked
// up, compared or logged, so 0190A5C0-… finds what 0190a5c0-… finds.
func canonicalRegistrationID(id string) string {
	if len(id) != 36 || uuid.Validate(id) != nil {
		return id
	}
	return strings.ToLower(id)
}

// textProblem describes why s is not text the service stores, or returns
// "": it must be valid UTF-8 and free of the runes forbiddenRune refuses.
// The description names the first offending rune by code point and byte
// offset, never by itself.
func textProblem(s string) string {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("must be valid UTF-8: invalid byte 0x%02x at byte %d", s[i], i)
			}
		}
		if forbiddenRune(r) {
			return fmt.Sprintf("must not contain %U (%s) at byte %d", r, runeClass(r), i)
		}
	}
	return ""
}

// forbiddenRunes are the categories no stored text may contain: controls
// (Cc, C0 and C1 both, so no terminal escape sequence), format characters
// (Cf: bidirectional controls, zero-width characters, soft hyphens, tags),
// and line and paragraph separators (Zl, Zp). Each of them either acts on a
// terminal or log viewer, or makes two different values look alike.
var forbiddenRunes = []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp}

func forbiddenRune(r rune) bool { return unicode.In(r, forbiddenRunes...) }

// runeClass names the category that makes r forbidden.
func runeClass(r rune) string {
	switch {
	case unicode.Is(unicode.Cc, r):
		return "a control character"
	case unicode.Is(unicode.Cf, r):
		return "a format character"
	default:
		return "a line or paragraph separator"
	}
}

// urlCharProblem describes the first character of s that a URL must not
// hold unencoded, or returns "": white space, and the printable ASCII
// characters RFC 3986 leaves out of its grammar. (textProblem has refused
// the controls already.)
func urlCharProblem(s string) string {
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			return fmt.Sprintf("must not contain white space (%U at byte %d): percent-encode it", r, i)
		case strings.ContainsRune("\"<>\\^`{|}", r):
			return fmt.Sprintf("must not contain %q (byte %d): percent-encode it", r, i)
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hostLabelRune reports whether r may appear in a label of an ASCII host name.
// Underscores are not in the host name grammar but are in DNS, and in the
// names of containers on a developer's machine.
func hostLabelRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}
