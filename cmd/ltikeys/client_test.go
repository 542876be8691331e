package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
)

// TestCLIBearerToken checks which token a client command sends, and how it
// names its source: an explicit one to any server; the data directory's
// only to a loopback server and only without a client certificate.
func TestCLIBearerToken(t *testing.T) {
	const dataDirToken = "ltk_from-the-data-directory"
	withToken := t.TempDir()
	if err := os.WriteFile(filepath.Join(withToken, adminTokenFileName), []byte(dataDirToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	dataDirSource := tokenFromDataDir + " (" + filepath.Join(withToken, adminTokenFileName) + ")"

	for _, tt := range []struct {
		name       string
		opts       clientOptions
		flagSource string
		wantToken  string
		wantSource string
		// wantSkipped is a part of the reason the data directory's token
		// was not sent, or empty for none.
		wantSkipped string
	}{
		{"loopback IPv4", clientOptions{server: "127.0.0.1:50051", dataDir: withToken}, sourceDefault, dataDirToken, dataDirSource, ""},
		{"loopback 127/8", clientOptions{server: "127.3.2.1:50051", dataDir: withToken}, sourceDefault, dataDirToken, dataDirSource, ""},
		{"loopback IPv6", clientOptions{server: "[::1]:50051", dataDir: withToken}, sourceDefault, dataDirToken, dataDirSource, ""},
		{"localhost", clientOptions{server: "localhost:50051", dataDir: withToken}, sourceDefault, dataDirToken, dataDirSource, ""},
		{"loopback with --tls", clientOptions{server: "127.0.0.1:50051", dataDir: withToken, tls: true}, sourceDefault, dataDirToken, dataDirSource, ""},
		{"loopback without admin.token", clientOptions{server: "127.0.0.1:50051", dataDir: empty}, sourceDefault, "", noToken, ""},

		{"another host by name", clientOptions{server: "keys.example.com:443", dataDir: withToken}, sourceDefault, "", noToken, "only to a loopback --server"},
		{"another host by address", clientOptions{server: "10.0.0.5:50051", dataDir: withToken}, sourceDefault, "", noToken, "only to a loopback --server"},
		{"a name that merely starts with localhost", clientOptions{server: "localhost.example.com:50051", dataDir: withToken}, sourceDefault, "", noToken, "only to a loopback --server"},
		{"the unspecified address", clientOptions{server: "0.0.0.0:50051", dataDir: withToken}, sourceDefault, "", noToken, "only to a loopback --server"},
		{"a gRPC target with a scheme", clientOptions{server: "dns:///127.0.0.1:50051", dataDir: withToken}, sourceDefault, "", noToken, "only to a loopback --server"},
		{"another host without admin.token", clientOptions{server: "10.0.0.5:50051", dataDir: empty}, sourceDefault, "", noToken, ""},
		{"client certificate, loopback", clientOptions{server: "127.0.0.1:50051", dataDir: withToken, tlsClientCert: "client.crt", tlsClientKey: "client.key"}, sourceDefault, "", noToken, "not sent with a client certificate"},

		{"--token to another host", clientOptions{server: "10.0.0.5:50051", dataDir: withToken, token: "ltk_flag"}, sourceFlag, "ltk_flag", tokenFromFlag, ""},
		{"--token to loopback", clientOptions{server: "127.0.0.1:50051", dataDir: withToken, token: " ltk_flag\n"}, sourceFlag, "ltk_flag", tokenFromFlag, ""},
		{"LTIKEYS_TOKEN to another host", clientOptions{server: "keys.example.com:443", dataDir: withToken, token: "ltk_env"}, sourceEnv, "ltk_env", tokenFromEnv, ""},
		{"--config token", clientOptions{server: "keys.example.com:443", dataDir: withToken, token: "ltk_file"}, sourceFile, "ltk_file", tokenFromConfig, ""},
		{"--token with a client certificate", clientOptions{server: "10.0.0.5:50051", dataDir: withToken, token: "ltk_flag", tlsClientCert: "client.crt", tlsClientKey: "client.key"}, sourceFlag, "ltk_flag", tokenFromFlag, ""},
		{"LTIKEYS_TOKEN with a client certificate", clientOptions{server: "127.0.0.1:50051", dataDir: withToken, token: "ltk_env", tlsClientCert: "client.crt", tlsClientKey: "client.key"}, sourceEnv, "ltk_env", tokenFromEnv, ""},
		{"blank --token", clientOptions{server: "127.0.0.1:50051", dataDir: withToken, token: "  "}, sourceFlag, dataDirToken, dataDirSource, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.opts.bearerToken(tt.flagSource)
			if err != nil {
				t.Fatal(err)
			}
			if b.token != tt.wantToken || b.source != tt.wantSource {
				t.Errorf("bearerToken = %q from %q, want %q from %q", b.token, b.source, tt.wantToken, tt.wantSource)
			}
			if (b.skipped == "") != (tt.wantSkipped == "") || !strings.Contains(b.skipped, tt.wantSkipped) {
				t.Errorf("skipped = %q, want one containing %q", b.skipped, tt.wantSkipped)
			}
			hint := b.unauthenticatedHint(tt.opts.tlsClientCert != "")
			if !strings.Contains(hint, tt.wantSource) {
				t.Errorf("the UNAUTHENTICATED hint %q does not name %q", hint, tt.wantSource)
			}
			for _, secret := range []string{dataDirToken, "ltk_flag", "ltk_env", "ltk_file"} {
				if strings.Contains(hint, secret) || strings.Contains(b.source, secret) || strings.Contains(b.skipped, secret) {
					t.Errorf("the source or hint holds the token %q: %q / %q", secret, b.source, hint)
				}
			}
		})
	}

	// An unreadable or empty admin.token is an error for a loopback server
	// only; another server never reads it.
	blank := t.TempDir()
	if err := os.WriteFile(filepath.Join(blank, adminTokenFileName), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&clientOptions{server: "127.0.0.1:1", dataDir: blank}).bearerToken(sourceDefault); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty admin.token, loopback: err = %v, want one saying it is empty", err)
	}
	if b, err := (&clientOptions{server: "10.0.0.5:1", dataDir: blank}).bearerToken(sourceDefault); err != nil || b.token != "" {
		t.Errorf("empty admin.token, another host: %q, %v; want no token and no error", b.token, err)
	}
}

// TestPlatformErrorLines checks the lines an error adds for an ErrorInfo
// of the platform domain: its reason, whatever the method, then a
// platform's OAuth error code and description when the metadata holds
// one, escaped; the first such ErrorInfo only; none for an ErrorInfo of
// another domain or no ErrorInfo.
func TestPlatformErrorLines(t *testing.T) {
	withInfo := func(code codes.Code, details ...protoadapt.MessageV1) *status.Status {
		t.Helper()
		st, err := status.New(code, "message").WithDetails(details...)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	platformInfo := func(reason string, md map[string]string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Reason: reason, Domain: server.PlatformErrorDomain, Metadata: md}
	}
	oauth := func(md map[string]string) *errdetails.ErrorInfo {
		return platformInfo(server.ReasonPlatformOAuthError, md)
	}
	for _, tt := range []struct {
		name string
		st   *status.Status
		want []string
	}{
		{"code and description", withInfo(codes.FailedPrecondition, oauth(map[string]string{
			"error": "invalid_client", "error_description": "unknown client", "http_status": "401",
		})), []string{"reason: PLATFORM_OAUTH_ERROR", "error: invalid_client", "error_description: unknown client"}},
		{"code alone", withInfo(codes.InvalidArgument, oauth(map[string]string{"error": "invalid_scope", "http_status": "400"})),
			[]string{"reason: PLATFORM_OAUTH_ERROR", "error: invalid_scope"}},
		{"a description without a code", withInfo(codes.FailedPrecondition, oauth(map[string]string{"error_description": "no code"})),
			[]string{"reason: PLATFORM_OAUTH_ERROR"}},
		{"escaped", withInfo(codes.FailedPrecondition, platformInfo("R\u202e\x1b[2J", map[string]string{"error": "x\x1b[2J", "error_description": "a\nb\u202e"})),
			[]string{`reason: R\u202e\x1b[2J`, `error: x\x1b[2J`, `error_description: a\nb\u202e`}},
		{"after a detail of another kind", withInfo(codes.Unavailable, &errdetails.RetryInfo{}, platformInfo(server.ReasonPlatformUnavailable, map[string]string{"error": "temporarily_unavailable"})),
			[]string{"reason: PLATFORM_UNAVAILABLE", "error: temporarily_unavailable"}},
		{"no OAuth error", withInfo(codes.Unavailable, platformInfo(server.ReasonPlatformUnavailable, map[string]string{"http_status": "503"})),
			[]string{"reason: PLATFORM_UNAVAILABLE"}},
		{"a verification's reason", withInfo(codes.InvalidArgument, platformInfo(server.ReasonNonceReplayed, nil)),
			[]string{"reason: NONCE_REPLAYED"}},
		{"after a BadRequest", withInfo(codes.InvalidArgument,
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "nonce", Description: "required"}}},
			platformInfo(server.ReasonInvalidRequest, nil)),
			[]string{"reason: INVALID_REQUEST"}},
		{"the first of two", withInfo(codes.InvalidArgument, platformInfo(platform.ReasonBadSignature, nil), platformInfo(platform.ReasonExpired, nil)),
			[]string{"reason: BAD_SIGNATURE"}},
		{"another domain first", withInfo(codes.InvalidArgument,
			&errdetails.ErrorInfo{Reason: "X", Domain: "example.com"}, platformInfo(platform.ReasonExpired, nil)),
			[]string{"reason: EXPIRED"}},
		{"another domain", withInfo(codes.FailedPrecondition, &errdetails.ErrorInfo{Reason: "X", Domain: "example.com", Metadata: map[string]string{"error": "invalid_client"}}), nil},
		{"no details", status.New(codes.NotFound, "registration not found"), nil},
	} {
		if got := platformErrorLines(tt.st); !slices.Equal(got, tt.want) {
			t.Errorf("%s: platformErrorLines = %q, want %q", tt.name, got, tt.want)
		}
	}
}
