package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// tokenEnv is the environment twin of the client's --token.
const tokenEnv = envPrefix + "TOKEN"

// Output formats of the client commands.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// clientOptions are the flags every command that calls the gRPC API shares.
type clientOptions struct {
	server        string
	tls           bool
	tlsCA         string
	tlsClientCert string
	tlsClientKey  string
	tlsServerName string
	token         string
	dataDir       string
	output        string
	timeout       time.Duration
}

func (o *clientOptions) register(flags *pflag.FlagSet) {
	flags.StringVar(&o.server, "server", "127.0.0.1:50051", "gRPC address of the ltikeys server, host:port")
	flags.BoolVar(&o.tls, "tls", false, "connect over TLS, verifying the server against the system's CAs (implied by --tls-ca and --tls-client-cert); without TLS the connection is plaintext")
	flags.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA certificates to verify the server with, instead of the system's; implies --tls")
	flags.StringVar(&o.tlsClientCert, "tls-client-cert", "", "PEM client certificate to present (mTLS, when the server runs with --client-ca); needs --tls-client-key; implies --tls")
	flags.StringVar(&o.tlsClientKey, "tls-client-key", "", "PEM private key of --tls-client-cert")
	flags.StringVar(&o.tlsServerName, "tls-server-name", "", "name to verify the server's certificate against, if not the host of --server")
	flags.StringVar(&o.token, "token", "", "API token sent as 'authorization: Bearer' to --server, whatever it is; prefer "+tokenEnv+" (a command line is visible to other users); default: for a loopback --server and without --tls-client-cert, the token in <data-dir>/"+adminTokenFileName+", if that exists, else none")
	markSecret(flags, "token")
	flags.StringVar(&o.dataDir, "data-dir", "./ltikeys-data", "data directory of a local 'ltikeys serve', whose generated "+adminTokenFileName+" is sent when no token is given, but only to a loopback --server (127.0.0.0/8, [::1], localhost) and never with --tls-client-cert")
	flags.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of the call")
	// How to reach the server can come from the environment and a --config
	// file; what to ask it, like -o, only from the command line.
	for _, name := range connectionFlags {
		addEnvTwin(flags.Lookup(name))
	}
	flags.StringVarP(&o.output, "output", "o", outputTable, "output format: table (for people) or json (the response as protobuf JSON, for scripts)")
}

// connectionFlags are the client flags that have environment twins: those
// that say how to reach and authenticate to the server, the same for every
// call. Every other flag of a client command has none.
var connectionFlags = []string{"server", "tls", "tls-ca", "tls-client-cert", "tls-client-key", "tls-server-name", "token", "data-dir", "timeout"}

// client is a connection to the gRPC API, authenticated.
type client struct {
	conn   *grpc.ClientConn
	opts   *clientOptions
	auth   string
	bearer bearer
}

// dial connects to cmd's --server. The connection is lazy: errors reaching
// the server surface on the first call.
func (o *clientOptions) dial(cmd *cobra.Command) (*client, error) {
	if o.output != outputTable && o.output != outputJSON {
		return nil, fmt.Errorf("--output: want table or json, got %q", o.output)
	}
	creds, err := o.credentials()
	if err != nil {
		return nil, err
	}
	tokenSource := sourceDefault
	if f := cmd.Flags().Lookup("token"); f != nil {
		tokenSource = source(f)
	}
	b, err := o.bearerToken(tokenSource)
	if err != nil {
		return nil, err
	}
	if b.token != "" && !o.usesTLS() && !isLoopbackAddr(o.server) {
		fmt.Fprintf(cmd.ErrOrStderr(), "ltikeys: warning: sending the API token to %s without TLS: it crosses the network in clear text (use --tls or --tls-ca)\n", o.server)
	}
	conn, err := grpc.NewClient(o.server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	c := &client{conn: conn, opts: o, bearer: b}
	if b.token != "" {
		c.auth = "Bearer " + b.token
	}
	return c, nil
}

func (o *clientOptions) usesTLS() bool {
	return o.tls || o.tlsCA != "" || o.tlsClientCert != ""
}

// credentials returns the transport credentials the flags ask for.
func (o *clientOptions) credentials() (credentials.TransportCredentials, error) {
	if (o.tlsClientCert == "") != (o.tlsClientKey == "") {
		return nil, errors.New("--tls-client-cert and --tls-client-key must be given together")
	}
	if !o.usesTLS() {
		return insecure.NewCredentials(), nil
	}
	cfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// tlsConfig returns the TLS configuration the flags ask for.
func (o *clientOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.tlsServerName}
	if o.tlsCA != "" {
		pool, err := readCertPool("--tls-ca", o.tlsCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.tlsClientCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsClientCert, o.tlsClientKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-cert/--tls-client-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// bearer is the token a client command sends, and where it came from.
type bearer struct {
	token string
	// source names where token came from ("token from --token",
	// "token from LTIKEYS_TOKEN", "token from the --config file",
	// "token from the data directory (PATH)"), or is "no token". It
	// never holds the token.
	source string
	// skipped says, with no token, why <data-dir>/admin.token, which
	// exists, was not sent; else it is empty.
	skipped string
}

// The sources of a token, as an UNAUTHENTICATED error names them.
const (
	tokenFromFlag    = "token from --token"
	tokenFromEnv     = "token from " + tokenEnv
	tokenFromConfig  = "token from the --config file"
	tokenFromDataDir = "token from the data directory"
	noToken          = "no token"
)

// bearerToken picks the token to send. One given explicitly (--token, or
// else LTIKEYS_TOKEN, or else a --config file; flagSource says which set
// --token's value) goes to any server. Without one, the admin token a
// local serve generated in <data-dir>/admin.token is sent, but only to a
// loopback --server and only when no client certificate is configured: it
// opens the serve on this machine and must not reach another, and a
// client certificate is a credential of its own, which a stale admin
// token would override. Otherwise no token is sent.
func (o *clientOptions) bearerToken(flagSource string) (bearer, error) {
	if token := strings.TrimSpace(o.token); token != "" {
		switch flagSource {
		case sourceEnv:
			return bearer{token: token, source: tokenFromEnv}, nil
		case sourceFile:
			return bearer{token: token, source: tokenFromConfig}, nil
		}
		return bearer{token: token, source: tokenFromFlag}, nil
	}
	path := filepath.Join(o.dataDir, adminTokenFileName)
	if o.tlsClientCert != "" || !isLoopbackAddr(o.server) {
		b := bearer{source: noToken}
		if _, err := os.Stat(path); err == nil {
			if o.tlsClientCert != "" {
				b.skipped = fmt.Sprintf("%s is not sent with a client certificate (--tls-client-cert)", path)
			} else {
				b.skipped = fmt.Sprintf("%s is sent only to a loopback --server (127.0.0.0/8, [::1], localhost), not to %s", path, o.server)
			}
		}
		return b, nil
	}
	text, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return bearer{source: noToken}, nil
	case err != nil:
		return bearer{}, fmt.Errorf("read the admin token: %w", err)
	}
	token := strings.TrimSpace(string(text))
	if token == "" {
		return bearer{}, fmt.Errorf("%s is empty", path)
	}
	return bearer{token: token, source: tokenFromDataDir + " (" + path + ")"}, nil
}

// unauthenticatedHint is what an UNAUTHENTICATED error adds: which token
// the call carried, by its source, and how to send another.
func (b bearer) unauthenticatedHint(clientCert bool) string {
	switch {
	case b.token != "":
		return fmt.Sprintf("the call carried the %s: is it one of the server's tokens?", b.source)
	case b.skipped != "":
		return fmt.Sprintf("the call carried %s: %s; set %s or --token", b.source, b.skipped, tokenEnv)
	case clientCert:
		return fmt.Sprintf("the call carried %s, only the client certificate: map its identity with the server's --client-cert-scopes-file, or set %s or --token", b.source, tokenEnv)
	}
	return fmt.Sprintf("the call carried %s: set %s or --token, or run in the directory of a local 'ltikeys serve' (--data-dir)", b.source, tokenEnv)
}

func (c *client) Close() error { return c.conn.Close() }

// keysMethod is a KeyService method as its method expression gives it,
// e.g. ltikeysv1.KeyServiceClient.GetRegistration.
type keysMethod[Req, Resp any] func(ltikeysv1.KeyServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error)

// callKeys makes one KeyService call with the deadline, the credentials and
// a header receiver, and turns a failure into an error that names the gRPC
// code, the message and the request id the server logged it under, and
// then, on lines of their own, the reason of a platform-domain ErrorInfo
// with a platform's OAuth error code and description (platformErrorLines)
// or a hint.
func callKeys[Req, Resp any](ctx context.Context, c *client, method keysMethod[Req, Resp], req Req) (Resp, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	if c.auth != "" {
		callCtx = metadata.AppendToOutgoingContext(callCtx, "authorization", c.auth)
	}
	var header metadata.MD
	resp, err := method(ltikeysv1.NewKeyServiceClient(c.conn), callCtx, req, grpc.Header(&header))
	if err == nil {
		return resp, nil
	}
	st := status.Convert(err)
	msg := fmt.Sprintf("%s: %s", rpccode.Code(st.Code()).String(), escapeText(st.Message()))
	ids := header.Get(server.RequestIDHeader)
	if len(ids) > 0 {
		msg += " (request id " + ids[0] + ")"
	}
	for _, line := range platformErrorLines(st) {
		msg += "\n" + line
	}
	if st.Code() == codes.Unavailable && len(ids) == 0 { // no gRPC server answered
		if hint := c.opts.transportHint(ctx); hint != "" {
			msg += "\n" + hint
		}
	}
	if st.Code() == codes.Unauthenticated {
		msg += "\n" + c.bearer.unauthenticatedHint(c.opts.tlsClientCert != "")
	}
	return resp, exitError{code: 1, err: errors.New(msg)}
}

// platformErrorLines returns, for a status that carries a
// google.rpc.ErrorInfo of server.PlatformErrorDomain, the lines that give
// its reason ("reason: NONCE_REPLAYED", "reason: PLATFORM_OAUTH_ERROR"),
// then, when its metadata holds a platform's OAuth error, that error's
// code and description ("error: invalid_client", "error_description: …"),
// each escaped as a table cell is; for any other status none. Only the
// first such ErrorInfo counts: the server attaches one.
func platformErrorLines(st *status.Status) []string {
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != server.PlatformErrorDomain {
			continue
		}
		var lines []string
		if reason := info.GetReason(); reason != "" {
			lines = append(lines, "reason: "+escapeText(reason))
		}
		md := info.GetMetadata()
		if code, ok := md["error"]; ok {
			lines = append(lines, "error: "+escapeText(code))
			if desc, ok := md["error_description"]; ok {
				lines = append(lines, "error_description: "+escapeText(desc))
			}
		}
		return lines
	}
	return nil
}

// unary dials --server, makes one KeyService call and prints its response
// as print does, rows giving the table.
func unary[Req any, Resp proto.Message](cmd *cobra.Command, o *clientOptions, method keysMethod[Req, Resp], req Req, rows func(Resp) [][2]string) error {
	c, err := o.dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := callKeys(cmd.Context(), c, method, req)
	if err != nil {
		return err
	}
	return o.print(cmd.OutOrStdout(), resp, func() [][2]string { return rows(resp) })
}

// print writes a response: as protobuf JSON with -o json, else as the
// table rows returns.
func (o *clientOptions) print(w io.Writer, msg proto.Message, rows func() [][2]string) error {
	if o.output == outputJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(msg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", escapeJSON(b))
		return err
	}
	return printRows(w, rows())
}

// printRows writes name/value rows as an aligned two-column table.
func printRows(w io.Writer, rows [][2]string) error {
	lines := make([][]string, len(rows))
	for i, r := range rows {
		lines[i] = r[:]
	}
	return writeTable(w, lines)
}

// writeTable writes lines as aligned columns, every cell escaped by
// escapeText: a cell is one value, whatever it holds.
func writeTable(w io.Writer, lines [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range lines {
		cells := make([]string, len(l))
		for i, c := range l {
			cells[i] = escapeText(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// unsafeRune reports whether r, printed as it is, could act on a terminal
// or hide in plain sight: a control character (C0, DEL, C1, so no escape
// sequence), a format character (bidirectional controls, zero-width
// characters) or a line or paragraph separator. The server refuses them in
// what it stores, but a table also prints what a server returns, which may
// have been stored before, or beneath the API.
func unsafeRune(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }

// escapeText returns s with each unsafe rune escaped as strconv.Quote
// escapes it (\x1b, \t, \u202e, \U000e0041) and each byte that is not UTF-8
// as \xff. Everything else is left as it is, backslashes included.
func escapeText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeJSON returns the JSON text b with each unsafe rune from DEL up
// escaped as \uXXXX (a pair of them beyond U+FFFF), which decodes to the
// same value, and each byte that is not UTF-8 as \ufffd, which is what a
// decoder makes of it. Encoders escape the C0 controls in strings already,
// and outside strings valid JSON holds only white space, left as it is.
func escapeJSON(b []byte) []byte {
	if utf8.Valid(b) && !bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x7f && unsafeRune(r) }) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r > 0xffff && unsafeRune(r):
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		case r >= 0x7f && unsafeRune(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// printTable writes a response: as protobuf JSON with -o json, else as a
// table of one line per item under header, followed by the footer lines
// (a next page token, a count) if any.
func (o *clientOptions) printTable(w io.Writer, msg proto.Message, header []string, rows func() ([][]string, []string)) error {
	if o.output == outputJSON {
		return o.print(w, msg, nil)
	}
	lines, footer := rows()
	if err := writeTable(w, append([][]string{header}, lines...)); err != nil {
		return err
	}
	for _, f := range footer {
		if _, err := fmt.Fprintln(w, escapeText(f)); err != nil {
			return err
		}
	}
	return nil
}

// noToolJWKSURL stands in a table for the tool_jwks_url of a server that
// has no --public-url.
const noToolJWKSURL = "(unknown: the server runs without --public-url)"

// registrationRows describes a registration: the platform's endpoints and
// deployment ids, then the tool's key set URL to give the platform, then
// its keys.
func registrationRows(r *ltikeysv1.Registration) [][2]string {
	toolJWKS := r.GetToolJwksUrl()
	if toolJWKS == "" {
		toolJWKS = noToolJWKSURL
	}
	rows := [][2]string{
		{"REGISTRATION ID", r.GetId()},
		{"ISSUER", r.GetIssuer()},
		{"CLIENT ID", r.GetClientId()},
		{"AUTH ENDPOINT", r.GetAuthEndpoint()},
		{"JWKS URI", r.GetJwksUri()},
		{"TOKEN ENDPOINT", r.GetTokenEndpoint()},
	}
	rows = append(rows, deploymentIDRows(r.GetDeploymentIds())...)
	rows = append(rows,
		[2]string{"TOOL JWKS URL", toolJWKS},
		[2]string{"CURRENT KID", r.GetKid()})
	if r.GetPendingKid() != "" {
		rows = append(rows,
			[2]string{"PENDING KID", r.GetPendingKid()},
			[2]string{"PENDING ACTIVATES", formatTimestamp(r.GetPendingActivateTime())})
	}
	return append(rows,
		[2]string{"CREATED", formatTimestamp(r.GetCreateTime())},
		[2]string{"UPDATED", formatTimestamp(r.GetUpdateTime())})
}

// anyDeploymentText stands in a table for the deployment ids of a
// registration that lists none.
const anyDeploymentText = "(any)"

// deploymentIDRows lists deployment ids one a row, so that no separator
// is mistaken for part of an id: the first row is labelled DEPLOYMENT IDS,
// the others are not.
func deploymentIDRows(ids []string) [][2]string {
	if len(ids) == 0 {
		return [][2]string{{"DEPLOYMENT IDS", anyDeploymentText}}
	}
	rows := make([][2]string, len(ids))
	for i, id := range ids {
		rows[i][1] = id
	}
	rows[0][0] = "DEPLOYMENT IDS"
	return rows
}

// keyRows describes a key: its state, and the schedule times that are set.
func keyRows(prefix string, k *ltikeysv1.Key) [][2]string {
	rows := [][2]string{
		{prefix + "KID", k.GetKid()},
		{prefix + "ALG", k.GetAlg()},
		{prefix + "STATE", describeKeyState(k.GetState())},
		{prefix + "CREATED", formatTimestamp(k.GetCreateTime())},
	}
	for _, t := range []struct {
		name string
		ts   *timestamppb.Timestamp
	}{
		{"ACTIVATES", k.GetActivateTime()},
		{"SUPERSEDED", k.GetSupersedeTime()},
		{"RETIRES", k.GetRetireTime()},
		{"RETIRED", k.GetRetiredTime()},
	} {
		if t.ts != nil {
			rows = append(rows, [2]string{prefix + t.name, formatTimestamp(t.ts)})
		}
	}
	return rows
}

// keyStateName is a state as the CLI names it: pending, current, previous
// or retired.
func keyStateName(s ltikeysv1.KeyState) string {
	if s == ltikeysv1.KeyState_KEY_STATE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "KEY_STATE_"))
}

// describeKeyState is a state with what it means for the JWKS and signing.
func describeKeyState(s ltikeysv1.KeyState) string {
	switch s {
	case ltikeysv1.KeyState_KEY_STATE_PENDING:
		return "pending (published, not signing yet)"
	case ltikeysv1.KeyState_KEY_STATE_CURRENT:
		return "current (published, signing)"
	case ltikeysv1.KeyState_KEY_STATE_PREVIOUS:
		return "previous (published for verification only)"
	case ltikeysv1.KeyState_KEY_STATE_RETIRED:
		return "retired (not published)"
	}
	return ""
}

// parseKeyState reads a --state flag: pending, current, previous or
// retired; "" is any state.
func parseKeyState(s string) (ltikeysv1.KeyState, error) {
	if s == "" {
		return ltikeysv1.KeyState_KEY_STATE_UNSPECIFIED, nil
	}
	v, ok := ltikeysv1.KeyState_value["KEY_STATE_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("--state: want pending, current, previous or retired, got %q", s)
	}
	return ltikeysv1.KeyState(v), nil
}

func formatTimestamp(ts *timestamppb.Timestamp) string {
	return formatTime(ts.AsTime(), ts != nil)
}

func formatTime(t time.Time, set bool) string {
	if !set {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// pageFlags are the paging flags of the list commands.
type pageFlags struct {
	size  int32
	token string
	all   bool
}

func (p *pageFlags) register(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.Int32Var(&p.size, "page-size", 0, "the most "+what+" per page: default 50, at most 1000")
	f.StringVar(&p.token, "page-token", "", "the next page token a previous page printed; empty for the first page")
	f.BoolVar(&p.all, "all", false, "follow the next page tokens and print every page as one list")
}

// pages calls list for the first page (or --page-token's) and, with --all,
// for each following page, until next returns an empty token or a call
// fails.
func (p *pageFlags) pages(list func(token string) (next string, err error)) error {
	token := p.token
	for {
		next, err := list(token)
		if err != nil || next == "" || !p.all {
			return err
		}
		token = next
	}
}

// pageFooter is the line that tells how to get the next page, if any.
func pageFooter(n int, what, next string) []string {
	footer := []string{fmt.Sprintf("%d %s", n, what)}
	if next != "" {
		footer = append(footer, "NEXT PAGE TOKEN: "+next+" (pass it as --page-token, or use --all)")
	}
	return footer
}

// clientCommands returns the commands that call a running server.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{newRegistrationCommand(), newKeyCommand(), newSignCommand(), newPlatformCommand(), newJWKSCommand()}
}

// addClientFlags registers the client flags on a command group, for it and
// its subcommands.
func addClientFlags(group *cobra.Command, o *clientOptions) {
	o.register(group.PersistentFlags())
}

// clientHelp is the part of every client command's help that explains how
// it reaches the server.
const clientHelp = `
The command calls the gRPC API of a running "ltikeys serve" at --server
(default 127.0.0.1:50051), in plaintext unless --tls, --tls-ca or
--tls-client-cert is given. It authenticates with --token (better:
LTIKEYS_TOKEN), sent to whatever --server is, or with a client certificate
(--tls-client-cert). With neither, and a loopback --server (127.0.0.0/8,
[::1], localhost), it sends the admin token a local serve generated in
<--data-dir>/admin.token, so on a development machine it works with no
flags from the directory serve was started in; that token never goes to
another host, nor along with a client certificate. An UNAUTHENTICATED
error names the token the call carried by where it came from (--token,
LTIKEYS_TOKEN, the data directory, or no token), never the token itself.
When no server answers, the error says what it found at --server instead:
nothing listening, a TLS server (--tls), one that requires a client
certificate, or the HTTP listener rather than the gRPC one.

The flags that say how to reach the server (--server, --tls…, --token,
--data-dir, --timeout) can also be set in the environment, as the
[$LTIKEYS_…] after each shows, or in a --config file; the flags that say
what to do are read from the command line only.

Output is a table, or with -o json the response as protobuf JSON; control
and format characters in either are printed escaped (\x1b, \u202e). On
error it prints the gRPC code (NOT_FOUND, PERMISSION_DENIED, …) and message
and exits with status 1.`
