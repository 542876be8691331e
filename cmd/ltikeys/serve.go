package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/ltikeys/ltikeys/crypto"
	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
	"github.com/ltikeys/ltikeys/storage"
)

type serveOptions struct {
	log              logOptions
	store            storeOptions
	auth             authOptions
	limits           limitOptions
	grpcAddr         string
	httpAddr         string
	publicURL        string
	httpLimits       httpLimits
	keyBits          int
	disableExport    bool
	jwksRefresh      time.Duration
	jwksCoalesce     time.Duration
	jwksMaxAge       time.Duration
	publishAhead     time.Duration
	jwksMaxStale     time.Duration
	keyCacheSize     int
	maxPublishedKeys int
	transitions      time.Duration
	keyPoolSize      int
	shutdownTimeout  time.Duration
	metricsAddr      string
	reflection       bool
	requestTimeout   time.Duration
	printConfig      bool
	maxTokenLife     time.Duration

	// The outbound side: platforms' token endpoints.
	platformTokenMargin   time.Duration
	platformTimeout       time.Duration
	allowPrivatePlatforms bool
	verifyLeeway          time.Duration
	platformJWKSCooldown  time.Duration
	platformJWKSMaxStale  time.Duration
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gRPC key service and the public JWKS endpoint",
		Long: `serve runs the gRPC KeyService and JwksService on --grpc-addr and the public
HTTP listener on --http-addr, which serves GET /.well-known/jwks.json,
/registrations/<id>/jwks.json, /healthz and /readyz and nothing else. It
holds at most --http-max-connections connections open at once (the metrics
listener as many again, apart); one more waits unanswered in the kernel's
accept queue until one of them closes. Idle keep-alive connections are closed after
--http-idle-timeout, and requests whose headers exceed
--http-max-header-bytes (and net/http's 4 KiB slack) are answered 431.

Give each platform its registration's own key set,
/registrations/<id>/jwks.json, rather than /.well-known/jwks.json, which
lists every registration's keys and grows with every tenant. With
--public-url, the base URL platforms reach the HTTP listener at (a path
prefix is kept, for a proxy that routes by path), the API and the CLI
show that URL for every registration as tool_jwks_url ("TOOL JWKS URL").

/readyz answers 200 while the JWKS is loaded and matched the database at
most --jwks-max-stale ago, so a database outage leaves the JWKS in service
on its last good key set; gRPC health reports ltikeys.v1.KeyService
NOT_SERVING meanwhile, and calls that need the database fail UNAVAILABLE
with a retry hint.

Every KeyService call must carry "authorization: Bearer <token>" metadata
for a token of --token-file or LTIKEYS_TOKENS, or a client certificate
mapped by --client-cert-scopes-file. SignJwt and CreateClientAssertion need
scope keys.sign, GetToolKey keys.read_private (it returns private keys; with
--disable-key-export it refuses everyone), GetPlatformAccessToken
platform.token (it obtains a platform's access token, signing the client
assertion itself), VerifyPlatformToken platform.verify (it verifies a
token a platform signed, such as a launch's id_token, against the
platform's keys), GetRegistration, ListRegistrations and ListKeys
keys.read, the other methods keys.admin. JwksService is open to all. Without --tls-cert and --tls-key, tokens and
private keys would cross the network in clear text, so serve refuses a
--grpc-addr other than a loopback address (127.0.0.0/8, [::1], localhost)
unless --insecure-allow-plaintext is given.

SIGHUP reloads access control without a restart: the token file
(--token-file, or the generated <data-dir>/tokens), --client-cert-scopes-file
and the TLS files --tls-cert, --tls-key and --client-ca. To revoke a token,
remove its line from the token file and run "kill -HUP <pid>". Every call
after the reload is checked against the new tokens and identities, on open
connections too; new connections get the new certificate and client CAs,
while open ones keep the handshake they made. A reload is all or nothing:
if any file fails to load (unreadable, a bad line, a key that does not
match the certificate, a token file writable by group or others), the
previous set stays in force and the reason is logged at ERROR; a success
logs one INFO line with the counts. LTIKEYS_TOKENS and
LTIKEYS_CLIENT_CERT_SCOPES cannot change while serve runs: changing them
needs a restart, as does every other setting.

With no flags it uses an embedded SQLite database in --data-dir and, on first
start, generates a master key file and an admin API token there (the token
in admin.token). Before accepting requests it applies pending schema
migrations (see "ltikeys migrate --help"; replicas starting together wait
for one another, and each migration runs once), refuses a schema that a
later release wrote, and checks that every stored
private key opens with the configured master keys and refuses to start,
naming the missing key, if one does not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.computeDefaults(cmd.Flags())
			if o.printConfig {
				return printConfig(cmd.OutOrStdout(), cmd)
			}
			return serve(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	o.log.register(f)
	o.store.register(f)
	o.auth.register(f)
	f.StringVar(&o.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address")
	o.limits.register(f)
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "public HTTP listen address (JWKS and health)")
	o.httpLimits.register(f)
	f.StringVar(&o.publicURL, "public-url", "", "base URL at which platforms reach the public HTTP listener, e.g. https://lti.example.edu or, behind a proxy that routes a path prefix to it, https://example.edu/ltikeys; with it every registration the API returns carries tool_jwks_url, its own JWK Set's URL, to give the platform. An absolute https URL (http only for a loopback host) without query or fragment; empty leaves tool_jwks_url empty")
	f.IntVar(&o.keyBits, "key-bits", 2048, "RSA modulus size of new keys: 2048, 3072 or 4096")
	f.BoolVar(&o.disableExport, "disable-key-export", false, "refuse GetToolKey to every caller, so private keys never leave the service; callers sign with SignJwt and CreateClientAssertion")
	f.DurationVar(&o.jwksRefresh, "jwks-refresh", time.Second, "how often to check the database for changes made by other replicas (one single-row query; only after a change are the changed keys read); on PostgreSQL changes are also pushed at once by LISTEN/NOTIFY")
	f.DurationVar(&o.jwksCoalesce, "jwks-coalesce", time.Second, "least time between two rebuilds of the JWKS of every key (/.well-known/jwks.json), which is built on the first request after a change: requests in between get the previous one, so it lags changes by at most this; 0 rebuilds on the first request after every change. Per-registration JWKS and scheduled retirements are never delayed")
	f.DurationVar(&o.jwksMaxAge, "jwks-max-age", server.DefaultJWKSMaxAge, "max-age of the JWKS responses' Cache-Control header: how long platforms and shared caches may reuse them")
	f.DurationVar(&o.publishAhead, publishAheadFlag, 0, "how long a new key is published before it signs when a RotateKey leaves publish_ahead unset (\"ltikeys key rotate\" without --publish-ahead), so that verifiers, which cache the JWKS whatever Cache-Control says, have it before it signs (see docs/platform-caching.md); an explicit publish_ahead, 0s included, wins. 0 or at least --jwks-max-age. Default: the larger of --jwks-max-age and "+server.MinDefaultPublishAhead.String()+", which --print-config shows")
	f.DurationVar(&o.jwksMaxStale, "jwks-max-stale", server.DefaultJWKSMaxStale, "how long the JWKS stays ready (/readyz 200, health ltikeys.v1.JwksService SERVING) on the last good key set while the database does not answer; 0: not ready as soon as a check of the database fails")
	f.IntVar(&o.keyPoolSize, "key-pool-size", server.DefaultKeyPoolSize, "how many pre-generated keys (of --key-bits) to keep in memory, refilled in the background, so CreateRegistration and RotateKey need not wait for RSA generation; 0 turns the pool off")
	f.DurationVar(&o.transitions, "transition-interval", server.DefaultTransitionInterval, "how often to record due key transitions (pending keys activating, previous keys retiring) in the database; which key signs and which keys are published follow the schedule whether or not they are recorded")
	f.IntVar(&o.maxPublishedKeys, "max-published-keys", server.DefaultMaxPublishedKeys, "most keys one registration may publish (pending, current and previous): a rotation past it is refused until previous keys are retired; 0 or less removes the bound")
	f.IntVar(&o.keyCacheSize, "key-cache-size", server.DefaultKeyCacheSize, "how many opened signing keys GetToolKey keeps in memory; 0 or less turns the cache off")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may run after SIGTERM before they are cut")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "listen address of the Prometheus /metrics endpoint, e.g. 127.0.0.1:9090; empty turns metrics off. Never the public --http-addr")
	f.BoolVar(&o.reflection, "reflection", true, "serve gRPC server reflection, so grpcurl and similar tools need no .proto files; --reflection=false turns it off")
	f.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "longest a gRPC call may run; a client's shorter deadline is kept")
	f.DurationVar(&o.maxTokenLife, "max-token-lifetime", server.DefaultMaxTokenLifetime, "longest a token the service signs may stay valid, in whole seconds: bounds SignJwt's expires_in and exp claims and CreateClientAssertion's expires_in (which is also at most 1h); SignJwt gives claims without exp the shorter of 5m and this")
	f.DurationVar(&o.platformTokenMargin, "platform-token-margin", platform.DefaultExpiryMargin, "how long before it expires a platform access token that GetPlatformAccessToken obtained stops being reused from memory; a token that lives no longer than this is returned but not reused")
	f.DurationVar(&o.platformTimeout, "platform-timeout", platform.DefaultRequestTimeout, "longest one request to a platform (its token endpoint, or its JWK Set at a registration's jwks_uri) may take, from connecting to reading the answer (connecting and the TLS handshake are bounded by "+platform.DefaultConnectTimeout.String()+" each)")
	f.BoolVar(&o.allowPrivatePlatforms, "allow-private-platforms", false, "let GetPlatformAccessToken and VerifyPlatformToken reach token endpoints and jwks_uri at private, loopback, link-local and other non-public addresses (an on-premises platform); by default such an address is refused when connecting, after DNS resolution, so that no registration can make ltikeys call into the internal network. An endpoint whose own host is localhost or a loopback address is always allowed")
	f.DurationVar(&o.verifyLeeway, "verify-leeway", server.DefaultVerifyLeeway, "clock skew VerifyPlatformToken allows between a platform's clock and this one for a token's exp, iat and nbf; 0: none")
	f.DurationVar(&o.platformJWKSCooldown, "platform-jwks-cooldown", platform.DefaultCooldown, "least time between two fetches of one platform's JWK Set caused by tokens naming a kid it lacks, so that tokens with made-up kids cannot make ltikeys hammer the platform")
	f.DurationVar(&o.platformJWKSMaxStale, "platform-jwks-max-stale", platform.DefaultMaxStale, "how long past its expiry the last good copy of a platform's JWK Set keeps verifying while fetching it fails")
	f.BoolVar(&o.printConfig, "print-config", false, "print the effective configuration (flags, environment, --config file) with secrets redacted, and exit")
	addEnvUsage(f)
	return cmd
}

func serve(ctx context.Context, o *serveOptions) error {
	// SIGHUP reloads access control (see reloadOnHangup) rather than end
	// the process, Go's default. Caught from the start, so that one sent
	// while serve starts up is not fatal either; it is acted on once the
	// listeners are up.
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	defer signal.Stop(hangup)

	log, err := o.log.logger()
	if err != nil {
		return err
	}
	if !crypto.ValidKeyBits(o.keyBits) {
		return fmt.Errorf("--key-bits: want 2048, 3072 or 4096, got %d", o.keyBits)
	}
	if o.jwksRefresh <= 0 {
		return fmt.Errorf("--jwks-refresh: must be positive, got %s", o.jwksRefresh)
	}
	if o.jwksCoalesce < 0 {
		return fmt.Errorf("--jwks-coalesce: must not be negative, got %s", o.jwksCoalesce)
	}
	if o.keyPoolSize < 0 {
		return fmt.Errorf("--key-pool-size: must not be negative, got %d", o.keyPoolSize)
	}
	if o.transitions <= 0 {
		return fmt.Errorf("--transition-interval: must be positive, got %s", o.transitions)
	}
	if o.jwksMaxAge < 0 {
		return fmt.Errorf("--jwks-max-age: must not be negative, got %s", o.jwksMaxAge)
	}
	switch {
	case o.publishAhead < 0:
		return fmt.Errorf("--%s: must not be negative, got %s", publishAheadFlag, o.publishAhead)
	case o.publishAhead > 0 && o.publishAhead < o.jwksMaxAge:
		return fmt.Errorf("--%s %s is shorter than --jwks-max-age %s: a platform may keep the JWKS for --jwks-max-age and refuse what a new key signs until then; give 0 (new keys sign at once) or at least --jwks-max-age", publishAheadFlag, o.publishAhead, o.jwksMaxAge)
	case o.publishAhead > server.MaxRotationWindow:
		return fmt.Errorf("--%s: must be at most %s, got %s", publishAheadFlag, server.MaxRotationWindow, o.publishAhead)
	}
	if o.jwksMaxStale < 0 {
		return fmt.Errorf("--jwks-max-stale: must not be negative, got %s", o.jwksMaxStale)
	}
	if o.maxTokenLife < time.Second || o.maxTokenLife%time.Second != 0 {
		return fmt.Errorf("--max-token-lifetime: must be whole seconds, at least 1s, got %s", o.maxTokenLife)
	}
	if err := server.CheckPublicURL(o.publicURL); err != nil {
		return fmt.Errorf("--public-url: %w", err)
	}
	if err := o.httpLimits.validate(); err != nil {
		return err
	}
	if err := o.auth.checkPlaintext(o.grpcAddr); err != nil {
		return err
	}
	limits, err := o.limits.limits()
	if err != nil {
		return err
	}
	if o.auth.failureRate, o.auth.failureBurst, err = o.limits.failureLimit(); err != nil {
		return err
	}
	keyring, err := o.store.keyring(log, true)
	if err != nil {
		return err
	}
	access, err := o.auth.accessControl(log, &o.store, o.grpcAddr)
	if err != nil {
		return err
	}
	metrics := o.newMetrics()
	keyServiceName, jwksServiceName := ltikeysv1.KeyService_ServiceDesc.ServiceName, ltikeysv1.JwksService_ServiceDesc.ServiceName
	health := server.NewHealth(log.With("component", "health"), keyServiceName, jwksServiceName)

	// Registered now, connected to storage by start below (see start.go).
	var keys deferredKeyService
	var jwksService deferredJwksService
	grpcOpts := server.ServerOptions(log.With("component", "grpc"), metrics, health, o.requestTimeout, access.serverOptions())
	grpcServer := grpc.NewServer(append(grpcOpts, limits.ServerOptions(access.auth.TapHandle())...)...)
	services := server.EarlyRefusals(grpcServer)
	ltikeysv1.RegisterKeyServiceServer(services, &keys)
	ltikeysv1.RegisterJwksServiceServer(services, &jwksService)
	health.Register(grpcServer)
	if o.reflection {
		reflection.Register(grpcServer)
	}
	metrics.InitializeGRPC(grpcServer)

	// /readyz, which the public JWKS's load balancer probes, follows
	// JwksService: a database outage leaves the JWKS in service.
	handler, err := server.NewHTTPHandler(ctx, &jwksService, func(ctx context.Context) error {
		return health.ServiceReady(ctx, jwksServiceName)
	})
	if err != nil {
		return err
	}
	httpServer := &http.Server{
		Handler:           metrics.InstrumentJWKS(startGate(health, handler)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       o.httpLimits.idleTimeout,
		MaxHeaderBytes:    o.httpLimits.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// "OPTIONS *" reaches the handler, which answers 404 like any other
		// request it does not serve.
		DisableGeneralOptionsHandler: true,
	}

	grpcLis, err := net.Listen("tcp", o.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	grpcLis = limits.Listener(grpcLis)
	httpLis, err := o.httpLimits.listen(o.httpAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("--http-addr: %w", err)
	}
	var metricsServer *http.Server
	var metricsLis net.Listener
	metricsAddr := ""
	if metrics != nil {
		if metricsLis, err = o.httpLimits.listen(o.metricsAddr); err != nil {
			grpcLis.Close()
			httpLis.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		metricsAddr = metricsLis.Addr().String()
		metricsServer = &http.Server{
			Handler:           metrics.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       o.httpLimits.idleTimeout,
			MaxHeaderBytes:    o.httpLimits.maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	log.Info("listening", "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(), "metrics_addr", metricsAddr, "reflection", o.reflection)

	// start connects the services to storage once it is reachable, opens
	// the gates, then keeps the JWKS and the health status current until
	// ctx is done. A stored key that does not open is fatal, as before any
	// listener existed: serve stops.
	var store storage.Store
	start := func(ctx context.Context) error {
		opened, err := o.store.openStoreWhenReachable(ctx, log, metrics)
		if err != nil || opened == nil {
			return err
		}
		store = server.InstrumentStore(opened, metrics)
		check, err := server.CheckKeyring(ctx, store, keyring)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("refusing to start: a stored private key does not open with the configured master keys: %w", err)
		}
		if check.Format1 > 0 {
			log.Warn("private keys in envelope format 1 are bound to their kid but not to their registration: run ltikeys rewrap to upgrade them",
				"format1_keys", check.Format1, "keys", check.Keys)
		}
		jwks := server.NewJWKSCache(store, server.WithGlobalRebuildInterval(o.jwksCoalesce))
		if err := retry(ctx, log, metrics, "active_keys", "load the JWKS failed", true, jwks.Refresh); err != nil || ctx.Err() != nil {
			return err
		}
		var pool *server.KeyPool
		if o.keyPoolSize > 0 {
			pool = server.NewKeyPool(o.keyPoolSize, o.keyBits)
			metrics.WatchKeyPool(pool)
			// The pool stops when start returns, whether ctx is done or
			// start-up failed after this point.
			poolCtx, stopPool := context.WithCancel(ctx)
			poolDone := make(chan struct{})
			go func() {
				defer close(poolDone)
				pool.Run(poolCtx, log.With("component", "keypool"))
			}()
			defer func() { stopPool(); <-poolDone }()
		}
		platformTokens, platformKeys, err := newPlatformClients(o, metrics, log.With("component", "platform"))
		if err != nil {
			return err
		}
		keyService, err := server.NewKeyService(server.KeyServiceConfig{
			Store:        store,
			Keyring:      keyring,
			KeyBits:      o.keyBits,
			JWKS:         jwks,
			KeyCacheSize: offIfNotPositive(o.keyCacheSize),
			JWKSMaxAge:   noneIfZero(o.jwksMaxAge),
			KeyPool:      pool,
			Metrics:      metrics,
			Log:          log.With("component", "keys"),

			DefaultPublishAhead: noneIfZero(o.publishAhead),
			DisableKeyExport:    o.disableExport,
			MaxPublishedKeys:    offIfNotPositive(o.maxPublishedKeys),
			MaxTokenLifetime:    o.maxTokenLife,
			PublicURL:           o.publicURL,
			PlatformTokens:      platformTokens,
			PlatformKeys:        platformKeys,
			VerifyLeeway:        noneIfZero(o.verifyLeeway),
		})
		if err != nil {
			return err
		}
		keys.KeyServiceServer = keyService
		jwksService.JwksServiceServer = server.NewJwksService(jwks, server.WithMaxAge(o.jwksMaxAge))
		metrics.WatchKeys(store, jwks, log.With("component", "metrics"))
		health.MarkStarted(ctx, map[string]func(context.Context) error{
			keyServiceName:  keyService.Ready,
			jwksServiceName: server.JWKSReady(jwks, o.jwksMaxStale, time.Now),
		})
		log.Info("serving", "grpc_addr", grpcLis.Addr().String(), "metrics_addr", metricsAddr, "http_addr", httpLis.Addr().String(), "key_bits", o.keyBits, "master_key", keyring.PrimaryID(), "key_export", !o.disableExport)

		transitionsDone := make(chan struct{})
		go func() {
			defer close(transitionsDone)
			keyService.RunTransitions(ctx, o.transitions, log.With("component", "lifecycle"))
		}()
		defer func() { <-transitionsDone }()
		healthDone := make(chan struct{})
		go func() {
			defer close(healthDone)
			health.Run(ctx, time.Second)
		}()
		jwks.Run(ctx, o.jwksRefresh, log.With("component", "jwks"))
		<-healthDone
		return nil
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return grpcServer.Serve(grpcLis) })
	g.Go(func() error {
		if err := httpServer.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if metricsServer != nil {
		g.Go(func() error {
			if err := metricsServer.Serve(metricsLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { return start(gctx) })
	g.Go(func() error {
		reloadOnHangup(gctx, hangup, access)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "timeout", o.shutdownTimeout)
		health.Shutdown()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
		defer cancel()
		stopped := make(chan struct{})
		go func() {
			grpcServer.GracefulStop()
			close(stopped)
		}()
		httpErr := httpServer.Shutdown(shutdownCtx)
		select {
		case <-stopped:
		case <-shutdownCtx.Done():
			grpcServer.Stop()
		}
		if metricsServer != nil {
			httpErr = errors.Join(httpErr, metricsServer.Shutdown(shutdownCtx))
		}
		return httpErr
	})
	err = g.Wait()
	if store != nil {
		store.Close()
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// reloadOnHangup reloads access control on every signal from hangup until
// ctx is done. A failed reload is logged and changes nothing; serve runs on
// either way.
func reloadOnHangup(ctx context.Context, hangup <-chan os.Signal, access *accessControl) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangup:
			_ = access.reload()
		}
	}
}

// publishAheadFlag is serve's flag for KeyServiceConfig.DefaultPublishAhead.
const publishAheadFlag = "default-publish-ahead"

// computeDefaults sets the flags whose default follows from other flags,
// when they were not given (on the command line, in the environment or in
// the --config file), so that serve and --print-config see the effective
// value: --default-publish-ahead, from --jwks-max-age.
func (o *serveOptions) computeDefaults(flags *pflag.FlagSet) {
	if f := flags.Lookup(publishAheadFlag); f != nil && !f.Changed {
		o.publishAhead = server.DefaultPublishAheadFor(o.jwksMaxAge)
		setSource(f, sourceDefault+": the larger of --jwks-max-age and "+server.MinDefaultPublishAhead.String())
	}
}

// noneIfZero maps a duration flag where 0 means none (--jwks-max-age,
// --default-publish-ahead) to a KeyServiceConfig field where 0 means the
// default and a negative value none.
func noneIfZero(flag time.Duration) time.Duration {
	if flag == 0 {
		return -1
	}
	return flag
}

// offIfNotPositive maps a flag where 0 or less turns something off
// (--key-cache-size, --max-published-keys) to a KeyServiceConfig field
// where 0 means the default and a negative value turns it off.
func offIfNotPositive(flag int) int {
	if flag <= 0 {
		return -1
	}
	return flag
}
