# Multi-stage build: compile the release binary, ship it on a slim base as a non-root user.
#   docker build -t tollgate .
#   docker run --rm -p 3100:3100 -p 3101:3101 \
#     -v "$PWD/conf/seed.yaml:/etc/tollgate/config.yaml:ro" tollgate
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY crates crates
COPY filters filters
COPY plugins plugins
COPY conf conf
COPY vendor vendor
RUN cargo build --release --locked && strip target/release/tollgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY conf/local.yaml /etc/tollgate/config.yaml
ENV TOLLGATE_RUNTIME_DIR=/tmp/tollgate
USER 10001
EXPOSE 3000 3100 3101
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["-f", "/etc/tollgate/config.yaml"]
