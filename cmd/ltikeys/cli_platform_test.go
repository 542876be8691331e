package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// tableRows reads a two-column table as the CLI prints it: name, then
// value after a run of at least two spaces.
func tableRows(t *testing.T, table string) map[string]string {
	t.Helper()
	rows := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(table, "\n"), "\n") {
		name, value, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("table line %q has no value\n%s", line, table)
		}
		rows[name] = strings.TrimSpace(value)
	}
	return rows
}

// TestCLIPlatformToken drives "ltikeys platform token" against a real
// serve and a fake platform over TLS, whose CA serve trusts through
// SSL_CERT_FILE and which verifies each client assertion against the
// registration's own JWKS on serve's HTTP listener: a token as a table,
// then from the cache as JSON by issuer and client id; the platform's
// invalid_client printed with its OAuth code and description; --scope
// required; and LTIKEYS_SCOPE and LTIKEYS_REGISTRATION_ID ignored.
func TestCLIPlatformToken(t *testing.T) {
	dir := t.TempDir()
	const token = "ltk_platform-token-test"
	sum := sha256.Sum256([]byte(token))
	// serve's crypto/x509 reads SSL_CERT_FILE when it first verifies a
	// certificate, which is the first token request: the file is written
	// below, once the fake platform, and so its CA, exists.
	caFile := filepath.Join(dir, "platform-ca.pem")
	p := startServe(t, dir, []string{
		"LTIKEYS_TOKENS=app:keys.admin,platform.token:" + hex.EncodeToString(sum[:]),
		"SSL_CERT_FILE=" + caFile,
	})
	cli := []string{"LTIKEYS_SERVER=" + p.grpcAddr, "LTIKEYS_TOKEN=" + token}

	const issuer, clientID = "https://platform.example.com", "tool-1"
	var created ltikeysv1.CreateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, cli, "registration", "create", "-o", "json",
		"--issuer", issuer, "--client-id", clientID,
		"--auth-endpoint", issuer+"/auth", "--jwks-uri", issuer+"/jwks", "--token-endpoint", issuer+"/token").stdout, &created)
	regID, kid := created.GetRegistration().GetId(), created.GetKey().GetKid()

	fake := platformtest.New(t, platformtest.Options{
		ClientID: clientID,
		JWKSURL:  "http://" + p.httpAddr + "/registrations/" + regID + "/jwks.json",
	})
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fake.CA.Certificate.Raw})))
	mustCLI(t, dir, cli, "registration", "update", "--registration-id", regID, "--token-endpoint", fake.TokenURL)

	const (
		score    = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
		lineitem = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
		nrps     = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
	)
	wantScopes := []string{lineitem, score}

	// A token from the platform, as a table.
	rows := tableRows(t, mustCLI(t, dir, cli, "platform", "token", "--registration-id", regID, "--scope", score, "--scope", lineitem).stdout)
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Rejected != "" || reqs[0].AccessToken == "" {
		t.Fatalf("the platform got %d requests (%+v), want one that verified", len(reqs), reqs)
	}
	if reqs[0].KeyID != kid || !strings.HasPrefix(reqs[0].UserAgent, "ltikeys/") {
		t.Errorf("the assertion's kid is %q (want %q), the User-Agent %q", reqs[0].KeyID, kid, reqs[0].UserAgent)
	}
	if got := strings.Fields(reqs[0].Form.Get("scope")); !slices.Equal(slices.Sorted(slices.Values(got)), wantScopes) {
		t.Errorf("the platform was asked for scope %q, want %q", got, wantScopes)
	}
	if rows["ACCESS TOKEN"] != reqs[0].AccessToken || rows["CACHED"] != "false" {
		t.Errorf("platform token table = %q; want the platform's token %q, CACHED false", rows, reqs[0].AccessToken)
	}
	if got := strings.Fields(rows["SCOPES"]); !slices.Equal(slices.Sorted(slices.Values(got)), wantScopes) {
		t.Errorf("SCOPES = %q, want %q", rows["SCOPES"], wantScopes)
	}
	expires, err := time.Parse(time.RFC3339, rows["EXPIRES"])
	if err != nil {
		t.Errorf("EXPIRES %q: %v", rows["EXPIRES"], err)
	}

	// The same token again, from the cache, by issuer and client id, the
	// scopes in another order, as JSON.
	var cached ltikeysv1.GetPlatformAccessTokenResponse
	parseJSON(t, mustCLI(t, dir, cli, "platform", "token", "--issuer", issuer, "--client-id", clientID,
		"--scope", lineitem, "--scope", score, "-o", "json").stdout, &cached)
	if !cached.GetCached() || cached.GetAccessToken() != reqs[0].AccessToken || cached.GetTokenType() != "Bearer" ||
		!cached.GetExpireTime().AsTime().Truncate(time.Second).Equal(expires) {
		t.Errorf("the second call returned %v; want the first token, cached, expiring at %s", &cached, expires)
	}
	if got := slices.Sorted(slices.Values(cached.GetScopes())); !slices.Equal(got, wantScopes) {
		t.Errorf("the second call's scopes = %q, want %q", got, wantScopes)
	}
	if n := fake.Count(); n != 1 {
		t.Errorf("the platform got %d requests after a cached call, want 1", n)
	}

	// The platform refuses: FAILED_PRECONDITION, exit 1, with its OAuth
	// error on lines of their own.
	fake.SetAnswer(platformtest.Answer{Status: 401, Error: "invalid_client", Description: "no such client"})
	res := wantCLIError(t, dir, cli, "FAILED_PRECONDITION", "platform", "token", "--registration-id", regID, "--scope", nrps)
	if res.exit != 1 || res.stdout != "" {
		t.Errorf("refused by the platform: exit %d, stdout %q; want 1 and nothing", res.exit, res.stdout)
	}
	for _, want := range []string{"invalid_client", "request id ", "\nerror: invalid_client\n", "\nerror_description: no such client\n"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("refused by the platform: stderr does not say %q:\n%s", want, res.stderr)
		}
	}
	if n := fake.Count(); n != 2 {
		t.Errorf("the platform got %d requests, want 2", n)
	}
	fake.SetAnswer(platformtest.Answer{})

	// --scope is required, and an exported LTIKEYS_SCOPE does not stand
	// in for it; nothing reaches the platform.
	for _, env := range [][]string{cli, append(slices.Clip(cli), "LTIKEYS_SCOPE="+score)} {
		res := wantCLIError(t, dir, env, "--scope is required", "platform", "token", "--registration-id", regID)
		if res.exit != 1 || res.stdout != "" {
			t.Errorf("without --scope: exit %d, stdout %q; want 1 and nothing", res.exit, res.stdout)
		}
		if slices.Contains(env, "LTIKEYS_SCOPE="+score) && !strings.Contains(res.stderr, "ignoring LTIKEYS_SCOPE") {
			t.Errorf("without --scope, LTIKEYS_SCOPE set: stderr does not say it ignored LTIKEYS_SCOPE:\n%s", res.stderr)
		}
	}
	// Nor does LTIKEYS_SCOPE add to the scopes given.
	parseJSON(t, mustCLI(t, dir, append(slices.Clip(cli), "LTIKEYS_SCOPE="+nrps), "platform", "token", "--registration-id", regID,
		"--scope", score, "--scope", lineitem, "-o", "json").stdout, &cached)
	if !cached.GetCached() || cached.GetAccessToken() != reqs[0].AccessToken || len(cached.GetScopes()) != 2 {
		t.Errorf("with LTIKEYS_SCOPE set: %v; want the first token, cached, for its two scopes", &cached)
	}
	// An exported LTIKEYS_REGISTRATION_ID names no registration.
	res = wantCLIError(t, dir, append(slices.Clip(cli), "LTIKEYS_REGISTRATION_ID="+regID), "registration-id", "platform", "token", "--scope", score)
	if res.stdout != "" || !strings.Contains(res.stderr, "ignoring LTIKEYS_REGISTRATION_ID") {
		t.Errorf("with only LTIKEYS_REGISTRATION_ID: stdout %q, stderr %q; want a refusal that says it ignored the variable", res.stdout, res.stderr)
	}
	if n := fake.Count(); n != 2 {
		t.Errorf("the platform got %d requests, want still 2", n)
	}
	p.stop(t)
}
