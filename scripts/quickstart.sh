#!/usr/bin/env bash
# Runs Gatehouse locally: the controller in local mode on examples/quickstart/,
# a gateway on 127.0.0.1:8080, and the echo "pods" the manifests point to.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:9901}
SNAPSHOT_ADDR=${SNAPSHOT_ADDR:-127.0.0.1:7400}
MANIFESTS=${MANIFESTS:-examples/quickstart}

cargo build --bins -p gatehouse-controller -p gatehouse-gateway -p gatehouse-e2e
bin="${CARGO_TARGET_DIR:-target}/debug"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/gatehouse-echo" --listen 127.0.0.1:9081 --service web --pod web-1 >/dev/null & pids+=($!)
"$bin/gatehouse-echo" --listen 127.0.0.1:9082 --service web --pod web-2 >/dev/null & pids+=($!)
"$bin/gatehouse-echo" --listen 127.0.0.1:9083 --service api --pod api-1 >/dev/null & pids+=($!)
"$bin/gatehouse-controller" --manifests "$MANIFESTS" --snapshot-addr "$SNAPSHOT_ADDR" & pids+=($!)
"$bin/gatehouse-gateway" --controller "http://$SNAPSHOT_ADDR" --http-addr "$HTTP_ADDR" --admin-addr "$ADMIN_ADDR" & pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://$ADMIN_ADDR/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://$ADMIN_ADDR/readyz" >/dev/null

cat <<MSG

Gatehouse is running (gateway on http://$HTTP_ADDR, metrics on http://$ADMIN_ADDR/metrics).
Try:
  curl -H 'Host: shop.example.com' http://$HTTP_ADDR/            # web-1 and web-2 in turn
  curl -H 'Host: shop.example.com' http://$HTTP_ADDR/api/orders  # api-1
  curl -H 'Host: pr-42.preview.example.com' http://$HTTP_ADDR/    # wildcard host -> web
  curl -i -H 'Host: nowhere.example.com' http://$HTTP_ADDR/       # 404
Edit $MANIFESTS/ingress.yaml and the routing follows. Ctrl-C stops everything.
MSG
wait
