#!/usr/bin/env bash
# Benchmarks the Gatehouse gateway against nginx and HAProxy on this machine
# (same upstream, routes and CPU pinning for all three), then measures config
# propagation through the controller at 1,000 and 10,000 Ingresses (local
# mode, then cluster mode on the API emulator), then load-balancer address
# allocation for 10,000 Services.
#
#   scripts/bench.sh            # full run (~25 minutes on 2 cores)
#   scripts/bench.sh --quick    # a few seconds per cell, to check the suite
#   scripts/bench.sh --soak     # honest load while attackers run (~2 minutes)
#   scripts/bench.sh --help     # every option of the driver
#
# One part alone:
#   scripts/bench.sh --skip-throughput --skip-propagation --skip-load-balancer   # cluster-mode propagation
#   scripts/bench.sh --skip-throughput --skip-propagation --skip-cluster-propagation   # load-balancer allocation
#
# Loopback only. Every process the run starts is stopped, also on Ctrl-C.
# Needs two or more cores, nginx, HAProxy, wrk and h2load: scripts/prereqs.sh
# installs them as root on Debian/Ubuntu, else says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prereqs.sh bench

# 200 connections through three proxies need more than the default 1024 fds.
ulimit -n 65536 2>/dev/null || true

target=${CARGO_TARGET_DIR:-target}
cargo build --release \
  --bin gatehouse-gateway --bin gatehouse-controller --bin gatehouse-echo --bin gatehouse-attack \
  --bin kube-emulator --bin gatehouse-bench
exec "$target/release/gatehouse-bench" --bin-dir "$target/release" "$@"
