#!/bin/bash
# Checks the systemd files in DIR (default: the repository's systemd/):
#  1. `systemd-analyze security --offline=true` rates keytransd.service at an
#     overall exposure of at most 1.0 (always run; systemd-analyze must exist);
#  2. the units pass `systemd-analyze verify` (in a scratch root, so that
#     /usr/sbin/keytransd need not be installed);
#  3. keytrans.sysusers and keytrans.tmpfiles pass systemd-sysusers and
#     systemd-tmpfiles (applied to a scratch root when run as root).
# Usage: test_units.sh [DIR]
set -uo pipefail

dir=${1:-$(dirname "$0")/../../systemd}
dir=$(cd "$dir" && pwd) || { echo "FAIL: no folder $1"; exit 1; }
service=$dir/keytransd.service
socket=$dir/keytransd.socket
max=1.0
failed=0

fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}

for f in "$service" "$socket" "$dir/keytrans.sysusers" "$dir/keytrans.tmpfiles"; do
	[ -f "$f" ] || { echo "FAIL: $f is missing"; exit 1; }
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "FAIL: systemd-analyze not found: install the Debian package 'systemd' (scripts/deps does)"
	exit 1
fi
echo "# $(systemd-analyze --version | head -1)"

# 1. Exposure.
out=$(systemd-analyze security --offline=true --no-pager "$service" 2>&1)
rc=$?
score=$(printf '%s\n' "$out" |
	sed -n 's/.*Overall exposure level for keytransd\.service: *\([0-9][0-9]*\.[0-9]*\).*/\1/p')
if [ -z "$score" ]; then
	printf '%s\n' "$out"
	echo "FAIL: no 'Overall exposure level' in the output of systemd-analyze security (exit $rc)"
	exit 1
fi
echo "exposure: $score (limit $max)"
# What still counts against the unit, for the record.
printf '%s\n' "$out" | grep '✗' | sed 's/^/  /'
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
	fail "overall exposure $score is above $max"
fi

# Settings the daemon depends on, which a change chasing a better score could break.
get() { sed -n "s/^[[:space:]]*$1=//p" "$2" | tail -1; }
case $(get PrivateUsers "$service") in
'' | no | false | off | 0) ;;
*) fail "PrivateUsers= would map every peer to nobody (SO_PEERCRED, SO_PEERGROUPS)" ;;
esac
[ "$(get Type "$service")" = notify ] || fail "Type= is not notify"
[ "$(get LoadCredential "$service")" = pin:/etc/keytrans/pin ] || fail "LoadCredential= is not pin:/etc/keytrans/pin"
[ "$(get ReadWritePaths "$service")" = -/var/lib/softhsm ] || fail "ReadWritePaths= is not -/var/lib/softhsm"
listen=$(get ListenStream "$socket")
conf=$dir/../conf/keytransd.conf
if [ -f "$conf" ]; then
	confsock=$(sed -n 's/^[[:space:]]*socket[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p' "$conf" | head -1)
	[ "$confsock" = "$listen" ] ||
		fail "keytransd.socket listens on $listen but the sample configuration says socket = $confsock"
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# 2. systemd-analyze verify, in a scratch root holding the system's units (for
# sysinit.target and the like), ours and a stand-in /usr/sbin/keytransd.
root=$scratch/root
mkdir -p "$root/usr/sbin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/keytransd"
chmod 755 "$root/usr/sbin/keytransd"
for d in /usr/lib/systemd/system /lib/systemd/system; do
	[ -d "$d" ] && { cp -a "$d" "$root/usr/lib/systemd/" && break; }
done
cp "$service" "$socket" "$root/etc/systemd/system/"
out=$(systemd-analyze verify --man=no --recursive-errors=no --root="$root" \
	keytransd.socket keytransd.service 2>&1)
rc=$?
if printf '%s\n' "$out" | grep -qiE "unrecognized option|failed to connect to bus|failed to initialize manager"; then
	printf '%s\n' "$out" | sed 's/^/  /'
	echo "NOTE: systemd-analyze verify cannot run here without a running manager: verify skipped"
elif [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out" | sed "s|$root/etc/systemd/system/|systemd/|g; s/^/  /"
	fail "systemd-analyze verify (exit $rc)"
else
	echo "verify: keytransd.socket keytransd.service OK"
fi

# 3. sysusers.d and tmpfiles.d. The scratch root starts with this system's
# users and groups (softhsm, if SoftHSM is installed).
root=$scratch/sysroot
mkdir -p "$root/etc"
cp /etc/passwd /etc/group "$root/etc/" 2>/dev/null
out=$(systemd-sysusers --dry-run --root="$root" "$dir/keytrans.sysusers" 2>&1)
rc=$?
if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -qiE "ignoring|failed|invalid"; then
	printf '%s\n' "$out" | sed 's/^/  /'
	fail "systemd-sysusers --dry-run (exit $rc)"
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "NOTE: not root: keytrans.sysusers checked with --dry-run only; keytrans.tmpfiles not applied"
else
	cp /etc/shadow /etc/gshadow "$root/etc/" 2>/dev/null
	# As an administrator might have left them: tmpfiles must put them right.
	mkdir -m 0755 "$root/etc/keytrans"
	(umask 022 && echo 1234 >"$root/etc/keytrans/pin" && echo >"$root/etc/keytrans/keytransd.conf")
	out=$(systemd-sysusers --root="$root" "$dir/keytrans.sysusers" 2>&1 &&
		systemd-tmpfiles --create --root="$root" "$dir/keytrans.tmpfiles" 2>&1)
	rc=$?
	[ $rc -eq 0 ] || { printf '%s\n' "$out" | sed 's/^/  /'; fail "systemd-sysusers/systemd-tmpfiles (exit $rc)"; }
	grep -q '^keytrans:x:[0-9]*:[0-9]*:[^:]*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" ||
		fail "no user keytrans with home /nonexistent and shell /usr/sbin/nologin: $(grep '^keytrans:' "$root/etc/passwd")"
	kt_uid=$(sed -n 's/^keytrans:x:\([0-9]*\):.*/\1/p' "$root/etc/passwd")
	kt_gid=$(sed -n 's/^keytrans:x:\([0-9]*\):.*/\1/p' "$root/etc/group")
	for want in "/etc/keytrans 750 0 $kt_gid" "/etc/keytrans/keytransd.conf 640 0 $kt_gid" \
		"/etc/keytrans/pin 600 0 0" "/run/keytransd 750 $kt_uid $kt_gid"; do
		# shellcheck disable=SC2086 # split into path, mode, uid, gid
		set -- $want
		got=$(stat -c '%a %u %g' "$root$1" 2>/dev/null)
		[ "$got" = "$2 $3 $4" ] || fail "$1 is '${got:-missing}', want mode/uid/gid '$2 $3 $4'"
	done
	[ $failed -eq 0 ] && echo "sysusers, tmpfiles: OK (user keytrans $kt_uid:$kt_gid; /etc/keytrans, its files, /run/keytransd)"
fi

if [ $failed -ne 0 ]; then
	echo "$failed check(s) failed"
	exit 1
fi
echo "all checks passed"
