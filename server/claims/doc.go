// Package claims checks the claims set of a JWT that ltikeys is asked to
// sign.
//
// Parse accepts exactly one JSON object that is I-JSON (RFC 7493): UTF-8
// throughout, no lone UTF-16 surrogate and no Unicode noncharacter in any
// string or member name, no number beyond the range of IEEE 754 double
// precision, and unique member names in every object at every depth (names
// compared after unescaping). Arrays and objects nest at most MaxDepth
// deep. It reads the text once, front to back, in time linear in its
// length, and returns the object compacted together with its registered
// time claims, which must be JSON numbers (NumericDate, RFC 7519 section 2).
// Window.Check then bounds those times against a clock.
//
// Integers beyond ±(2^53−1) are accepted outside the time claims, where
// RFC 7493 says only SHOULD NOT: the payload is signed byte for byte as the
// caller wrote it, so no value changes on the way. In exp, nbf and iat the
// window refuses them, since they lie far in the future.
//
// Errors name the problem, the JSON path of the offending value where there
// is one (member names shortened), and a byte offset; they never repeat
// more than a few dozen bytes of the input. Nothing here knows about gRPC.
package claims
