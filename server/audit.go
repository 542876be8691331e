package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
)

// AuditMessage is the message of every audit log line.
const AuditMessage = "audit"

// AuditSummaryMessage is the message of the line that counts, for one peer
// address, the refusals of unauthenticated calls that had no audit line of
// their own (see AuthConfig.RefusalLogInterval).
const AuditSummaryMessage = "audit summary"

// maxAuditValue bounds an id or kid copied into the audit log from a
// request: a refused request may carry anything.
const maxAuditValue = 128

// audit writes the one audit line of a call of a non-public method,
// admitted or not: the method, the caller (empty when unauthenticated), the
// peer address, the registration and key concerned, the outcome as a gRPC
// code and the duration. Refusals by access control are logged at warn,
// everything else at info. A call with an audit line has its request log
// line at debug level (see logCall).
//
// The registration is, first, the one the handler resolved and recorded
// with auditRegistration, also when the call failed afterwards; else the
// one the response names; else the one the request names by a
// registration_id field, in lower case when it is a UUID (see
// canonicalRegistrationID), so that every line about one registration
// names it alike. A registration looked up by issuer and client_id is
// therefore named only once it was resolved: a call refused before (by
// access control, for an invalid argument, NOT_FOUND, or GetToolKey with
// key export disabled) has an empty registration_id.
//
// The ids are read from the request and the response through the getters
// listed below, never by serializing a message, so no other field (a
// private_jwk above all) can reach the log, and a new method is audited
// with its ids as soon as its messages use the usual field names.
func (a *Authenticator) audit(ctx context.Context, method string, call admittedCall, start time.Time, err error, req, resp any) {
	code := status.Code(err)
	level := slog.LevelInfo
	if code == codes.Unauthenticated || code == codes.PermissionDenied || code == codes.ResourceExhausted {
		level = slog.LevelWarn
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	markAudited(ctx)
	ids := auditIDs(call.registrationID, resp, req)
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("caller", call.caller.Name),
		slog.String("registration_id", ids.registrationID),
		slog.String("kid", ids.kid),
	}
	if ids.previousKid != "" {
		attrs = append(attrs, slog.String("previous_kid", ids.previousKid))
	}
	attrs = append(attrs, slog.String("code", code.String()))
	if err != nil {
		// Status messages are written to be shown to the caller; they never
		// carry key material.
		attrs = append(attrs, slog.String("message", status.Convert(err).Message()))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	logAttrs(ctx, a.log, level, AuditMessage, attrs...)
}

// refuse writes the audit of a call refused before its caller was known,
// UNAUTHENTICATED or RESOURCE_EXHAUSTED, and counts an UNAUTHENTICATED one
// against the peer address's budget. Only the peer's first such refusal in
// an interval gets its audit line; the others are counted for its summary
// and, like it, keep the call's request log line at debug level.
func (a *Authenticator) refuse(ctx context.Context, method string, start time.Time, err error, req any) {
	addr, ok := peerAddr(ctx)
	if !ok {
		a.audit(ctx, method, admittedCall{}, start, err, req, nil)
		return
	}
	logIt, due := a.failures.refused(addr, status.Code(err))
	a.summarise(due)
	if logIt {
		a.audit(ctx, method, admittedCall{}, start, err, req, nil)
	} else {
		markAudited(ctx)
	}
}

// summarise writes an AuditSummaryMessage line for each summary, at warn
// level like the refusals it counts.
func (a *Authenticator) summarise(due []refusalSummary) {
	for _, s := range due {
		logAttrs(context.Background(), a.log, slog.LevelWarn, AuditSummaryMessage,
			slog.String("peer", addrString(s.addr)),
			slog.Int("unauthenticated", s.unauthenticated),
			slog.Int("resource_exhausted", s.throttled),
			slog.Time("since", s.since),
		)
	}
}

// The getters the audit reads ids through. Generated messages have them for
// fields of these names, and they are safe on nil messages.
type (
	registrationIDGetter interface{ GetRegistrationId() string }
	kidGetter            interface{ GetKid() string }
	registrationGetter   interface {
		GetRegistration() *ltikeysv1.Registration
	}
	keyGetter         interface{ GetKey() *ltikeysv1.Key }
	newKeyGetter      interface{ GetNewKey() *ltikeysv1.Key }
	previousKeyGetter interface{ GetPreviousKey() *ltikeysv1.Key }
)

type auditedIDs struct {
	registrationID, kid, previousKid string
}

// auditIDs collects the registration id, kid and previous kid of a call:
// the registration resolved, if not empty, then from its messages, the
// first message that names each winning: the response, which knows what
// was actually touched, comes before the request.
func auditIDs(resolved string, msgs ...any) auditedIDs {
	var ids auditedIDs
	fill(&ids.registrationID, []string{resolved})
	for _, m := range msgs {
		if m == nil {
			continue
		}
		var regID, kid, previous []string
		if g, ok := m.(registrationIDGetter); ok {
			regID = append(regID, canonicalRegistrationID(g.GetRegistrationId()))
		}
		if g, ok := m.(newKeyGetter); ok {
			kid = append(kid, g.GetNewKey().GetKid())
			regID = append(regID, g.GetNewKey().GetRegistrationId())
		}
		// A verified platform token's kid is the platform's, not one of
		// the tool's keys that kid names in the audit.
		if _, platformKid := m.(*ltikeysv1.VerifyPlatformTokenResponse); !platformKid {
			if g, ok := m.(kidGetter); ok {
				kid = append(kid, g.GetKid())
			}
		}
		if g, ok := m.(keyGetter); ok {
			kid = append(kid, g.GetKey().GetKid())
			regID = append(regID, g.GetKey().GetRegistrationId())
		}
		if g, ok := m.(registrationGetter); ok {
			regID = append(regID, canonicalRegistrationID(g.GetRegistration().GetId()))
			kid = append(kid, g.GetRegistration().GetKid())
		}
		if g, ok := m.(previousKeyGetter); ok {
			previous = append(previous, g.GetPreviousKey().GetKid())
		}
		fill(&ids.registrationID, regID)
		fill(&ids.kid, kid)
		fill(&ids.previousKid, previous)
	}
	return ids
}

// auditRegistration records id, read from storage, as the registration of
// the call ctx belongs to, for its audit line. Handlers call it as soon as
// they have resolved the registration a request names, before anything
// else can fail. Outside a call an Authenticator admitted it does nothing.
func auditRegistration(ctx context.Context, id string) {
	if c, ok := ctx.Value(callerKey{}).(*admittedCall); ok {
		c.registrationID = id
	}
}

// fill sets *dst, unless already set, to the first non-empty candidate,
// truncated to maxAuditValue bytes.
func fill(dst *string, candidates []string) {
	if *dst != "" {
		return
	}
	for _, c := range candidates {
		if c != "" {
			if len(c) > maxAuditValue {
				c = strings.ToValidUTF8(c[:maxAuditValue], "") + "…"
			}
			*dst = c
			return
		}
	}
}
