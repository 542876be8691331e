package server_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/server/platform/platformtest"
	"github.com/ltikeys/ltikeys/storage"
)

// launchEnv is a platformEnv with a platform on the launch side: a
// Launcher that signs id_tokens and serves its key set over TLS, a
// registration whose jwks_uri is the Launcher's JWKS URL (a loopback
// literal, which the address guard allows), and ltikeys processes
// (verifiers) that serve VerifyPlatformToken, each with a platform key
// cache of its own.
//
// Everything reads the platformEnv's clock: the Launcher's iat and exp,
// the key caches' freshness and cooldowns, the stores' nonce expiries.
// Tokens are signed through the env, which remembers each token and the
// nonce, sub, deployment_id and tampered claim values it carried. When
// the test ends, no line logged (by the KeyService, the audit, the
// request log and the platform key cache, at debug level and so at info)
// and no error a call returned may hold any of them, and no label of a
// verifier's metrics may hold a URL, a kid or the registration id.
type launchEnv struct {
	env *platformEnv
	// url is the database's.
	url      string
	launcher *platformtest.Launcher
	// reg is the registration of the Launcher, created through v. It
	// allows the deployment ids launcher.DeploymentID and otherDeployment.
	reg             *ltikeysv1.Registration
	otherDeployment string
	// v is the first verifier.
	v *verifier

	mu sync.Mutex
	// secrets are what must not leak, by what they are.
	secrets map[string]string
	// kids are the kids tokens named that the Launcher never published.
	kids      []string
	verifiers []*verifier
}

// verifier is one ltikeys process of a launchEnv: a node whose KeyService
// verifies platform tokens with a key cache of its own, on a store that
// counts the SQL statements it runs.
type verifier struct {
	*node
	statements *atomic.Int64
}

// launchEnvOptions varies a launchEnv; the zero value takes the key
// cache's defaults.
type launchEnvOptions struct {
	// keys configures the verifiers' key caches; HTTPClient, Now,
	// Observer and Logger are set by the env.
	keys platform.KeySetOptions
}

// startLaunchEnv starts a platformEnv on the database at databaseURL, a
// Launcher whose certificate the platformEnv's CA issued, a verifier, and
// the Launcher's registration, created through the verifier.
func startLaunchEnv(t *testing.T, databaseURL string, o launchEnvOptions) *launchEnv {
	t.Helper()
	e := startPlatformEnv(t, databaseURL, platformEnvOptions{})
	le := &launchEnv{
		env: e,
		url: databaseURL,
		launcher: platformtest.NewLauncher(t, platformtest.LauncherOptions{
			ClientID:     platformClientID,
			DeploymentID: "deployment-" + rand.Text(),
			CA:           e.platform.CA,
			Now:          e.clock.Now,
		}),
		otherDeployment: "deployment-" + rand.Text(),
		secrets:         map[string]string{},
	}
	le.remember("the deployment id", le.launcher.DeploymentID)
	// Registered before the verifier starts, so it runs once it stopped.
	t.Cleanup(func() { le.checkNothingLeaked(t) })
	le.v = le.verifier(t, o)
	created, err := le.v.keys.CreateRegistration(e.as("manager"), &ltikeysv1.CreateRegistrationRequest{
		Issuer:        le.launcher.Issuer,
		ClientId:      platformClientID,
		AuthEndpoint:  le.launcher.URL + "/auth",
		JwksUri:       le.launcher.JWKSURL,
		TokenEndpoint: le.launcher.URL + "/token",
		DeploymentIds: []string{le.launcher.DeploymentID, le.otherDeployment},
	})
	if err != nil {
		t.Fatalf("CreateRegistration with jwks_uri %s: %v", le.launcher.JWKSURL, err)
	}
	le.reg = created.GetRegistration()
	return le
}

// verifier starts another ltikeys process on le's database, with a
// store, JWKS cache, metrics and platform key cache of its own.
func (le *launchEnv) verifier(t *testing.T, o launchEnvOptions) *verifier {
	t.Helper()
	e := le.env
	var statements atomic.Int64
	n := e.openNode(t, le.url, storage.WithStatementHook(func(context.Context) { statements.Add(1) }))
	opts := o.keys
	opts.Now = e.clock.Now
	opts.Observer = n.metrics
	opts.Logger = e.log.With("component", "platform")
	n.platformKeys = newPlatformKeys(t, e.platform.CA.Pool, opts)
	e.serve(t, n, platform.HTTPOptions{})
	v := &verifier{node: n, statements: &statements}
	le.mu.Lock()
	le.verifiers = append(le.verifiers, v)
	le.mu.Unlock()
	return v
}

// newPlatformKeys returns a platform key cache whose HTTP client trusts
// the certificates of roots, and only them.
func newPlatformKeys(t testing.TB, roots *x509.CertPool, opts platform.KeySetOptions) *platform.KeySetCache {
	t.Helper()
	hc, err := platform.NewHTTPClient(platform.HTTPOptions{
		RootCAs: roots,
		Version: "test",
		// A proxy in the environment would take the requests elsewhere.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	opts.HTTPClient = hc
	keys, err := platform.NewKeySetCache(opts)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// remember adds value to what must not leak.
func (le *launchEnv) remember(what, value string) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.secrets[what+" "+value] = value
}

// nonce returns a new nonce, remembered.
func (le *launchEnv) nonce() string {
	n := "nonce-" + rand.Text()
	le.remember("a nonce", n)
	return n
}

// claims returns the claims of a valid launch with a new nonce, and the
// nonce; their sub is remembered.
func (le *launchEnv) claims() (platformtest.Claims, string) {
	nonce := le.nonce()
	c := le.launcher.LaunchClaims(nonce)
	le.remember("a sub", c["sub"].(string))
	return c, nonce
}

// sign signs c with the Launcher's current key, as o says, and remembers
// the token.
func (le *launchEnv) sign(t *testing.T, c platformtest.Claims, o platformtest.SignOptions) string {
	t.Helper()
	token, err := le.launcher.SignWith(c, o)
	if err != nil {
		t.Fatal(err)
	}
	le.rememberToken(token)
	return token
}

// rememberToken remembers token and, if it is a compact JWS, its
// signature and half of it (a signature cut at a line break, or quoted
// in part).
func (le *launchEnv) rememberToken(token string) {
	le.remember("a token", token)
	if parts := strings.Split(token, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		le.remember("a signature", parts[2])
		le.remember("half a signature", parts[2][:len(parts[2])/2])
	}
}

// madeUpKid remembers kid as one the Launcher never published, which no
// metric label may hold.
func (le *launchEnv) madeUpKid(kid string) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.kids = append(le.kids, kid)
}

// withKid returns token with its header naming kid instead, and
// remembers kid as one the Launcher never published. The signature no
// longer verifies, which does not matter: the kid is looked up first.
func (le *launchEnv) withKid(t *testing.T, token, kid string) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(token, ".")
	out := base64.RawURLEncoding.EncodeToString(header) + "." + rest
	le.madeUpKid(kid)
	le.remember("a token", out)
	return out
}

// payload returns the payload a compact token signed, decoded.
func payload(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verifyByID asks to verify token, issued for nonce, for the registration
// id.
func verifyByID(id, token, nonce string) *ltikeysv1.VerifyPlatformTokenRequest {
	return &ltikeysv1.VerifyPlatformTokenRequest{
		Token: token, Nonce: nonce,
		Lookup: &ltikeysv1.VerifyPlatformTokenRequest_RegistrationId{RegistrationId: id},
	}
}

// verifyByIssuerClient asks to verify token for the registration reg
// names by its issuer and client_id.
func verifyByIssuerClient(reg *ltikeysv1.Registration, token, nonce string) *ltikeysv1.VerifyPlatformTokenRequest {
	return &ltikeysv1.VerifyPlatformTokenRequest{
		Token: token, Nonce: nonce,
		Lookup: &ltikeysv1.VerifyPlatformTokenRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{
			Issuer: reg.GetIssuer(), ClientId: reg.GetClientId(),
		}},
	}
}

// verifyUnnamed asks to verify token for the registration its claims
// name.
func verifyUnnamed(token, nonce string) *ltikeysv1.VerifyPlatformTokenRequest {
	return &ltikeysv1.VerifyPlatformTokenRequest{Token: token, Nonce: nonce}
}

// verify calls VerifyPlatformToken on v as the "verifier" caller.
func (le *launchEnv) verify(v *verifier, req *ltikeysv1.VerifyPlatformTokenRequest) (*ltikeysv1.VerifyPlatformTokenResponse, error) {
	return v.keys.VerifyPlatformToken(le.env.as("verifier"), req)
}

// launch signs a valid launch with a new nonce and verifies it on v by
// registration id, failing the test on an error. It returns the token and
// the nonce too.
func (le *launchEnv) launch(t *testing.T, v *verifier) (resp *ltikeysv1.VerifyPlatformTokenResponse, token, nonce string) {
	t.Helper()
	c, nonce := le.claims()
	token = le.sign(t, c, platformtest.SignOptions{})
	resp, err := le.verify(v, verifyByID(le.reg.GetId(), token, nonce))
	if err != nil {
		t.Fatalf("VerifyPlatformToken of a valid launch: %v", err)
	}
	return resp, token, nonce
}

// checkNothingLeaked fails if the logs or the errors returned hold a
// token, a signature, a nonce, a sub, a deployment id or a tampered claim
// value, or if a verifier's metric labels hold a URL, a kid or the
// registration id.
func (le *launchEnv) checkNothingLeaked(t *testing.T) {
	e := le.env
	logs, errs := e.logs.String(), e.errs.text(t)
	le.mu.Lock()
	defer le.mu.Unlock()
	// The search below means something only if the audit and the key
	// cache did log.
	if len(le.verifiers) > 0 && le.reg != nil {
		for _, want := range []string{`"method":"` + ltikeysv1.KeyService_VerifyPlatformToken_FullMethodName + `"`, `"msg":"platform key set fetch"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("no log line holds %s", want)
			}
		}
	}
	for what, s := range le.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %s", what)
		}
		if strings.Contains(errs, s) {
			t.Errorf("an error returned holds %s", what)
		}
	}
	bad := append([]string{"://", "127.0.0.1", le.launcher.Addr, le.reg.GetId()}, le.kids...)
	bad = append(bad, le.launcher.PublishedKeyIDs()...)
	for i, v := range le.verifiers {
		for _, line := range strings.Split(scrape(t, v.metrics), "\n") {
			labels, _, ok := strings.Cut(line, "}")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			_, labels, _ = strings.Cut(labels, "{")
			for _, b := range bad {
				if b != "" && strings.Contains(labels, b) {
					t.Errorf("verifier %d: metric labels hold %q: %s", i, b, line)
				}
			}
		}
	}
}

// verifyRefusal is what an error of VerifyPlatformToken must carry.
type verifyRefusal struct {
	code   codes.Code
	reason string
	// field, if set, is the one field a google.rpc.BadRequest must name;
	// without it there must be no BadRequest.
	field string
	// retry, if set, is the delay of the RetryInfo there must be; without
	// it there must be none.
	retry time.Duration
}

// invalid is the refusal of a token that fails the check of reason.
func invalid(reason string) verifyRefusal {
	return verifyRefusal{code: codes.InvalidArgument, reason: reason}
}

// checkRefusal fails unless err is want: its code, one ErrorInfo of the
// domain platform.ltikeys.v1 with want's reason, the BadRequest and
// RetryInfo want says, and nothing else.
func checkRefusal(t *testing.T, err error, want verifyRefusal) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want.code {
		t.Fatalf("code %v (%v), want %v", st.Code(), err, want.code)
	}
	var (
		infos   []*errdetails.ErrorInfo
		fields  []string
		retries []*errdetails.RetryInfo
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			infos = append(infos, d)
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		case *errdetails.RetryInfo:
			retries = append(retries, d)
		default:
			t.Errorf("unexpected detail %T", d)
		}
	}
	if len(infos) != 1 {
		t.Fatalf("%d ErrorInfo details, want 1: %v", len(infos), err)
	}
	if got := infos[0]; got.GetReason() != want.reason || got.GetDomain() != "platform.ltikeys.v1" {
		t.Errorf("ErrorInfo %s/%s (%s), want platform.ltikeys.v1/%s", got.GetDomain(), got.GetReason(), st.Message(), want.reason)
	}
	switch {
	case want.field == "" && len(fields) != 0:
		t.Errorf("a BadRequest naming %q, want none", fields)
	case want.field != "" && !slices.Equal(fields, []string{want.field}):
		t.Errorf("BadRequest names %q, want %q", fields, want.field)
	}
	switch {
	case want.retry == 0 && len(retries) != 0:
		t.Errorf("a RetryInfo of %v, want none", retries[0].GetRetryDelay().AsDuration())
	case want.retry != 0 && len(retries) != 1:
		t.Errorf("%d RetryInfo details, want one of %v", len(retries), want.retry)
	case want.retry != 0 && retries[0].GetRetryDelay().AsDuration() != want.retry:
		t.Errorf("RetryInfo %v, want %v", retries[0].GetRetryDelay().AsDuration(), want.retry)
	}
}

// verifications is the series of VerifyPlatformToken's answers with
// outcome.
func verifications(outcome string) string {
	return `ltikeys_platform_verifications_total{outcome="` + outcome + `"}`
}

// keySetFetches is the series of the fetches of platforms' key sets with
// outcome, made for reason.
func keySetFetches(outcome platform.Outcome, reason platform.FetchReason) string {
	return fmt.Sprintf(`ltikeys_platform_jwks_fetches_total{outcome=%q,reason=%q}`, outcome, reason)
}

// verificationSeries reads every series of VerifyPlatformToken's answers
// and of the key set fetches from m, by name and labels.
func verificationSeries(t *testing.T, m *server.Metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if !strings.HasPrefix(line, "ltikeys_platform_verifications_total{") && !strings.HasPrefix(line, "ltikeys_platform_jwks_fetches_total{") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("metrics line %q", line)
		}
		var f float64
		if _, err := fmt.Sscan(value, &f); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[series] = f
	}
	return out
}

// checkMoved fails unless, of the series verificationSeries reads, those
// in want, and only those, moved since before, each by its value in want.
func checkMoved(t *testing.T, m *server.Metrics, before, want map[string]float64) {
	t.Helper()
	after := verificationSeries(t, m)
	for s, d := range want {
		if _, ok := after[s]; !ok {
			t.Errorf("no series %s", s)
			continue
		}
		if got := after[s] - before[s]; got != d {
			t.Errorf("%s moved by %v, want %v", s, got, d)
		}
	}
	for s, v := range after {
		if _, ok := want[s]; !ok && v != before[s] {
			t.Errorf("%s moved by %v, want 0", s, v-before[s])
		}
	}
}
