#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian 12 root machine; idempotent.
# usage: scripts/install-deps.sh [apt-package ...]   (the base set is always checked)
set -euo pipefail
base=(build-essential pkg-config libxen-dev linux-libc-dev iproute2 procps kmod curl redis-server redis-tools nginx-light faketime nftables nsd dnsutils wrk)
want=("${base[@]}" "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  # Packaged services (redis, nginx, nsd) must not start in the root namespace: tests start their own.
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
  for c in clippy rustfmt; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
  done
fi
