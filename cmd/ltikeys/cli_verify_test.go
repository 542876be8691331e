package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
)

// runCLIInput runs the CLI as runCLI does, with stdin as its standard
// input.
func runCLIInput(t *testing.T, dir string, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := command(ctx, dir, env, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.exit = exit.ExitCode()
	case err != nil:
		t.Fatalf("ltikeys %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// verifiedOutput splits what "platform verify" prints as a table into its
// rows and the claims, the JSON object after the empty line.
func verifiedOutput(t *testing.T, out string) (map[string]string, map[string]any) {
	t.Helper()
	table, claimsText, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("platform verify printed no claims after its table:\n%s", out)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(claimsText), &claims); err != nil {
		t.Fatalf("the claims platform verify printed are not a JSON object: %v\n%s", err, claimsText)
	}
	if !strings.HasPrefix(claimsText, "{\n  \"") {
		t.Errorf("the claims are not indented:\n%s", claimsText)
	}
	return tableRows(t, table+"\n"), claims
}

// tamper returns token with its payload's claim name set to v and the
// signature left as it was.
func tamper(t *testing.T, token, name string, v any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims[name] = v
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestCLIPlatformVerify drives "ltikeys platform verify" against a real
// serve and a fake platform that signs launches and serves its JWK Set
// over TLS, whose CA serve trusts through SSL_CERT_FILE: a launch
// verified by registration id, as a table with its claims; the same token
// again refused with NONCE_REPLAYED; another by issuer and client id as
// JSON, and one read from standard input with no lookup at all; a
// tampered token and a wrong nonce refused with their reasons, neither
// using up the nonce; --id-token and --nonce required, and LTIKEYS_NONCE
// ignored. The platform's keys are fetched once for all of it.
func TestCLIPlatformVerify(t *testing.T) {
	dir := t.TempDir()
	const token = "ltk_platform-verify-test"
	sum := sha256.Sum256([]byte(token))
	const clientID = "tool-1"
	launcher := platformtest.NewLauncher(t, platformtest.LauncherOptions{ClientID: clientID})
	caFile := filepath.Join(dir, "platform-ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: launcher.CA.Certificate.Raw})))
	p := startServe(t, dir, []string{
		"LTIKEYS_TOKENS=app:keys.admin,platform.verify:" + hex.EncodeToString(sum[:]),
		"SSL_CERT_FILE=" + caFile,
	})
	cli := []string{"LTIKEYS_SERVER=" + p.grpcAddr, "LTIKEYS_TOKEN=" + token}

	var created ltikeysv1.CreateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, cli, "registration", "create", "-o", "json",
		"--issuer", launcher.Issuer, "--client-id", clientID,
		"--auth-endpoint", launcher.URL+"/auth", "--jwks-uri", launcher.JWKSURL, "--token-endpoint", launcher.URL+"/token",
		"--deployment-id", launcher.DeploymentID).stdout, &created)
	regID := created.GetRegistration().GetId()

	sign := func(claims platformtest.Claims) string {
		t.Helper()
		jwt, err := launcher.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		return jwt
	}
	expires := func(claims platformtest.Claims) string {
		return time.Unix(claims["exp"].(int64), 0).UTC().Format(time.RFC3339)
	}

	// A launch, by registration id, as a table and its claims.
	launch := launcher.LaunchClaims("nonce-1")
	jwt := sign(launch)
	rows, claims := verifiedOutput(t, mustCLI(t, dir, cli, "platform", "verify", "--id-token", jwt, "--nonce", "nonce-1", "--registration-id", regID).stdout)
	want := map[string]string{
		"REGISTRATION ID": regID,
		"ISSUER":          launcher.Issuer,
		"CLIENT ID":       clientID,
		"KID":             launcher.KeyID(),
		"DEPLOYMENT ID":   launcher.DeploymentID,
		"MESSAGE TYPE":    "LtiResourceLinkRequest",
		"EXPIRES":         expires(launch),
	}
	if !maps.Equal(rows, want) {
		t.Errorf("platform verify table = %q, want %q", rows, want)
	}
	if got := slices.Sorted(maps.Keys(claims)); !slices.Equal(got, launch.Names()) {
		t.Errorf("the claims shown are %q, want those signed, %q", got, launch.Names())
	}
	for _, name := range []string{"iss", "aud", "sub", "nonce", "name", platformtest.ClaimDeploymentID} {
		if claims[name] != launch[name] {
			t.Errorf("claim %s shown as %v, signed as %v", name, claims[name], launch[name])
		}
	}
	if n := launcher.JWKSFetches(); n != 1 {
		t.Errorf("the platform's key set was fetched %d times for the first launch, want 1", n)
	}

	// The same token again: refused, whoever names the registration.
	res := wantCLIError(t, dir, cli, "INVALID_ARGUMENT", "platform", "verify", "--id-token", jwt, "--nonce", "nonce-1", "--registration-id", regID)
	if res.exit != 1 || res.stdout != "" {
		t.Errorf("a replay: exit %d, stdout %q; want 1 and nothing", res.exit, res.stdout)
	}
	for _, want := range []string{"request id ", "\nreason: NONCE_REPLAYED\n"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("a replay: stderr does not say %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(res.stderr, jwt) {
		t.Errorf("a replay: stderr holds the token:\n%s", res.stderr)
	}

	// Another launch, by issuer and client id, as JSON.
	launch = launcher.LaunchClaims("nonce-2")
	var resp ltikeysv1.VerifyPlatformTokenResponse
	parseJSON(t, mustCLI(t, dir, cli, "platform", "verify", "--id-token", sign(launch), "--nonce", "nonce-2",
		"--issuer", launcher.Issuer, "--client-id", clientID, "-o", "json").stdout, &resp)
	if resp.GetRegistration().GetId() != regID || resp.GetKid() != launcher.KeyID() || resp.GetDeploymentId() != launcher.DeploymentID ||
		resp.GetMessageType() != "LtiResourceLinkRequest" || resp.GetExpireTime().AsTime().Unix() != launch["exp"].(int64) {
		t.Errorf("platform verify -o json = %v; want registration %s, kid %s, deployment %s, expiring at %d",
			&resp, regID, launcher.KeyID(), launcher.DeploymentID, launch["exp"])
	}
	claims = nil
	if err := json.Unmarshal([]byte(resp.GetClaimsJson()), &claims); err != nil || claims["nonce"] != "nonce-2" || claims["sub"] != launch["sub"] {
		t.Errorf("claims_json %q (%v); want the claims signed, nonce nonce-2", resp.GetClaimsJson(), err)
	}

	// From standard input, a newline after it, with no lookup: the
	// registration is the one the token's iss and aud name.
	launch = launcher.LaunchClaims("nonce-3")
	out := runCLIInput(t, dir, cli, sign(launch)+"\n", "platform", "verify", "--id-token", "-", "--nonce", "nonce-3")
	if out.exit != 0 {
		t.Fatalf("platform verify --id-token -: exit %d\n%s", out.exit, out.stderr)
	}
	rows, claims = verifiedOutput(t, out.stdout)
	if rows["REGISTRATION ID"] != regID || rows["EXPIRES"] != expires(launch) || claims["nonce"] != "nonce-3" {
		t.Errorf("platform verify --id-token -: table %q, nonce %v; want registration %s, nonce-3", rows, claims["nonce"], regID)
	}

	// A tampered token and a wrong nonce are refused with their reasons,
	// and leave the nonce unused: the token as signed verifies after them.
	launch = launcher.LaunchClaims("nonce-4")
	jwt = sign(launch)
	for _, tt := range []struct {
		name, token, nonce, reason string
	}{
		{"tampered", tamper(t, jwt, "sub", "user-admin"), "nonce-4", "BAD_SIGNATURE"},
		{"another nonce", jwt, "nonce-5", "NONCE_MISMATCH"},
	} {
		res := wantCLIError(t, dir, cli, "INVALID_ARGUMENT", "platform", "verify", "--id-token", tt.token, "--nonce", tt.nonce, "--registration-id", regID)
		if res.exit != 1 || res.stdout != "" || !strings.Contains(res.stderr, "\nreason: "+tt.reason+"\n") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, nothing, and reason %s on a line of its own", tt.name, res.exit, res.stdout, res.stderr, tt.reason)
		}
	}
	rows, _ = verifiedOutput(t, mustCLI(t, dir, cli, "platform", "verify", "--id-token", jwt, "--nonce", "nonce-4").stdout)
	if rows["REGISTRATION ID"] != regID {
		t.Errorf("the token as signed, after the refusals: table %q, want registration %s", rows, regID)
	}

	// --nonce is required, and an exported LTIKEYS_NONCE does not stand in
	// for it; so is --id-token, and a token on standard input.
	jwt = sign(launcher.LaunchClaims("nonce-6"))
	for _, env := range [][]string{cli, append(slices.Clip(cli), "LTIKEYS_NONCE=nonce-6")} {
		res := wantCLIError(t, dir, env, "--nonce is required", "platform", "verify", "--id-token", jwt, "--registration-id", regID)
		if res.exit != 1 || res.stdout != "" {
			t.Errorf("without --nonce: exit %d, stdout %q; want 1 and nothing", res.exit, res.stdout)
		}
		if slices.Contains(env, "LTIKEYS_NONCE=nonce-6") && !strings.Contains(res.stderr, "ignoring LTIKEYS_NONCE") {
			t.Errorf("without --nonce, LTIKEYS_NONCE set: stderr does not say it ignored LTIKEYS_NONCE:\n%s", res.stderr)
		}
	}
	if res := wantCLIError(t, dir, cli, "--id-token is required", "platform", "verify", "--nonce", "nonce-6"); res.exit != 1 || res.stdout != "" {
		t.Errorf("without --id-token: exit %d, stdout %q; want 1 and nothing", res.exit, res.stdout)
	}
	if res := runCLIInput(t, dir, cli, " \n", "platform", "verify", "--id-token", "-", "--nonce", "nonce-6"); res.exit != 1 || !strings.Contains(res.stderr, "standard input holds no token") {
		t.Errorf("--id-token - with nothing on standard input: exit %d, stderr %q; want 1 and a refusal", res.exit, res.stderr)
	}
	// None of those used the nonce up.
	mustCLI(t, dir, cli, "platform", "verify", "--id-token", jwt, "--nonce", "nonce-6")

	if n := launcher.JWKSFetches(); n != 1 {
		t.Errorf("the platform's key set was fetched %d times, want once: later verifications use the copy in memory", n)
	}
	p.stop(t)
}
