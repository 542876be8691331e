package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newPlatformCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "platform",
		Short: "Obtain LTI Advantage access tokens from a registration's platform",
		Long: `platform has the service make the requests a tool makes to an LMS platform,
so the caller holds neither a key nor a client assertion. "platform token"
gets an access token for LTI Advantage services (GetPlatformAccessToken;
needs scope platform.token).
` + clientHelp,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newPlatformTokenCommand(&o))
	return group
}

// errNoScope is the refusal of "platform token" without --scope.
var errNoScope = errors.New("--scope is required: give each scope to ask the platform for as a --scope of its own, e.g. --scope https://purl.imsglobal.org/spec/lti-ags/scope/score")

func newPlatformTokenCommand(o *clientOptions) *cobra.Command {
	var (
		lookup lookupFlags
		scopes []string
	)
	cmd := &cobra.Command{
		Use:   "token (--registration-id ID | --issuer ISS --client-id ID) --scope SCOPE [--scope SCOPE…]",
		Short: "Get an access token for LTI Advantage services from the platform",
		Long: `token gets an OAuth 2.0 access token from the registration's platform for
the LTI Advantage services the scopes name (GetPlatformAccessToken; needs
scope platform.token, which the admin token a local serve generates does
not hold: add it to that token's line in <data-dir>/tokens and send serve
SIGHUP). The service signs a fresh client assertion with the registration's
current key, posts it to the registration's token endpoint, and keeps the
token in memory until shortly before it expires (serve
--platform-token-margin), so that a second call for the same scopes gets
the same token (CACHED true) without asking the platform again.

It prints the access token, to send as "Authorization: Bearer <token>" to
the platform's service endpoints, when it expires, the scopes the platform
granted and whether it came from the cache. The output holds a bearer
token: keep it out of logs and shell history.

When the platform refuses the request (FAILED_PRECONDITION, or
INVALID_ARGUMENT for invalid_scope), the lines after the error give its
OAuth error code and description as "error: …" and "error_description: …".
UNAVAILABLE means the platform could not be reached or did not answer
usefully: retry later.
` + clientHelp,
		Example: `  ltikeys platform token --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --scope https://purl.imsglobal.org/spec/lti-ags/scope/score
  ltikeys platform token --issuer https://canvas.instructure.com --client-id 10000000000001 \
    --scope https://purl.imsglobal.org/spec/lti-ags/scope/lineitem \
    --scope https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(scopes) == 0 {
				return errNoScope
			}
			req := &ltikeysv1.GetPlatformAccessTokenRequest{Scopes: scopes}
			if lookup.registrationID != "" {
				req.Lookup = &ltikeysv1.GetPlatformAccessTokenRequest_RegistrationId{RegistrationId: lookup.registrationID}
			} else {
				req.Lookup = &ltikeysv1.GetPlatformAccessTokenRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: lookup.issuer, ClientId: lookup.clientID}}
			}
			return unary(cmd, o, ltikeysv1.KeyServiceClient.GetPlatformAccessToken, req, func(resp *ltikeysv1.GetPlatformAccessTokenResponse) [][2]string {
				return [][2]string{
					{"ACCESS TOKEN", resp.GetAccessToken()},
					{"EXPIRES", formatTimestamp(resp.GetExpireTime())},
					{"SCOPES", strings.Join(resp.GetScopes(), " ")},
					{"CACHED", strconv.FormatBool(resp.GetCached())},
				}
			})
		},
	}
	lookup.register(cmd)
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "a scope to ask for, such as https://purl.imsglobal.org/spec/lti-ags/scope/score; repeat the flag for each (at least one, at most 20)")
	return cmd
}
