//go:build pprof

package main

// Built with -tags pprof only, for benchmarks: the binary then serves
// net/http/pprof on LTIKEYS_PPROF_ADDR (a loopback address, never the
// public listener), so a CPU profile can be taken of the very process
// under load. A release build has none of this.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("LTIKEYS_PPROF_ADDR")
	if addr == "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "ltikeys: LTIKEYS_PPROF_ADDR %q: want a loopback address and port\n", addr)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintln(os.Stderr, "ltikeys: pprof:", err)
		}
	}()
}
