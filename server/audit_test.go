package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// auditLines parses JSON log output and returns its audit lines.
func auditLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		if line["msg"] == server.AuditMessage {
			lines = append(lines, line)
		}
	}
	return lines
}

// privateMemberInLog matches a private JWK member as a JSON member or as a
// key=value pair of the text format.
var privateMemberInLog = regexp.MustCompile(`"(d|p|q|dp|dq|qi)\\?"\s*:|\b(d|p|q|dp|dq|qi)=`)

// TestAuditLog runs a full flow, with valid, wrong and insufficient
// credentials, and checks that each key operation wrote exactly one audit
// line naming what it did, and that nothing logged holds a token or private
// key material.
func TestAuditLog(t *testing.T) {
	env := newAuthEnv(t, authEnvConfig{})
	ctx := context.Background()
	conn := env.dial(t, nil, "")
	keys := ltikeysv1.NewKeyServiceClient(conn)
	as := func(name string) context.Context {
		return withAuthorization(ctx, "Bearer "+env.tokens[name])
	}
	wrongToken, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	wrong := withAuthorization(ctx, "Bearer "+wrongToken)
	type want struct {
		method, caller, registrationID, kid string
		code                                codes.Code
	}
	var wants []want
	expect := func(err error, code codes.Code, w want) {
		t.Helper()
		if got := status.Code(err); got != code {
			t.Fatalf("%s as %q: code %v (%v), want %v", w.method, w.caller, got, err, code)
		}
		w.code = code
		wants = append(wants, w)
	}

	created, err := keys.CreateRegistration(as("manager"), validCreate("audit"))
	id, firstKid := created.GetRegistration().GetId(), created.GetKey().GetKid()
	expect(err, codes.OK, want{"CreateRegistration", "manager", id, firstKid, 0})
	_, err = keys.CreateRegistration(as("reader"), validCreate("audit-denied"))
	expect(err, codes.PermissionDenied, want{"CreateRegistration", "reader", "", "", 0})
	_, err = keys.CreateRegistration(wrong, validCreate("audit-wrong"))
	expect(err, codes.Unauthenticated, want{"CreateRegistration", "", "", "", 0})

	byID := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}}
	got, err := keys.GetToolKey(as("exporter"), byID)
	expect(err, codes.OK, want{"GetToolKey", "exporter", id, firstKid, 0})
	privateJWKs := []string{got.GetPrivateJwk()}
	byPair := &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
		Issuer: created.GetRegistration().GetIssuer(), ClientId: created.GetRegistration().GetClientId()}}}
	_, err = keys.GetToolKey(as("admin"), byPair)
	expect(err, codes.OK, want{"GetToolKey", "admin", id, firstKid, 0})
	// Refused by the tap handle, before the request (and its id) is read.
	_, err = keys.GetToolKey(ctx, byID)
	expect(err, codes.Unauthenticated, want{"GetToolKey", "", "", "", 0})
	_, err = keys.GetToolKey(as("manager"), byID)
	expect(err, codes.PermissionDenied, want{"GetToolKey", "manager", id, "", 0})

	rotated, err := keys.RotateKey(as("manager"), rotateNow(id))
	newKid := rotated.GetNewKey().GetKid()
	expect(err, codes.OK, want{"RotateKey", "manager", id, newKid, 0})
	rotateLine := len(wants) - 1
	_, err = keys.RotateKey(wrong, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
	expect(err, codes.Unauthenticated, want{"RotateKey", "", id, "", 0})
	got, err = keys.GetToolKey(as("exporter"), byID)
	expect(err, codes.OK, want{"GetToolKey", "exporter", id, newKid, 0})
	privateJWKs = append(privateJWKs, got.GetPrivateJwk())
	_, err = keys.SignJwt(as("signer"), &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: id}, ClaimsJson: `{"sub":"audited"}`})
	expect(err, codes.OK, want{"SignJwt", "signer", id, newKid, 0})
	_, err = keys.CreateClientAssertion(as("signer"), &ltikeysv1.CreateClientAssertionRequest{
		Lookup: &ltikeysv1.CreateClientAssertionRequest_IssuerClient{IssuerClient: byPair.GetIssuerClient()}})
	expect(err, codes.OK, want{"CreateClientAssertion", "signer", id, newKid, 0})

	_, err = keys.RetireKey(as("reader"), &ltikeysv1.RetireKeyRequest{Kid: firstKid})
	expect(err, codes.PermissionDenied, want{"RetireKey", "reader", "", firstKid, 0})
	_, err = keys.RetireKey(as("manager"), &ltikeysv1.RetireKeyRequest{Kid: newKid})
	expect(err, codes.FailedPrecondition, want{"RetireKey", "manager", "", newKid, 0})
	_, err = keys.RetireKey(as("manager"), &ltikeysv1.RetireKeyRequest{Kid: firstKid})
	expect(err, codes.OK, want{"RetireKey", "manager", id, firstKid, 0})

	// Public calls are not audited.
	if _, err := ltikeysv1.NewJwksServiceClient(conn).GetJwks(ctx, &ltikeysv1.GetJwksRequest{}); err != nil {
		t.Fatal(err)
	}

	logs := env.logs.String()
	lines := auditLines(t, logs)
	if len(lines) != len(wants) {
		t.Fatalf("%d audit lines for %d key operations:\n%s", len(lines), len(wants), logs)
	}
	for i, w := range wants {
		line := lines[i]
		fields := map[string]string{
			"method":          "/ltikeys.v1.KeyService/" + w.method,
			"caller":          w.caller,
			"registration_id": w.registrationID,
			"kid":             w.kid,
			"code":            w.code.String(),
		}
		for k, v := range fields {
			if line[k] != v {
				t.Errorf("audit line %d (%s as %q): %s = %v, want %q", i, w.method, w.caller, k, line[k], v)
			}
		}
		if _, ok := line["peer"]; !ok {
			t.Errorf("audit line %d has no peer", i)
		}
		wantLevel := "INFO"
		if w.code == codes.Unauthenticated || w.code == codes.PermissionDenied {
			wantLevel = "WARN"
		}
		if line["level"] != wantLevel {
			t.Errorf("audit line %d (%v) level = %v, want %s", i, w.code, line["level"], wantLevel)
		}
	}
	if prev := lines[rotateLine]["previous_kid"]; prev != firstKid {
		t.Errorf("RotateKey audit previous_kid = %v, want %q", prev, firstKid)
	}

	assertNoSecrets(t, logs, env, wrongToken, privateJWKs)
}

// assertNoSecrets fails if logs hold a token (or its hash), a private JWK
// or any of its private values, or a private JWK member.
func assertNoSecrets(t *testing.T, logs string, env *authEnv, wrongToken string, privateJWKs []string) {
	t.Helper()
	secrets := map[string]string{"wrong token": wrongToken, "wrong token hash": server.HashToken(wrongToken)}
	for name, token := range env.tokens {
		secrets["token "+name] = token
		secrets["token "+name+" without prefix"] = strings.TrimPrefix(token, server.TokenPrefix)
	}
	for i, private := range privateJWKs {
		secrets[fmt.Sprint("private_jwk ", i)] = private
		var jwk map[string]string
		if err := json.Unmarshal([]byte(private), &jwk); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			v := jwk[m]
			if v == "" {
				t.Fatalf("private JWK %d lacks %q", i, m)
			}
			raw, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			secrets[fmt.Sprintf("member %s of private_jwk %d", m, i)] = v
			secrets[fmt.Sprintf("member %s of private_jwk %d in standard base64", m, i)] = base64.StdEncoding.EncodeToString(raw)
		}
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %s", name)
		}
	}
	for _, word := range []string{"private_jwk", "PrivateJwk", "PRIVATE"} {
		if strings.Contains(logs, word) {
			t.Errorf("the logs mention %q", word)
		}
	}
	if m := privateMemberInLog.FindString(logs); m != "" {
		t.Errorf("the logs hold a private JWK member: %q", m)
	}
}

// TestAuditNamesTheResolvedRegistration checks the registration_id of the
// audit lines of calls that name their registration by issuer and
// client_id: the id the lookup resolved, on a cold lookup and on a warm
// one, also when the call fails after the lookup; empty when it fails
// before. Ids a request names in upper case are logged in lower case.
func TestAuditNamesTheResolvedRegistration(t *testing.T) {
	ctx := context.Background()
	env := newAuthEnv(t, authEnvConfig{})
	keys := env.admin
	created := env.create(t)
	id := created.GetRegistration().GetId()
	pair := &ltikeysv1.IssuerClient{Issuer: created.GetRegistration().GetIssuer(), ClientId: created.GetRegistration().GetClientId()}
	unknown := &ltikeysv1.IssuerClient{Issuer: pair.GetIssuer(), ClientId: "no-such-client"}

	// A registration whose stored token endpoint is empty, as only a row
	// written beneath the API can be: create and update require one.
	old := env.create(t)
	oldID := old.GetRegistration().GetId()
	if _, err := env.store.UpdateRegistration(ctx, oldID, func(r storage.Registration) (storage.Registration, error) {
		r.TokenEndpoint = ""
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	oldPair := &ltikeysv1.IssuerClient{Issuer: old.GetRegistration().GetIssuer(), ClientId: old.GetRegistration().GetClientId()}

	toolKey := func(ic *ltikeysv1.IssuerClient) error {
		_, err := keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: ic}})
		return err
	}
	signJWT := func(ic *ltikeysv1.IssuerClient, claims string) error {
		_, err := keys.SignJwt(ctx, &ltikeysv1.SignJwtRequest{Lookup: &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: ic}, ClaimsJson: claims})
		return err
	}
	assertion := func(ic *ltikeysv1.IssuerClient) error {
		_, err := keys.CreateClientAssertion(ctx, &ltikeysv1.CreateClientAssertionRequest{Lookup: &ltikeysv1.CreateClientAssertionRequest_IssuerClient{IssuerClient: ic}})
		return err
	}
	upper := strings.ToUpper(id)
	for _, tt := range []struct {
		name, method   string
		call           func() error
		code           codes.Code
		registrationID string
	}{
		{"GetToolKey, cold", "GetToolKey", func() error { return toolKey(pair) }, codes.OK, id},
		{"GetToolKey, warm", "GetToolKey", func() error { return toolKey(pair) }, codes.OK, id},
		{"SignJwt, unknown pair", "SignJwt", func() error { return signJWT(unknown, `{}`) }, codes.NotFound, ""},
		{"SignJwt, warm", "SignJwt", func() error { return signJWT(pair, `{"sub":"a"}`) }, codes.OK, id},
		{"SignJwt, invalid claims", "SignJwt", func() error { return signJWT(pair, `[]`) }, codes.InvalidArgument, ""},
		{"CreateClientAssertion", "CreateClientAssertion", func() error { return assertion(pair) }, codes.OK, id},
		{"CreateClientAssertion, unknown pair", "CreateClientAssertion", func() error { return assertion(unknown) }, codes.NotFound, ""},
		{"CreateClientAssertion, no token endpoint", "CreateClientAssertion", func() error { return assertion(oldPair) }, codes.FailedPrecondition, oldID},
		{"GetToolKey by an upper-case id", "GetToolKey", func() error {
			_, err := keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: upper}})
			return err
		}, codes.OK, id},
		{"ListKeys by an upper-case id", "ListKeys", func() error {
			_, err := keys.ListKeys(ctx, &ltikeysv1.ListKeysRequest{RegistrationId: upper})
			return err
		}, codes.OK, id},
		{"DeleteRegistration by an upper-case id", "DeleteRegistration", func() error {
			_, err := keys.DeleteRegistration(ctx, &ltikeysv1.DeleteRegistrationRequest{Id: upper})
			return err
		}, codes.OK, id},
		{"GetToolKey of a deleted registration", "GetToolKey", func() error { return toolKey(pair) }, codes.NotFound, ""},
	} {
		before := len(auditLines(t, env.logs.String()))
		if err := tt.call(); status.Code(err) != tt.code {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.code)
		}
		lines := auditLines(t, env.logs.String())
		if len(lines) != before+1 {
			t.Fatalf("%s: %d audit lines, want 1", tt.name, len(lines)-before)
		}
		line := lines[before]
		for k, want := range map[string]string{
			"method":          "/ltikeys.v1.KeyService/" + tt.method,
			"code":            tt.code.String(),
			"registration_id": tt.registrationID,
		} {
			if line[k] != want {
				t.Errorf("%s: audit %s = %v, want %q", tt.name, k, line[k], want)
			}
		}
	}

	// With export disabled, GetToolKey is refused before any lookup: a
	// lookup by issuer and client_id resolves nothing, one by id names the
	// id asked for.
	noExport := newAuthEnv(t, authEnvConfig{disableKeyExport: true})
	reg := noExport.create(t).GetRegistration()
	for _, req := range []*ltikeysv1.GetToolKeyRequest{
		{Lookup: &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: reg.GetIssuer(), ClientId: reg.GetClientId()}}},
		{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: strings.ToUpper(reg.GetId())}},
	} {
		if _, err := noExport.admin.GetToolKey(ctx, req); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetToolKey with export disabled: %v, want PermissionDenied", err)
		}
	}
	lines := auditLines(t, noExport.logs.String())
	if len(lines) < 2 {
		t.Fatalf("%d audit lines, want at least 2", len(lines))
	}
	for i, want := range []string{"", reg.GetId()} {
		if got := lines[len(lines)-2+i]["registration_id"]; got != want {
			t.Errorf("GetToolKey with export disabled, lookup %d: audit registration_id = %v, want %q", i, got, want)
		}
	}
}
