package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newRegistrationCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "registration",
		Short: "Manage platform registrations (create, get, list, update, delete)",
		Long: `registration manages the tool's platform registrations: one per LTI 1.3
platform (issuer) and the client_id it assigned to the tool, each with its
own key pair.
` + clientHelp,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newRegistrationCreateCommand(&o), newRegistrationGetCommand(&o), newRegistrationListCommand(&o),
		newRegistrationUpdateCommand(&o), newRegistrationDeleteCommand(&o))
	return group
}

func newRegistrationCreateCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.CreateRegistrationRequest
	cmd := &cobra.Command{
		Use:   "create --issuer URL --client-id ID --auth-endpoint URL --jwks-uri URL --token-endpoint URL [--deployment-id ID]...",
		Short: "Register a platform and generate its first key pair",
		Long: `create stores a platform registration together with a newly generated key
pair, which is published in the JWKS at once (CreateRegistration; needs
scope keys.admin). The values come from the platform's LTI 1.3 tool
registration screen. Endpoints must be absolute https URLs (http only for
loopback hosts). --deployment-id, once per deployment id the platform
assigned to the tool, restricts the launches the registration accepts to
those deployments (at most 100); without it, any deployment is accepted.

It prints the registration's id, which the key commands take, the kid of
its signing key, and its TOOL JWKS URL: the URL of this registration's own
key set, to enter in the platform as the tool's public keyset (JWK) URL. It
lists only this registration's keys, where /.well-known/jwks.json lists
every registration's and grows with each one. The server fills it in only
when it runs with --public-url. ALREADY_EXISTS means the issuer and client
id are registered already.
` + clientHelp,
		Example: `  ltikeys registration create \
    --issuer https://canvas.instructure.com \
    --client-id 10000000000001 \
    --auth-endpoint https://sso.canvaslms.com/api/lti/authorize_redirect \
    --jwks-uri https://sso.canvaslms.com/api/lti/security/jwks \
    --token-endpoint https://sso.canvaslms.com/login/oauth2/token \
    --deployment-id 1:0c3e8f0d5b1a4e2f9c7d6b5a4e3f2d1c0b9a8e7f`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return unary(cmd, o, ltikeysv1.KeyServiceClient.CreateRegistration, &req, func(resp *ltikeysv1.CreateRegistrationResponse) [][2]string {
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
	f.StringArrayVar(&req.DeploymentIds, "deployment-id", nil, "a deployment id the platform may launch the tool with; repeat for each (default: any deployment)")
	for _, name := range []string{"issuer", "client-id", "auth-endpoint", "jwks-uri", "token-endpoint"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newRegistrationGetCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.GetRegistrationRequest
	cmd := &cobra.Command{
		Use:   "get --registration-id ID",
		Short: "Show one registration",
		Long: `get prints a registration: its endpoints, the deployment ids it accepts
launches from (any, if it lists none), the URL of its key set to give the
platform (TOOL JWKS URL, with serve --public-url), the kid of the key that
signs for it now and, while a rotation is pending, the pending key and when
it takes over (GetRegistration; needs scope keys.read). A deleted
registration is NOT_FOUND.
` + clientHelp,
		Example: `  ltikeys registration get --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01
  ltikeys registration get --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return unary(cmd, o, ltikeysv1.KeyServiceClient.GetRegistration, &req, func(resp *ltikeysv1.GetRegistrationResponse) [][2]string {
				return registrationRows(resp.GetRegistration())
			})
		},
	}
	cmd.Flags().StringVar(&req.Id, "registration-id", "", "id of the registration (required)")
	_ = cmd.MarkFlagRequired("registration-id")
	return cmd
}

func newRegistrationListCommand(o *clientOptions) *cobra.Command {
	var (
		issuer string
		page   pageFlags
	)
	cmd := &cobra.Command{
		Use:   "list [--issuer ISS] [--page-size N] [--page-token TOKEN | --all]",
		Short: "List registrations, a page at a time",
		Long: `list prints the registrations that are not deleted, oldest first, one line
each (ListRegistrations; needs scope keys.read). It prints one page (50 by
default, --page-size for another size) and, if there are more, the token of
the next page, for --page-token. --all follows the tokens and prints every
registration; with -o json it prints them as one response with no
next_page_token. A page token only works with the --issuer it was listed
with.
` + clientHelp,
		Example: `  ltikeys registration list
  ltikeys registration list --issuer https://canvas.instructure.com --all -o json
  ltikeys registration list --page-size 100 --page-token <NEXT PAGE TOKEN>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			all := &ltikeysv1.ListRegistrationsResponse{}
			err = page.pages(func(token string) (string, error) {
				req := &ltikeysv1.ListRegistrationsRequest{Issuer: issuer, PageSize: page.size, PageToken: token}
				resp, err := callKeys(cmd.Context(), c, ltikeysv1.KeyServiceClient.ListRegistrations, req)
				if err != nil {
					return "", err
				}
				all.Registrations = append(all.Registrations, resp.GetRegistrations()...)
				all.NextPageToken = resp.GetNextPageToken()
				return resp.GetNextPageToken(), nil
			})
			if err != nil {
				return err
			}
			header := []string{"REGISTRATION ID", "ISSUER", "CLIENT ID", "CURRENT KID", "PENDING KID", "PENDING ACTIVATES", "CREATED", "TOOL JWKS URL"}
			return o.printTable(cmd.OutOrStdout(), all, header, func() ([][]string, []string) {
				var lines [][]string
				for _, r := range all.GetRegistrations() {
					lines = append(lines, []string{r.GetId(), r.GetIssuer(), r.GetClientId(), r.GetKid(), r.GetPendingKid(),
						formatTimestamp(r.GetPendingActivateTime()), formatTimestamp(r.GetCreateTime()), r.GetToolJwksUrl()})
				}
				return lines, pageFooter(len(lines), "registration(s)", all.GetNextPageToken())
			})
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "only the registrations of this issuer")
	page.register(cmd, "registrations")
	return cmd
}

// updatableFlags are the flags of registration update and the
// UpdateRegistration mask path each one sets.
var updatableFlags = []struct{ flag, path string }{
	{"auth-endpoint", "auth_endpoint"},
	{"jwks-uri", "jwks_uri"},
	{"token-endpoint", "token_endpoint"},
}

func newRegistrationUpdateCommand(o *clientOptions) *cobra.Command {
	reg := &ltikeysv1.Registration{}
	var anyDeployment bool
	cmd := &cobra.Command{
		Use:   "update --registration-id ID [--auth-endpoint URL] [--jwks-uri URL] [--token-endpoint URL] [--deployment-id ID... | --any-deployment]",
		Short: "Change a registration's endpoints or deployment ids",
		Long: `update changes the endpoints or deployment ids of a registration given as
flags, and only those: the update mask is the set of flags given
(UpdateRegistration; needs scope keys.admin). Endpoints are validated as on
create: absolute https URLs (http only for loopback hosts), else
INVALID_ARGUMENT naming the field. --deployment-id, repeated, replaces the
registration's deployment ids with the ones given; --any-deployment clears
them, so that launches from any deployment are accepted. The issuer and
client id cannot change: create another registration. It prints the
registration as updated.
` + clientHelp,
		Example: `  ltikeys registration update --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --jwks-uri https://sso.canvaslms.com/api/lti/security/jwks
  ltikeys registration update --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --deployment-id 1:0c3e8f0d5b1a4e2f9c7d6b5a4e3f2d1c0b9a8e7f --deployment-id 2:5d4c3b2a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mask := &fieldmaskpb.FieldMask{}
			for _, u := range updatableFlags {
				if cmd.Flags().Changed(u.flag) {
					mask.Paths = append(mask.Paths, u.path)
				}
			}
			if cmd.Flags().Changed("deployment-id") || anyDeployment {
				mask.Paths = append(mask.Paths, "deployment_ids")
			}
			// An empty mask would mean every endpoint: refuse it rather
			// than blank the endpoints not given.
			if len(mask.Paths) == 0 {
				return errors.New("give at least one of --auth-endpoint, --jwks-uri, --token-endpoint, --deployment-id and --any-deployment")
			}
			req := &ltikeysv1.UpdateRegistrationRequest{Registration: reg, UpdateMask: mask}
			return unary(cmd, o, ltikeysv1.KeyServiceClient.UpdateRegistration, req, func(resp *ltikeysv1.UpdateRegistrationResponse) [][2]string {
				return registrationRows(resp.GetRegistration())
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&reg.Id, "registration-id", "", "id of the registration (required)")
	f.StringVar(&reg.AuthEndpoint, "auth-endpoint", "", "the platform's new OIDC authorization endpoint")
	f.StringVar(&reg.JwksUri, "jwks-uri", "", "the platform's new JWKS URL")
	f.StringVar(&reg.TokenEndpoint, "token-endpoint", "", "the platform's new OAuth 2.0 token endpoint")
	f.StringArrayVar(&reg.DeploymentIds, "deployment-id", nil, "a deployment id the platform may launch the tool with, replacing the registration's; repeat for each")
	f.BoolVar(&anyDeployment, "any-deployment", false, "clear the registration's deployment ids: accept launches from any deployment")
	_ = cmd.MarkFlagRequired("registration-id")
	cmd.MarkFlagsOneRequired("auth-endpoint", "jwks-uri", "token-endpoint", "deployment-id", "any-deployment")
	cmd.MarkFlagsMutuallyExclusive("deployment-id", "any-deployment")
	return cmd
}

func newRegistrationDeleteCommand(o *clientOptions) *cobra.Command {
	var req ltikeysv1.DeleteRegistrationRequest
	cmd := &cobra.Command{
		Use:   "delete --registration-id ID",
		Short: "Delete a registration and retire its keys",
		Long: `delete deletes a registration and retires all its keys at once: they leave
the JWKS, so platforms can no longer verify anything they signed
(DeleteRegistration; needs scope keys.admin). The rows are kept for audit,
but the registration is NOT_FOUND from then on and its issuer and client id
can be registered again. Deleting a deleted registration succeeds. It
prints the keys it retired.
` + clientHelp,
		Example: `  ltikeys registration delete --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := callKeys(cmd.Context(), c, ltikeysv1.KeyServiceClient.DeleteRegistration, &req)
			if err != nil {
				return err
			}
			return o.printTable(cmd.OutOrStdout(), resp, keyListHeader, func() ([][]string, []string) {
				return keyLines(resp.GetRetiredKeys()), []string{fmt.Sprintf("registration %s deleted; %d key(s) retired", req.GetId(), len(resp.GetRetiredKeys()))}
			})
		},
	}
	cmd.Flags().StringVar(&req.Id, "registration-id", "", "id of the registration (required)")
	_ = cmd.MarkFlagRequired("registration-id")
	return cmd
}
