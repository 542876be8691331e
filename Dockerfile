# syntax=docker/dockerfile:1
# A static ltikeys binary on a distroless base: no shell, no package manager,
# running as the unprivileged "nonroot" user (65532).
#
# To try it on your own machine: gRPC in plaintext, on loopback only, the
# embedded SQLite database in an anonymous volume, and an API token of your
# own, as the image has no shell to read the admin.token serve would
# otherwise generate there. The container gets the token's SHA-256, the CLI
# the token:
#
#   docker build -t ltikeys .
#   export LTIKEYS_TOKEN="ltk_$(openssl rand -hex 32)"    # the CLI sends it
#   LTIKEYS_TOKENS="me:keys.admin,keys.read,keys.sign:$(printf %s "$LTIKEYS_TOKEN" | sha256sum | cut -d' ' -f1)" \
#     docker run -d --rm --name ltikeys -e LTIKEYS_TOKENS -e LTIKEYS_INSECURE_ALLOW_PLAINTEXT=true \
#     -p 127.0.0.1:50051:50051 -p 127.0.0.1:8080:8080 ltikeys
#   bin/ltikeys registration list    # the CLI, from make build
#   docker stop ltikeys
#
# Or start it without LTIKEYS_TOKENS, so that serve generates an admin
# token in LTIKEYS_DATA_DIR, and run the CLI inside the container, where it
# finds that token and sends it to the loopback server:
#
#   docker exec ltikeys /usr/local/bin/ltikeys registration list
#
# The binary is built by `make build`, the Makefile's one build command,
# which .ci/run runs too.

FROM golang:1.27.3 AS build
# go.mod's toolchain; the image's own Go is the same release.
ENV GOTOOLCHAIN=go1.27.3
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/ltikeys /usr/local/bin/ltikeys
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/ltikeys
USER nonroot:nonroot
WORKDIR /home/nonroot
# Listen on every interface inside the container; metrics on their own port.
# gRPC there needs TLS: mount a certificate and its key and set
# LTIKEYS_TLS_CERT and LTIKEYS_TLS_KEY, or serve refuses to start. The image
# does not set LTIKEYS_INSECURE_ALLOW_PLAINTEXT, so that no deployment built
# on it sends tokens and private keys in clear text without saying so; set
# it for a try on loopback (above), or where the network itself encrypts
# the traffic.
# Data (the embedded database and its generated secrets) in a volume.
ENV LTIKEYS_GRPC_ADDR=0.0.0.0:50051 \
    LTIKEYS_HTTP_ADDR=0.0.0.0:8080 \
    LTIKEYS_METRICS_ADDR=0.0.0.0:9090 \
    LTIKEYS_DATA_DIR=/var/lib/ltikeys \
    LTIKEYS_LOG_FORMAT=json
VOLUME /var/lib/ltikeys
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/ltikeys"]
CMD ["serve"]
