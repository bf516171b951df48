#!/usr/bin/env bash
# The Linux driver domain's initramfs, the lab's baseline for the NV domain: what a user would
# deploy instead of domain-nv, a Qubes-style net VM. Cut from the cached rootfs into
# $LAB_CACHE/ldd-<key>/ldd-initrd.gz (key = hash(rootfs key, this script, lib.sh, host busybox)):
#   - static busybox, the kernel's xen-netback (serves the replica's vif: GSO, SG, checksum
#     offload, batched grant copies) and xen-netfront (its outside NIC eth0, a vif on dom0's
#     bridge), and xenstore-read and -write (Debian's xenstore-utils, with their libraries);
#   - /init: eth0 gets `ldd_out=ADDR/LEN`, the kernel routes between eth0 and the replica's vif
#     (ip_forward=1; routed, no NAT and no user-space forwarder: the client addresses the
#     replica through the driver domain), and a hotplug agent does what `xl devd` and the
#     vif-route script do in a full driver domain: each vif the kernel backend creates gets
#     `ldd_in=ADDR/LEN` and is brought up, then `hotplug-status = connected` moves its backend to
#     Connected. It publishes data/ldd-ready = 1 once netback is loaded (a replica's `xl create`
#     waits 10 s for its backend), and prints the interfaces' counters every 10 s while they change.
# Prints LINUX_DD_INITRD=path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
R=$(rootfs_dir)
[ -f "$R/.xenlab-done" ] || die "no rootfs at $R: run mk-rootfs.sh first"
KVER=$(kernel_version "$R")
key=$(key_of "$(rootfs_key)" "$0" "$XENLAB_DIR/lib.sh" /bin/busybox ldd)
out=$LAB_CACHE/ldd-$key
if [ ! -f "$out/.xenlab-done" ] || [ "${FORCE:-0}" = 1 ]; then
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  D=$out.tmp/root; mkdir -p "$D"/{proc,sys,dev,tmp}
  busybox_tree "$D"
  copy_modules "$R" "$KVER" "$D/lib/modules/domain-nv" xen-netfront xen-netback
  for t in read write; do copy_elf "$R" "/usr/bin/xenstore-$t" "$D"; done
  cat > "$D/init" <<'EOI'
#!/bin/sh
# Linux driver domain: kernel netback + kernel routing (see scripts/xenlab/mk-linux-dd.sh).
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
arg() { sed -n "s/.*[[:space:]]$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
OUT=$(arg ldd_out); IN=$(arg ldd_in)
echo "LDD up at uptime $(cut -d' ' -f1 /proc/uptime)s: outside $OUT, inside $IN"
for m in /lib/modules/domain-nv/*.ko; do insmod "$m" || echo "LDD insmod $m failed"; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
ip link set lo up; ip addr add "$OUT" dev eth0; ip link set eth0 up
echo 1 > /proc/sys/net/ipv4/ip_forward
xenstore-write data/ldd-ready 1 || echo "LDD cannot write data/ldd-ready"
echo "LDD ready at uptime $(cut -d' ' -f1 /proc/uptime)s: domid $(xenstore-read domid), ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
# hotplug: the kernel names the interface of backend/vif/<frontend domid>/<handle> vif<domid>.<handle>;
# polled in /sys without a process per round (the domain stays up, idle, while the lab goes on)
plugged=" "
plug() {
  local d ifc fe
  for d in /sys/class/net/vif*; do
    [ -e "$d" ] || continue
    ifc=${d##*/}
    case "$plugged" in *" $ifc "*) continue ;; esac
    fe=${ifc#vif}
    ip addr add "$IN" dev "$ifc" 2>/dev/null; ip link set "$ifc" up \
      && xenstore-write "backend/vif/${fe%.*}/${fe#*.}/hotplug-status" connected || continue
    plugged="$plugged$ifc "
    echo "LDD hotplug: $ifc up with $IN, backend/vif/${fe%.*}/${fe#*.}/hotplug-status connected at uptime $(cut -d' ' -f1 /proc/uptime)s"
  done
}
last=""; n=0
while :; do
  plug
  n=$((n + 1))
  if [ $((n % 10)) = 0 ]; then
    now=$(grep -E 'eth0|vif' /proc/net/dev | tr -s ' ' | tr '\n' ';')
    [ "$now" != "$last" ] && echo "LDD counters: $now"; last=$now
  fi
  sleep 1
done
EOI
  chmod +x "$D/init"
  pack_initramfs "$D" "$out.tmp/ldd-initrd.gz"; rm -rf "$D"
  touch "$out.tmp/.xenlab-done"; rm -rf "$out"; mv "$out.tmp" "$out"
  log "Linux driver-domain initramfs: $out/ldd-initrd.gz"
fi
echo "LINUX_DD_INITRD=$out/ldd-initrd.gz"
