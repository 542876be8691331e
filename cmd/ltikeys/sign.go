package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

func newSignCommand() *cobra.Command {
	var o clientOptions
	group := &cobra.Command{
		Use:   "sign",
		Short: "Sign JWTs and client assertions with a registration's key",
		Long: `sign has the service sign with a registration's current key, so the private
key never leaves it (SignJwt and CreateClientAssertion; both need scope
keys.sign). The result is a compact JWS whose header the service sets: alg
RS256, typ JWT and the key's kid, which platforms find in the JWKS.
` + clientHelp,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(group, &o)
	group.AddCommand(newSignJWTCommand(&o), newSignClientAssertionCommand(&o))
	return group
}

func newSignJWTCommand(o *clientOptions) *cobra.Command {
	var (
		lookup    lookupFlags
		claims    string
		expiresIn time.Duration
	)
	cmd := &cobra.Command{
		Use:   "jwt (--registration-id ID | --issuer ISS --client-id ID) --claims JSON",
		Short: "Sign caller-supplied claims as a JWT",
		Long: `jwt signs the claims given with --claims (one JSON object, at most 64 KiB;
"@FILE" reads them from a file, "@-" from standard input) with the
registration's current key (SignJwt; needs scope keys.sign). With
--expires-in the service adds iat and exp, and the claims must not hold
either.
` + clientHelp,
		Example: `  ltikeys sign jwt --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01 \
    --claims '{"iss":"10000000000001","aud":"https://canvas.instructure.com","nonce":"n-0S6_WzA2Mj"}' \
    --expires-in 5m
  ltikeys sign jwt --issuer https://canvas.instructure.com --client-id 10000000000001 --claims @claims.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := readArg(claims, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("--claims: %w", err)
			}
			req := &ltikeysv1.SignJwtRequest{ClaimsJson: text}
			if lookup.registrationID != "" {
				req.Lookup = &ltikeysv1.SignJwtRequest_RegistrationId{RegistrationId: lookup.registrationID}
			} else {
				req.Lookup = &ltikeysv1.SignJwtRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: lookup.issuer, ClientId: lookup.clientID}}
			}
			if expiresIn != 0 {
				req.ExpiresIn = durationpb.New(expiresIn)
			}
			return unary(cmd, o, ltikeysv1.KeyServiceClient.SignJwt, req, func(resp *ltikeysv1.SignJwtResponse) [][2]string {
				return [][2]string{{"KID", resp.GetKid()}, {"JWT", resp.GetJwt()}}
			})
		},
	}
	lookup.register(cmd)
	cmd.Flags().StringVar(&claims, "claims", "", `the claims as a JSON object, or @FILE, or @- for standard input (required)`)
	cmd.Flags().DurationVar(&expiresIn, "expires-in", 0, "have the service add iat and exp this far ahead (whole seconds, 1s to the server's --max-token-lifetime, 24h by default); without it and without an exp claim the service sets exp 5m ahead")
	_ = cmd.MarkFlagRequired("claims")
	return cmd
}

func newSignClientAssertionCommand(o *clientOptions) *cobra.Command {
	var (
		lookup    lookupFlags
		audience  string
		expiresIn time.Duration
	)
	cmd := &cobra.Command{
		Use:   "client-assertion (--registration-id ID | --issuer ISS --client-id ID)",
		Short: "Sign the client assertion for a platform's token endpoint",
		Long: `client-assertion signs the JWT a tool presents to a platform's OAuth 2.0
token endpoint to obtain an LTI Advantage access token (RFC 7523): iss and
sub are the registration's client_id, aud its token endpoint (or
--audience), with iat, exp and a random jti (CreateClientAssertion; needs
scope keys.sign). Send it as client_assertion
with client_assertion_type
urn:ietf:params:oauth:client-assertion-type:jwt-bearer.
` + clientHelp,
		Example: `  ltikeys sign client-assertion --registration-id 0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01
  ltikeys sign client-assertion --issuer https://canvas.instructure.com --client-id 10000000000001 --expires-in 2m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &ltikeysv1.CreateClientAssertionRequest{Audience: audience}
			if lookup.registrationID != "" {
				req.Lookup = &ltikeysv1.CreateClientAssertionRequest_RegistrationId{RegistrationId: lookup.registrationID}
			} else {
				req.Lookup = &ltikeysv1.CreateClientAssertionRequest_IssuerClient{IssuerClient: &ltikeysv1.IssuerClient{Issuer: lookup.issuer, ClientId: lookup.clientID}}
			}
			if expiresIn != 0 {
				req.ExpiresIn = durationpb.New(expiresIn)
			}
			return unary(cmd, o, ltikeysv1.KeyServiceClient.CreateClientAssertion, req, func(resp *ltikeysv1.CreateClientAssertionResponse) [][2]string {
				return [][2]string{
					{"KID", resp.GetKid()},
					{"EXPIRES", formatTime(resp.GetExpireTime().AsTime(), resp.GetExpireTime() != nil)},
					{"CLIENT ASSERTION", resp.GetClientAssertion()},
				}
			})
		},
	}
	lookup.register(cmd)
	cmd.Flags().StringVar(&audience, "audience", "", "the aud claim, if not the registration's token endpoint")
	cmd.Flags().DurationVar(&expiresIn, "expires-in", 0, "lifetime of the assertion (whole seconds, 1s to 1h; default 5m)")
	return cmd
}

// maxArgFile bounds what readLimited, and so readArg, reads from a file or
// standard input.
const maxArgFile = 1 << 20

// readArg returns value, or the content of the file it names as @FILE, or
// standard input for @-.
func readArg(value string, stdin io.Reader) (string, error) {
	name, ok := strings.CutPrefix(value, "@")
	if !ok {
		return value, nil
	}
	if name == "-" {
		return readLimited(stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readLimited(f)
}

// readLimited returns what r holds, if that is at most maxArgFile bytes.
func readLimited(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxArgFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxArgFile {
		return "", fmt.Errorf("more than %d bytes", maxArgFile)
	}
	return string(b), nil
}
