// Package crypto owns the key material of ltikeys: generating RS256 key
// pairs, encoding them as JWKs and JWK Sets, and sealing private keys for
// storage at rest.
//
// It is pure computation. It reads no files, no environment and no network,
// knows nothing of databases or gRPC, and its only dependencies are the
// standard library and jwx. Loading a keyring file or a master key is the
// caller's job; ParseKeyring takes the file's bytes.
//
// What it promises:
//
//   - GenerateKeyPair returns a 2048-, 3072- or 4096-bit RSA key whose kid is
//     the RFC 7638 SHA-256 thumbprint, so a key's kid never changes and two
//     keys never share one. Its public JWK has exactly kty, n, e, kid, alg
//     and use; its private JWK is plaintext that must be sealed.
//   - JWKS never publishes private key material: it re-parses every entry,
//     refuses any carrying private members, and writes only public members.
//   - Keyring.Seal encrypts with AES-256-GCM under a fresh random nonce into
//     a versioned envelope that names its master key and is bound to the
//     kid of its row and to the registration that owns it (format version
//     2, see docs/encryption.md). Open fails with ErrDecrypt if any byte was
//     changed or the envelope was moved to another kid or registration,
//     with *MissingKeyError if its master key is not loaded, and with
//     ErrMalformed for anything that is not an envelope. Version 1
//     envelopes, bound to the kid alone, still open. Parsing never panics,
//     whatever the input.
//   - Rewrap moves an envelope to the primary master key and to the current
//     format, and is idempotent, which makes master key rotation and the
//     upgrade from version 1 a resumable background pass.
//   - A keyring never holds a master key that is one byte value repeated.
//   - No error, String or log value produced here contains plaintext, key
//     bytes, or the input that failed to parse; a MasterKey prints only
//     its id.
//
// Keyring, and everything else here, is immutable after construction and
// safe for concurrent use.
package crypto
