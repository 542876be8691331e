package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltikeys/ltikeys/server"
)

// maxJWKSBytes bounds the JWKS document the client reads.
const maxJWKSBytes = 4 << 20

type jwksOptions struct {
	httpServer     string
	registrationID string
	output         string
	timeout        time.Duration
}

func newJWKSCommand() *cobra.Command {
	var o jwksOptions
	cmd := &cobra.Command{
		Use:   "jwks",
		Short: "Fetch and print the public JWK Set, as platforms see it",
		Long: `jwks fetches the public key set from the HTTP listener of a running
"ltikeys serve" (GET /.well-known/jwks.json, no credentials needed), exactly
as learning platforms fetch it, and prints one row per published key. With
-o json it prints the document itself, indented. --registration-id fetches
one registration's own key set instead.

--http-server is the base URL of the HTTP listener (default
http://127.0.0.1:8080, serve's default --http-addr); a URL with a path is
fetched as it is, so the public URL a platform is configured with works too.`,
		Example: `  ltikeys jwks
  ltikeys jwks -o json
  ltikeys jwks --http-server https://lti.example.edu/.well-known/jwks.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.httpServer, "http-server", "http://127.0.0.1:8080", "base URL of the server's public HTTP listener, or the full URL of a JWKS")
	f.StringVar(&o.registrationID, "registration-id", "", "fetch only this registration's key set, /registrations/ID/jwks.json")
	f.StringVarP(&o.output, "output", "o", outputTable, "output format: table, or json (the JWKS document, indented)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of the request")
	// Where the listener is comes from the environment too; what to fetch
	// and how to print it only from the command line.
	addEnvTwin(f.Lookup("http-server"))
	addEnvTwin(f.Lookup("timeout"))
	return cmd
}

// jwksURL returns the URL to fetch: --http-server with the JWKS path when
// it has no path of its own.
func (o *jwksOptions) jwksURL() (string, error) {
	u, err := url.Parse(o.httpServer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--http-server: want an http:// or https:// URL, got %q", o.httpServer)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = server.JWKSPath
		if o.registrationID != "" {
			u.Path = "/registrations/" + url.PathEscape(o.registrationID) + "/jwks.json"
		}
	}
	return u.String(), nil
}

func (o *jwksOptions) run(ctx context.Context, w io.Writer) error {
	if o.output != outputTable && o.output != outputJSON {
		return fmt.Errorf("--output: want table or json, got %q", o.output)
	}
	target, err := o.jwksURL()
	if err != nil {
		return err
	}
	reqCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		hint := o.fetchHint(ctx, req.URL, err)
		if hint != "" {
			hint = "\n" + hint
		}
		return exitError{code: 1, err: fmt.Errorf("fetch the JWKS: %w%s", err, hint)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("read the JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return exitError{code: 1, err: fmt.Errorf("GET %s: %s: %s", target, resp.Status, escapeText(strings.TrimSpace(string(body))))}
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: the document is larger than %d bytes", target, maxJWKSBytes)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("GET %s: not a JWK Set: %w", target, err)
	}
	if o.output == outputJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err := w.Write(escapeJSON(out.Bytes()))
		return err
	}
	rows := [][]string{{"KID", "ALG", "KTY", "USE", "BITS"}}
	for _, k := range doc.Keys {
		rows = append(rows, []string{str(k["kid"]), str(k["alg"]), str(k["kty"]), str(k["use"]), modulusBits(k)})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	summary := fmt.Sprintf("%d published key(s) at %s", len(doc.Keys), target)
	if cc := resp.Header.Get("Cache-Control"); cc != "" {
		summary += " (Cache-Control: " + cc + ")"
	}
	_, err = fmt.Fprintln(w, escapeText(summary))
	return err
}

// fetchHint says why fetching u failed with err, and which flag to change:
// nothing listens there, or a gRPC listener does (found as transportHint
// finds one); "" when it cannot tell.
func (o *jwksOptions) fetchHint(ctx context.Context, u *url.URL, err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("is 'ltikeys serve' running with its HTTP listener at %s? (--http-server, %s)", escapeText(o.httpServer), envName("http-server"))
	}
	if u.Scheme != "http" {
		return ""
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, dialErr := new(net.Dialer).DialContext(ctx, "tcp", addr)
	if dialErr != nil {
		return ""
	}
	defer conn.Close()
	if plainProbe(ctx, conn) == kindHTTP2 {
		return fmt.Sprintf("this looks like the gRPC listener (serve's --grpc-addr), not the HTTP one: use --http-server http://%s (serve's --http-addr)", net.JoinHostPort(u.Hostname(), "8080"))
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// modulusBits is the size of an RSA key's modulus, from its base64url n.
func modulusBits(k map[string]any) string {
	n, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(str(k["n"]), "="))
	if err != nil || len(n) == 0 {
		return ""
	}
	return fmt.Sprint(new(big.Int).SetBytes(n).BitLen())
}
