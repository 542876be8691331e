package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newKeyCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "key",
		Short: "Rotate, retire and export registrations' keys",
		Long: `key manages the key pairs of platform registrations. The usual life of a
key: "key rotate" makes a new key current while the previous one stays
published, so platforms can still verify what it signed; once their caches
have refreshed (24 to 48 hours is typical), "key retire" unpublishes it.
` + clientHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newKeyRotateCommand(&o), newKeyRetireCommand(&o), newKeyExportCommand(&o))
	return group
}

func newKeyRotateCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.RotateKeyRequest
	cmd := &cobra.Command{
		Use:   "rotate --registration-id ID",
		Short: "Generate a new signing key for a registration",
		Long: `rotate generates a new key pair and makes it the registration's signing key
(RotateKey; needs scope keys.admin). Both the new key and the previous one
are published in the JWKS; retire the previous one with "ltikeys key retire
--kid PREVIOUS-KID" once platforms' caches have refreshed.
` + clientHelp,
		Example: `  ltikeys key rotate --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			var resp *ltikeysv1.RotateKeyResponse
			if err := c.call(cmd.Context(), func(ctx context.Context, opts ...grpc.CallOption) (err error) {
				resp, err = c.keys().RotateKey(ctx, &req, opts...)
				return err
			}); err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), resp, func() [][2]string {
				rows := [][2]string{{"REGISTRATION ID", resp.GetRegistration().GetId()}}
				rows = append(rows, keyRows("NEW ", resp.GetNewKey())...)
				return append(rows, keyRows("PREVIOUS ", resp.GetPreviousKey())...)
			})
		},
	}
	cmd.Flags().StringVar(&req.RegistrationId, "registration-id", "", "id of the registration (required)")
	_ = cmd.MarkFlagRequired("registration-id")
	addEnvUsage(cmd.Flags())
	return cmd
}

func newKeyRetireCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.RetireKeyRequest
	cmd := &cobra.Command{
		Use:   "retire --kid KID",
		Short: "Unpublish a key that is no longer any registration's signing key",
		Long: `retire removes a key from the JWKS (RetireKey; needs scope keys.admin). The
key is kept in storage, unpublished. Retiring a retired key succeeds and
changes nothing. A registration's current signing key cannot be retired
(FAILED_PRECONDITION): rotate the registration first.
` + clientHelp,
		Example: `  ltikeys key retire --kid 3qA0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6r7s8t9u`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			var resp *ltikeysv1.RetireKeyResponse
			if err := c.call(cmd.Context(), func(ctx context.Context, opts ...grpc.CallOption) (err error) {
				resp, err = c.keys().RetireKey(ctx, &req, opts...)
				return err
			}); err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), resp, func() [][2]string {
				return append([][2]string{{"REGISTRATION ID", resp.GetKey().GetRegistrationId()}}, keyRows("", resp.GetKey())...)
			})
		},
	}
	cmd.Flags().StringVar(&req.Kid, "kid", "", "kid of the key to retire (required)")
	_ = cmd.MarkFlagRequired("kid")
	addEnvUsage(cmd.Flags())
	return cmd
}

// lookupFlags name a registration by id or by issuer and client id, as the
// API's oneof lookup does.
type lookupFlags struct {
	registrationID string
	issuer         string
	clientID       string
}

func (l *lookupFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&l.registrationID, "registration-id", "", "id of the registration; or give --issuer and --client-id")
	f.StringVar(&l.issuer, "issuer", "", "issuer of the registration, with --client-id")
	f.StringVar(&l.clientID, "client-id", "", "client id of the registration, with --issuer")
	cmd.MarkFlagsMutuallyExclusive("registration-id", "issuer")
	cmd.MarkFlagsMutuallyExclusive("registration-id", "client-id")
	cmd.MarkFlagsRequiredTogether("issuer", "client-id")
	cmd.MarkFlagsOneRequired("registration-id", "issuer")
}

// check reports a lookup the flag annotations cannot refuse: values set
// from the environment or a file are not seen by them.
func (l *lookupFlags) check() error {
	switch {
	case l.registrationID != "" && (l.issuer != "" || l.clientID != ""):
		return errors.New("give either --registration-id or --issuer with --client-id, not both")
	case l.registrationID == "" && (l.issuer == "" || l.clientID == ""):
		return errors.New("give --registration-id, or --issuer with --client-id")
	}
	return nil
}

func newKeyExportCommand(o *clientOptions) *cobra.Command {
	var lookup lookupFlags
	cmd := &cobra.Command{
		Use:   "export (--registration-id ID | --issuer ISS --client-id ID)",
		Short: "Print a registration's current private signing key (secret)",
		Long: `export prints a registration's current signing key, private half included,
as a JWK (GetToolKey; needs the scope the server requires for reading
private keys). Anyone holding it can sign as the tool: keep it out of logs,
shell history and unencrypted files. Servers running with
--disable-key-export refuse it to every caller (PERMISSION_DENIED); callers
should prefer signing through the service.
` + clientHelp,
		Example: `  ltikeys key export --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 -o json > key.json
  ltikeys key export --issuer https://canvas.instructure.com --client-id 10000000000001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lookup.check(); err != nil {
				return err
			}
			req := &ltikeysv1.GetToolKeyRequest{}
			if lookup.registrationID != "" {
				req.Lookup = &ltikeysv1.GetToolKeyRequest_RegistrationId{RegistrationId: lookup.registrationID}
			} else {
				req.Lookup = &ltikeysv1.GetToolKeyRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: lookup.issuer, ClientId: lookup.clientID}}
			}
			c, err := o.dial(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			var resp *ltikeysv1.GetToolKeyResponse
			if err := c.call(cmd.Context(), func(ctx context.Context, opts ...grpc.CallOption) (err error) {
				resp, err = c.keys().GetToolKey(ctx, req, opts...)
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "ltikeys: warning: the output holds a private key: anyone who has it can sign as the tool")
			return o.print(cmd.OutOrStdout(), resp, func() [][2]string {
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
	addEnvUsage(cmd.Flags())
	return cmd
}
