// Package platformtest is a fake LMS platform for tests: a token endpoint
// over TLS on 127.0.0.1 that verifies each client assertion as a strict
// platform would, and answers as a test tells it to, plus the test CA its
// certificates come from, a signing client, and a resolver of fixed
// answers.
//
// The fake verifies assertions with go-jose, not with jwx, which ltikeys
// signs with, so a test that passes checks ltikeys' tokens against a
// second implementation. It checks: the form (grant_type
// client_credentials, client_assertion_type jwt-bearer, one assertion),
// an RS256 compact JWS whose kid is in the key set it was given or that
// it fetches from a URL (ltikeys' per-registration JWKS), iss and sub
// equal to the client_id, aud exactly the token URL, byte for byte, exp
// in the future by its clock, and a jti it has not seen. A replayed jti
// is answered 400 {"error":"invalid_grant"}.
//
// Launcher is the launch side of a platform: it signs id_tokens with
// go-jose (valid LTI launch claims, and tokens tampered one claim at a
// time, alg none, HS256 keyed with the public modulus, no kid, an unknown
// kid) and serves its key set at JWKSPath over TLS, with a Cache-Control
// and failure modes a test chooses (a status, a body, a delay, an outage
// that drops connections), key rotations, and a count of fetches.
//
// Nothing here imports ltikeys, so tests of any package, including the
// package platform itself, can use it.
package platformtest
