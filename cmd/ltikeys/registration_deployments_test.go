package main_test

import (
	"slices"
	"strings"
	"testing"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestCLIDeploymentIDs drives --deployment-id against a real serve:
// create with the flag repeated (an id with a comma stays one id), get as
// JSON and as a table (one row per id), update replacing them without
// touching the endpoints, --any-deployment clearing them, a refused
// repeat naming the element, and the flags' conflicts.
func TestCLIDeploymentIDs(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, nil)
	cli := func(args ...string) []string { return append(args, "--server", p.grpcAddr) }

	var created ltikeysv1.CreateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "create", "-o", "json",
		"--issuer", "https://platform.example.com", "--client-id", "tool",
		"--auth-endpoint", "https://platform.example.com/auth",
		"--jwks-uri", "https://platform.example.com/jwks",
		"--token-endpoint", "https://platform.example.com/token",
		"--deployment-id", "2:b4f1", "--deployment-id", "1:a,c")...).stdout, &created)
	id := created.GetRegistration().GetId()
	if got, want := created.GetRegistration().GetDeploymentIds(), []string{"2:b4f1", "1:a,c"}; !slices.Equal(got, want) {
		t.Errorf("create --deployment-id twice: deployment_ids = %q, want %q", got, want)
	}

	var got ltikeysv1.GetRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "get", "--registration-id", id, "-o", "json")...).stdout, &got)
	if ids := got.GetRegistration().GetDeploymentIds(); !slices.Equal(ids, []string{"2:b4f1", "1:a,c"}) {
		t.Errorf("get -o json: deployment_ids = %q", ids)
	}
	table := mustCLI(t, dir, nil, cli("registration", "get", "--registration-id", id)...).stdout
	if rows := labelValues(table); !slices.Equal(rows["DEPLOYMENT IDS"], []string{"2:b4f1", "1:a,c"}) {
		t.Errorf("get table lists deployment ids %q, want one row each:\n%s", rows["DEPLOYMENT IDS"], table)
	}

	var updated ltikeysv1.UpdateRegistrationResponse
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "update", "--registration-id", id, "--deployment-id", "3:ffff", "-o", "json")...).stdout, &updated)
	if r := updated.GetRegistration(); !slices.Equal(r.GetDeploymentIds(), []string{"3:ffff"}) || r.GetJwksUri() != "https://platform.example.com/jwks" ||
		r.GetAuthEndpoint() != "https://platform.example.com/auth" || r.GetTokenEndpoint() != "https://platform.example.com/token" {
		t.Errorf("update --deployment-id returned %v", r)
	}
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "update", "--registration-id", id, "--jwks-uri", "https://platform.example.com/jwks2", "-o", "json")...).stdout, &updated)
	if ids := updated.GetRegistration().GetDeploymentIds(); !slices.Equal(ids, []string{"3:ffff"}) {
		t.Errorf("update --jwks-uri changed the deployment ids to %q", ids)
	}
	parseJSON(t, mustCLI(t, dir, nil, cli("registration", "update", "--registration-id", id, "--any-deployment", "-o", "json")...).stdout, &updated)
	if ids := updated.GetRegistration().GetDeploymentIds(); len(ids) != 0 || updated.GetRegistration().GetJwksUri() != "https://platform.example.com/jwks2" {
		t.Errorf("update --any-deployment returned %v", updated.GetRegistration())
	}
	table = mustCLI(t, dir, nil, cli("registration", "get", "--registration-id", id)...).stdout
	if rows := labelValues(table); !slices.Equal(rows["DEPLOYMENT IDS"], []string{"(any)"}) {
		t.Errorf("get table of a registration without deployment ids:\n%s", table)
	}

	res := wantCLIError(t, dir, nil, "INVALID_ARGUMENT", cli("registration", "update", "--registration-id", id, "--deployment-id", "a", "--deployment-id", "a")...)
	if !strings.Contains(res.stderr, "registration.deployment_ids[1]") {
		t.Errorf("a repeated --deployment-id: stderr %q does not name registration.deployment_ids[1]", res.stderr)
	}
	if res := runCLI(t, dir, nil, cli("registration", "update", "--registration-id", id, "--deployment-id", "a", "--any-deployment")...); res.exit == 0 || !strings.Contains(res.stderr, "any-deployment") {
		t.Errorf("update with --deployment-id and --any-deployment: exit %d, stderr %q; want a refusal naming the conflict", res.exit, res.stderr)
	}
}

// labelValues reads a two-column table as printRows writes it: the values of
// each label, a row without a label continuing the label above.
func labelValues(table string) map[string][]string {
	rows := map[string][]string{}
	label := ""
	for line := range strings.Lines(table) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			// Labels are upper-case words separated by single spaces; the
			// value follows after two spaces or more.
			name, value, _ := strings.Cut(line, "  ")
			label = name
			line = value
		}
		rows[label] = append(rows[label], strings.TrimSpace(line))
	}
	return rows
}
