"""Runs a command against a keytransd of its own: starts the daemon (harness.py) in a
temporary workspace, runs the command with KEYTRANS_SOCKET set, stops the daemon
(requiring a clean exit) and exits with the command's status.

    run_with_daemon.py COMMAND [ARG...]
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Workspace


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: run_with_daemon.py COMMAND [ARG...]")
    with Workspace() as root:
        daemon = Daemon(root)
        try:
            env = dict(os.environ, KEYTRANS_SOCKET=daemon.socket)
            # In a sanitizer build, make UBSan reports fail the command too.
            env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
            rc = subprocess.run(sys.argv[1:], env=env).returncode
        finally:
            alive = daemon.alive()
            if not alive:
                print("keytransd died during the test:\n" + daemon.log_text()[-6000:],
                      file=sys.stderr)
            daemon.stop()   # raises unless keytransd exits 0 with no sanitizer report
        if not alive:
            rc = rc or 1
    print("%s exited with %d" % (os.path.basename(sys.argv[1]), rc))
    sys.exit(rc if rc >= 0 else 128 - rc)


if __name__ == "__main__":
    main()
