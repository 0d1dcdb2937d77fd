#!/bin/bash
# Runs a command as root in a throwaway copy of this machine's root file system:
# private mount and PID namespaces, an overlay whose lower layer is / and whose
# upper layer is a fresh tmpfs, fresh /tmp and /run, /proc of the new PID
# namespace, /dev and /sys of the host. What the command installs, the users it
# makes and the processes it leaves all vanish with the namespaces when it ends;
# only SHARED_DIR (bound at the same path) is the host's, for the results.
#
#   throwaway_root.sh SHARED_DIR COMMAND...      (root; exit status: COMMAND's)
#   throwaway_root.sh --probe SHARED_DIR         (exit 0 if the overlay can be made here)
#
# The overlay shows the files of / as they were when it was made (changes made
# to / later may or may not show), so what the command needs from the tree goes
# in SHARED_DIR first.
set -euo pipefail

probe=0
if [ "${1:-}" = --probe ]; then
	probe=1
	shift
fi
shared=$(cd "${1:?usage: throwaway_root.sh [--probe] SHARED_DIR [COMMAND...]}" && pwd)
shift

if [ "${KT_THROWAWAY_INNER:-}" != 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "throwaway_root.sh: needs root" >&2; exit 77; }
	# The mount point: a folder of SHARED_DIR, empty on the host (the tmpfs is
	# mounted over it in the private namespace only).
	mnt=$(mktemp -d "$shared/.root.XXXXXX")
	rc=0
	KT_THROWAWAY_INNER=1 KT_THROWAWAY_MNT=$mnt KT_THROWAWAY_PROBE=$probe \
		unshare --mount --propagation private --pid --fork --kill-child \
		"$(readlink -f "$0")" "$shared" "$@" || rc=$?
	rmdir "$mnt"
	exit "$rc"
fi

# ---- inside the new namespaces (PID 1 of the new PID namespace) ----
mnt=$KT_THROWAWAY_MNT
unset KT_THROWAWAY_INNER KT_THROWAWAY_MNT
mount -t tmpfs -o mode=0700 tmpfs "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root"; then
	echo "throwaway_root.sh: cannot mount an overlay of / here" >&2
	exit 77
fi
if [ "$KT_THROWAWAY_PROBE" = 1 ]; then
	exit 0
fi
unset KT_THROWAWAY_PROBE
r=$mnt/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
mkdir -p "$r$shared"
mount --bind "$shared" "$r$shared"
exec chroot "$r" "$@"
