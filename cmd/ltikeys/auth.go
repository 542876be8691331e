package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ltikeys/ltikeys/server"
)

// tokensEnv holds token lines directly, separated by newlines or semicolons.
// They are hashes, not tokens, but a weak token could be recovered from its
// hash, so they have no flag twin on the command line either.
const tokensEnv = envPrefix + "TOKENS"

// certScopesEnv holds client certificate identity lines directly, separated
// by newlines or semicolons.
const certScopesEnv = envPrefix + "CLIENT_CERT_SCOPES"

// The files serve creates in the data directory for the embedded database
// when no credentials are configured: the hash of a generated admin token,
// and the token itself for the operator to use.
const (
	generatedTokensName = "tokens"
	adminTokenFileName  = "admin.token"
	adminTokenName      = "admin"
)

// authOptions are the flags that secure the gRPC listener: TLS, client
// certificates and the credentials that callers of KeyService present.
type authOptions struct {
	tokenFile      string
	tlsCert        string
	tlsKey         string
	clientCA       string
	certScopesFile string
	// insecureAllowPlaintext lets the gRPC listener serve without TLS on
	// an address other hosts can reach.
	insecureAllowPlaintext bool
	// failureRate and failureBurst throttle failed authentications, as
	// server.AuthConfig's FailureRate and FailureBurst; serve sets them
	// from --auth-failure-rate and --auth-failure-burst.
	failureRate  float64
	failureBurst int
}

func (o *authOptions) register(flags *pflag.FlagSet) {
	flags.StringVar(&o.tokenFile, "token-file", "", "file of API token lines name:scope[,scope]:sha256hex, holding SHA-256 hashes of tokens, never tokens; read again on SIGHUP; or set "+tokensEnv+", which cannot change while serve runs")
	flags.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) for the gRPC listener; needs --tls-key; read again on SIGHUP, for new connections")
	flags.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert; read again on SIGHUP")
	flags.StringVar(&o.clientCA, "client-ca", "", "PEM CA certificates: gRPC clients must present a certificate they issued (mTLS); needs --tls-cert; read again on SIGHUP, for new connections")
	flags.StringVar(&o.certScopesFile, "client-cert-scopes-file", "", "file of identity:scope[,scope] lines granting scopes to verified client certificates, identity being uri:SAN, dns:SAN or cn:COMMON-NAME; needs --client-ca; read again on SIGHUP; or set "+certScopesEnv+", which cannot change while serve runs")
	flags.BoolVar(&o.insecureAllowPlaintext, "insecure-allow-plaintext", false, "serve gRPC without TLS on a --grpc-addr other hosts can reach, sending API tokens and private keys in clear text; only where the network itself protects the traffic. Without it serve refuses to start there; a loopback address (127.0.0.0/8, [::1], localhost) needs no flag")
}

// accessControl is what guards serve's gRPC listener: the authenticator
// with the tokens and client certificate identities it accepts, and the TLS
// configuration of new handshakes. reload reads every file they came from
// again and swaps to the result, or keeps what it has.
type accessControl struct {
	opts *authOptions
	log  *slog.Logger
	auth *server.Authenticator
	// generated is <data-dir>/tokens when the embedded default's generated
	// admin token is in use: reload reads that file again.
	generated string
	// tls is the configuration of new TLS handshakes (certificate, key and
	// client CAs together), replaced whole by reload; nil when the listener
	// is plaintext.
	tls *atomic.Pointer[tls.Config]
	// reloading serializes reloads.
	reloading sync.Mutex
}

// accessControl loads the access control of the gRPC listener: the TLS
// files, if configured, and the credentials that callers of KeyService
// present.
//
// With no tokens and no client certificate identities configured, the
// embedded database gets an admin token generated in the data directory on
// first start (its hash in <data-dir>/tokens, the token in
// <data-dir>/admin.token, both mode 0600) and reuses it afterwards;
// PostgreSQL refuses to start, as it does without a master key.
//
// Without TLS, a grpcAddr other than a loopback address is refused unless
// --insecure-allow-plaintext is set, and then logged as INSECURE.
func (o *authOptions) accessControl(log *slog.Logger, store *storeOptions, grpcAddr string) (*accessControl, error) {
	creds, err := o.load()
	if err != nil {
		return nil, err
	}
	if err := o.checkPlaintext(grpcAddr); err != nil {
		return nil, err
	}
	ac := &accessControl{opts: o, log: log}
	if creds.tokens == nil && creds.certScopes == nil {
		if !store.embedded() {
			return nil, fmt.Errorf("no API credentials configured: PostgreSQL deployments must supply their own with --token-file or %s (or --client-ca with --client-cert-scopes-file)", tokensEnv)
		}
		if creds.tokens, ac.generated, err = generatedTokens(log, store.dataDir); err != nil {
			return nil, err
		}
	}
	ac.auth, err = server.NewAuthenticator(server.AuthConfig{
		Tokens:       creds.tokens,
		CertScopes:   creds.certScopes,
		Log:          log.With("component", "audit"),
		FailureRate:  o.failureRate,
		FailureBurst: o.failureBurst,
	})
	if err != nil {
		return nil, err
	}
	if creds.tls != nil {
		ac.tls = &atomic.Pointer[tls.Config]{}
		ac.tls.Store(creds.tls)
	} else if !isLoopbackAddr(grpcAddr) {
		log.Warn("INSECURE: the gRPC listener accepts connections from other hosts without TLS (--insecure-allow-plaintext), so API tokens and private keys cross the network in clear text: set --tls-cert and --tls-key", "grpc_addr", grpcAddr)
	}
	log.Info("gRPC access control", "tokens", len(creds.tokens), "client_cert_identities", len(creds.certScopes), "tls", creds.tls != nil, "client_certs_required", o.clientCA != "")
	return ac, nil
}

// checkPlaintext refuses a gRPC listener without TLS on grpcAddr unless
// grpcAddr is a loopback address or --insecure-allow-plaintext is set. It
// reads no file, so serve calls it before it writes any.
func (o *authOptions) checkPlaintext(grpcAddr string) error {
	if o.tlsCert != "" || isLoopbackAddr(grpcAddr) || o.insecureAllowPlaintext {
		return nil
	}
	return fmt.Errorf("refusing to serve gRPC without TLS on %s, which other hosts can reach (API tokens and private keys would cross the network in clear text): "+
		"set --tls-cert and --tls-key (%s, %s) to serve TLS, listen on a loopback address (127.0.0.1, [::1], localhost), "+
		"or, only where the network itself protects the traffic, pass --insecure-allow-plaintext (%s=true)",
		grpcAddr, envName("tls-cert"), envName("tls-key"), envName("insecure-allow-plaintext"))
}

// serverOptions returns the gRPC server options that enforce access
// control: the TLS credentials, if configured, and the interceptors that
// authenticate, authorize and audit every call of a non-public method.
// Both follow reload.
func (a *accessControl) serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.auth.StreamInterceptor()),
	}
	if a.tls != nil {
		// Each handshake takes the configuration current when the client's
		// hello arrives; connections already open keep theirs.
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return a.tls.Load(), nil
			},
		})))
	}
	return opts
}

// reload reads the token file, the client certificate scopes file and the
// TLS certificate, key and client CA files again, as serve read them at
// start, and swaps to them. It is all or nothing: if any of them fails to
// load, the previous set stays in force, the error says why, and it is
// logged at ERROR; a success logs one INFO line with what is now in force.
// Neither line holds a token, a hash or key material.
//
// Tokens and identities from LTIKEYS_TOKENS and LTIKEYS_CLIENT_CERT_SCOPES
// are read again too, but a process's environment does not change: they
// stay as they were at start.
func (a *accessControl) reload() error {
	a.reloading.Lock()
	defer a.reloading.Unlock()
	creds, err := a.opts.load()
	if err == nil && a.generated != "" {
		creds.tokens, err = readTokenFile(a.generated)
	}
	if err == nil {
		err = a.auth.SetCredentials(creds.tokens, creds.certScopes)
	}
	if err != nil {
		a.log.Error("reload failed; keeping the previous access control", "err", err)
		return err
	}
	attrs := []any{"token_source", a.tokenSource(), "tokens", len(creds.tokens), "client_cert_identities", len(creds.certScopes), "tls", creds.tls != nil}
	if creds.tls != nil {
		a.tls.Store(creds.tls)
		if leaf := creds.tls.Certificates[0].Leaf; leaf != nil {
			attrs = append(attrs, "tls_cert_serial", leaf.SerialNumber.String(), "tls_cert_not_after", leaf.NotAfter)
		}
	}
	a.log.Info("reloaded access control", attrs...)
	return nil
}

// tokenSource names where the tokens in force come from: a file, or
// LTIKEYS_TOKENS; empty when there are none.
func (a *accessControl) tokenSource() string {
	switch {
	case a.generated != "":
		return a.generated
	case a.opts.tokenFile != "":
		return a.opts.tokenFile
	}
	if _, ok := os.LookupEnv(tokensEnv); ok {
		return tokensEnv
	}
	return ""
}

// loadedCredentials is one reading of the access-control configuration.
type loadedCredentials struct {
	// tokens and certScopes are nil when not configured.
	tokens     []server.Token
	certScopes []server.CertIdentity
	// tls is the listener's TLS configuration; nil for plaintext.
	tls *tls.Config
}

// load reads the TLS files, the client certificate scopes and the tokens.
func (o *authOptions) load() (loadedCredentials, error) {
	var creds loadedCredentials
	var err error
	if creds.tls, err = o.tlsConfig(); err != nil {
		return loadedCredentials{}, err
	}
	if creds.certScopes, err = o.certScopes(); err != nil {
		return loadedCredentials{}, err
	}
	if creds.tokens, err = o.tokens(); err != nil {
		return loadedCredentials{}, err
	}
	return creds, nil
}

// tlsConfig reads the TLS certificate, its key and the client CAs, and
// returns the gRPC listener's TLS configuration, or nil for plaintext.
func (o *authOptions) tlsConfig() (*tls.Config, error) {
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key must be given together")
	case o.tlsCert == "" && o.clientCA != "":
		return nil, errors.New("--client-ca needs --tls-cert and --tls-key: client certificates are verified only over TLS")
	case o.tlsCert == "":
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if o.clientCA != "" {
		pool, err := readCertPool("--client-ca", o.clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// readCertPool reads the PEM certificates of a CA file named by flag.
func readCertPool(flag, path string) (*x509.CertPool, error) {
	pemCerts, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCerts) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", flag, path)
	}
	return pool, nil
}

// tokens returns the configured tokens, or nil when none are configured.
func (o *authOptions) tokens() ([]server.Token, error) {
	text, source, err := configLines(o.tokenFile, "--token-file", tokensEnv)
	if err != nil || source == "" {
		return nil, err
	}
	return parseTokens(text, source)
}

// readTokenFile reads a token file such as <data-dir>/tokens.
func readTokenFile(path string) ([]server.Token, error) {
	text, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return parseTokens(text, path)
}

// parseTokens parses token lines read from source, refusing none at all.
func parseTokens(text []byte, source string) ([]server.Token, error) {
	tokens, err := server.ParseTokens(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no tokens", source)
	}
	return tokens, nil
}

// certScopes returns the configured client certificate identities, or nil
// when none are configured.
func (o *authOptions) certScopes() ([]server.CertIdentity, error) {
	text, source, err := configLines(o.certScopesFile, "--client-cert-scopes-file", certScopesEnv)
	if err != nil || source == "" {
		return nil, err
	}
	if o.clientCA == "" {
		return nil, fmt.Errorf("%s needs --client-ca: only a verified client certificate has an identity to map", source)
	}
	ids, err := server.ParseCertScopes(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no identities", source)
	}
	return ids, nil
}

// configLines reads configuration lines from a file flag or, with semicolons
// as line breaks, from an environment variable, and names the source it
// used; the source is empty when neither is set.
func configLines(file, flag, env string) (text []byte, source string, err error) {
	value, envSet := os.LookupEnv(env)
	switch {
	case file != "" && envSet:
		return nil, "", fmt.Errorf("both %s and %s are set; use one", flag, env)
	case file != "":
		text, err := readConfigFile(file)
		return text, file, err
	case envSet:
		return []byte(strings.ReplaceAll(value, ";", "\n")), env, nil
	}
	return nil, "", nil
}

// readConfigFile reads a file that grants access, refusing one that group or
// others can write.
func readConfigFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %#o): chmod go-w it", path, perm)
	}
	return os.ReadFile(path)
}

// generatedTokens returns the tokens of <data-dir>/tokens, and its path,
// first generating an admin token if the file does not exist. The token
// itself is written only to <data-dir>/admin.token and never logged.
func generatedTokens(log *slog.Logger, dataDir string) ([]server.Token, string, error) {
	// Absolute, so the log tells the operator where to look.
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	path := filepath.Join(dataDir, generatedTokensName)
	tokenPath := filepath.Join(dataDir, adminTokenFileName)
	if _, err := os.Stat(path); err == nil {
		tokens, err := readTokenFile(path)
		if err != nil {
			return nil, "", err
		}
		log.Warn("using the API tokens generated for local use; production must supply its own with --token-file or "+tokensEnv, "path", path, "admin_token_file", tokenPath)
		return tokens, path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}

	token, err := server.GenerateToken()
	if err != nil {
		return nil, "", err
	}
	admin := server.Token{
		Name:   adminTokenName,
		Scopes: []server.Scope{server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign, server.ScopePlatformToken, server.ScopePlatformVerify},
		Hash:   server.HashToken(token),
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", err
	}
	// The token first: the hash file must never exist without the token
	// having been saved.
	if err := writeNewFile(tokenPath, token+"\n"); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("%s exists but %s does not: remove %s to generate a new admin token", tokenPath, path, tokenPath)
		}
		return nil, "", fmt.Errorf("write the admin token: %w", err)
	}
	if err := writeNewFile(path, "# Generated for the embedded database. Production must supply its own tokens.\n# name:scope[,scope]:sha256(token)\n"+admin.Line()+"\n"); err != nil {
		_ = os.Remove(tokenPath)
		return nil, "", fmt.Errorf("write the token file: %w", err)
	}
	log.Warn("generated an admin API token for local use; send it as 'authorization: Bearer <token>' metadata; production must supply its own tokens with --token-file or "+tokensEnv, "admin_token_file", tokenPath, "path", path)
	return []server.Token{admin}, path, nil
}

// writeNewFile creates path with mode 0600 and writes text to it. It fails
// with an os.ErrExist error, writing nothing, if path exists: it never
// overwrites what another process just wrote.
func writeNewFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// isLoopbackAddr reports whether a listen address accepts connections from
// this host only. An empty host listens on every interface.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
