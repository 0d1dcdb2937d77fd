"""Back-pressure as docs/protocol.md states it, with numbers: a client that writes without
reading gets every answer once it reads (none dropped while the connection is open), the
daemon buffers at least the documented 256 KiB of answers before it stops reading, a
client that never reads is closed after request_timeout with the answers already in its
socket still readable, and with a long HSM queue the loop reads and answers in batches
(fewer sleeps than requests) without losing or reordering anything."""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Conn, Daemon, Token, Workspace, field, frame, read_vector_lines,
                     run_tests, wait_until)

TOKEN = None
ROOT = None
OUT_HIGH = 256 * 1024           # "256 KiB of its answers are waiting to be written"


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    return path


def unwrap_frames(n):
    """n unwraps of AES-128 vector blobs under rsa1024 (cheap in SoftHSM), ids 0..n-1."""
    lines = [l for l in read_vector_lines("simpleblob.txt")
             if l[0] == "rsa1024" and l[1] == "pkcs1" and l[2] == "0x660e"]
    assert lines
    return lines, [frame("unwrap", field("NAME", "rsa1024") + field("BLOB", bytes.fromhex(
        lines[i % len(lines)][4])), rid=i) for i in range(n)]


def write_until_blocked(s, frames, quiet):
    """Writes frames without reading until the socket has refused more for `quiet` seconds
    (the daemon stopped reading and the buffers are full); returns how many were written
    whole."""
    s.setblocking(False)
    sent, pending, blocked_since = 0, b"", None
    while sent < len(frames) or pending:
        if not pending:
            pending = frames[sent]
        try:
            n = s.send(pending)
        except BlockingIOError:
            n = 0
        except (BrokenPipeError, ConnectionResetError):
            break                   # closed by the daemon (the slow-reader limit)
        if n:
            pending = pending[n:]
            if not pending:
                sent += 1
            blocked_since = None
            continue
        blocked_since = blocked_since or time.monotonic()
        if time.monotonic() - blocked_since > quiet:
            break
        time.sleep(0.01)
    assert not pending or sent < len(frames)
    return sent, len(pending) > 0


def test_answers_wait_for_a_client_that_does_not_read():
    # request_timeout far above how long the writing may take on a loaded machine: this
    # test is about what is buffered, not about the slow-reader limit.
    d = Daemon(new_root("noread"), TOKEN, extra_daemon="request_timeout = 600")
    lines, frames = unwrap_frames(20000)
    c = Conn(d.socket)
    sent, partial = write_until_blocked(c.s, frames, quiet=3.0)
    assert partial or sent < len(frames), "the daemon never stopped reading"
    answer_len = 4 + 8 + 8 + 20      # length, header, ALG_ID, SESSION_KEY (16 bytes)
    print("   %d requests written before the daemon stopped reading (%d KiB of answers)"
          % (sent, sent * answer_len // 1024))
    # It stopped reading only once 256 KiB of answers were waiting (plus what the sockets
    # hold): with 40-byte answers that is at least 6,553 requests.
    assert sent >= OUT_HIGH // answer_len, sent
    c.s.setblocking(True)
    c.s.settimeout(120)
    # Now read: every request written whole is answered, once, correctly.
    got = {}
    for _ in range(sent):
        r = c.recv()
        assert r.id not in got, r.id
        assert r.status == 0 and r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3])
        got[r.id] = r
    assert sorted(got) == list(range(sent))
    c.close()
    d.stop()


def test_a_client_that_never_reads_is_closed_after_request_timeout():
    d = Daemon(new_root("neverread"), TOKEN, extra_daemon="request_timeout = 3")
    _, frames = unwrap_frames(20000)
    start = time.monotonic()
    c = Conn(d.socket)
    sent, _ = write_until_blocked(c.s, frames, quiet=1.0)
    # The daemon closes the connection 3 s after its writes stopped progressing (never
    # sooner than 3 s after the first answer): the log says why, and what the socket
    # already holds can still be read, then EOF.
    wait_until(lambda: "replies not read in time" in d.log_text(), 3 + 30,
               "the slow-reader close")
    assert time.monotonic() - start >= 3
    c.s.setblocking(True)
    c.s.settimeout(30)
    seen = set()
    try:
        while True:
            r = c.recv()
            assert r.status == 0 and r.id < sent and r.id not in seen, (r.id, r.status)
            seen.add(r.id)
    except (EOFError, ConnectionResetError):
        pass
    n = len(seen)
    print("   %d of %d answers readable after the close" % (n, sent))
    assert 0 < n <= sent
    d.stop()


def loop_sleeps(pid):
    """Voluntary context switches so far of keytransd's event loop (the thread named
    keytransd): each is one sleep, so one wake-up."""
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() != "keytransd":
                continue
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    raise AssertionError("no keytransd thread in %d" % pid)


def test_a_long_hsm_queue_is_served_in_batches():
    """docs/protocol.md "Back-pressure" and docs/performance.md: with more than 8 requests
    per HSM worker waiting, replies are handed to the loop a few at a time and a connection
    with 8 HSM requests out reads the rest when it is down to 4, so the loop sleeps far
    less often than once per request (it slept 1.4 to 1.8 times per request before). Every
    answer still comes, once."""
    d = Daemon(new_root("batches"), TOKEN, workers=2)
    lines, frames = unwrap_frames(400)
    conns = [Conn(d.socket) for _ in range(4)]
    before = loop_sleeps(d.pid())
    for c in conns:                 # 4 connections, each with up to 32 requests in flight
        c.s.sendall(b"".join(frames[:32]))
    seen = [set() for _ in conns]
    sent = [32] * 4
    while min(len(x) for x in seen) < len(frames):
        for k, c in enumerate(conns):
            if len(seen[k]) == len(frames):
                continue
            r = c.recv()    # answers come as they are done (two workers), matched by id
            assert r.status == 0 and r.id < sent[k] and r.id not in seen[k], (k, r.id, r.status)
            assert r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3]), r.id
            seen[k].add(r.id)
            if sent[k] < len(frames):
                c.s.sendall(frames[sent[k]])
                sent[k] += 1
    sleeps = loop_sleeps(d.pid()) - before
    n = 4 * len(frames)
    print("   %d unwraps on 4 connections: the loop slept %d times (%.2f per request)" % (
        n, sleeps, sleeps / n))
    assert sleeps < 0.75 * n, "the loop slept %d times for %d requests" % (sleeps, n)
    # Public-key work on its own connection is not held back by the batching.
    for c in conns:
        c.s.sendall(b"".join(frames[:40]))
    w = Conn(d.socket)
    for i in range(10):
        r = w.call("pubkey", field("NAME", "rsa1024"), rid=i)
        assert r.status == 0, r.message()
    for c in conns:
        ids = sorted(c.recv().id for _ in range(40))
        assert ids == list(range(40)), ids
        c.close()
    w.close()
    d.stop()
    # As they end, the HSM workers say what their CPU went to (docs/performance.md).
    lines = re.findall(r"hsm worker (\d+): (\d+) operations, ([0-9.]+) s CPU, ([0-9.]+) s of it "
                       r"in PKCS#11 calls \(([0-9.]+) us per operation outside them\)", d.log_text())
    assert sorted(int(l[0]) for l in lines) == [0, 1], lines
    assert sum(int(l[1]) for l in lines) == n + 4 * 40, lines
    for _, ops, cpu, calls, _ in lines:
        assert 0 < float(calls) <= float(cpu), lines


def main():
    global TOKEN, ROOT
    with Workspace() as root:
        ROOT = root
        TOKEN = Token(os.path.join(root, "hsm"))
        run_tests([test_answers_wait_for_a_client_that_does_not_read,
                   test_a_client_that_never_reads_is_closed_after_request_timeout,
                   test_a_long_hsm_queue_is_served_in_batches])


if __name__ == "__main__":
    main()
