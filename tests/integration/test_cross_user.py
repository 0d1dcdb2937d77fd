"""One local user against the others (docs/security.md, "Between local users"):

- a user with no key rights cannot make other users' requests fail by holding
  long answers (info, keys, stats) unread: every byte is charged to its uid and
  those answers are not in the locked heap;
- explicit decryption failures (STRICT, rsa_mechanism = pkcs) only for peers
  that hold both private-key permissions on the key: no padding oracle across
  permissions;
- refusals cannot flood the audit log: at most 10 records a second per uid, the
  rest counted; a connection refused 32 times in a row is closed;
- stats gives the outcomes of private-key operations to admins only;
- request bytes are wiped on every path that drops them.

Other users are forked children (harness.Child), so these tests need root.
"""
import os
import re
import socket
import time

import harness
from harness import (Child, Conn, Daemon, Workspace, field, frame, memory_holds,
                     read_vector_lines, run_tests, u8, u32)

import keytrans

ATTACKER = 4240         # no key rights at all
COPP_ONLY = 4241        # allow_copp_open only
UNWRAP_ONLY = 4242      # allow_unwrap only
BOTH = 4243             # both private-key permissions
ADMIN = 4244            # [daemon] admin
VICTIM = 4245           # allow_unwrap on rsa2048, an innocent bystander
FLAG_STRICT = 1

KEYS = {
    "rsa2048": ("rsa2048", "02", "allow_unwrap = uid:%d uid:%d uid:%d\n"
                "allow_copp_open = uid:%d uid:%d" % (UNWRAP_ONLY, BOTH, VICTIM, COPP_ONLY, BOTH)),
    "pkcs": ("rsa2048", "02", "rsa_mechanism = pkcs\nallow_unwrap = uid:%d uid:%d\n"
             "allow_copp_open = uid:%d uid:%d" % (UNWRAP_ONLY, BOTH, COPP_ONLY, BOTH)),
}
EXTRA = "socket_mode = 0666\nadmin = uid:%d" % ADMIN
# A small locked heap, as on a host that gives the daemon little lockable memory: a few
# full-size replies held in it used to exhaust it for everyone.
HOG_EXTRA = EXTRA + "\njob_memory = 512\njob_memory_per_uid = 256"

PKCS1 = [(bytes.fromhex(v[4]), bytes.fromhex(v[3])) for v in read_vector_lines("simpleblob.txt")
         if v[0] == "rsa2048" and v[1] == "pkcs1"]
OAEP = [(bytes.fromhex(v[4]), bytes.fromhex(v[3])) for v in read_vector_lines("simpleblob.txt")
        if v[0] == "rsa2048" and v[1] == "oaep"]
COPP = [v for v in read_vector_lines("copp.txt") if v[0] == "rsa2048"]


def open_daemon(root, extra=EXTRA):
    """The daemon the other users reach: its folder must let them to the socket."""
    os.chmod(root, 0o755)
    return Daemon(root, keys=KEYS, extra_daemon=extra)


def as_uid(uid, fn, *args):
    return Child(fn, *args, uid=uid, gid=uid).result()


def status_of(r):
    return [k for k, v in harness.STATUS.items() if v == r.status][0]


# --- a user holding long answers unread ---------------------------------------------------

def hog(sock, conns, per_conn, ready, release, parents):
    """Sends per_conn stats requests on each of conns connections, never reads; says so on
    the pipe ready (the number of requests written) and holds them until the pipe release
    says go or closes (parents: the parent's ends of the pipes, closed here)."""
    for fd in parents:
        os.close(fd)
    held = []
    for _ in range(conns):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.settimeout(30)
        s.sendall(b"".join(frame("stats", rid=i + 1) for i in range(per_conn)))  # 12 bytes each
        held.append(s)
    os.write(ready, b"%d\n" % (conns * per_conn))
    os.read(release, 1)     # b"" once the parent's end is closed, whatever happened
    for s in held:
        s.close()
    return True


class Answered:
    """The daemon's count of answers to op (stats), less the stats requests made here
    (each is counted by the next one)."""

    def __init__(self, sock, op):
        self.sock, self.op, self.asked = sock, op, 0

    def count(self):
        n = next(o.count for o in harness.stats_of(self.sock).ops if o.name == self.op)
        self.asked += 1
        return n - (self.asked - 1 if self.op == "stats" else 0)

    def settle(self, since, within=60):
        """Waits until more than since have been answered and then none for half a second."""
        last, quiet_since = self.count(), time.monotonic()
        deadline = quiet_since + within
        while time.monotonic() < deadline:
            time.sleep(0.1)
            n = self.count()
            if n != last:
                last, quiet_since = n, time.monotonic()
            elif last > since and time.monotonic() - quiet_since >= 0.5:
                return last - since
        raise AssertionError("%s answers did not settle within %d s" % (self.op, within))


def victim_unwraps(sock, n):
    out = []
    for blob, key in PKCS1[:n]:
        c = Conn(sock)
        r = c.call("unwrap", field("NAME", "rsa2048") + field("BLOB", blob))
        out.append((status_of(r), r.message(), r.get("SESSION_KEY") == key))
        c.close()
    return out


def test_unread_long_answers_hurt_only_their_uid():
    with Workspace() as root:
        d = open_daemon(root, HOG_EXTRA)
        ready_r, ready_w = os.pipe()
        release_r, release_w = os.pipe()
        try:
            answered = Answered(d.socket, "stats")
            before = answered.count()
            h = Child(hog, d.socket, 4, 140, ready_w, release_r, (ready_r, release_w),
                      uid=ATTACKER, gid=ATTACKER)
            os.close(ready_w)       # the child's ends: its exit, whatever happened, is seen
            os.close(release_r)
            ready_w = release_r = None
            # The attacker's requests are written, and answered (as many as its share of
            # memory allows) but not read back...
            assert os.read(ready_r, 64) == b"%d\n" % (4 * 140), "the attacker failed"
            answered.settle(before)
            # ... while the others' requests are served.
            for uid in (0, VICTIM):
                got = as_uid(uid, victim_unwraps, d.socket, 5)
                assert all(st == "OK" and ok for st, _, ok in got), (uid, got)
            os.write(release_w, b"x")
            assert h.result() is True
        finally:
            for fd in (ready_r, ready_w, release_r, release_w):
                if fd is not None:
                    os.close(fd)    # the hog, if still there, lets go
            d.stop()


# --- no padding oracle across permissions ---------------------------------------------------

def private_calls(sock):
    """Each private-key call this uid makes, with and without STRICT: name -> status."""
    c = Conn(sock)
    out = {}
    blob, _ = PKCS1[0]
    bad = bytearray(blob)
    bad[12] ^= 1        # least significant byte of the ciphertext: still below the modulus
    sig = bytes.fromhex(COPP[0][5])
    for key in ("rsa2048", "pkcs"):
        for strict in (0, FLAG_STRICT):
            flags = u32("FLAGS", strict) if strict else b""
            r = c.call("unwrap", field("NAME", key) + field("BLOB", bytes(bad)) + flags)
            out["unwrap %s %d" % (key, strict)] = status_of(r)
            r = c.call("copp-open", field("NAME", key) + field("SIGNATURE", sig[:-1] + b"\0") + flags)
            out["copp-open %s %d" % (key, strict)] = status_of(r)
        r = c.call("unwrap", field("NAME", key) + field("BLOB", OAEP[0][0]) + u8("PADDING", 1) +
                   u32("FLAGS", FLAG_STRICT))
        out["unwrap-oaep %s 1" % key] = status_of(r)
    c.close()
    return out


def test_explicit_failures_need_both_permissions():
    with Workspace() as root:
        d = open_daemon(root)
        try:
            only_copp = as_uid(COPP_ONLY, private_calls, d.socket)
            only_unwrap = as_uid(UNWRAP_ONLY, private_calls, d.socket)
            both = as_uid(BOTH, private_calls, d.socket)
            # Without STRICT on a raw key: implicit rejection, OK whatever the blob.
            assert only_copp["copp-open rsa2048 0"] == "OK", only_copp
            assert only_unwrap["unwrap rsa2048 0"] == "OK", only_unwrap
            # STRICT, or a pkcs key, would tell bad padding apart: refused to one-permission peers.
            for res, op in ((only_copp, "copp-open"), (only_unwrap, "unwrap")):
                for case in ("%s rsa2048 1" % op, "%s pkcs 0" % op, "%s pkcs 1" % op):
                    assert res[case] == "DENIED", (case, res)
            # OAEP failures say nothing about PKCS#1 ciphertexts: allowed with STRICT.
            assert only_unwrap["unwrap-oaep rsa2048 1"] == "OK", only_unwrap
            assert only_unwrap["unwrap-oaep pkcs 1"] == "OK", only_unwrap
            # A peer with both permissions gets the explicit answers.
            assert both["unwrap rsa2048 1"] == "UNWRAP_FAILED", both
            assert both["copp-open rsa2048 1"] == "UNWRAP_FAILED", both
            assert both["unwrap pkcs 0"] == "UNWRAP_FAILED", both
            log = d.log_text()
            assert 'needs both allow_unwrap and allow_copp_open' not in log     # replies, not log
            assert re.search(r'audit op=copp-open key="rsa2048" mode=strict uid=%d .* '
                             r'outcome=DENIED' % COPP_ONLY, log), log[-3000:]
        finally:
            d.stop()


# --- refusals do not flood the log ----------------------------------------------------------

def refused_burst(sock, n):
    """n refused requests pipelined on one connection: the answers read until EOF."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    data = b"".join(frame("unwrap", field("NAME", "rsa2048") + field("BLOB", PKCS1[0][0]),
                          rid=i + 1) for i in range(n))
    s.settimeout(10)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    c = Conn.of(s, timeout=10)
    answers = []
    while True:
        try:
            answers.append(status_of(c.recv()))
        except (EOFError, ConnectionResetError, socket.timeout):
            break
    s.close()
    return answers


def test_refusals_are_aggregated_and_the_connection_closed():
    with Workspace() as root:
        d = open_daemon(root)
        try:
            t0 = time.monotonic()
            answers = as_uid(ATTACKER, refused_burst, d.socket, 2000)
            assert answers == ["DENIED"] * 32, (len(answers), answers[:3])
            total = 32
            for _ in range(20):
                total += len(as_uid(ATTACKER, refused_burst, d.socket, 40))
            assert total == 32 * 21, total
            # Someone else's refusal is still written at once.
            assert as_uid(COPP_ONLY, refused_burst, d.socket, 1) == ["DENIED"]
            # Counts are written within about a second (checked four times a second).
            deadline = time.monotonic() + 30
            while True:
                log = d.log_text()
                written = len(re.findall(r"audit op=unwrap .* uid=%d .*outcome=DENIED" % ATTACKER,
                                         log))
                counted = sum(int(n) for n in re.findall(
                    r"audit: uid %d had (\d+) more requests refused" % ATTACKER, log))
                if written + counted == total or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert written + counted == total, (written, counted, total)
            # At most 10 a second were written one by one, however long the test took.
            assert written <= 10 * (int(time.monotonic() - t0) + 2), written
            assert re.search(r"audit op=unwrap .* uid=%d .*outcome=DENIED" % COPP_ONLY, log)
            assert "%d requests in a row refused; closing" % 32 in log
        finally:
            d.stop()


# --- stats: outcomes for admins only ---------------------------------------------------------

def unwrap_outcomes(sock):
    """unwrap's counts by status as stats shows them to this uid."""
    with keytrans.Connection(sock) as c:
        st = c.stats()
        return {o.name: (dict(o.by_status), sum(o.buckets)) for o in st.ops
                if o.name in ("unwrap", "copp-open", "info")}


def test_stats_outcomes_for_admins_only():
    with Workspace() as root:
        d = open_daemon(root)
        try:
            as_uid(BOTH, private_calls, d.socket)
            admin = as_uid(ADMIN, unwrap_outcomes, d.socket)
            other = as_uid(ATTACKER, unwrap_outcomes, d.socket)
            failed, ok = harness.STATUS["UNWRAP_FAILED"], harness.STATUS["OK"]
            assert admin["unwrap"][0].get(failed, 0) > 0 and admin["unwrap"][0].get(ok), admin
            assert admin["unwrap"][1] > 0, admin
            assert other["unwrap"] == ({}, 0) and other["copp-open"] == ({}, 0), other
            assert other["info"] == admin["info"], (other, admin)   # public work: the same
            # root is an administrator too
            assert as_uid(0, unwrap_outcomes, d.socket)["unwrap"] == admin["unwrap"]
        finally:
            d.stop()


# --- request bytes wiped on every drop path ----------------------------------------------------

def test_dropped_requests_are_wiped():
    secrets = [os.urandom(32) for _ in range(4)]
    with Workspace() as root:
        d = open_daemon(root)
        try:
            wrap = lambda k: field("NAME", "rsa2048") + u32("ALG_ID", 0x6610) + \
                field("SESSION_KEY", k)
            c = Conn(d.socket)
            # An unknown operation, a frame of another version, a refused one (DENIED below).
            c.send(frame(99, wrap(secrets[0]), rid=1))
            c.send(frame("wrap", wrap(secrets[1]), rid=2, version=2))
            assert c.recv().status == harness.STATUS["UNKNOWN_OP"]
            assert c.recv().status == harness.STATUS["BAD_VERSION"]
            c.close()
            # A partial frame when the client goes away.
            c = Conn(d.socket)
            f = frame("wrap", wrap(secrets[2]) + b"\0" * 64, rid=3)
            c.send(f[:-32])
            c.close()       # the bytes sent are read by the daemon all the same
            # Refused: this uid may not wrap with the key.
            def refused():
                c = Conn(d.socket)
                r = c.call("wrap", wrap(secrets[3]), rid=4)
                c.close()
                return status_of(r)
            assert as_uid(ATTACKER, refused) == "DENIED"
            # Every connection gone, as far as the daemon is concerned: what it dropped with
            # them is behind it.
            harness.wait_until(lambda: d.connections_held() == 0, 30, "connections closed")
            found = memory_holds(d.pid(), {"secret %d" % i: k for i, k in enumerate(secrets)})
            assert not found, "request bytes left in the daemon's memory: %s" % found
        finally:
            d.stop()


if __name__ == "__main__":
    run_tests([test_unread_long_answers_hurt_only_their_uid,
               test_explicit_failures_need_both_permissions,
               test_refusals_are_aggregated_and_the_connection_closed,
               test_stats_outcomes_for_admins_only,
               test_dropped_requests_are_wiped])
