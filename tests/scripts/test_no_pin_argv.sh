#!/bin/bash
# scripts/run and the README's command blocks never put a PIN on a command line
# (every user sees command lines in ps): a PIN option must take env:NAME, or be
# absent (the tool asks). Usage: test_no_pin_argv.sh SOURCE_ROOT
set -u
root=${1:-$(dirname "$0")/../..}
failed=0
for f in "$root/scripts/run" "$root/README.md"; do
	# --pin / --so-pin / --new-pin followed by anything but env: (PIN values or $VARS).
	bad=$(grep -nE -- '--(so-|new-)?pin([ =]+)([^e -]|e[^n]|en[^v]|env[^:])' "$f" | grep -v '^[0-9]*:.*Never give it as')
	if [ -n "$bad" ]; then
		echo "FAIL: $f puts a PIN on a command line:"
		echo "$bad"
		failed=1
	fi
done
# The check itself must see a PIN on a command line when there is one.
probe=$(printf 'softhsm2-util --import k.pem --pin 1234\n' |
	grep -cE -- '--(so-|new-)?pin([ =]+)([^e -]|e[^n]|en[^v]|env[^:])')
[ "$probe" = 1 ] || { echo "FAIL: the pattern misses a PIN on a command line"; failed=1; }
[ "$failed" = 0 ] && echo "ok: no PIN on a command line in scripts/run and README.md"
exit "$failed"
