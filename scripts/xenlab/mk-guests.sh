#!/usr/bin/env bash
# Guest images, cut from the cached rootfs:
#   guest kernel   $LAB_CACHE/kernel-<key>/vmlinux: the uncompressed ELF inside Debian's bzImage
#                  (libxc decompressing the bzImage costs ~30 s under TCG; the ELF loads in seconds)
#   replica        $LAB_CACHE/replica-<key>/replica-initrd.gz: static busybox + xen-netfront; /init
#                  configures eth0 from the kernel command line in the kernel's own syntax, as nvctl
#                  renders it (ip=ADDR::GATEWAY:NETMASK:HOSTNAME:eth0:off; lab_bigmb=M) and serves
#                  HTTP on port 80 with busybox httpd (its real Date header: domain-nv's `protocol:
#                  http` masks it) from /www: /index.html (the same on every replica), a M MiB /big
#                  (default 32, built from big-seed, the same everywhere) for throughput and md5
#                  checks, both with one fixed mtime (so ETag and Last-Modified agree), and the CGI
#                  /cgi-bin/count (POST adds one, GET reads: a stateful HTTP resource); the same
#                  files as fixed HTTP/1.0 replies without Date on port 8080 (busybox nc -ll -e
#                  /bin/serve, the `bytes` port the lab compares rates with); and a
#                  stateful counter on port 7000 (/bin/count: INC, GET; its
#                  answers depend on every earlier request), which a fresh replica cannot agree on
#                  and DNS on UDP port 53 (nv-lab-dnsd: LAB_DNSD_BIN, default the
#                  musl build of nv-testbed's nv-lab-dnsd; A records of www.lab.test and mail.lab.test)
#                  and the host's ethtool (with its libraries): /init prints `ethtool -k eth0`,
#                  the offloads netfront runs with against its backend, on the console
#                  replica-faulty-initrd.gz: the same image plus /lab-faulty (a second cpio member
#                  appended): its /index.html differs and it answers another mail.lab.test address,
#                  a faulty replica for the voter
#   NV domain      $LAB_CACHE/nv-<key>/nv-initrd.gz: /init = DOMAIN_NV_BIN, stripped (a static binary;
#                  default: the real target/x86_64-unknown-linux-musl/release/domain-nv of `make static`),
#                  /dev/console, and the Xen device modules
#                  in /lib/modules/domain-nv/NN-name.ko (load order = name order; /init loads them with
#                  finit_module). No xen-netback: the user-space netback serves the vifs.
# usage: DOMAIN_NV_BIN=target/x86_64-unknown-linux-musl/release/domain-nv mk-guests.sh
#        (LAB_DNSD_BIN=target/x86_64-unknown-linux-musl/release/nv-lab-dnsd by default)
# Prints KEY=path lines (GUEST_KERNEL, REPLICA_INITRD, BIG_SEED, NV_INITRD, NV_BIN) on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
R=$(rootfs_dir)
[ -f "$R/.xenlab-done" ] || die "no rootfs at $R: run mk-rootfs.sh first"
KVER=$(kernel_version "$R")
RK=$(rootfs_key)
SELF=$XENLAB_DIR/mk-guests.sh
# Modules of the NV domain: Xen device interfaces (the ones not built into Debian's kernel get
# loaded) and xen-netfront for its external vif on the dom0 bridge.
NV_MODULES="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netfront"

# --- guest kernel ---
kkey=$(key_of "$RK" "$SELF" kernel)
kout=$LAB_CACHE/kernel-$kkey
if [ ! -f "$kout/.xenlab-done" ] || [ "${FORCE:-0}" = 1 ]; then
  rm -rf "$kout.tmp"; mkdir -p "$kout.tmp"
  python3 - "$R/boot/vmlinuz-$KVER" "$kout.tmp/vmlinux" <<'EOP'
import lzma, sys, zlib
data = open(sys.argv[1], 'rb').read()
def xz(i):  return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[i:])
def gz(i):  return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:])
for magic, fn in ((b'\xfd7zXZ\x00', xz), (b'\x1f\x8b\x08', gz)):
    i = data.find(magic)
    while i >= 0:
        try:
            out = fn(i)
            if out[:4] == b'\x7fELF':
                open(sys.argv[2], 'wb').write(out); sys.exit(0)
        except Exception:
            pass
        i = data.find(magic, i + 1)
sys.exit("no ELF vmlinux found inside " + sys.argv[1])
EOP
  touch "$kout.tmp/.xenlab-done"; rm -rf "$kout"; mv "$kout.tmp" "$kout"
  log "guest kernel: $kout/vmlinux ($(du -h "$kout/vmlinux" | cut -f1))"
fi
echo "GUEST_KERNEL=$kout/vmlinux"

# --- replica initramfs ---
LAB_DNSD_BIN=${LAB_DNSD_BIN:-$REPO_DIR/target/x86_64-unknown-linux-musl/release/nv-lab-dnsd}
[ -f "$LAB_DNSD_BIN" ] || die "LAB_DNSD_BIN=$LAB_DNSD_BIN: no such file (make lab-static)"
! readelf -l "$LAB_DNSD_BIN" | grep 'program interpreter' >/dev/null || die "$LAB_DNSD_BIN is dynamically linked; the replica image has no libc"
rkey=$(key_of "$RK" "$SELF" "$XENLAB_DIR/lib.sh" /bin/busybox /usr/sbin/ethtool "$LAB_DNSD_BIN" replica)
rout=$LAB_CACHE/replica-$rkey
if [ ! -f "$rout/.xenlab-done" ] || [ "${FORCE:-0}" = 1 ]; then
  rm -rf "$rout.tmp"; mkdir -p "$rout.tmp"
  D=$rout.tmp/root; mkdir -p "$D"/{proc,sys,dev,tmp,www}
  busybox_tree "$D"
  copy_modules "$R" "$KVER" "$D/lib/modules/domain-nv" xen-netfront
  copy_elf / /usr/sbin/ethtool "$D"
  # /big is built in the guest from /big-seed (65528 pseudo-random bytes, fixed: Python's
  # random.Random(77)) by gen_big, the same function lab-checks.sh uses in dom0 for the expected md5
  python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(77).randbytes(65528))' > "$D/big-seed"
  cp "$D/big-seed" "$rout.tmp/big-seed"
  cat > "$D/bin/serve" <<'EOI'
#!/bin/sh
# One HTTP/1.0 exchange on stdin/stdout (busybox nc -ll -e, port 8080), no Date: the same bytes
# on every replica, for the `bytes` port whose rate the lab compares with `protocol: http`.
read -r _m path _p
while read -r line; do [ -z "$(printf '%s' "$line" | tr -d '\r')" ] && break; done
case "$path" in
  /big) f=/www/big ;;
  /|/index.html) f=/www/index.html ;;
  *) f= ;;
esac
if [ -n "$f" ] && [ -f "$f" ]; then
  printf 'HTTP/1.0 200 OK\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$(stat -c %s "$f")"
  cat "$f"
else
  printf 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
fi
EOI
  chmod +x "$D/bin/serve"
  mkdir -p "$D/www/cgi-bin"
  cat > "$D/www/cgi-bin/count" <<'EOI'
#!/bin/sh
# busybox httpd's CGI /cgi-bin/count: a stateful HTTP resource. POST adds one to the count and
# answers the new value, GET answers it. Its reply has a Content-Length (so each reply ends
# without waiting for the connection's end) and no Date.
n=$(cat /tmp/webcount 2>/dev/null || echo 0)
[ "$REQUEST_METHOD" = POST ] && { n=$((n + 1)); echo "$n" > /tmp/webcount; }
body="count $n"
printf 'Content-Type: text/plain\r\nContent-Length: %s\r\n\r\n%s\n' "$((${#body} + 1))" "$body"
EOI
  chmod +x "$D/www/cgi-bin/count"
  cat > "$D/bin/count" <<'EOI'
#!/bin/sh
# The replica's stateful service (busybox nc -ll -e, port 7000): a counter whose every answer
# depends on all earlier requests. One request line: "INC" adds one and answers the new value,
# "GET" answers it, anything else (a health probe's empty connection) changes nothing. The answer
# is one 256-byte line, `count ` + the value in 249 digits, so that probation's byte count is
# reached in a few requests.
read -r cmd _ || exit 0
cmd=$(printf '%s' "$cmd" | tr -d '\r')
n=$(cat /tmp/counter 2>/dev/null || echo 0)
case "$cmd" in
  INC) n=$((n + 1)); echo "$n" > /tmp/counter ;;
  GET) ;;
  *) exit 0 ;;
esac
printf 'count %0249d\n' "$n"
EOI
  chmod +x "$D/bin/count"
  strip -o "$D/bin/nv-lab-dnsd" "$LAB_DNSD_BIN" 2>/dev/null || cp "$LAB_DNSD_BIN" "$D/bin/nv-lab-dnsd"
  chmod 755 "$D/bin/nv-lab-dnsd"
  cat > "$D/init" <<'EOI'
#!/bin/sh
# Replica: real services on a Xen vif: HTTP via busybox httpd and DNS over UDP (nv-lab-dnsd).
# Every replica serves the same /index.html, /big and A records; an image with /lab-faulty serves
# another /index.html and another address of mail.lab.test (a faulty replica).
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
arg() { sed -n "s/.*[[:space:]]$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
# gen_big MiB SEED: MiB * 16 blocks of 64 KiB, each an 8-digit block number + the 65528-byte seed
gen_big() { i=0; while [ $i -lt $(($1 * 16)) ]; do printf '%08d' $i; cat "$2"; i=$((i + 1)); done; }
# ip=ADDR::GATEWAY:NETMASK:HOSTNAME:DEVICE:off (the kernel's syntax, rendered by nvctl)
IPARG=$(arg ip); field() { echo "$IPARG" | cut -d: -f"$1"; }
IP=$(field 1); GW=$(field 3); MASK=$(field 4); NAME=$(field 5); NAME=${NAME:-replica}
BIG=$(arg lab_bigmb); BIG=${BIG:-32}
FAULTY=0; [ -e /lab-faulty ] && FAULTY=1
hostname "$NAME"
echo "REPLICA $NAME up at uptime $(cut -d' ' -f1 /proc/uptime)s"
for m in /lib/modules/domain-nv/*.ko; do insmod "$m" || echo "REPLICA insmod $m failed"; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
ip link set lo up
[ -n "$IP" ] && [ -n "$MASK" ] || echo "REPLICA $NAME: no ip=ADDR::GATEWAY:NETMASK:... on the command line"
ifconfig eth0 "$IP" netmask "$MASK" up
[ -n "$GW" ] && ip route add default via "$GW"
# the offloads netfront negotiated with this vif's backend (TSO needs the backend's
# feature-gso-tcpv4); netfront sets them when it connects, before the carrier goes up
i=0; while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done
echo "REPLICA $NAME ethtool -k eth0: $(/usr/sbin/ethtool -k eth0 | grep -E '^(scatter-gather|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|tx-checksumming|rx-checksumming):' | tr -s ' \t' ' ' | tr '\n' ';')"
if [ "$FAULTY" = 1 ]; then echo "xenlab-replica FAULTY $NAME" > /www/index.html
else echo "xenlab-replica ok" > /www/index.html; fi
gen_big "$BIG" /big-seed > /www/big
# One mtime on every replica: busybox httpd derives ETag and Last-Modified from it. Its Date
# differs (the replicas' clocks differ by minutes under TCG): domain-nv's `protocol: http`
# masks it.
touch -d '2026-01-01 00:00:00' /www/index.html /www/big
httpd -f -p 80 -h /www & sleep 0.2
# the same files as fixed HTTP/1.0 replies, for the `bytes` port 8080
nc -ll -p 8080 -e /bin/serve &
# the stateful service: a counter (/bin/count); a clone of this replica carries its value along
nc -ll -p 7000 -e /bin/count &
kill -0 $! && echo "REPLICA $NAME httpd on $IP:80 ($(cat /sys/class/net/eth0/address)) faulty=$FAULTY at uptime $(cut -d' ' -f1 /proc/uptime)s"
MAIL=192.0.2.25; [ "$FAULTY" = 1 ] && MAIL=192.0.2.66
nv-lab-dnsd www.lab.test=192.0.2.80 mail.lab.test=$MAIL & sleep 0.2
kill -0 $! && echo "REPLICA $NAME dnsd on $IP:53/udp faulty=$FAULTY at uptime $(cut -d' ' -f1 /proc/uptime)s"
# eth0 counters and neighbours on the console (the lab keeps it in dom0) while they change
last=""; while :; do
  now="$(grep eth0 /proc/net/dev | tr -s ' ') | $(ip neigh show dev eth0 | tr '\n' ' ')"
  [ "$now" != "$last" ] && echo "REPLICA $NAME eth0 $now"; last=$now; sleep 10
done
EOI
  chmod +x "$D/init"
  pack_initramfs "$D" "$rout.tmp/replica-initrd.gz"; rm -rf "$D"
  # the faulty image: the kernel unpacks concatenated cpio archives one over the other
  F=$rout.tmp/faulty; mkdir -p "$F"; echo "this replica image is faulty" > "$F/lab-faulty"
  pack_initramfs "$F" "$rout.tmp/faulty.gz"; rm -rf "$F"
  cat "$rout.tmp/replica-initrd.gz" "$rout.tmp/faulty.gz" > "$rout.tmp/replica-faulty-initrd.gz"; rm "$rout.tmp/faulty.gz"
  touch "$rout.tmp/.xenlab-done"; rm -rf "$rout"; mv "$rout.tmp" "$rout"
  log "replica initramfs: $rout/replica-initrd.gz"
fi
echo "REPLICA_INITRD=$rout/replica-initrd.gz"
echo "REPLICA_FAULTY_INITRD=$rout/replica-faulty-initrd.gz"
echo "BIG_SEED=$rout/big-seed"

# --- NV driver-domain initramfs ---
DOMAIN_NV_BIN=${DOMAIN_NV_BIN:-$REPO_DIR/target/x86_64-unknown-linux-musl/release/domain-nv}
[ -f "$DOMAIN_NV_BIN" ] || die "DOMAIN_NV_BIN=$DOMAIN_NV_BIN: no such file"
NV_BIN=$(readlink -f "$DOMAIN_NV_BIN")
readelf -h "$NV_BIN" >/dev/null 2>&1 || die "$NV_BIN is not an ELF binary"
! readelf -l "$NV_BIN" | grep 'program interpreter' >/dev/null || die "$NV_BIN is dynamically linked; /init must be static"
nkey=$(key_of "$RK" "$SELF" "$XENLAB_DIR/lib.sh" "$NV_BIN" "$NV_MODULES" nv)
nout=$LAB_CACHE/nv-$nkey
if [ ! -f "$nout/.xenlab-done" ] || [ "${FORCE:-0}" = 1 ]; then
  rm -rf "$nout.tmp"; mkdir -p "$nout.tmp"
  D=$nout.tmp/root; mkdir -p "$D"/{proc,sys,dev,run,tmp}
  # stripped: domain-nv's release build carries ~25 MB of debug info the guest does not need
  strip -o "$D/init" "$NV_BIN" 2>/dev/null || cp "$NV_BIN" "$D/init"
  chmod 755 "$D/init"
  mknod -m 600 "$D/dev/console" c 5 1
  mknod -m 666 "$D/dev/null" c 1 3
  # shellcheck disable=SC2086
  copy_modules "$R" "$KVER" "$D/lib/modules/domain-nv" $NV_MODULES
  pack_initramfs "$D" "$nout.tmp/nv-initrd.gz"; rm -rf "$D"
  touch "$nout.tmp/.xenlab-done"; rm -rf "$nout"; mv "$nout.tmp" "$nout"
  log "NV initramfs: $nout/nv-initrd.gz (/init = $NV_BIN)"
fi
echo "NV_INITRD=$nout/nv-initrd.gz"
echo "NV_BIN=$NV_BIN"
