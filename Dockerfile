# syntax=docker/dockerfile:1
#
# One image per server binary of the workspace, chosen with the BIN build argument:
#   inventory-service, order-service, product-standin, payment-standin, user-standin
#
#   docker build --build-arg BIN=order-service --build-arg GRPC_PORT=50052 \
#     --build-arg METRICS_PORT=9102 -t order-service .
#
# Targets:
#   runtime (default, last stage)  full build: compiles BIN with the official Rust image, then
#                                  copies it and the CA bundle into a slim Debian image.
#   runtime-prebuilt               no Rust build stage: copies an already compiled BIN (and a
#                                  ca-certificates.crt) from PREBUILT_DIR of the build context.
#                                  For CI hosts that compile on the host (scripts/test.d/
#                                  50-container-smoke.sh builds this target with podman):
#     docker build --target runtime-prebuilt --build-arg BIN=inventory-service \
#       --build-arg PREBUILT_DIR=. -f Dockerfile <dir holding inventory-service and
#       ca-certificates.crt>
#
# Build arguments:
#   BIN            binary to package (default inventory-service)
#   RUST_IMAGE     build stage image (default rust:1-bookworm)
#   BASE_IMAGE     runtime base (default debian:bookworm-slim; must have glibc >= bookworm's)
#   PREBUILT_DIR   runtime-prebuilt only: directory of the context holding BIN and
#                  ca-certificates.crt (default prebuilt)
#   GRPC_PORT, METRICS_PORT   ports documented by EXPOSE (default 50051 and 9101, the
#                  inventory server's; the listen addresses themselves come from GRPC_ADDR and
#                  METRICS_ADDR at run time, as in DESIGN.md)
#
# Every image: the binary at /usr/local/bin/app (ENTRYPOINT), CA certificates, numeric non-root
# user 10001, LOG_FORMAT=json, OTEL_SERVICE_NAME=BIN (the name its traces carry), and
# HEALTHCHECK `app healthcheck` (the binary probes its own grpc.health.v1 on GRPC_ADDR for
# liveness: exit 0 while the process serves, whatever its database does; `app healthcheck
# --ready` asks for readiness instead).

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim
# checkov (scripts/test.d/40-kubernetes.sh) reads `FROM ${RUST_IMAGE}` as an untagged image, so:
# checkov:skip=CKV_DOCKER_7: the FROM images are the build arguments above, whose defaults are tagged (rust:1-bookworm, debian:bookworm-slim); they stay whole-image arguments because 50-container-smoke.sh builds on a local BASE_IMAGE (localhost/debian:<codename>)

# ---- build: compile BIN with the workspace's locked dependencies ---------------------------
FROM ${RUST_IMAGE} AS build
ARG BIN=inventory-service
WORKDIR /src
# The cache mounts keep the crates.io downloads and the compiled dependencies between builds,
# so a source change recompiles only the workspace crates. `locked`: the four services of
# docker-compose.yml build one after the other into the same target directory and share it.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
COPY proto proto
COPY migrations migrations
RUN --mount=type=cache,id=shop-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=shop-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=shop-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin "${BIN}" \
    && install -D -m 0755 "target/release/${BIN}" /out/app \
    && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# ---- runtime-prebuilt: a host-built BIN, no Rust toolchain involved -------------------------
FROM ${BASE_IMAGE} AS runtime-prebuilt
ARG BIN=inventory-service
ARG PREBUILT_DIR=prebuilt
ARG GRPC_PORT=50051
ARG METRICS_PORT=9101
LABEL org.opencontainers.image.title="${BIN}" \
      org.opencontainers.image.description="${BIN} (gRPC, /metrics); HEALTHCHECK: app healthcheck"
COPY ${PREBUILT_DIR}/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY ${PREBUILT_DIR}/${BIN} /usr/local/bin/app
# OTEL_SERVICE_NAME: the binary is `app` here, so spans are named after BIN instead.
ENV LOG_FORMAT=json \
    RUST_LOG=info \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    OTEL_SERVICE_NAME=${BIN}
USER 10001:10001
EXPOSE ${GRPC_PORT} ${METRICS_PORT}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/app", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/app"]

# ---- runtime (default): the binary from the build stage on a slim Debian --------------------
FROM ${BASE_IMAGE} AS runtime
ARG BIN=inventory-service
ARG GRPC_PORT=50051
ARG METRICS_PORT=9101
LABEL org.opencontainers.image.title="${BIN}" \
      org.opencontainers.image.description="${BIN} (gRPC, /metrics); HEALTHCHECK: app healthcheck"
# The CA bundle comes from the build image (Debian's ca-certificates), so this stage runs no
# package manager and works on any glibc base image.
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/app /usr/local/bin/app
# OTEL_SERVICE_NAME: the binary is `app` here, so spans are named after BIN instead.
ENV LOG_FORMAT=json \
    RUST_LOG=info \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    OTEL_SERVICE_NAME=${BIN}
USER 10001:10001
EXPOSE ${GRPC_PORT} ${METRICS_PORT}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/app", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/app"]
