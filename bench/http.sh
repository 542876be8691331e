#!/usr/bin/env bash
# The JWKS over HTTP, pinned (docs/benchmarks.md, "JWKS over HTTP with wrk,
# pinned"): builds ltikeys as `make build` does and cmd/ltikeys-load, then
# runs `ltikeys-load pinned`, which starts `ltikeys serve` (embedded SQLite,
# 3 registrations) and a bare net/http server writing copies of its
# responses, both on CPU 0 with GOMAXPROCS=1, and loads each in turn with
# wrk on CPU 1, in alternating rounds.
#
# Arguments go to `ltikeys-load pinned` (-rounds, -duration, -t, -c,
# -subjects, -serve-arg; see `ltikeys-load pinned -h`). With
# -cpuprofile PREFIX, ltikeys is built with -tags pprof, which serves
# net/http/pprof on a loopback port of the benchmark's choosing, and a CPU
# profile of each server under each subject is written to PREFIX-*.pprof.
#
# Needs wrk (Debian: apt-get install wrk), taskset (util-linux) and two
# cores. Not part of `make test` or CI: the numbers mean something only on
# an otherwise idle machine.
set -euo pipefail

die() { echo "bench/http.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is not installed (Debian and Ubuntu: apt-get install wrk); this benchmark needs it"
command -v taskset >/dev/null || die "taskset is not installed (util-linux); this benchmark needs it"
[ "$(nproc)" -ge 2 ] || die "this benchmark needs two cores, one for the server and one for wrk; nproc says $(nproc)"

cd "$(dirname "$0")/.."
GO=${GO:-go}
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
tags=()
for arg in "$@"; do
	case $arg in -cpuprofile | -cpuprofile=* | --cpuprofile | --cpuprofile=*) tags=(-tags pprof) ;; esac
done
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 "$GO" build -trimpath "${tags[@]}" -o "$bin/ltikeys" ./cmd/ltikeys
"$GO" build -o "$bin/ltikeys-load" ./cmd/ltikeys-load
"$bin/ltikeys-load" pinned -ltikeys "$bin/ltikeys" "$@"
