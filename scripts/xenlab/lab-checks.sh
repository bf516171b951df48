#!/bin/bash
# The lab's checks, run inside dom0 (by /xenlab-init) from the per-run lab disk mounted at /lab.
# Each check prints exactly one line:  PASS <name> <seconds>s  |  FAIL <name> <seconds>s: <reason>
# plus optional "INFO <name>: ..." and "METRIC <name> ..." lines. Detailed output of check X goes to
# /lab/out/X.log. Exit status = number of failed checks.
#
# Checks (in this order; LAB_CHECKS in /lab/lab.env selects a subset):
#   xen-boots              start xenstored, xen-init-dom0, xenconsoled; `xl info` works.
#                          Its seconds are dom0's uptime when the toolstack answered.
#   replica-netfront       PV replica (busybox httpd) with a vif on dom0's bridge (kernel netback):
#                          xenstore state 4 on both ends, HTTP answer from dom0
#   dom0-netback-throughput  HTTP GET of the replica's /big (LAB_BIG_MB MiB) through dom0's kernel
#                          netback; prints a METRIC line (the baseline for our netback)
#   driver-domain-devices  PV driver domain (driver_domain=1, xl config rendered from
#                          xl-configs/nv-domain.cfg.in) whose /init is the static NV binary: it opens
#                          /dev/xen/{gntdev,evtchn,xenbus} and writes data/lab-init=ok (test binary)
#                          or data/domain-nv/version (the real domain-nv) under its xenstore home
#   vif-backend-appears    replica (xl-configs/replica.cfg.in) whose vif has backend=<NV domain>:
#                          the toolstack creates /local/domain/<nv>/backend/vif/<replica>/0
#   nv-vif-connected       replicas lab-r0..lab-r2 (vif backend=<NV domain>, vifname=r0..r2) run,
#                          each vif is state 4 on both ends (served by domain-nv's netback), httpd up
#   client-through-nv      dom0 -> 192.168.77.10 (domain-nv on the NV domain's external NIC) ->
#                          replicas: /index.html is the replicas' page, /big has the right md5;
#                          METRIC lines: throughput, and its ratio to dom0-netback-throughput
#   faulty-replica-masked  lab-r2 serves a different /index.html: the client still gets the
#                          majority page and domain-nv's status says r2 is faulty
#   replica-destroyed-mid-stream  `xl destroy lab-r0` during a /big download: the md5 is still right
#   teardown               every guest destroyed; `xl list` shows only Domain-0
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LAB=${LAB:-/lab}; OUT=$LAB/out; mkdir -p "$OUT"
[ -f "$LAB/lab.env" ] && . "$LAB/lab.env"
# run.sh reads this line too (the default of LAB_CHECKS)
DEFAULT_CHECKS="xen-boots replica-netfront dom0-netback-throughput driver-domain-devices vif-backend-appears nv-vif-connected client-through-nv faulty-replica-masked replica-destroyed-mid-stream teardown"
LAB_CHECKS=${LAB_CHECKS:-$DEFAULT_CHECKS}
LAB_BIG_MB=${LAB_BIG_MB:-32}
GUEST_TMO=${GUEST_TMO:-240}          # seconds for a guest to come up (TCG: 25-60 s seen, once 326 s)
NV_NAME=${NV_NAME:-lab-nv}
NV_REPLICA=${NV_REPLICA:-lab-r0}
KERNEL=$LAB/vmlinux
XLIB=/usr/lib/xen-4.17/bin

ut() { cut -d' ' -f1 /proc/uptime; }
xsr() { xenstore-read "$1" 2>/dev/null; }
# wait_for SECONDS CMD...: poll CMD once a second until it succeeds or SECONDS of wall time pass
wait_for() {
  local limit=$(( SECONDS + $1 )); shift
  while [ $SECONDS -lt $limit ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  "$@" >/dev/null 2>&1
}
domid_of() { xl domid "$1" 2>/dev/null; }
NV_ADDR=192.168.77.10        # domain-nv's external address (nv-config.yaml); dom0 has .1 on xenbr0
REPLICAS="lab-r0 lab-r1 lab-r2"
# gen_big MiB SEED: the replicas' /big (the same function is in the replica's /init)
gen_big() { local i=0; while [ $i -lt $(($1 * 16)) ]; do printf '%08d' $i; cat "$2"; i=$((i + 1)); done; }
# the md5 every /big download must have (run.sh computes it as BIG_MD5; else computed here, once)
want_md5() {
  [ -s /tmp/big.md5 ] || [ -z "${BIG_MD5:-}" ] || echo "$BIG_MD5" > /tmp/big.md5
  [ -s /tmp/big.md5 ] || gen_big "$LAB_BIG_MB" "$LAB/big-seed" | md5sum | cut -d' ' -f1 > /tmp/big.md5
  cat /tmp/big.md5
}
# nv_log [BYTES]: the end of the NV domain's console (domain-nv's log), printable, on one line
nv_log() { tail -c "${1:-400}" "/var/log/xen/console/guest-$NV_NAME.log" 2>/dev/null | tr -cd '\12\40-\176' | tr '\n' '|'; }
nv_status() { local nv; nv=$(domid_of "$NV_NAME") && xenstore-ls -f "/local/domain/$nv/data/domain-nv" 2>&1; }
# get URL FILE: HTTP GET with busybox wget (its -T segfaults: timeout(1) bounds it)
get() { timeout "${GET_TMO:-600}" busybox wget -q -O "$2" "$1"; }

FAILED=0; declare -A RESULT
# run_check NAME: runs check_NAME (stdout/stderr to $OUT/NAME.log); it sets REASON on failure.
run_check() {
  local name=$1 fn=check_${1//-/_} t0=$SECONDS rc
  REASON=""; ELAPSED=""
  echo "=== $name (dom0 uptime $(ut)s)" >> "$OUT/$name.log"
  if ! declare -F "$fn" >/dev/null; then REASON="no such check"; rc=1
  else "$fn" 3>&1 >> "$OUT/$name.log" 2>&1; rc=$?; fi
  local secs=${ELAPSED:-$(( SECONDS - t0 ))}
  if [ $rc = 0 ]; then echo "PASS $name ${secs}s"; RESULT[$name]=pass
  else echo "FAIL $name ${secs}s: ${REASON:-exit status $rc}"; RESULT[$name]=fail; FAILED=$((FAILED + 1)); fi
}
need() { # need CHECK: fail this check early when a prerequisite check did not pass
  [ "${RESULT[$1]:-}" = pass ] && return 0
  REASON="prerequisite $1 did not pass"; return 1
}
info() { echo "INFO $*" >&3; echo "INFO $*"; }   # fd 3 = the console (see run_check)

# ---------------------------------------------------------------- xen-boots
check_xen_boots() {
  for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback bridge; do
    modprobe "$m" || echo "modprobe $m failed"
  done
  mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen
  grep -q control_d /proc/xen/capabilities || { REASON="not running as Xen dom0 (/proc/xen/capabilities)"; return 1; }
  mkdir -p /run/xen /var/log/xen/console /var/lib/xen
  $XLIB/xenstored --pid-file /run/xen/xenstored.pid || { REASON="xenstored failed to start"; return 1; }
  wait_for 60 xenstore-list / || { REASON="xenstored not answering"; return 1; }
  timeout 120 $XLIB/xen-init-dom0 || { REASON="xen-init-dom0 failed"; return 1; }
  $XLIB/xenconsoled --pid-file /run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    || { REASON="xenconsoled failed"; return 1; }
  local inf; inf=$(timeout 120 xl info 2>&1) || { REASON="xl info failed: $(echo "$inf" | tail -1)"; return 1; }
  echo "$inf"
  ELAPSED=$(ut | cut -d. -f1)
  local ver; ver=$(echo "$inf" | awk -F': ' '/^xen_version/ {print $2}')
  [ -n "$ver" ] || { REASON="xl info has no xen_version"; return 1; }
  info "xen-boots: Xen $ver, dom0 $(uname -r), $(echo "$inf" | awk -F': ' '/^nr_cpus/ {print $2}') cpus, free_memory $(echo "$inf" | awk -F': ' '/^free_memory/ {print $2}') MiB"
  xl list
  # the dom0 bridge the baseline replica's vif joins (kernel netback + vif-bridge hotplug script)
  ip link add name xenbr0 type bridge stp_state 0 forward_delay 0
  ip addr add 10.0.0.1/24 dev xenbr0 && ip addr add 192.168.77.1/24 dev xenbr0 && ip link set xenbr0 up \
    || { REASON="cannot set up bridge xenbr0"; return 1; }
  return 0
}

# ---------------------------------------------------------------- replica-netfront
check_replica_netfront() {
  need xen-boots || return 1
  local name=lab-rk cfg=/run/lab-rk.cfg
  cat > $cfg <<EOC
name = "$name"
type = "pv"
kernel = "$KERNEL"
ramdisk = "$LAB/replica-initrd.gz"
extra = "console=hvc0 lab_name=$name lab_ip=10.0.0.2/24 lab_bigmb=$LAB_BIG_MB"
memory = $(( 128 + LAB_BIG_MB ))
vcpus = 1
vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:02' ]
on_crash = "preserve"
EOC
  local t0=$SECONDS
  timeout 300 xl create $cfg || { REASON="xl create failed"; return 1; }
  local id; id=$(domid_of $name); echo "domid $id, xl create took $((SECONDS - t0))s"
  local fe=/local/domain/$id/device/vif/0 be=/local/domain/0/backend/vif/$id/0
  if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read $fe/state)\" = 4 ] && [ \"\$(xenstore-read $be/state)\" = 4 ]"; then
    REASON="vif not Connected after ${GUEST_TMO}s: frontend state=$(xsr $fe/state) backend state=$(xsr $be/state) hotplug-status=$(xsr $be/hotplug-status)"
    return 1
  fi
  info "replica-netfront: xenstore state 4/4 $((SECONDS - t0))s after xl create (backend vif$id.0 on xenbr0)"
  local body=""
  if ! wait_for 120 sh -c "timeout 10 busybox wget -q -O - http://10.0.0.2/ | grep -q 'xenlab-replica ok'"; then
    body=$(timeout 10 busybox wget -q -O - http://10.0.0.2/ 2>&1 | head -3)
    REASON="no HTTP answer from the replica at 10.0.0.2 ($body)"; return 1
  fi
  info "replica-netfront: HTTP 200 from busybox httpd in the replica $((SECONDS - t0))s after xl create"
}

# ---------------------------------------------------------------- dom0-netback-throughput
check_dom0_netback_throughput() {
  need replica-netfront || return 1
  local want=$(( LAB_BIG_MB * 1048576 )) t0 t1 got
  rm -f /tmp/big
  t0=$(date +%s.%N)
  timeout 600 busybox wget -q -O /tmp/big http://10.0.0.2/big || { REASON="wget of /big failed"; return 1; }
  t1=$(date +%s.%N)
  got=$(stat -c %s /tmp/big); local sum; sum=$(md5sum < /tmp/big | cut -d' ' -f1); rm -f /tmp/big
  [ "$got" = "$want" ] || { REASON="got $got bytes, want $want"; return 1; }
  [ "$sum" = "$(want_md5)" ] || { REASON="md5 $sum, want $(want_md5)"; return 1; }
  awk -v b="$got" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.3f\n", b / (z - a) / 1e6 }' > /tmp/dom0-mbs
  local line; line=$(awk -v b="$got" -v a="$t0" -v z="$t1" 'BEGIN { s = z - a; printf "%.1f MB/s (%d bytes in %.2f s, md5 ok)", b / s / 1e6, b, s }')
  echo "METRIC dom0-netback-http-get $line" >&3
  echo "METRIC dom0-netback-http-get $line"
}

# ---------------------------------------------------------------- driver-domain-devices
check_driver_domain_devices() {
  need xen-boots || return 1
  local cfg=$LAB/cfg/$NV_NAME.cfg
  [ -f "$cfg" ] || { REASON="no $cfg (run.sh renders it)"; return 1; }
  cat "$cfg"
  local t0=$SECONDS conf=$LAB/cfg/domain-nv-config
  if [ -f "$conf" ]; then
    # domain-nv's configuration goes to its xenstore home before its /init runs: create paused,
    # write data/domain-nv-config (what `nvctl up` does), unpause
    timeout 300 xl create -p "$cfg" || { REASON="xl create -p $cfg failed"; return 1; }
    local id; id=$(domid_of "$NV_NAME")
    xenstore-write "/local/domain/$id/data/domain-nv-config" "$(cat "$conf")" \
      || { REASON="cannot write data/domain-nv-config ($(wc -c < "$conf") bytes)"; return 1; }
    xl unpause "$id" || { REASON="xl unpause $id failed"; return 1; }
    echo "wrote data/domain-nv-config ($(wc -c < "$conf") bytes) before unpausing"
  else
    timeout 300 xl create "$cfg" || { REASON="xl create $cfg failed"; return 1; }
    local id; id=$(domid_of "$NV_NAME")
  fi
  echo "domid $id, xl create took $((SECONDS - t0))s"
  local home=/local/domain/$id
  if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read $home/data/lab-init)\" = ok ] || xenstore-read $home/data/domain-nv/version"; then
    REASON="no $home/data/lab-init=ok nor data/domain-nv/version after ${GUEST_TMO}s (lab-devices: '$(xsr $home/data/lab-devices)'); console: $(nv_log 300)"
    return 1
  fi
  # its external NIC (xen-netfront in the NV domain, dom0 kernel netback on xenbr0)
  local ext=$home/device/vif/0
  [ -n "$(xsr $ext/state)" ] && { wait_for 60 sh -c "[ \"\$(xenstore-read $ext/state)\" = 4 ]";
    info "driver-domain-devices: external vif frontend state $(xsr $ext/state), backend state $(xsr "$(xsr $ext/backend)/state")"; }
  if [ "$(xsr $home/data/lab-init)" = ok ]; then
    info "driver-domain-devices: domid $id: $(xsr $home/data/lab-devices) ($((SECONDS - t0))s after xl create)"
  else
    info "driver-domain-devices: domid $id runs domain-nv (status version $(xsr $home/data/domain-nv/version))"
  fi
  xenstore-ls -f $home 2>&1 | grep -E '/data/' | head -40
}

# ---------------------------------------------------------------- vif-backend-appears
check_vif_backend_appears() {
  need driver-domain-devices || return 1
  local cfg=$LAB/cfg/$NV_REPLICA.cfg nv; nv=$(domid_of "$NV_NAME")
  [ -f "$cfg" ] || { REASON="no $cfg (run.sh renders it)"; return 1; }
  cat "$cfg"
  local t0=$SECONDS
  # Without a running backend, libxl gives up after its 10 s device timeout and destroys the replica;
  # the backend directory only lives that long. So: create in the background, poll xenstore.
  timeout 300 xl create "$cfg" > "$OUT/$NV_REPLICA-xl-create.log" 2>&1 &
  local xlpid=$! base=/local/domain/$nv/backend/vif seen="" fid=""
  local limit=$(( SECONDS + 180 ))
  while [ $SECONDS -lt $limit ]; do
    for fid in $(xenstore-list $base 2>/dev/null); do
      [ "$(xsr /local/domain/$fid/name)" = "$NV_REPLICA" ] || continue
      if [ "$(xsr $base/$fid/0/frontend-id)" = "$fid" ]; then seen=$fid; break 2; fi
    done
    kill -0 $xlpid 2>/dev/null || { sleep 1; [ -n "$(xenstore-list $base 2>/dev/null)" ] || break; }
    sleep 0.5
  done
  if [ -n "$seen" ]; then
    xenstore-ls -f $base/$seen/0 2>&1 | tee "$OUT/$NV_REPLICA-backend.txt"
    local fe=/local/domain/$seen/device/vif/0
    [ "$(xsr $fe/backend)" = "$base/$seen/0" ] || { REASON="frontend $fe/backend is '$(xsr $fe/backend)'"; return 1; }
    info "vif-backend-appears: $base/$seen/0 (replica domid $seen) $((SECONDS - t0))s after xl create; backend state $(xsr $base/$seen/0/state), frontend state $(xsr $fe/state)"
  fi
  # let xl finish (it fails after libxl's device timeout while nothing serves the vif)
  local i=0; while kill -0 $xlpid 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
  kill $xlpid 2>/dev/null; wait $xlpid; local xrc=$?
  info "vif-backend-appears: xl create exit status $xrc ($(grep -m1 -iE 'error|timed out' "$OUT/$NV_REPLICA-xl-create.log" | cut -c1-160))"
  [ -n "$seen" ] || { REASON="no $base/<replica-domid>/0 within 180s; xl create: $(tail -2 "$OUT/$NV_REPLICA-xl-create.log" | tr '\n' ' ')"; return 1; }
}

# ---------------------------------------------------------------- nv-vif-connected
# The replicas' vifs are served by domain-nv's netback in the NV domain: lab-r0 (created by
# vif-backend-appears) and lab-r1, lab-r2 (created here, in parallel) run, each vif is Connected
# (state 4) on both ends, and each replica's httpd is up.
check_nv_vif_connected() {
  need vif-backend-appears || return 1
  local nv r t0=$SECONDS; nv=$(domid_of "$NV_NAME")
  [ -n "$nv" ] || { REASON="NV domain $NV_NAME is not running; its console: $(nv_log)"; return 1; }
  local -A pid=()
  for r in $REPLICAS; do
    domid_of "$r" >/dev/null && continue
    timeout 300 xl create "$LAB/cfg/$r.cfg" > "$OUT/$r-xl-create.log" 2>&1 & pid[$r]=$!
  done
  for r in "${!pid[@]}"; do
    wait "${pid[$r]}" || echo "xl create $r: exit status $? ($(grep -m1 -iE 'error' "$OUT/$r-xl-create.log" | cut -c1-160))"
  done
  for r in $REPLICAS; do
    local rid; rid=$(domid_of "$r")
    [ -n "$rid" ] || { REASON="replica $r is not running (xl create: $(grep -m1 -iE 'error' "$OUT/$r-xl-create.log" | cut -c1-160)); NV console: $(nv_log)"; return 1; }
    local fe=/local/domain/$rid/device/vif/0 be=/local/domain/$nv/backend/vif/$rid/0
    if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read $fe/state)\" = 4 ] && [ \"\$(xenstore-read $be/state)\" = 4 ]"; then
      REASON="$r: vif not Connected after ${GUEST_TMO}s: frontend state=$(xsr $fe/state) backend state=$(xsr $be/state); NV console: $(nv_log)"
      xenstore-ls -f "$be"; return 1
    fi
    info "nv-vif-connected: $r (domid $rid) vif $(xsr $be/vifname) Connected 4/4 $((SECONDS - t0))s after the check started"
  done
  for r in $REPLICAS; do
    wait_for "$GUEST_TMO" grep -q "httpd on" "/var/log/xen/console/guest-$r.log" \
      || { REASON="replica $r did not report its httpd up"; return 1; }
  done
  info "nv-vif-connected: every replica's httpd up $((SECONDS - t0))s after the check started"
  nv_status
}

# ---------------------------------------------------------------- client-through-nv
check_client_through_nv() {
  need nv-vif-connected || return 1
  local t0=$SECONDS
  # domain-nv reaches the replicas once their links are up: the first GETs may still be refused
  if ! wait_for 180 sh -c "timeout 20 busybox wget -q -O /tmp/index.html http://$NV_ADDR/index.html && grep -qx 'xenlab-replica ok' /tmp/index.html"; then
    REASON="no majority page from http://$NV_ADDR/index.html within 180s (got '$(head -c 80 /tmp/index.html 2>/dev/null)'); NV console: $(nv_log)"
    nv_status; ip neigh; return 1
  fi
  info "client-through-nv: GET http://$NV_ADDR/index.html = '$(cat /tmp/index.html)' $((SECONDS - t0))s after the check started"
  local want=$(( LAB_BIG_MB * 1048576 )) t1 t2 got sum
  rm -f /tmp/big; t1=$(date +%s.%N)
  get "http://$NV_ADDR/big" /tmp/big || { REASON="wget of http://$NV_ADDR/big failed ($(stat -c %s /tmp/big 2>/dev/null) bytes); NV console: $(nv_log)"; nv_status; return 1; }
  t2=$(date +%s.%N)
  got=$(stat -c %s /tmp/big); sum=$(md5sum < /tmp/big | cut -d' ' -f1); rm -f /tmp/big
  [ "$got" = "$want" ] || { REASON="got $got bytes, want $want"; return 1; }
  [ "$sum" = "$(want_md5)" ] || { REASON="md5 $sum, want $(want_md5)"; return 1; }
  local mbs; mbs=$(awk -v b="$got" -v a="$t1" -v z="$t2" 'BEGIN { printf "%.3f", b / (z - a) / 1e6 }')
  local line; line=$(awk -v b="$got" -v a="$t1" -v z="$t2" 'BEGIN { s = z - a; printf "%.2f MB/s (%d bytes in %.2f s, md5 ok)", b / s / 1e6, b, s }')
  echo "METRIC nv-http-get $line" >&3; echo "METRIC nv-http-get $line"
  if [ -s /tmp/dom0-mbs ]; then
    line=$(awk -v n="$mbs" -v d="$(cat /tmp/dom0-mbs)" 'BEGIN { printf "%.3f (through domain-nv + our netback %.2f MB/s / dom0 kernel netback direct %.2f MB/s, same run)", n / d, n, d }')
    echo "METRIC nv-vs-dom0-netback-ratio $line" >&3; echo "METRIC nv-vs-dom0-netback-ratio $line"
  fi
  nv_status
}

# ---------------------------------------------------------------- faulty-replica-masked
# lab-r2 was booted with lab_faulty=1: its /index.html differs from lab-r0's and lab-r1's.
check_faulty_replica_masked() {
  need client-through-nv || return 1
  local nv base; nv=$(domid_of "$NV_NAME"); base=/local/domain/$nv/data/domain-nv/replicas
  rm -f /tmp/index.html
  GET_TMO=30 get "http://$NV_ADDR/index.html" /tmp/index.html || { REASON="GET /index.html failed"; return 1; }
  grep -qx 'xenlab-replica ok' /tmp/index.html || { REASON="client got '$(head -c 80 /tmp/index.html)', not the majority page"; return 1; }
  if ! wait_for 10 sh -c "[ \"\$(xenstore-read $base/r2/state)\" = faulty ]"; then
    REASON="$base/r2/state is '$(xsr $base/r2/state)', not faulty"; nv_status; return 1
  fi
  # r0 and r1 must never disagree with the quorum (a straggler fault under TCG load is only reported)
  local r f
  for r in r0 r1; do
    for f in $(xenstore-list "$base/$r/faults" 2>/dev/null); do
      case "$(xsr "$base/$r/faults/$f")" in
        *value-mismatch*|*no-quorum*) REASON="healthy replica $r has a fault: $(xsr "$base/$r/faults/$f")"; nv_status; return 1 ;;
        *) info "faulty-replica-masked: $r: $(xsr "$base/$r/faults/$f" | cut -c1-120)" ;;
      esac
    done
  done
  info "faulty-replica-masked: client got the majority page; r2 state $(xsr $base/r2/state) (fault: $(xsr $base/r2/faults/0 | cut -c1-120)); r0 $(xsr $base/r0/state), r1 $(xsr $base/r1/state)"
  nv_status
}

# ---------------------------------------------------------------- replica-destroyed-mid-stream
check_replica_destroyed_mid_stream() {
  need client-through-nv || return 1
  local victim=lab-r0 want=$(( LAB_BIG_MB * 1048576 )) t1 t2
  domid_of $victim >/dev/null || { REASON="$victim is not running"; return 1; }
  rm -f /tmp/big; t1=$(date +%s.%N)
  get "http://$NV_ADDR/big" /tmp/big & local wpid=$!
  # destroy once a quarter of the file has arrived
  local limit=$(( SECONDS + 300 ))
  while [ $SECONDS -lt $limit ] && kill -0 $wpid 2>/dev/null && [ "$(stat -c %s /tmp/big 2>/dev/null || echo 0)" -lt $(( want / 4 )) ]; do sleep 0.2; done
  local at; at=$(stat -c %s /tmp/big 2>/dev/null || echo 0)
  kill -0 $wpid 2>/dev/null || { wait $wpid; REASON="the download ended (status $?, $at bytes) before the replica could be destroyed"; return 1; }
  timeout 120 xl destroy $victim || { REASON="xl destroy $victim failed"; kill $wpid; return 1; }
  info "replica-destroyed-mid-stream: destroyed $victim at $at of $want bytes"
  wait $wpid; local rc=$?; t2=$(date +%s.%N)
  local got sum; got=$(stat -c %s /tmp/big 2>/dev/null || echo 0); sum=$(md5sum < /tmp/big | cut -d' ' -f1); rm -f /tmp/big
  [ $rc = 0 ] || { REASON="wget failed (status $rc) after $got bytes; NV console: $(nv_log)"; nv_status; return 1; }
  [ "$got" = "$want" ] || { REASON="got $got bytes, want $want"; return 1; }
  [ "$sum" = "$(want_md5)" ] || { REASON="md5 $sum, want $(want_md5)"; return 1; }
  local line; line=$(awk -v b="$got" -v a="$t1" -v z="$t2" 'BEGIN { s = z - a; printf "%.2f MB/s (%d bytes in %.2f s, md5 ok, %s destroyed at byte %d)", b / s / 1e6, b, s, "'$victim'", '"$at"' }')
  echo "METRIC nv-http-get-replica-destroyed $line" >&3; echo "METRIC nv-http-get-replica-destroyed $line"
  local nv; nv=$(domid_of "$NV_NAME")
  info "replica-destroyed-mid-stream: r0 state now $(xsr /local/domain/$nv/data/domain-nv/replicas/r0/state), link $(xsr /local/domain/$nv/data/domain-nv/replicas/r0/link)"
  nv_status
}

# ---------------------------------------------------------------- teardown
check_teardown() {
  need xen-boots || return 1
  xl list
  local d
  # replicas first, then the driver domain that serves them
  for d in $(xl list | awk 'NR > 2 { print $1 }' | grep -v -x "$NV_NAME"); do timeout 120 xl destroy "$d" || echo "xl destroy $d failed"; done
  local nv; nv=$(domid_of "$NV_NAME") && {
    # what the replicas left in the NV domain's backend tree (domain-nv's netback cleans up its side)
    sleep 2; echo "NV backend tree after the replicas' destruction:"; xenstore-ls -fp "/local/domain/$nv/backend" 2>&1 | head -40
    timeout 120 xl destroy "$NV_NAME" || echo "xl destroy $NV_NAME failed"; }
  if ! wait_for 120 sh -c '[ "$(xl list | awk "NR > 1" | wc -l)" = 1 ] && xl list | grep -q "^Domain-0 "'; then
    REASON="left over: $(xl list | awk 'NR > 2 { print $1 }' | tr '\n' ' ')"; return 1
  fi
  xl list
  local left; left=$(xenstore-list /local/domain 2>/dev/null | grep -vx 0 | tr '\n' ' ')
  [ -z "$left" ] || info "teardown: xenstore still lists /local/domain/{$left}"
}

echo "LAB-CHECKS start at dom0 uptime $(ut)s: $LAB_CHECKS"
for c in $LAB_CHECKS; do run_check "$c"; done
echo "LAB-CHECKS done at dom0 uptime $(ut)s: $FAILED failed"
exit $FAILED
