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
#   linux-driver-domain    the same GET from a replica behind a Linux driver domain (kernel netback
#                          and routing): the baseline for the NV domain (checks-baseline.sh)
#   nv-single-replica      the same GET through domain-nv serving one replica (group solo), and its
#                          ratio to linux-driver-domain (checks-baseline.sh)
#   nvctl-up               `nvctl up /lab/xenlab-group.yaml` (spec: xl-configs/xenlab-group.yaml) with the
#                          static nvctl: creates the NV driver domain lab-nv (driver_domain=1, its
#                          /init the static domain-nv: config from xenstore, no xen-netback module),
#                          hands it the config, waits for ready, creates lab-r0..lab-r2 (vif
#                          backend=lab-nv) and waits until domain-nv reports every replica live
#   nv-vif-connected       each replica's vif is state 4 on both ends, served by domain-nv's netback
#                          in lab-nv (vifname r0..r2), and each replica's httpd is up
#   client-through-nv      dom0 -> 192.168.77.10 (domain-nv on the NV domain's external NIC) ->
#                          replicas' busybox httpd (`protocol: http`): /index.html is the replicas'
#                          page with a real Date, /big has the right md5; METRIC lines: throughput
#                          (and the bytes port 8080's, nc without Date), lab-nv's CPU seconds per
#                          MB, and the ratios to dom0-netback-throughput and to linux-driver-domain
#   faulty-replica-masked  lab-r2 booted the faulty image (its /index.html differs): the client still
#                          gets the majority page; domain-nv's status and `nvctl status` say r2 is faulty
#                          (excluded: it votes on no new connection)
#   udp-through-nv         DNS over UDP through the group (`transport: udp`, `protocol: dns`): busybox
#                          nslookup from dom0 gets www.lab.test and mail.lab.test right (never r2's
#                          wrong mail address) and NXDOMAIN for an unknown name; the service's datagram
#                          counters count the questions and answers; r0 and r1 have no fault (r2, excluded
#                          since client-through-nv, gets no questions: its wrong answer is not outvoted here)
#   stateful-counter       the replicas' counter (port 7000) through domain-nv: 10 INC requests
#                          answer 1..10 (r0 and r1 vote; r2 is excluded)
#   concurrent-writers     4 clients at once POST 5 times each to the replicas' stateful HTTP
#                          resource /cgi-bin/count (`protocol: http`: conflicting requests ordered):
#                          the answers are 1..20, each once, and r0 and r1 agree (no fault)
#   nvctl-replace-clone    a slow /big download starts (it runs on across this check and the next);
#                          `nvctl replace lab r2 --clone-from r1`: xl save -c of lab-r1, xl restore
#                          as lab-r2-g1 on its own link; the checkpoint file is gone, lab-r2 is
#                          retired; 25 more INCs answer 11..35 and r2-g1 becomes live (a copy holds
#                          the counter's state, so it agrees)
#   config-change-live     `nvctl up` with a changed spec (a live key): domain-nv applies it in place;
#                          then the slow download, open since before the replace, completes
#                          byte-exact on its one connection
#   nvctl-replace-fresh    `nvctl replace lab r1` (spec `state: fresh`): r1-g1 boots empty, joins on
#                          probation and is never promoted (its counter disagrees: it stays out,
#                          joining or excluded), while 5 INCs answer 36..40 (r0 and r2-g1 vote)
#   replica-destroyed-mid-stream  `xl destroy lab-r0` during a /big download. One member is left (r1
#                          when the checks above did not run, else r2-g1), fewer than the quorum of
#                          2: the download stops (a reset), every byte the client got is right,
#                          domain-nv counts a no-quorum reset for the service and blames nobody
#   nvctl-replace          `nvctl replace lab r0` (its domain was destroyed): a new instance boots on a
#                          link of its own and joins on probation: compared, never voting (it cannot
#                          pass probation with one member left); lab-r0 is gone; a GET gets no
#                          page (no quorum), never r2's faulty one
#   teardown               `nvctl down lab` and `xl destroy` of the baseline replica and of the
#                          Linux driver domain and its replica; `xl list`
#                          shows only Domain-0
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LAB=${LAB:-/lab}; OUT=$LAB/out; mkdir -p "$OUT"
[ -f "$LAB/lab.env" ] && . "$LAB/lab.env"
# run.sh reads this line too (the default of LAB_CHECKS)
DEFAULT_CHECKS="xen-boots replica-netfront dom0-netback-throughput linux-driver-domain nv-single-replica nvctl-up nv-vif-connected client-through-nv faulty-replica-masked udp-through-nv stateful-counter concurrent-writers nvctl-replace-clone config-change-live nvctl-replace-fresh replica-destroyed-mid-stream nvctl-replace teardown"
LAB_CHECKS=${LAB_CHECKS:-$DEFAULT_CHECKS}
LAB_BIG_MB=${LAB_BIG_MB:-32}
GUEST_TMO=${GUEST_TMO:-240}          # seconds for a guest to come up (TCG: 25-60 s seen, once 326 s)
GROUP=lab                    # the group of xenlab-group.yaml: domains lab-nv, lab-r0..lab-r2
NV_NAME=$GROUP-nv
NVCTL=$LAB/nvctl
SPEC=$LAB/xenlab-group.yaml
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
NV_ADDR=192.168.77.10        # domain-nv's external address (xenlab-group.yaml); dom0 has .1 on xenbr0
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
# metric NAME TEXT: a METRIC line, on the console and in the check's log
metric() { echo "METRIC $*" >&3; echo "METRIC $*"; }
# cpu_of DOMAIN: its CPU seconds so far: `xl list`'s Time(s), the hypervisor's count that xentop
# shows as CPU(sec), but in tenths of a second where xentop prints whole seconds
cpu_of() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $6 }'; }
# measure_get URL DOMAIN NAME [NOTE]: GET /big from URL, check its size and md5; METRIC
# NAME-http-get (MB/s, also to /tmp/NAME-mbs) and NAME-cpu-per-mb (DOMAIN's CPU seconds per MB
# over the GET), NOTE added to both
measure_get() {
  local want=$(( LAB_BIG_MB * 1048576 )) t1 t2 c1 c2 got sum
  rm -f /tmp/big; c1=$(cpu_of "$2"); t1=$(date +%s.%N)
  get "$1" /tmp/big || { REASON="wget of $1 failed ($(stat -c %s /tmp/big 2>/dev/null) bytes)"; return 1; }
  t2=$(date +%s.%N); c2=$(cpu_of "$2")
  got=$(stat -c %s /tmp/big); sum=$(md5sum < /tmp/big | cut -d' ' -f1); rm -f /tmp/big
  [ "$got" = "$want" ] || { REASON="got $got bytes, want $want"; return 1; }
  [ "$sum" = "$(want_md5)" ] || { REASON="md5 $sum, want $(want_md5)"; return 1; }
  awk -v b="$got" -v a="$t1" -v z="$t2" 'BEGIN { printf "%.3f\n", b / (z - a) / 1e6 }' > "/tmp/$3-mbs"
  metric "$3-http-get" "$(awk -v b="$got" -v a="$t1" -v z="$t2" -v n="${4:+, $4}" 'BEGIN { s = z - a; printf "%.2f MB/s (%d bytes in %.2f s, md5 ok%s)", b / s / 1e6, b, s, n }')"
  [ -n "$c1" ] && [ -n "$c2" ] || { echo "no CPU time of $2 in xl list"; return 0; }
  metric "$3-cpu-per-mb" "$(awk -v b="$got" -v a="$c1" -v z="$c2" -v d="$2" -v n="${4:+, $4}" 'BEGIN { printf "%.3f s/MB (%s: %.1f CPU s for %.1f MB; xl list Time(s), 0.1 s steps%s)", (z - a) / (b / 1e6), d, z - a, b / 1e6, n }')"
}
# counter CMD: one request (INC, GET) to the group's counter (port 7000) over its own TCP
# connection (bash's /dev/tcp); prints the answer without its newline (nothing after a reset)
counter() {
  local a
  exec 6<>"/dev/tcp/$NV_ADDR/7000" || return 1
  printf '%s\n' "$1" >&6
  a=$(timeout 60 cat <&6); exec 6<&-
  printf '%s' "$a"
}
# count_answer N: the counter's answer for the value N
count_answer() { printf 'count %0249d' "$1"; }
# incs FROM TO [INSTANCE]: INC requests whose answers must be FROM..TO; with INSTANCE, its state
# after each answer goes to /tmp/incs.states. Sets REASON and fails at the first wrong answer.
incs() {
  local n a nv; nv=$(domid_of "$NV_NAME"); : > /tmp/incs.states
  for n in $(seq "$1" "$2"); do
    a=$(counter INC)
    [ "$a" = "$(count_answer "$n")" ] || { REASON="INC answered '$(echo "$a" | tr -s 0 | cut -c1-40)', want count $n"; nv_status; return 1; }
    [ -z "${3:-}" ] || echo "$n $(xsr "/local/domain/$nv/data/domain-nv/replicas/$3/state")" >> /tmp/incs.states
  done
}
# http_head PATH: the head of domain-nv's reply to GET PATH on port 80 (HTTP/1.0, one connection
# over bash's /dev/tcp), without CRs
http_head() {
  exec 7<>"/dev/tcp/$NV_ADDR/80" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&7
  timeout 30 cat <&7 | tr -d '\r' | sed '/^$/q'; exec 7<&-
}
# rstate NAME: domain-nv's health of replica instance NAME
rstate() { xsr "/local/domain/$(domid_of "$NV_NAME")/data/domain-nv/replicas/$1/state"; }
# slow_get PATH OUT FLAG: HTTP/1.0 GET of PATH from domain-nv over one TCP connection (bash's
# /dev/tcp), headers and body to OUT; reads 16 KiB a second while FLAG exists (so the
# download lasts across what a check does meanwhile), then the rest at once (within 1200 s)
slow_get() {
  exec 5<>"/dev/tcp/$NV_ADDR/80" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&5
  : > "$2"; local size=-1 now
  while [ -e "$3" ]; do
    dd bs=16384 count=1 iflag=fullblock status=none <&5 >> "$2" || return 1
    now=$(stat -c %s "$2"); [ "$now" = "$size" ] && return 0; size=$now
    sleep 1
  done
  timeout 1200 cat <&5 >> "$2"; local rc=$?; exec 5<&-; return $rc
}
# nvctl_logged LOG ARGS...: runs nvctl, its progress (stderr) and output to LOG with the seconds
# since the start of the command in front of every line; returns nvctl's exit status
nvctl_logged() {
  local log=$1 t0=$SECONDS; shift
  echo "\$ nvctl $*" > "$log"
  "$NVCTL" "$@" 2>&1 | while IFS= read -r l; do echo "[+$((SECONDS - t0))s] $l"; done >> "$log"
  return "${PIPESTATUS[0]}"
}
# seconds_at LOG PATTERN: the [+Ns] of the first line of LOG matching PATTERN
seconds_at() { grep -m1 -e "$2" "$1" | sed -n 's/^\[+\([0-9]*\)s\].*/\1/p'; }

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
  local name=$GROUP-rk cfg=/run/lab-rk.cfg
  cat > $cfg <<EOC
name = "$name"
type = "pv"
kernel = "$KERNEL"
ramdisk = "$LAB/replica-initrd.gz"
extra = "console=hvc0 lab_bigmb=$LAB_BIG_MB ip=10.0.0.2::10.0.0.1:255.255.255.0:$name:eth0:off"
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

# ---------------------------------------------------------------- nvctl-up
check_nvctl_up() {
  need xen-boots || return 1
  "$NVCTL" render "$SPEC" -o /run/lab-rendered && head -n 100 /run/lab-rendered/* \
    || { REASON="nvctl render $SPEC failed"; return 1; }
  local t0=$SECONDS log=$OUT/nvctl-up.out
  # --timeout bounds every wait of nvctl (a replica booting under TCG: 25-60 s seen, once 326 s)
  nvctl_logged "$log" --timeout "$GUEST_TMO" up "$SPEC"; local rc=$?
  cat "$log"
  [ $rc = 0 ] || { REASON="nvctl up: exit status $rc: $(tail -1 "$log" | cut -c1-200); NV console: $(nv_log 300)"; return 1; }
  info "nvctl-up: NV domain created at +$(seconds_at "$log" "NV domain $NV_NAME: created")s, ready at +$(seconds_at "$log" "NV domain $NV_NAME: ready")s, replicas created by +$(seconds_at "$log" "waiting for domain-nv to report every replica live")s, group up (every replica live) at +$((SECONDS - t0))s"
  local nv; nv=$(domid_of "$NV_NAME") || { REASON="no domain $NV_NAME after nvctl up"; return 1; }
  local home=/local/domain/$nv
  info "nvctl-up: $NV_NAME (domid $nv) runs domain-nv (status version $(xsr $home/data/domain-nv/version), ready $(xsr $home/data/domain-nv/ready)); config $(xsr $home/data/domain-nv-config | wc -c) bytes"
  # its external NIC (xen-netfront in the NV domain, dom0 kernel netback on xenbr0)
  local ext=$home/device/vif/0
  wait_for 60 sh -c "[ \"\$(xenstore-read $ext/state)\" = 4 ]" \
    || { REASON="the NV domain's external vif is in state '$(xsr $ext/state)', not 4"; return 1; }
  "$NVCTL" status "$GROUP" || { REASON="nvctl status $GROUP failed"; return 1; }
}

# ---------------------------------------------------------------- nv-vif-connected
# The replicas' vifs are served by domain-nv's netback in the NV domain: each is Connected (state 4)
# on both ends, under the NV domain's backend tree with the vifname nvctl gave it, and each
# replica's httpd is up.
check_nv_vif_connected() {
  need nvctl-up || return 1
  local nv r t0=$SECONDS; nv=$(domid_of "$NV_NAME")
  for r in $REPLICAS; do
    local rid; rid=$(domid_of "$r") || { REASON="replica $r is not running; NV console: $(nv_log)"; return 1; }
    local fe=/local/domain/$rid/device/vif/0 be=/local/domain/$nv/backend/vif/$rid/0
    [ "$(xsr $fe/backend)" = "$be" ] || { REASON="$r: frontend's backend is '$(xsr $fe/backend)', not $be"; return 1; }
    if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read $fe/state)\" = 4 ] && [ \"\$(xenstore-read $be/state)\" = 4 ]"; then
      REASON="$r: vif not Connected after ${GUEST_TMO}s: frontend state=$(xsr $fe/state) backend state=$(xsr $be/state); NV console: $(nv_log)"
      xenstore-ls -f "$be"; return 1
    fi
    [ "$(xsr $be/vifname)" = "${r#"$GROUP"-}" ] || { REASON="$r: vifname '$(xsr $be/vifname)'"; return 1; }
    info "nv-vif-connected: $r (domid $rid) vif $(xsr $be/vifname) Connected 4/4 (backend in $NV_NAME, hotplug-status $(xsr $be/hotplug-status))"
  done
  for r in $REPLICAS; do
    wait_for 60 grep -q "ethtool -k eth0:" "/var/log/xen/console/guest-$r.log"
    info "nv-vif-connected: offloads of $r: $(offloads "$r")"
  done
  for r in $REPLICAS; do
    wait_for "$GUEST_TMO" grep -q "httpd on" "/var/log/xen/console/guest-$r.log" \
      || { REASON="replica $r did not report its httpd up"; return 1; }
  done
  info "nv-vif-connected: every replica's httpd up ($((SECONDS - t0))s after the check started)"
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
  # `protocol: http`: the client gets one replica's real Date, not the comparison form
  local date; date=$(http_head /index.html | sed -n 's/^Date: //p')
  case "$date" in
    *" GMT") [ "$date" != "Thu, 01 Jan 1970 00:00:00 GMT" ] || { REASON="the released Date is the comparison form: $date"; return 1; } ;;
    *) REASON="no Date header in the released reply ('$date')"; return 1 ;;
  esac
  info "client-through-nv: released Date: $date"
  # the same /big through the `bytes` port 8080 (the replicas' nc /bin/serve: HTTP/1.0, no Date),
  # the rate to compare with `protocol: http` in the same run
  local t1 t2 got line
  rm -f /tmp/big; t1=$(date +%s.%N)
  if GET_TMO=300 get "http://$NV_ADDR:8080/big" /tmp/big; then
    t2=$(date +%s.%N); got=$(stat -c %s /tmp/big)
    line=$(awk -v b="$got" -v a="$t1" -v z="$t2" 'BEGIN { s = z - a; printf "%.2f MB/s (%d bytes in %.2f s)", b / s / 1e6, b, s }')
    echo "METRIC nv-bytes-get $line" >&3; echo "METRIC nv-bytes-get $line"
  else
    info "client-through-nv: GET of /big through the bytes port 8080 failed ($(stat -c %s /tmp/big 2>/dev/null) bytes)"
  fi
  rm -f /tmp/big
  ldd_round "before client-through-nv"
  measure_get "http://$NV_ADDR/big" "$NV_NAME" nv || { REASON="$REASON; NV console: $(nv_log)"; nv_status; return 1; }
  local mbs; mbs=$(cat /tmp/nv-mbs)
  # netback's per-vif counters after the transfer (GSO frames and slots each way, copy calls,
  # notifications, drops by reason), from domain-nv's status in xenstore
  info "client-through-nv: netback counters: $(xenstore-ls "/local/domain/$(domid_of "$NV_NAME")/data/domain-nv/vifs" 2>/dev/null | tr '\n' ';' | cut -c1-3000)"
  # the external link's (eth0 through AF_PACKET): frames and bytes each way, rx-large (GRO'd
  # frames received), tx-gso (64 KiB segments sent for netfront's TSO), tx-dropped (send queue full)
  info "client-through-nv: external link counters: $(xenstore-read "/local/domain/$(domid_of "$NV_NAME")/data/domain-nv/links/external" 2>/dev/null)"
  if [ -s /tmp/dom0-mbs ]; then
    line=$(awk -v n="$mbs" -v d="$(cat /tmp/dom0-mbs)" 'BEGIN { printf "%.3f (through domain-nv + our netback %.2f MB/s / dom0 kernel netback direct %.2f MB/s, same run)", n / d, n, d }')
    echo "METRIC nv-vs-dom0-netback-ratio $line" >&3; echo "METRIC nv-vs-dom0-netback-ratio $line"
  fi
  ldd_round "after client-through-nv"
  ratio_to_linux nv "3-replica group, 2 voting after r2's exclusion"
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
  # what the operator sees
  local st; st=$("$NVCTL" status "$GROUP" 2>&1); echo "$st"
  echo "$st" | grep -E '^r2 ' | grep -qw faulty || { REASON="nvctl status does not show r2 faulty: $(echo "$st" | grep -E '^r2 ')"; return 1; }
  info "nvctl-status: $(echo "$st" | grep -E '^r2 ' | tr -s ' ' | cut -c1-160)"
}

# ---------------------------------------------------------------- stateful-counter
# The replicas' counter (port 7000, /bin/count in mk-guests.sh): every answer depends on all earlier
# requests. r0 and r1 vote (r2 is excluded since faulty-replica-masked), so the answers are 1..10.
check_stateful_counter() {
  need faulty-replica-masked || return 1
  local t0=$SECONDS
  incs 1 10 || return 1
  info "stateful-counter: 10 INCs through domain-nv answered 1..10 in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- concurrent-writers
# WRITERS clients at once, each POSTing WRITES times (a connection each) to the replicas' stateful
# HTTP resource /cgi-bin/count (busybox httpd CGI: POST adds one and answers the new count) on
# the `protocol: http` port. domain-nv orders conflicting requests (writes of one path), so every
# replica applies them in one order: the answers are 1..WRITERS*WRITES, each once, a GET then
# answers the total, and r0 and r1 (r2 is excluded) have no value-mismatch or no-quorum fault.
WRITERS=4; WRITES=5
# post_count OUT: WRITES POSTs to /cgi-bin/count, one answer per line to OUT ("-" if one failed)
post_count() {
  local k a
  for k in $(seq "$WRITES"); do
    a=$(timeout 60 busybox wget -q -O - --post-data=INC "http://$NV_ADDR/cgi-bin/count" 2>/dev/null) || a=-
    echo "$a" >> "$1"
  done
}
check_concurrent_writers() {
  need faulty-replica-masked || return 1
  local t0=$SECONDS c pids="" total=$((WRITERS * WRITES)) nq base
  base=/local/domain/$(domid_of "$NV_NAME")/data/domain-nv
  nq=$(xsr $base/services/http/no-quorum)
  rm -f /tmp/writer.*
  for c in $(seq "$WRITERS"); do post_count "/tmp/writer.$c" & pids="$pids $!"; done
  # shellcheck disable=SC2086
  wait $pids
  cat /tmp/writer.*
  local answers want; answers=$(cat /tmp/writer.* | sort | tr '\n' ' ')
  want=$(seq "$total" | sed 's/^/count /' | sort | tr '\n' ' ')
  [ "$answers" = "$want" ] || { REASON="the $total concurrent POSTs answered '$(echo "$answers" | cut -c1-200)', want each of count 1..$total once"; nv_status; return 1; }
  local a; a=$(timeout 60 busybox wget -q -O - "http://$NV_ADDR/cgi-bin/count" 2>&1)
  [ "$a" = "count $total" ] || { REASON="GET /cgi-bin/count after the writers answered '$a', want count $total"; nv_status; return 1; }
  healthy_r0_r1 concurrent-writers || { nv_status; return 1; }
  [ "$(xsr $base/services/http/no-quorum)" = "$nq" ] || { REASON="services/http/no-quorum went from $nq to $(xsr $base/services/http/no-quorum)"; nv_status; return 1; }
  info "concurrent-writers: $WRITERS clients x $WRITES POSTs at once answered count 1..$total, each once, in $((SECONDS - t0))s; the replicas agree on count $total (services/http: masked $(xsr $base/services/http/masked), no-quorum $nq)"
}

# ---------------------------------------------------------------- nvctl-replace-clone
# r2 (faulty, excluded) is replaced by a memory copy of r1, which holds the counter's state: the
# copy agrees and becomes live. A slow /big download (SLOW_PID) starts first and runs on across
# this replace and the config change of config-change-live, which checks its bytes.
check_nvctl_replace_clone() {
  need stateful-counter || return 1
  local t0=$SECONDS log=$OUT/nvctl-replace-clone.out
  touch /tmp/slow; rm -f /tmp/slow.out
  slow_get /big /tmp/slow.out /tmp/slow & SLOW_PID=$!
  wait_for 60 sh -c '[ "$(stat -c %s /tmp/slow.out 2>/dev/null || echo 0)" -gt 16384 ]' \
    || { REASON="the slow download did not start ($(stat -c %s /tmp/slow.out 2>/dev/null) bytes)"; return 1; }
  nvctl_logged "$log" --timeout "$GUEST_TMO" replace "$GROUP" r2 --clone-from r1; local rc=$?
  cat "$log"
  [ $rc = 0 ] || { REASON="nvctl replace --clone-from: exit status $rc: $(tail -1 "$log" | cut -c1-200); NV console: $(nv_log 300)"; nv_status; return 1; }
  info "nvctl-replace-clone: checkpoint of $GROUP-r1 at +$(seconds_at "$log" "checkpointing")s, restore at +$(seconds_at "$log" "restoring")s, nvctl done at +$((SECONDS - t0))s"
  local st; st=$("$NVCTL" status "$GROUP" 2>&1); echo "$st"
  local inst; inst=$(echo "$st" | grep -oE '^r2-g[0-9]+' | head -1)
  [ -n "$inst" ] || { REASON="no new instance of r2 in nvctl status"; return 1; }
  ! domid_of "$GROUP-r2" >/dev/null || { REASON="the old instance $GROUP-r2 still runs"; return 1; }
  domid_of "$GROUP-$inst" >/dev/null || { REASON="$GROUP-$inst is not running"; return 1; }
  local left; left=$(ls /var/lib/nvctl/$GROUP/checkpoints 2>/dev/null)
  [ -z "$left" ] || { REASON="checkpoint files left: $left"; return 1; }
  info "nvctl-replace-clone: $inst ($GROUP-$inst) $(rstate "$inst") after nvctl replace; $GROUP-r2 retired; no checkpoint file left"
  kill -0 "$SLOW_PID" 2>/dev/null || { REASON="the slow download ended during the replace ($(stat -c %s /tmp/slow.out) bytes)"; return 1; }
  # the copy is compared on every new connection and, agreeing, passes probation
  incs 11 35 "$inst" || return 1
  wait_for 60 sh -c "[ \"\$(xenstore-read /local/domain/$(domid_of "$NV_NAME")/data/domain-nv/replicas/$inst/state)\" = live ]" \
    || { REASON="$inst is $(rstate "$inst") after 25 agreeing requests, not live"; nv_status; return 1; }
  info "nvctl-replace-clone: INC 11..35 answered right; $inst live (states after each answer: $(awk '{print $2}' /tmp/incs.states | uniq -c | tr -s ' ' | tr '\n' ','))"
  CLONE=$inst
}

# ---------------------------------------------------------------- config-change-live
# A config change (a live key of the spec) through `nvctl up` while the slow download of
# nvctl-replace-clone still runs: domain-nv applies it in place, and the download, open since
# before the replace, completes byte-exact on its connection.
check_config_change_live() {
  need nvctl-replace-clone || return 1
  kill -0 "$SLOW_PID" 2>/dev/null || { REASON="the slow download is over before the config change ($(stat -c %s /tmp/slow.out) bytes)"; return 1; }
  local con=/var/log/xen/console/guest-$NV_NAME.log before
  before=$(grep -c "config changed in place" "$con")
  sed 's/straggler-timeout-ms: 60000/straggler-timeout-ms: 50000/' "$SPEC" > /run/lab-changed.yaml
  grep -q 'straggler-timeout-ms: 50000' /run/lab-changed.yaml || { REASON="cannot change the spec"; return 1; }
  nvctl_logged "$OUT/nvctl-up-changed.out" --timeout "$GUEST_TMO" up /run/lab-changed.yaml; local rc=$?
  cat "$OUT/nvctl-up-changed.out"
  [ $rc = 0 ] || { REASON="nvctl up of the changed spec: exit status $rc: $(tail -1 "$OUT/nvctl-up-changed.out" | cut -c1-200)"; return 1; }
  wait_for 30 sh -c "[ \"\$(grep -c 'config changed in place' $con)\" -gt $before ]" \
    || { REASON="domain-nv logged no config change in place; NV console: $(nv_log)"; return 1; }
  local applied; applied=$(grep "config changed in place" "$con" | tail -1 | tr -cd '\40-\176' | cut -c1-160)
  kill -0 "$SLOW_PID" 2>/dev/null || { REASON="the slow download ended before the config change was applied ($(stat -c %s /tmp/slow.out) bytes)"; return 1; }
  info "config-change-live: straggler-timeout-ms 60000 -> 50000 applied in place while the download ran ($(stat -c %s /tmp/slow.out) bytes so far): $applied"
  rm -f /tmp/slow; wait "$SLOW_PID"; rc=$?
  local want=$(( LAB_BIG_MB * 1048576 )) head="HTTP/1.1 200 OK"
  # busybox httpd's head: up to the first empty line
  local hlen; hlen=$(head -c 4096 /tmp/slow.out | grep -obUaPz '\r\n\r\n' | head -1 | cut -d: -f1)
  hlen=$(( ${hlen:-0} + 4 ))
  local got; got=$(stat -c %s /tmp/slow.out)
  [ $rc = 0 ] && [ "$got" = $((hlen + want)) ] || { REASON="the download ended with status $rc after $got bytes, want $((hlen + want))"; nv_status; return 1; }
  head -c ${#head} /tmp/slow.out | grep -qx "$head" || { REASON="no HTTP 200 header: '$(head -c 40 /tmp/slow.out)'"; return 1; }
  local sum; sum=$(tail -c "$want" /tmp/slow.out | md5sum | cut -d' ' -f1); rm -f /tmp/slow.out
  [ "$sum" = "$(want_md5)" ] || { REASON="md5 $sum, want $(want_md5)"; return 1; }
  info "config-change-live: the download open across nvctl replace --clone-from and the config change completed byte-exact ($want bytes, md5 ok)"
}

# ---------------------------------------------------------------- nvctl-replace-fresh
# `nvctl replace lab r1` with the spec's default `state: fresh`: r1-g1 boots with its counter at 0.
# It joins on probation and never agrees, so it is never promoted; the clients' answers stay
# right (r0 and the clone of nvctl-replace-clone vote).
check_nvctl_replace_fresh() {
  need config-change-live || return 1
  local t0=$SECONDS log=$OUT/nvctl-replace-fresh.out
  nvctl_logged "$log" --timeout "$GUEST_TMO" replace "$GROUP" r1; local rc=$?
  cat "$log"
  [ $rc = 0 ] || { REASON="nvctl replace: exit status $rc: $(tail -1 "$log" | cut -c1-200); NV console: $(nv_log 300)"; nv_status; return 1; }
  local inst; inst=$("$NVCTL" status "$GROUP" 2>&1 | grep -oE '^r1-g[0-9]+' | head -1)
  [ -n "$inst" ] || { REASON="no new instance of r1 in nvctl status"; return 1; }
  [ "$(rstate "$inst")" = joining ] || { REASON="$inst is $(rstate "$inst") after nvctl replace, not joining"; nv_status; return 1; }
  ! domid_of "$GROUP-r1" >/dev/null || { REASON="the old instance $GROUP-r1 still runs"; return 1; }
  info "nvctl-replace-fresh: $inst joining $((SECONDS - t0))s after nvctl replace started; $GROUP-r1 retired"
  incs 36 40 "$inst" || return 1
  if grep -q ' live$' /tmp/incs.states || [ "$(rstate "$inst")" = live ]; then
    REASON="$inst, booted without the counter's state, was promoted: $(tr '\n' ',' < /tmp/incs.states)"; nv_status; return 1
  fi
  local f; f=$(xsr "/local/domain/$(domid_of "$NV_NAME")/data/domain-nv/replicas/$inst/faults/0" | cut -c1-120)
  info "nvctl-replace-fresh: INC 36..40 answered right; $inst never promoted: $(rstate "$inst")${f:+ ($f)}"
}

# healthy_r0_r1 CHECK: r0 and r1 are members with no value-mismatch or no-quorum fault (a straggler
# fault under TCG load is only reported); fails with REASON set
healthy_r0_r1() {
  local base; base=/local/domain/$(domid_of "$NV_NAME")/data/domain-nv/replicas
  local r f
  for r in r0 r1; do
    [ "$(xsr "$base/$r/state")" != faulty ] || { REASON="healthy replica $r is faulty: $(xsr "$base/$r/faults/0")"; return 1; }
    for f in $(xenstore-list "$base/$r/faults" 2>/dev/null); do
      case "$(xsr "$base/$r/faults/$f")" in
        *value-mismatch*|*no-quorum*) REASON="healthy replica $r has a fault: $(xsr "$base/$r/faults/$f")"; return 1 ;;
        *) info "$1: $r: $(xsr "$base/$r/faults/$f" | cut -c1-120)" ;;
      esac
    done
  done
}

# ---------------------------------------------------------------- udp-through-nv
# nslookup NAME: busybox nslookup of NAME's A record at the group's external address
nslookup_nv() { timeout 60 busybox nslookup -type=a -timeout=10 -retry=2 "$1" "$NV_ADDR" 2>&1; }
check_udp_through_nv() {
  need nv-vif-connected || return 1
  local r t0=$SECONDS base out
  base=/local/domain/$(domid_of "$NV_NAME")/data/domain-nv
  for r in $REPLICAS; do
    wait_for "$GUEST_TMO" grep -q "dnsd on" "/var/log/xen/console/guest-$r.log" \
      || { REASON="replica $r did not report its dnsd up"; return 1; }
  done
  # the first question may find a replica's UDP path not yet used: retry within a bound
  if ! wait_for 120 sh -c "busybox nslookup -type=a -timeout=10 -retry=2 www.lab.test $NV_ADDR | grep -q '^Address: 192.0.2.80\$'"; then
    out=$(nslookup_nv www.lab.test); REASON="no answer 192.0.2.80 for www.lab.test within 120s: $(echo "$out" | tr '\n' ' ' | cut -c1-200)"; nv_status; return 1
  fi
  out=$(nslookup_nv www.lab.test); echo "$out"
  info "udp-through-nv: www.lab.test = $(echo "$out" | sed -n 's/^Address: \([0-9.]*\)$/\1/p' | tr '\n' ' ')$((SECONDS - t0))s after the check started"
  out=$(nslookup_nv mail.lab.test); echo "$out"
  echo "$out" | grep -qx 'Address: 192.0.2.25' || { REASON="mail.lab.test: $(echo "$out" | tr '\n' ' ' | cut -c1-200)"; nv_status; return 1; }
  ! echo "$out" | grep -q '192.0.2.66' || { REASON="the client got the faulty replica's address of mail.lab.test"; return 1; }
  out=$(nslookup_nv nope.lab.test); echo "$out"
  echo "$out" | grep -q NXDOMAIN || { REASON="nope.lab.test: no agreed NXDOMAIN: $(echo "$out" | tr '\n' ' ' | cut -c1-200)"; nv_status; return 1; }
  local d=$base/services/dns/datagrams
  # domain-nv's status reaches xenstore after the answers went out, key by key (a CI run read
  # questions 2 and answered 4, and 4 and 4 a moment later): wait (bounded) for both to count 3
  wait_for 30 sh -c "[ \"\$(xenstore-read $d/questions)\" -ge 3 ] && [ \"\$(xenstore-read $d/answered)\" -ge 3 ]" 2>/dev/null \
    || { REASON="services/dns/datagrams: questions '$(xsr $d/questions)', answered '$(xsr $d/answered)' (want >= 3 each)"; nv_status; return 1; }
  healthy_r0_r1 udp-through-nv || { nv_status; return 1; }
  local st; st=$("$NVCTL" status "$GROUP" 2>&1); echo "$st"
  info "udp-through-nv: mail.lab.test = 192.0.2.25, nope.lab.test NXDOMAIN; services/dns/datagrams: questions $(xsr $d/questions), answered $(xsr $d/answered), masked $(xsr $d/masked), dropped $(xsr $d/dropped), unsolicited $(xsr $d/unsolicited); r2 $(xsr $base/replicas/r2/state)"
  nv_status
}

# ---------------------------------------------------------------- replica-destroyed-mid-stream
check_replica_destroyed_mid_stream() {
  need client-through-nv || return 1
  local victim=lab-r0 want=$(( LAB_BIG_MB * 1048576 )) t1 t2
  domid_of $victim >/dev/null || { REASON="$victim is not running"; return 1; }
  # the one member that stays: r1, or r2's clone once nvctl-replace-fresh replaced r1
  local last=r1; [ "${RESULT[nvctl-replace-fresh]:-}" = pass ] && last=$CLONE
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
  # with r0 gone, $last alone is below the quorum of 2 (the others are excluded or joining)
  [ $rc != 0 ] && [ "$got" -lt "$want" ] || { REASON="the download completed ($got bytes) with one member left"; nv_status; return 1; }
  local right; right=$(gen_big "$LAB_BIG_MB" "$LAB/big-seed" | head -c "$got" | md5sum | cut -d' ' -f1)
  [ "$sum" = "$right" ] || { REASON="the $got bytes the client got are not the start of /big (md5 $sum, want $right)"; return 1; }
  local nv base; nv=$(domid_of "$NV_NAME"); base=/local/domain/$nv/data/domain-nv
  if ! wait_for 10 sh -c "[ \"\$(xenstore-read $base/services/http/no-quorum)\" -gt 0 ]"; then
    REASON="services/http/no-quorum is '$(xsr $base/services/http/no-quorum)', not counted"; nv_status; return 1
  fi
  local f
  for f in $(xenstore-list "$base/replicas/$last/faults" 2>/dev/null); do
    REASON="$last, the last member, was blamed: $(xsr "$base/replicas/$last/faults/$f")"; nv_status; return 1
  done
  info "replica-destroyed-mid-stream: fail-stop after $got of $want bytes (all right), $(awk -v a="$t1" -v z="$t2" 'BEGIN { printf "%.1f", z - a }') s after the GET; no-quorum resets $(xsr $base/services/http/no-quorum), $last (the last member) not blamed; r0 state $(xsr $base/replicas/r0/state), link $(xsr $base/replicas/r0/link)"
  nv_status
}

# ---------------------------------------------------------------- nvctl-replace
# lab-r0 was destroyed by replica-destroyed-mid-stream: `nvctl replace` brings a new instance in.
check_nvctl_replace() {
  need nvctl-up || return 1
  local nv t0=$SECONDS log=$OUT/nvctl-replace.out; nv=$(domid_of "$NV_NAME")
  nvctl_logged "$log" --timeout "$GUEST_TMO" replace "$GROUP" r0; local rc=$?
  cat "$log"
  [ $rc = 0 ] || { REASON="nvctl replace: exit status $rc: $(tail -1 "$log" | cut -c1-200); NV console: $(nv_log 300)"; nv_status; return 1; }
  local st; st=$("$NVCTL" status "$GROUP" 2>&1); echo "$st"
  # Replica  Domain  ID  State  Health  Link  Conns  Bytes-voted ...
  local line; line=$(echo "$st" | grep -E '^r0-g[0-9]+ ' | tr -s ' ')
  [ -n "$line" ] || { REASON="no new instance of r0 in nvctl status"; return 1; }
  local inst dom health; inst=$(echo "$line" | cut -d' ' -f1); dom=$(echo "$line" | cut -d' ' -f2); health=$(echo "$line" | cut -d' ' -f5)
  [ "$health" = joining ] || { REASON="$inst is $health, not joining (probation): $line"; return 1; }
  ! domid_of "$GROUP-r0" >/dev/null || { REASON="the old instance $GROUP-r0 still runs"; return 1; }
  local rid; rid=$(domid_of "$dom") || { REASON="$dom ($inst) is not running"; return 1; }
  local be=/local/domain/$nv/backend/vif/$rid/0
  [ "$(xsr $be/state)" = 4 ] && [ "$(xsr /local/domain/$rid/device/vif/0/state)" = 4 ] \
    || { REASON="$dom: vif state $(xsr $be/state)/$(xsr /local/domain/$rid/device/vif/0/state), not 4/4"; return 1; }
  info "nvctl-replace: $inst ($dom, domid $rid, vif $(xsr $be/vifname)) joining $((SECONDS - t0))s after nvctl replace started; $GROUP-r0 gone"
  # The new instance is compared (it gets a connection) but does not vote: the one member left
  # decides nothing, so the client gets no page, and never r2's faulty one.
  local base=/local/domain/$nv/data/domain-nv key; key=$base/services/http/no-quorum
  local before; before=$(xsr "$key")
  rm -f /tmp/index.html
  if GET_TMO=60 get "http://$NV_ADDR/index.html" /tmp/index.html; then
    REASON="client got a page ('$(head -c 80 /tmp/index.html)') from a group with one member"; return 1
  fi
  ! grep -q FAULTY /tmp/index.html 2>/dev/null || { REASON="client got the faulty replica's page"; return 1; }
  if ! wait_for 10 sh -c "[ \"\$(xenstore-read $key)\" -gt \"${before:-0}\" ]"; then
    REASON="no-quorum stayed at '$(xsr "$key")' (before: '$before')"; nv_status; return 1
  fi
  [ "$(xsr $base/replicas/$inst/state)" = joining ] || { REASON="$inst is $(xsr $base/replicas/$inst/state) after the GET, not joining"; nv_status; return 1; }
  info "nvctl-replace: GET /index.html reset (no quorum: ${before:-0} -> $(xsr "$key")); $inst still joining"
}

# ---------------------------------------------------------------- teardown
check_teardown() {
  need xen-boots || return 1
  xl list
  local d t0=$SECONDS
  if domid_of "$NV_NAME" >/dev/null || "$NVCTL" status "$GROUP" >/dev/null 2>&1; then
    nvctl_logged "$OUT/nvctl-down.out" --timeout 120 down "$GROUP"; local rc=$?
    cat "$OUT/nvctl-down.out"
    [ $rc = 0 ] || echo "nvctl down: exit status $rc"
    info "teardown: nvctl down $GROUP: exit status $rc after $((SECONDS - t0))s"
  fi
  # whatever else runs (the baseline replica, the Linux driver domain and its replica; leftovers
  # of failed checks)
  for d in $(xl list | awk 'NR > 2 { print $1 }'); do timeout 120 xl destroy "$d" || echo "xl destroy $d failed"; done
  if ! wait_for 120 sh -c '[ "$(xl list | awk "NR > 1" | wc -l)" = 1 ] && xl list | grep -q "^Domain-0 "'; then
    REASON="left over: $(xl list | awk 'NR > 2 { print $1 }' | tr '\n' ' ')"; return 1
  fi
  xl list
  [ "${rc:-0}" = 0 ] || { REASON="nvctl down $GROUP failed (exit status $rc)"; return 1; }
  local left; left=$(xenstore-list /local/domain 2>/dev/null | grep -vx 0 | tr '\n' ' ')
  [ -z "$left" ] || info "teardown: xenstore still lists /local/domain/{$left}"
}

# the baseline checks: a Linux driver domain, and domain-nv with one replica
. "$LAB/checks-baseline.sh"

echo "LAB-CHECKS start at dom0 uptime $(ut)s: $LAB_CHECKS"
for c in $LAB_CHECKS; do run_check "$c"; done
echo "LAB-CHECKS done at dom0 uptime $(ut)s: $FAILED failed"
exit $FAILED
