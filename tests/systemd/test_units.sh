#!/bin/bash
# Checks the systemd files in DIR (default: the repository's systemd/):
#  1. `systemd-analyze security --offline=true` rates keytransd.service at an
#     overall exposure of at most 1.0 (always run; systemd-analyze must exist);
#  2. the units pass `systemd-analyze verify` (in a scratch root, so that
#     /usr/sbin/keytransd need not be installed);
#  3. the same two for keytransd.service with each drop-in of DIR/modules/
#     (*.conf, docs/hsm-modules.md) applied on its own, each at most 1.0 too,
#     and with the one-token drop-in of docs/systemd.md;
#  4. keytrans.sysusers and keytrans.tmpfiles pass systemd-sysusers and
#     systemd-tmpfiles (applied to a scratch root when run as root), and so
#     do the modules' sysusers files (DIR/modules/*.sysusers);
#  5. keytrans-metrics.socket and keytrans-metrics@.service (docs/metrics.md):
#     what the scrape endpoint relies on, `systemd-analyze verify`, and an
#     exposure of the service of at most $metrics_max.
# Usage: test_units.sh [DIR]
set -uo pipefail

dir=${1:-$(dirname "$0")/../../systemd}
dir=$(cd "$dir" && pwd) || { echo "FAIL: no folder $1"; exit 1; }
service=$dir/keytransd.service
socket=$dir/keytransd.socket
msocket=$dir/keytrans-metrics.socket
mservice=$dir/keytrans-metrics@.service
max=1.0
metrics_max=1.0     # 0.4 with systemd 252
failed=0

fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}

for f in "$service" "$socket" "$msocket" "$mservice" "$dir/keytrans.sysusers" "$dir/keytrans.tmpfiles"; do
	[ -f "$f" ] || { echo "FAIL: $f is missing"; exit 1; }
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "FAIL: systemd-analyze not found: install the Debian package 'systemd' (scripts/deps does)"
	exit 1
fi
echo "# $(systemd-analyze --version | head -1)"

# Settings the daemon depends on, which a change chasing a better score could break.
get() { sed -n "s/^[[:space:]]*$1=//p" "$2" | tail -1; }
case $(get PrivateUsers "$service") in
'' | no | false | off | 0) ;;
*) fail "PrivateUsers= would map every peer to nobody (SO_PEERCRED, SO_PEERGROUPS)" ;;
esac
[ "$(get Type "$service")" = notify ] || fail "Type= is not notify"
[ "$(get LoadCredential "$service")" = pin:/etc/keytrans/pin ] || fail "LoadCredential= is not pin:/etc/keytrans/pin"
[ "$(get ReadWritePaths "$service")" = -/var/lib/softhsm/tokens ] || fail "ReadWritePaths= is not -/var/lib/softhsm/tokens"
# The daemon sees only systemd's copy of the PIN: the source is checked before each start.
grep -qx "ExecStartPre=/usr/sbin/keytransd --check-pin=$(get LoadCredential "$service" | cut -d: -f2-)" "$service" ||
	fail "no ExecStartPre=/usr/sbin/keytransd --check-pin= on the source of LoadCredential="
# systemd 252 hides the credentials from ExecReload=: its check must not read the PIN.
grep '^ExecReload=/usr/sbin/keytransd' "$service" | grep -qv -- '--no-pin' &&
	fail "ExecReload= runs keytransd -t without --no-pin: the reload would fail on the hidden credential"
[ -n "$(get MemoryMax "$service")" ] && [ -n "$(get TasksMax "$service")" ] || fail "no MemoryMax= or TasksMax="
listen=$(get ListenStream "$socket")
conf=$dir/../conf/keytransd.conf
if [ -f "$conf" ]; then
	confsock=$(sed -n 's/^[[:space:]]*socket[[:space:]]*=[[:space:]]*\([^[:space:];]*\).*/\1/p' "$conf" | head -1)
	[ "$confsock" = "$listen" ] ||
		fail "keytransd.socket listens on $listen but the sample configuration says socket = $confsock"
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# A scratch root for systemd-analyze: the system's units (for sysinit.target
# and the like), ours, the drop-ins given (into keytransd.service.d/) and a
# stand-in /usr/sbin/keytransd (verify checks that executables exist).
sysunits=$scratch/system
for d in /usr/lib/systemd/system /lib/systemd/system; do
	[ -d "$d" ] && { cp -a "$d" "$sysunits" && break; }
done
make_root() { # make_root ROOT [DROP-IN...]
	local root=$1
	shift
	mkdir -p "$root/usr/sbin" "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system/keytransd.service.d"
	printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/keytransd"
	printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/keytrans"
	chmod 755 "$root/usr/sbin/keytransd" "$root/usr/bin/keytrans"
	[ -d "$sysunits" ] && cp -a "$sysunits" "$root/usr/lib/systemd/system"
	cp "$service" "$socket" "$msocket" "$mservice" "$root/etc/systemd/system/"
	[ $# -eq 0 ] || cp "$@" "$root/etc/systemd/system/keytransd.service.d/"
}

# The overall exposure of keytransd.service in ROOT, printed and checked
# against $max; the items that count against it are printed too, those
# already counted against the unit alone ($base_items) left out.
base_items=""
exposure() { # exposure ROOT WHAT
	local out rc score items
	out=$(systemd-analyze security --offline=true --root="$1" --no-pager keytransd.service 2>&1)
	rc=$?
	score=$(printf '%s\n' "$out" |
		sed -n 's/.*Overall exposure level for keytransd\.service: *\([0-9][0-9]*\.[0-9]*\).*/\1/p')
	if [ -z "$score" ]; then
		printf '%s\n' "$out" | sed 's/^/  /'
		fail "$2: no 'Overall exposure level' in the output of systemd-analyze security (exit $rc)"
		return 1
	fi
	echo "exposure$3: $score (limit $max)"
	# One space between words: the column widths vary with the longest text.
	items=$(printf '%s\n' "$out" | grep '✗' | tr -s ' ')
	if [ -z "$base_items" ]; then
		base_items=$items
		printf '%s\n' "$items" | sed 's/^/  /'
	else
		printf '%s\n' "$items" | grep -vxF -- "$base_items" | sed 's/^/  + /'
	fi
	if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
		fail "$2: overall exposure $score is above $max"
	fi
}

# systemd-analyze verify of UNITS in ROOT (default: keytransd's two).
verify() { # verify ROOT WHAT [UNITS...]
	local out rc units=("${@:3}")
	[ ${#units[@]} -gt 0 ] || units=(keytransd.socket keytransd.service)
	out=$(systemd-analyze verify --man=no --recursive-errors=no --root="$1" "${units[@]}" 2>&1)
	rc=$?
	if printf '%s\n' "$out" | grep -qiE "unrecognized option|failed to connect to bus|failed to initialize manager"; then
		printf '%s\n' "$out" | sed 's/^/  /'
		echo "NOTE: systemd-analyze verify cannot run here without a running manager: verify skipped"
	elif [ $rc -ne 0 ] || [ -n "$out" ]; then
		printf '%s\n' "$out" | sed "s|$1/etc/systemd/system/|systemd/|g; s/^/  /"
		fail "$2: systemd-analyze verify (exit $rc)"
	else
		echo "verify: $2 OK"
	fi
}

# 1, 2. The units as shipped.
make_root "$scratch/root"
exposure "$scratch/root" keytransd.service "" || exit 1
verify "$scratch/root" "keytransd.socket keytransd.service"

# 3. Each module's drop-in on its own, as docs/hsm-modules.md installs it.
modules=$dir/modules
for dropin in "$modules"/*.conf; do
	[ -f "$dropin" ] || continue
	name=modules/$(basename "$dropin")
	case $(get PrivateUsers "$dropin") in
	'' | no | false | off | 0) ;;
	*) fail "$name: PrivateUsers= would map every peer to nobody" ;;
	esac
	root=$scratch/root-$(basename "$dropin" .conf)
	make_root "$root" "$dropin"
	exposure "$root" "keytransd.service + $name" " with $name"
	verify "$root" "keytransd.service + $name"
done

# 3b. The one-token drop-in of docs/systemd.md ("One token"): the store
# read-only, only the token's own folder writable.
onetoken=$scratch/token.conf
printf '[Service]\nReadWritePaths=\nReadWritePaths=/var/lib/softhsm/tokens/%s\n' \
	0f9e4c1a-5b2d-7e3f-8a6b-1c2d3e4f5a6b >"$onetoken"
root=$scratch/root-token
make_root "$root" "$onetoken"
exposure "$root" "keytransd.service + one-token drop-in" " with the one-token drop-in"
verify "$root" "keytransd.service + one-token drop-in"

# 4. sysusers.d and tmpfiles.d. The scratch root starts with this system's
# users and groups (softhsm, if SoftHSM is installed).
root=$scratch/sysroot
mkdir -p "$root/etc"
cp /etc/passwd /etc/group "$root/etc/" 2>/dev/null
module_sysusers=()
for f in "$modules"/*.sysusers; do
	[ -f "$f" ] && module_sysusers+=("$f")
done
for f in "$dir/keytrans.sysusers" "${module_sysusers[@]}"; do
	# A module's file comes after keytrans.sysusers, as it is installed.
	out=$(systemd-sysusers --dry-run --root="$root" "$dir/keytrans.sysusers" "$f" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -qiE "ignoring|failed|invalid"; then
		printf '%s\n' "$out" | sed 's/^/  /'
		fail "systemd-sysusers --dry-run $(basename "$f") (exit $rc)"
	fi
done
if [ "$(id -u)" -ne 0 ]; then
	echo "NOTE: not root: the sysusers files checked with --dry-run only; keytrans.tmpfiles not applied"
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
	# Each module's memberships (m lines), applied on top.
	for f in "${module_sysusers[@]}"; do
		name=$(basename "$f")
		out=$(systemd-sysusers --root="$root" "$f" 2>&1) ||
			{ printf '%s\n' "$out" | sed 's/^/  /'; fail "systemd-sysusers $name"; continue; }
		while read -r user group; do
			if grep -qE "^$group:[^:]*:[0-9]+:(.*,)?$user(,.*)?\$" "$root/etc/group"; then
				echo "sysusers: $name: $user is a member of $group"
			else
				fail "$name: $user is not a member of $group: $(grep "^$group:" "$root/etc/group")"
			fi
		done < <(sed -n 's/^m[[:space:]]\+\([^[:space:]]\+\)[[:space:]]\+\([^[:space:]]\+\).*/\1 \2/p' "$f")
	done
fi

# 5. The metrics units (docs/metrics.md): one process per connection with the
# connection on stdin and stdout, as `keytrans stats --prometheus --http`
# expects; loopback unless widened on purpose; a user of its own, let through
# keytransd's socket by its group only.
[ "$(get Accept "$msocket")" = yes ] || fail "keytrans-metrics.socket: Accept= is not yes"
case $(get ListenStream "$msocket") in
127.0.0.1:* | "[::1]:"*) ;;
*) fail "keytrans-metrics.socket listens on $(get ListenStream "$msocket"), not on loopback only" ;;
esac
[ "$(get StandardInput "$mservice")" = socket ] || fail "keytrans-metrics@.service: StandardInput= is not socket"
mexec=$(get ExecStart "$mservice")
[ "$mexec" = "/usr/bin/keytrans -s $listen stats --prometheus --http" ] ||
	fail "keytrans-metrics@.service: ExecStart=$mexec is not keytrans -s $listen (keytransd.socket's) stats --prometheus --http"
muser=$(get User "$mservice")
case $muser in
'' | root | 0 | keytrans) fail "keytrans-metrics@.service: User=${muser:-(none)} is not an unprivileged user of its own" ;;
*) grep -qE "^u[[:space:]]+$muser[[:space:]]" "$dir/keytrans.sysusers" ||
	fail "keytrans-metrics@.service: User=$muser is not made by keytrans.sysusers" ;;
esac
[ "$(get SupplementaryGroups "$mservice")" = "$(get SocketGroup "$socket")" ] ||
	fail "keytrans-metrics@.service: SupplementaryGroups= is not keytransd.socket's SocketGroup=$(get SocketGroup "$socket")"
verify "$scratch/root" "keytrans-metrics.socket keytrans-metrics@.service" \
	keytrans-metrics.socket keytrans-metrics@.service
out=$(systemd-analyze security --offline=true --root="$scratch/root" --no-pager keytrans-metrics@0.service 2>&1)
score=$(printf '%s\n' "$out" |
	sed -n 's/.*Overall exposure level for keytrans-metrics@0\.service: *\([0-9][0-9]*\.[0-9]*\).*/\1/p')
if [ -z "$score" ]; then
	printf '%s\n' "$out" | sed 's/^/  /'
	fail "keytrans-metrics@.service: no 'Overall exposure level' in the output of systemd-analyze security"
else
	echo "exposure of keytrans-metrics@.service: $score (limit $metrics_max)"
	printf '%s\n' "$out" | grep '✗' | tr -s ' ' | sed 's/^/  /'
	awk -v s="$score" -v m="$metrics_max" 'BEGIN { exit !(s > m) }' &&
		fail "keytrans-metrics@.service: overall exposure $score is above $metrics_max"
fi

if [ $failed -ne 0 ]; then
	echo "$failed check(s) failed"
	exit 1
fi
echo "all checks passed"
