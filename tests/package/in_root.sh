#!/bin/bash
# The Debian packages as an operator and a developer meet them, run by test_deb.sh inside a
# throwaway root (throwaway_root.sh: an overlay of / on a tmpfs, private mount and PID
# namespaces), where installing packages and making users changes nothing on the host.
# README.md's blocks are run as written where the README says "run by tests/package/in_root.sh"
# (readme_blocks.py extracts them; answer_prompts.py types the PINs the tools ask for):
#  1. deb-build: apt-get build-dep ./ and dpkg-buildpackage -us -uc -b in the copy of the tree;
#     what each package holds;
#  2. deb-install: apt install ./keytrans_*.deb softhsm2 opensc, then the other three
#     packages; what the maintainer scripts did (user and group keytrans, /etc/keytrans and
#     /run/keytransd with their owners and modes), the man pages;
#  3. the installed keytransd in the foreground as user keytrans on a private token, called by
#     the installed CLI: info, keys, pubkey, wrap and unwrap (to the HSM key and to the exported
#     public key), implicit rejection and --strict, copp-sign/open; the Python module;
#  4. the README's installation steps: deb-token (the token and key, as keytrans), deb-pin,
#     deb-check, the daemon started the way keytransd.service starts it (the PIN as the
#     credential "pin", the default socket; systemctl itself needs systemd as PID 1:
#     tests/systemd/sandbox_check.sh), deb-first-unwrap, keys-admin (keygen and import), and
#     first-call (first_call.c built with pkg-config against libkeytrans-dev);
#  5. contrib/container/keytrans-container-start (the Containerfile's entry point) as keytrans:
#     a first start that makes the token, a second that reuses it;
#  6. building: meson setup, compile and install from the README's "Building", in the copy.
# Usage: in_root.sh WORK    (WORK/keytrans: the copy of the source tree; logs go to WORK)
set -eEuo pipefail
work=$(cd "${1:?usage: in_root.sh WORK}" && pwd)
src=$work/keytrans
packages="keytrans libkeytrans0 libkeytrans-dev python3-keytrans"
module=/usr/lib/softhsm/libsofthsm2.so
t0=$(date +%s)

say() { echo "== $(($(date +%s) - t0)) s: $*"; }
die() {
	echo "FAIL: $*"
	exit 1
}
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND"' ERR

# apt_get LOG ARG...: apt-get ARG..., its output in LOG. In the throwaway root no other
# apt-get runs, but dpkg's lock may still be held by the package build's last step a moment.
apt_get() {
	local log=$1
	shift
	apt-get -o DPkg::Lock::Timeout=600 "$@" >"$log" 2>&1
}

# run_block NAME [VAR=VALUE...]: README.md's block NAME, as written, with bash -e -o pipefail
# in the current folder, on a terminal whose PIN prompts get $KT_SO_PIN and $KT_PIN.
run_block() {
	local name=$1 text
	shift
	text=$(python3 "$src/tests/docs/readme_blocks.py" "$src/README.md" "$name")
	if ! env "$@" python3 "$src/tests/docs/answer_prompts.py" bash -e -o pipefail -c "$text" \
		>"$work/block-$name.log" 2>&1; then
		printf '%s\n--- its output:\n' "$text"
		cat "$work/block-$name.log"
		die "README.md block $name failed"
	fi
	echo "   README.md block $name: ran $(printf '%s\n' "$text" | wc -l) line(s)"
}

# A clean environment, as an operator's: nothing from meson test or the sanitizer builds.
unset CC CXX CFLAGS CPPFLAGS LDFLAGS LD_LIBRARY_PATH LD_PRELOAD MALLOC_PERTURB_ ASAN_OPTIONS \
	UBSAN_OPTIONS KEYTRANS_SOCKET SOFTHSM2_CONF CREDENTIALS_DIRECTORY DEB_BUILD_OPTIONS \
	KT_PIN KT_SO_PIN
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
pids=()
stop_all() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	return 0
}
trap stop_all EXIT

# ---- 1. build: README "Installing the Debian package", first block ----
say "README deb-build in the copy of the tree: apt-get build-dep ./, dpkg-buildpackage -us -uc -b"
# The README's "sudo" is for a user; here root runs it, and sudo may not be installed.
if ! command -v sudo >/dev/null; then
	sudo() { "$@"; }
	export -f sudo
fi
cd "$src"
run_block deb-build DEB_BUILD_OPTIONS="parallel=$(nproc)"
grep -E '^(dpkg-deb: building|dpkg-shlibdeps: warning|dh_[a-z]+: warning)' "$work/block-deb-build.log" || true
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
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
	usr/share/bash-completion/completions/keytrans \
	'(usr/)?lib/systemd/system/keytransd\.service' '(usr/)?lib/systemd/system/keytransd\.socket' \
	usr/lib/sysusers.d/keytrans.conf usr/lib/tmpfiles.d/keytrans.conf \
	usr/share/man/man1/keytrans.1.gz usr/share/man/man5/keytransd.conf.5.gz \
	usr/share/man/man8/keytransd.8.gz usr/share/doc/keytrans/README.md \
	usr/share/doc/keytrans/systemd.md usr/share/doc/keytrans/copyright
has libkeytrans0 "usr/lib/[^/]+/libkeytrans\.so\.0" "usr/lib/[^/]+/libkeytrans\.so\.0\.1\.0"
has libkeytrans-dev usr/include/keytrans.h usr/include/keytrans_status.h \
	"usr/lib/[^/]+/libkeytrans\.so" "usr/lib/[^/]+/pkgconfig/keytrans\.pc" \
	usr/share/man/man3/libkeytrans.3.gz usr/share/man/man3/kt_unwrap.3.gz
has python3-keytrans 'usr/lib/python3/dist-packages/keytrans(\.py|/__init__\.py)'
if command -v lintian >/dev/null; then
	say "lintian (for information)"
	lintian --tag-display-limit 0 "$work"/*.changes 2>&1 | grep -v 'root privileges' | sed 's/^/   /' || true
fi

# ---- 2. install: README, the second block, then the other packages ----
say "README deb-install: apt install ./keytrans_*.deb softhsm2 opensc (in $work)"
cd "$work"
run_block deb-install
grep -E '^(Setting up|Unpacking) ' "$work/block-deb-install.log" | sed 's/^/   /' || true
say "apt-get install ./libkeytrans0_*.deb ./libkeytrans-dev_*.deb ./python3-keytrans_*.deb"
if ! apt_get "$work/install.log" install -y --no-install-recommends "$(debfile libkeytrans0)" \
	"$(debfile libkeytrans-dev)" "$(debfile python3-keytrans)"; then
	cat "$work/install.log"
	die "apt-get install failed"
fi
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" | grep -q 'ok installed' || die "$p is not installed"
done

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
say "SoftHSM token kt-deb, RSA-2048 key kx1 generated in it"
as_kt softhsm2-util --init-token --free --label kt-deb --so-pin "$(openssl rand -hex 8)" \
	--pin "$pin" >/dev/null
as_kt pkcs11-tool --module "$module" --token-label kt-deb --login --pin "$pin" \
	--keypairgen --key-type rsa:2048 --label kx1 --id 01 >/dev/null
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
allow_opm_open = group:keytrans
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
mkdir "$work/cli"
cd "$work/cli"

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
/usr/bin/python3 -c 'import keytrans, sys
print("   python3: %s: %r" % (keytrans.__file__, keytrans.connect(sys.argv[1]).info()))' "$sock" |
	tee python.txt
grep -qE "/usr/lib/python3/dist-packages/keytrans(\.py|/__init__\.py).*kt-deb" python.txt ||
	die "python3-keytrans: $(cat python.txt)"
echo "   info, keys, pubkey (pem, blob), wrap/unwrap (PKCS#1 to the HSM key, OAEP to the PEM key),"
echo "   implicit rejection and --strict, copp-sign/copp-open, the Python module: all as expected"
stop_daemon
unset SOFTHSM2_CONF

# ---- 4. the README's steps 1 to 5, on the default token folder and socket ----
[ ! -e /run/keytransd/keytransd.sock ] || die "/run/keytransd/keytransd.sock exists in the throwaway root"
export KT_SO_PIN KT_PIN
KT_SO_PIN=$(openssl rand -hex 8)
KT_PIN=$(openssl rand -hex 8)
mkdir "$work/readme"
cd "$work/readme"
chmod 755 .
say "README deb-token: softhsm2-util and pkcs11-tool as keytrans, PINs typed"
run_block deb-token
say "README deb-pin: /etc/keytrans/pin, PIN typed"
run_block deb-pin
[ "$(mode /etc/keytrans/pin)" = "600 root:root" ] || die "/etc/keytrans/pin is $(mode /etc/keytrans/pin)"
[ "$(cat /etc/keytrans/pin)" = "$KT_PIN" ] || die "/etc/keytrans/pin does not hold the PIN typed"
say "README deb-check: keytransd -t with the PIN file as the credential"
run_block deb-check
grep -q 'configuration OK' "$work/block-deb-check.log" || die "deb-check: $(cat "$work/block-deb-check.log")"
# README step 4 is systemctl enable --now keytransd.socket (tests/systemd/sandbox_check.sh runs
# that under a real systemd); here the daemon is started as keytransd.service starts it:
# as keytrans, the PIN a copy only it can read (LoadCredential=), the shipped configuration.
creds=$work/creds
mkdir "$creds"
cp /etc/keytrans/pin "$creds/pin"
chown -R keytrans:keytrans "$creds"
chmod 700 "$creds"
chmod 400 "$creds/pin"
say "/etc/keytrans/keytransd.conf as shipped, as keytransd.service runs it"
start_daemon /etc/keytrans/keytransd.conf /run/keytransd/keytransd.sock CREDENTIALS_DIRECTORY="$creds"
/usr/bin/keytrans info | grep -qx 'token_label: keytrans' || die "keytrans info on the default socket"
[ "$(mode /run/keytransd/keytransd.sock)" = "660 keytrans:keytrans" ] ||
	die "/run/keytransd/keytransd.sock is $(mode /run/keytransd/keytransd.sock)"
say "README deb-first-unwrap: wrap and unwrap on the default socket, as root"
run_block deb-first-unwrap
grep -q '"alg": *"CALG_AES_256"' "$work/block-deb-first-unwrap.log" ||
	die "deb-first-unwrap: $(cat "$work/block-deb-first-unwrap.log")"
say "README keys-admin: keygen and import through the daemon, as root"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem 2>/dev/null
run_block keys-admin
say "README first-call: first_call.c with pkg-config against libkeytrans-dev"
awk '/^```c$/ { getline first; if (first ~ /^\/\* first_call\.c/) { on = 1; print first }; next }
	on && /^```$/ { exit } on { print }' "$src/README.md" >first_call.c
[ -s first_call.c ] || die "README.md has no \`\`\`c block starting with /* first_call.c"
[ "$(pkg-config --modversion keytrans)" = "$version" ] ||
	die "pkg-config --modversion keytrans: $(pkg-config --modversion keytrans)"
run_block first-call
lib=$(ldd ./first_call | awk '/libkeytrans\.so\.0/ { print $3 }')
dpkg -S "$(readlink -f "$lib")" | grep -q '^libkeytrans0:' || die "first_call uses $lib, not libkeytrans0's"
grep -q 'token keytrans' "$work/block-first-call.log" || die "first_call: $(cat "$work/block-first-call.log")"
stop_daemon
[ ! -e /run/keytransd/keytransd.sock ] || die "keytransd left its socket behind"

# ---- 5. the container's entry point (contrib/container), on the installed packages ----
# What the Containerfile's ENTRYPOINT does as its USER keytrans, without the container: a first
# start on an empty state folder makes the token, key, PIN file and configuration; a second
# start serves them again. (No container runtime here: the image itself is not built.)
grep -q 'ENTRYPOINT \["/usr/local/bin/keytrans-container-start"\]' "$src/contrib/container/Containerfile" ||
	die "the Containerfile's ENTRYPOINT is not keytrans-container-start"
cstate=$work/container-state
install -d -o keytrans -g keytrans -m 0750 "$cstate"
container_start() {
	setpriv --reuid=keytrans --regid=keytrans --init-groups env KEYTRANS_STATE="$cstate" \
		"$src/contrib/container/keytrans-container-start" >>"$work/container.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 600); do
		/usr/bin/keytrans info >/dev/null 2>&1 && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/container.log"; die "the entry point exited"; }
		sleep 0.1
	done
	cat "$work/container.log"
	die "the entry point's keytransd did not answer within 60 s"
}
say "contrib/container/keytrans-container-start as keytrans: first start, then a second"
cd "$work/readme"
container_start
[ "$(mode "$cstate/pin")" = "600 keytrans:keytrans" ] || die "the entry point's PIN file is $(mode "$cstate/pin")"
/usr/bin/keytrans wrap --to-key exchange1 --alg AES_128 --generate --key-out c1.bin -o cblob.bin >/dev/null
/usr/bin/keytrans unwrap exchange1 -i cblob.bin -o c2.bin >/dev/null
cmp -s c1.bin c2.bin || die "wrap/unwrap through the entry point's daemon"
stop_daemon
grep -q 'info: stopped' "$work/container.log" || die "no 'stopped' in the entry point's log"
container_start
/usr/bin/keytrans unwrap exchange1 -i cblob.bin -o c3.bin >/dev/null
cmp -s c1.bin c3.bin || die "the second start does not serve the first start's key"
stop_daemon
[ "$(grep -c 'first start' "$work/container.log")" -eq 1 ] || die "the token was made twice"
echo "   first start: token, key, PIN file (0600 keytrans), configuration; serves; SIGTERM exit 0;"
echo "   second start: the same key served again"

# ---- 6. README "Building": meson setup, compile and install, in the copy of the tree ----
say "README building: meson setup build && meson compile -C build; meson install -C build"
cd "$src"
run_block building
/usr/local/sbin/keytransd -V | grep -qx "keytransd $version" || die "meson install: no /usr/local/sbin/keytransd"
say "done"
