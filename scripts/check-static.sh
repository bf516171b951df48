#!/usr/bin/env bash
# Fails unless every given binary is a statically linked x86-64 ELF (no interpreter, no NEEDED).
set -euo pipefail
for bin in "$@"; do
  [ -x "$bin" ] || { echo "check-static: $bin is missing" >&2; exit 1; }
  if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q 'NEEDED'; then
    echo "check-static: $bin is dynamically linked" >&2; exit 1
  fi
  readelf -hW "$bin" | grep -q 'Machine:.*X86-64' || { echo "check-static: $bin is not x86-64" >&2; exit 1; }
  echo "check-static: $bin: static x86-64"
done
