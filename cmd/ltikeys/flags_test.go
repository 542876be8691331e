package main

import (
	"path"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"list", "list", 0},
		{"lst", "list", 1},
		{"registraton-id", "registration-id", 1},
		{"grpc-adr", "grpc-addr", 1},
		{"kitten", "sitting", 3},
		{"List", "list", 0},
		{"résumé", "resume", 2},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	flags := []string{"registration-id", "issuer", "client-id", "state", "page-size", "page-token", "all", "server", "token"}
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"registraton-id", []string{"registration-id"}},
		{"sever", []string{"server"}},
		{"page", []string{"page-size", "page-token"}},
		{"tokn", []string{"token"}},
		{"staet", []string{"state"}},
		{"x", nil},
		{"frobnicate", nil},
		{"server", nil},
	} {
		if got := closest(tt.name, flags); !slices.Equal(got, tt.want) {
			t.Errorf("closest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := closest("ab", []string{"abc", "abd", "abe", "abf"}); len(got) != 3 {
		t.Errorf("closest returned %d names, want at most 3", len(got))
	}
}

// commands returns every command under root, by path.
func commands(root *cobra.Command) map[string]*cobra.Command {
	all := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		all[c.CommandPath()] = c
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return all
}

// TestEnvironmentTwins checks which flags have environment twins: every
// flag of serve, rewrap and migrate; of the client commands only those
// that say how to reach the server, so that a flag added to a client
// command has none unless it is added to that list. --help shows a twin on
// exactly the flags that have one.
func TestEnvironmentTwins(t *testing.T) {
	for cmdPath, c := range commands(newRootCommand()) {
		top := strings.Fields(cmdPath)
		if len(top) < 2 || top[1] == "help" || top[1] == "completion" || top[1] == "version" {
			continue
		}
		var want func(name string) bool
		switch top[1] {
		case "serve", "rewrap", "migrate":
			want = func(string) bool { return true }
		case "jwks":
			want = func(name string) bool { return name == "http-server" || name == "timeout" || name == configFlag }
		case "registration", "key", "sign", "platform":
			want = func(name string) bool { return slices.Contains(connectionFlags, name) || name == configFlag }
		default:
			t.Errorf("%s: no expectation for this command's environment twins", cmdPath)
			continue
		}
		check := func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == "version" {
				return
			}
			twin := envTwin(f)
			switch {
			case want(f.Name) && twin != envName(f.Name):
				t.Errorf("%s --%s: environment twin %q, want %s", cmdPath, f.Name, twin, envName(f.Name))
			case !want(f.Name) && twin != "":
				t.Errorf("%s --%s has environment twin %s; want none", cmdPath, f.Name, twin)
			}
			if shown := strings.Contains(f.Usage, "[$"+envName(f.Name)+"]"); shown != (twin != "") {
				t.Errorf("%s --%s: usage %q shows the twin: %v, want %v", cmdPath, f.Name, f.Usage, shown, twin != "")
			}
			if strings.Count(f.Usage, "[$") > 1 {
				t.Errorf("%s --%s: usage names its twin more than once: %q", cmdPath, f.Name, f.Usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.InheritedFlags().VisitAll(check)
	}
}

// TestClientHelpNamesScopes checks that each client command's help names
// the method it calls and the scope that method needs, as the server's
// access-control table has it.
func TestClientHelpNamesScopes(t *testing.T) {
	methods := map[string]string{
		"ltikeys registration create":   ltikeysv1.KeyService_CreateRegistration_FullMethodName,
		"ltikeys registration get":      ltikeysv1.KeyService_GetRegistration_FullMethodName,
		"ltikeys registration list":     ltikeysv1.KeyService_ListRegistrations_FullMethodName,
		"ltikeys registration update":   ltikeysv1.KeyService_UpdateRegistration_FullMethodName,
		"ltikeys registration delete":   ltikeysv1.KeyService_DeleteRegistration_FullMethodName,
		"ltikeys key list":              ltikeysv1.KeyService_ListKeys_FullMethodName,
		"ltikeys key rotate":            ltikeysv1.KeyService_RotateKey_FullMethodName,
		"ltikeys key retire":            ltikeysv1.KeyService_RetireKey_FullMethodName,
		"ltikeys key export":            ltikeysv1.KeyService_GetToolKey_FullMethodName,
		"ltikeys sign jwt":              ltikeysv1.KeyService_SignJwt_FullMethodName,
		"ltikeys sign client-assertion": ltikeysv1.KeyService_CreateClientAssertion_FullMethodName,
		"ltikeys platform token":        ltikeysv1.KeyService_GetPlatformAccessToken_FullMethodName,
		"ltikeys platform verify":       ltikeysv1.KeyService_VerifyPlatformToken_FullMethodName,
	}
	all := commands(newRootCommand())
	for cmdPath := range all {
		if f := strings.Fields(cmdPath); len(f) == 3 && slices.Contains([]string{"registration", "key", "sign", "platform"}, f[1]) {
			if _, ok := methods[cmdPath]; !ok {
				t.Errorf("%s: no method listed for this client command", cmdPath)
			}
		}
	}
	for cmdPath, method := range methods {
		c, ok := all[cmdPath]
		if !ok {
			t.Errorf("no command %s", cmdPath)
			continue
		}
		scope, ok := server.RequiredScope(method)
		if !ok {
			t.Fatalf("%s has no scope in the access-control table", method)
		}
		help := strings.Join(strings.Fields(c.Long), " ")
		want := "(" + path.Base(method) + "; needs scope " + string(scope)
		if !strings.Contains(help, want) {
			t.Errorf("%s --help does not say %q", cmdPath, want)
		}
	}
	export := strings.Join(strings.Fields(all["ltikeys key export"].Long), " ")
	if !strings.Contains(export, "--disable-key-export refuse it") {
		t.Errorf("key export --help does not say that --disable-key-export refuses it:\n%s", export)
	}
}

func TestVersionText(t *testing.T) {
	platform := "platform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	for _, tt := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build information", nil, false, "version: unknown\ncommit: unknown\ngo: " + runtime.Version() + "\n" + platform},
		{"a source tree without version control", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}}, true,
			"version: (devel)\ncommit: unknown\ngo: go1.99.1\n" + platform},
		{"no module version", &debug.BuildInfo{GoVersion: "go1.99.1"}, true,
			"version: (devel)\ncommit: unknown\ngo: go1.99.1\n" + platform},
		{"a release", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "1137c1b2d3e4"}, {Key: "vcs.modified", Value: "false"},
		}}, true, "version: v1.4.0\ncommit: 1137c1b2d3e4\ngo: go1.99.1\n" + platform},
		{"a modified tree", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.4.1-0.20260101000000-1137c1b2d3e4+dirty"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1137c1b2d3e4"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "version: v1.4.1-0.20260101000000-1137c1b2d3e4+dirty\ncommit: 1137c1b2d3e4 (modified)\ngo: go1.99.1\n" + platform},
	} {
		if got := versionText(tt.info, tt.ok); got != tt.want {
			t.Errorf("%s: versionText =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestDialTarget(t *testing.T) {
	for _, tt := range []struct {
		target, network, addr string
		ok                    bool
	}{
		{"127.0.0.1:50051", "tcp", "127.0.0.1:50051", true},
		{"[::1]:50051", "tcp", "[::1]:50051", true},
		{"keys.example.com", "tcp", "keys.example.com:443", true},
		{"[::1]", "tcp", "[::1]:443", true},
		{"dns:///keys.example.com:50051", "tcp", "keys.example.com:50051", true},
		{"passthrough:///10.0.0.5:50051", "tcp", "10.0.0.5:50051", true},
		{"unix:///run/ltikeys.sock", "unix", "/run/ltikeys.sock", true},
		{"unix:ltikeys.sock", "unix", "ltikeys.sock", true},
		{"dns://8.8.8.8/keys.example.com:50051", "", "", false},
		{"xds:///ltikeys", "", "", false},
		{"", "", "", false},
	} {
		network, addr, ok := dialTarget(tt.target)
		if network != tt.network || addr != tt.addr || ok != tt.ok {
			t.Errorf("dialTarget(%q) = %q, %q, %v; want %q, %q, %v", tt.target, network, addr, ok, tt.network, tt.addr, tt.ok)
		}
	}
}
