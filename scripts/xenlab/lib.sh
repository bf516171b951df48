# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for scripts/xenlab/*.sh (sourced, not run).
# Where the heavy files live (both can be set from the environment):
#   LAB_CACHE   cached images, keyed by a hash of their inputs  (default /var/cache/domain-nv-lab)
#   LAB_WORK    scratch: per-run disks, logs, results           (default target/lab in the checkout)
XENLAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$XENLAB_DIR/../.." && pwd)
LAB_CACHE=${LAB_CACHE:-/var/cache/domain-nv-lab}
LAB_WORK=${LAB_WORK:-$REPO_DIR/target/lab}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
XENVER=4.17
# Heavy steps run at the lowest priority: the machine is shared.
NICE=${NICE:-nice -n 19}

# QEMU/TCG CPU model. The host's KVM (kvm_pvm) cannot run Xen, so it is TCG, and:
#   plain `max`      -> dom0 dies at once (#PF in create_bounce_frame): drop smap/smep/pku/la57
#   xsave/AVX on     -> random userland crashes in PV guests (QEMU 7.2 AVX emulation vs Xen)
#   rdtscp on        -> PVH guests stop at "SVM Insn len emulation failed" (no NRIP-save in TCG SVM)
QEMU_CPU=${QEMU_CPU:-max,-smap,-smep,-pku,-la57,-rdtscp,-xsave}

log()  { echo "xenlab[$(date -u +%T)] $*" >&2; }
die()  { echo "xenlab: ERROR: $*" >&2; exit 1; }

# key_of ITEM...: a short hash of the contents of the files and the literal strings given.
# An item that is an existing file contributes its contents, anything else its text.
key_of() {
  local i
  for i in "$@"; do
    if [ -f "$i" ]; then printf 'F:%s\n' "$(basename "$i")"; cat "$i"; else printf 'S:%s\n' "$i"; fi
  done | sha256sum | cut -c1-16
}

# timed NAME CMD...: run CMD, print "STEP NAME rc=.. Ns" to stderr and to $LAB_WORK/timings.txt.
timed() {
  local name=$1; shift
  local t0 rc; t0=$(date +%s)
  "$@"; rc=$?
  local line; line="STEP $name rc=$rc $(( $(date +%s) - t0 ))s"
  echo "$line" >&2
  mkdir -p "$LAB_WORK"; echo "$(date -u +%FT%TZ) $line" >> "$LAB_WORK/timings.txt"
  return $rc
}

# The debootstrapped root filesystem all images are cut from (mk-rootfs.sh writes it).
rootfs_key() { key_of "$XENLAB_DIR/mk-rootfs.sh" "$SUITE" "$MIRROR"; }
rootfs_dir() { echo "$LAB_CACHE/rootfs-$(rootfs_key)"; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, image building and QEMU setup need it)"

# kernel_version ROOTFS: the (single) kernel version installed in the rootfs.
kernel_version() { ls "$1/lib/modules" | sort -V | tail -1; }

# copy_modules ROOTFS KVER DESTDIR MODULE...: copy MODULEs and everything they depend on (modules.dep)
# into DESTDIR as NN-name.ko, numbered in load order (dependencies first), decompressed.
# A module that is built into the kernel (modules.builtin) is skipped; an unknown one is an error.
copy_modules() {
  local root=$1 kver=$2 dest=$3; shift 3
  local md="$root/lib/modules/$kver"
  mkdir -p "$dest"
  local -a order=(); local -A seen=()
  _cm_visit() {
    local path=$1 dep
    [ -n "${seen[$path]:-}" ] && return 0
    seen[$path]=1
    for dep in $(awk -v p="$path:" '$1 == p { for (i = 2; i <= NF; i++) print $i }' "$md/modules.dep"); do
      _cm_visit "$dep"
    done
    order+=("$path")
  }
  local m name path
  for m in "$@"; do
    name=${m//_/-}
    path=$(awk -F: -v n="$name" '!found { p = $1; b = p; sub(/.*\//, "", b); sub(/\.ko(\.xz|\.zst|\.gz)?$/, "", b); gsub(/_/, "-", b); if (b == n) { print p; found = 1 } }' "$md/modules.dep")
    if [ -z "$path" ]; then
      if sed 's/_/-/g' "$md/modules.builtin" | grep "/$name\.ko$" >/dev/null; then continue; fi
      die "kernel module $m: neither in modules.dep nor built in ($kver)"
    fi
    _cm_visit "$path"
  done
  local i=10 f base
  for path in "${order[@]}"; do
    f="$md/$path"; base=$(basename "$path"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
    case "$path" in
      *.xz)  xz -dc "$f" > "$dest/$i-$base" ;;
      *.zst) zstd -qdc "$f" > "$dest/$i-$base" ;;
      *.gz)  gzip -dc "$f" > "$dest/$i-$base" ;;
      *)     cp "$f" "$dest/$i-$base" ;;
    esac
    i=$((i + 1))
  done
}

# busybox_tree DIR: a static busybox with all its applets as links in DIR/bin.
busybox_tree() {
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
}

# pack_initramfs DIR OUT.gz: newc cpio, gzip -1 (guests unpack it under TCG: fast beats small).
pack_initramfs() {
  (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$2.tmp" && mv "$2.tmp" "$2"
}

# copy_elf ROOT BIN DEST: the dynamic executable BIN (a path inside the tree ROOT; `/` for the
# host) and every shared library it loads (ldd, run in ROOT), at the same paths under DEST.
copy_elf() {
  local root=$1 bin=$2 dest=$3 lib
  [ -f "$root$bin" ] || die "copy_elf: no $bin in $root"
  mkdir -p "$dest$(dirname "$bin")"; cp -L "$root$bin" "$dest$bin"
  for lib in $(chroot "$root" ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$dest$(dirname "$lib")"; cp -L "$root$lib" "$dest$lib"
  done
}
