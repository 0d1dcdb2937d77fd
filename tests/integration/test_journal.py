"""Logging to journald with structured fields, as under systemd.

systemd tells a service that its stderr is the journal by JOURNAL_STREAM=dev:ino
of that stream; the daemon then logs with sd_journal_send, which writes
datagrams in the journal's native protocol to /run/systemd/journal/socket. This
test stands in for journald: it binds that socket (in a private mount namespace
with a tmpfs over /run/systemd/journal, so a real journald is never touched),
starts the daemon with JOURNAL_STREAM naming its stderr file, and parses what
arrives: the start-up message with its priority, and one audit record per
private-key operation and per refusal with the KEYTRANS_* fields. Nothing of it
may reach stderr.
"""
import os
import socket
import struct
import subprocess
import sys
import time

import harness
from harness import Daemon, Workspace, as_user, run_tests

import keytrans

JOURNAL_DIR = "/run/systemd/journal"
BLOB, KEY = [(bytes.fromhex(v[4]), bytes.fromhex(v[3]))
             for v in harness.read_vector_lines("simpleblob.txt")
             if v[0] == "rsa2048" and v[1] == "pkcs1"][0]


def parse_native(data):
    """One datagram of the journal's native protocol: {field: value} (str)."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:   # NAME\n, 64-bit little-endian length, value, \n
            k = line
            (n,) = struct.unpack_from("<Q", data, nl + 1)
            v = data[nl + 9:nl + 9 + n]
            assert data[nl + 9 + n:nl + 10 + n] == b"\n", data
            i = nl + 10 + n
        fields[k.decode()] = v.decode()
    return fields


class Journal:
    def __init__(self):
        os.makedirs(JOURNAL_DIR, exist_ok=True)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(os.path.join(JOURNAL_DIR, "socket"))
        self.records = []

    def read(self, until, within=10):
        """Collects records until until(records) holds; returns them."""
        deadline = time.time() + within
        while not until(self.records):
            left = deadline - time.time()
            assert left > 0, "journal records so far:\n%s" % "\n".join(map(str, self.records))
            self.s.settimeout(left)
            try:
                self.records.append(parse_native(self.s.recv(65536)))
            except socket.timeout:
                pass
        return self.records


def audits(records, **want):
    return [r for r in records if r.get("KEYTRANS_AUDIT") == "1" and
            all(r.get(k) == v for k, v in want.items())]


def unwrap_as(sock, name):
    with keytrans.Connection(sock) as c:
        try:
            c.unwrap(name, BLOB)
            return "OK"
        except keytrans.KeytransError as e:
            return e.name


def test_structured_fields_in_the_journal():
    with Workspace() as ws:
        os.chmod(ws, 0o755)
        journal = Journal()
        d = Daemon(ws, start=False, extra_daemon="socket_mode = 0666")
        open(d.log_path, "wb").close()
        st = os.stat(d.log_path)
        d.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        d.start()
        try:
            ready = journal.read(lambda rs: any("ready:" in r.get("MESSAGE", "") for r in rs))
            r = [r for r in ready if "ready:" in r["MESSAGE"]][0]
            assert r["PRIORITY"] == "6" and r["SYSLOG_IDENTIFIER"] == "keytransd", r
            with keytrans.Connection(d.socket) as c:
                assert c.unwrap("rsa2048", BLOB).key == KEY
            pid, st = as_user(unwrap_as, d.socket, "rsa2048", uid=4242, gid=4242)
            assert st == "DENIED", st
            recs = journal.read(lambda rs: audits(rs, KEYTRANS_UID="4242"))
            ok = audits(recs, KEYTRANS_OP="unwrap", KEYTRANS_KEY="rsa2048", KEYTRANS_UID="0",
                        KEYTRANS_OUTCOME="OK", KEYTRANS_PID=str(os.getpid()))
            assert len(ok) == 1, recs
            assert ok[0]["PRIORITY"] == "6" and "audit op=unwrap" in ok[0]["MESSAGE"], ok
            assert ok[0]["KEYTRANS_EXE"], ok
            denied = audits(recs, KEYTRANS_UID="4242", KEYTRANS_GID="4242",
                            KEYTRANS_PID=str(pid), KEYTRANS_OUTCOME="DENIED")
            assert len(denied) == 1 and denied[0]["KEYTRANS_KEY"] == "rsa2048", recs
        finally:
            d.stop()
        # All of it went to the journal: stderr (the log file) stays empty.
        assert d.log_text() == "", d.log_text()[-2000:]


def main():
    if os.geteuid() != 0:
        sys.exit("test_journal.py must run as root (it binds %s)" % JOURNAL_DIR)
    if "--inner" not in sys.argv:
        # A private mount namespace with an empty /run/systemd/journal of its own.
        os.makedirs(JOURNAL_DIR, exist_ok=True)
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            'mount -t tmpfs keytrans-test "$0" && exec "$1" "$2" --inner',
                            JOURNAL_DIR, sys.executable, os.path.abspath(__file__)])
        sys.exit(r.returncode)
    run_tests([test_structured_fields_in_the_journal])


if __name__ == "__main__":
    main()
