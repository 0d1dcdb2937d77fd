"""Reliability: keytransd over the fault-injecting PKCS#11 module (tests/faultp11).

Every fault code that means "the HSM or its session is gone" takes the HSM out
of service (HSM_UNAVAILABLE, answered at once) and the daemon rebuilds it; a
call that hangs restarts the daemon in place; with several HSMs a fault on
one costs no request at all (reloads: test_reload.py).

No bound here is this machine's speed: waits end when the daemon shows what it was to do,
or at a deadline derived from its configuration (harness.hsm_back_within: hsm_retry_max,
hsm_call_timeout), and "answered at once" is the daemon's own latency (stats), below the
first backoff step: the answer did not wait for the HSM.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import harness
from harness import FIRST_BACKOFF, WATCH_EVERY, Daemon, Latency, Workspace, run_tests, wait_until

import keytrans

FAULTP11 = os.environ["KT_FAULTP11"]
SOFTHSM = harness.SOFTHSM_MODULE

# One rsa2048 PKCS#1 vector: its SIMPLEBLOB and the session key in it.
BLOB, KEY = [(bytes.fromhex(v[4]), bytes.fromhex(v[3]))
             for v in harness.read_vector_lines("simpleblob.txt")
             if v[0] == "rsa2048" and v[1] == "pkcs1"][0]

FAULT_CODES = ["CKR_DEVICE_ERROR", "CKR_DEVICE_MEMORY", "CKR_DEVICE_REMOVED",
               "CKR_KEY_HANDLE_INVALID", "CKR_OBJECT_HANDLE_INVALID", "CKR_SESSION_CLOSED",
               "CKR_SESSION_COUNT", "CKR_SESSION_HANDLE_INVALID", "CKR_TOKEN_NOT_PRESENT",
               "CKR_TOKEN_NOT_RECOGNIZED", "CKR_USER_NOT_LOGGED_IN",
               "CKR_CRYPTOKI_NOT_INITIALIZED"]


class Faulty:
    """A daemon whose HSM(s) go through faultp11, and the control file of its rules."""

    def __init__(self, root, extra_daemon="", hsm_text=None, workers=2, token=None,
                 keys=harness.KEYS):
        self.root = root
        self.extra = extra_daemon
        self.control = os.path.join(root, "faults")
        self.rules("")
        env = {"FAULTP11_MODULE": SOFTHSM, "FAULTP11_CONTROL": self.control,
               "FAULTP11_LOG": os.path.join(root, "calls.log")}
        token = token or harness.Token(os.path.join(root, "hsm"))
        hsm_text = hsm_text or "\n".join(["[hsm]", "module = " + FAULTP11,
                                          "token = " + token.label, "pin_file = pin"])
        self.d = Daemon(root, token=token, workers=workers, extra_daemon=extra_daemon,
                        env=env, hsm_text=hsm_text, keys=keys)

    def rules(self, text):
        with open(self.control + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.control + ".tmp", self.control)

    def conn(self, timeout=30):
        return keytrans.Connection(self.d.socket, timeout=timeout)

    def unwrap(self, timeout=30):
        """(status name, message, seconds)"""
        t0 = time.monotonic()
        try:
            with self.conn(timeout) as c:
                k = c.unwrap("rsa2048", BLOB)
                assert k.key == KEY, k
                return "OK", "", time.monotonic() - t0
        except keytrans.KeytransError as e:
            return e.name, e.message, time.monotonic() - t0

    def back_within(self):
        """How long the daemon may take to bring its HSM back once the fault is gone."""
        return harness.hsm_back_within(self.extra)

    def wait_ok(self, within=None, restart=False):
        """Unwraps until one succeeds (by default within back_within()); returns the seconds
        it took. restart: the daemon restarts meanwhile, closing its connections (the
        listening socket stays)."""
        within = self.back_within() if within is None else within
        t0 = time.monotonic()
        allowed = ("HSM_UNAVAILABLE", "ERR_IO") if restart else ("HSM_UNAVAILABLE",)
        while time.monotonic() - t0 < within:
            st, msg, _ = self.unwrap()
            if st == "OK":
                return time.monotonic() - t0
            assert st in allowed, (st, msg)
            time.sleep(0.02)
        raise AssertionError("not back in service after %.1f s:\n%s" %
                             (within, self.d.log_text()[-3000:]))

    def hsms(self):
        with self.conn() as c:
            return {h.name: h for h in c.info().hsms}

    def said(self, what):
        """For a failure: what was awaited, and the end of the daemon's log."""
        return lambda: "%s; keytransd's log ends:\n%s" % (what, self.d.log_text()[-3000:])

    def latency(self):
        """A snapshot of the daemon's own unwrap latencies (harness.Latency)."""
        return Latency(self.d.socket, "unwrap")


def answered_at_once(lat, n=None):
    """Every unwrap answered since the snapshot lat (n of them, if given) left the daemon
    before the first backoff step (250 ms) could have passed: none waited for the HSM."""
    count, slowest = lat.slowest()
    assert count >= 1 and (n is None or count == n), (count, n)
    assert slowest < FIRST_BACKOFF, "an answer took up to %s s in the daemon" % slowest


def restart_seconds(log):
    """The "has not returned for N s: restarting" figures in the daemon's log."""
    return [int(n) for n in re.findall(r"has not returned for (\d+) s: restarting", log)]


def test_each_fault_code_takes_the_hsm_out_and_back():
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_retry_max = 1")
        try:
            assert f.unwrap()[0] == "OK"
            for n, code in enumerate(FAULT_CODES, 1):
                # reset: the sessions really are gone, as after an HSM restart.
                f.rules("C_Decrypt rv=%s reset count=1\n" % code)
                lat = f.latency()
                st, msg, _ = f.unwrap()
                assert st == "HSM_UNAVAILABLE" and code in msg, (code, st, msg)
                answered_at_once(lat, 1)
                # The rebuild reloads faultp11, which forgets what count= has used.
                f.rules("")
                f.wait_ok()     # within hsm_retry_max (1 s) + a rebuild: back_within()
                h = f.hsms()["hsm"]
                assert h.state == "up" and h.faults == n, h
                assert code in h.last_error, h
            log = f.d.log_text()
            assert log.count("back in service") == len(FAULT_CODES), log[-3000:]
            # Under raw RSA any other code is a fault too (test_fault_classes.py).
        finally:
            f.d.stop()


def test_failed_session_open_during_rebuild_is_retried():
    # libp11 0.4.12 would wait forever in its login if this C_OpenSession failed there.
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_retry_max = 1")
        try:
            f.rules("C_Decrypt rv=CKR_DEVICE_ERROR reset count=1\n"
                    "C_OpenSession rv=CKR_DEVICE_ERROR\n")
            assert f.unwrap()[0] == "HSM_UNAVAILABLE"
            # Two rebuild attempts, each after a backoff of at most hsm_retry_max.
            wait_until(lambda: f.d.log_text().count("cannot open a session on token") >= 2,
                       2 * f.back_within(), f.said("two failed rebuilds"))
            assert f.unwrap()[0] == "HSM_UNAVAILABLE"
            f.rules("")
            f.wait_ok()
        finally:
            f.d.stop()


def test_outage_is_answered_at_once_then_recovers_with_backoff():
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_retry_max = 1")
        try:
            f.rules("* rv=CKR_DEVICE_REMOVED\n")
            lat = f.latency()
            assert f.unwrap()[0] == "HSM_UNAVAILABLE"
            # Requests all through the outage, until three rebuilds have failed (backoffs of
            # 500, 1000 and 1000 ms, hsm_retry_max = 1): each one answered at once.
            n = 1

            def failed_rebuilds():
                return f.d.log_text().count("next attempt in")
            deadline = time.monotonic() + 3 * f.back_within()
            while failed_rebuilds() < 3:
                assert time.monotonic() < deadline, f.d.log_text()[-3000:]
                st, msg, _ = f.unwrap()
                assert st == "HSM_UNAVAILABLE", (st, msg)
                n += 1
                time.sleep(0.05)
            answered_at_once(lat, n)
            h = f.hsms()["hsm"]
            assert h.state == "down" and h.last_error, h
            # Public work goes on: wrap for a public key sent with the request.
            with f.conn() as c:
                pem = c.pubkey("rsa2048", "pem")
                w = c.wrap("AES_128", key=bytes(16), to_pub=pem)
                assert w.blob[:12] == bytes.fromhex("01020000" "0e660000" "00a40000"), w
            f.rules("")
            f.wait_ok()
            log = f.d.log_text()
            waits = [int(l.rsplit("next attempt in ", 1)[1].split()[0])
                     for l in log.splitlines() if "next attempt in" in l]
            # 250 ms before the first attempt (it failed soon after start), then doubling.
            assert waits[:2] == [500, 1000] and max(waits) == 1000, waits
        finally:
            f.d.stop()


# hsm_call_timeout for the hang tests: the HSM is seen out of service from T after the call
# began (checked every 0.25 s) until the restart at 3 T, a window of 2 T that the test must
# hit whatever the machine's speed; T = 2 leaves it 4 s.
HANG_T = 2


def test_hung_call_restarts_the_daemon_in_place():
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_call_timeout = %d" % HANG_T)
        pid = f.d.pid()
        try:
            f.rules("C_Decrypt hang=forever\n")
            hung = {}
            # The client's time limit covers the restart: 3 T, then a start.
            limit = 3 * HANG_T + harness.START_WITHIN
            t = threading.Thread(target=lambda: hung.update(r=f.unwrap(timeout=limit)))
            t.start()
            # Out of service once the call has hung for T, until the restart at 3 T.
            wait_until(lambda: f.hsms()["hsm"].state == "down", 3 * HANG_T,
                       f.said("the HSM out of service"))
            h = f.hsms()["hsm"]
            assert "has not returned" in h.last_error, h
            lat = f.latency()
            st, msg, _ = f.unwrap()
            assert st == "HSM_UNAVAILABLE", (st, msg)
            answered_at_once(lat, 1)
            f.rules("")     # so that the restarted daemon can log in again
            f.wait_ok(3 * HANG_T + WATCH_EVERY + harness.START_WITHIN, restart=True)
            t.join(limit + 10)
            # Its connection closed by the restart, the client sent it once more (an
            # idempotent call) to the new process, which answered it.
            assert hung["r"][0] == "OK" and hung["r"][2] > 3 * HANG_T, hung
            assert f.d.pid() == pid and f.d.alive()
            log = f.d.log_text()
            secs = restart_seconds(log)
            assert len(secs) == 1 and secs[0] >= 3 * HANG_T, log[-3000:]
            assert "a PKCS#11 call has not returned for %d s: restarting" % secs[0] in log
            assert log.count("ready:") == 2, log[-3000:]
        finally:
            f.d.stop()


def test_hung_rebuild_restarts_the_daemon():
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_call_timeout = %d" % HANG_T)
        try:
            f.rules("C_Decrypt rv=CKR_DEVICE_ERROR reset count=1\nC_Login hang=forever\n")
            assert f.unwrap()[0] == "HSM_UNAVAILABLE"
            # The rebuild starts after the first backoff and hangs in C_Login: reported once
            # it has hung for T, before the restart at 3 T.
            wait_until(lambda: "reconnecting has not returned" in f.hsms()["hsm"].last_error,
                       FIRST_BACKOFF + 3 * HANG_T, f.said("a hung rebuild reported"))
            assert f.hsms()["hsm"].state == "down"
            f.rules("")
            f.wait_ok(FIRST_BACKOFF + 3 * HANG_T + WATCH_EVERY + harness.START_WITHIN,
                      restart=True)
            log = f.d.log_text()
            secs = restart_seconds(log)
            assert len(secs) == 1 and secs[0] >= 3 * HANG_T, log[-3000:]
            assert "reconnecting has not returned for %d s: restarting" % secs[0] in log
        finally:
            f.d.stop()


def two_hsms(root, second_label="kt-b", second_keys=None):
    """Two independent HSMs: faultp11 copies over SoftHSM copies (a module loads once per
    process), tokens kt-a and kt-b in one token folder. Rules pick one with token=."""
    token = harness.Token(os.path.join(root, "hsm"), label="kt-a")
    token.add_token(second_label, second_keys)
    text = []
    for name in ("a", "b"):
        d = os.path.join(root, "mod-" + name)
        os.makedirs(d)
        shutil.copy(FAULTP11, os.path.join(d, "libfaultp11.so"))
        shutil.copy(SOFTHSM, os.path.join(d, "libsofthsm2.so"))
        with open(os.path.join(d, "libfaultp11.so.module"), "w") as m:
            m.write(os.path.join(d, "libsofthsm2.so") + "\n")
        text += ["[hsm %s]" % name, "module = " + os.path.join(d, "libfaultp11.so"),
                 "token = kt-" + name, "pin_file = pin"]
    return token, "\n".join(text)


def load(f, stop, nthreads=4):
    """Unwraps from nthreads connections until stop is set: (threads, successes so far,
    [failures])."""
    ok, bad = [0], []
    lock = threading.Lock()

    def run():
        with f.conn() as c:
            while not stop.is_set():
                try:
                    assert c.unwrap("rsa2048", BLOB).key == KEY
                    with lock:
                        ok[0] += 1
                except keytrans.KeytransError as e:
                    with lock:
                        bad.append((e.name, e.message))
    ts = [threading.Thread(target=run) for _ in range(nthreads)]
    for t in ts:
        t.start()
    return ts, ok, bad


def test_two_hsms_a_fault_costs_no_request():
    with Workspace() as root:
        token, text = two_hsms(root)
        f = Faulty(root, hsm_text=text, token=token, workers=4,
                   extra_daemon="hsm_retry_max = 1")
        stop = threading.Event()
        ts = []
        try:
            assert set(f.hsms()) == {"a", "b"}
            # The load runs until the end of the scenario, however long each step takes.
            ts, ok, bad = load(f, stop)
            within = f.back_within()

            def more_successes(n):
                start = ok[0]
                wait_until(lambda: ok[0] >= start + n, within, f.said("%d more unwraps" % n))
            more_successes(20)
            f.rules("C_Decrypt rv=CKR_DEVICE_ERROR reset count=1 token=kt-a\n")
            wait_until(lambda: f.hsms()["a"].faults >= 1, within, f.said("a fault on a"))
            f.rules("")     # the rebuild reloads faultp11, which forgets what count= used
            wait_until(lambda: f.hsms()["a"].state == "up", within, f.said("a back"))   # rejoined
            assert f.hsms()["a"].faults == 1
            # Now b fails on every operation: a, back in service, carries everything.
            f.rules("C_Decrypt rv=CKR_DEVICE_REMOVED token=kt-b\n")
            wait_until(lambda: f.hsms()["b"].faults >= 1, within, f.said("a fault on b"))
            more_successes(20)
            f.rules("")
            wait_until(lambda: {h.state for h in f.hsms().values()} == {"up"}, within,
                       f.said("both in service"))
            more_successes(20)
        finally:
            stop.set()
            for t in ts:
                t.join(60)
            f.d.stop()
        assert not bad, bad[:5]


def test_second_hsm_missing_at_start_joins_later():
    with Workspace() as root:
        token, text = two_hsms(root, second_label="kt-other")
        f = Faulty(root, hsm_text=text, token=token, extra_daemon="hsm_retry_max = 1")
        try:
            b = f.hsms()["b"]
            assert b.state == "down" and 'token "kt-b" not found' in b.last_error, b
            assert f.unwrap()[0] == "OK"
            token.add_token("kt-b")
            wait_until(lambda: f.hsms()["b"].state == "up", f.back_within(),
                       f.said("b in service"))
        finally:
            f.d.stop()


def test_second_hsm_with_another_key_is_refused():
    with Workspace() as root:
        other = dict(harness.KEYS)
        other["rsa2048"] = ("rsa2048", "02", harness.vectors("keys", "rsa1024.pem"))
        token, text = two_hsms(root, second_keys=other)
        try:
            Faulty(root, hsm_text=text, token=token)
            raise AssertionError("started with differing keys")
        except RuntimeError as e:
            assert "exited with 78" in str(e), e
            assert "[hsm b] [key rsa2048]: not the same key as in the other HSMs" in str(e), e


if __name__ == "__main__":
    run_tests([test_each_fault_code_takes_the_hsm_out_and_back,
               test_failed_session_open_during_rebuild_is_retried,
               test_outage_is_answered_at_once_then_recovers_with_backoff,
               test_hung_call_restarts_the_daemon_in_place,
               test_hung_rebuild_restarts_the_daemon,
               test_two_hsms_a_fault_costs_no_request,
               test_second_hsm_missing_at_start_joins_later,
               test_second_hsm_with_another_key_is_refused])
