#!/usr/bin/env bash
# Benchmarks the Gatehouse gateway against nginx and HAProxy on this machine
# (same upstream, routes and CPU pinning for all three), then measures config
# propagation through the controller at 1,000 and 10,000 Ingresses.
#
#   scripts/bench.sh            # full run (~20 minutes on 2 cores)
#   scripts/bench.sh --quick    # a few seconds per cell, to check the suite
#   scripts/bench.sh --help     # every option of the driver
#
# Loopback only. Every process the run starts is stopped, also on Ctrl-C.
# Needs two or more cores; installs nginx-light, haproxy, wrk and h2load
# (nghttp2-client) with apt if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  # Keep the packages' services from starting: the suite runs its own.
  cleanup_policy=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    cleanup_policy=true
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if $cleanup_policy; then rm -f /usr/sbin/policy-rc.d; fi
fi

# 200 connections through three proxies need more than the default 1024 fds.
ulimit -n 65536 2>/dev/null || true

target=${CARGO_TARGET_DIR:-target}
cargo build --release \
  --bin gatehouse-gateway --bin gatehouse-controller --bin gatehouse-echo --bin kube-emulator \
  --bin gatehouse-bench
exec "$target/release/gatehouse-bench" --bin-dir "$target/release" "$@"
