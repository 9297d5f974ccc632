#!/usr/bin/env bash
# Runs every test: unit, integration and end-to-end. The end-to-end tests
# that build network namespaces need root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests start the workspace's binaries; build them all first.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
