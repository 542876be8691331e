# Build, generate and test ltikeys. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
# The Go toolchain that builds, tests and ships ltikeys (go.mod's go line).
# The go command fetches it through the module proxy on first use, whatever
# Go is installed, so every target builds with the same patched release.
GO_TOOLCHAIN := go1.27.3
export GOTOOLCHAIN := $(GO_TOOLCHAIN)
BIN       := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

# Code generation tools, pinned. buf talks only to local plugins: generation
# never needs the Buf registry.
BUF_VERSION                   := v1.75.0
PROTOC_GEN_GO_VERSION         := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION    := v1.6.0
PROTOC_GEN_GRPC_GATEWAY_VERSION := v2.33.0

# Vulnerability checking, offline: govulncheck reads a database built from the
# OSV files of the golang.org/x/vulndb module, which the module proxy serves.
# Bump VULNDB_VERSION (`go list -m golang.org/x/vulndb@latest`) for newer data.
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
VULNDB              := $(BIN)/vulndb-$(VULNDB_VERSION)

# grpcurl, for the README's API examples (make grpcurl) and make readme-test.
GRPCURL_VERSION := v1.9.4

TOOLS := $(BIN)/buf-$(BUF_VERSION) \
         $(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
         $(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) \
         $(BIN)/protoc-gen-grpc-gateway-$(PROTOC_GEN_GRPC_GATEWAY_VERSION)

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The one build command of bin/ltikeys: the Dockerfile runs `make build`, so
# the image ships the binary this builds (stripped of its symbol table and
# DWARF: stack traces and profiles keep their function names; a debugger
# needs a plain `go build`).
.PHONY: build
build: ## Build bin/ltikeys (static, no cgo, stripped), as the Dockerfile does.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/ltikeys ./cmd/ltikeys

.PHONY: run
run: ## Run the service with the embedded SQLite default, its HTTP listener as the public URL.
	$(GO) run ./cmd/ltikeys serve --public-url http://127.0.0.1:8080

.PHONY: test
test: ## Run every test with the race detector (PostgreSQL tests skip if no server; CI requires it).
	$(GO) test -race -count=1 $(GOTESTFLAGS) ./...

.PHONY: readme-test
readme-test: ## Run README.md's sh blocks in order against make run, in a fresh clone of HEAD (needs jq, curl, openssl, lsof).
	.ci/readme-test

.PHONY: bench-sign
bench-sign: ## Benchmark SignJwt over gRPC against bare RS256 signing (docs/benchmarks.md).
	$(GO) test -run '^$$' -bench '^BenchmarkSigning$$' -benchtime 3s -count 3 ./server/

.PHONY: bench
bench: ## Benchmarks and the loopback load driver, baselines measured in the same run (see docs/benchmarks.md).
	$(GO) test -run '^$$' -bench 'JWKSRebuild|JWKSRotation|JWKSHandler|KeyCacheMemory' -benchmem ./server
	$(GO) test -run '^$$' -bench '^BenchmarkPlatformAccessTokenCached$$' -benchtime 6x ./server
	$(GO) test -run '^$$' -bench '^BenchmarkPlatformAccessTokenUncached$$' -benchmem ./server
	$(GO) test -run '^$$' -bench '^BenchmarkVerifyPlatformToken$$' -cpu 1 ./server
	$(GO) run ./cmd/ltikeys-load $(LOADFLAGS)

.PHONY: bench-http
bench-http: ## The JWKS over HTTP: ltikeys serve and a bare net/http server pinned to one core, wrk on the other (needs wrk; docs/benchmarks.md).
	bench/http.sh $(HTTPBENCHFLAGS)

.PHONY: bench-pool
bench-pool: ## CreateRegistration and RotateKey with and without the key pool, 2048 and 4096 bits (docs/benchmarks.md).
	$(GO) test -run '^$$' -bench '^BenchmarkKeyPool$$' -benchtime 10x ./server/

.PHONY: lint
lint: tools ## buf lint, gofmt and go vet.
	buf lint
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-ed:" $$unformatted >&2; exit 1; fi
	$(GO) vet ./...

.PHONY: vulncheck
vulncheck: $(VULNDB) ## govulncheck against the pinned Go vulnerability data; fails on any called vulnerability.
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(VULNDB) ./...

# indexdb turns the module's data/osv/*.json into the database layout
# govulncheck reads; `go run mod@version` downloads the module first.
$(VULNDB):
	rm -rf $@.tmp
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
		-vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $@.tmp
	mv $@.tmp $@

.PHONY: generate
generate: tools ## Regenerate gen/ from proto/ (gen/ is cleaned first).
	rm -rf gen
	buf generate

.PHONY: check-generate
check-generate: generate ## Fail if gen/ differs from what proto/ generates.
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		echo "gen/ is stale: run 'make generate' and commit the result" >&2; \
		git status --porcelain -- gen >&2; \
		exit 1; \
	fi

# The Kubernetes manifests are checked by a module of their own, so that
# this one does not depend on k8s.io: it decodes them strictly with the
# Kubernetes API's types and checks them against bin/ltikeys's serve.
CHECK_DEPLOY := deploy/kubernetes/check

.PHONY: check-deploy
check-deploy: build ## Check deploy/kubernetes/*.yaml: strict Kubernetes types, serve's flags, TLS, probes, no passwords.
	cd $(CHECK_DEPLOY) && $(GO) vet ./...
	cd $(CHECK_DEPLOY) && CHECK_LTIKEYS=$(CURDIR)/bin/ltikeys $(GO) test -count=1 $(GOTESTFLAGS) ./...
	cd $(CHECK_DEPLOY) && $(GO) run . -ltikeys $(CURDIR)/bin/ltikeys $(CURDIR)/deploy/kubernetes/*.yaml

.PHONY: tools
tools: $(TOOLS) ## Install the pinned code generation tools into .bin/.

.PHONY: grpcurl
grpcurl: $(BIN)/grpcurl-$(GRPCURL_VERSION) ## Install the pinned grpcurl into .bin/, for the README's API examples.

# Each tool is installed once per version; the unversioned name is a link to
# the pinned binary so buf.gen.yaml can name plugins plainly.
$(BIN)/buf-$(BUF_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	mv $(BIN)/buf $@ && ln -sf $(notdir $@) $(BIN)/buf

$(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(BIN)/protoc-gen-go $@ && ln -sf $(notdir $@) $(BIN)/protoc-gen-go

$(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(BIN)/protoc-gen-go-grpc $@ && ln -sf $(notdir $@) $(BIN)/protoc-gen-go-grpc

$(BIN)/protoc-gen-grpc-gateway-$(PROTOC_GEN_GRPC_GATEWAY_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(PROTOC_GEN_GRPC_GATEWAY_VERSION)
	mv $(BIN)/protoc-gen-grpc-gateway $@ && ln -sf $(notdir $@) $(BIN)/protoc-gen-grpc-gateway

$(BIN)/grpcurl-$(GRPCURL_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	mv $(BIN)/grpcurl $@ && ln -sf $(notdir $@) $(BIN)/grpcurl

.PHONY: clean
clean: ## Remove build outputs and installed tools.
	rm -rf bin $(BIN)
