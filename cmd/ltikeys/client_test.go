package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
