// Command check validates Kubernetes manifests the way the API server
// decodes them, and checks what ltikeys promises of its example deployment.
//
// Every document of every file is decoded strictly into the Go type of the
// Kubernetes API that its apiVersion and kind name: an unknown kind, an
// unknown or misspelt field (field names are case-sensitive, as the API
// server reads them), a duplicate key or a value of the wrong type is a
// problem. It needs no cluster and no JSON schemas.
//
// Then, for every container that runs "ltikeys serve":
//
//   - the ConfigMap named by --config is a file that serve accepts, each key
//     a flag of serve itself (not merely of another ltikeys command, which
//     serve would ignore);
//   - the effective configuration, as "ltikeys serve --print-config" prints
//     it for the container's arguments, environment and config file, has
//     tls-cert and tls-key whenever grpc-addr is not a loopback address and
//     insecure-allow-plaintext is not set, and every file it names lies on a
//     mounted volume;
//   - the readiness probe is an httpGet of /readyz, and the liveness probe
//     an httpGet of /healthz, on the port of serve's http-addr;
//   - the container ports named grpc, http and metrics are the ports of
//     grpc-addr, http-addr and metrics-addr.
//
// In every container, no argument and no literal environment value holds a
// password (a URL's user:password@, a password= setting, or a literal value
// of a variable named like PGPASSWORD), nor does any ConfigMap; and no Secret
// of the manifests holds data. Problems name where a password is, never the
// password.
//
// Usage:
//
//	check -ltikeys bin/ltikeys deploy/kubernetes/*.yaml
//
// It exits 1 if it finds a problem, 2 if it could not check.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	ltikeys := flag.String("ltikeys", "ltikeys", "the ltikeys binary whose serve command the manifests are checked against")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-ltikeys PATH] MANIFEST.yaml...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	report, err := Check(*ltikeys, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
	for _, p := range report.Problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(report.Problems) > 0 {
		fmt.Fprintf(os.Stderr, "%d problem(s)\n", len(report.Problems))
		os.Exit(1)
	}
	fmt.Printf("%d file(s), %d object(s), %d ltikeys serve container(s): ok\n", len(flag.Args()), report.Objects, report.ServeContainers)
}
