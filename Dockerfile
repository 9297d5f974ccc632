# syntax=docker/dockerfile:1
# One image with both Gatehouse binaries: gatehouse-controller and
# gatehouse-gateway, in /usr/local/bin. The Helm chart picks one per pod with
# `command`. Not built in CI (no container engine runs there).
#
#   docker build -t gatehouse/gatehouse:0.1.0 .

# ---- build ----
FROM rust:1.91-bookworm AS build
# cmake: Pingora's zlib-ng.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse-controller -p gatehouse-gateway \
 && install -D -m 0755 target/release/gatehouse-controller /out/gatehouse-controller \
 && install -D -m 0755 target/release/gatehouse-gateway /out/gatehouse-gateway

# ---- run ----
# glibc and libgcc, CA certificates, nothing else (no shell); user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse-controller /out/gatehouse-gateway /usr/local/bin/
USER 65532:65532
# Unprivileged ports: the gateway listens on 8080/8443 (the chart's Service
# maps 80/443 to them), so no capability is needed.
EXPOSE 8080 8443 9901 7443 9902
ENTRYPOINT ["/usr/local/bin/gatehouse-controller"]
CMD ["--help"]
