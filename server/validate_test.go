package server_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage"
)

// input is one value of a registration field, named for the test log.
type input struct{ name, value string }

// refusedURLs are refused as the issuer and as every endpoint.
var refusedURLs = []input{
	{"empty", ""},
	{"blank", "   "},
	{"javascript", "javascript:alert(1)"},
	{"not a URL", "not a url at all"},
	{"relative", "/api/lti/authorize_redirect"},
	{"scheme-relative", "//host.example/t"},
	{"opaque", "https:host.example/t"},
	{"mailto", "mailto:lti@host.example"},
	{"no host", "https:///x"},
	{"empty host with a port", "https://:443/t"},
	{"port 99999", "https://host.example:99999/t"},
	{"port 65536", "https://host.example:65536/t"},
	{"port 0", "https://host.example:0/t"},
	{"empty port", "https://host.example:/t"},
	{"non-numeric port", "https://host.example:https/t"},
	{"ftp", "ftp://host.example/t"},
	{"scheme in upper case", "HTTPS://host.example/t"},
	{"http to a public host", "http://host.example/t"},
	{"http to a lookalike of localhost", "http://localhost.example.com/t"},
	{"credentials", "https://user:secret@host.example/t"},
	{"user name", "https://user@host.example/t"},
	{"empty userinfo", "https://@host.example/t"},
	{"fragment", "https://host.example/t#section"},
	{"empty fragment", "https://host.example/t#"},
	{"internationalised host", "https://bücher.example/t"},
	{"internationalised host with a port", "https://bücher.example:8443/t"},
	{"full-width letter in the host", "https://ｈost.example/t"},
	{"percent-encoded host", "https://ho%73t.example/t"},
	{"IPv6 zone", "https://[fe80::1%25eth0]/t"},
	{"IPv4 in brackets", "https://[192.0.2.1]/t"},
	{"unclosed bracket", "https://[2001:db8::1/t"},
	{"IPv6 without brackets", "https://2001:db8::1/t"},
	{"empty label", "https://host..example/t"},
	{"trailing dot", "https://host.example./t"},
	{"label of 64 bytes", "https://" + strings.Repeat("a", 64) + ".example/t"},
	{"punctuation in the host", "https://host!.example/t"},
	{"raw space", "https://host.example/a b"},
	{"trailing space", "https://host.example/t "},
	{"no-break space", "https://host.example/a\u00a0b"},
	{"ideographic space", "https://host.example/a\u3000b"},
	{"backslash", `https://host.example\@evil.example/t`},
	{"brace", "https://host.example/{id}"},
	{"angle bracket", "https://host.example/<script>"},
	{"double quote", `https://host.example/"t"`},
	{"invalid escape", "https://host.example/%zz"},
	{"tab", "https://host.example/\tt"},
	{"newline", "https://host.example/t\n"},
	{"carriage return", "https://host.example/t\r\nX-Injected: 1"},
	{"NUL", "https://host.example/t\x00"},
	{"ESC", "https://host.example/\x1b[2Jt"},
	{"DEL", "https://host.example/t\x7f"},
	{"U+0085 NEL", "https://host.example/t\u0085"},
	{"U+009B CSI", "https://host.example/t\u009b31m"},
	{"bidi override", "https://host.example/\u202egnp.exe"},
	{"zero-width space in the host", "https://host\u200b.example/t"},
	{"zero-width joiner", "https://host.example/t\u200d"},
	{"byte order mark", "\ufeffhttps://host.example/t"},
	{"line separator", "https://host.example/t\u2028"},
	{"paragraph separator", "https://host.example/t\u2029"},
}

// refusedIssuers are refused as the issuer but allowed as an endpoint.
var refusedIssuers = []input{
	{"query", "https://host.example/t?tenant=1"},
	{"empty query", "https://host.example/t?"},
}

// refusedClientIDs are refused as the client_id.
var refusedClientIDs = []input{
	{"empty", ""},
	{"blank", "  "},
	{"zero-width space", "admin\u200b"},
	{"zero-width non-joiner", "ad\u200cmin"},
	{"zero-width joiner", "ad\u200dmin"},
	{"word joiner", "admin\u2060"},
	{"byte order mark", "\ufeffadmin"},
	{"soft hyphen", "ad\u00admin"},
	{"right-to-left override", "abc\u202egnp.exe"},
	{"left-to-right embedding", "\u202aadmin\u202c"},
	{"isolates", "\u2066admin\u2069"},
	{"right-to-left mark", "admin\u200f"},
	{"Arabic letter mark", "admin\u061c"},
	{"tag character", "admin\U000e0041"},
	{"C1 controls", "a\u0085b\u009b"},
	{"line separator", "a\u2028b"},
	{"paragraph separator", "a\u2029b"},
	{"NUL", "a\x00b"},
	{"tab", "a\tb"},
	{"newline", "a\nb"},
	{"ESC", "\x1b[31madmin"},
	{"DEL", "admin\x7f"},
	{"leading space", " admin"},
	{"trailing space", "admin "},
	{"trailing no-break space", "admin\u00a0"},
	{"256 bytes", strings.Repeat("c", 256)},
	{"128 two-byte characters (256 bytes)", strings.Repeat("é", 128)},
}

// invalidUTF8 are refused in every field. A gRPC client cannot send them
// (protobuf refuses to marshal a string field that is not UTF-8), so they
// are tested on the validator alone.
var invalidUTF8 = []input{
	{"bytes 0x85 and 0x9b", "a\x85b\x9b"},
	{"byte 0xff", "admin\xff"},
	{"overlong slash", "a\xc0\xafb"},
	{"surrogate half", "a\xed\xa0\x80b"},
	{"truncated sequence", "admin\xe2\x80"},
}

// acceptedURLs are accepted as the issuer and as every endpoint.
var acceptedURLs = []input{
	{"README issuer", "https://canvas.instructure.com"},
	{"README auth_endpoint", "https://sso.canvaslms.com/api/lti/authorize_redirect"},
	{"README jwks_uri", "https://sso.canvaslms.com/api/lti/security/jwks"},
	{"README token_endpoint", "https://sso.canvaslms.com/login/oauth2/token"},
	{"path", "https://moodle.example.edu/moodle"},
	{"trailing slash", "https://platform.example/"},
	{"port 1", "https://platform.example:1/t"},
	{"port 65535", "https://platform.example:65535/t"},
	{"host in upper case", "https://Platform.Example/t"},
	{"ASCII form of an internationalised host", "https://xn--bcher-kva.example/t"},
	{"underscore in the host", "https://lti_platform.internal/t"},
	{"IPv4", "https://192.0.2.1/t"},
	{"IPv6", "https://[2001:db8::1]:8443/t"},
	{"http on localhost", "http://localhost:8000/t"},
	{"http on 127.0.0.1", "http://127.0.0.1/t"},
	{"http on ::1", "http://[::1]:9000/t"},
	{"percent-encoded path", "https://platform.example/a%20b/%E2%80%8B"},
	{"non-ASCII path", "https://platform.example/café"},
	{"@ in the path", "https://platform.example/users/@me"},
}

// acceptedEndpoints are accepted as an endpoint but not as the issuer.
var acceptedEndpoints = []input{
	{"query", "https://platform.example/mod/lti/auth.php?id=1&x=%20"},
}

// acceptedClientIDs are accepted as the client_id.
var acceptedClientIDs = []input{
	{"README client id", "10000000000001"},
	{"UUID", "5e3a1a0e-8e0b-4c7a-9c8f-2f1d5b6a7c8d"},
	{"inner space", "my tool"},
	{"non-ASCII", "outil-é"},
	{"255 bytes", strings.Repeat("c", 255)},
	{"127 two-byte characters and one byte (255 bytes)", strings.Repeat("é", 127) + "c"},
	{"replacement character", "admin\ufffd"},
}

// endpointFields are the fields that hold an endpoint.
var endpointFields = []string{"auth_endpoint", "jwks_uri", "token_endpoint"}

// setField sets the field named as in the API on req.
func setField(req *ltikeysv1.CreateRegistrationRequest, field, value string) {
	switch field {
	case "issuer":
		req.Issuer = value
	case "client_id":
		req.ClientId = value
	case "auth_endpoint":
		req.AuthEndpoint = value
	case "jwks_uri":
		req.JwksUri = value
	case "token_endpoint":
		req.TokenEndpoint = value
	default:
		panic("no field " + field)
	}
}

// refusal is one value that must be refused in one field.
type refusal struct {
	field string
	input
}

// refusals are every value of the tables above that must be refused, with
// the field it is refused in; invalid UTF-8 only with utf8.
func refusals(utf8 bool) []refusal {
	var out []refusal
	urls := append(append([]input{}, refusedURLs...), refusedIssuers...)
	for _, in := range urls {
		out = append(out, refusal{"issuer", in})
	}
	for _, f := range endpointFields {
		for _, in := range refusedURLs {
			out = append(out, refusal{f, in})
		}
	}
	for _, in := range refusedClientIDs {
		out = append(out, refusal{"client_id", in})
	}
	if utf8 {
		for _, f := range append([]string{"issuer", "client_id"}, endpointFields...) {
			for _, in := range invalidUTF8 {
				out = append(out, refusal{f, in})
			}
			// Also after a valid prefix, in a URL's path.
			for _, in := range invalidUTF8 {
				out = append(out, refusal{f, input{in.name + " after a URL prefix", "https://host.example/" + in.value}})
			}
		}
	}
	return out
}

// wantFieldViolation checks that err is INVALID_ARGUMENT about field alone:
// the message starts with the field's name and the BadRequest details name
// it.
func wantFieldViolation(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
	}
	if !strings.HasPrefix(st.Message(), field+": ") {
		t.Errorf("message %q does not start with %q", st.Message(), field+": ")
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	if len(fields) != 1 || fields[0] != field {
		t.Errorf("BadRequest names fields %q, want [%s]", fields, field)
	}
}

// printable reports whether s is safe to print: valid UTF-8 with no
// control, format or separator character.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, isForbidden)
}

func isForbidden(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }

// registrationCount returns how many registrations are not deleted.
func (e *testEnv) registrationCount(t *testing.T) int {
	t.Helper()
	regs, err := e.store.ListRegistrations(context.Background(), storage.RegistrationQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return len(regs)
}

// TestValidateRegistration runs the tables through the validator alone,
// invalid UTF-8 included.
func TestValidateRegistration(t *testing.T) {
	for _, r := range refusals(true) {
		t.Run(r.field+"/"+r.name, func(t *testing.T) {
			req := validCreate("v")
			setField(req, r.field, r.value)
			err := server.ValidateCreateRegistration(req)
			wantFieldViolation(t, err, r.field)
			if msg := status.Convert(err).Message(); !printable(msg) {
				t.Errorf("the message is not safe to print: %q", msg)
			}
		})
	}
	accept := func(field string, in input) {
		t.Run(field+"/"+in.name, func(t *testing.T) {
			req := validCreate("v")
			setField(req, field, in.value)
			if err := server.ValidateCreateRegistration(req); err != nil {
				t.Errorf("%q refused: %v", in.value, err)
			}
		})
	}
	for _, in := range acceptedURLs {
		for _, f := range append([]string{"issuer"}, endpointFields...) {
			accept(f, in)
		}
	}
	for _, in := range acceptedEndpoints {
		for _, f := range endpointFields {
			accept(f, in)
		}
	}
	for _, in := range acceptedClientIDs {
		accept("client_id", in)
	}
}

// TestValidateRegistrationInternationalisedHost checks the decision to
// refuse an internationalised host name rather than convert it: the
// message gives the URL with the host's ASCII form, which is accepted.
func TestValidateRegistrationInternationalisedHost(t *testing.T) {
	for _, tc := range []struct{ value, ascii string }{
		{"https://bücher.example/lti", "https://xn--bcher-kva.example/lti"},
		{"https://bücher.example:8443/lti?x=ü", "https://xn--bcher-kva.example:8443/lti?x=ü"},
		{"https://ｈost.example/t", "https://host.example/t"},
		{"https://例え.テスト", "https://xn--r8jz45g.xn--zckzah"},
	} {
		req := validCreate("idn")
		req.JwksUri = tc.value
		err := server.ValidateCreateRegistration(req)
		wantFieldViolation(t, err, "jwks_uri")
		if msg := status.Convert(err).Message(); !strings.Contains(msg, strconv.Quote(tc.ascii)) {
			t.Errorf("%s: message %q does not give the ASCII form %q", tc.value, msg, tc.ascii)
		}
		req.JwksUri = tc.ascii
		if err := server.ValidateCreateRegistration(req); err != nil {
			t.Errorf("the suggested %s is refused: %v", tc.ascii, err)
		}
	}
}

// TestRegistrationInputRefused sends every refused value of the tables
// through the gRPC API on both backends: CreateRegistration and, for the
// endpoints, UpdateRegistration refuse it naming the field, and no row is
// added or changed.
func TestRegistrationInputRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		existing := env.mustCreate(t, "existing").GetRegistration()
		get := func(t *testing.T) *ltikeysv1.Registration {
			t.Helper()
			resp, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: existing.GetId()})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetRegistration()
		}
		want := get(t)
		regs, keys := env.registrationCount(t), env.keyCount(t)
		check := func(t *testing.T) {
			t.Helper()
			if got := env.registrationCount(t); got != regs {
				t.Errorf("%d registrations after a refusal, want %d", got, regs)
			}
			if got := env.keyCount(t); got != keys {
				t.Errorf("%d keys after a refusal, want %d", got, keys)
			}
			if got := get(t); !proto.Equal(got, want) {
				t.Errorf("registration after a refusal:\n%v\nwant\n%v", got, want)
			}
		}
		for _, r := range refusals(false) {
			t.Run("create/"+r.field+"/"+r.name, func(t *testing.T) {
				req := validCreate("refused")
				setField(req, r.field, r.value)
				_, err := env.keys.CreateRegistration(ctx, req)
				wantFieldViolation(t, err, r.field)
				check(t)
			})
			if r.field == "issuer" || r.field == "client_id" {
				continue
			}
			t.Run("update/"+r.field+"/"+r.name, func(t *testing.T) {
				reg := &ltikeysv1.Registration{Id: existing.GetId()}
				switch r.field {
				case "auth_endpoint":
					reg.AuthEndpoint = r.value
				case "jwks_uri":
					reg.JwksUri = r.value
				case "token_endpoint":
					reg.TokenEndpoint = r.value
				}
				_, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
					Registration: reg, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{r.field}},
				})
				wantFieldViolation(t, err, "registration."+r.field)
				check(t)
			})
		}
	})
}

// padURL returns prefix followed by a path of a's to n bytes.
func padURL(prefix string, n int) string {
	return prefix + strings.Repeat("a", n-len(prefix))
}

// TestRegistrationLengthLimits creates registrations whose issuer,
// client_id and endpoints are as long as allowed, on both backends (so
// PostgreSQL's varchar(255) takes the issuer and client_id), reads them
// back unchanged, and checks that one byte more is INVALID_ARGUMENT naming
// the field, on create and on update.
func TestRegistrationLengthLimits(t *testing.T) {
	const (
		issuerLimit   = 255
		clientIDLimit = 255
		endpointLimit = 2048
	)
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := func(t *testing.T, req *ltikeysv1.CreateRegistrationRequest) *ltikeysv1.Registration {
			t.Helper()
			resp, err := env.keys.CreateRegistration(ctx, req)
			if err != nil {
				t.Fatalf("CreateRegistration at the limits: %v", err)
			}
			got, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: resp.GetRegistration().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			r := got.GetRegistration()
			if r.GetIssuer() != req.Issuer || r.GetClientId() != req.ClientId || r.GetAuthEndpoint() != req.AuthEndpoint ||
				r.GetJwksUri() != req.JwksUri || r.GetTokenEndpoint() != req.TokenEndpoint {
				t.Errorf("the registration read back differs from the request")
			}
			return r
		}

		atLimit := &ltikeysv1.CreateRegistrationRequest{
			Issuer:        padURL("https://canvas.example.edu/", issuerLimit),
			ClientId:      strings.Repeat("c", clientIDLimit),
			AuthEndpoint:  padURL("https://canvas.example.edu/auth/", endpointLimit),
			JwksUri:       padURL("https://canvas.example.edu/jwks/", endpointLimit),
			TokenEndpoint: padURL("https://canvas.example.edu/token/", endpointLimit),
		}
		reg := created(t, atLimit)
		// The limit is in bytes: 255 bytes of two-byte characters fit.
		multibyte := validCreate("multibyte")
		multibyte.ClientId = strings.Repeat("é", 127) + "c"
		created(t, multibyte)

		before := env.registrationCount(t)
		keys := env.keyCount(t)
		for _, tc := range []struct {
			name, field, value string
		}{
			{"issuer of 256 bytes", "issuer", padURL("https://canvas.example.edu/", issuerLimit+1)},
			{"client_id of 256 bytes", "client_id", strings.Repeat("c", clientIDLimit+1)},
			// 128 characters, which varchar(255) would take, but 256 bytes.
			{"client_id of 128 two-byte characters", "client_id", strings.Repeat("é", 128)},
			{"auth_endpoint of 2049 bytes", "auth_endpoint", padURL("https://canvas.example.edu/auth/", endpointLimit+1)},
			{"jwks_uri of 2049 bytes", "jwks_uri", padURL("https://canvas.example.edu/jwks/", endpointLimit+1)},
			{"token_endpoint of 2049 bytes", "token_endpoint", padURL("https://canvas.example.edu/token/", endpointLimit+1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := validCreate("past")
				setField(req, tc.field, tc.value)
				_, err := env.keys.CreateRegistration(ctx, req)
				wantFieldViolation(t, err, tc.field)
				if !strings.Contains(status.Convert(err).Message(), "at most") {
					t.Errorf("message %q does not give the limit", status.Convert(err).Message())
				}
				if got := env.registrationCount(t); got != before {
					t.Errorf("%d registrations, want %d", got, before)
				}
				if got := env.keyCount(t); got != keys {
					t.Errorf("%d keys, want %d", got, keys)
				}
			})
		}

		// Update: one endpoint at a time, at the limit, then past it.
		for _, f := range endpointFields {
			t.Run("update "+f, func(t *testing.T) {
				for _, n := range []int{endpointLimit, endpointLimit + 1} {
					value := padURL("https://lms.example.org/"+f+"/", n)
					r := &ltikeysv1.Registration{Id: reg.GetId()}
					switch f {
					case "auth_endpoint":
						r.AuthEndpoint = value
					case "jwks_uri":
						r.JwksUri = value
					case "token_endpoint":
						r.TokenEndpoint = value
					}
					resp, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
						Registration: r, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{f}},
					})
					if n == endpointLimit {
						if err != nil {
							t.Fatalf("update to %d bytes: %v", n, err)
						}
						reg = resp.GetRegistration()
						continue
					}
					wantFieldViolation(t, err, "registration."+f)
					got, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: reg.GetId()})
					if err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(got.GetRegistration(), reg) {
						t.Errorf("a refused update changed the registration")
					}
				}
			})
		}
	})
}

// FuzzValidateRegistration puts an arbitrary value in each field of an
// otherwise valid CreateRegistrationRequest. The validator must not panic;
// a refusal must be INVALID_ARGUMENT about that field with a message safe to
// print; and whatever it accepts must satisfy the rules, checked here
// independently: valid UTF-8 without control, format or separator
// characters, within the field's column, and for a URL field an absolute
// https URL (http for loopback) with an ASCII host, a valid port, no
// credentials, white space or fragment, and no query in an issuer. Without
// -fuzz, go test runs the seeds: every value of the tables above.
func FuzzValidateRegistration(f *testing.F) {
	for _, r := range refusals(true) {
		f.Add(r.value)
	}
	for _, in := range append(append(append([]input{}, acceptedURLs...), acceptedEndpoints...), acceptedClientIDs...) {
		f.Add(in.value)
	}
	f.Fuzz(func(t *testing.T, value string) {
		for _, field := range append([]string{"issuer", "client_id"}, endpointFields...) {
			req := validCreate("fuzz")
			setField(req, field, value)
			err := server.ValidateCreateRegistration(req)
			if err != nil {
				wantFieldViolation(t, err, field)
				if msg := status.Convert(err).Message(); !printable(msg) {
					t.Fatalf("%s: the message is not safe to print: %q", field, msg)
				}
				continue
			}
			if problem := acceptedProblem(field, value); problem != "" {
				t.Fatalf("%s %q accepted, but %s", field, value, problem)
			}
		}
	})
}

// acceptedProblem returns which rule an accepted value of field breaks, or
// "".
func acceptedProblem(field, value string) string {
	limit := 2048
	if field == "issuer" || field == "client_id" {
		limit = 255
	}
	switch {
	case !utf8.ValidString(value):
		return "it is not UTF-8"
	case strings.ContainsFunc(value, isForbidden):
		return "it holds a control, format or separator character"
	case len(value) > limit || utf8.RuneCountInString(value) > limit:
		return fmt.Sprintf("it is longer than %d", limit)
	case strings.TrimSpace(value) == "":
		return "it is blank"
	}
	if field == "client_id" {
		if strings.TrimFunc(value, unicode.IsSpace) != value {
			return "it begins or ends with white space"
		}
		return ""
	}
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return "it does not parse as a URL: " + err.Error()
	case strings.ContainsFunc(value, unicode.IsSpace):
		return "it holds white space"
	case u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname())):
		return "its scheme is " + u.Scheme
	case !strings.HasPrefix(value, u.Scheme+"://"):
		return "it does not begin with the scheme and //"
	case u.Opaque != "" || u.User != nil || u.Hostname() == "":
		return "it is opaque, has credentials or has no host"
	case strings.ContainsFunc(u.Host, func(r rune) bool { return r >= utf8.RuneSelf }):
		return "its host is not ASCII"
	case strings.Contains(value, "#") || u.Fragment != "":
		return "it has a fragment"
	case field == "issuer" && (strings.Contains(value, "?") || u.RawQuery != "" || u.ForceQuery):
		return "an issuer has a query"
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "its port is " + strconv.Quote(p)
		}
	}
	return ""
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return strings.EqualFold(h, "localhost") || ip != nil && ip.IsLoopback()
}
