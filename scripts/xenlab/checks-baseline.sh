# shellcheck shell=bash
# The lab's baseline checks (issue 15): what a user would deploy instead of domain-nv, measured in
# the same run as domain-nv, with the same replica image, the same bridge and the same client in
# dom0. Sourced by lab-checks.sh (its helpers: need, info, metric, measure_get, wait_for, ...).
#
#   linux-driver-domain  lab-ldd, a Linux driver domain (mk-linux-dd.sh: the kernel's xen-netback,
#                        kernel IP forwarding, a Qubes-style net VM; 256 MiB and 1 vcpu like
#                        the NV domain), serves lab-rl (the replica image) on a vif; its outside
#                        NIC is a vif on xenbr0. dom0 routes the replica's subnet via lab-ldd and
#                        GETs /big from the replica: METRIC linux-driver-domain-http-get and
#                        linux-driver-domain-cpu-per-mb (lab-ldd's CPU seconds per MB), round 1
#   nv-single-replica    group solo (xenlab-solo.yaml): domain-nv serving one replica, the closest
#                        a spec can come to a group of one (primary-backup, the backup booted
#                        faulty and excluded at the first page); GET /big through it: METRIC
#                        nv-single-replica-http-get, nv-single-replica-cpu-per-mb (solo-nv), between
#                        the Linux driver domain's rounds 2 and 3, and nv-vs-linux-driver-domain-ratio
#                        for one replica; `nvctl down solo` at the end, pass or fail
# The host's load changes from minute to minute and moves every figure (a lab GET ran at 35 MB/s
# in one run and 1.4 MB/s in the next), so each domain-nv GET is bracketed by two rounds of the
# Linux driver domain, just before and just after it, and the ratio is to their mean
# (ldd_round, ratio_to_linux; client-through-nv runs rounds 4 and 5 around its GET). lab-ldd and
# lab-rl stay for that (416 MiB; teardown destroys them) unless linux-driver-domain fails, paused
# between rounds so that they take no CPU from what runs in between.

LDD_NAME=$GROUP-ldd                # the Linux driver domain
LDD_REPLICA=$GROUP-rl              # the replica behind it
LDD_OUT=192.168.77.20              # lab-ldd's outside address on xenbr0 (dom0 has .1)
LDD_NET=10.78.0                    # the inside subnet: lab-ldd .1, the replica .2
SOLO=solo                          # the one-replica group (xenlab-solo.yaml)
SOLO_SPEC=$LAB/xenlab-solo.yaml
SOLO_ADDR=192.168.77.11            # its domain-nv's external address

# offloads DOMAIN: the `ethtool -k eth0` line a replica printed on its console, and its vif
# backend's offer of GSO in xenstore (feature-gso-tcpv4, feature-sg)
offloads() {
  local id be; id=$(domid_of "$1") && be=$(xsr "/local/domain/$id/device/vif/0/backend")
  echo "$(grep -a -m1 'ethtool -k eth0:' "/var/log/xen/console/guest-$1.log" | tr -cd '\40-\176' | sed 's/.*ethtool -k eth0: //') backend ${be:-?}: feature-sg=$(xsr "$be/feature-sg") feature-gso-tcpv4=$(xsr "$be/feature-gso-tcpv4")"
}

# ---------------------------------------------------------------- linux-driver-domain
check_linux_driver_domain() {
  need xen-boots || return 1
  : > /tmp/ldd-rounds
  ldd_measure && { ldd_hold pause; return 0; }
  ip route del "$LDD_NET.0/24" 2>/dev/null
  timeout 120 xl destroy "$LDD_REPLICA" 2>/dev/null; timeout 120 xl destroy "$LDD_NAME" 2>/dev/null
  return 1
}

# ldd_hold pause|unpause: lab-ldd and lab-rl (xl pause: they keep their state and take no CPU)
ldd_hold() {
  local d
  for d in "$LDD_NAME" "$LDD_REPLICA"; do timeout 60 xl "$1" "$d" || echo "xl $1 $d failed"; done
}

# ldd_round NOTE: one more GET of /big through the Linux driver domain (when linux-driver-domain
# passed), its MB/s appended to /tmp/ldd-rounds; a failed round is only reported
ldd_round() {
  [ "${RESULT[linux-driver-domain]:-}" = pass ] || return 0
  local keep=$REASON
  ldd_hold unpause
  if measure_get "http://$LDD_NET.2/big" "$LDD_NAME" linux-driver-domain "round $(( $(wc -l < /tmp/ldd-rounds) + 1 )), $1"; then
    cat /tmp/linux-driver-domain-mbs >> /tmp/ldd-rounds
  else
    info "linux-driver-domain: the round $1 failed: $REASON"
  fi
  ldd_hold pause
  REASON=$keep
}

ldd_measure() {
  local t0=$SECONDS cfg=/run/$LDD_NAME.cfg rcfg=/run/$LDD_REPLICA.cfg
  cat > "$cfg" <<EOC
name = "$LDD_NAME"
type = "pv"
driver_domain = 1
kernel = "$KERNEL"
ramdisk = "$LAB/ldd-initrd.gz"
extra = "console=hvc0 ldd_out=$LDD_OUT/24 ldd_in=$LDD_NET.1/24"
memory = 256
vcpus = 1
vif = [ 'bridge=xenbr0,mac=00:16:3e:c0:00:14' ]
on_crash = "preserve"
EOC
  timeout 300 xl create "$cfg" || { REASON="xl create $LDD_NAME failed"; return 1; }
  local id; id=$(domid_of "$LDD_NAME")
  local con=/var/log/xen/console/guest-$LDD_NAME.log
  if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read /local/domain/$id/data/ldd-ready)\" = 1 ]"; then
    REASON="$LDD_NAME not ready after ${GUEST_TMO}s; console: $(tail -c 300 "$con" | tr -cd '\12\40-\176' | tr '\n' '|')"; return 1
  fi
  info "linux-driver-domain: $LDD_NAME (domid $id, xen-netback loaded, ip_forward on) ready $((SECONDS - t0))s after xl create"
  cat > "$rcfg" <<EOC
name = "$LDD_REPLICA"
type = "pv"
kernel = "$KERNEL"
ramdisk = "$LAB/replica-initrd.gz"
extra = "console=hvc0 lab_bigmb=$LAB_BIG_MB ip=$LDD_NET.2::$LDD_NET.1:255.255.255.0:$LDD_REPLICA:eth0:off"
memory = $(( 128 + LAB_BIG_MB ))
vcpus = 1
vif = [ 'backend=$LDD_NAME,mac=00:16:3e:00:01:02' ]
on_crash = "preserve"
EOC
  timeout 300 xl create "$rcfg" || { REASON="xl create $LDD_REPLICA failed"; return 1; }
  local rid; rid=$(domid_of "$LDD_REPLICA")
  local fe=/local/domain/$rid/device/vif/0 be=/local/domain/$id/backend/vif/$rid/0
  if ! wait_for "$GUEST_TMO" sh -c "[ \"\$(xenstore-read $fe/state)\" = 4 ] && [ \"\$(xenstore-read $be/state)\" = 4 ]"; then
    REASON="$LDD_REPLICA's vif not Connected after ${GUEST_TMO}s: frontend state=$(xsr $fe/state) backend state=$(xsr $be/state) hotplug-status=$(xsr $be/hotplug-status); $LDD_NAME console: $(tail -c 300 "$con" | tr -cd '\12\40-\176' | tr '\n' '|')"
    return 1
  fi
  wait_for "$GUEST_TMO" grep -q "httpd on" "/var/log/xen/console/guest-$LDD_REPLICA.log" \
    || { REASON="$LDD_REPLICA did not report its httpd up"; return 1; }
  ip route replace "$LDD_NET.0/24" via "$LDD_OUT" || { REASON="no route to $LDD_NET.0/24 via $LDD_OUT"; return 1; }
  if ! wait_for 120 sh -c "timeout 10 busybox wget -q -O - http://$LDD_NET.2/index.html | grep -qx 'xenlab-replica ok'"; then
    REASON="no page from http://$LDD_NET.2/ through $LDD_NAME within 120s"; ip route; ip neigh; return 1
  fi
  info "linux-driver-domain: $LDD_REPLICA (domid $rid) serves through $LDD_NAME's kernel netback (vif $rid.0, 4/4) and routing, $((SECONDS - t0))s after the check started"
  info "linux-driver-domain: offloads of $LDD_REPLICA: $(offloads "$LDD_REPLICA")"
  info "linux-driver-domain: offloads of $GROUP-rk (dom0's netback): $(offloads "$GROUP-rk")"
  measure_get "http://$LDD_NET.2/big" "$LDD_NAME" linux-driver-domain "round 1" || return 1
  cat /tmp/linux-driver-domain-mbs >> /tmp/ldd-rounds
  info "linux-driver-domain: $LDD_NAME's counters: $(grep -a 'LDD counters' "$con" | tail -1 | tr -cd '\40-\176' | cut -c1-600)"
}

# ---------------------------------------------------------------- nv-single-replica
check_nv_single_replica() {
  need xen-boots || return 1
  solo_measure; local rc=$?
  nvctl_logged "$OUT/nvctl-down-solo.out" --timeout 120 down "$SOLO" || echo "nvctl down $SOLO failed"
  return $rc
}

solo_measure() {
  local t0=$SECONDS log=$OUT/nvctl-up-solo.out
  nvctl_logged "$log" --timeout "$GUEST_TMO" up "$SOLO_SPEC"; local rc=$?
  cat "$log"
  [ $rc = 0 ] || { REASON="nvctl up $SOLO_SPEC: exit status $rc: $(tail -1 "$log" | cut -c1-200)"; return 1; }
  local nv; nv=$(domid_of "$SOLO-nv") || { REASON="no domain $SOLO-nv after nvctl up"; return 1; }
  local base=/local/domain/$nv/data/domain-nv/replicas
  info "nv-single-replica: group $SOLO up (primary-backup, r0 primary, r1 faulty) $((SECONDS - t0))s after nvctl up started"
  # the first page: r0's is released at once, r1's differs and r1 is excluded
  if ! wait_for 180 sh -c "timeout 20 busybox wget -q -O /tmp/index.html http://$SOLO_ADDR/index.html && grep -qx 'xenlab-replica ok' /tmp/index.html"; then
    REASON="no page from http://$SOLO_ADDR/index.html within 180s (got '$(head -c 80 /tmp/index.html 2>/dev/null)')"; xenstore-ls -f "$base"; return 1
  fi
  wait_for 30 sh -c "[ \"\$(xenstore-read $base/r1/state)\" = faulty ]" \
    || { REASON="r1 (faulty image) is '$(xsr $base/r1/state)', not faulty: the group is not down to one replica"; xenstore-ls -f "$base"; return 1; }
  [ "$(xsr $base/r0/state)" = live ] || { REASON="r0 is '$(xsr $base/r0/state)', not live"; xenstore-ls -f "$base"; return 1; }
  info "nv-single-replica: r1 $(xsr $base/r1/state) ($(xsr $base/r1/faults/0 | cut -c1-100)); r0 live serves alone"
  info "nv-single-replica: offloads of $SOLO-r0 (domain-nv's netback): $(offloads "$SOLO-r0")"
  ldd_round "before nv-single-replica"
  measure_get "http://$SOLO_ADDR/big" "$SOLO-nv" nv-single-replica || return 1
  [ "$(xsr $base/r0/state)" = live ] && [ "$(xsr $base/r1/state)" = faulty ] \
    || { REASON="after the GET: r0 '$(xsr $base/r0/state)', r1 '$(xsr $base/r1/state)'"; return 1; }
  info "nv-single-replica: netback counters: $(xenstore-ls "/local/domain/$nv/data/domain-nv/vifs" 2>/dev/null | tr '\n' ';' | cut -c1-1500)"
  info "nv-single-replica: external link counters: $(xenstore-read "/local/domain/$nv/data/domain-nv/links/external" 2>/dev/null)"
  ldd_round "after nv-single-replica"
  ratio_to_linux nv-single-replica "1 replica"
}

# ratio_to_linux NAME WHAT: METRIC nv-vs-linux-driver-domain-ratio of NAME's MB/s (measure_get)
# to the mean of the Linux driver domain's last two rounds (the one before NAME's GET and the one
# after it), when both were measured
ratio_to_linux() {
  [ -s "/tmp/$1-mbs" ] && [ -s /tmp/ldd-rounds ] || return 0
  local rounds; rounds=$(tail -2 /tmp/ldd-rounds | tr '\n' ' ')
  metric nv-vs-linux-driver-domain-ratio "$(awk -v n="$(cat "/tmp/$1-mbs")" -v r="$rounds" -v w="$2" \
    'BEGIN { k = split(r, x, " "); for (i = 1; i <= k; i++) d += x[i] / k
             printf "%.3f (%s: through domain-nv %.2f MB/s / through the Linux driver domain %.2f MB/s, the mean of its rounds %s just before and after, same run)", n / d, w, n, d, r }')"
}
