package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ltikeys/ltikeys/storage"
)

// logLines decodes the JSON log lines in buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		lines = append(lines, rec)
	}
	return lines
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// testKeyService returns a KeyService with only what storeError uses, its
// log in JSON on buf.
func testKeyService(buf *bytes.Buffer, clock *fakeClock) *KeyService {
	log := slog.New(slog.NewJSONHandler(buf, nil))
	return &KeyService{log: log, now: clock.now, outage: &outageLog{log: log, now: clock.now, interval: 10 * time.Second}}
}

// TestStoreErrorCodes maps each kind of error a store or crypto returns to
// the status a caller sees, and checks what reaches the caller and the log.
func TestStoreErrorCodes(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	refused := &storage.ConnectionError{Problem: "connection refused"}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		code codes.Code
		// logged is the message of the line the call writes ("" for none).
		logged string
	}{
		{"canceled", context.Background(), fmt.Errorf("get registration: %w", context.Canceled), codes.Canceled, ""},
		{"the call's deadline passed", expired, fmt.Errorf("get registration: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{"the call's deadline passed while the database was away", expired, fmt.Errorf("get registration: %w", refused), codes.Unavailable, OutageStartMessage},
		{"connection refused", context.Background(), fmt.Errorf("get registration: storage: %w", refused), codes.Unavailable, OutageStartMessage},
		{"a timed-out connection, the call's deadline still ahead", context.Background(),
			fmt.Errorf("get registration: storage: %w", &storage.ConnectionError{Problem: "timed out"}), codes.Unavailable, OutageStartMessage},
		{"transactions kept conflicting", context.Background(), fmt.Errorf("rotate: %w", storage.ErrConflict), codes.Unavailable, OutageStartMessage},
		{"a configuration no retry fixes", context.Background(),
			fmt.Errorf("get registration: storage: %w", &storage.ConnectionError{Problem: "authentication failed (SQLSTATE 28P01)", Permanent: true}), codes.Internal, "request failed"},
		{"a statement's error", context.Background(), errors.New(`get registration: storage: ERROR: column "kid" does not exist (SQLSTATE 42703)`), codes.Internal, "request failed"},
		{"a sentinel the caller should have handled", context.Background(), fmt.Errorf("get key: %w", storage.ErrNotFound), codes.Internal, "request failed"},
		{"a timeout that is not storage's", context.Background(), fmt.Errorf("sign: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := testKeyService(&buf, newFakeClock())
			err := s.storeError(tt.ctx, "GetRegistration", tt.err)
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tt.code)
			}
			var retry []*errdetails.RetryInfo
			for _, d := range st.Details() {
				if r, ok := d.(*errdetails.RetryInfo); ok {
					retry = append(retry, r)
				}
			}
			switch tt.code {
			case codes.Unavailable:
				if st.Message() != UnavailableMessage {
					t.Errorf("message = %q, want %q", st.Message(), UnavailableMessage)
				}
				if len(retry) != 1 || retry[0].GetRetryDelay().AsDuration() != UnavailableRetryDelay {
					t.Errorf("details = %v, want one RetryInfo of %s", st.Details(), UnavailableRetryDelay)
				}
			case codes.Internal:
				if st.Message() != "internal error" || len(st.Details()) != 0 {
					t.Errorf("INTERNAL with message %q and details %v; want no detail", st.Message(), st.Details())
				}
			default:
				if len(retry) != 0 {
					t.Errorf("%v carries a RetryInfo", tt.code)
				}
			}
			lines := logLines(t, &buf)
			if tt.logged == "" {
				if len(lines) != 0 {
					t.Errorf("logged %v, want nothing", lines)
				}
				return
			}
			if len(lines) != 1 || lines[0]["msg"] != tt.logged {
				t.Fatalf("logged %v, want one %q line", lines, tt.logged)
			}
			wantLevel := "WARN"
			if tt.code == codes.Internal {
				wantLevel = "ERROR"
			}
			if lines[0]["level"] != wantLevel || lines[0]["method"] != "GetRegistration" || lines[0]["err"] != tt.err.Error() {
				t.Errorf("log line %v, want level %s with the method and the error", lines[0], wantLevel)
			}
		})
	}
}

// TestOutageLog fails calls UNAVAILABLE through an outage, on a clock moved
// by hand: one line at the first failure, at most one per interval after,
// whose counts add up to every failure, and one when the database answers.
func TestOutageLog(t *testing.T) {
	var buf bytes.Buffer
	clock := newFakeClock()
	s := testKeyService(&buf, clock)
	refused := fmt.Errorf("get registration: storage: %w", &storage.ConnectionError{Problem: "connection refused"})
	fail := func(n int, every time.Duration) {
		for range n {
			if code := status.Code(s.storeError(context.Background(), "GetToolKey", refused)); code != codes.Unavailable {
				t.Fatalf("code = %v, want UNAVAILABLE", code)
			}
			clock.advance(every)
		}
	}
	start := clock.now()
	fail(1, 0)
	if lines := logLines(t, &buf); len(lines) != 1 || lines[0]["msg"] != OutageStartMessage {
		t.Fatalf("after the first failure: %v, want one %q line", lines, OutageStartMessage)
	}
	// 500 failures in 25 s: two summaries (at 10 s and 20 s), not 500.
	fail(500, 50*time.Millisecond)
	lines := logLines(t, &buf)
	if len(lines) != 3 {
		t.Fatalf("after 501 failures in 25s, %d lines, want 3:\n%s", len(lines), buf.String())
	}
	counted := 1
	for _, l := range lines[1:] {
		if l["msg"] != OutageSummaryMessage || l["level"] != "WARN" {
			t.Errorf("line %v, want a %q warning", l, OutageSummaryMessage)
		}
		counted += int(l["failed_calls"].(float64))
	}

	// An answer from before the latest failure says nothing.
	s.outage.answered(clock.now().Add(-time.Second))
	if n := len(logLines(t, &buf)); n != 3 {
		t.Errorf("an answer older than the latest failure ended the outage")
	}
	clock.advance(time.Second)
	s.outage.answered(clock.now())
	lines = logLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("after the database answered, %d lines, want 4", len(lines))
	}
	end := lines[3]
	if end["msg"] != OutageEndMessage || end["level"] != "INFO" || int(end["total_failed_calls"].(float64)) != 501 {
		t.Errorf("end line %v, want %q at INFO with 501 failed calls", end, OutageEndMessage)
	}
	if counted+int(end["failed_calls"].(float64)) != 501 {
		t.Errorf("the lines count %d failures in all, want 501", counted+int(end["failed_calls"].(float64)))
	}
	if end["since"] != start.Format(time.RFC3339Nano) {
		t.Errorf("end line since %v, want the first failure at %v", end["since"], start)
	}
	s.outage.answered(clock.now().Add(time.Second))
	if n := len(logLines(t, &buf)); n != 4 {
		t.Errorf("a second answer wrote another line")
	}

	// The next failure is a new outage.
	fail(1, 0)
	if lines := logLines(t, &buf); len(lines) != 5 || lines[4]["msg"] != OutageStartMessage {
		t.Errorf("a failure after the end: %v, want a new %q line", lines[len(lines)-1], OutageStartMessage)
	}
}
