# syntax=docker/dockerfile:1
#
# The `touchline` binary in a small runtime image.
#
#   docker build -t touchline:local .
#   docker run --rm touchline:local --help
#
# The builder compiles librdkafka from source (rdkafka's default features use
# the image's cc and make; no cmake, no system librdkafka). The cache mounts
# keep the cargo registry and the target directory between builds, so only
# the first build pays for the dependencies.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The target dir is a cache mount, gone after this step: copy the binary out.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p touchline \
 && install -D -m 0755 target/release/touchline /out/touchline

FROM debian:bookworm-slim
# libssl3: librdkafka is built with OpenSSL (Kafka TLS and SASL/SCRAM).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged uid; its home is the working directory, where
# `touchline generate --truth FILE` writes when given a relative path.
RUN groupadd --system --gid 10001 touchline \
 && useradd --system --uid 10001 --gid touchline \
      --home-dir /var/lib/touchline --create-home --shell /usr/sbin/nologin touchline
COPY --from=builder /out/touchline /usr/local/bin/touchline
USER touchline
WORKDIR /var/lib/touchline
ENV RUST_LOG=info
# /metrics, /healthz and /readyz (metrics_addr defaults to 0.0.0.0:9464).
EXPOSE 9464
ENTRYPOINT ["touchline"]
CMD ["run"]
