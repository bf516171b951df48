#!/usr/bin/env bash
# The lab's Debian root filesystem: bookworm minbase + Xen 4.17 hypervisor and toolstack + the Debian
# kernel + busybox. dom0 boots it; the guests' kernel, vmlinux and modules are cut from it.
# Cached as $LAB_CACHE/rootfs-<key>/ where key = hash(this script, suite, mirror): edit this script
# (e.g. the package list) and the next build debootstraps again. FORCE=1 rebuilds anyway.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PACKAGES=xen-hypervisor-4.17-amd64,xen-utils-4.17,xenstore-utils,linux-image-amd64,busybox,iproute2,kmod,procps,bridge-utils
out=$(rootfs_dir)
if [ -f "$out/.xenlab-done" ] && [ "${FORCE:-0}" != 1 ]; then
  log "rootfs cached: $out"; exit 0
fi
mkdir -p "$LAB_CACHE"
tmp=$out.tmp
rm -rf "$tmp" "$out"
log "debootstrap $SUITE ($PACKAGES) -> $out"
$NICE debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" > "$LAB_CACHE/debootstrap.log" 2>&1 \
  || { tail -30 "$LAB_CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $LAB_CACHE/debootstrap.log)"; }
echo xenlab > "$tmp/etc/hostname"
sed -i 's/^root:[^:]*:/root::/' "$tmp/etc/shadow"
ls "$tmp"/boot/xen-$XENVER*.gz "$tmp"/boot/vmlinuz-* >/dev/null || die "no Xen or kernel in the rootfs"
rm -rf "$tmp/var/cache/apt/archives/"*.deb
touch "$tmp/.xenlab-done"
mv "$tmp" "$out"
log "rootfs ready: $out ($(du -sh "$out" | cut -f1))"
