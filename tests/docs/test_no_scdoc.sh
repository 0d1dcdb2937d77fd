#!/bin/bash
# A machine without scdoc: meson setup works with the default -Dman=auto (the man pages are
# skipped, and it says so), and fails with -Dman=enabled (what debian/rules asks for).
# PATH is a folder of links to every program of Debian's default PATH but scdoc.
# Usage: test_no_scdoc.sh SOURCE_ROOT
set -uo pipefail
src=$(cd "${1:?usage: test_no_scdoc.sh SOURCE_ROOT}" && pwd)
tmp=$(mktemp -d -t kt-no-scdoc.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
declare -A seen=([scdoc]=1)
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
	links=()
	for f in "$d"/*; do
		name=${f##*/}
		[ -x "$f" ] && [ ! -d "$f" ] && [ -z "${seen[$name]:-}" ] || continue
		seen[$name]=1
		links+=("$f")
	done
	[ ${#links[@]} -eq 0 ] || ln -s -t "$tmp/bin" "${links[@]}"
done
export PATH=$tmp/bin
command -v scdoc >/dev/null && { echo "FAIL: scdoc is still on PATH"; exit 1; }

if ! meson setup "$tmp/auto" "$src" >"$tmp/auto.log" 2>&1; then
	tail -20 "$tmp/auto.log"
	echo "FAIL: meson setup (-Dman=auto, the default) fails without scdoc"
	exit 1
fi
grep -q "scdoc not found: the man pages are not built" "$tmp/auto.log" ||
	{ tail -20 "$tmp/auto.log"; echo "FAIL: meson setup does not say that the man pages are skipped"; exit 1; }
echo "ok   meson setup without scdoc: configured, the man pages skipped with a message"
if meson setup "$tmp/enabled" "$src" -Dman=enabled >"$tmp/enabled.log" 2>&1; then
	echo "FAIL: meson setup -Dman=enabled without scdoc succeeded"
	exit 1
fi
grep -q "scdoc" "$tmp/enabled.log" ||
	{ tail -20 "$tmp/enabled.log"; echo "FAIL: -Dman=enabled failed, but not on scdoc"; exit 1; }
echo "ok   meson setup -Dman=enabled without scdoc: refused, naming scdoc"
