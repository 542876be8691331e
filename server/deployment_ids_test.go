package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// manyDeploymentIDs returns n distinct deployment ids.
func manyDeploymentIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("deployment-%03d", i)
	}
	return ids
}

// deploymentIDsEverywhere returns the deployment ids of registration id
// as each method that returns the registration reports them, by method.
func deploymentIDsEverywhere(t *testing.T, env *testEnv, id string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	got, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
	if err != nil {
		t.Fatalf("GetRegistration: %v", err)
	}
	listed, err := env.keys.ListRegistrations(ctx, &ltikeysv1.ListRegistrationsRequest{Issuer: got.GetRegistration().GetIssuer()})
	if err != nil || len(listed.GetRegistrations()) != 1 {
		t.Fatalf("ListRegistrations = %v, %v; want the registration", listed, err)
	}
	tk, err := env.keys.GetToolKey(ctx, &ltikeysv1.GetToolKeyRequest{Lookup: &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: id}})
	if err != nil {
		t.Fatalf("GetToolKey: %v", err)
	}
	return map[string][]string{
		"GetRegistration":   got.GetRegistration().GetDeploymentIds(),
		"ListRegistrations": listed.GetRegistrations()[0].GetDeploymentIds(),
		"GetToolKey":        tk.GetRegistration().GetDeploymentIds(),
	}
}

// wantDeploymentIDs checks that every method reports want for id.
func wantDeploymentIDs(t *testing.T, env *testEnv, id string, want []string) {
	t.Helper()
	for method, got := range deploymentIDsEverywhere(t, env, id) {
		if !slices.Equal(got, want) {
			t.Errorf("%s: deployment_ids = %q, want %q", method, got, want)
		}
	}
}

// TestCreateRegistrationDeploymentIDs creates registrations with no
// deployment ids, with a few, and with as many and as long ones as
// allowed, on both backends: every response carries them as given, in
// order.
func TestCreateRegistrationDeploymentIDs(t *testing.T) {
	longest := strings.Repeat("€", 85) // 255 bytes
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, tc := range []struct {
			name string
			ids  []string
		}{
			{"none", nil},
			{"a few, unsorted", []string{"2:b4f1", "1:a0c3", "déploiement"}},
			{"the most allowed", manyDeploymentIDs(100)},
			{"the longest allowed", []string{longest, "x"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := validCreate("deployments-" + strings.ReplaceAll(tc.name, " ", "-"))
				req.DeploymentIds = slices.Clone(tc.ids)
				resp, err := env.keys.CreateRegistration(context.Background(), req)
				if err != nil {
					t.Fatalf("CreateRegistration: %v", err)
				}
				if got := resp.GetRegistration().GetDeploymentIds(); !slices.Equal(got, tc.ids) {
					t.Errorf("CreateRegistration: deployment_ids = %q, want %q", got, tc.ids)
				}
				wantDeploymentIDs(t, env, resp.GetRegistration().GetId(), tc.ids)
			})
		}
	})
}

// deploymentIDRefusals are lists of deployment ids the service refuses,
// with the field (relative to the list's) each refusal names.
var deploymentIDRefusals = []struct {
	name  string
	ids   []string
	field string
}{
	{"an empty id", []string{"a", ""}, "[1]"},
	{"a blank id", []string{"  "}, "[0]"},
	{"an id too long", []string{"a", "b", strings.Repeat("d", 256)}, "[2]"},
	{"an id too long in bytes", []string{strings.Repeat("€", 85) + "x"}, "[0]"},
	{"a control character", []string{"dep\x1b[31m"}, "[0]"},
	{"a format character", []string{"dep\u202eloyment"}, "[0]"},
	{"a line separator", []string{"ok", "dep\u2028"}, "[1]"},
	{"a repeat", []string{"a", "b", "a"}, "[2]"},
	{"too many", manyDeploymentIDs(101), ""},
}

// TestDeploymentIDsRefused sends every refused list through
// CreateRegistration and UpdateRegistration on both backends: each is
// INVALID_ARGUMENT naming the offending element (deployment_ids[i], or
// the list for too many), and nothing is stored or changed.
func TestDeploymentIDsRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		existingReq := validCreate("deployments-existing")
		existingReq.DeploymentIds = []string{"kept"}
		existing, err := env.keys.CreateRegistration(ctx, existingReq)
		if err != nil {
			t.Fatal(err)
		}
		id := existing.GetRegistration().GetId()
		before, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		regs, keys := env.registrationCount(t), env.keyCount(t)
		for _, r := range deploymentIDRefusals {
			t.Run("create/"+r.name, func(t *testing.T) {
				req := validCreate("deployments-refused")
				req.DeploymentIds = r.ids
				_, err := env.keys.CreateRegistration(ctx, req)
				wantFieldViolation(t, err, "deployment_ids"+r.field)
				if got := env.registrationCount(t); got != regs {
					t.Errorf("%d registrations after a refused create, want %d", got, regs)
				}
				if got := env.keyCount(t); got != keys {
					t.Errorf("%d keys after a refused create, want %d", got, keys)
				}
			})
			t.Run("update/"+r.name, func(t *testing.T) {
				_, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
					Registration: &ltikeysv1.Registration{Id: id, DeploymentIds: r.ids},
					UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"deployment_ids"}},
				})
				wantFieldViolation(t, err, "registration.deployment_ids"+r.field)
				after, err := env.keys.GetRegistration(ctx, &ltikeysv1.GetRegistrationRequest{Id: id})
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(after, before) {
					t.Errorf("registration after a refused update:\n%v\nwant\n%v", after, before)
				}
			})
		}
	})
}

// TestValidateDeploymentIDsNotUTF8 runs deployment ids that are not valid
// UTF-8, which gRPC clients cannot send, through the validator alone.
func TestValidateDeploymentIDsNotUTF8(t *testing.T) {
	for _, ids := range [][]string{{"\xff"}, {"ok", "dep\xc3"}} {
		req := validCreate("deployments-utf8")
		req.DeploymentIds = ids
		wantFieldViolation(t, server.ValidateCreateRegistration(req), fmt.Sprintf("deployment_ids[%d]", len(ids)-1))
	}
	// Every refusal of the table is the validator's own.
	for _, r := range deploymentIDRefusals {
		req := validCreate("deployments-table")
		req.DeploymentIds = r.ids
		wantFieldViolation(t, server.ValidateCreateRegistration(req), "deployment_ids"+r.field)
	}
}

// TestUpdateRegistrationDeploymentIDs changes a registration's deployment
// ids through UpdateRegistration's mask path deployment_ids, on both
// backends: set, kept by updates of other fields and by an empty mask
// (which means the three endpoints), cleared by an empty list; every
// method then reports them, the signing-key cache included.
func TestUpdateRegistrationDeploymentIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		ctx := context.Background()
		created := env.mustCreate(t, "deployments-update").GetRegistration()
		id := created.GetId()
		wantDeploymentIDs(t, env, id, nil) // warms the signing-key cache too

		update := func(t *testing.T, reg *ltikeysv1.Registration, paths ...string) *ltikeysv1.Registration {
			t.Helper()
			reg.Id = id
			req := &ltikeysv1.UpdateRegistrationRequest{Registration: reg}
			if paths != nil {
				req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			resp, err := env.keys.UpdateRegistration(ctx, req)
			if err != nil {
				t.Fatalf("UpdateRegistration(%v): %v", paths, err)
			}
			return resp.GetRegistration()
		}

		got := update(t, &ltikeysv1.Registration{DeploymentIds: []string{"d-2", "d-1"}, JwksUri: "https://ignored.example/jwks"}, "deployment_ids")
		if !slices.Equal(got.GetDeploymentIds(), []string{"d-2", "d-1"}) || got.GetJwksUri() != created.GetJwksUri() {
			t.Errorf("after setting deployment_ids: %v", got)
		}
		wantDeploymentIDs(t, env, id, []string{"d-2", "d-1"})

		got = update(t, &ltikeysv1.Registration{JwksUri: "https://canvas.example.edu/other-jwks"}, "jwks_uri")
		if !slices.Equal(got.GetDeploymentIds(), []string{"d-2", "d-1"}) || got.GetJwksUri() != "https://canvas.example.edu/other-jwks" {
			t.Errorf("after updating jwks_uri alone: %v", got)
		}

		// An empty mask is the three endpoints: the ids given are ignored.
		got = update(t, &ltikeysv1.Registration{
			AuthEndpoint: created.GetAuthEndpoint(), JwksUri: created.GetJwksUri(), TokenEndpoint: created.GetTokenEndpoint(),
			DeploymentIds: []string{"ignored"},
		})
		if !slices.Equal(got.GetDeploymentIds(), []string{"d-2", "d-1"}) || got.GetJwksUri() != created.GetJwksUri() {
			t.Errorf("after an update with an empty mask: %v", got)
		}

		got = update(t, &ltikeysv1.Registration{DeploymentIds: []string{"d-3"}, TokenEndpoint: "https://canvas.example.edu/token-2"}, "token_endpoint", "deployment_ids")
		if !slices.Equal(got.GetDeploymentIds(), []string{"d-3"}) || got.GetTokenEndpoint() != "https://canvas.example.edu/token-2" {
			t.Errorf("after updating token_endpoint and deployment_ids: %v", got)
		}
		wantDeploymentIDs(t, env, id, []string{"d-3"})

		got = update(t, &ltikeysv1.Registration{}, "deployment_ids")
		if len(got.GetDeploymentIds()) != 0 {
			t.Errorf("after clearing deployment_ids: %v", got)
		}
		wantDeploymentIDs(t, env, id, nil)

		_, err := env.keys.UpdateRegistration(ctx, &ltikeysv1.UpdateRegistrationRequest{
			Registration: &ltikeysv1.Registration{Id: id, ClientId: "other"},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"client_id"}},
		})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "deployment_ids") {
			t.Errorf("a mask path that cannot be updated: %v; want INVALID_ARGUMENT listing deployment_ids among the paths that can", err)
		}
	})
}
