package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/ltikeys/ltikeys/server"
	"github.com/ltikeys/ltikeys/server/platform"
)

// newPlatformTokens builds the outbound HTTP client and the token client
// behind GetPlatformAccessToken from serve's flags.
func newPlatformTokens(o *serveOptions, metrics *server.Metrics, log *slog.Logger) (*platform.TokenClient, error) {
	if o.platformTimeout <= 0 {
		return nil, fmt.Errorf("--platform-timeout: must be positive, got %s", o.platformTimeout)
	}
	if o.platformTokenMargin < 0 {
		return nil, fmt.Errorf("--platform-token-margin: must not be negative, got %s", o.platformTokenMargin)
	}
	httpClient, err := platform.NewHTTPClient(platform.HTTPOptions{
		Version:      userAgentVersion(),
		Timeout:      o.platformTimeout,
		AllowPrivate: o.allowPrivatePlatforms,
	})
	if err != nil {
		return nil, err
	}
	margin := o.platformTokenMargin
	if margin == 0 {
		// The token client reads 0 as its default; no margin at all is
		// the least it takes.
		margin = 1
	}
	return platform.NewTokenClient(platform.TokenClientOptions{
		HTTPClient:   httpClient,
		ExpiryMargin: margin,
		// The exchange signs the assertion and then makes the request.
		FetchTimeout: o.platformTimeout + platform.DefaultConnectTimeout,
		Observer:     metrics,
		Logger:       log,
	})
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
