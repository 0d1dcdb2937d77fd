#!/usr/bin/env python3
"""Runs conformance.py against the keytransd of this build: a fresh SoftHSM token holding the
RSA-2048 vector key, a daemon with small connection limits, every option of the suite given.

This wrapper is the project's glue (it uses tests/integration/harness.py, on PYTHONPATH from
meson); conformance.py itself stands alone. Environment: KT_KEYTRANSD, KT_VECTORS (meson sets
them). Extra arguments are passed on to conformance.py (e.g. --only REGEX, -v).
"""
import os
import subprocess
import sys

from harness import Daemon, Workspace, vectors

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "exchange1"
PER_UID, TOTAL = 6, 32
RULES = "\n".join(["allow_unwrap = *", "allow_copp_open = *", "allow_opm_open = *", "allow_pubkey = *",
                   "allow_wrap = *"])
LIMITS = "\n".join(["max_connections = %d" % TOTAL, "max_connections_per_uid = %d" % PER_UID,
                    "allow_public_ops = *", "request_timeout = 30"])


def main():
    with Workspace() as root:
        d = Daemon(root, workers=4, keys={KEY: ("rsa2048", "02", RULES)}, extra_daemon=LIMITS)
        cmd = [sys.executable, os.path.join(HERE, "conformance.py"),
               "--protocol", os.path.join(HERE, "..", "..", "docs", "protocol.md"),
               "--socket", d.socket, "--key", KEY,
               "--private-key", vectors("keys", "rsa2048.pem"),
               "--pid", str(d.pid()),
               "--max-connections-per-uid", str(PER_UID), "--max-connections", str(TOTAL),
               "--request-timeout", "30", "--import-allowed", *sys.argv[1:]]
        rc = subprocess.call(cmd)
        try:
            d.stop()            # after the shutdown case: its exit status (0) and log
        except AssertionError as e:
            print("FAIL keytransd-exit: %s" % e)
            rc = rc or 1
        if rc:
            print("--- keytransd log (tail) ---\n" + d.log_text()[-4000:])
        return rc


if __name__ == "__main__":
    sys.exit(main())
