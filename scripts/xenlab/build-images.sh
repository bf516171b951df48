#!/usr/bin/env bash
# Build (or find cached) every image the lab boots, and write $LAB_WORK/images.env for run.sh.
#   host packages      host-deps.sh   (apt; no-op when present)
#   rootfs             mk-rootfs.sh   (debootstrap bookworm + Xen 4.17 + kernel + busybox; ~2.5 min)
#   dom0               mk-dom0.sh     (xen ELF, vmlinuz, busybox boot initramfs, ext4 root.img)
#   guests             mk-guests.sh   (vmlinux, replica initramfs, NV-domain initramfs)
#   Linux driver dom.  mk-linux-dd.sh (kernel netback + routing: the baseline NV domain)
# LAB_DNSD_BIN=path: the replicas' static UDP service (default: nv-testbed's nv-lab-dnsd, musl
# release build, built here when it is missing).
# Everything is cached under $LAB_CACHE (default /var/cache/domain-nv-lab), keyed by a hash of its
# inputs; FORCE=1 rebuilds every stage; `rm -rf /var/cache/domain-nv-lab` starts from nothing.
# DOMAIN_NV_BIN=path: the static binary that becomes the NV domain's /init (default: the real
# domain-nv, target/x86_64-unknown-linux-musl/release/domain-nv, built here with `make static` when it
# is missing).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$LAB_WORK" "$LAB_CACHE"
H=$XENLAB_DIR
timed host-deps "$H/host-deps.sh"
if [ -z "${DOMAIN_NV_BIN:-}" ]; then
  export DOMAIN_NV_BIN=$REPO_DIR/target/x86_64-unknown-linux-musl/release/domain-nv
  [ -f "$DOMAIN_NV_BIN" ] || timed static-domain-nv make -C "$REPO_DIR" --no-print-directory static
fi
if [ -z "${LAB_DNSD_BIN:-}" ]; then
  export LAB_DNSD_BIN=$REPO_DIR/target/x86_64-unknown-linux-musl/release/nv-lab-dnsd
  [ -f "$LAB_DNSD_BIN" ] || timed static-lab-dnsd cargo build --release --target x86_64-unknown-linux-musl \
    --manifest-path "$REPO_DIR/Cargo.toml" -p nv-testbed --bin nv-lab-dnsd
fi
timed rootfs "$H/mk-rootfs.sh"
dom0=$(timed dom0-image "$H/mk-dom0.sh" | tail -1)
guests=$(timed guest-images "$H/mk-guests.sh")
linux_dd=$(timed linux-dd-image "$H/mk-linux-dd.sh")
{
  echo "# written by build-images.sh $(date -u +%FT%TZ)"
  echo "XEN=$dom0/xen"
  echo "VMLINUZ=$dom0/vmlinuz"
  echo "BOOT_INITRD=$dom0/boot-initrd.gz"
  echo "ROOT_IMG=$dom0/root.img"
  echo "KERNEL_VERSION=$(cat "$dom0/kernel-version")"
  echo "$guests"
  echo "$linux_dd"
} > "$LAB_WORK/images.env.tmp"
mv "$LAB_WORK/images.env.tmp" "$LAB_WORK/images.env"

# prune the cache: leftovers of interrupted builds, and entries of earlier inputs (keep the 3 newest
# NV-domain initramfs: they differ only by DOMAIN_NV_BIN and are switched between often)
. "$LAB_WORK/images.env"
keep=" $(rootfs_dir) $dom0 $(dirname "$GUEST_KERNEL") $(dirname "$REPLICA_INITRD") $(dirname "$NV_INITRD") $(dirname "$LINUX_DD_INITRD") $NV_BIN "
for d in "$LAB_CACHE"/*.tmp "$LAB_CACHE"/rootfs-* "$LAB_CACHE"/dom0-* "$LAB_CACHE"/kernel-* "$LAB_CACHE"/replica-* "$LAB_CACHE"/ldd-*; do
  [ -e "$d" ] || continue
  case "$keep" in *" $d "*) ;; *) log "pruning stale cache entry $d"; rm -rf "$d" ;; esac
done
ls -dt "$LAB_CACHE"/nv-* 2>/dev/null | tail -n +4 | while read -r d; do
  case "$keep" in *" $d "*) ;; *) log "pruning stale cache entry $d"; rm -rf "$d" ;; esac
done
log "images ready ($LAB_WORK/images.env):"
sed 's/^/  /' "$LAB_WORK/images.env" >&2
