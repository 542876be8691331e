package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newKeyCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "key",
		Short: "List, rotate, retire and export registrations' keys",
		Long: `key manages the key pairs of platform registrations. A key is pending
(published, not signing yet), current (the registration's signing key),
previous (published so platforms can still verify what it signed) or
retired (unpublished). "key rotate" makes a new key pending, then current
after the server's default publish-ahead (or --publish-ahead; 0s makes it
current at once); the key it replaces becomes previous and is retired by
the server 48 hours later (--retire-previous-after for another delay). "key retire" unpublishes a previous key at once. "key list" shows
each key's state and schedule.
` + clientHelp,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newKeyListCommand(&o), newKeyRotateCommand(&o), newKeyRetireCommand(&o), newKeyExportCommand(&o))
	return group
}

func newKeyRotateCommand(o *clientOptions) *cobra.Command {
	var (
		req                 ltikeysv1.RotateKeyRequest
		publishAhead        time.Duration
		retirePreviousAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate --registration-id ID [--publish-ahead DURATION] [--retire-previous-after DURATION] [--force]",
		Short: "Generate a new signing key for a registration",
		Long: `rotate generates a new key pair for a registration and schedules the change
of signing key (RotateKey; needs scope keys.admin):

  - the new key is published in the JWKS at once and signs only after
    --publish-ahead (it is pending until then), so platforms that cache the
    JWKS have fetched it before it signs. Without --publish-ahead the
    server's --default-publish-ahead applies (unless configured, the larger
    of its --jwks-max-age and 1m); --publish-ahead 0s makes it sign at once;
  - the key it replaces keeps signing until then, then becomes previous
    (published, verification only) and is retired (unpublished) by the
    server --retire-previous-after later: 48h unless given. 0s retires it
    the moment the new key takes over; with --publish-ahead 0s that is an
    emergency revocation (platforms still accept the old key until their
    cached copy of the JWKS expires: see docs/platform-caching.md).

Both delays must be 0 or at least the server's --jwks-max-age (else
INVALID_ARGUMENT), unless --force is given. Rotating while a rotation is
pending replaces the pending key, which is retired. "ltikeys key retire"
still unpublishes a previous key at once.
` + clientHelp,
		Example: `  ltikeys key rotate --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01

  # Publish now, sign from tomorrow, unpublish the old key 72h after that.
  ltikeys key rotate --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --publish-ahead 24h --retire-previous-after 72h

  # The old key is compromised: stop signing with it and unpublish it now.
  ltikeys key rotate --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --publish-ahead 0s --retire-previous-after 0s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Unset flags stay unset, so the server's defaults apply.
			if cmd.Flags().Changed("publish-ahead") {
				req.PublishAhead = durationpb.New(publishAhead)
			}
			if cmd.Flags().Changed("retire-previous-after") {
				req.RetirePreviousAfter = durationpb.New(retirePreviousAfter)
			}
			return unary(cmd, o, ltikeysv1.KeyServiceClient.RotateKey, &req, func(resp *ltikeysv1.RotateKeyResponse) [][2]string {
				rows := [][2]string{{"REGISTRATION ID", resp.GetRegistration().GetId()}}
				rows = append(rows, keyRows("NEW ", resp.GetNewKey())...)
				rows = append(rows, keyRows("PREVIOUS ", resp.GetPreviousKey())...)
				if resp.GetReplacedPendingKey() != nil {
					rows = append(rows, keyRows("REPLACED PENDING ", resp.GetReplacedPendingKey())...)
				}
				return rows
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.RegistrationId, "registration-id", "", "id of the registration (required)")
	f.DurationVar(&publishAhead, "publish-ahead", 0, "publish the new key this long before it signs (e.g. 24h); default (unset) the server's --default-publish-ahead, 0s signs at once")
	f.DurationVar(&retirePreviousAfter, "retire-previous-after", 0, "retire the replaced key this long after the new key takes over; default (unset) 48h, 0s retires it then")
	f.BoolVar(&req.Force, "force", false, "accept nonzero delays shorter than the server's --jwks-max-age (platforms may reject signatures until their cached JWKS expires)")
	_ = cmd.MarkFlagRequired("registration-id")
	return cmd
}

// keyListHeader and keyLines are the columns of a list of keys.
var keyListHeader = []string{"KID", "REGISTRATION ID", "STATE", "CREATED", "ACTIVATES", "SUPERSEDED", "RETIRES", "RETIRED"}

func keyLines(keys []*ltikeysv1.Key) [][]string {
	lines := make([][]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, []string{k.GetKid(), k.GetRegistrationId(), keyStateName(k.GetState()),
			formatTimestamp(k.GetCreateTime()), formatTimestamp(k.GetActivateTime()), formatTimestamp(k.GetSupersedeTime()),
			formatTimestamp(k.GetRetireTime()), formatTimestamp(k.GetRetiredTime())})
	}
	return lines
}

func newKeyListCommand(o *clientOptions) *cobra.Command {
	var (
		req   ltikeysv1.ListKeysRequest
		state string
		page  pageFlags
	)
	cmd := &cobra.Command{
		Use:   "list [--registration-id ID] [--state STATE] [--page-size N] [--page-token TOKEN | --all]",
		Short: "List keys with their state and schedule",
		Long: `list prints keys, oldest first, one line each with its state now (pending,
current, previous or retired) and its schedule: when it activates (starts
signing), is superseded (stops signing), is to be retired and was retired
(ListKeys; needs scope keys.read). --registration-id keeps one
registration's keys (a deleted registration's too), --state those in one
state. Paging is as for "registration list": one page, then the next page
token; --all follows the tokens. A page token only works with the filters
it was listed with.
` + clientHelp,
		Example: `  ltikeys key list --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01
  ltikeys key list --state pending
  ltikeys key list --state previous --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if req.State, err = parseKeyState(state); err != nil {
				return err
			}
			c, err := o.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			all := &ltikeysv1.ListKeysResponse{}
			err = page.pages(func(token string) (string, error) {
				req.PageSize, req.PageToken = page.size, token
				resp, err := callKeys(cmd.Context(), c, ltikeysv1.KeyServiceClient.ListKeys, &req)
				if err != nil {
					return "", err
				}
				all.Keys = append(all.Keys, resp.GetKeys()...)
				all.NextPageToken = resp.GetNextPageToken()
				return resp.GetNextPageToken(), nil
			})
			if err != nil {
				return err
			}
			return o.printTable(cmd.OutOrStdout(), all, keyListHeader, func() ([][]string, []string) {
				return keyLines(all.GetKeys()), pageFooter(len(all.GetKeys()), "key(s)", all.GetNextPageToken())
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.RegistrationId, "registration-id", "", "only the keys of this registration")
	f.StringVar(&state, "state", "", "only keys in this state now: pending, current, previous or retired")
	page.register(cmd, "keys")
	return cmd
}

func newKeyRetireCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.RetireKeyRequest
	cmd := &cobra.Command{
		Use:   "retire --kid KID",
		Short: "Unpublish a key that is no longer any registration's signing key",
		Long: `retire removes a key from the JWKS (RetireKey; needs scope keys.admin). The
key is kept in storage, unpublished. Retiring a retired key succeeds and
changes nothing. A registration's current or pending signing key cannot be
retired (FAILED_PRECONDITION): rotate the registration first.
` + clientHelp,
		Example: `  ltikeys key retire --kid 3qA0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6r7s8t9u`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return unary(cmd, o, ltikeysv1.KeyServiceClient.RetireKey, &req, func(resp *ltikeysv1.RetireKeyResponse) [][2]string {
				return append([][2]string{{"REGISTRATION ID", resp.GetKey().GetRegistrationId()}}, keyRows("", resp.GetKey())...)
			})
		},
	}
	cmd.Flags().StringVar(&req.Kid, "kid", "", "kid of the key to retire (required)")
	_ = cmd.MarkFlagRequired("kid")
	return cmd
}

// lookupFlags name a registration by id or by issuer and client id, as the
// API's oneof lookup does.
type lookupFlags struct {
	registrationID string
	issuer         string
	clientID       string
}

// register adds the flags to cmd, which requires one of --registration-id
// and --issuer with --client-id.
func (l *lookupFlags) register(cmd *cobra.Command) {
	l.registerOptional(cmd, "id of the registration; or give --issuer and --client-id")
	cmd.MarkFlagsOneRequired("registration-id", "issuer")
}

// registerOptional adds the flags to cmd for a lookup that may be left
// out: --registration-id, described by idUsage, or --issuer with
// --client-id, or neither.
func (l *lookupFlags) registerOptional(cmd *cobra.Command, idUsage string) {
	f := cmd.Flags()
	f.StringVar(&l.registrationID, "registration-id", "", idUsage)
	f.StringVar(&l.issuer, "issuer", "", "issuer of the registration, with --client-id")
	f.StringVar(&l.clientID, "client-id", "", "client id of the registration, with --issuer")
	cmd.MarkFlagsMutuallyExclusive("registration-id", "issuer")
	cmd.MarkFlagsMutuallyExclusive("registration-id", "client-id")
	cmd.MarkFlagsRequiredTogether("issuer", "client-id")
}

func newKeyExportCommand(o *clientOptions) *cobra.Command {
	var lookup lookupFlags
	cmd := &cobra.Command{
		Use:   "export (--registration-id ID | --issuer ISS --client-id ID)",
		Short: "Print a registration's current private signing key (secret)",
		Long: `export prints a registration's current signing key, private half included,
as a JWK (GetToolKey; needs scope keys.read_private, which no other
command needs). Anyone holding it can sign as the tool: keep it out of
logs, shell history and unencrypted files. Servers running with
--disable-key-export refuse it to every caller (PERMISSION_DENIED); callers
should prefer signing through the service ("ltikeys sign").
` + clientHelp,
		Example: `  ltikeys key export --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 -o json > key.json
  ltikeys key export --issuer https://canvas.instructure.com --client-id 10000000000001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &ltikeysv1.GetToolKeyRequest{}
			if lookup.registrationID != "" {
				req.Lookup = &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: lookup.registrationID}
			} else {
				req.Lookup = &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: lookup.issuer, ClientId: lookup.clientID}}
			}
			// The warning goes out once the key has come, before it is printed.
			getToolKey := func(keys ltikeysv1.KeyServiceClient, ctx context.Context, req *ltikeysv1.GetToolKeyRequest, opts ...grpc.CallOption) (*ltikeysv1.GetToolKeyResponse, error) {
				resp, err := keys.GetToolKey(ctx, req, opts...)
				if err == nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "ltikeys: warning: the output holds a private key: anyone who has it can sign as the tool")
				}
				return resp, err
			}
			return unary(cmd, o, getToolKey, req, func(resp *ltikeysv1.GetToolKeyResponse) [][2]string {
				return [][2]string{
					{"REGISTRATION ID", resp.GetRegistration().GetId()},
					{"ISSUER", resp.GetRegistration().GetIssuer()},
					{"CLIENT ID", resp.GetRegistration().GetClientId()},
					{"KID", resp.GetKid()},
					{"PRIVATE JWK", resp.GetPrivateJwk()},
				}
			})
		},
	}
	lookup.register(cmd)
	return cmd
}
