#!/usr/bin/env bash
# Boot Xen 4.17 + dom0 in QEMU (TCG) and run the lab checks; exit status 0 only if every check passed.
#
#   scripts/xenlab/run.sh            build/find the images (build-images.sh), then run
#   NO_BUILD=1 scripts/xenlab/run.sh use $LAB_WORK/images.env as it is
#
# The checks reach dom0 on a second disk: run.sh packs lab-checks.sh, the guest kernel and
# initramfs images and the rendered xl configs into an ext4 image (/dev/vdb in dom0, mounted at
# /lab); dom0 writes its results and logs to /lab/out/, powers off, and run.sh reads them back with
# debugfs. Results: $LAB_WORK/runs/<time>/ (console.log = Xen + dom0 serial console, out/), with
# $LAB_WORK/last pointing at the newest run.
#
# Environment: LAB_CHECKS (subset, space separated), LAB_BIG_MB (size of the throughput file, MiB),
# QEMU_TIMEOUT (seconds, default 2400), QEMU_SMP (2), QEMU_MEM (MiB, 3072), QEMU_CPU (see lib.sh),
# DOMAIN_NV_BIN (static /init of the NV domain, default the real domain-nv; passed on to
# build-images.sh), NV_CONFIG (a file written to the NV domain's xenstore data/domain-nv-config
# before it is unpaused; default scripts/xenlab/nv-config.yaml, "none" for no config), NV_EXTRA (its
# kernel command line, default "console=hvc0"), NV_MEMORY (MiB, 256), NV_VCPUS (1).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-2400}
QEMU_SMP=${QEMU_SMP:-2}
QEMU_MEM=${QEMU_MEM:-3072}
LAB_CHECKS=${LAB_CHECKS:-$(sed -n 's/^DEFAULT_CHECKS="\(.*\)"$/\1/p' "$XENLAB_DIR/lab-checks.sh")}
[ -n "$LAB_CHECKS" ] || die "no DEFAULT_CHECKS in lab-checks.sh"
LAB_BIG_MB=${LAB_BIG_MB:-32}
NV_NAME=lab-nv
NV_REPLICA=lab-r0            # the replicas are lab-r0..lab-r2 (links r0..r2, 10.77.{1,2,3}.2); lab-r2 is faulty
NV_CONFIG=${NV_CONFIG:-$XENLAB_DIR/nv-config.yaml}
TEMPLATES=${TEMPLATES:-$REPO_DIR/xl-configs}

if [ "${NO_BUILD:-0}" != 1 ]; then "$XENLAB_DIR/build-images.sh" || die "building the images failed"; fi
[ -f "$LAB_WORK/images.env" ] || die "no $LAB_WORK/images.env: run build-images.sh"
. "$LAB_WORK/images.env"
for f in "$XEN" "$VMLINUZ" "$BOOT_INITRD" "$ROOT_IMG" "$GUEST_KERNEL" "$REPLICA_INITRD" "$BIG_SEED" "$NV_INITRD"; do
  [ -f "$f" ] || die "missing image $f: run build-images.sh"
done

# keep the 5 newest earlier runs (each holds its lab disk)
ls -dt "$LAB_WORK"/runs/*/ 2>/dev/null | tail -n +6 | while read -r d; do rm -rf "$d"; done
RUN=$LAB_WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"; ln -sfn "$RUN" "$LAB_WORK/last"
log "run directory $RUN"

# ---- the lab disk
S=$RUN/labdisk; mkdir -p "$S/cfg" "$S/out"
ln "$GUEST_KERNEL" "$S/vmlinux" 2>/dev/null || cp "$GUEST_KERNEL" "$S/vmlinux"
cp "$REPLICA_INITRD" "$S/replica-initrd.gz"
cp "$NV_INITRD" "$S/nv-initrd.gz"
cp "$BIG_SEED" "$S/big-seed"
install -m 755 "$XENLAB_DIR/lab-checks.sh" "$S/lab-checks.sh"
cat > "$S/lab.env" <<EOF
LAB_CHECKS="$LAB_CHECKS"
LAB_BIG_MB=$LAB_BIG_MB
NV_NAME=$NV_NAME
NV_REPLICA=$NV_REPLICA
NV_BIN_NAME="$(basename "${NV_BIN:-?}")"
BIG_MD5=$(python3 -c 'import hashlib, sys
seed = open(sys.argv[1], "rb").read(); h = hashlib.md5()
for i in range(int(sys.argv[2]) * 16): h.update(b"%08d" % i + seed)
print(h.hexdigest())' "$BIG_SEED" "$LAB_BIG_MB")
EOF

# render TEMPLATE OUT KEY=VALUE...: replace @KEY@; every placeholder must be given a value
render() {
  local tpl=$1 out=$2; shift 2
  [ -f "$tpl" ] || { log "no template $tpl"; return 1; }
  python3 - "$tpl" "$out" "$@" <<'EOP'
import re, sys
tpl, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(tpl).read()
for p in pairs:
    k, v = p.split('=', 1)
    text = text.replace('@%s@' % k, v)
left = sorted(set(re.findall(r'@[A-Z_]+@', text)))
if left:
    sys.exit('%s: no value for %s' % (tpl, ' '.join(left)))
open(out, 'w').write(text)
EOP
}
render "$TEMPLATES/nv-domain.cfg.in" "$S/cfg/$NV_NAME.cfg" GROUP=lab NAME=$NV_NAME TYPE=pv \
  KERNEL=/lab/vmlinux RAMDISK=/lab/nv-initrd.gz "EXTRA=extra = \"${NV_EXTRA:-console=hvc0}\"" \
  MEMORY="${NV_MEMORY:-256}" VCPUS="${NV_VCPUS:-1}" \
  "EXTERNAL=vif = [ 'bridge=xenbr0,mac=00:16:3e:c0:00:0a' ]" \
  || log "WARNING: could not render the NV domain config; driver-domain-devices will fail"
for n in 0 1 2; do
  faulty=""; [ $n = 2 ] && faulty=" lab_faulty=1"
  render "$TEMPLATES/replica.cfg.in" "$S/cfg/lab-r$n.cfg" GROUP=lab INSTANCE=r$n GENERATION=1 \
    NAME=lab-r$n TYPE=pv KERNEL=/lab/vmlinux 'RAMDISK=ramdisk = "/lab/replica-initrd.gz"' \
    "EXTRA=console=hvc0 lab_name=lab-r$n lab_ip=10.77.$((n + 1)).2/24 lab_gw=10.77.$((n + 1)).1 lab_bigmb=$LAB_BIG_MB$faulty" \
    MEMORY=$(( 128 + LAB_BIG_MB )) VCPUS=1 \
    BACKEND=$NV_NAME MAC=00:16:3e:77:0$((n + 1)):02 ADDRESS=10.77.$((n + 1)).2 VIFNAME=r$n DISK= \
    || log "WARNING: could not render the config of replica lab-r$n; the nv-* checks will fail"
done
if [ "$NV_CONFIG" != none ]; then
  [ -f "$NV_CONFIG" ] || die "NV_CONFIG=$NV_CONFIG: no such file"
  cp "$NV_CONFIG" "$S/cfg/domain-nv-config"
fi
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
