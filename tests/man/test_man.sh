#!/bin/bash
# Renders each built man page (docs/man) and fails on any warning or error:
#  - man -l with groff's warnings on (man --warnings), as a reader would see it;
#  - groff -t -ww -z -man: every groff warning, for the terminal and the default device;
#  - lexgrog: the NAME line is one that whatis/apropos can index;
# and checks that each page is non-empty and has NAME, SYNOPSIS and DESCRIPTION.
# Usage: test_man.sh PAGE...   (built pages: keytrans.1, keytransd.8, ...)
set -uo pipefail
export LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat
failed=0
fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}

for tool in man groff lexgrog; do
	command -v "$tool" >/dev/null ||
		{ echo "FAIL: $tool not found: install man-db and groff-base (scripts/deps does)"; exit 1; }
done
[ $# -gt 0 ] || { echo "FAIL: no pages given"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

for page in "$@"; do
	name=$(basename "$page")
	before=$failed
	if [ ! -s "$page" ]; then
		fail "$name is missing or empty"
		continue
	fi
	section=${name##*.}
	title=${name%.*}
	grep -q "^\.TH \"$title\" \"$section\"" "$page" || fail "$name: no .TH \"$title\" \"$section\" line"

	# As a reader sees it.
	man --warnings -l "$page" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 0 ] || [ -s "$tmp/err" ]; then
		fail "$name: man -l exited $rc with:"
		sed 's/^/    /' "$tmp/err"
	fi
	lines=$(wc -l <"$tmp/out")
	[ "$lines" -ge 20 ] || fail "$name renders to $lines lines only"
	for heading in NAME SYNOPSIS DESCRIPTION; do
		grep -qx "$heading" "$tmp/out" || fail "$name: no $heading section"
	done
	# Markup that scdoc left alone shows as stray characters.
	if grep -nE '(^|[[:space:](])(\*[A-Za-z][^*[:space:]]*\*|_[A-Za-z][^_[:space:]]*_)([[:space:].,;:)]|$)|\\f[BIR]' \
		"$tmp/out" >"$tmp/stray"; then
		fail "$name: unformatted markup in the rendered page:"
		sed 's/^/    /' "$tmp/stray" | head -10
	fi

	# Every groff warning, for a terminal and for the default (typesetter) device.
	for dev in -Tutf8 -Tps; do
		groff -t -ww -z -man "$dev" "$page" 2>"$tmp/err"
		rc=$?
		if [ $rc -ne 0 ] || [ -s "$tmp/err" ]; then
			fail "$name: groff -ww $dev exited $rc with:"
			sed 's/^/    /' "$tmp/err"
		fi
	done

	# whatis/apropos read the NAME section: "title - description".
	what=$(lexgrog "$page" 2>&1)
	case $what in
	*": \"$title - "*) ;;
	*) fail "$name: lexgrog cannot parse the NAME section: $what" ;;
	esac

	[ "$failed" -eq "$before" ] && echo "ok: $name ($lines lines)"
done

if [ "$failed" -ne 0 ]; then
	echo "$failed problem(s) in the man pages (docs/man/*.scd)"
	exit 1
fi
echo "all $# pages render without warnings"
