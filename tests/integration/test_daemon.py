"""keytransd as a process: configuration check, start-up errors, background mode,
socket handling and the graceful stop."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (DRAIN_LIMIT, KEYS, PIN, Conn, Daemon, Token, Workspace, field, frame,
                     hsm_back_within, read_vector_lines, run_tests, u8, wait_until)

import keytrans

TOKEN = None  # one token shared by the tests (they only read it)
EX_CONFIG = 78   # a start that retrying cannot fix (RestartPreventExitStatus= in the unit)
ROOT = None


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    return path


def keytransd(*args, env=None):
    return subprocess.run([os.environ["KT_KEYTRANSD"], *args], capture_output=True, text=True,
                          env=env or TOKEN.env, timeout=60)


def test_config_check():
    d = Daemon(new_root("check"), TOKEN, start=False)
    r = keytransd("-t", "-c", d.config)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    with open(d.config, "a") as f:
        f.write("[key broken]\nlabel = x\ncolour = blue\n")
    n = sum(1 for _ in open(d.config))
    r = keytransd("-t", "-c", d.config)
    assert r.returncode == EX_CONFIG
    assert "%s:%d:" % (d.config, n) in r.stderr and "colour" in r.stderr, r.stderr
    r = keytransd("-t", "-c", os.path.join(ROOT, "nonexistent.conf"))
    assert r.returncode != 0 and "nonexistent.conf" in r.stderr
    r = keytransd("-c")
    assert r.returncode == 2 and "usage" in r.stderr


def failed_start(d, *, expect, status=EX_CONFIG):
    """Starting d fails with a message containing expect and the exit status, in the
    foreground and the background."""
    r = keytransd("-f", "-c", d.config)
    assert r.returncode == status, r
    assert expect in r.stderr, r.stderr
    r = keytransd("-c", d.config)
    assert r.returncode == status, r
    assert expect in r.stderr, r.stderr
    assert not os.path.exists(d.socket)


def test_wrong_pin():
    d = Daemon(new_root("pin"), TOKEN, start=False)
    with open(os.path.join(d.root, "pin"), "w") as f:
        f.write("0000\n")
    failed_start(d, expect="wrong PIN")


def test_missing_key():
    d = Daemon(new_root("missing"), TOKEN, keys={"rsa2048": ("rsa2048", "02")}, start=False)
    with open(d.config, "a") as f:
        f.write("[key ghost]\nlabel = nosuchlabel\n")
    failed_start(d, expect="[key ghost]")
    # Right label, wrong id: still not found.
    d = Daemon(new_root("wrongid"), TOKEN, keys={"rsa2048": ("rsa2048", "09")}, start=False)
    failed_start(d, expect="[key rsa2048]")


def test_absent_token():
    """A token that is not there yet may appear: keytransd starts, says why it waits,
    answers HSM_UNAVAILABLE, and serves once the token is initialised."""
    d = Daemon(new_root("token"), TOKEN, start=False)
    text = open(d.config).read().replace("token = " + TOKEN.label, "token = elsewhere")
    with open(d.config, "w") as f:
        f.write(text)
    d.start()
    try:
        assert 'token "elsewhere" not found' in d.log_text(), d.log_text()
        with keytrans.Connection(d.socket) as c:
            h = c.info().hsms[0]
            assert h.state == "down" and 'token "elsewhere" not found' in h.last_error, h
            try:
                c.unwrap("rsa2048", bytes(12))
                raise AssertionError("answered without a token")
            except keytrans.KeytransError as e:
                assert e.name == "HSM_UNAVAILABLE", e
        TOKEN.add_token("elsewhere")
        # Found at the next attempt: within hsm_retry_max (default 4 s) and a rebuild.
        wait_until(lambda: "serving" in d.log_text(), hsm_back_within(),
                   lambda: "serving the new token:\n" + d.log_text()[-3000:])
        with keytrans.Connection(d.socket) as c:
            assert c.info().hsms[0].state == "up"
            assert len(c.keys()) == len(KEYS)
    finally:
        d.stop()


def test_bad_module():
    d = Daemon(new_root("module"), TOKEN, start=False)
    text = open(d.config).read().replace("/usr/lib/softhsm/libsofthsm2.so", "/nonexistent.so")
    with open(d.config, "w") as f:
        f.write(text)
    failed_start(d, expect="cannot load PKCS#11 module /nonexistent.so")


def pid_of(config):
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if config.encode() in f.read():
                        return int(p)
            except OSError:
                pass
    return None


def test_background_mode():
    d = Daemon(new_root("bg"), TOKEN, start=False)
    r = keytransd("-c", d.config)
    assert r.returncode == 0, r
    pid = pid_of(d.config)
    assert pid, "daemon not running"
    c = Conn(d.socket)
    assert c.call("info").status == 0
    c.close()
    os.kill(pid, signal.SIGTERM)
    # Nothing in flight: it stops at once; in any case within its drain limit.
    wait_until(lambda: pid_of(d.config) is None, 3 * DRAIN_LIMIT, "the daemon stopped")
    assert not os.path.exists(d.socket), "socket left behind"


def test_socket_handling():
    d = Daemon(new_root("sock"), TOKEN, start=False)
    # A stale socket (nobody listening) is replaced.
    s = socket.socket(socket.AF_UNIX)
    s.bind(d.socket)
    s.close()
    d.start()
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
    # A live one is not: a second daemon on the same path refuses to start.
    r = keytransd("-f", "-c", d.config)
    assert r.returncode == 1 and "another daemon is listening" in r.stderr, r.stderr
    assert Conn(d.socket).call("info").status == 0
    d.stop()
    assert not os.path.exists(d.socket)
    # A regular file in the way is an error, not deleted.
    with open(d.socket, "w") as f:
        f.write("keep me")
    r = keytransd("-f", "-c", d.config)
    assert r.returncode == 1 and "not a socket" in r.stderr, r.stderr
    assert open(d.socket).read() == "keep me"
    os.unlink(d.socket)


def test_sigterm_finishes_in_flight():
    d = Daemon(new_root("drain"), TOKEN, workers=1)
    lines = [l for l in read_vector_lines("simpleblob.txt") if l[0] == "rsa4096"]
    c = Conn(d.socket)
    batch = b"".join(frame("unwrap", field("NAME", l[0]) + field("BLOB", bytes.fromhex(l[4])) +
                           u8("PADDING", 0 if l[1] == "pkcs1" else 1), rid=i)
                     for i, l in enumerate(lines))
    c.send(batch)
    first = c.recv()   # the daemon is busy with the batch now
    d.proc.send_signal(signal.SIGTERM)
    replies = [first] + [c.recv() for _ in range(len(lines) - 1)]
    assert all(r.status == 0 for r in replies), [(r.status, r.message()) for r in replies]
    for r in replies:
        assert r.get("SESSION_KEY") == bytes.fromhex(lines[r.id][3])
    assert c.s.recv(1) == b""   # then the daemon hangs up
    # New connections are refused while it drains or once it is gone.
    try:
        Conn(d.socket).call("info")
        raise AssertionError("accepted a request after SIGTERM")
    except (OSError, EOFError):
        pass
    assert d.proc.wait(30) == 0
    d.proc = None
    assert "Sanitizer" not in d.log_text()


def test_sigterm_with_backlog():
    """200 pipelined unwraps, more than the daemon takes at once (max_inflight 64), all
    written before SIGTERM: every one is answered exactly once — served (with the right key)
    or SHUTTING_DOWN — however fast the backlog was being served (docs/protocol.md,
    "Stopping"). Requests the daemon never read would get no answer; here none is unread."""
    d = Daemon(new_root("backlog"), TOKEN, workers=1)
    lines = [l for l in read_vector_lines("simpleblob.txt") if l[0] == "rsa4096"]
    c = Conn(d.socket)
    n = 200
    c.send(b"".join(frame("unwrap", field("NAME", "rsa4096") +
                          field("BLOB", bytes.fromhex(lines[i % len(lines)][4])) +
                          u8("PADDING", 0 if lines[i % len(lines)][1] == "pkcs1" else 1), rid=i)
                    for i in range(n)))
    replies = [c.recv()]
    d.proc.send_signal(signal.SIGTERM)
    while True:
        try:
            replies.append(c.recv())
        except (EOFError, ConnectionResetError):
            break
    ids = [r.id for r in replies]
    assert len(ids) == len(set(ids)), "a request was answered twice"
    assert sorted(ids) == list(range(n)), "requests without an answer: %s" % \
        sorted(set(range(n)) - set(ids))[:20]
    served = 0
    for r in replies:
        if r.status == 0:
            served += 1
            assert r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3])
        else:
            assert r.status == 22, (r.status, r.message())
    print("   %d served, %d SHUTTING_DOWN" % (served, n - served))
    assert d.proc.wait(30) == 0
    d.proc = None


def test_sigterm_while_the_client_keeps_writing():
    """A client still writing when the daemon stops: each request the daemon read is
    answered (served or SHUTTING_DOWN) and the rest were never read — so the answered ids
    are exactly the first ones sent, with no gap."""
    d = Daemon(new_root("backlog-writing"), TOKEN, workers=1)
    c = Conn(d.socket)
    c.s.setblocking(False)
    sent, stop = [0], threading.Event()

    def write():
        pending = b""
        while not stop.is_set():
            if not pending:
                pending = frame("pubkey", field("NAME", "rsa2048"), rid=sent[0])
                sent[0] += 1
            try:
                pending = pending[c.s.send(pending):]
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                return

    w = threading.Thread(target=write)
    w.start()
    while sent[0] < 200:        # the writer is under way
        time.sleep(0.01)
    d.proc.send_signal(signal.SIGTERM)
    c.s.setblocking(True)
    c.s.settimeout(30)
    replies = []
    while True:
        try:
            replies.append(c.recv())
        except (EOFError, ConnectionResetError):
            break
    stop.set()
    w.join()
    ids = sorted(r.id for r in replies)
    assert ids == list(range(len(ids))), "answers with a gap or twice"
    assert any(r.status == 22 for r in replies) or len(ids) == sent[0], (len(ids), sent[0])
    assert all(r.status in (0, 22) for r in replies)
    print("   %d of %d requests answered before the close" % (len(ids), sent[0]))
    assert d.proc.wait(30) == 0
    d.proc = None


def test_sigint_idle():
    d = Daemon(new_root("sigint"), TOKEN)
    c = Conn(d.socket)   # an idle connection does not hold the daemon up
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(30) == 0
    d.proc = None
    c.close()


def test_fatal_signal_leaves_a_backtrace():
    """Core dumps are off, so a crash must say where it happened: keytransd's handler
    writes the signal and a backtrace to stderr (sanitizer builds leave it to the
    sanitizer, whose report must appear instead)."""
    d = Daemon(new_root("crash"), TOKEN)
    d.proc.send_signal(signal.SIGSEGV)
    rc = d.proc.wait(30)
    d.proc = None
    d.log.close()
    log = d.log_text()
    if "AddressSanitizer" in log:
        assert rc != 0 and "SEGV" in log, (rc, log[-2000:])
        return
    assert rc == -signal.SIGSEGV, rc     # it still dies of the signal
    assert "keytransd: fatal signal SIGSEGV; backtrace" in log, log[-2000:]
    assert re.search(r"keytransd\(\+0x[0-9a-f]+\)", log), log[-2000:]


def main():
    global TOKEN, ROOT
    with Workspace() as root:
        ROOT = root
        TOKEN = Token(os.path.join(root, "hsm"))
        run_tests([test_config_check, test_wrong_pin, test_missing_key, test_absent_token,
                   test_bad_module, test_background_mode, test_socket_handling,
                   test_sigterm_finishes_in_flight, test_sigterm_with_backlog,
                   test_sigterm_while_the_client_keeps_writing,
                   test_sigint_idle, test_fatal_signal_leaves_a_backtrace])


if __name__ == "__main__":
    main()
