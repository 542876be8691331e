// Package server implements the ltikeys gRPC services and the public HTTP
// gateway.
//
// KeyService is for the tool's internal callers and hands out key material;
// JwksService is public and only ever returns public keys, from in-memory
// documents that each change updates for the keys it touched. Every request
// is validated here before it reaches storage; every error leaves through
// one place (status.go), which turns it into a gRPC status with a message
// safe to show the caller: UNAVAILABLE with a retry hint for a database
// that is away (logged once per outage and counted, not once per call),
// INTERNAL without detail for a fault. No message, log line or error carries private key material.
//
// Health (health.go) reports readiness per service, from state kept in
// memory and never by querying the database: JwksService stays SERVING on
// the last good key set through a database outage, up to a staleness
// bound, while KeyService follows the database.
//
// Access control lives in auth.go: an Authenticator's interceptors admit a
// KeyService call only with a valid bearer token or mapped client
// certificate holding the scope that one table (methodScopes) gives the
// method, refuse methods missing from the table, and write one audit line
// per call (audit.go). Its tap handle (tap.go) refuses, before their
// request is read, the calls whose credentials could not pass, so that a
// caller without credentials costs no more than its headers; the token
// itself is hashed and compared by the interceptors alone. Failed
// authentications are throttled per peer address (throttle.go), and the
// refusals from one address are logged once per interval and counted. Its
// tokens and certificate identities are replaced whole, in one atomic
// swap, so a reload never admits a call against half of one set and half
// of another. The HTTP handler routes exact paths only and is never given
// KeyService.
package server
