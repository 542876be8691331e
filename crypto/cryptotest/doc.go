// Package cryptotest makes envelopes in a format that package crypto still
// opens but no longer writes, so tests in any package can store rows as an
// older release left them and check the upgrade path.
//
// It implements the version 1 layout of docs/encryption.md by itself,
// importing nothing of package crypto: a test that opens its output with
// crypto also checks crypto against the document.
package cryptotest
