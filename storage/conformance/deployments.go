package conformance

import (
	"slices"
	"testing"

	"github.com/ltikeys/ltikeys/storage"
)

// testDeploymentIDsRoundTrip creates registrations with no, an empty and
// several deployment ids, and reads each back through every read method:
// the ids come back as given, in order, and none (nil) for an empty list.
func testDeploymentIDsRoundTrip(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		ids  []string
		want []string
	}{
		{"Nil", nil, nil},
		{"Empty", []string{}, nil},
		{"One", []string{"1"}, []string{"1"}},
		// Not sorted, with characters JSON escapes and text beyond ASCII.
		{"Several", []string{"z-deployment", "1:0fd3c7a8", `quote " and \ backslash`, "a,b", "déploiement ✓", "[]"},
			[]string{"z-deployment", "1:0fd3c7a8", `quote " and \ backslash`, "a,b", "déploiement ✓", "[]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newRegistration()
			in.DeploymentIDs = slices.Clone(tc.ids)
			reg, _, err := s.CreateRegistration(ctx, in, newKey(in.ID))
			if err != nil {
				t.Fatalf("CreateRegistration: %v", err)
			}
			checkDeploymentIDs(t, "CreateRegistration", reg.DeploymentIDs, tc.want)
			checkDeploymentIDs(t, "GetRegistration", mustGetRegistration(t, s, in.ID).DeploymentIDs, tc.want)
			byPair, err := s.GetRegistrationByIssuerClient(ctx, in.Issuer, in.ClientID)
			if err != nil {
				t.Fatalf("GetRegistrationByIssuerClient: %v", err)
			}
			checkDeploymentIDs(t, "GetRegistrationByIssuerClient", byPair.DeploymentIDs, tc.want)
			listed, err := s.ListRegistrations(ctx, storage.RegistrationQuery{Issuer: in.Issuer, Limit: 10})
			if err != nil || len(listed) != 1 {
				t.Fatalf("ListRegistrations = %+v, %v; want the registration", listed, err)
			}
			checkDeploymentIDs(t, "ListRegistrations", listed[0].DeploymentIDs, tc.want)
			// Rotating rewrites the row but not the ids.
			r, err := s.Rotate(ctx, in.ID, newKey(in.ID), storage.RotateOptions{RetirePreviousAfter: -1})
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			checkDeploymentIDs(t, "Rotate", r.Registration.DeploymentIDs, tc.want)
			checkDeploymentIDs(t, "GetRegistration after Rotate", mustGetRegistration(t, s, in.ID).DeploymentIDs, tc.want)
		})
	}
}

// testDeploymentIDsUpdate changes a registration's deployment ids through
// UpdateRegistration: replacing, keeping them while an endpoint changes,
// and clearing them, each a change of its own.
func testDeploymentIDsUpdate(t *testing.T, s storage.Store) {
	ctx := t.Context()
	in := newRegistration()
	in.DeploymentIDs = []string{"first"}
	if _, _, err := s.CreateRegistration(ctx, in, newKey(in.ID)); err != nil {
		t.Fatalf("CreateRegistration: %v", err)
	}
	for _, step := range []struct {
		what   string
		update func(r storage.Registration) storage.Registration
		want   []string
	}{
		{"replace", func(r storage.Registration) storage.Registration {
			checkDeploymentIDs(t, "update's input", r.DeploymentIDs, []string{"first"})
			r.DeploymentIDs = []string{"c", "b", "a"}
			return r
		}, []string{"c", "b", "a"}},
		{"change an endpoint only", func(r storage.Registration) storage.Registration {
			r.JWKSURI = "https://platform.example/other-jwks"
			return r
		}, []string{"c", "b", "a"}},
		{"clear", func(r storage.Registration) storage.Registration {
			r.DeploymentIDs = nil
			return r
		}, nil},
		{"set again", func(r storage.Registration) storage.Registration {
			r.DeploymentIDs = []string{"again"}
			return r
		}, []string{"again"}},
		{"clear with an empty list", func(r storage.Registration) storage.Registration {
			r.DeploymentIDs = []string{}
			return r
		}, nil},
	} {
		before := mustVersion(t, s)
		got, err := s.UpdateRegistration(ctx, in.ID, func(r storage.Registration) (storage.Registration, error) {
			return step.update(r), nil
		})
		if err != nil {
			t.Fatalf("%s: UpdateRegistration: %v", step.what, err)
		}
		checkDeploymentIDs(t, step.what+": returned", got.DeploymentIDs, step.want)
		stored := mustGetRegistration(t, s, in.ID)
		checkDeploymentIDs(t, step.what+": GetRegistration", stored.DeploymentIDs, step.want)
		checkRegistration(t, step.what+": GetRegistration", stored, got)
		if v := mustVersion(t, s); v != before+1 {
			t.Errorf("%s: version %d → %d, want one change", step.what, before, v)
		}
	}
}

// testDeploymentIDsNotText checks that a deployment id that is not valid
// UTF-8, which the stored JSON cannot hold as given, is refused, storing
// nothing, by CreateRegistration and UpdateRegistration alike.
func testDeploymentIDsNotText(t *testing.T, s storage.Store) {
	ctx := t.Context()
	in := newRegistration()
	in.DeploymentIDs = []string{"ok", "bad \xff byte"}
	if _, _, err := s.CreateRegistration(ctx, in, newKey(in.ID)); err == nil {
		t.Fatal("CreateRegistration with a deployment id that is not UTF-8 succeeded")
	}
	_, err := s.GetRegistration(ctx, in.ID)
	wantErr(t, "GetRegistration of the refused create", err, storage.ErrNotFound)
	if kids := mustKeyIDs(t, s); len(kids) != 0 {
		t.Errorf("keys stored after a refused create: %q", kids)
	}

	reg, _ := mustCreate(t, s)
	_, err = s.UpdateRegistration(ctx, reg.ID, func(r storage.Registration) (storage.Registration, error) {
		r.JWKSURI = "https://platform.example/changed"
		r.DeploymentIDs = []string{"\xfe"}
		return r, nil
	})
	if err == nil {
		t.Fatal("UpdateRegistration to a deployment id that is not UTF-8 succeeded")
	}
	checkRegistration(t, "registration after the refused update", mustGetRegistration(t, s, reg.ID), reg)
}

// checkDeploymentIDs compares deployment ids exactly: order, and nil for
// none.
func checkDeploymentIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) || (got == nil) != (want == nil) {
		t.Errorf("%s: DeploymentIDs = %#v, want %#v", what, got, want)
	}
}
