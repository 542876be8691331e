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

	rotated, err := keys.RotateKey(as("manager"), &ltikeysv1.RotateKeyRequest{RegistrationId: id})
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
	expect(err, codes.OK, want{"CreateClientAssertion", "signer", "", newKid, 0})

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
