#!/usr/bin/env bash
# Runs Gatehouse locally: the controller in local mode on examples/quickstart/,
# a gateway on 127.0.0.1:8080, and the echo "pods" the manifests point to.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
HTTPS_ADDR=${HTTPS_ADDR:-127.0.0.1:8443}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:9901}
SNAPSHOT_ADDR=${SNAPSHOT_ADDR:-127.0.0.1:7400}
MANIFESTS=${MANIFESTS:-examples/quickstart}

# cmake, a C compiler, curl, openssl: installed as root on Debian/Ubuntu, else
# a message saying what to install, before anything is built.
scripts/prereqs.sh quickstart
# Only the three binaries this script starts (not the test harness).
cargo build -p gatehouse-controller -p gatehouse-gateway -p gatehouse-echo --bins
bin="${CARGO_TARGET_DIR:-target}/debug"

# A self-signed certificate for shop.example.com, as the Secret the example
# Ingress names (generated once, not committed).
secret="$MANIFESTS/shop-tls.generated.yaml"
if [ ! -f "$secret" ]; then
  tmp=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=shop.example.com" -addext "subjectAltName=DNS:shop.example.com" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
  {
    printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: shop-tls, namespace: shop}\ntype: kubernetes.io/tls\nstringData:\n'
    printf '  tls.crt: |\n'; sed 's/^/    /' "$tmp/tls.crt"
    printf '  tls.key: |\n'; sed 's/^/    /' "$tmp/tls.key"
  } > "$secret"
  rm -rf "$tmp"
fi

pids=()
cleanup() {
  # SIGINT: the gateway stops at once (SIGTERM would drain for --shutdown-grace).
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/gatehouse-echo" --listen 127.0.0.1:9081 --service web --pod web-1 >/dev/null & pids+=($!)
"$bin/gatehouse-echo" --listen 127.0.0.1:9082 --service web --pod web-2 >/dev/null & pids+=($!)
"$bin/gatehouse-echo" --listen 127.0.0.1:9083 --service api --pod api-1 >/dev/null & pids+=($!)
"$bin/gatehouse-controller" --manifests "$MANIFESTS" --snapshot-addr "$SNAPSHOT_ADDR" & pids+=($!)
"$bin/gatehouse-gateway" --controller "http://$SNAPSHOT_ADDR" --http-addr "$HTTP_ADDR" \
  --https-addr "$HTTPS_ADDR" --https-redirect-port "${HTTPS_ADDR##*:}" --admin-addr "$ADMIN_ADDR" & pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://$ADMIN_ADDR/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://$ADMIN_ADDR/readyz" >/dev/null

cat <<MSG

Gatehouse is running (gateway on http://$HTTP_ADDR and https://$HTTPS_ADDR,
metrics on http://$ADMIN_ADDR/metrics). Try:
  curl -k --resolve shop.example.com:${HTTPS_ADDR##*:}:${HTTPS_ADDR%:*} https://shop.example.com:${HTTPS_ADDR##*:}/            # web-1 and web-2 in turn
  curl -k --resolve shop.example.com:${HTTPS_ADDR##*:}:${HTTPS_ADDR%:*} https://shop.example.com:${HTTPS_ADDR##*:}/api/orders  # api-1
  curl -i -H 'Host: shop.example.com' http://$HTTP_ADDR/          # 308 to HTTPS
  curl -H 'Host: pr-42.preview.example.com' http://$HTTP_ADDR/    # wildcard host -> web (no TLS)
  curl -i -H 'Host: nowhere.example.com' http://$HTTP_ADDR/       # 404
Edit $MANIFESTS/ingress.yaml and the routing follows. Ctrl-C stops everything.
MSG
wait
