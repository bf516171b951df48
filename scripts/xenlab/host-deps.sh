#!/usr/bin/env bash
# Host packages for the Xen-in-QEMU lab on Debian 12; idempotent (quick no-op when all are there).
# Xen itself, the dom0 kernel and the toolstack come from debootstrap (mk-rootfs.sh), not from the host.
# ethtool is the host's: mk-guests.sh copies it (with its libraries) into the replica image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
want=(qemu-system-x86 debootstrap busybox-static cpio xz-utils e2fsprogs gzip python3 gcc libc6-dev
      linux-libc-dev ca-certificates ethtool)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  $NICE apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after install"
[ -x /usr/sbin/ethtool ] || die "/usr/sbin/ethtool missing after install"
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) missing after install"
/bin/busybox --list | grep -x httpd >/dev/null || die "/bin/busybox has no httpd applet"
