package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newRegistrationCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "registration",
		Short: "Manage platform registrations (create)",
		Long: `registration manages the tool's platform registrations: one per LTI 1.3
platform (issuer) and the client_id it assigned to the tool, each with its
own key pair.
` + clientHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newRegistrationCreateCommand(&o))
	return group
}

func newRegistrationCreateCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.CreateRegistrationRequest
	cmd := &cobra.Command{
		Use:   "create --issuer URL --client-id ID --auth-endpoint URL --jwks-uri URL --token-endpoint URL",
		Short: "Register a platform and generate its first key pair",
		Long: `create stores a platform registration together with a newly generated key
pair, which is published in the JWKS at once (CreateRegistration; needs
scope keys.admin). The values come from the platform's LTI 1.3 tool
registration screen. Endpoints must be absolute https URLs (http only for
loopback hosts).

It prints the registration's id, which the key commands take, and the kid of
its signing key. ALREADY_EXISTS means the issuer and client id are
registered already.
` + clientHelp,
		Example: `  ltikeys registration create \
    --issuer https://canvas.instructure.com \
    --client-id 10000000000001 \
    --auth-endpoint https://sso.canvaslms.com/api/lti/authorize_redirect \
    --jwks-uri https://sso.canvaslms.com/api/lti/security/jwks \
    --token-endpoint https://sso.canvaslms.com/login/oauth2/token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			var resp *ltikeysv1.CreateRegistrationResponse
			if err := c.call(cmd.Context(), func(ctx context.Context, opts ...grpc.CallOption) (err error) {
				resp, err = c.keys().CreateRegistration(ctx, &req, opts...)
				return err
			}); err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), resp, func() [][2]string {
				return append(registrationRows(resp.GetRegistration()), keyRows("KEY ", resp.GetKey())...)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Issuer, "issuer", "", "the platform's issuer identifier, the iss of its id_tokens (required)")
	f.StringVar(&req.ClientId, "client-id", "", "the client_id the platform assigned to the tool (required)")
	f.StringVar(&req.AuthEndpoint, "auth-endpoint", "", "the platform's OIDC authorization endpoint (required)")
	f.StringVar(&req.JwksUri, "jwks-uri", "", "the platform's JWKS URL (required)")
	f.StringVar(&req.TokenEndpoint, "token-endpoint", "", "the platform's OAuth 2.0 token endpoint (required)")
	for _, name := range []string{"issuer", "client-id", "auth-endpoint", "jwks-uri", "token-endpoint"} {
		_ = cmd.MarkFlagRequired(name)
	}
	addEnvUsage(f)
	return cmd
}
