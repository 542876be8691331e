package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// TestCLIEscapesStoredText stores a registration whose every text field
// holds what the API now refuses (control, format and separator
// characters), beneath the API, as a row written before validation was
// strict would be. The CLI prints it escaped, in tables and in JSON, and
// the JSON still decodes to the stored values.
func TestCLIEscapesStoredText(t *testing.T) {
	ctx := context.Background()
	url := storagetest.SQLiteURL(t)
	mk, err := crypto.GenerateMasterKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := crypto.NewKeyring(mk)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := crypto.GenerateKeyPair(2048)
	if err != nil {
		t.Fatal(err)
	}
	const id = "0190a5c0-0000-7000-8000-0000000000e5"
	sealed, err := keyring.Seal(pair.PrivateJWK, pair.KID, id)
	if err != nil {
		t.Fatal(err)
	}
	stored := storage.Registration{
		ID:            id,
		Issuer:        "https://platform.example/\x1b]0;pwned\x07",
		ClientID:      "admin\u200b\u202e\u0085\u009b[31m",
		AuthEndpoint:  "https://platform.example/auth\u2028x",
		JWKSURI:       "https://platform.example/jwks\tx",
		TokenEndpoint: "https://platform.example/token\r\nX\x7f",
	}
	escaped := []string{
		`https://platform.example/\x1b]0;pwned\a`,
		`admin\u200b\u202e\u0085\u009b[31m`,
		`https://platform.example/auth\u2028x`,
		`https://platform.example/jwks\tx`,
		`https://platform.example/token\r\nX\x7f`,
	}
	store, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = store.CreateRegistration(ctx, stored, storage.Key{KID: pair.KID, Alg: pair.Alg, RegistrationID: id, PublicJWK: pair.PublicJWK, PrivateJWK: sealed, Active: true})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	const token = "ltk_escape-test-token"
	sum := sha256.Sum256([]byte(token))
	env := []string{
		"LTIKEYS_MASTER_KEYS=" + mk.Line(),
		"LTIKEYS_TOKENS=reader:keys.read:" + hex.EncodeToString(sum[:]),
		"LTIKEYS_DATABASE_URL=" + url,
		"LTIKEYS_TOKEN=" + token,
	}
	dir := t.TempDir()
	p := startServe(t, dir, env)
	cli := func(args ...string) string {
		return mustCLI(t, dir, env, append(args, "--server", p.grpcAddr)...).stdout
	}
	// safe reports whether out holds no rune a terminal could act on,
	// newlines aside.
	safe := func(name, out string) {
		t.Helper()
		if i := strings.IndexFunc(out, func(r rune) bool {
			return r != '\n' && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
		}); i >= 0 {
			t.Errorf("%s prints an unescaped %U:\n%q", name, []rune(out[i:])[0], out)
		}
	}

	get := cli("registration", "get", "--registration-id", id)
	safe("registration get", get)
	for _, want := range escaped {
		if !strings.Contains(get, want) {
			t.Errorf("registration get does not print %s:\n%s", want, get)
		}
	}
	list := cli("registration", "list")
	safe("registration list", list)
	for _, want := range escaped[:2] {
		if !strings.Contains(list, want) {
			t.Errorf("registration list does not print %s:\n%s", want, list)
		}
	}

	for _, args := range [][]string{
		{"registration", "get", "--registration-id", id, "-o", "json"},
		{"registration", "list", "-o", "json"},
	} {
		out := cli(args...)
		safe(strings.Join(args, " "), out)
		var reg *ltikeysv1.Registration
		if args[1] == "get" {
			var resp ltikeysv1.GetRegistrationResponse
			parseJSON(t, out, &resp)
			reg = resp.GetRegistration()
		} else {
			var resp ltikeysv1.ListRegistrationsResponse
			parseJSON(t, out, &resp)
			if len(resp.GetRegistrations()) != 1 {
				t.Fatalf("list -o json: %d registrations, want 1", len(resp.GetRegistrations()))
			}
			reg = resp.GetRegistrations()[0]
		}
		if reg.GetIssuer() != stored.Issuer || reg.GetClientId() != stored.ClientID || reg.GetAuthEndpoint() != stored.AuthEndpoint ||
			reg.GetJwksUri() != stored.JWKSURI || reg.GetTokenEndpoint() != stored.TokenEndpoint {
			t.Errorf("%s decodes to %v, want the stored values", strings.Join(args, " "), reg)
		}
	}
}
