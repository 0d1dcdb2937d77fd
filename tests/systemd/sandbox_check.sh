#!/bin/bash
# Runs keytransd under the real units, with a real systemd, on a machine or
# container that has no systemd as PID 1 (as in CI containers). Root only; not
# part of `meson test`.
#
#   tests/systemd/sandbox_check.sh [BUILD_DIR]     (default: build)
#
# It boots systemd as PID 1 of new mount/PID/network/UTS/IPC/cgroup namespaces
# on a throwaway overlay of / (nothing is written to the real /etc or /var),
# with a reduced capability bounding set and /sys, /proc/sys read-only, in a
# cgroup of its own on the cgroup2 hierarchy. Inside, it installs the units as
# docs/systemd.md says, makes a SoftHSM token, enables keytransd.socket and
# checks: socket activation, READY=1, the sandbox of the running daemon, every
# operation, who may connect, the metrics endpoint (keytrans-metrics.socket), the
# watchdog, restarts, the live exposure score and the clean-up. Then it powers
# the container off and removes its cgroup.
# On a host whose PID 1 is systemd, install the units for real instead.
set -uo pipefail

case ${1:-} in
--inner) mode=inner; shift ;;
--checks) mode=checks; shift ;;
*) mode=outer ;;
esac

# ---------------------------------------------------------------- outer
if [ $mode = outer ]; then
	src=$(cd "$(dirname "$0")/../.." && pwd)
	build=$(cd "${1:-$src/build}" && pwd) || exit 1
	self=$(readlink -f "$0")
	[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
	[ "$(cat /proc/1/comm)" != systemd ] ||
		{ echo "SKIP: PID 1 is systemd here: install the units for real (docs/systemd.md)"; exit 77; }
	for c in unshare setpriv nsenter softhsm2-util pkcs11-tool /lib/systemd/systemd; do
		command -v "$c" >/dev/null || { echo "SKIP: $c is missing"; exit 77; }
	done
	for f in "$build/daemon/keytransd" "$build/client/keytrans"; do
		[ -x "$f" ] || { echo "FAIL: $f not built"; exit 1; }
	done
	cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$cg2" ] || { echo "SKIP: no cgroup2 hierarchy mounted"; exit 77; }
	cg=$cg2/keytrans-sandbox-check.$$
	log=$(mktemp /tmp/keytrans-sandbox-check.XXXXXX)
	store=$(mktemp -d /tmp/keytrans-sandbox-check.XXXXXX)
	mkdir "$cg" || exit 1
	bounding=-sys_module,-sys_time,-sys_rawio,-syslog,-mac_admin,-mac_override,-wake_alarm
	bounding=$bounding,-block_suspend,-sys_pacct,-audit_control,-audit_read,-sys_boot
	(
		echo $BASHPID >"$cg/cgroup.procs"
		exec setpriv --bounding-set "$bounding" -- unshare --mount --propagation private --uts \
			--ipc --net --pid --cgroup --fork "$self" --inner "$src" "$build" "$store"
	) >"$log" 2>&1 &
	outer=$!
	pid1=""
	# shellcheck disable=SC2317 # called by the trap
	cleanup() {
		if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
			kill -s RTMIN+4 "$pid1" # poweroff
			for _ in $(seq 100); do kill -0 "$outer" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$outer" 2>/dev/null && kill -9 "$pid1" 2>/dev/null
		fi
		wait "$outer" 2>/dev/null
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
		rmdir "$store" 2>/dev/null
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	for _ in $(seq 100); do
		pid1=$(cat /proc/"$outer"/task/*/children 2>/dev/null | tr -d ' ')
		[ -n "$pid1" ] && break
		sleep 0.1
	done
	[ -n "$pid1" ] || { cat "$log"; echo "FAIL: the container did not start"; exit 1; }
	state=""
	for _ in $(seq 300); do
		state=$(nsenter -t "$pid1" -a systemctl is-system-running 2>/dev/null)
		case $state in running | degraded) break ;; esac
		sleep 0.1
	done
	echo "# container: systemd $(nsenter -t "$pid1" -a systemctl --version | sed -n '1s/systemd //p'), state ${state:-unknown}"
	nsenter -t "$pid1" -a /usr/local/libexec/keytrans-sandbox-check --checks
	rc=$?
	[ $rc -eq 0 ] || { echo "# container log:"; tail -20 "$log"; }
	rm -f "$log"
	exit $rc
fi

# ---------------------------------------------------------------- inner: PID 1 of the namespaces
if [ $mode = inner ]; then
	set -e
	src=$1 build=$2 st=$3
	mount -t tmpfs -o mode=0700 tmpfs "$st"
	mkdir -p "$st"/upper "$st"/work "$st"/root
	mount -t overlay overlay -o lowerdir=/,upperdir="$st"/upper,workdir="$st"/work "$st"/root
	r=$st/root
	mount -t proc proc "$r"/proc
	mount --bind "$r"/proc/sys "$r"/proc/sys
	mount -o remount,bind,ro "$r"/proc/sys
	if [ -e "$r"/proc/sysrq-trigger ]; then
		mount --bind "$r"/proc/sysrq-trigger "$r"/proc/sysrq-trigger
		mount -o remount,bind,ro "$r"/proc/sysrq-trigger
	fi
	mount -t sysfs -o ro sysfs "$r"/sys
	mount -t cgroup2 cgroup2 "$r"/sys/fs/cgroup
	mount -t tmpfs -o mode=0755,nosuid tmpfs "$r"/dev
	for n in null zero full random urandom tty; do
		touch "$r"/dev/$n
		mount --bind /dev/$n "$r"/dev/$n
	done
	mkdir -p "$r"/dev/pts "$r"/dev/shm
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r"/dev/pts
	ln -s pts/ptmx "$r"/dev/ptmx
	mount -t tmpfs -o mode=1777 tmpfs "$r"/dev/shm
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r"/run
	mount -t tmpfs -o mode=1777 tmpfs "$r"/tmp
	# What is tested, copied in now (the overlay may not show later changes of /).
	install -D -m 0755 "$build/daemon/keytransd" "$r"/usr/sbin/keytransd
	install -D -m 0755 "$build/client/keytrans" "$r"/usr/bin/keytrans
	install -D -m 0755 "$0" "$r"/usr/local/libexec/keytrans-sandbox-check
	mkdir -p "$r"/usr/local/share/keytrans
	cp "$src"/systemd/keytransd.service "$src"/systemd/keytransd.socket \
		"$src"/systemd/keytrans-metrics.socket "$src"/systemd/keytrans-metrics@.service \
		"$src"/systemd/keytrans.sysusers "$src"/systemd/keytrans.tmpfiles "$r"/usr/local/share/keytrans/
	# Units that would touch the host, or make no sense here.
	for u in systemd-modules-load.service systemd-sysctl.service systemd-binfmt.service \
		proc-sys-fs-binfmt_misc.automount systemd-timesyncd.service systemd-random-seed.service \
		sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
		sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount kmod-static-nodes.service \
		systemd-pstore.service systemd-repart.service systemd-firstboot.service systemd-udevd.service \
		systemd-udev-trigger.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
		systemd-hwdb-update.service systemd-machine-id-commit.service systemd-pcrphase.service \
		systemd-pcrphase-sysinit.service systemd-remount-fs.service getty.target \
		console-getty.service systemd-logind.service; do
		ln -sf /dev/null "$r"/etc/systemd/system/$u
	done
	# Only what basic.target pulls in, and nothing enabled on the host.
	rm -rf "$r"/etc/systemd/system/*.wants
	printf '[Unit]\nDescription=keytrans sandbox check\nRequires=basic.target\nAfter=basic.target\n' \
		>"$r"/etc/systemd/system/keytrans-sandbox-check.target
	cd "$r"
	mkdir -p oldroot
	pivot_root . oldroot
	umount -l /oldroot
	cd /
	# Credentials are mounted in a child namespace and must propagate back.
	mount --make-rshared /
	exec env -i container=keytrans-sandbox-check PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		/lib/systemd/systemd --unit=keytrans-sandbox-check.target --log-target=console --show-status=no
fi

# ---------------------------------------------------------------- checks: inside the container
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
sock=/run/keytransd/keytransd.sock
k() { keytrans -s $sock "$@"; }
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups "$@"; }
prop() { systemctl show -P "$1" keytransd.service; }
share=/usr/local/share/keytrans

# Installation, as docs/systemd.md says.
install -m 0644 $share/keytransd.service $share/keytransd.socket $share/keytrans-metrics.socket \
	"$share/keytrans-metrics@.service" /usr/lib/systemd/system/
install -m 0644 $share/keytrans.sysusers /usr/lib/sysusers.d/keytrans.conf
install -m 0644 $share/keytrans.tmpfiles /usr/lib/tmpfiles.d/keytrans.conf
systemd-sysusers keytrans.conf && systemd-tmpfiles --create keytrans.conf
check "systemd-sysusers, systemd-tmpfiles: user keytrans, /etc/keytrans 0750 root:keytrans" \
	test "$(stat -c '%a %U %G' /etc/keytrans)" = "750 root keytrans"
useradd -M -G keytrans app1 && useradd -M other
pin=$(openssl rand -hex 8)
(umask 077 && printf '%s\n' "$pin" >/etc/keytrans/pin)
as keytrans softhsm2-util --init-token --free --label keytrans --so-pin "$(openssl rand -hex 8)" \
	--pin "$pin" >/dev/null
as keytrans pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label keytrans --login \
	--pin "$pin" --keypairgen --key-type rsa:2048 --label kx1 --id 01 >/dev/null 2>&1
cat >/etc/keytrans/keytransd.conf <<CONF
[daemon]
socket = $sock
[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
token = keytrans
[key exchange1]
label = kx1
id = 01
allow_unwrap = group:keytrans
allow_wrap = *
allow_pubkey = *
CONF
# The metrics endpoint's user sees the unwrap series (docs/metrics.md).
sed -i '/^socket = /a stats_outcomes = user:keytrans-metrics' /etc/keytrans/keytransd.conf
systemd-tmpfiles --create keytrans.conf
systemctl daemon-reload
systemctl enable --now keytransd.socket >/dev/null 2>&1
check "keytransd.socket listening, keytransd.service not started" \
	test "$(systemctl is-active keytransd.socket)/$(prop ActiveState)" = active/inactive
check "socket $sock is 0660 keytrans:keytrans in a 0750 keytrans:keytrans folder" \
	test "$(stat -c '%a %U %G' $sock /run/keytransd | tr '\n' ' ')" = "660 keytrans keytrans 750 keytrans keytrans "

# Activation, READY=1, the credential.
check "first connection starts the service (socket activation, PIN from the credential)" k info
check "Type=notify: active, with the daemon's STATUS=" \
	test "$(prop ActiveState)" = active -a -n "$(prop StatusText)"
echo "     status: $(prop StatusText)"
pid=$(prop MainPID)
status() { sed -n "s/^$1:[[:space:]]*//p" /proc/"$pid"/status; }
check "runs as keytrans:keytrans" test "$(status Uid | cut -f1)/$(status Gid | cut -f1)" = "$(id -u keytrans)/$(id -g keytrans)"
check "no capabilities (effective, permitted, bounding)" \
	test "$(status CapEff)$(status CapPrm)$(status CapBnd)" = 000000000000000000000000000000000000000000000000
check "NoNewPrivs, seccomp filter" test "$(status NoNewPrivs)/$(status Seccomp)" = 1/2
check "no network but loopback" test "$(nsenter -t "$pid" -n cat /proc/net/dev | grep -c ':')" = 1
check "/ is read-only, /var/lib/softhsm/tokens and /run/keytransd writable" \
	sh -c "grep -q ' / / ro,' /proc/$pid/mountinfo && grep -q ' /var/lib/softhsm/tokens rw,' /proc/$pid/mountinfo &&
		grep -q ' /run/keytransd rw,' /proc/$pid/mountinfo"
check "MemoryMax=512M, TasksMax=512" \
	test "$(prop MemoryMax)/$(prop TasksMax)" = 536870912/512
check "core dumps off (LimitCORE=0)" sh -c "grep -q '^Max core file size *0 *0 ' /proc/$pid/limits"
memlock=$(awk '/^Max locked memory/ { print $4 }' /proc/"$pid"/limits)
if [ "$memlock" = 67108864 ]; then ok "LimitMEMLOCK=64M"; else
	echo "note LimitMEMLOCK is $memlock bytes, not 64M: systemd could not raise the hard limit here (no CAP_SYS_RESOURCE?)"
fi

# Every operation, and who may connect.
w=$(mktemp -d)
chmod 755 "$w"
check "pubkey" k pubkey exchange1 --format der -o "$w/pub.der"
check "wrap (HSM key), unwrap" sh -c "keytrans -s $sock wrap --to-key exchange1 --alg AES_256 --generate -o $w/b1 &&
	keytrans -s $sock unwrap exchange1 -i $w/b1"
check "wrap (public key from the request), OAEP unwrap" sh -c "keytrans -s $sock wrap --to $w/pub.der --alg AES_128 \
	--generate --oaep -o $w/b2 && keytrans -s $sock unwrap exchange1 --oaep -i $w/b2"
check "copp-sign, copp-open" sh -c "keytrans -s $sock copp-sign --to-key exchange1 \
	--random 00112233445566778899aabbccddeeff -o $w/s && keytrans -s $sock copp-open exchange1 -i $w/s"
chmod 644 "$w"/*
check "a member of group keytrans connects and may unwrap" as app1 keytrans -s $sock unwrap exchange1 -i "$w/b1"
check "a user outside group keytrans cannot connect" sh -c "setpriv --reuid=other --regid=other --init-groups \
	keytrans -s $sock info 2>&1 | grep -q 'Permission denied'"
check "the peer's real uid reaches the audit log (no PrivateUsers=)" \
	sh -c "journalctl -u keytransd.service -o cat | grep -q 'uid=$(id -u app1) '"

# The metrics endpoint (docs/metrics.md): systemd listens on 127.0.0.1:9464 and
# runs keytrans-metrics@.service for each connection, as keytrans-metrics.
scrape() { # scrape PATH: "STATUS CONTENT-TYPE", then the body
	python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen("http://127.0.0.1:9464" + sys.argv[1], timeout=30)
except urllib.error.HTTPError as e:
    r = e
print(r.status, r.headers["Content-Type"])
sys.stdout.write(r.read().decode())
PY
}
scrape_is() { scrape "$1" | head -1 | grep -q "^$2 "; } # scrape_is PATH STATUS
systemctl enable --now keytrans-metrics.socket >/dev/null 2>&1
check "keytrans-metrics.socket listening on 127.0.0.1:9464" \
	test "$(systemctl is-active keytrans-metrics.socket)" = active
scrape /metrics >"$w/scrape" 2>&1
check "GET /metrics: 200, text/plain; version=0.0.4, the daemon's HSM" \
	sh -c "head -1 $w/scrape | grep -qx '200 text/plain; version=0.0.4; charset=utf-8' &&
		grep -q '^keytrans_hsm_up{hsm=\".*\"} 1\$' $w/scrape"
check "as keytrans-metrics through group keytrans: stats_outcomes shows the unwraps" \
	sh -c "grep -q '^keytrans_requests_total{op=\"unwrap\",status=\"OK\"} [1-9]' $w/scrape"
check "GET /other: 404" scrape_is /other 404
check "the instances log to the journal and leave no unit behind" \
	sh -c "journalctl -o cat | grep -q 'keytrans: metrics: answered 404 Not Found' &&
		! systemctl list-units --all --no-legend 'keytrans-metrics@*' | grep -q failed"

# systemctl reload: ExecReload= runs without the credentials (systemd 252 hides
# them from it), so its -t must not need the PIN.
check "systemctl reload: ExecReload= passes, the daemon reloads (same process)" \
	sh -c "systemctl reload keytransd.service && test \$(systemctl show -P MainPID keytransd.service) = $pid &&
		journalctl -u keytransd.service -o cat | grep -q 'reload'"
cp /etc/keytrans/keytransd.conf "$w/conf"
echo "bogus line" >>/etc/keytrans/keytransd.conf
check "systemctl reload of a bad file fails, naming the line; the daemon keeps serving" \
	sh -c "! systemctl reload keytransd.service && journalctl -u keytransd.service -o cat |
		grep -q 'keytransd.conf:[0-9]' && keytrans -s $sock info"
cp "$w/conf" /etc/keytrans/keytransd.conf

# Watchdog, restarts, the live score, stopping.
if [ "${KT_QUICK:-}" = 1 ]; then echo "note KT_QUICK=1: watchdog wait skipped"; else
	sleep 35
	check "still running 35 s later (WATCHDOG=1 pings; WatchdogSec=30s)" test "$(prop NRestarts)/$(prop MainPID)" = "0/$pid"
fi
systemctl stop keytransd.service 2>/dev/null
check "service stopped: the socket file stays, the next connection starts the daemon again" \
	sh -c "test -S $sock && keytrans -s $sock info"
restarts=$(prop NRestarts)
kill -9 "$(prop MainPID)"
sleep 4
check "killed: Restart=on-failure starts it again, the socket still answers" \
	sh -c "test $(prop NRestarts) = $((restarts + 1)) && keytrans -s $sock info"
score=$(systemd-analyze security keytransd.service | sed -n 's/.*Overall exposure level for keytransd.service: *\([0-9.]*\).*/\1/p')
check "live exposure $score <= 1.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 1.0) }'

# The credential's source: the daemon sees only systemd's 0400 copy, so
# ExecStartPre=keytransd --check-pin checks the source before each start.
# (reset-failed: the starts above used up StartLimitBurst=3.)
systemctl reset-failed keytransd.service keytransd.socket
chmod 0640 /etc/keytrans/pin
systemctl restart keytransd.service 2>/dev/null
check "a group-readable /etc/keytrans/pin: the start is refused (ExecStartPre= exit 78, mode named)" \
	sh -c "test \$(systemctl show -P ActiveState keytransd.service) != active &&
		journalctl -u keytransd.service -o cat | grep -q 'the PIN file /etc/keytrans/pin must be .*(mode 0640;' &&
		systemctl status keytransd.service | grep -q 'status=78'"
chmod 0600 /etc/keytrans/pin
systemctl reset-failed keytransd.service keytransd.socket
systemctl start keytransd.socket keytransd.service
check "chmod 600: the service starts again" sh -c "test $(prop ActiveState) = active && keytrans -s $sock info"
pid=$(prop MainPID)

# One token writable (docs/systemd.md, "One token"): the drop-in as the
# documentation writes it.
token=$(grep -lF keytrans /var/lib/softhsm/tokens/*/token.object | head -1)
token=${token%/token.object}
mkdir -p /etc/systemd/system/keytransd.service.d
printf '[Service]\nReadWritePaths=\nReadWritePaths=%s\n' "$token" >/etc/systemd/system/keytransd.service.d/token.conf
systemctl daemon-reload
systemctl restart keytransd.service
pid=$(prop MainPID)
check "one token: its folder writable, the store read-only" \
	sh -c "grep -q ' $token rw,' /proc/$pid/mountinfo && ! grep -q ' /var/lib/softhsm/tokens rw,' /proc/$pid/mountinfo"
check "one token: keygen through the daemon writes the key into the token" \
	sh -c "n=\$(ls $token | wc -l) && keytrans -s $sock keygen kx2 >/dev/null && test \$(ls $token | wc -l) -gt \$n"
check "one token: the daemon's user cannot add a token to the store" \
	sh -c "! nsenter -t $pid -m setpriv --reuid=keytrans --regid=keytrans --init-groups mkdir /var/lib/softhsm/tokens/x 2>/dev/null"
check "one token: exposure unchanged" \
	test "$(systemd-analyze security keytransd.service | sed -n 's/.*Overall exposure level for keytransd.service: *\([0-9.]*\).*/\1/p')" = "$score"
systemctl stop keytransd.socket
check "socket unit stopped: the service stops, the socket file is removed" \
	test "$(prop ActiveState)" = inactive -a ! -e $sock
check "the metrics endpoint answers 503 without the daemon" scrape_is /metrics 503
# SystemCallErrorNumber=EPERM: a call the filter refuses fails with EPERM, which
# the daemon may only log (as for mlock) rather than stop on.
check "no 'Operation not permitted' in the daemon's log (SystemCallFilter)" \
	sh -c "! journalctl -u keytransd.service -o cat | grep -q 'Operation not permitted'"
journalctl -u keytransd.service -o cat | grep -iE "denied|error|cannot|fail" | grep -v "outcome=" |
	sort | uniq -c | sed 's/^/     log: /' | head -10

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
