#!/usr/bin/env bash
# dom0 boot files, cut from the cached rootfs, into $LAB_CACHE/dom0-<key>/:
#   xen            the hypervisor as an ELF (multiboot) for QEMU -kernel (gunzipped /boot/xen-4.17-amd64.gz)
#   vmlinuz        dom0 kernel (Debian linux-image-amd64)
#   boot-initrd.gz tiny busybox initramfs: insmod virtio-blk + ext4, mount root=, switch_root to init=
#                  (Debian's 35 MB initramfs-tools image costs ~35 s under TCG)
#   root.img       ext4 image of the rootfs + /xenlab-init (dom0-init); QEMU attaches it snapshot=on
# key = hash(rootfs key, this script, dom0-init, lib.sh, host busybox).
# Prints the output directory on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
R=$(rootfs_dir)
[ -f "$R/.xenlab-done" ] || die "no rootfs at $R: run mk-rootfs.sh first"
key=$(key_of "$(rootfs_key)" "$0" "$XENLAB_DIR/dom0-init" "$XENLAB_DIR/lib.sh" /bin/busybox)
out=$LAB_CACHE/dom0-$key
if [ -f "$out/.xenlab-done" ] && [ "${FORCE:-0}" != 1 ]; then log "dom0 image cached: $out"; echo "$out"; exit 0; fi
tmp=$out.tmp; rm -rf "$tmp"; mkdir -p "$tmp"
KVER=$(kernel_version "$R")
log "dom0 image for kernel $KVER, Xen $(ls "$R"/boot/xen-$XENVER*.gz | head -1 | xargs basename)"

zcat "$(ls "$R"/boot/xen-$XENVER-amd64.gz 2>/dev/null || ls "$R"/boot/xen-$XENVER*.gz | head -1)" > "$tmp/xen"
cp "$R/boot/vmlinuz-$KVER" "$tmp/vmlinuz"

# boot initramfs
B=$tmp/boot-initrd; mkdir -p "$B"/{proc,sys,dev,newroot}
busybox_tree "$B"
copy_modules "$R" "$KVER" "$B/mod" crc32c_generic virtio_pci virtio_blk ext4
cat > "$B/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mod/*.ko; do insmod $m 2>/dev/null; done
ROOT=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline); INIT=$(sed -n 's/.*init=\([^ ]*\).*/\1/p' /proc/cmdline)
i=0; while [ ! -b "$ROOT" ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done
if ! mount -t ext4 -o rw "$ROOT" /newroot; then
  echo "boot-initrd: cannot mount $ROOT; devices: $(ls /dev | tr '\n' ' ')"; echo o > /proc/sysrq-trigger; sleep 30
fi
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "${INIT:-/sbin/init}"
EOI
chmod +x "$B/init"
pack_initramfs "$B" "$tmp/boot-initrd.gz"; rm -rf "$B"

# root image: a trimmed copy of the rootfs plus our init
S=$LAB_WORK/dom0-stage; rm -rf "$S"; mkdir -p "$LAB_WORK"
cp -a "$R" "$S"
install -m 755 "$XENLAB_DIR/dom0-init" "$S/xenlab-init"
mkdir -p "$S/lab"
rm -rf "$S"/usr/share/doc "$S"/usr/share/man "$S"/usr/share/locale "$S"/usr/share/info "$S"/.xenlab-done
K=$S/lib/modules/$KVER/kernel
rm -rf "$K"/drivers/{gpu,media,infiniband,staging,iio,scsi,bluetooth,net/wireless,net/ethernet} "$K"/sound "$K"/net/bluetooth
rm -f "$S"/boot/initrd.img-*
size=$(( $(du -sm "$S" | cut -f1) + 400 ))
$NICE mke2fs -q -F -t ext4 -L xenlab-dom0 -d "$S" "$tmp/root.img" "${size}M" >/dev/null
rm -rf "$S"
echo "$KVER" > "$tmp/kernel-version"
touch "$tmp/.xenlab-done"
rm -rf "$out"; mv "$tmp" "$out"
log "dom0 image ready: $out ($(du -sh --apparent-size "$out/root.img" | cut -f1) root.img)"
echo "$out"
