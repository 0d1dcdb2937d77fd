#!/usr/bin/env python3
"""Soak test of keytransd: many concurrent clients, every operation, clients that
leave mid-request or read slowly, and an HSM fault injected and cleared twice.

    soak.py --keytransd PATH --faultp11 PATH [--duration S] [--connections N]
            [--valgrind | --lsan] [--json] [--seed N] [--faults N] [--keep]

(scripts/soak builds the project and runs this; meson runs it as the test
`soak-short`.) It makes a SoftHSM token holding the vector keys rsa1024 and
rsa2048, starts keytransd in the foreground with its [hsm] module set to
tests/faultp11 (which forwards to SoftHSM), and drives it from one asyncio
loop:

- normal clients (one request in flight): unwrap of known-answer vectors
  (PKCS#1 v1.5 and OAEP), wrap of a given or generated key checked by
  unwrapping it, copp-sign then copp-open, copp-open of known-answer
  vectors, pubkey in every format against the vector files, keys, info, and
  deliberately bad requests whose refusal is known (BLOB_* statuses, STRICT
  UNWRAP_FAILED, UNKNOWN_KEY, implicit rejection giving the same key each time);
- leavers: send half a frame, or whole frames, and close before the answer;
- slow readers: a 2 KiB receive buffer, 32 requests pipelined, answers read
  256 bytes at a time with pauses;
- during the warm-up (30% of the run) each fault below once, for 1 s, so that
  the first module reload and the bursts it causes come before the RSS
  reference is taken; then
- twice, an HSM fault written to faultp11's control file, held, then cleared
  (first `C_Decrypt rv=CKR_DEVICE_ERROR reset`: every decryption fails and
  the HSM's sessions are lost; then `* rv=CKR_DEVICE_REMOVED`: the device is
  gone), measuring the recovery time (fault cleared -> the first private
  operation that succeeds, as clients see it, and -> `info` reports the HSM up).

Invariants, any broken one makes the exit status 1:
- every answer is correct (no wrong answer, no malformed frame);
- every request a client waited for was answered (nothing lost, no
  connection closed by the daemon); every error answer is expected:
  HSM_UNAVAILABLE for HSM work while a fault is on (until 1 s after the
  first success following its clearing), or the known refusal of a bad request;
- after every client has closed, the daemon's open file descriptors return to
  their count before the first client;
- its RSS at the end is within 10% of its RSS after warm-up, leaving out the
  resident part of OpenSSL's secure heap (the jobs' locked memory, a fixed
  arena of job_memory KiB resident page by page on first touch: its high-water
  mark of requests in flight, reported apart); not checked under valgrind or a
  sanitizer, whose allocators keep freed memory;
- the daemon never restarted or crashed, and SIGTERM stops it with status 0
  and no sanitizer report; under valgrind (--valgrind), no definite leak and
  no memory error (valgrind's --error-exitcode).
"""
import argparse
import asyncio
import base64
import collections
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "client", "python"))
import keytrans as kt  # noqa: E402

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN, SO_PIN, TOKEN = "4321", "87654321", "kt-soak"
KEYS = {"rsa1024": ("rsa1024", "01"), "rsa2048": ("rsa2048", "02")}
HSM_OPS = {"unwrap", "copp-open", "copp-sign", "wrap-generate", "leaver"}   # may need the HSM
PRIVATE = {"unwrap", "copp-open"}
NEGATIVE_STATUS = {"bad_btype": "BLOB_TYPE", "bad_version": "BLOB_VERSION",
                   "bad_reserved": "BLOB_RESERVED", "wrap_alg_sign": "BLOB_WRAP_ALG",
                   "unknown_key_alg": "BLOB_ALG", "truncated": "BLOB_LENGTH",
                   "trailing_byte": "BLOB_LENGTH", "header_only": "BLOB_LENGTH",
                   "empty": "BLOB_LENGTH", "ciphertext_ge_modulus": "BLOB_RANGE"}
FAULTS = [("C_Decrypt rv=CKR_DEVICE_ERROR reset", "every decryption fails, sessions lost"),
          ("* rv=CKR_DEVICE_REMOVED", "the device is gone: every call fails")]
JOB_MEMORY_KIB = 32768   # job_memory: room for every request of 1,000 connections and more
GRACE = 1.0          # s after recovery during which late HSM_UNAVAILABLE answers are expected
REPLY_TIMEOUT = 120  # s a client waits for one answer before counting it lost


# ---------------------------------------------------------------- known answers

class Vectors:
    def __init__(self, root):
        def lines(name):
            with open(os.path.join(root, name)) as f:
                return [l.split() for l in f if l.strip() and not l.startswith("#")]
        self.blobs = [(k, pad == "oaep", int(aid, 16), bytes.fromhex(key), bytes.fromhex(blob))
                      for k, pad, aid, key, blob in lines("simpleblob.txt") if k in KEYS]
        self.copp = [(k, bytes.fromhex(r), bytes.fromhex(a), int(s), int(c), bytes.fromhex(sig))
                     for k, r, a, s, c, sig in lines("copp.txt") if k in KEYS]
        neg = [(n, cls, b"" if b == "-" else bytes.fromhex(b))
               for n, cls, b in lines("negative.txt")]
        self.format_neg = [(n, b) for n, cls, b in neg if cls == "format"]
        self.decrypt_neg = [(n, b) for n, cls, b in neg if cls == "decrypt"]
        self.pub = {}
        for k in KEYS:
            p = os.path.join(root, "keys", k)
            with open(p + ".pub.blob", "rb") as f:
                blob = f.read()
            with open(p + ".pub.pem", "rb") as f:
                pem = f.read()
            der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-")))
            self.pub[k] = {"blob": blob, "pem": pem, "der": der}
        self.bits = {"rsa1024": 1024, "rsa2048": 2048}


# ---------------------------------------------------------------- accounting

class Faults:
    """The fault windows: an HSM_UNAVAILABLE answer is expected inside one."""

    def __init__(self):
        self.windows = []   # dicts: injected, cleared, recovered, up_seen, down_seen, rule

    def expected(self, sent, now):
        """Whether a request sent at sent and answered (read) at now overlapped a fault:
        from its injection to GRACE after the first private success once it was cleared."""
        for w in self.windows:
            end = w["recovered"] + GRACE if w["recovered"] is not None else None
            if w["injected"] <= now and (end is None or sent <= end):
                return True
        return False

    def private_ok(self, sent, now):
        for w in self.windows:
            if w["cleared"] is not None and w["recovered"] is None and sent >= w["cleared"]:
                w["recovered"] = now


class Stats:
    def __init__(self):
        self.sent = collections.Counter()        # by op
        self.ok = collections.Counter()          # correct OK answers, by op
        self.refused = collections.Counter()     # correct refusals of bad requests, by status
        self.expected = collections.Counter()    # expected errors, by status
        self.unexpected = collections.Counter()  # (op, status)
        self.wrong = 0
        self.lost = 0                            # requests never answered
        self.dropped = 0                         # connections refused or closed by the daemon
        self.abandoned = 0                       # requests of clients that left on purpose
        self.connects = 0
        self.samples = []                        # first problems, for the report

    def problem(self, text):
        if len(self.samples) < 20:
            self.samples.append(text)

    def answered(self):
        return (sum(self.ok.values()) + sum(self.refused.values()) + sum(self.expected.values())
                + sum(self.unexpected.values()) + self.wrong)


class Lost(Exception):
    pass


class Answer:
    __slots__ = ("status", "name", "message", "result")

    def __init__(self, status, message="", result=None):
        self.status, self.name, self.message, self.result = (status, kt.status_name(status),
                                                             message, result)


# ---------------------------------------------------------------- connections

async def open_socket(path, rcvbuf=None):
    loop = asyncio.get_running_loop()
    for _ in range(2000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setblocking(False)
        try:
            await loop.sock_connect(s, path)
            return s
        except (BlockingIOError, InterruptedError):   # the listen backlog is full
            s.close()
            await asyncio.sleep(0.01)
    raise Lost("cannot connect: listen backlog full for 20 s")


class Conn:
    def __init__(self, soak, sock, chunk=65536, pause=None):
        self.soak, self.sock, self.chunk, self.pause = soak, sock, chunk, pause
        self.loop = asyncio.get_running_loop()
        self.rx = bytearray()
        self.rid = 0
        self.pending = {}    # id -> (opname, opcode, decoder, sent time)

    @classmethod
    async def open(cls, soak, rcvbuf=None, chunk=65536, pause=None):
        s = await open_socket(soak.socket, rcvbuf)
        soak.stats.connects += 1
        return cls(soak, s, chunk, pause)

    def close(self):
        self.sock.close()

    def frame(self, label, name, *args, **kw):
        """A request frame; registers it as pending under label (stats key)."""
        op, fields, dec = kt._build(kt.Op(name, *args, **kw))
        self.rid += 1
        self.pending[self.rid] = (label, op, dec, time.monotonic())
        self.soak.stats.sent[label] += 1
        return self.rid, struct.pack(">IBBHI", 8 + len(fields), 1, op, 0, self.rid) + fields

    async def send(self, data):
        try:
            await self.loop.sock_sendall(self.sock, data)
        except OSError as e:
            raise Lost("send: %s" % e)

    async def read_frame(self):
        while True:
            if len(self.rx) >= 4:
                n = struct.unpack_from(">I", self.rx)[0]
                if not 8 <= n <= 65532:
                    raise Lost("answer frame of length %d" % n)
                if len(self.rx) >= 4 + n:
                    raw = bytes(self.rx[4:4 + n])
                    del self.rx[:4 + n]
                    return raw
            try:
                chunk = await self.loop.sock_recv(self.sock, self.chunk)
            except OSError as e:
                raise Lost("receive: %s" % e)
            if not chunk:
                raise Lost("the daemon closed the connection")
            self.rx += chunk
            if self.pause:
                await asyncio.sleep(self.pause)

    async def answer(self):
        """The next answer: (id, label, sent time, Answer); a malformed one counts as wrong."""
        try:
            raw = await asyncio.wait_for(self.read_frame(), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            raise Lost("no answer in %d s" % REPLY_TIMEOUT)
        version, op, status, rid = struct.unpack_from(">BBHI", raw)
        if rid not in self.pending:
            raise Lost("answer to unknown request id %d" % rid)
        label, want_op, dec, sent = self.pending.pop(rid)
        if version != 1 or op != want_op:
            return rid, label, sent, None
        try:
            m = kt._parse_fields(raw[8:])
            if status != 0:
                msg = m.get(kt._T["MESSAGE"], b"").decode("utf-8", "replace")
                return rid, label, sent, Answer(status, msg)
            return rid, label, sent, Answer(0, result=dec(m, raw[8:]))
        except (kt._WireError, kt.KeytransError) as e:
            self.soak.stats.problem("%s: malformed answer: %s" % (label, e))
            return rid, label, sent, None

    async def call(self, label, name, *args, want="OK", **kw):
        """One request, its answer judged: the result when the answer has status want,
        else None (the error is counted as expected or not)."""
        _, data = self.frame(label, name, *args, **kw)
        await self.send(data)
        _, label, sent, a = await self.answer()
        return self.soak.judge(label, sent, a, want)


# ---------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args, root, vec):
        self.a, self.root, self.vec = args, root, vec
        self.stats, self.faults = Stats(), Faults()
        self.stop = False
        self.socket = os.path.join(root, "kt.sock")
        self.control = os.path.join(root, "faults")
        self.implicit = {}        # negative blob name -> the key implicit rejection gave
        self.t0 = None
        self.events = []          # (seconds since start, text)

    def note(self, text):
        t = time.monotonic() - self.t0
        self.events.append((round(t, 2), text))
        if not self.a.quiet:
            print("[%7.2f] %s" % (t, text), file=sys.stderr, flush=True)

    # -- judging --

    def judge(self, label, sent, a, want="OK"):
        st = self.stats
        now = time.monotonic()
        if a is None:
            st.wrong += 1
            return None
        if a.name == want:
            if want == "OK":
                st.ok[label] += 1
                if label in PRIVATE:
                    self.faults.private_ok(sent, now)
                return a.result
            st.refused[a.name] += 1
            return True
        if a.name == "HSM_UNAVAILABLE" and label in HSM_OPS and self.faults.expected(sent, now):
            st.expected[a.name] += 1
            return None
        st.unexpected[(label, a.name)] += 1
        st.problem("%s: %s (%s) at %.2f s" % (label, a.name, a.message, now - self.t0))
        return None

    def wrong(self, label, text):
        """An OK answer (counted as correct by judge()) turned out wrong."""
        self.stats.ok[label] -= 1
        self.stats.wrong += 1
        self.stats.problem("WRONG " + text)

    # -- normal clients: one scenario after another, one request in flight --

    async def sc_unwrap_vector(self, c, rng):
        k, oaep, aid, key, blob = rng.choice(self.vec.blobs)
        r = await c.call("unwrap", "unwrap", k, blob, oaep=oaep)
        if r is not None and (r.alg_id != aid or r.key != key):
            self.wrong("unwrap", "unwrap of a %s vector gave %r" % (k, r))

    async def sc_wrap_unwrap(self, c, rng, generate=False, to_pub=False):
        k = rng.choice(list(KEYS))
        aid = rng.choice(list(kt.ALGS))
        _, lo, hi = kt.ALGS[aid]
        oaep = rng.random() < 0.5
        w_label = "wrap-generate" if generate else ("wrap-pub" if to_pub else "wrap")
        if generate:
            w = await c.call("wrap-generate", "wrap", aid, to_key=k, oaep=oaep)
        elif to_pub:
            key = os.urandom(rng.randint(lo, hi))
            w = await c.call("wrap-pub", "wrap", aid, key=key, oaep=oaep,
                             to_pub=self.vec.pub[k][rng.choice(["pem", "der", "blob"])])
        else:
            key = os.urandom(rng.randint(lo, hi))
            w = await c.call("wrap", "wrap", aid, key=key, to_key=k, oaep=oaep)
        if w is None:
            return
        if not generate and w.key != key:
            self.wrong(w_label, "wrap returned another key")
            return
        r = await c.call("unwrap", "unwrap", k, w.blob, oaep=oaep, strict=True)
        if r is not None and (r.alg_id != aid or r.key != w.key):
            self.wrong("unwrap", "a wrapped %s key unwrapped to %r" % (kt.alg_name(aid), r))

    async def sc_copp_roundtrip(self, c, rng):
        rnd = os.urandom(16)
        kw = {}
        if rng.random() < 0.5:
            kw = dict(aes_key=os.urandom(16), status_seq=rng.getrandbits(32),
                      command_seq=rng.getrandbits(32))
        s = await c.call("copp-sign", "copp-sign", rnd, to_key="rsa2048", **kw)
        if s is None:
            return
        o = await c.call("copp-open", "copp-open", "rsa2048", s.signature, expect_random=rnd,
                         strict=True)
        if o is not None and (o.random, o.aes_key, o.status_seq, o.command_seq) != (
                s.random, s.aes_key, s.status_seq, s.command_seq):
            self.wrong("copp-open", "copp-open of a fresh signature gave %r, signed %r" % (o, s))

    async def sc_copp_vector(self, c, rng):
        k, rnd, aes, sseq, cseq, sig = rng.choice(self.vec.copp)
        o = await c.call("copp-open", "copp-open", k, sig, expect_random=rnd)
        if o is not None and (o.aes_key, o.status_seq, o.command_seq) != (aes, sseq, cseq):
            self.wrong("copp-open", "copp-open of a vector gave %r" % (o,))

    async def sc_pubkey(self, c, rng):
        k = rng.choice(list(KEYS))
        fmt = rng.choice(["blob", "pem", "der"])
        p = await c.call("pubkey", "pubkey", k, fmt)
        want = self.vec.pub[k][fmt]
        if p is not None and (p.split() != want.split() if fmt == "pem" else p != want):
            self.wrong("pubkey", "pubkey %s %s differs from the vector file" % (k, fmt))

    async def sc_keys(self, c, rng):
        ks = await c.call("keys", "keys")
        if ks is not None and sorted((x.name, x.bits, x.exponent) for x in ks) != sorted(
                (k, self.vec.bits[k], 65537) for k in KEYS):
            self.wrong("keys", "keys gave %r" % (ks,))

    async def sc_info(self, c, rng):
        i = await c.call("info", "info")
        if i is not None and (i.version != kt.__version__ or i.key_count != len(KEYS)
                              or i.token_label != TOKEN):
            self.wrong("info", "info gave %r" % (i,))

    async def sc_bad(self, c, rng):
        kind = rng.random()
        if kind < 0.45:
            n, blob = rng.choice(self.vec.format_neg)
            await c.call("refused", "unwrap", "rsa2048", blob, want=NEGATIVE_STATUS[n],
                         strict=rng.random() < 0.5)
        elif kind < 0.7:
            n, blob = rng.choice(self.vec.decrypt_neg)
            await c.call("unwrap", "unwrap", "rsa2048", blob, want="UNWRAP_FAILED",
                         strict=True)
        elif kind < 0.9:
            # Implicit rejection: OK, and the same made-up key every time.
            n, blob = rng.choice(self.vec.decrypt_neg)
            r = await c.call("unwrap", "unwrap", "rsa2048", blob)
            if r is not None:
                first = self.implicit.setdefault(n, r)
                if r != first:
                    self.wrong("unwrap", "implicit rejection of %s gave %r then %r" % (n, first, r))
        else:
            await c.call("refused", "pubkey", "no-such-key", want="UNKNOWN_KEY")

    SCENARIOS = [("sc_unwrap_vector", 20), ("sc_wrap_unwrap", 14), ("sc_wrap_generate", 7),
                 ("sc_wrap_pub", 5), ("sc_copp_roundtrip", 8), ("sc_copp_vector", 8),
                 ("sc_pubkey", 12), ("sc_keys", 5), ("sc_info", 5), ("sc_bad", 8)]

    async def sc_wrap_generate(self, c, rng):
        await self.sc_wrap_unwrap(c, rng, generate=True)

    async def sc_wrap_pub(self, c, rng):
        await self.sc_wrap_unwrap(c, rng, to_pub=True)

    async def normal(self, i):
        rng = random.Random(self.a.seed * 100003 + i)
        names = [getattr(self, n) for n, _ in self.SCENARIOS]
        weights = [w for _, w in self.SCENARIOS]
        while not self.stop:
            try:
                c = await Conn.open(self)
            except Lost as e:
                self.stats.dropped += 1
                self.stats.problem("normal client %d: %s" % (i, e))
                await asyncio.sleep(0.5)
                continue
            try:
                while not self.stop:
                    before = sum(self.stats.expected.values())
                    await rng.choices(names, weights)[0](c, rng)
                    if sum(self.stats.expected.values()) != before:
                        await asyncio.sleep(0.1)     # HSM out of service: back off a little
            except Lost as e:
                self.stats.lost += len(c.pending)
                self.stats.dropped += 1
                self.stats.problem("normal client %d: %s (%d request(s) unanswered)" % (
                    i, e, len(c.pending)))
            finally:
                c.close()

    # -- clients that leave mid-request --

    async def leaver(self, i):
        rng = random.Random(self.a.seed * 200003 + i)
        while not self.stop:
            try:
                c = await Conn.open(self)
            except Lost as e:
                self.stats.dropped += 1
                self.stats.problem("leaver %d: %s" % (i, e))
                await asyncio.sleep(0.5)
                continue
            try:
                k, oaep, _, _, blob = rng.choice(self.vec.blobs)
                kind = rng.random()
                if kind < 0.35:                      # half a frame, then gone
                    _, data = c.frame("abandoned", "unwrap", k, blob, oaep=oaep)
                    await c.send(data[:rng.randint(1, len(data) - 1)])
                    if rng.random() < 0.5:
                        await asyncio.sleep(rng.uniform(0, 0.2))
                elif kind < 0.7:                     # a whole frame, gone before the answer
                    _, data = c.frame("abandoned", "unwrap", k, blob, oaep=oaep)
                    await c.send(data)
                    if rng.random() < 0.5:
                        await asyncio.sleep(rng.uniform(0, 0.05))
                else:                                # several, one answer read, then gone
                    data = b"".join(c.frame("leaver", *rng.choice([
                        ("unwrap", k, blob), ("copp-sign", os.urandom(16), "rsa2048"),
                        ("wrap", "AES_128", None, None, "rsa1024")]))[1] for _ in range(8))
                    await c.send(data)
                    _, label, sent, a = await c.answer()
                    self.judge(label, sent, a)   # not checked further: it is an early answer
            except Lost as e:
                self.stats.dropped += 1
                self.stats.problem("leaver %d: %s" % (i, e))
            finally:
                self.stats.abandoned += len(c.pending)
                c.close()
            await asyncio.sleep(rng.uniform(0.02, 0.3))

    # -- slow readers: pipelined requests, small receive buffer, pauses --

    async def slow(self, i):
        rng = random.Random(self.a.seed * 300007 + i)
        while not self.stop:
            try:
                c = await Conn.open(self, rcvbuf=2048, chunk=256, pause=rng.uniform(0.005, 0.03))
            except Lost as e:
                self.stats.dropped += 1
                self.stats.problem("slow reader %d: %s" % (i, e))
                await asyncio.sleep(0.5)
                continue
            try:
                for _ in range(rng.randint(2, 6)):
                    if self.stop:
                        break
                    await self.slow_round(c, rng)
            except Lost as e:
                self.stats.lost += len(c.pending)
                self.stats.dropped += 1
                self.stats.problem("slow reader %d: %s (%d request(s) unanswered)" % (
                    i, e, len(c.pending)))
            finally:
                c.close()

    async def slow_round(self, c, rng):
        checks = {}
        frames = []
        for _ in range(32):
            r = rng.random()
            if r < 0.4:
                k = rng.choice(list(KEYS))
                fmt = rng.choice(["pem", "der", "blob"])
                rid, f = c.frame("pubkey", "pubkey", k, fmt)
                checks[rid] = ("pubkey", self.vec.pub[k][fmt])
            elif r < 0.55:
                rid, f = c.frame("keys", "keys")
                checks[rid] = ("keys", None)
            elif r < 0.65:
                rid, f = c.frame("info", "info")
                checks[rid] = ("info", None)
            elif r < 0.85:
                k, oaep, aid, key, blob = rng.choice(self.vec.blobs)
                rid, f = c.frame("unwrap", "unwrap", k, blob, oaep=oaep)
                checks[rid] = ("unwrap", (aid, key))
            else:
                k, rnd, aes, sseq, cseq, sig = rng.choice(self.vec.copp)
                rid, f = c.frame("copp-open", "copp-open", k, sig, expect_random=rnd)
                checks[rid] = ("copp-open", (aes, sseq, cseq))
            frames.append(f)
        send = asyncio.ensure_future(c.send(b"".join(frames)))
        try:
            for _ in range(len(frames)):
                rid, label, sent, a = await c.answer()
                r = self.judge(label, sent, a)
                kind, want = checks.pop(rid)
                if r is None:
                    continue
                if kind == "pubkey":
                    ok = r.split() == want.split() if want.startswith(b"-") else r == want
                elif kind == "unwrap":
                    ok = (r.alg_id, r.key) == want
                elif kind == "copp-open":
                    ok = (r.aes_key, r.status_seq, r.command_seq) == want
                elif kind == "info":
                    ok = r.key_count == len(KEYS)
                else:
                    ok = len(r) == len(KEYS)
                if not ok:
                    self.wrong(label, "slow reader: %s answer %r" % (kind, r))
        finally:
            if not send.done():
                send.cancel()
            try:
                await send
            except (asyncio.CancelledError, Lost):
                pass

    # -- the fault injector and the HSM state monitor --

    def rules(self, text):
        with open(self.control + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.control + ".tmp", self.control)

    async def hsm_state(self):
        """'up' or 'down' from info on a connection of its own (None if it failed)."""
        try:
            s = await open_socket(self.socket)
        except Lost:
            return None
        c = Conn(self, s)
        try:
            i = await c.call("info", "info")
            return i.hsms[0].state if i is not None and i.hsms else None
        except Lost:
            return None
        finally:
            c.close()

    async def injector(self, schedule):
        for at, hold, (rule, what), priming in schedule:
            await asyncio.sleep(max(0, self.t0 + at - time.monotonic()))
            if self.stop:
                return
            w = dict(rule=rule, what=what, injected=time.monotonic(), cleared=None,
                     recovered=None, down_seen=None, up_seen=None, priming=priming)
            self.faults.windows.append(w)
            self.rules(rule + "\n")
            self.note("%sfault on: %s (%s)" % ("warm-up " if priming else "", rule, what))
            end = w["injected"] + hold
            while time.monotonic() < end:
                if w["down_seen"] is None and await self.hsm_state() == "down":
                    w["down_seen"] = time.monotonic()
                await asyncio.sleep(0.05)
            self.rules("")
            w["cleared"] = time.monotonic()
            self.note("fault cleared")
            limit = w["cleared"] + 60
            while time.monotonic() < limit and (w["up_seen"] is None or w["recovered"] is None):
                if w["up_seen"] is None and await self.hsm_state() == "up":
                    w["up_seen"] = time.monotonic()
                await asyncio.sleep(0.02)
            self.note("recovered: first private success after %s, info says up after %s" % (
                fmt_s(w["recovered"], w["cleared"]), fmt_s(w["up_seen"], w["cleared"])))

    async def run(self, daemon):
        a = self.a
        n = a.connections
        n_leave = max(1, n // 10)
        n_slow = max(1, n // 20)
        n_normal = n - n_leave - n_slow
        self.t0 = time.monotonic()
        # Memory settles once every connection has served for a few seconds (malloc arenas of
        # the workers, libevent's buffers): RSS is taken after a quarter of the run.
        # The warm-up also goes once through each fault and its recovery (short): the first
        # module reload and the largest bursts of jobs in flight then happen before the RSS
        # reference is taken.
        warm = min(max(0.3 * a.duration, 12), 45)
        hold = min(max(0.08 * a.duration, 2), 10)
        rest = a.duration - warm
        nf = a.faults
        schedule = [(0.25 * warm, 1.0, FAULTS[0], True), (0.55 * warm, 1.0, FAULTS[1], True)]
        schedule += [(warm + rest * (0.15 + 0.8 * k / max(nf, 1)),
                      hold if nf <= 2 else min(hold, 0.3 * rest / nf), FAULTS[k % 2], False)
                     for k in range(nf)]
        tasks = []
        kinds = [self.normal] * n_normal + [self.leaver] * n_leave + [self.slow] * n_slow
        random.Random(a.seed).shuffle(kinds)
        for i, kind in enumerate(kinds):
            tasks.append(asyncio.ensure_future(kind(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.02)
        self.note("%d clients started (%d normal, %d leaving mid-request, %d slow readers)" % (
            n, n_normal, n_leave, n_slow))
        injector = asyncio.ensure_future(self.injector(schedule))
        await asyncio.sleep(max(0, self.t0 + warm - time.monotonic()))
        daemon.warm = daemon.sample()
        daemon.secure_warm = daemon.secure_heap_kib()
        daemon.warm_requests = sum(self.stats.sent.values())
        self.note("warm: %d fds, RSS %d KiB, %d requests so far" % (
            daemon.warm[0], daemon.warm[1], daemon.warm_requests))
        peak = daemon.warm
        while time.monotonic() < self.t0 + a.duration:
            await asyncio.sleep(1)
            s = daemon.sample()
            daemon.timeline.append((round(time.monotonic() - self.t0, 1), s[0], s[1]))
            peak = (max(peak[0], s[0]), max(peak[1], s[1]))
            if not daemon.alive():
                break
        daemon.load = daemon.sample() if daemon.alive() else (0, 0)
        daemon.secure_end = daemon.secure_heap_kib()
        daemon.peak = peak
        self.elapsed = time.monotonic() - self.t0
        self.note("stopping the clients")
        self.stop = True
        done, pending = await asyncio.wait(tasks + [injector], timeout=REPLY_TIMEOUT + 30)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                self.stats.problem("client task failed: %r" % (t.exception(),))
                self.stats.dropped += 1
        if pending:
            self.stats.problem("%d client(s) did not finish" % len(pending))
            self.stats.dropped += len(pending)


def fmt_s(t, since):
    return "—" if t is None else "%.2f s" % (t - since)


# ---------------------------------------------------------------- the daemon

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


class Daemon:
    def __init__(self, a, root, vec_root):
        self.root = root
        self.warm = self.load = self.peak = self.end = None
        self.secure_warm = self.secure_end = None
        self.timeline = []      # (seconds, fds, RSS KiB) every second after warm-up
        os.makedirs(os.path.join(root, "tokens"))
        conf = os.path.join(root, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % root)
        env = dict(os.environ, SOFTHSM2_CONF=conf, FAULTP11_MODULE=SOFTHSM,
                   FAULTP11_CONTROL=os.path.join(root, "faults"))

        def util(*args):
            subprocess.run(["softhsm2-util", *args], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        util("--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", PIN)
        for name, (label, kid) in KEYS.items():
            util("--import", os.path.join(vec_root, "keys", name + ".pem"), "--token", TOKEN,
                 "--label", label, "--id", kid, "--pin", PIN)
        with open(os.path.join(root, "pin"), "w") as f:
            f.write(PIN + "\n")
        os.chmod(os.path.join(root, "pin"), 0o600)
        open(os.path.join(root, "faults"), "w").close()
        limit = max(4096, 2 * a.connections)
        lines = ["[daemon]", "socket = kt.sock", "socket_mode = 0600",
                 "workers = %d" % a.workers,
                 "max_connections = %d" % limit, "max_connections_per_uid = %d" % limit,
                 "job_memory = %d" % JOB_MEMORY_KIB, "job_memory_per_uid = %d" % JOB_MEMORY_KIB,
                 "request_timeout = %d" % (120 if a.valgrind else 30),
                 "hsm_call_timeout = %d" % (60 if a.valgrind else 10),
                 "hsm_retry_max = 1",
                 "[hsm]", "module = " + a.faultp11, "token = " + TOKEN, "pin_file = pin"]
        for name, (label, kid) in KEYS.items():
            lines += ["[key %s]" % name, "label = " + label, "id = " + kid]
        self.config = os.path.join(root, "keytransd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        cmd = [a.keytransd, "-f", "-c", self.config]
        self.vg_log = None
        if a.valgrind:
            self.vg_log = os.path.join(root, "valgrind.log")
            cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                   "--errors-for-leak-kinds=definite", "--error-exitcode=99",
                   "--num-callers=30", "--log-file=" + self.vg_log] + (
                       ["--suppressions=" + a.suppressions] if a.suppressions else []) + cmd
        self.log_path = os.path.join(root, "keytransd.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log,
                                     preexec_fn=raise_nofile)
        self.socket = os.path.join(root, "kt.sock")
        deadline = time.monotonic() + (300 if a.valgrind else 60)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("keytransd exited with %d:\n%s" % (self.proc.returncode,
                                                                        self.log_text()[-4000:]))
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                s.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("keytransd did not start:\n" + self.log_text()[-4000:])
                time.sleep(0.1)
        # The probe connection above: let the daemon close its end.
        time.sleep(1.0)
        self.start = self.sample()

    def log_text(self):
        """The log without its audit lines (one per request: many megabytes)."""
        with open(self.log_path, "rb") as f:
            return "".join(l.decode(errors="replace") for l in f if b" audit op=" not in l)

    def audit(self):
        """The audit records' outcomes: status name -> count."""
        out = collections.Counter()
        with open(self.log_path, "rb") as f:
            for l in f:
                if b" audit op=" in l:
                    out[l.rsplit(b"outcome=", 1)[-1].strip().decode(errors="replace")] += 1
        return out

    def alive(self):
        return self.proc.poll() is None

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def sample(self):
        try:
            return self.fds(), self.rss()
        except OSError:
            return 0, 0

    def secure_heap_kib(self):
        """Resident KiB of OpenSSL's secure heap (the jobs' locked memory, job_memory KiB,
        locked on first touch and never given back: its high-water mark), or None."""
        try:
            with open("/proc/%d/smaps" % self.proc.pid) as f:
                size = None
                for line in f:
                    if line.startswith("Size:"):
                        size = int(line.split()[1])
                    elif line.startswith("Rss:") and size == JOB_MEMORY_KIB:
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self, timeout):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed after %d s" % timeout
        self.log.close()
        return rc


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keytransd", required=True)
    ap.add_argument("--faultp11", required=True)
    ap.add_argument("--vectors", default=os.path.join(TOP, "tests", "vectors"))
    ap.add_argument("--duration", type=float)
    ap.add_argument("--connections", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--faults", type=int, default=2,
                    help="fault cycles after warm-up, alternating the two kinds (default 2)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--valgrind", action="store_true",
                      help="run the daemon under valgrind memcheck (leaks, memory errors)")
    mode.add_argument("--lsan", action="store_true",
                      help="the daemon is built with ASan: its LeakSanitizer report fails the run")
    ap.add_argument("--suppressions", help="a valgrind suppression file")
    ap.add_argument("--json", action="store_true", help="the summary as one JSON object on stdout")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    a.keytransd, a.faultp11 = os.path.abspath(a.keytransd), os.path.abspath(a.faultp11)
    if a.duration is None:
        a.duration = 60 if (a.valgrind or a.lsan) else 180
    if a.connections is None:
        a.connections = 50 if a.valgrind else 1000
    a.duration = max(a.duration, 10)
    with open(a.keytransd, "rb") as f:
        sanitized = b"__asan_init" in f.read()
    if a.lsan and not sanitized:
        sys.exit("soak: --lsan needs a keytransd built with -Db_sanitize=address")
    if sanitized:
        os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if "detect_leaks=0" in os.environ["ASAN_OPTIONS"]:
            os.environ["ASAN_OPTIONS"] += ":detect_leaks=1"
    if a.valgrind and shutil.which("valgrind") is None:
        sys.exit("soak: valgrind is not installed")
    raise_nofile()
    vec = Vectors(a.vectors)
    root = tempfile.mkdtemp(prefix="kt-soak-")
    try:
        ok = soak(a, root, vec, sanitized)
    finally:
        if a.keep:
            print("soak: kept %s" % root, file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


def soak(a, root, vec, sanitized):
    d = Daemon(a, root, a.vectors)
    s = Soak(a, root, vec)
    cpu0 = os.times()
    failures = []
    try:
        asyncio.run(s.run(d))
        # Every client has closed: the daemon's descriptors must come back to the start.
        deadline = time.monotonic() + (60 if a.valgrind else 15)
        while d.alive() and d.fds() != d.start[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        d.end = d.sample() if d.alive() else (0, 0)
        alive = d.alive()
    finally:
        rc = d.stop(600 if a.valgrind else 60) if d.alive() else d.proc.returncode
    cpu = os.times()
    st = s.stats
    log = d.log_text()
    if not alive:
        failures.append("the daemon died during the run (status %s)" % d.proc.returncode)
    if rc != 0:
        failures.append("the daemon exited with %s after SIGTERM" % rc)
    if st.wrong:
        failures.append("%d wrong answer(s)" % st.wrong)
    if st.lost:
        failures.append("%d request(s) unanswered" % st.lost)
    if st.dropped:
        failures.append("%d connection(s) refused or closed by the daemon" % st.dropped)
    sent = sum(st.sent.values())
    if sent != st.answered() + st.abandoned + st.lost:
        failures.append("%d requests sent, but %d answered + %d abandoned + %d unanswered" % (
            sent, st.answered(), st.abandoned, st.lost))
    if st.unexpected:
        failures.append("unexpected errors: %s" % ", ".join(
            "%s %s ×%d" % (op, name, n) for (op, name), n in sorted(st.unexpected.items())))
    if d.end[0] != d.start[0]:
        failures.append("open fds: %d at start, %d at the end" % (d.start[0], d.end[0]))
    rss_growth = (d.end[1] - d.warm[1]) / d.warm[1] if d.warm and d.warm[1] else 0
    # What is checked leaves out OpenSSL's secure heap: a fixed arena of job_memory KiB whose
    # pages become resident on first touch and stay so, its resident size being the most
    # requests ever in flight at once (bounded by job_memory), which load bursts set, not leaks.
    sec_w, sec_e = d.secure_warm or 0, d.secure_end or 0
    base = (d.warm[1] - sec_w) if d.warm else 0
    rss_growth_ex = (d.end[1] - sec_e - base) / base if base > 0 else 0
    rss_checked = not (a.valgrind or sanitized)
    if rss_checked and abs(rss_growth_ex) > 0.10:
        failures.append("RSS %d KiB after warm-up, %d KiB at the end (%+.1f%%; %+.1f%% without "
                        "the secure heap)" % (d.warm[1], d.end[1], 100 * rss_growth,
                                              100 * rss_growth_ex))
    for marker in ("Sanitizer", "runtime error", ": restarting"):
        if marker in log:
            failures.append("daemon log: %r" % marker)
    for w in s.faults.windows:
        if w["recovered"] is None:
            failures.append("no private operation succeeded within 60 s of clearing %r"
                            % w["rule"])
    vg = ""
    if a.valgrind:
        with open(d.vg_log, errors="replace") as f:
            vg = f.read()
        summary = [l.split("== ", 1)[-1] for l in vg.splitlines()
                   if "definitely lost:" in l or "ERROR SUMMARY" in l or "indirectly lost:" in l
                   or "possibly lost:" in l or "still reachable:" in l]
    sent = sum(st.sent.values())
    out = {
        "duration_s": round(s.elapsed, 1),
        "connections": a.connections,
        "workers": a.workers,
        "mode": "valgrind" if a.valgrind else ("asan+lsan" if sanitized else "plain"),
        "requests_sent": sent,
        "requests_answered": st.answered(),
        "answers_per_s": round(st.answered() / s.elapsed),
        "abandoned_by_leaving_clients": st.abandoned,
        "connections_made": st.connects,
        "ok_by_op": dict(sorted(st.ok.items())),
        "refusals_of_bad_requests": dict(sorted(st.refused.items())),
        "expected_errors": dict(st.expected),
        "unexpected_errors": {"%s %s" % k: v for k, v in sorted(st.unexpected.items())},
        "wrong_answers": st.wrong,
        "unanswered": st.lost,
        "connections_dropped": st.dropped,
        "faults": [{
            "rule": w["rule"],
            "warm_up": w["priming"],
            "held_s": round(w["cleared"] - w["injected"], 2) if w["cleared"] else None,
            "down_seen_after_s": round(w["down_seen"] - w["injected"], 2)
            if w["down_seen"] else None,
            "recovery_first_success_s": round(w["recovered"] - w["cleared"], 2)
            if w["recovered"] else None,
            "recovery_info_up_s": round(w["up_seen"] - w["cleared"], 2)
            if w["up_seen"] else None,
        } for w in s.faults.windows],
        "daemon_audit_outcomes": dict(d.audit().most_common()),
        "daemon_log_out_of_service": log.count("out of service:"),
        "daemon_log_back_in_service": [int(l.rsplit("after ", 1)[1].split()[0])
                                       for l in log.splitlines() if "back in service after" in l],
        "fds": {"start": d.start[0], "warm": d.warm[0] if d.warm else None,
                "peak": d.peak[0] if d.peak else None, "end": d.end[0]},
        "rss_kib": {"start": d.start[1], "warm": d.warm[1] if d.warm else None,
                    "under_load_at_end": d.load[1] if d.load else None,
                    "peak": d.peak[1] if d.peak else None, "end": d.end[1],
                    "growth_after_warm_percent": round(100 * rss_growth, 1),
                    "secure_heap_warm": d.secure_warm, "secure_heap_end": d.secure_end,
                    "growth_without_secure_heap_percent": round(100 * rss_growth_ex, 1),
                    "checked": rss_checked},
        "timeline_s_fds_rss": d.timeline,
        "daemon_exit": rc,
        "driver_cpu_s": round(cpu.user - cpu0.user + cpu.system - cpu0.system, 1),
        "daemon_cpu_s": round(cpu.children_user - cpu0.children_user
                              + cpu.children_system - cpu0.children_system, 1),
        "problems": st.samples,
        "failures": failures,
        "passed": not failures,
    }
    if a.valgrind:
        out["valgrind"] = summary
    if a.json:
        print(json.dumps(out, indent=1))
    report(out, sys.stderr if a.json else sys.stdout)
    if failures and not a.quiet:
        print("daemon log (end):\n" + log[-3000:], file=sys.stderr)
        if a.valgrind:
            print("valgrind log (end):\n" + vg[-6000:], file=sys.stderr)
    return not failures


def report(o, f):
    p = lambda *x: print(*x, file=f)  # noqa: E731
    p("soak: %s, %d connections, %s s, %d HSM workers" % (
        o["mode"], o["connections"], o["duration_s"], o["workers"]))
    p("  requests sent %d, answered %d (%d/s); %d abandoned by clients that left; "
      "%d connections made" % (o["requests_sent"], o["requests_answered"], o["answers_per_s"],
                               o["abandoned_by_leaving_clients"], o["connections_made"]))
    p("  correct OK answers: %s" % ", ".join("%s %d" % kv for kv in o["ok_by_op"].items()))
    p("  correct refusals of bad requests: %s" % (", ".join(
        "%s %d" % kv for kv in o["refusals_of_bad_requests"].items()) or "none"))
    p("  expected errors: %s" % (", ".join("%s %d" % kv for kv in o["expected_errors"].items())
                                 or "none"))
    p("  unexpected errors: %s" % (", ".join("%s ×%d" % kv
                                             for kv in o["unexpected_errors"].items()) or "none"))
    p("  wrong answers: %d; unanswered: %d; connections refused or dropped by the daemon: %d" % (
        o["wrong_answers"], o["unanswered"], o["connections_dropped"]))
    for w in o["faults"]:
        p("  %sfault %r held %s s: HSM seen down after %s s; after clearing, first private "
          "success %s s, info up %s s" % ("warm-up " if w["warm_up"] else "", w["rule"], w["held_s"], w["down_seen_after_s"],
                                          w["recovery_first_success_s"], w["recovery_info_up_s"]))
    p("  daemon audit records: %s" % ", ".join("%s %d" % kv
                                              for kv in o["daemon_audit_outcomes"].items()))
    p("  daemon log: %d times out of service, back in service after %s ms" % (
        o["daemon_log_out_of_service"], o["daemon_log_back_in_service"]))
    fd, r = o["fds"], o["rss_kib"]
    p("  fds: start %s, warm %s, peak %s, end %s" % (fd["start"], fd["warm"], fd["peak"],
                                                       fd["end"]))
    p("  RSS KiB: start %s, warm %s, under load at the end %s, peak %s, end %s (%+.1f%% after "
      "warm-up%s)" % (r["start"], r["warm"], r["under_load_at_end"], r["peak"], r["end"],
                      r["growth_after_warm_percent"], "" if r["checked"] else ", not checked"))
    p("  of which OpenSSL's secure heap (locked job memory, its high-water mark): warm %s, "
      "end %s; the rest %+.1f%% after warm-up%s" % (
          r["secure_heap_warm"], r["secure_heap_end"], r["growth_without_secure_heap_percent"],
          " (checked: within 10%)" if r["checked"] else ""))
    p("  CPU: driver %s s, daemon %s s; daemon exit status %s" % (
        o["driver_cpu_s"], o["daemon_cpu_s"], o["daemon_exit"]))
    for line in o.get("valgrind", []):
        p("  valgrind: " + line)
    for x in o["problems"]:
        p("  problem: " + x)
    p("soak: %s" % ("passed" if o["passed"] else "FAILED: " + "; ".join(o["failures"])))


if __name__ == "__main__":
    main()
