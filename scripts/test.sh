#!/usr/bin/env bash
# Runs every test: unit, integration and end-to-end. The end-to-end tests
# that build network namespaces need root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything the tests drive (cmake, nginx, HAProxy, wrk, h2load, testssl,
# kubectl, helm, cargo-nextest...): installed as root on Debian/Ubuntu, else
# a message saying what to install, before anything is built.
scripts/prereqs.sh test
# The end-to-end tests start the workspace's binaries; build them all first.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
