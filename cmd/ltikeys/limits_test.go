package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ltikeys/ltikeys/server"
)

// TestLimitFlags: the flags' defaults are server.DefaultLimits and the
// throttle's defaults, and a value out of range is refused naming its flag.
func TestLimitFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) *limitOptions {
		t.Helper()
		var o limitOptions
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.register(f)
		if err := f.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &o
	}
	o := parse(t)
	limits, err := o.limits()
	if err != nil || limits != server.DefaultLimits() {
		t.Errorf("default flags: %+v, %v; want %+v", limits, err, server.DefaultLimits())
	}
	if rate, burst, err := o.failureLimit(); err != nil || rate != server.DefaultFailureRate || burst != server.DefaultFailureBurst {
		t.Errorf("default throttle: %v, %d, %v", rate, burst, err)
	}
	if rate, _, err := parse(t, "--auth-failure-rate", "0").failureLimit(); err != nil || rate >= 0 {
		t.Errorf("--auth-failure-rate 0: rate %v, %v; want the throttle off (negative)", rate, err)
	}

	for _, args := range [][]string{
		{"--grpc-max-recv-msg-size", "0"},
		{"--grpc-max-header-list-size", "-1"},
		{"--grpc-max-header-list-size", "4294967296"},
		{"--grpc-max-concurrent-streams", "0"},
		{"--grpc-max-connections", "-1"},
		{"--grpc-keepalive-min-time", "0s"},
		{"--grpc-max-connection-idle", "-1s"},
		{"--grpc-max-stream-duration", "-1m"},
	} {
		if _, err := parse(t, args...).limits(); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
	for _, args := range [][]string{
		{"--auth-failure-rate", "-1"},
		{"--auth-failure-rate", "NaN"},
		{"--auth-failure-burst", "0"},
	} {
		if _, _, err := parse(t, args...).failureLimit(); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
}
