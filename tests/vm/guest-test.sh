#!/bin/sh
# Runs inside the Debian 12 guest (SELinux enforcing), from the 9p share at
# /mnt/host, as the image's test unit (initrc_t). Every check prints
# "PASS: …" or "FAIL: …"; each phase's wall time goes to results/phases.
# Exit 0 when every check passed.
#
# Phases:
#   control   the connector's binary, labelled connectord_exec_t, with a
#             module that declares its domain but grants no eBPF rights:
#             without headers its compile fails (fault 11, the compiler's
#             words); with them it compiles in connectord_t, and bpf() is
#             refused, AVC denials, our doctor names the SELinux cause
#   install   dpkg -i: the hook loads the module, lays down, enables, starts;
#             the headers are deferred to connector-setup.service, which
#             installs linux-headers-$(uname -r) from the share's repository
#   healthy   within 60 s connectord reports no fault, its probe compiled,
#             loaded and attached in connectord_t and counting execs; a
#             restart takes the object from the cache; doctor --json
#             healthy; no new AVC of connectord_t
#   repair    headers package and module removed: the compile fails, fault
#             11; repair clears it within 60 s (the probe compiles again)
#   purge     dpkg --purge: service, module and files gone

set -u
S=/mnt/host
R=$S/results
mkdir -p "$R"
: > "$R/phases"
failed=0
K=$(uname -r)
X=/tmp/connector-deb
CI=$X/opt/connector/bin/connector-installer
STATUS=/var/lib/connector/status.json

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
check() { d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
now() { date +%s; }
phase_start() { PHASE=$1; PT=$(now); echo "=== phase $PHASE"; }
phase_end() { echo "$PHASE $(( $(now) - PT ))" >> "$R/phases"; echo "=== phase $PHASE: $(( $(now) - PT )) s"; }

# The connector's own word: `connectord status` exits 0 without a fault.
status_has_no_fault() { /opt/connector/bin/connectord status > /dev/null 2>&1; }
status_fault() { [ -f $STATUS ] && grep -q "\"id\": $1" $STATUS; }

# AVC lines of connectord_t in audit.log after byte offset $1.
avc_since() { tail -c +$(( $1 + 1 )) /var/log/audit/audit.log 2>/dev/null | grep 'avc: .*denied' | grep 'scontext=[^ ]*:connectord_t:' || true; }
audit_size() { stat -c %s /var/log/audit/audit.log 2>/dev/null || echo 0; }
# auditd writes asynchronously: wait until the log stops growing.
audit_settle() { a=-1; b=$(audit_size); while [ "$a" != "$b" ]; do sleep 2; a=$b; b=$(audit_size); done; }

# The after-transaction job has run to its end (its unit logged the end).
setup_done() {
    journalctl -q --no-pager -u connector-setup.service |
        grep -q -e 'Deactivated successfully' -e 'Failed with result'
}

wait_for() { # SECONDS DESCRIPTION COMMAND…: polls every second
    limit=$1; shift; what=$1; shift; t=0
    while ! "$@"; do
        t=$((t + 1)); [ $t -ge "$limit" ] && { fail "$what (not within ${limit} s)"; return 1; }
        sleep 1
    done
    pass "$what (after ${t} s)"; echo "$what $t" >> "$R/waits"
}

echo "kernel $K, $(getenforce), $(id -Z)"
check "SELinux is enforcing" [ "$(getenforce)" = Enforcing ]
check "no headers for $K yet" [ ! -e /lib/modules/$K/build ]
mkdir -p $X && dpkg-deb -x "$S"/connector_*.deb $X

# --- control ---------------------------------------------------------------
phase_start control
# The shipped module without its eBPF rights: the optional blocks of the
# bpf/capability2/perf_event/lockdown rules (two lines each) and the core
# capability lines.
awk '/^\(optional connectord_(bpf|cap2_bpf|cap2_perfmon|perf_event|lockdown)$/ { skip = 2 }
     skip > 0 { skip--; next }
     /self \(capability2? \(/ { next }
     { print }' $X/usr/share/selinux/packages/connectord.cil \
    | sed 's/connectord-policy-version .*/connectord-policy-version 0.0.0-control/' > /tmp/connectord.cil
check "control module (no eBPF rights) installed" semodule -i /tmp/connectord.cil
install -D -m 0755 $X/opt/connector/bin/connectord /opt/connector/bin/connectord
mkdir -p /var/lib/connector /var/log/connector
restorecon -R /opt/connector /var/lib/connector /var/log/connector
ls -Z /opt/connector/bin/connectord
check "binary labelled connectord_exec_t" sh -c "ls -Z /opt/connector/bin/connectord | grep -q connectord_exec_t"
cat > /run/systemd/system/connectord-control.service <<EOF
[Service]
Type=oneshot
ExecStart=/opt/connector/bin/connectord run --once
EOF
systemctl daemon-reload
# Without headers the compile fails: fault 11, in the compiler's words.
systemctl start connectord-control.service
cat $STATUS
check "control: no headers, the compile fails: fault 11" status_fault 11
check "control: the status says why the compile failed" grep -q 'no kernel header tree' $STATUS
# With the headers (from the share's repository) it compiles in
# connectord_t, and the kernel refuses what the compile made.
t=$(now)
{ apt-get update -q && apt-get install -y -q linux-headers-$K; } > "$R/control-headers.log" 2>&1
check "control: headers installed for the compile" [ -e /lib/modules/$K/build ]
echo "control: headers installed in $(( $(now) - t )) s"
before=$(audit_size)
systemctl start connectord-control.service
audit_settle
cat $STATUS
check "control: the probe compiled in connectord_t" grep -q '"object": "/var/lib/connector/probe/' $STATUS
check "control: the probe was refused" grep -q '"probe_loaded": false' $STATUS
check "control: bpf() failed with EPERM" grep -q 'Operation not permitted' $STATUS
check "control: fault 12, not 11" sh -c "grep -q '\"id\": 12' $STATUS && ! grep -q '\"id\": 11' $STATUS"
avc_since "$before" > "$R/control-avc.txt"
cat "$R/control-avc.txt"
check "control: AVC denials of connectord_t" [ -s "$R/control-avc.txt" ]
check "control: the bpf capability among them" grep -q -e '{ bpf }' -e '{ sys_admin }' -e '{ map_create }' -e '{ prog_load }' "$R/control-avc.txt"
$CI doctor --json > "$R/control-doctor.json"; echo "doctor exit $?"
check "control: doctor names the SELinux cause" grep -q '"cause": "selinux"' "$R/control-doctor.json"
check "control: doctor cites the denial" grep -q 'SELinux denied the connector' "$R/control-doctor.json"
check "control: the kernel's answer, bpf rights missing" grep -q 'the kernel will refuse connectord_t: bpf map_create' "$R/control-doctor.json"
rm -f /run/systemd/system/connectord-control.service
systemctl daemon-reload
rm -rf /opt/connector /var/lib/connector /var/log/connector
# The install phase starts from a host without headers again.
apt-get purge -y -q --autoremove linux-headers-$K > /dev/null 2>&1
check "control: headers removed again" [ ! -e /lib/modules/$K/build ]
phase_end

# --- install ---------------------------------------------------------------
phase_start install
# What the administrator does: dpkg -i. The hook must not wait for apt.
t=$(now)
dpkg -i "$S"/connector_*.deb > "$R/dpkg-i.log" 2>&1; rc=$?
cat "$R/dpkg-i.log"
echo "dpkg -i: exit $rc in $(( $(now) - t )) s"
check "dpkg -i succeeded" [ $rc = 0 ]
check "module loaded" sh -c "semodule -l | grep -qx 'connectord'"
$CI selinux status --json > "$R/selinux-status.json"
check "module is the shipped one, at priority 200" sh -c "grep -q '\"current\": true' $R/selinux-status.json && grep -q '\"priority\": 200' $R/selinux-status.json"
check "selinux status: the loaded policy answers" grep -q '"source": "kernel"' "$R/selinux-status.json"
check "selinux status: every probe right granted" sh -c "grep -q '\"state\": \"granted\"' $R/selinux-status.json && ! grep -q -e '\"state\": \"missing\"' -e '\"state\": \"not-defined\"' $R/selinux-status.json"
check "connectord.service enabled" systemctl is-enabled --quiet connectord.service
check "hook deferred the headers" grep -q 'headers deferred' "$R/dpkg-i.log"
check "hook handed them to connector-setup.service" grep -q 'connector-setup.service will install them' "$R/dpkg-i.log"
wait_for 900 "connector-setup.service ran and finished" setup_done
journalctl -u connector-setup.service --no-pager > "$R/connector-setup.log" 2>&1
tail -n 40 "$R/connector-setup.log"
check "connector-setup.service succeeded" sh -c "[ \"\$(systemctl show -p Result --value connector-setup.service)\" = success ]"
check "linux-headers-$K installed by the deferred job" sh -c "dpkg-query -W -f '\${Status}' linux-headers-$K | grep -q 'install ok installed'"
check "/lib/modules/$K/build present" [ -e /lib/modules/$K/build ]
phase_end

# --- healthy ---------------------------------------------------------------
phase_start healthy
after_install=$(audit_size)
wait_for 60 "connectord reports no fault" status_has_no_fault
cat $STATUS
check "probe loaded" grep -q '"probe_loaded": true' $STATUS
check "the probe cache is labelled connectord_var_lib_t" sh -c "ls -Z /var/lib/connector/probe/*.o | grep -q connectord_var_lib_t"
check "probe compiled against the installed headers" grep -q "\"tree\": \"/usr/src/linux-headers-$K\"" $STATUS
ms=$(sed -n 's/.*"millis": \([0-9]*\).*/\1/p' $STATUS | head -1)
echo "the probe's compile took ${ms:-?} ms"; echo "compile-ms ${ms:-0}" >> "$R/waits"
probe_counts() { grep -q '"probe_events": [1-9]' $STATUS; }
wait_for 70 "the attached probe counts execs" probe_counts
systemctl restart connectord.service
from_cache() { status_has_no_fault && grep -q '"cached": true' $STATUS && grep -q '"probe_loaded": true' $STATUS; }
wait_for 60 "after a restart the object comes from the cache" from_cache
check "connectord runs in connectord_t" sh -c "ps -eZ | grep connectord | grep -q ':connectord_t:'"
$CI doctor --json > "$R/doctor.json"; rc=$?
check "doctor --json healthy (exit 0)" [ $rc = 0 ]
check "doctor: healthy true" grep -q '"healthy": true' "$R/doctor.json"
# The shipped metrics unit, as the timer starts it (docs/metrics.md).
systemctl start connector-metrics.service
check "connector-metrics.service succeeded" sh -c "[ \"\$(systemctl show -p Result --value connector-metrics.service)\" = success ]"
cp /var/lib/prometheus/node-exporter/connector.prom "$R/connector.prom" 2>/dev/null
check "the textfile says healthy" grep -qx 'connector_healthy 1' "$R/connector.prom"
check "the textfile: headers of $K present" grep -qx "connector_kernel_headers_present{kernel=\"$K\"} 1" "$R/connector.prom"
check "the textfile: the probe is loaded" grep -qx "connector_probe_loaded{kernel=\"$K\"} 1" "$R/connector.prom"
audit_settle
avc_since "$after_install" > "$R/healthy-avc.txt"
check "no AVC denial of connectord_t since the install" [ ! -s "$R/healthy-avc.txt" ]
cat "$R/healthy-avc.txt"
phase_end

# --- repair ----------------------------------------------------------------
phase_start repair
# The headers go (an administrator's clean-up): the connector, still
# running, raises fault 11 at its next check. Then the module goes too.
dpkg -r linux-headers-amd64 linux-headers-$K > /dev/null 2>&1
wait_for 60 "connectord raises fault 11" status_fault 11
check "fault 11: the compile failed, in its own words" grep -q -e 'no kernel header tree' -e 'fatal error' $STATUS
semodule -X 200 -r connectord
$CI doctor --json > "$R/repair-doctor.json"
check "doctor: fault 11, headers missing" grep -q '"cause": "headers-missing"' "$R/repair-doctor.json"
check "doctor: fault 11, SELinux module missing" grep -q '"cause": "selinux"' "$R/repair-doctor.json"
t=$(now)
$CI repair --json > "$R/repair.json" 2> "$R/repair.err"; rc=$?
echo "repair: exit $rc in $(( $(now) - t )) s"; cat "$R/repair.err"
check "repair exit 0" [ $rc = 0 ]
check "repair: healthy" grep -q '"healthy": true' "$R/repair.json"
check "repair: fault 11 found first" grep -q '"id": 11' "$R/repair.json"
check "connectord reports no fault after repair" status_has_no_fault
check "module back" sh -c "semodule -l | grep -qx 'connectord'"
check "headers back" [ -e /lib/modules/$K/build ]
phase_end

# --- purge -----------------------------------------------------------------
phase_start purge
dpkg --purge connector > "$R/purge.log" 2>&1; rc=$?
cat "$R/purge.log"
check "dpkg --purge succeeded" [ $rc = 0 ]
check "connectord.service gone" sh -c "! systemctl is-active --quiet connectord.service && ! systemctl cat connectord.service >/dev/null 2>&1"
check "module removed" sh -c "! semodule -l | grep -qx 'connectord'"
for p in /opt/connector /var/lib/connector /var/log/connector /etc/connector \
         /etc/kernel/postinst.d/connector; do
    check "$p gone" [ ! -e $p ]
done
phase_end

[ $failed = 0 ] && echo "ALL PASSED" || echo "SOME FAILED"
exit $failed
