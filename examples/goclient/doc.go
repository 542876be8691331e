// Package goclient is the Go client that README.md shows, kept here so
// that it compiles and runs: its test starts a server in the test process,
// registers a platform, signs a deep-linking response through it and
// verifies the JWT against the registration's JWK Set, as the platform
// would. README.md shows client.go whole, and the test fails when the two
// differ.
//
// A tool's service copies client.go into its own code: Dial connects with
// transport credentials and a bearer token sent on every call, and
// SignDeepLinkingResponse has ltikeys sign, so the service never holds a
// private key.
package goclient
