"""Limits that hold under abuse (issue 3): slow-loris clients, a client that never reads,
1,000 connections from one uid, a flood of maximum-size frames, request and idle
timeouts, the connection limits and max_inflight. In each, the daemon keeps answering a
well-behaved client of another uid, correctly and quickly, and its memory stays bounded.

The well-behaved client runs as another uid in a forked child (harness.Child), so these
tests run only as root (as in CI).

The bounds on time come from the limits configured (request_timeout, idle_timeout), never
from this machine's speed: the suite also runs with every core busy (scripts/loadgen). Where
a request must wait for a while, the HSM makes it wait (tests/faultp11: a C_Decrypt that
hangs until released) rather than a backlog sized for a machine of a given speed."""
import collections
import os
import re
import resource
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (KEYS, SOFTHSM_MODULE, STATUS, Child, Conn, Daemon, Token, Workspace,
                     as_user, field, frame, read_vector_lines, run_tests, sanitized, setting,
                     stats_of, u8, u32, wait_until)

TOKEN = None
ROOT = None
DAEMONS = []        # stopped (killed) at the end whatever happened
NOBODY = 65534
PAD = {"pkcs1": 0, "oaep": 1}
# Small limits, so that each scenario reaches them within seconds.
LIMITS = ("socket_mode = 0666\nrequest_timeout = 2\nidle_timeout = 3\n"
          "max_connections_per_uid = 50\njob_memory = 1024\njob_memory_per_uid = 256\n"
          "max_inflight = 16")
REQUEST_TIMEOUT = setting(LIMITS, "request_timeout")
# A well-behaved client's request is answered well within request_timeout, the time an
# abuser could hold the daemon up if one could (a slow-loris frame, unread answers).
GOOD_LATENCY = REQUEST_TIMEOUT / 2
# Waiting for something the daemon does at once (refusing a connection, closing one that
# is over a limit, closing its side of a connection the client closed): a deadline that
# only a daemon that does not do it reaches.
AT_ONCE = 30
FAULTP11 = os.environ["KT_FAULTP11"]
SANITIZED = sanitized()
# The daemon's memory may grow by this much under abuse. AddressSanitizer keeps freed
# memory in quarantine (256 MiB by default) and in its own caches: under it the daemons
# get a 4 MiB quarantine and the bound 16 MiB more.
RSS_GROWTH_KIB = (20 + (16 if SANITIZED else 0)) * 1024
ASAN_ENV = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"}
VECTORS = [l for l in read_vector_lines("simpleblob.txt") if l[0] in ("rsa1024", "rsa2048")]
# Every key usable by everyone: the tests are about limits, not access rules.
OPEN_KEYS = {name: (label, id_, "allow_unwrap = *\nallow_wrap = *\nallow_pubkey = *")
             for name, (label, id_) in KEYS.items()}


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    os.chmod(path, 0o755)   # other users' children reach the socket in it
    return path


def daemon(name, extra=LIMITS, env=None, **kw):
    d = Daemon(new_root(name), TOKEN, keys=OPEN_KEYS, extra_daemon=extra,
               env=dict(ASAN_ENV if SANITIZED else {}, **(env or {})), **kw)
    DAEMONS.append(d)
    # Daemon.start()'s probe connection is closed, but may still wait in the listen queue
    # (not yet accepted, so not counted): a request answered on a later connection means the
    # daemon has accepted it (in order); then let it see both go before a test counts
    # connections.
    Conn(d.socket).call("info")
    settled(d)
    return d


def settled(d, n=0):
    """Waits until the daemon holds exactly n client connections (it has seen the others
    go)."""
    wait_until(lambda: d.connections_held() == n, AT_ONCE, "the daemon holding %d connections" % n)


def faulty_daemon(name, extra, **kw):
    """A daemon whose HSM goes through tests/faultp11: (daemon, rules(text) that sets the
    faults, decrypts() counting the C_Decrypt calls that reached the HSM)."""
    root = os.path.join(ROOT, name)
    control, calls = os.path.join(root, "faults"), os.path.join(root, "calls.log")
    hsm = "\n".join(["[hsm]", "module = " + FAULTP11, "token = " + TOKEN.label, "pin_file = pin"])
    env = {"FAULTP11_MODULE": SOFTHSM_MODULE, "FAULTP11_CONTROL": control,
           "FAULTP11_LOG": calls}
    d = daemon(name, extra=extra, hsm_text=hsm, env=env, **kw)

    def rules(text):
        with open(control + ".tmp", "w") as f:
            f.write(text)
        os.rename(control + ".tmp", control)

    def decrypts():
        with open(calls) as f:
            return sum(1 for line in f if line.startswith("C_Decrypt "))
    return d, rules, decrypts


def hsm_pool(d):
    return {p.name: p for p in stats_of(d.socket).pools}["hsm"]


def status_name(code):
    return {v: k for k, v in STATUS.items()}.get(code, str(code))


def unwrap_frame(line, rid):
    name, pad, alg, key, blob = line
    return frame("unwrap", field("NAME", name) + field("BLOB", bytes.fromhex(blob)) +
                 u8("PADDING", PAD[pad]), rid)


def rsa4096_lines():
    return [l for l in read_vector_lines("simpleblob.txt") if l[0] == "rsa4096"]


def well_behaved(sock, seconds, interval=0.05):
    """A client doing one unwrap after another for `seconds` (run it as another uid):
    returns the number of answers, the slowest one, the statuses and any wrong answer."""
    out = {"n": 0, "max_latency": 0.0, "statuses": collections.Counter(), "wrong": [],
           "seconds": seconds, "interval": interval}
    end = time.monotonic() + seconds
    c = Conn(sock, timeout=20)
    i = 0
    while time.monotonic() < end:
        line = VECTORS[i % len(VECTORS)]
        start = time.monotonic()
        c.send(unwrap_frame(line, i))
        r = c.recv()
        latency = time.monotonic() - start
        out["n"] += 1
        out["max_latency"] = max(out["max_latency"], latency)
        out["statuses"][status_name(r.status)] += 1
        if r.id != i or (r.status == 0 and r.get("SESSION_KEY") != bytes.fromhex(line[3])):
            out["wrong"].append((i, r.id, r.status))
        i += 1
        time.sleep(interval)
    c.close()
    return out


def check_well_behaved(res, max_latency=GOOD_LATENCY):
    """Every answer right and OK, none slower than max_latency, and so as many as that
    allows in the time the client ran (one request at a time, `interval` apart)."""
    print("   well-behaved client: %d answers in %.1f s, the slowest in %.3f s" %
          (res["n"], res["seconds"], res["max_latency"]))
    assert res["statuses"] == collections.Counter(OK=res["n"]), res["statuses"]
    assert not res["wrong"], res["wrong"][:5]
    assert res["max_latency"] < max_latency, res["max_latency"]
    assert res["n"] >= int(res["seconds"] / (res["interval"] + max_latency)), res


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def closed_by_peer(s, timeout=0.0):
    """True if the daemon has closed s (EOF or reset), False if it is still open and quiet.
    A refused connection gets one BUSY answer (op 0, id 0) before the close: nothing else."""
    poller = select.poll()   # not select(): with 1,000 sockets open, fds pass 1023
    poller.register(s, select.POLLIN)
    if not poller.poll(timeout * 1000):
        return False
    try:
        data = s.recv(4096, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    if data:
        length, version, op, status, rid = struct.unpack(">IBBHI", data[:12])
        assert (len(data), version, op, status, rid) == (4 + length, 1, 0, 20, 0), data[:40]
        assert b"limit" in data, data
        poller.poll(5000)
        try:
            rest = s.recv(4096, socket.MSG_DONTWAIT)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", "unexpected bytes after the BUSY answer: %r" % rest[:40]
    return True


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def log_lines(d, text):
    return [l for l in d.log_text().splitlines() if text in l]


def refusals_logged(d, text):
    """Refused connections the log accounts for: lines matching text, at most one a
    second, each saying how many more were refused since the line before."""
    lines = log_lines(d, text)
    return len(lines), sum(int(re.search(r"\((\d+) more refused", l).group(1)) for l in lines)


class RssWatch:
    """Samples the daemon's RSS in a thread; .peak() is the largest value seen."""

    def __init__(self, d):
        self.d = d
        self.start_kib = d.rss_kib()
        self.max_kib = self.start_kib
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.max_kib = max(self.max_kib, self.d.rss_kib())
            except (OSError, AssertionError):
                return

    def growth(self):
        self.stop.set()
        self.t.join()
        self.max_kib = max(self.max_kib, self.d.rss_kib())
        return self.max_kib - self.start_kib


def warm_up(d):
    """Every worker and buffer the scenario will use exists before RSS is measured."""
    res = well_behaved(d.socket, 0.3, interval=0)
    check_well_behaved(res)
    settled(d)   # the daemon has seen that connection close


# --- slow-loris -----------------------------------------------------------------------

def test_slow_loris():
    d = daemon("loris")
    warm_up(d)
    rss = RssWatch(d)
    good = Child(well_behaved, d.socket, 6.0, uid=NOBODY, gid=NOBODY)
    # 30 clients: half send a whole frame header first, half only its first byte; then one
    # byte every 0.5 s (the rest of the header, then the body), which never completes the
    # frame (each claims a 300-byte body).
    header = struct.pack(">IBBHI", 296, 1, 4, 0, 7)
    socks, first, closed, rest = [], {}, {}, {}
    for i in range(30):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.socket)
        s.sendall(header if i % 2 == 0 else header[:1])
        rest[s] = (b"" if i % 2 == 0 else header[1:]) + bytes(300)
        first[s] = time.monotonic()
        socks.append(s)
    # request_timeout: each is closed that long after its first byte however the bytes
    # trickle in, and seen here within another request_timeout (one byte every 0.5 s).
    deadline = time.monotonic() + 3 * REQUEST_TIMEOUT
    while time.monotonic() < deadline and len(closed) < len(socks):
        time.sleep(0.5)
        for s in socks:
            if s in closed:
                continue
            if closed_by_peer(s):
                closed[s] = time.monotonic() - first[s]
                continue
            try:
                s.send(rest[s][:1])
                rest[s] = rest[s][1:]
            except (BrokenPipeError, ConnectionResetError):
                closed[s] = time.monotonic() - first[s]
    assert len(closed) == 30, "%d of 30 slow clients still connected" % (30 - len(closed))
    times = sorted(closed.values())
    assert times[0] >= REQUEST_TIMEOUT - 0.1 and times[-1] < 2 * REQUEST_TIMEOUT, times
    check_well_behaved(good.result())
    growth = rss.growth()
    print("   rss growth %d KiB" % growth)
    assert growth < RSS_GROWTH_KIB, growth
    for s in socks:
        s.close()
    assert len(log_lines(d, "no complete request in 2 s, closing")) == 30
    d.stop()


# --- a client that never reads ------------------------------------------------------------

def test_client_that_never_reads():
    d = daemon("noread")
    warm_up(d)
    rss = RssWatch(d)
    good = Child(well_behaved, d.socket, 7.0, uid=NOBODY, gid=NOBODY)
    # Thousands of requests, pipelined: unwraps and wraps (whose answers carry a 4096-bit
    # blob), written as fast as the daemon takes them, never reading a byte.
    lines = [l for l in read_vector_lines("simpleblob.txt") if l[0] == "rsa1024"]
    reqs = []
    for i in range(20000):
        if i % 2:
            reqs.append(frame("wrap", u32("ALG_ID", 0x660e) + field("NAME", "rsa4096") +
                              field("SESSION_KEY", bytes([i % 251]) * 16), i))
        else:
            reqs.append(unwrap_frame(lines[i % len(lines)], i))
    data = b"".join(reqs)
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.setblocking(False)
    # Written until the daemon, its answers unread, stops reading, then closes the
    # connection request_timeout after its last write progress (which came before ours
    # stopped): sending fails then. Without progress for 2 request_timeouts, it is overdue.
    started = time.monotonic()
    off, last_progress = 0, started
    while off < len(data) and time.monotonic() - last_progress < 2 * REQUEST_TIMEOUT:
        try:
            off += s.send(data[off:off + 65536])
            last_progress = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    written = sum(1 for _ in iter_lengths(data[:off]))
    assert written >= 2000, "only %d requests written" % written
    assert wait_for(lambda: log_lines(d, "replies not read in time, closing"), REQUEST_TIMEOUT)
    closed = time.monotonic()
    assert closed - started >= REQUEST_TIMEOUT, closed - started
    assert closed - last_progress < 2 * REQUEST_TIMEOUT, closed - last_progress
    # What it had written before is intact: correct answers, in order of completion.
    c = Conn.of(s, timeout=10)
    answered = 0
    try:
        while True:
            r = c.recv()
            assert r.status == 0, (r.id, status_name(r.status), r.message())
            if r.id % 2 == 0:
                assert r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3])
            else:
                assert len(r.get("BLOB")) == 12 + 512
            answered += 1
    except (EOFError, ConnectionResetError):
        pass
    s.close()
    assert 20 <= answered < written, (answered, written)
    check_well_behaved(good.result())
    growth = rss.growth()
    print("   rss growth %d KiB" % growth)
    assert growth < RSS_GROWTH_KIB, growth
    line = log_lines(d, "replies not read in time, closing")
    assert len(line) == 1 and "uid 0 pid %d:" % os.getpid() in line[0], line
    d.stop()


def iter_lengths(data):
    """The complete frames in data."""
    off = 0
    while off + 4 <= len(data):
        n = struct.unpack_from(">I", data, off)[0]
        if off + 4 + n > len(data):
            return
        yield n
        off += 4 + n


# --- 1,000 connections from one uid ------------------------------------------------------

def test_thousand_connections():
    d = daemon("thousand")
    warm_up(d)
    pid = d.pid()
    fds_before = fd_count(pid)
    rss = RssWatch(d)
    t0 = time.monotonic()
    socks = []
    for _ in range(1000):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.socket)
        socks.append(s)
    # The first 50 (max_connections_per_uid) are kept, the others closed at once, in the
    # order they came: once the last one is closed, the daemon has dealt with every one.
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    closed = set()
    last, deadline = socks[-1].fileno(), time.monotonic() + AT_ONCE
    while (len(closed) < 950 or last not in closed) and time.monotonic() < deadline:
        for fd, ev in poller.poll(200):
            closed.add(fd)
            poller.unregister(fd)
    alive = [s for s in socks if s.fileno() not in closed]
    assert len(alive) == 50, len(alive)
    assert alive == socks[:50], "not the first 50 connections were kept"
    for s in socks[50:]:
        assert closed_by_peer(s, 0)
    assert fd_count(pid) <= fds_before + 50 + 5, fd_count(pid)
    # They work; another connection of this uid does not, one of another uid does.
    for i, s in enumerate(alive):
        assert Conn.of(s, timeout=10).call("info", rid=i).status == 0
    extra = socket.socket(socket.AF_UNIX)
    extra.connect(d.socket)
    assert closed_by_peer(extra, AT_ONCE)
    extra.close()
    check_well_behaved(as_user(well_behaved, d.socket, 1.0, uid=NOBODY, gid=NOBODY)[1])
    growth = rss.growth()
    print("   rss growth %d KiB" % growth)
    assert growth < RSS_GROWTH_KIB, growth
    # 951 refused, but the log is rate-limited: a line a second, each counting the others.
    lines, more = refusals_logged(d, "connection from uid 0 refused: it has 50 open")
    assert 1 <= lines <= time.monotonic() - t0 + 1 and lines + more <= 951, (lines, more)
    for s in socks:
        s.close()
    # Every descriptor comes back.
    assert wait_for(lambda: fd_count(pid) == fds_before, AT_ONCE), (fd_count(pid), fds_before)
    # And the uid may connect again.
    assert Conn(d.socket).call("info").status == 0
    d.stop()


# --- a flood of maximum-size frames ------------------------------------------------------

def max_size_frames():
    """A wrap whose PUBLIC_KEY is 60000 bytes of garbage, and a frame of random fields,
    65536 bytes each (the protocol's largest)."""
    fill = 65536 - 12 - 8 - (4 + 60000) - 4
    wrap = frame("wrap", u32("ALG_ID", 0x660e) + field("PUBLIC_KEY", os.urandom(60000)) +
                 struct.pack(">HH", 50, fill) + bytes(fill))   # PRIVATE_KEY: ignored by wrap
    garbage = frame("wrap", os.urandom(65536 - 12))
    assert len(wrap) == len(garbage) == 65536
    return wrap, garbage


def flooder(sock, conns, seconds):
    """conns connections each writing maximum-size frames for `seconds` while reading the
    answers; returns, per connection, (frames sent, answers read, Counter of (op, status))."""
    wrap, garbage = max_size_frames()
    results = []

    def one():
        c = Conn(sock, timeout=30)
        sent = [0]
        got = collections.Counter()

        def write():
            end = time.time() + seconds
            i = 0
            while time.time() < end:
                c.send(wrap if i % 2 == 0 else garbage)
                i += 1
            sent[0] = i
            c.s.shutdown(socket.SHUT_WR)

        w = threading.Thread(target=write)
        w.start()
        n = 0
        try:
            while True:
                r = c.recv()
                got[(r.op, status_name(r.status))] += 1
                n += 1
        except EOFError:
            pass
        w.join()
        results.append((sent[0], n, got))

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


CERT_PEM = os.path.join(os.environ["KT_VECTORS"], "..", "data", "rsa2048.crt.pem")


def batches(sock, seconds, depth=16):
    """A client of another uid that pipelines `depth` wraps to a PEM certificate (a request
    too big for a job's inline buffer: it needs memory of its own) at a time; returns the
    statuses and the number of wrong answers."""
    with open(CERT_PEM, "rb") as f:
        pem = f.read()
    statuses, wrong, i = collections.Counter(), 0, 0
    c = Conn(sock, timeout=20)
    end = time.time() + seconds
    while time.time() < end:
        c.send(b"".join(frame("wrap", u32("ALG_ID", 0x660e) + field("PUBLIC_KEY", pem),
                              rid=i + k) for k in range(depth)))
        for _ in range(depth):
            r = c.recv()
            statuses[status_name(r.status)] += 1
            if r.status == 0 and (len(r.get("BLOB")) != 12 + 256 or len(r.get("SESSION_KEY")) != 16):
                wrong += 1
        i += depth
        time.sleep(0.02)
    c.close()
    return statuses, wrong


def test_max_size_frame_flood():
    d = daemon("flood", extra=LIMITS + "\nallow_public_ops = *")
    warm_up(d)
    rss = RssWatch(d)
    good = Child(well_behaved, d.socket, 6.0, uid=NOBODY, gid=NOBODY)
    big = Child(batches, d.socket, 6.0, uid=NOBODY, gid=NOBODY)
    # Two users flood: 30 and 10 connections writing 64 KiB frames as fast as they can.
    floods = [Child(flooder, d.socket, conns, 5.0, uid=uid, gid=uid)
              for uid, conns in ((0, 30), (4242, 10))]
    busy, frames = 0, 0
    for f in floods:
        for sent, answered, got in f.result():
            assert answered == sent, (sent, answered)    # one answer per frame
            frames += sent
            busy += got[(5, "BUSY")]
            other = set(got) - {(5, "BAD_PUBLIC_KEY"), (5, "BAD_REQUEST"), (5, "BUSY")}
            assert not other, got
            assert got[(5, "BAD_PUBLIC_KEY")] > 0 and got[(5, "BAD_REQUEST")] > 0, got
    print("   flood: %d frames of 64 KiB, %d answered BUSY" % (frames, busy))
    # Enough to fill job_memory (1024 KiB: 16 such frames) four times over.
    assert frames >= 4 * 1024 // 64, frames
    # Each flooding uid holds at most its share of the locked memory (job_memory_per_uid,
    # 256 KiB, plus the frame that crosses it), whatever its number of connections: the two
    # shares fit in job_memory (1024 KiB), so nobody runs out of it, not even the flooders.
    assert busy == 0, "%d flood frames answered BUSY: a uid overdrew its share" % busy
    check_well_behaved(good.result())          # never BUSY, never slow, never wrong
    statuses, wrong = big.result()
    assert statuses == collections.Counter(OK=sum(statuses.values())), statuses
    # Batches of 16 for 6 s, each answered within request_timeout.
    assert wrong == 0 and sum(statuses.values()) >= 16 * int(6.0 / (REQUEST_TIMEOUT + 0.02)), \
        (wrong, statuses)
    growth = rss.growth()
    print("   rss growth %d KiB" % growth)
    assert growth < RSS_GROWTH_KIB, growth
    d.stop()


# --- request timeout and max_inflight -----------------------------------------------------

def pipelined(sock, frames):
    """Writes frames from a thread while reading; the replies by id."""
    c = Conn(sock, timeout=60)
    w = threading.Thread(target=c.send, args=(b"".join(frames),))
    w.start()
    replies = []
    for _ in frames:
        replies.append(c.recv())
    w.join()
    return c, replies


def test_request_timeout():
    """A request that waits request_timeout for a worker is answered TIMEOUT without any HSM
    work. The one worker is held in a C_Decrypt (faultp11 hang) until the connection's
    other requests have waited longer than request_timeout in the queue: then they all
    time out, whatever this machine's speed; the held one, with its worker, is served."""
    lines = [l for l in rsa4096_lines() if l[1] == "pkcs1"]
    n = 100
    reqs = [unwrap_frame(lines[i % len(lines)], i) for i in range(n)]
    timeout = 1
    # hsm_call_timeout well above the hold: the held call is slow, not hung.
    d, rules, decrypts = faulty_daemon("timeout", workers=1, extra=(
        "request_timeout = %d\nhsm_call_timeout = 600\nmax_inflight = 1024\n"
        "job_memory = 4096\njob_memory_per_uid = 4096" % timeout))
    before = decrypts()
    rules("C_Decrypt hang\n")
    c = Conn(d.socket, timeout=60)
    c.send(b"".join(reqs))
    # Request 0 with the worker, the other n - 1 queued behind it (stats).
    wait_until(lambda: (lambda p: p.in_flight == n and p.queued == n - 1)(hsm_pool(d)),
               AT_ONCE, "%d requests in flight, %d queued" % (n, n - 1))
    time.sleep(timeout + 0.5)
    rules("")       # the worker's call returns
    replies = [c.recv() for _ in range(n)]
    ids = sorted(r.id for r in replies)
    assert ids == list(range(n)), "not exactly one answer per request"
    by_id = {r.id: r for r in replies}
    assert by_id[0].status == 0, (status_name(by_id[0].status), by_id[0].message())
    assert by_id[0].get("SESSION_KEY") == bytes.fromhex(lines[0][3])
    late = [i for i in ids if by_id[i].status == STATUS["TIMEOUT"]]
    assert late == list(range(1, n)), collections.Counter(status_name(r.status) for r in replies)
    for i in late:
        assert by_id[i].message() == "the request waited more than 1 s for a worker"
    # The timed-out requests did no private-key work: one C_Decrypt reached the HSM (and
    # one audit record), not n.
    assert decrypts() - before == 1, decrypts() - before
    assert len(log_lines(d, " audit op=unwrap ")) == 1
    # The connection goes on: a request that finds the worker free is served.
    assert c.call("info", rid=n).status == 0
    r = c.call("unwrap", field("NAME", lines[1][0]) + field("BLOB", bytes.fromhex(lines[1][4])) +
               u8("PADDING", 0), rid=n + 1)
    assert r.status == 0 and r.get("SESSION_KEY") == bytes.fromhex(lines[1][3]), r.status
    d.stop()

    # The same with max_inflight = 4: never more than 4 of the connection's requests wait
    # for the worker, so none waits long enough to time out (observable bound on in-flight).
    # Each C_Decrypt takes 50 ms or more: a request waits at most 3 of them (and their
    # work), far below request_timeout; the n requests would queue n x 50 ms if the limit
    # did not hold, far above it.
    timeout, delay = 2, 50
    assert (4 - 1) * delay / 1000 < timeout / 4 and n * delay / 1000 > 2 * timeout
    d, rules, decrypts = faulty_daemon("inflight4", workers=1, extra=(
        "request_timeout = %d\nmax_inflight = 4" % timeout))
    rules("C_Decrypt delay=%d\n" % delay)
    c, replies = pipelined(d.socket, reqs)
    assert sorted(r.id for r in replies) == list(range(n))
    assert all(r.status == 0 for r in replies), collections.Counter(status_name(r.status)
                                                                   for r in replies)
    for r in replies:
        assert r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3])
    d.stop()


# --- idle timeout -----------------------------------------------------------------------

def test_idle_timeout():
    """idle_timeout closes a connection with nothing in flight, nothing to write and no byte
    received for that long; a request that waits longer than that for its answer (its
    worker held in a C_Decrypt by faultp11, however fast the machine) keeps its
    connection, with the worker or queued for it."""
    idle_timeout = 2
    d, rules, _ = faulty_daemon("idle", workers=1, extra=(
        "idle_timeout = %d\nrequest_timeout = 60\nhsm_call_timeout = 600" % idle_timeout))
    lines = [l for l in rsa4096_lines() if l[1] == "pkcs1"]
    t0 = time.monotonic()
    idle = Conn(d.socket)
    used = Conn(d.socket)
    assert used.call("info").status == 0
    t_used = time.monotonic()
    rules("C_Decrypt hang\n")
    waiting = Conn(d.socket)        # its request with the worker, which the HSM holds
    waiting.send(unwrap_frame(lines[0], 1))
    t_sent = time.monotonic()
    queued = Conn(d.socket)         # its request queued for the worker
    queued.send(unwrap_frame(lines[1], 2))
    # Meanwhile the idle ones go: not before idle_timeout, and within another idle_timeout
    # of our watching.
    assert closed_by_peer(idle.s, 2 * idle_timeout), "an idle connection was not closed"
    idle_closed = time.monotonic() - t0
    assert closed_by_peer(used.s, 2 * idle_timeout), \
        "a connection idle after its answer was not closed"
    used_closed = time.monotonic() - t_used
    assert idle_closed >= idle_timeout - 0.1 and used_closed >= idle_timeout - 0.1, \
        (idle_closed, used_closed)
    wait_until(lambda: (lambda p: p.in_flight == 2 and p.queued == 1)(hsm_pool(d)), AT_ONCE,
               "one request with the worker, one queued")
    # The two requests wait twice idle_timeout without a byte on their connections.
    time.sleep(max(0, t_sent + 2 * idle_timeout - time.monotonic()))
    assert not closed_by_peer(waiting.s) and not closed_by_peer(queued.s), \
        "a connection waiting for its answer was closed as idle"
    rules("")       # the worker's call returns
    for conn, line in ((waiting, lines[0]), (queued, lines[1])):
        r = conn.recv()
        assert r.status == 0 and r.get("SESSION_KEY") == bytes.fromhex(line[3]), r.status
    # Once answered, they have been idle for long: closed at the next check, within
    # idle_timeout.
    assert closed_by_peer(waiting.s, 2 * idle_timeout)
    assert closed_by_peer(queued.s, 2 * idle_timeout)
    assert len(log_lines(d, "idle too long, closing")) == 4
    d.stop()

    # Answers already made but not yet written are waited for too: a client that sent 400
    # requests at once and reads them only when they have all been answered, and then
    # after twice idle_timeout more (but well within request_timeout, the slow-reader
    # limit), gets all of them.
    idle_timeout = 1
    d = daemon("idle-unwritten", extra="idle_timeout = %d\nrequest_timeout = 60\n"
                                       "max_inflight = 4096\njob_memory = 8192\n"
                                       "job_memory_per_uid = 8192" % idle_timeout)
    c = Conn(d.socket)
    c.send(b"".join(frame("wrap", u32("ALG_ID", 0x660e) + field("NAME", "rsa4096") +
                          field("SESSION_KEY", bytes([i % 256]) * 16), i) for i in range(400)))
    wait_until(lambda: next(o.count for o in stats_of(d.socket).ops if o.name == "wrap") == 400,
               AT_ONCE, "the 400 wraps answered")
    time.sleep(2 * idle_timeout)
    got = set()
    for _ in range(400):
        r = c.recv()
        assert r.status == 0 and len(r.get("BLOB")) == 12 + 512, (r.id, r.status)
        got.add(r.id)
    assert got == set(range(400))
    assert not log_lines(d, "closing")
    d.stop()


# --- connection limits and max_inflight -----------------------------------------------------

def other_uid_connections(sock, n):
    """n connections as this (other) uid; how many the daemon keeps, and that they work."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        socks.append(s)
    # Those over the limit are closed at once, in the order they came, and the last one is
    # over it: once it is closed, the daemon has dealt with every one.
    last_closed = closed_by_peer(socks[-1], AT_ONCE)
    alive = [s for s in socks[:-1] if not closed_by_peer(s, 0)]
    alive += [] if last_closed else socks[-1:]
    for i, s in enumerate(alive):
        assert Conn.of(s, timeout=10).call("info", rid=i).status == 0
    return len(alive)


def test_connection_limits_and_inflight():
    d = daemon("conns", extra="socket_mode = 0666\nmax_connections = 60\n"
                              "max_connections_per_uid = 50\nmax_inflight = 4")
    mine = [Conn(d.socket) for _ in range(50)]
    for c in mine:
        assert c.call("info").status == 0
    # 20 more from another uid: only 10 fit under max_connections.
    t0 = time.monotonic()
    _, kept = as_user(other_uid_connections, d.socket, 20, uid=NOBODY, gid=NOBODY)
    assert kept == 10, kept
    # The refusals' log lines: at most one a second, each counting the others.
    lines, more = refusals_logged(d, "connection from uid 65534 refused: the daemon has 60 open")
    assert 1 <= lines <= time.monotonic() - t0 + 1 and lines + more <= 10, (lines, more)
    # A 51st of this uid is refused (per uid).
    extra = socket.socket(socket.AF_UNIX)
    extra.connect(d.socket)
    assert closed_by_peer(extra, AT_ONCE)
    time.sleep(1.1)     # past the refusal log's one line a second
    extra2 = socket.socket(socket.AF_UNIX)
    extra2.connect(d.socket)
    assert closed_by_peer(extra2, AT_ONCE)
    assert len(log_lines(d, "connection from uid 0 refused: it has 50 open")) >= 1
    # Closing some makes room again (the other uid's 10 are gone with its process).
    for c in mine[:10]:
        c.close()
    settled(d, 40)
    _, kept = as_user(other_uid_connections, d.socket, 30, uid=NOBODY, gid=NOBODY)
    assert kept == 20, kept
    # max_inflight = 4: a client pipelining 200 requests still gets every answer, right.
    lines = read_vector_lines("simpleblob.txt")
    c, replies = pipelined(d.socket, [unwrap_frame(lines[i % len(lines)], i) for i in range(200)])
    assert sorted(r.id for r in replies) == list(range(200))
    for r in replies:
        assert r.status == 0 and r.get("SESSION_KEY") == bytes.fromhex(lines[r.id % len(lines)][3])
    for c in mine[10:]:
        c.close()
    d.stop()


def main():
    global TOKEN, ROOT
    if os.geteuid() != 0:
        print("SKIPPED (not root): the limit tests play other users, which needs root")
        sys.exit(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(hard, 4096)))
    with Workspace() as root:
        ROOT = root
        os.chmod(root, 0o755)
        TOKEN = Token(os.path.join(root, "hsm"))
        try:
            run_tests([test_slow_loris, test_client_that_never_reads, test_thousand_connections,
                       test_max_size_frame_flood, test_request_timeout, test_idle_timeout,
                       test_connection_limits_and_inflight])
        finally:
            for d in DAEMONS:
                if d.alive():
                    d.proc.kill()
                    d.proc.wait()


if __name__ == "__main__":
    main()
