#!/bin/bash
# The Debian packages, built, installed and used in a throwaway root, so that this machine is
# left exactly as it was found: in_root.sh does the work (dpkg-buildpackage, apt install,
# the user keytrans, the installed daemon, README.md's installation blocks) inside
# throwaway_root.sh (private mount and PID namespaces, an overlay of / on a tmpfs): packages,
# users, files and processes made there vanish with it. This script copies the tree into a
# private temporary folder, runs in_root.sh there and then checks that the host has no
# keytrans package, user, group, folder or token that it did not have before.
# Root only (the namespaces need it; exit 77, skipped, otherwise); also skipped where an
# overlay of / cannot be mounted (it never installs on the host). KT_KEEP=1 keeps the folder.
# Usage: test_deb.sh SOURCE_ROOT
set -euo pipefail
src=$(cd "${1:?usage: test_deb.sh SOURCE_ROOT}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
packages="keytrans libkeytrans0 libkeytrans-dev python3-keytrans"
t0=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: this test needs root for its throwaway root (mount and PID namespaces)"
	exit 77
fi
for tool in unshare chroot dpkg-buildpackage dh dpkg-checkbuilddeps apt-get softhsm2-util \
	pkcs11-tool openssl cc pkg-config setpriv python3 man meson; do
	command -v "$tool" >/dev/null ||
		{ echo "FAIL: $tool not found: scripts/deps installs what this test needs"; exit 1; }
done

# What the host has that this test could change: compared at the end.
host_state() {
	local p f
	for p in $packages; do
		dpkg-query -W -f='${Package} ${Version} ${Status}\n' "$p" 2>/dev/null || echo "$p: not known"
	done
	getent passwd keytrans || echo "no user keytrans"
	getent group keytrans || echo "no group keytrans"
	getent passwd keytrans-metrics || echo "no user keytrans-metrics"
	for f in /etc/keytrans /run/keytransd /usr/sbin/keytransd /usr/bin/keytrans \
		/usr/local/sbin/keytransd /usr/local/bin/keytrans /usr/lib/python3/dist-packages/keytrans.py \
		/usr/lib/python3/dist-packages/keytrans; do
		if [ -e "$f" ]; then
			stat -c '%n %a %U:%G %s %Y' "$f"
		else
			echo "$f: absent"
		fi
	done
	echo "SoftHSM tokens: $(ls -A /var/lib/softhsm/tokens 2>/dev/null | tr '\n' ' ')"
}
before=$(host_state)

work=$(mktemp -d /tmp/kt-deb.XXXXXX)
chmod 755 "$work"       # apt's _apt user reads the .debs; the keytrans user enters its folders
cleanup() {
	local rc=$?
	if [ -n "${KT_KEEP:-}" ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT

# The tree as it is now (the overlay may not show later changes of /), without builds.
mkdir "$work/keytrans"
tar -C "$src" --anchored --exclude=./.git --exclude='./build*' --exclude=./.keytrans \
	--exclude='./obj-*' --exclude=./debian/tmp --exclude=./debian/.debhelper \
	--exclude='*/__pycache__' -cf - . | tar -C "$work/keytrans" -xf -

if ! probe=$("$here/throwaway_root.sh" --probe "$work" 2>&1); then
	echo "SKIP: no throwaway root here ($probe): the packages are not installed on this host"
	exit 77
fi
rc=0
"$here/throwaway_root.sh" "$work" /bin/bash "$work/keytrans/tests/package/in_root.sh" "$work" || rc=$?

after=$(host_state)
if [ "$before" != "$after" ]; then
	echo "FAIL: the host changed:"
	diff <(echo "$before") <(echo "$after") | sed 's/^/   /'
	rc=1
else
	echo "== the host is as it was: no keytrans package, user, group, folder or token added"
fi
[ "$rc" -eq 0 ] && echo "debian-package: passed in $(($(date +%s) - t0)) s"
exit "$rc"
