package platform

import (
	"errors"
	"time"
)

// Observer receives the events a TokenClient reports, for metrics. Its
// arguments are drawn from small fixed sets and never carry a
// registration id, a URL or anything secret, so they can be labels as
// they are. Its methods are called from many goroutines at once and must
// not block. *server.Metrics is meant to implement it (CacheLookup is its
// existing hook).
type Observer interface {
	// CacheLookup reports one lookup of the cache named cache (always
	// TokenCacheName here): hit if a cached token answered it.
	CacheLookup(cache string, hit bool)
	// PlatformTokenRequest reports one outbound token exchange and how
	// long its HTTP request took, from sending it to reading the answer
	// (zero when none was sent: outcome OutcomeAssertionError).
	PlatformTokenRequest(outcome Outcome, d time.Duration)
}

// TokenCacheName is the cache argument of Observer.CacheLookup.
const TokenCacheName = "platform_tokens"

// Outcome is how an outbound token exchange ended.
type Outcome string

// The outcomes, every one of them in Outcomes.
const (
	// OutcomeOK: a valid token came back.
	OutcomeOK Outcome = "ok"
	// OutcomeOAuthError: the platform refused with an OAuth error.
	OutcomeOAuthError Outcome = "oauth_error"
	// OutcomeUnavailable: no answer, a timeout, 429 or 5xx.
	OutcomeUnavailable Outcome = "unavailable"
	// OutcomeMalformed: an answer that is neither a token response nor an
	// OAuth error, or too large.
	OutcomeMalformed Outcome = "malformed"
	// OutcomeRefused: the address guard or the redirect rule stopped it.
	OutcomeRefused Outcome = "refused"
	// OutcomeAssertionError: the caller's assertion function failed, so
	// nothing was sent.
	OutcomeAssertionError Outcome = "assertion_error"
)

// Outcomes lists every Outcome, for series created at zero.
var Outcomes = []Outcome{OutcomeOK, OutcomeOAuthError, OutcomeUnavailable, OutcomeMalformed, OutcomeRefused, OutcomeAssertionError}

// outcomeOf classifies the result of one exchange.
func outcomeOf(err error) Outcome {
	var oauth *OAuthError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &oauth):
		return OutcomeOAuthError
	case errors.Is(err, ErrMalformed):
		return OutcomeMalformed
	case errors.Is(err, ErrRefused):
		return OutcomeRefused
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable
	}
	return OutcomeAssertionError
}

// nopObserver is the Observer of a TokenClient given none.
type nopObserver struct{}

func (nopObserver) CacheLookup(string, bool)                    {}
func (nopObserver) PlatformTokenRequest(Outcome, time.Duration) {}
