#!/usr/bin/env bash
# Boot Xen 4.17 + dom0 in QEMU (TCG) and run the lab checks; exit status 0 only if every check passed.
#
#   scripts/xenlab/run.sh            build/find the images (build-images.sh), then run
#   NO_BUILD=1 scripts/xenlab/run.sh use $LAB_WORK/images.env as it is
#
# The checks reach dom0 on a second disk: run.sh packs lab-checks.sh, the static nvctl, the
# replica group spec (LAB_SPEC) and the guest kernel and initramfs images into an ext4 image
# (/dev/vdb in dom0, mounted at /lab); dom0 writes its results and logs to /lab/out/, powers off,
# and run.sh reads them back with debugfs. Results: $LAB_WORK/runs/<time>/ (console.log = Xen + dom0 serial console, out/), with
# $LAB_WORK/last pointing at the newest run.
#
# Environment: LAB_CHECKS (subset, space separated), LAB_BIG_MB (size of the throughput file, MiB),
# QEMU_TIMEOUT (seconds, default 2400), QEMU_SMP (2), QEMU_MEM (MiB, 3072), QEMU_CPU (see lib.sh),
# DOMAIN_NV_BIN (static /init of the NV domain, default the real domain-nv; passed on to
# build-images.sh), NVCTL_BIN (static nvctl for dom0, default the musl build of `make static`),
# LAB_SPEC (the group nvctl starts, default xl-configs/xenlab-group.yaml; its /big size and replica
# memory follow LAB_BIG_MB), LAB_SOLO_SPEC (the one-replica group of the baseline checks, default
# xl-configs/xenlab-solo.yaml; the same substitutions).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-2400}
QEMU_SMP=${QEMU_SMP:-2}
QEMU_MEM=${QEMU_MEM:-3072}
LAB_CHECKS=${LAB_CHECKS:-$(sed -n 's/^DEFAULT_CHECKS="\(.*\)"$/\1/p' "$XENLAB_DIR/lab-checks.sh")}
[ -n "$LAB_CHECKS" ] || die "no DEFAULT_CHECKS in lab-checks.sh"
LAB_BIG_MB=${LAB_BIG_MB:-32}
LAB_SPEC=${LAB_SPEC:-$REPO_DIR/xl-configs/xenlab-group.yaml}
LAB_SOLO_SPEC=${LAB_SOLO_SPEC:-$REPO_DIR/xl-configs/xenlab-solo.yaml}
NVCTL_BIN=${NVCTL_BIN:-$REPO_DIR/target/x86_64-unknown-linux-musl/release/nvctl}
[ -f "$LAB_SPEC" ] || die "LAB_SPEC=$LAB_SPEC: no such file"
[ -f "$LAB_SOLO_SPEC" ] || die "LAB_SOLO_SPEC=$LAB_SOLO_SPEC: no such file"
[ -f "$NVCTL_BIN" ] || die "NVCTL_BIN=$NVCTL_BIN: no such file (make static)"
! readelf -l "$NVCTL_BIN" | grep -q 'program interpreter' || die "$NVCTL_BIN is dynamically linked; dom0 runs the static build"

if [ "${NO_BUILD:-0}" != 1 ]; then "$XENLAB_DIR/build-images.sh" || die "building the images failed"; fi
[ -f "$LAB_WORK/images.env" ] || die "no $LAB_WORK/images.env: run build-images.sh"
. "$LAB_WORK/images.env"
for f in "$XEN" "$VMLINUZ" "$BOOT_INITRD" "$ROOT_IMG" "$GUEST_KERNEL" "$REPLICA_INITRD" "$REPLICA_FAULTY_INITRD" "$BIG_SEED" "$NV_INITRD" "${LINUX_DD_INITRD:-}"; do
  [ -f "$f" ] || die "missing image $f: run build-images.sh"
done

# keep the 5 newest earlier runs (each holds its lab disk)
ls -dt "$LAB_WORK"/runs/*/ 2>/dev/null | tail -n +6 | while read -r d; do rm -rf "$d"; done
RUN=$LAB_WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"; ln -sfn "$RUN" "$LAB_WORK/last"
log "run directory $RUN"

# ---- the lab disk
S=$RUN/labdisk; mkdir -p "$S/out"
ln "$GUEST_KERNEL" "$S/vmlinux" 2>/dev/null || cp "$GUEST_KERNEL" "$S/vmlinux"
cp "$REPLICA_INITRD" "$S/replica-initrd.gz"
cp "$REPLICA_FAULTY_INITRD" "$S/replica-faulty-initrd.gz"
cp "$NV_INITRD" "$S/nv-initrd.gz"
cp "$LINUX_DD_INITRD" "$S/ldd-initrd.gz"
cp "$BIG_SEED" "$S/big-seed"
strip -o "$S/nvctl" "$NVCTL_BIN" 2>/dev/null || cp "$NVCTL_BIN" "$S/nvctl"
chmod 755 "$S/nvctl"
# the specs as they are, but for the size of /big (and the replicas' memory, 128 MiB + /big)
for spec in "$LAB_SPEC:xenlab-group.yaml" "$LAB_SOLO_SPEC:xenlab-solo.yaml"; do
  sed -e "s/lab_bigmb=[0-9]*/lab_bigmb=$LAB_BIG_MB/" -e "s/^\(    memory:\) 160\b/\1 $(( 128 + LAB_BIG_MB ))/" \
    "${spec%%:*}" > "$S/${spec#*:}"
done
install -m 644 "$XENLAB_DIR/checks-baseline.sh" "$S/checks-baseline.sh"
install -m 755 "$XENLAB_DIR/lab-checks.sh" "$S/lab-checks.sh"
cat > "$S/lab.env" <<EOF
LAB_CHECKS="$LAB_CHECKS"
LAB_BIG_MB=$LAB_BIG_MB
NV_BIN_NAME="$(basename "${NV_BIN:-?}")"
BIG_MD5=$(python3 -c 'import hashlib, sys
seed = open(sys.argv[1], "rb").read(); h = hashlib.md5()
for i in range(int(sys.argv[2]) * 16): h.update(b"%08d" % i + seed)
print(h.hexdigest())' "$BIG_SEED" "$LAB_BIG_MB")
EOF
size=$(( $(du -sm "$S" | cut -f1) + 200 ))
mke2fs -q -F -t ext4 -L xenlab-lab -d "$S" "$RUN/lab.img" "${size}M" >/dev/null || die "mke2fs of the lab disk failed"
rm -rf "$S"

# ---- boot
XENARGS="console=com1 com1=115200,8n1 console_timestamps=boot loglvl=all guest_loglvl=all"
XENARGS+=" dom0_mem=1024M,max:1024M dom0_max_vcpus=$QEMU_SMP bootscrub=false noreboot"
# dom0 stops the checks in time to save the logs and power off before QEMU's limit
lab_timeout=$(( QEMU_TIMEOUT > 360 ? QEMU_TIMEOUT - 180 : QEMU_TIMEOUT / 2 ))
DOM0ARGS="root=/dev/vda rw console=hvc0 earlyprintk=xen init=/xenlab-init lab_timeout=$lab_timeout"
log "booting Xen in QEMU (TCG, -cpu $QEMU_CPU, ${QEMU_SMP} vcpus, ${QEMU_MEM} MiB; limit ${QEMU_TIMEOUT}s); console: $RUN/console.log"
t0=$(date +%s)
# shellcheck disable=SC2086
timeout -k 20 "$QEMU_TIMEOUT" $NICE qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu "$QEMU_CPU" -smp "$QEMU_SMP" -m "$QEMU_MEM" -machine q35 \
  -display none -no-reboot -net none -monitor none -serial "file:$RUN/console.log" \
  -kernel "$XEN" -append "$XENARGS" \
  -initrd "$VMLINUZ $DOM0ARGS,$BOOT_INITRD" \
  -drive "file=$ROOT_IMG,if=virtio,format=raw,cache=unsafe,snapshot=on" \
  -drive "file=$RUN/lab.img,if=virtio,format=raw,cache=writeback" \
  > "$RUN/qemu.log" 2>&1
qrc=$?
wall=$(( $(date +%s) - t0 ))
echo "$(date -u +%FT%TZ) STEP qemu-run rc=$qrc ${wall}s" >> "$LAB_WORK/timings.txt"
log "QEMU exited rc=$qrc after ${wall}s"

# ---- results
debugfs -R "rdump /out $RUN" "$RUN/lab.img" >/dev/null 2>&1
if [ -f "$RUN/out/checks.log" ]; then results=$RUN/out/checks.log; else
  log "no results on the lab disk; using the console log"; results=$RUN/console.log; fi
grep -aE '^(PASS|FAIL|INFO|METRIC) ' "$results" | tr -d '\r' | tee "$RUN/results.txt"
fail=0
[ "$qrc" = 0 ] || { echo "FAIL qemu ${wall}s: QEMU exit status $qrc$([ "$qrc" = 124 ] && echo " (time limit ${QEMU_TIMEOUT}s)")" | tee -a "$RUN/results.txt"; fail=1; }
for c in $LAB_CHECKS; do
  if grep -q "^PASS $c " "$RUN/results.txt"; then :
  elif grep -q "^FAIL $c " "$RUN/results.txt"; then fail=1
  else echo "FAIL $c 0s: no result (see $RUN/console.log)" | tee -a "$RUN/results.txt"; fail=1; fi
done
grep -q '^FAIL ' "$RUN/results.txt" && fail=1
npass=$(grep -c '^PASS ' "$RUN/results.txt"); nfail=$(grep -c '^FAIL ' "$RUN/results.txt")
log "lab: $npass passed, $nfail failed; QEMU ${wall}s; logs in $RUN"
exit $fail
