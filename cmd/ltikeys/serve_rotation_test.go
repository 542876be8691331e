package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// TestServeDefaultPublishAheadConfig checks the effective
// --default-publish-ahead that --print-config shows: computed from
// --jwks-max-age (at least 1m) unless given, and as given otherwise.
func TestServeDefaultPublishAheadConfig(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "default-publish-ahead: 5m0s # default: the larger of --jwks-max-age and 1m0s"},
		{nil, []string{"--jwks-max-age", "20m"}, "default-publish-ahead: 20m0s # default: the larger of --jwks-max-age and 1m0s"},
		{[]string{"LTIKEYS_JWKS_MAX_AGE=0s"}, nil, "default-publish-ahead: 1m0s # default: the larger of --jwks-max-age and 1m0s"},
		{nil, []string{"--default-publish-ahead", "0s"}, "default-publish-ahead: 0s # flag"},
		{[]string{"LTIKEYS_DEFAULT_PUBLISH_AHEAD=2h"}, nil, "default-publish-ahead: 2h0m0s # env LTIKEYS_DEFAULT_PUBLISH_AHEAD"},
	} {
		out := mustCLI(t, t.TempDir(), tt.env, append([]string{"serve", "--print-config"}, tt.args...)...).stdout
		if !strings.Contains(out, tt.want+"\n") {
			t.Errorf("serve --print-config %v with %v lacks %q:\n%s", tt.args, tt.env, tt.want, out)
		}
	}
}

// TestServeDefaultPublishAhead starts serve with a default publish-ahead
// given through its environment twin, and with 0s: a RotateKey without
// publish_ahead gets the default, one with 0s signs at once.
func TestServeDefaultPublishAhead(t *testing.T) {
	for _, tt := range []struct {
		env       []string
		args      []string
		wantAhead time.Duration
	}{
		{[]string{"LTIKEYS_DEFAULT_PUBLISH_AHEAD=2h"}, []string{"--jwks-max-age", "1h"}, 2 * time.Hour},
		{nil, []string{"--default-publish-ahead", "0s"}, 0},
	} {
		dir := t.TempDir()
		p := startServe(t, dir, tt.env, tt.args...)
		keys := p.keyClient(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ctx = withBearer(ctx, adminToken(t, dir))
		created, err := keys.CreateRegistration(ctx, platformRegistration())
		if err != nil {
			t.Fatal(err)
		}
		id := created.GetRegistration().GetId()

		wantState := ltikeysv1.KeyState_KEY_STATE_PENDING
		if tt.wantAhead == 0 {
			wantState = ltikeysv1.KeyState_KEY_STATE_CURRENT
		}
		unset, err := keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id})
		if err != nil {
			t.Fatal(err)
		}
		if k := unset.GetNewKey(); k.GetState() != wantState || k.GetActivateTime().AsTime().Sub(k.GetCreateTime().AsTime()) != tt.wantAhead {
			t.Errorf("serve %v %v: RotateKey without publish_ahead: new key %v activating %v after its creation, want %v after %v",
				tt.env, tt.args, k.GetState(), k.GetActivateTime().AsTime().Sub(k.GetCreateTime().AsTime()), wantState, tt.wantAhead)
		}
		now, err := keys.RotateKey(ctx, &ltikeysv1.RotateKeyRequest{RegistrationId: id, PublishAhead: durationpb.New(0)})
		if err != nil {
			t.Fatal(err)
		}
		if k := now.GetNewKey(); k.GetState() != ltikeysv1.KeyState_KEY_STATE_CURRENT || !k.GetActivateTime().AsTime().Equal(k.GetCreateTime().AsTime()) {
			t.Errorf("serve %v %v: RotateKey with publish_ahead 0s: new key %v, want CURRENT at once", tt.env, tt.args, k.GetState())
		}
		cancel()
		p.stop(t)
	}
}

// TestServeRefusesBadDefaultPublishAhead: serve refuses, before it
// listens, a default publish-ahead that is negative, too long, or nonzero
// and shorter than --jwks-max-age, naming both flags for the last.
func TestServeRefusesBadDefaultPublishAhead(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--default-publish-ahead", "1m"}, "--default-publish-ahead 1m0s is shorter than --jwks-max-age 5m0s"},
		{[]string{"--default-publish-ahead", "30m", "--jwks-max-age", "1h"}, "--default-publish-ahead 30m0s is shorter than --jwks-max-age 1h0m0s"},
		{[]string{"--default-publish-ahead", "-1m"}, "--default-publish-ahead: must not be negative"},
		{[]string{"--default-publish-ahead", "9000h"}, "--default-publish-ahead: must be at most"},
	} {
		args := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, tt.args...)
		res := runCLI(t, t.TempDir(), nil, args...)
		if res.exit == 0 {
			t.Errorf("serve %v started", tt.args)
			continue
		}
		if !strings.Contains(res.stderr, tt.want) || strings.Contains(res.stderr, "listening") {
			t.Errorf("serve %v: stderr lacks %q, or serve listened:\n%s", tt.args, tt.want, res.stderr)
		}
	}
}
