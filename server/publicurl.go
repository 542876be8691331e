package server

import (
	"errors"
	"net/url"
	"strings"
)

// CheckPublicURL checks base as KeyServiceConfig.PublicURL must be: the URL
// at which platforms reach the public HTTP listener. It must be an absolute
// URL with the scheme https (http only for a loopback host: localhost,
// 127.0.0.0/8, ::1), a host as endpoints are checked (an ASCII name or an IP
// address, a port of 1 to 65535 if any), and no credentials, query or
// fragment. A path is allowed, as the prefix under which a path-routing
// proxy forwards to the listener, with or without a trailing slash, but
// without empty or dot segments. The error describes the first problem; it
// does not repeat base.
func CheckPublicURL(base string) error {
	_, err := parsePublicURL(base)
	return err
}

// jwksURLs builds the public URL of a registration's JWK Set. The zero
// value builds none.
type jwksURLs struct {
	// prefix is the public base URL, without a trailing slash, followed by
	// RegistrationJWKSPath up to the id; suffix is the rest of the path.
	prefix, suffix string
}

// parsePublicURL returns the jwksURLs of base, checked as CheckPublicURL
// says; the zero jwksURLs for an empty base.
func parsePublicURL(base string) (jwksURLs, error) {
	if base == "" {
		return jwksURLs{}, nil
	}
	if strings.TrimSpace(base) == "" {
		return jwksURLs{}, errors.New("must be an absolute https URL, not blank")
	}
	var v violations
	v.requireURL("public URL", base, maxEndpointLen, true)
	if len(v) > 0 {
		return jwksURLs{}, errors.New(v[0].Description)
	}
	u, err := url.Parse(base)
	if err != nil { // requireURL has parsed it already
		return jwksURLs{}, err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path != "" {
		for seg := range strings.SplitSeq(path[1:], "/") {
			if dec, err := url.PathUnescape(seg); seg == "" || err != nil || dec == "." || dec == ".." {
				return jwksURLs{}, errors.New("the path must not have empty segments (doubled slashes) or dot segments")
			}
		}
	}
	return jwksURLs{prefix: u.Scheme + "://" + u.Host + path + registrationJWKSBefore, suffix: registrationJWKSAfter}, nil
}

// RegistrationJWKSPath around its id: the URLs follow the route.
var registrationJWKSBefore, registrationJWKSAfter, _ = strings.Cut(RegistrationJWKSPath, "{registration_id}")

// registration returns the URL of registration id's JWK Set, or "" when
// no public URL is configured. id is a UUID, which needs no escaping.
func (j jwksURLs) registration(id string) string {
	if j.prefix == "" {
		return ""
	}
	return j.prefix + id + j.suffix
}
