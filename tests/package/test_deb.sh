#!/bin/bash
# The Debian packages as an operator and a developer meet them:
#  1. dpkg-buildpackage -us -uc -b in a copy of the source tree;
#  2. apt-get install of keytrans, libkeytrans0, libkeytrans-dev and
#     python3-keytrans on this machine, and what their maintainer scripts did (user and group keytrans,
#     /etc/keytrans and /run/keytransd with their owners and modes);
#  3. the installed /usr/sbin/keytransd in the foreground as user keytrans,
#     with a configuration in a temporary folder and a private SoftHSM token,
#     called by the installed /usr/bin/keytrans: info, keys, pubkey, wrap and
#     unwrap (to the HSM key and to the exported public key), copp-sign/open;
#  4. the README's first_call.c, built with `pkg-config --cflags --libs
#     libkeytrans` against libkeytrans-dev, run against that daemon, and the
#     Python module of python3-keytrans imported by the system python3;
#  5. the shipped /etc/keytrans/keytransd.conf, unchanged, served the way
#     keytransd.service runs it (PIN as the credential "pin", default socket);
#  6. clean-up: the packages purged, and the user, group and folders they made
#     removed again when they were not there before.
# Root only (exit 77, skipped, otherwise). KT_KEEP=1 keeps the temporary folder.
# Usage: test_deb.sh SOURCE_ROOT
set -eEuo pipefail
src=$(cd "${1:?usage: test_deb.sh SOURCE_ROOT}" && pwd)
packages="keytrans libkeytrans0 libkeytrans-dev python3-keytrans"
module=/usr/lib/softhsm/libsofthsm2.so
t0=$(date +%s)

say() { echo "== $(($(date +%s) - t0)) s: $*"; }
die() {
	echo "FAIL: $*"
	exit 1
}
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND"' ERR

# apt_get LOG ARG...: apt-get ARG... (its output in LOG), waiting while another apt-get or
# dpkg holds a lock: DPkg::Lock::Timeout covers dpkg's locks only, the downloads' lock
# (/var/cache/apt/archives/lock, taken by every install and purge) fails at once; such a
# run is tried again every 5 s, for up to 10 minutes.
apt_get() {
	local log=$1 start
	shift
	start=$(date +%s)
	while ! apt-get -o DPkg::Lock::Timeout=600 "$@" >"$log" 2>&1; do
		if ! grep -q -e "Could not get lock" -e "Unable to lock" "$log" ||
			[ $(($(date +%s) - start)) -ge 600 ]; then
			return 1
		fi
		sleep 5
	done
}

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: this test installs packages: run it as root (CI does)"
	exit 77
fi
for tool in dpkg-buildpackage dh dpkg-checkbuilddeps apt-get softhsm2-util pkcs11-tool openssl \
	cc pkg-config setpriv python3 man; do
	command -v "$tool" >/dev/null ||
		die "$tool not found: scripts/deps installs what this test needs"
done
[ -f "$module" ] || die "$module not found: install softhsm2 (scripts/deps does)"

# A clean environment, as an operator's: nothing from meson test or the sanitizer builds.
unset CC CXX CFLAGS CPPFLAGS LDFLAGS LD_LIBRARY_PATH LD_PRELOAD MALLOC_PERTURB_ ASAN_OPTIONS \
	UBSAN_OPTIONS KEYTRANS_SOCKET SOFTHSM2_CONF CREDENTIALS_DIRECTORY DEB_BUILD_OPTIONS
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin

# What was there before, so that the clean-up removes only what this test made.
pre_installed=""
for p in $packages; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$'; then
		pre_installed="$pre_installed $p"
	fi
done
user_existed=0 group_existed=0 run_existed=0 etc_existed=0
getent passwd keytrans >/dev/null && user_existed=1
getent group keytrans >/dev/null && group_existed=1
[ -e /run/keytransd ] && run_existed=1
[ -e /etc/keytrans ] && etc_existed=1
[ -n "$pre_installed" ] &&
	echo "note: already installed:$pre_installed; they are replaced by the packages built here and left installed"

work=$(mktemp -d /tmp/kt-deb.XXXXXX)
chmod 755 "$work"       # apt's _apt user reads the .debs; the keytrans user enters its folders
installed=0
pids=()

cleanup() {
	local rc=$? p purge=""
	trap - ERR
	set +e
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ "$installed" -eq 1 ]; then
		for p in $packages; do
			case " $pre_installed " in *" $p "*) ;; *) purge="$purge $p" ;; esac
		done
		if [ -n "$purge" ]; then
			say "purging$purge"
			apt_get "$work/purge.log" purge -y -qq $purge ||
				{ cat "$work/purge.log"; rc=1; }
			for p in $purge; do
				if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
					echo "FAIL: $p is still installed"
					rc=1
				fi
			done
		fi
	fi
	[ "$user_existed" -eq 0 ] && getent passwd keytrans >/dev/null && userdel keytrans
	[ "$group_existed" -eq 0 ] && getent group keytrans >/dev/null && groupdel keytrans
	[ "$run_existed" -eq 0 ] && rm -rf /run/keytransd
	[ "$etc_existed" -eq 0 ] && rm -rf /etc/keytrans
	if [ -n "${KT_KEEP:-}" ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
	[ "$rc" -eq 0 ] && echo "debian-package: passed in $(($(date +%s) - t0)) s"
	exit "$rc"
}
trap cleanup EXIT

# ---- 1. build, in a copy of the tree (dpkg-buildpackage writes into the parent folder) ----
say "copying $src"
mkdir "$work/keytrans"
tar -C "$src" --anchored --exclude=./.git --exclude='./build*' --exclude=./.keytrans \
	--exclude='./obj-*' --exclude=./debian/tmp --exclude=./debian/.debhelper \
	--exclude='*/__pycache__' -cf - . | tar -C "$work/keytrans" -xf -
dpkg-checkbuilddeps "$work/keytrans/debian/control" ||
	die "build dependencies missing (scripts/deps, or apt-get build-dep ./)"
say "dpkg-buildpackage -us -uc -b"
if ! (cd "$work/keytrans" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
	>"$work/build.log" 2>&1; then
	tail -80 "$work/build.log"
	die "dpkg-buildpackage failed (log above)"
fi
grep -E '^(dpkg-deb: building|dpkg-shlibdeps: warning|dh_[a-z]+: warning)' "$work/build.log" || true
version=$(dpkg-parsechangelog -l "$work/keytrans/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
debfile() {     # debfile PACKAGE: its .deb, Architecture: any or all
	if [ -f "$work/${1}_${version}_all.deb" ]; then
		echo "$work/${1}_${version}_all.deb"
	else
		echo "$work/${1}_${version}_$arch.deb"
	fi
}
for p in $packages; do
	deb=$(debfile "$p")
	[ -f "$deb" ] || die "$deb was not built"
	echo "-- $(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
	dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print "   " $1, $6, $7, $8 }'
done

# What each package must hold.
has() {
	local deb pattern
	deb=$(debfile "$1")
	shift
	for pattern in "$@"; do
		dpkg-deb -c "$deb" | awk '{ print $6 }' | grep -qE "^\./$pattern\$" ||
			die "$(basename "$deb") has no $pattern"
	done
}
has keytrans usr/sbin/keytransd usr/bin/keytrans etc/keytrans/keytransd.conf \
	'(usr/)?lib/systemd/system/keytransd\.service' '(usr/)?lib/systemd/system/keytransd\.socket' \
	usr/lib/sysusers.d/keytrans.conf usr/lib/tmpfiles.d/keytrans.conf \
	usr/share/man/man1/keytrans.1.gz usr/share/man/man5/keytransd.conf.5.gz \
	usr/share/man/man8/keytransd.8.gz usr/share/doc/keytrans/README.md \
	usr/share/doc/keytrans/systemd.md usr/share/doc/keytrans/copyright
has libkeytrans0 "usr/lib/[^/]+/libkeytrans\.so\.0" "usr/lib/[^/]+/libkeytrans\.so\.0\.1\.0"
has libkeytrans-dev usr/include/keytrans.h usr/include/keytrans_status.h \
	"usr/lib/[^/]+/libkeytrans\.so" "usr/lib/[^/]+/pkgconfig/keytrans\.pc" \
	usr/share/man/man3/libkeytrans.3.gz usr/share/man/man3/kt_unwrap.3.gz
has python3-keytrans usr/lib/python3/dist-packages/keytrans.py
if command -v lintian >/dev/null; then
	say "lintian (for information)"
	lintian --tag-display-limit 0 "$work"/*.changes 2>&1 | grep -v 'root privileges' | sed 's/^/   /' || true
fi

# ---- 2. install ----
say "apt-get install ./keytrans_*.deb ./libkeytrans0_*.deb ./libkeytrans-dev_*.deb ./python3-keytrans_*.deb"
installed=1
debs=()
for p in $packages; do debs+=("$(debfile "$p")"); done
if ! apt_get "$work/install.log" install -y --no-install-recommends "${debs[@]}"; then
	cat "$work/install.log"
	die "apt-get install failed"
fi
grep -E '^(Setting up|Unpacking) ' "$work/install.log" | sed 's/^/   /'

# What the maintainer scripts did: systemd-sysusers and systemd-tmpfiles.
getent passwd keytrans | grep -qE '^keytrans:x:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$' ||
	die "no system user keytrans: $(getent passwd keytrans)"
if getent group softhsm >/dev/null; then
	id -nG keytrans | grep -qw softhsm || die "keytrans is not in group softhsm: $(id -nG keytrans)"
fi
mode() { stat -c '%a %U:%G' "$1"; }
[ "$(mode /etc/keytrans)" = "750 root:keytrans" ] || die "/etc/keytrans is $(mode /etc/keytrans)"
[ "$(mode /etc/keytrans/keytransd.conf)" = "640 root:keytrans" ] ||
	die "/etc/keytrans/keytransd.conf is $(mode /etc/keytrans/keytransd.conf)"
[ "$(mode /run/keytransd)" = "750 keytrans:keytrans" ] || die "/run/keytransd is $(mode /run/keytransd)"
dpkg-query -W -f='${Conffiles}\n' keytrans | grep -q '/etc/keytrans/keytransd.conf' ||
	die "/etc/keytrans/keytransd.conf is not a conffile"
/usr/sbin/keytransd -V | grep -qx "keytransd $version" || die "keytransd -V: $(/usr/sbin/keytransd -V)"
/usr/bin/keytrans --version | grep -q "^keytrans $version" || die "keytrans --version: $(/usr/bin/keytrans --version)"
for page in keytrans.1 keytransd.8 keytransd.conf.5 libkeytrans.3 kt_unwrap.3; do
	man -w "${page##*.}" "${page%.*}" >/dev/null ||
		die "man cannot find ${page%.*}(${page##*.})"
done
echo "   user keytrans (in softhsm), /etc/keytrans 0750 root:keytrans, /run/keytransd 0750 keytrans:keytrans, man pages found"

# ---- 3. the installed daemon and CLI, on a private token ----
as_kt() { setpriv --reuid=keytrans --regid=keytrans --init-groups "$@"; }
hsm=$work/hsm run=$work/run
mkdir -p "$hsm/tokens" "$run"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$hsm" \
	>"$hsm/softhsm2.conf"
chown -R keytrans:keytrans "$hsm" "$run"
export SOFTHSM2_CONF=$hsm/softhsm2.conf
pin=$(openssl rand -hex 8)
# new_token LABEL: a token made as the daemon's user, with an RSA-2048 key pair kx1/01 generated inside.
new_token() {
	as_kt softhsm2-util --init-token --free --label "$1" --so-pin "$(openssl rand -hex 8)" \
		--pin "$pin" >/dev/null
	as_kt pkcs11-tool --module "$module" --token-label "$1" --login --pin "$pin" \
		--keypairgen --key-type rsa:2048 --label kx1 --id 01 >/dev/null
}
say "SoftHSM token kt-deb, RSA-2048 key kx1 generated in it"
new_token kt-deb
(umask 077 && printf '%s\n' "$pin" >"$run/pin")
chown keytrans:keytrans "$run/pin"
cat >"$run/keytransd.conf" <<CONF
[daemon]
socket = keytransd.sock
socket_mode = 0660
workers = 2
[hsm]
module = $module
token = kt-deb
pin_file = pin
[key exchange1]
label = kx1
id = 01
allow_unwrap = group:keytrans
allow_copp_open = group:keytrans
allow_wrap = *
allow_pubkey = *
CONF
sock=$run/keytransd.sock

# start_daemon CONFIG SOCKET [ENV...]: the installed keytransd in the foreground as user keytrans.
start_daemon() {
	local conf=$1 socket=$2 _
	shift 2
	as_kt env "$@" /usr/sbin/keytransd -t -c "$conf" | grep -q 'configuration OK' ||
		die "keytransd -t -c $conf failed"
	# setpriv, then env, exec the daemon: $! is its pid (a function in the background would be a subshell).
	setpriv --reuid=keytrans --regid=keytrans --init-groups env "$@" /usr/sbin/keytransd -f -c "$conf" \
		>>"$work/keytransd.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 300); do
		/usr/bin/keytrans -s "$socket" info >/dev/null 2>&1 && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/keytransd.log"; die "keytransd exited"; }
		sleep 0.1
	done
	cat "$work/keytransd.log"
	die "keytransd did not answer on $socket within 30 s"
}
stop_daemon() {
	local pid=${pids[-1]} rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	unset 'pids[-1]'
	[ "$rc" -eq 0 ] || { cat "$work/keytransd.log"; die "keytransd exited with $rc after SIGTERM"; }
}

say "/usr/sbin/keytransd -f -c $run/keytransd.conf (as keytrans)"
start_daemon "$run/keytransd.conf" "$sock"
k() { /usr/bin/keytrans -s "$sock" "$@"; }
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
cd "$work"

k info | tee info.txt | sed 's/^/   /'
grep -qx 'token_label: kt-deb' info.txt && grep -qx 'key_count: 1' info.txt || die "keytrans info"
k --json keys | python3 -c '
import json, sys
keys = json.load(sys.stdin)["keys"]
assert [(x["name"], x["label"], x["id"], x["bits"], x["exponent"]) for x in keys] == \
    [("exchange1", "kx1", "01", 2048, 65537)], keys' || die "keytrans keys"
k pubkey exchange1 --format pem -o pub.pem
openssl pkey -pubin -in pub.pem -noout -text | grep -q '2048 bit' || die "pubkey: $(cat pub.pem)"
k pubkey exchange1 -o pub.blob
[ "$(stat -c %s pub.blob)" -eq 276 ] || die "PUBLICKEYBLOB of $(stat -c %s pub.blob) bytes"

# wrap to the HSM key, then unwrap
key=$(openssl rand -hex 32)
k wrap --to-key exchange1 --alg AES_256 --key "$key" -o blob.bin
[ "$(stat -c %s blob.bin)" -eq 268 ] || die "SIMPLEBLOB of $(stat -c %s blob.bin) bytes"
k --json unwrap exchange1 -i blob.bin >unwrap.json
[ "$(json key <unwrap.json)" = "$key" ] && [ "$(json alg <unwrap.json)" = CALG_AES_256 ] ||
	die "unwrap gave $(cat unwrap.json), wrapped $key"
# wrap a generated key to the exported public key (OAEP), unwrap to a PLAINTEXTKEYBLOB
k wrap --to pub.pem --alg AES_128 --generate --oaep --key-out k1.bin -o blob2.bin >/dev/null
k unwrap exchange1 --oaep -i blob2.bin -o k2.bin >/dev/null
cmp -s k1.bin k2.bin || die "the generated key and the unwrapped one differ"
[ "$(stat -c %a k2.bin)" = 600 ] || die "the key blob has mode $(stat -c %a k2.bin)"
# a blob that does not decrypt: implicit rejection, and --strict
printf '\x01\x02\x00\x00\x0e\x66\x00\x00\x00\xa4\x00\x00' >bad.bin
head -c 256 /dev/zero | tr '\0' '\1' >>bad.bin
k unwrap exchange1 -i bad.bin -o rejected.bin >/dev/null || die "implicit rejection: unwrap failed"
rc=0
k --json unwrap exchange1 --strict -i bad.bin >strict.json || rc=$?
[ "$rc" -eq 1 ] && [ "$(json error <strict.json)" = UNWRAP_FAILED ] ||
	die "unwrap --strict: exit $rc, $(cat strict.json)"
# COPP
random=$(openssl rand -hex 16)
k --json copp-sign --to-key exchange1 --random "$random" -o sig.bin >sign.json
k --json copp-open exchange1 -i sig.bin --expect-random "$random" >open.json
[ "$(json aes_key <sign.json)" = "$(json aes_key <open.json)" ] || die "copp-open: $(cat open.json)"
echo "   info, keys, pubkey (pem, blob), wrap/unwrap (PKCS#1 to the HSM key, OAEP to the PEM key),"
echo "   implicit rejection and --strict, copp-sign/copp-open: all as expected"

# ---- 4. the README's program, built against libkeytrans-dev ----
say "first_call.c from README.md, cc \$(pkg-config --cflags --libs keytrans)"
awk '/^```c$/ { getline first; if (first ~ /^\/\* first_call\.c/) { on = 1; print first }; next }
	on && /^```$/ { exit } on { print }' "$src/README.md" >first_call.c
[ -s first_call.c ] || die "README.md has no \`\`\`c block starting with /* first_call.c"
[ "$(pkg-config --modversion keytrans)" = "$version" ] ||
	die "pkg-config --modversion keytrans: $(pkg-config --modversion keytrans)"
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o first_call first_call.c $(pkg-config --cflags --libs keytrans)
lib=$(ldd ./first_call | awk '/libkeytrans\.so\.0/ { print $3 }')
dpkg -S "$(readlink -f "$lib")" | grep -q '^libkeytrans0:' || die "first_call uses $lib, not libkeytrans0's"
KEYTRANS_SOCKET=$sock ./first_call | tee first_call.txt | sed 's/^/   /'
grep -q 'token kt-deb' first_call.txt || die "first_call printed $(cat first_call.txt)"
/usr/bin/python3 -c 'import keytrans, sys
print("   python3: %s: %r" % (keytrans.__file__, keytrans.connect(sys.argv[1]).info()))' "$sock" |
	tee python.txt
grep -q "/usr/lib/python3/dist-packages/keytrans.py.*kt-deb" python.txt || die "python3-keytrans"
stop_daemon

# ---- 5. the shipped configuration, as keytransd.service runs it ----
if [ -e /run/keytransd/keytransd.sock ]; then
	echo "note: /run/keytransd/keytransd.sock exists (a keytransd is running?): the shipped configuration is not started"
else
	say "/etc/keytrans/keytransd.conf as shipped: token keytrans, PIN as the credential, default socket"
	new_token keytrans
	# README, steps 2 and 3: the PIN in /etc/keytrans/pin, the configuration checked with it.
	(umask 077 && printf '%s\n' "$pin" >/etc/keytrans/pin)
	CREDENTIALS_DIRECTORY=/etc/keytrans /usr/sbin/keytransd -t -c /etc/keytrans/keytransd.conf |
		grep -q 'configuration OK' || die "keytransd -t with /etc/keytrans/pin as the credential"
	# What LoadCredential= does: a copy of it that only the service's user can read.
	creds=$work/creds
	mkdir "$creds"
	(umask 077 && printf '%s\n' "$pin" >"$creds/pin")
	chown -R keytrans:keytrans "$creds"
	chmod 700 "$creds"
	start_daemon /etc/keytrans/keytransd.conf /run/keytransd/keytransd.sock \
		CREDENTIALS_DIRECTORY="$creds"
	/usr/bin/keytrans info | grep -qx 'token_label: keytrans' || die "keytrans info on the default socket"
	/usr/bin/keytrans wrap --to-key exchange1 --alg AES_128 --generate --key-out k3.bin -o blob3.bin >/dev/null
	/usr/bin/keytrans unwrap exchange1 -i blob3.bin -o k4.bin >/dev/null
	cmp -s k3.bin k4.bin || die "wrap/unwrap on the default socket"
	./first_call | grep -q 'token keytrans' || die "first_call on the default socket"
	[ "$(mode /run/keytransd/keytransd.sock)" = "660 keytrans:keytrans" ] ||
		die "/run/keytransd/keytransd.sock is $(mode /run/keytransd/keytransd.sock)"
	stop_daemon
	[ ! -e /run/keytransd/keytransd.sock ] || die "keytransd left its socket behind"
	echo "   keytrans info, wrap/unwrap and first_call on /run/keytransd/keytransd.sock: as expected"
fi
say "done"
