package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
)

// newPlatformClients builds, from serve's flags, the outbound HTTP client
// and the two users of it: the token client behind GetPlatformAccessToken
// and the platform key cache behind VerifyPlatformToken.
func newPlatformClients(o *serveOptions, metrics *server.Metrics, log *slog.Logger) (*platform.TokenClient, *platform.KeySetCache, error) {
	switch {
	case o.platformTimeout <= 0:
		return nil, nil, fmt.Errorf("--platform-timeout: must be positive, got %s", o.platformTimeout)
	case o.platformTokenMargin < 0:
		return nil, nil, fmt.Errorf("--platform-token-margin: must not be negative, got %s", o.platformTokenMargin)
	case o.verifyLeeway < 0:
		return nil, nil, fmt.Errorf("--verify-leeway: must not be negative, got %s", o.verifyLeeway)
	case o.platformJWKSCooldown <= 0:
		return nil, nil, fmt.Errorf("--platform-jwks-cooldown: must be positive, got %s", o.platformJWKSCooldown)
	case o.platformJWKSMaxStale < 0:
		return nil, nil, fmt.Errorf("--platform-jwks-max-stale: must not be negative, got %s", o.platformJWKSMaxStale)
	}
	httpClient, err := platform.NewHTTPClient(platform.HTTPOptions{
		Version:      userAgentVersion(),
		Timeout:      o.platformTimeout,
		AllowPrivate: o.allowPrivatePlatforms,
	})
	if err != nil {
		return nil, nil, err
	}
	margin := o.platformTokenMargin
	if margin == 0 {
		// The token client reads 0 as its default; no margin at all is
		// the least it takes.
		margin = 1
	}
	tokens, err := platform.NewTokenClient(platform.TokenClientOptions{
		HTTPClient:   httpClient,
		ExpiryMargin: margin,
		// The exchange signs the assertion and then makes the request.
		FetchTimeout: o.platformTimeout + platform.DefaultConnectTimeout,
		Observer:     metrics,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, err
	}
	maxStale := o.platformJWKSMaxStale
	if maxStale == 0 {
		maxStale = 1 // the cache reads 0 as its default; this is none
	}
	keys, err := platform.NewKeySetCache(platform.KeySetOptions{
		HTTPClient: httpClient,
		Cooldown:   o.platformJWKSCooldown,
		MaxStale:   maxStale,
		Observer:   metrics,
		Logger:     log,
	})
	if err != nil {
		return nil, nil, err
	}
	return tokens, keys, nil
}

// userAgentVersion is the version the User-Agent of outbound requests
// names: the module version from the build information, or "devel" for a
// build from a source tree. It is a header token, as the User-Agent
// requires.
func userAgentVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return r
		}
		return '_'
	}, info.Main.Version)
}
