package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

func TestCheckPublicURL(t *testing.T) {
	for _, base := range []string{
		"https://keys.example.com",
		"https://keys.example.com/",
		"https://keys.example.com:8443",
		"https://gw.example.com/lti/keys",
		"https://gw.example.com/lti/keys/",
		"https://gw.example.com/a%20b/",
		"http://127.0.0.1:8080",
		"http://localhost/",
		"http://[::1]:8080/prefix",
	} {
		if err := server.CheckPublicURL(base); err != nil {
			t.Errorf("CheckPublicURL(%q) = %v, want nil", base, err)
		}
	}
	for _, tt := range []struct{ base, want string }{
		{" ", "absolute https URL"},
		{"keys.example.com", "absolute https URL"},
		{"/lti/keys", "absolute https URL"},
		{"ftp://keys.example.com", "https"},
		{"HTTPS://keys.example.com", "lower case"},
		{"http://keys.example.com", "http is allowed only for localhost"},
		{"http://localhost.example.com", "http is allowed only for localhost"},
		{"https://keys.example.com/?tenant=1", "query"},
		{"https://keys.example.com?", "query"},
		{"https://keys.example.com/#top", "fragment"},
		{"https://ops:hunter2@keys.example.com", "credentials"},
		{"https://", "host"},
		{"https://keys.example.com:0", "port"},
		{"https://keys.example.com//", "empty segments"},
		{"https://gw.example.com/lti//keys", "empty segments"},
		{"https://gw.example.com/lti/../keys", "dot segments"},
		{"https://gw.example.com/./keys", "dot segments"},
		{"https://gw.example.com/%2e%2e/keys", "dot segments"},
		{"https://gw.example.com/lti keys", "white space"},
	} {
		err := server.CheckPublicURL(tt.base)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckPublicURL(%q) = %v, want an error about %q", tt.base, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckPublicURL(%q) = %v: the error repeats the password", tt.base, err)
		}
	}
}

func TestNewKeyServiceRefusesBadPublicURL(t *testing.T) {
	_, err := server.NewKeyService(server.KeyServiceConfig{
		Store: &fakeStore{}, Keyring: testKeyring, KeyBits: 2048, PublicURL: "http://keys.example.com",
	})
	if err == nil || !strings.Contains(err.Error(), "public URL") {
		t.Errorf("NewKeyService with an http public URL = %v, want an error about the public URL", err)
	}
}

// TestToolJWKSURLJoin checks the URL every form of public base gives:
// a path prefix with or without a trailing slash, none, and a port.
func TestToolJWKSURLJoin(t *testing.T) {
	env, _ := startEnv(t, storagetest.SQLiteURL(t), envOptions{})
	id := env.mustCreate(t, "join").GetRegistration().GetId()
	for _, tt := range []struct{ base, want string }{
		{"", ""},
		{"https://keys.example.com", "https://keys.example.com/registrations/" + id + "/jwks.json"},
		{"https://keys.example.com/", "https://keys.example.com/registrations/" + id + "/jwks.json"},
		{"https://keys.example.com:8443/", "https://keys.example.com:8443/registrations/" + id + "/jwks.json"},
		{"https://gw.example.com/lti/keys", "https://gw.example.com/lti/keys/registrations/" + id + "/jwks.json"},
		{"https://gw.example.com/lti/keys/", "https://gw.example.com/lti/keys/registrations/" + id + "/jwks.json"},
		{"https://gw.example.com/a%20b", "https://gw.example.com/a%20b/registrations/" + id + "/jwks.json"},
		{"http://[::1]:8080", "http://[::1]:8080/registrations/" + id + "/jwks.json"},
	} {
		keys, err := server.NewKeyService(server.KeyServiceConfig{Store: env.store, Keyring: testKeyring, KeyBits: 2048, PublicURL: tt.base})
		if err != nil {
			t.Fatalf("NewKeyService with public URL %q: %v", tt.base, err)
		}
		resp, err := keys.GetRegistration(context.Background(), &ltikeysv1.GetRegistrationRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetRegistration().GetToolJwksUrl(); got != tt.want {
			t.Errorf("public URL %q: tool_jwks_url = %q, want %q", tt.base, got, tt.want)
		}
	}
}

// TestToolJWKSURLInEveryResponse checks that every response carrying a
// Registration has tool_jwks_url under the public URL, that a client's
// value in UpdateRegistration is ignored, and that the URL, once the
// proxy's prefix is stripped, is the registration's own key set on the
// public listener.
func TestToolJWKSURLInEveryResponse(t *testing.T) {
	const base = "https://gw.example.com/lti/keys/"
	env, _ := startEnv(t, storagetest.SQLiteURL(t), envOptions{
		configure: func(c *server.KeyServiceConfig) { c.PublicURL = base },
	})
	ctx := context.Background()
	created := env.mustCreate(t, "url")
	id := created.GetRegistration().GetId()
	want := "https://gw.example.com/lti/keys/registrations/" + id + "/jwks.json"

	got := map[string]*ltikeysv1.Registration{"CreateRegistration": created.GetRegistration()}
	get, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	got["GetRegistration"] = get.GetRegistration()
	list, err := env.keys.ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{})
	if err != nil || len(list.GetRegistrations()) != 1 {
		t.Fatalf("ListRegistrations = %v, %v; want one registration", list, err)
	}
	got["ListRegistrations"] = list.GetRegistrations()[0]
	update, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
		Registration: &ltikeysv1.Registration{Id: id, JwksUri: "https://canvas.example.edu/jwks2", ToolJwksUrl: "https://attacker.example/jwks.json"},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"jwks_uri"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got["UpdateRegistration"] = update.GetRegistration()
	rotate, err := env.keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
	if err != nil {
		t.Fatal(err)
	}
	got["RotateKey"] = rotate.GetRegistration()
	toolKey, err := env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	if err != nil {
		t.Fatal(err)
	}
	got["GetToolKey"] = toolKey.GetRegistration()
	for method, r := range got {
		if r.GetToolJwksUrl() != want {
			t.Errorf("%s: tool_jwks_url = %q, want %q", method, r.GetToolJwksUrl(), want)
		}
	}

	// The proxy forwards what follows its prefix to the listener.
	resp, err := http.Get(env.http.URL + "/" + strings.TrimPrefix(want, base))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	kid := rotate.GetNewKey().GetKid()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), kid) {
		t.Errorf("GET the tool JWKS URL on the listener = %d %s, want 200 with kid %s", resp.StatusCode, body, kid)
	}
}
