#!/bin/bash
# keytransd without systemd, as docs/foreground.md describes it: in the foreground (-f) as an
# unprivileged user (as root: the existing user nobody, through setpriv; else the user running
# the test), the PIN in a file named by [hsm] pin_file that the daemon's user owns (0600), no
# CREDENTIALS_DIRECTORY or NOTIFY_SOCKET, its socket in a folder of its own. Checked:
#  - keytransd -t refuses a PIN file others can read, and a configuration without pin_file;
#  - it serves: logs on stderr ("ready"), runs as that user, wrap and unwrap;
#  - SIGHUP: the configuration is read again (a key added to it is served, logged);
#  - SIGTERM: it stops, exit 0, "stopped" logged, its socket removed.
# Usage: test_foreground.sh KEYTRANSD KEYTRANS
set -euo pipefail
keytransd=$(readlink -f "${1:?usage: test_foreground.sh KEYTRANSD KEYTRANS}")
cli=$(readlink -f "${2:?usage: test_foreground.sh KEYTRANSD KEYTRANS}")
module=/usr/lib/softhsm/libsofthsm2.so
START_WITHIN=30     # s: a start is a login and two key look-ups (as harness.py's START_WITHIN)
RELOAD_WITHIN=30    # s: a reload looks the keys up in the token again
STOP_WITHIN=20      # s: after SIGTERM, requests in flight get at most 10 s (DRAIN_LIMIT)

die() {
	echo "FAIL: $*"
	[ -f "${tmp:-}/stderr.log" ] && { echo "--- keytransd's stderr:"; cat "$tmp/stderr.log"; }
	exit 1
}
for tool in pkcs11-tool openssl setpriv python3; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/deps installs it)"
done
[ -f "$module" ] || die "$module not found: install softhsm2"

if [ "$(id -u)" -eq 0 ]; then
	user=nobody
	uid=$(id -u nobody) gid=$(id -g nobody)
	run_as=(setpriv --reuid="$uid" --regid="$gid" --clear-groups)
else
	user=$(id -un)
	uid=$(id -u) gid=$(id -g)
	run_as=()
fi
as_user() { "${run_as[@]}" "$@"; }
unset CREDENTIALS_DIRECTORY NOTIFY_SOCKET LISTEN_FDS LISTEN_PID WATCHDOG_USEC KEYTRANS_SOCKET

tmp=$(mktemp -d -t kt-fg.XXXXXX)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"
# The daemon's folders, its own: the token, the PIN, the socket's folder.
mkdir -p "$tmp/hsm/tokens" "$tmp/etc" "$tmp/run"
chown -R "$uid:$gid" "$tmp/hsm" "$tmp/etc" "$tmp/run"
chmod 750 "$tmp/run"
printf 'directories.tokendir = %s/hsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp" \
	>"$tmp/hsm/softhsm2.conf"
export SOFTHSM2_CONF=$tmp/hsm/softhsm2.conf
KT_SO_PIN=$(openssl rand -hex 8)
KT_PIN=$(openssl rand -hex 8)
export KT_SO_PIN KT_PIN
p11() {
	local out
	out=$(as_user pkcs11-tool --module "$module" "$@" 2>&1) || die "pkcs11-tool $*: $out"
}
p11 --init-token --label kt-fg --so-pin env:KT_SO_PIN
p11 --token-label kt-fg --login --login-type so --so-pin env:KT_SO_PIN --init-pin --new-pin env:KT_PIN
# Both keys now: the token is not written to while the daemon reads it.
p11 --token-label kt-fg --login --pin env:KT_PIN --keypairgen --key-type rsa:2048 --label kx1 --id 01
p11 --token-label kt-fg --login --pin env:KT_PIN --keypairgen --key-type rsa:2048 --label kx2 --id 02
(umask 077 && printf '%s\n' "$KT_PIN" >"$tmp/etc/pin")
unset KT_SO_PIN KT_PIN
chown "$uid:$gid" "$tmp/etc/pin"
conf=$tmp/etc/keytransd.conf
write_conf() {  # write_conf [KEY SECTION TEXT]: the configuration, with an extra section
	cat >"$conf" <<CONF
[daemon]
socket = $tmp/run/keytransd.sock
socket_mode = 0660
workers = 2
[hsm]
module = $module
token = kt-fg
pin_file = $tmp/etc/pin
[key exchange1]
label = kx1
id = 01
allow_wrap = *
${1:-}
CONF
	chmod 644 "$conf"
}
write_conf
sock=$tmp/run/keytransd.sock
k() { "$cli" -s "$sock" "$@"; }

# ---- the PIN file's checks, and no PIN at all ----
chmod 640 "$tmp/etc/pin"
out=$(as_user "$keytransd" -t -c "$conf" 2>&1) && die "keytransd -t accepted a PIN file of mode 0640"
grep -q "readable by its owner only" <<<"$out" || die "mode 0640 refused, but: $out"
chmod 600 "$tmp/etc/pin"
grep -v '^pin_file' "$conf" >"$tmp/etc/nopin.conf"
out=$(as_user "$keytransd" -t -c "$tmp/etc/nopin.conf" 2>&1) && die "keytransd -t accepted no PIN at all"
grep -q "no PIN: set \[hsm\] pin_file" <<<"$out" || die "no pin_file refused, but: $out"
as_user "$keytransd" -t -c "$conf" | grep -q 'configuration OK' || die "keytransd -t -c $conf"
echo "ok   keytransd -t: a PIN file of mode 0640 and a missing pin_file refused; $user's 0600 file OK"

# ---- in the foreground, as the user ----
# Not through a function: $! is then the daemon's pid (setpriv execs it).
"${run_as[@]}" "$keytransd" -f -c "$conf" >"$tmp/stdout.log" 2>"$tmp/stderr.log" &
pid=$!
deadline=$((SECONDS + START_WITHIN))
until k info >/dev/null 2>&1; do
	kill -0 "$pid" 2>/dev/null || die "keytransd exited at start"
	[ $SECONDS -lt $deadline ] || die "keytransd did not answer within $START_WITHIN s"
	sleep 0.1
done
grep -qE "keytransd\[$pid\] info: ready: 1 keys?," "$tmp/stderr.log" || die "no 'ready' line on stderr"
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$uid" ] || die "keytransd does not run as $user"
[ "$(stat -c '%u %a' "$sock")" = "$uid 660" ] || die "the socket is $(stat -c '%u %a' "$sock")"
key=$(openssl rand -hex 16)
k wrap --to-key exchange1 --alg AES_128 --key "$key" -o "$tmp/blob.bin"
k --json unwrap exchange1 -i "$tmp/blob.bin" >"$tmp/unwrap.json"
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["key"])' "$tmp/unwrap.json")
[ "$got" = "$key" ] || die "unwrap gave $(cat "$tmp/unwrap.json"), wrapped $key"
echo "ok   keytransd -f as $user (uid $uid), PIN from pin_file: logs 'ready' on stderr, wrap and unwrap"

# ---- SIGHUP: the configuration again, with a second key ----
write_conf "[key exchange2]
label = kx2
id = 02"
kill -HUP "$pid"
deadline=$((SECONDS + RELOAD_WITHIN))
until k keys 2>/dev/null | grep -q exchange2; do
	kill -0 "$pid" 2>/dev/null || die "keytransd exited on SIGHUP"
	[ $SECONDS -lt $deadline ] || die "exchange2 not served within $RELOAD_WITHIN s of SIGHUP"
	sleep 0.1
done
grep -q "SIGHUP: reloading $conf" "$tmp/stderr.log" || die "no 'SIGHUP: reloading' on stderr"
grep -q "configuration reloaded" "$tmp/stderr.log" || die "no 'configuration reloaded' on stderr"
echo "ok   SIGHUP: the configuration read again, exchange2 served, both logged on stderr"

# ---- SIGTERM: stop ----
kill -TERM "$pid"
deadline=$((SECONDS + STOP_WITHIN))
while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
kill -0 "$pid" 2>/dev/null && die "keytransd still running $STOP_WITHIN s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || die "keytransd exited with $rc after SIGTERM"
grep -q "info: stopped" "$tmp/stderr.log" || die "no 'stopped' on stderr"
[ ! -e "$sock" ] || die "keytransd left its socket behind"
[ ! -s "$tmp/stdout.log" ] || die "keytransd wrote to stdout: $(cat "$tmp/stdout.log")"
echo "ok   SIGTERM: exit 0, 'stopped' on stderr, the socket removed, nothing on stdout"
