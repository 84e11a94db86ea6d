# syntax=docker/dockerfile:1
#
# pdm-server in a small runtime image: built with the workspace's toolchain, run as an
# unprivileged user with its state in /var/lib/pdm. See docs/deploy.md.
#
#   docker build -t pdm-server .
#   docker run -p 8080:8080 -v pdm-data:/var/lib/pdm pdm-server demo --http 0.0.0.0:8080

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are cached between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pdm-server \
 && install -D -m 0755 target/release/pdm-server /out/pdm-server

FROM debian:bookworm-slim AS runtime
# ca-certificates: webhooks and mail over TLS (rustls reads the system's roots);
# curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pdm \
 && useradd --system --uid 10001 --gid pdm --home-dir /var/lib/pdm --shell /usr/sbin/nologin pdm \
 && install -d -o pdm -g pdm -m 0700 /var/lib/pdm
COPY --from=build /out/pdm-server /usr/local/bin/pdm-server
USER pdm:pdm
WORKDIR /var/lib/pdm
ENV PDM_DATA_DIR=/var/lib/pdm \
    PDM_HTTP=0.0.0.0:8080 \
    PDM_LOG=info
VOLUME ["/var/lib/pdm"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/ready > /dev/null || exit 1
ENTRYPOINT ["pdm-server"]
CMD ["serve"]
