"""Stand-ins for keytransd that misbehave on purpose, for testing what a client does with
answers the real daemon never gives: a Unix socket whose connections are served by a
handler, one thread per connection.

handler(req) answers one request (a Request): bytes to send (b"" sends nothing), or
None to close the connection. A handler with a .batch attribute instead gets every
request that arrived together (a list) and returns the bytes to send. A handler with a
.per_connection attribute is a factory: each connection gets handler() of its own. A
handler with a .deaf attribute never reads: the connection just stays open.
"""
import hashlib
import os
import select
import socket
import struct
import threading
import time


class Request:
    def __init__(self, raw):
        self.raw = raw
        self.version, self.op, self.status, self.id = struct.unpack_from(">BBHI", raw, 4)
        self.fields = {}
        off = 12
        while off + 4 <= len(raw):
            tag, n = struct.unpack_from(">HH", raw, off)
            self.fields.setdefault(tag, []).append(raw[off + 4:off + 4 + n])
            off += 4 + n

    def get(self, tag, default=None):
        return self.fields.get(tag, [default])[0]


def field(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">HH", tag, len(value)) + value


def u8(tag, v):
    return field(tag, struct.pack(">B", v))


def u32(tag, v):
    return field(tag, struct.pack(">I", v))


def u64(tag, v):
    return field(tag, struct.pack(">Q", v))


def reply(req, fields=b"", status=0, op=None, rid=None, version=1):
    """A response frame to req, with whatever header values a test wants to get wrong."""
    body = struct.pack(">BBHI", version, req.op if op is None else op, status,
                       req.id if rid is None else rid) + fields
    return struct.pack(">I", len(body)) + body


# Tags (docs/protocol.md).
NAME, BLOB, PADDING, ALG_ID, SESSION_KEY, PUBLIC_KEY, FORMAT, KEY_BITS = range(1, 9)
RANDOM, AES_KEY, STATUS_SEQ, COMMAND_SEQ, SIGNATURE, MESSAGE, VERSION, TOKEN_LABEL = range(9, 17)
KEY_COUNT, WORKER_COUNT, UPTIME, KEY_ENTRY, LABEL, ID, BITS, EXPONENT = range(17, 25)
FLAGS, NOTICE, MECHANISM, HSM_ENTRY, STATE, IN_FLIGHT, FAULTS, LAST_ERROR = range(25, 33)


def fake_key(data, n=16):
    return hashlib.sha256(data).digest()[:n]


def good_answer(req):
    """A well-formed answer to any request, computed from the request alone."""
    op = req.op
    if op == 1:
        return reply(req, field(VERSION, "fake") + field(TOKEN_LABEL, "fake-token") +
                     u32(KEY_COUNT, 1) + u32(WORKER_COUNT, 1) + u64(UPTIME, 1))
    if op == 2:
        entry = (field(NAME, "fake") + u32(BITS, 2048) + u64(EXPONENT, 65537) +
                 field(MECHANISM, "raw"))
        return reply(req, field(KEY_ENTRY, entry))
    if op == 3:
        fmt = req.get(FORMAT, b"\0")[0]
        data = {0: b"\x06\x02\0\0\0\xa4\0\0RSA1" + bytes(8) + b"\x01" * 256,
                1: b"-----BEGIN PUBLIC KEY-----\nfake\n-----END PUBLIC KEY-----\n",
                2: b"\x30\x03\x02\x01\x00"}[fmt]
        return reply(req, field(PUBLIC_KEY, data))
    if op == 4:
        return reply(req, u32(ALG_ID, 0x660e) + field(SESSION_KEY, fake_key(req.get(BLOB, b""))))
    if op == 5:
        alg = struct.unpack(">I", req.get(ALG_ID))[0]
        blob = struct.pack("<BBHII", 1, 2, 0, alg, 0xa400) + bytes(256)
        out = u32(ALG_ID, alg) + field(BLOB, blob)
        if req.get(SESSION_KEY) is None:
            out += field(SESSION_KEY, fake_key(blob, 16 if alg == 0x660e else 32))
        return reply(req, out)
    if op == 6:
        return reply(req, field(SIGNATURE, bytes(256)) + field(RANDOM, req.get(RANDOM)) +
                     field(AES_KEY, req.get(AES_KEY, bytes(16))) +
                     field(STATUS_SEQ, req.get(STATUS_SEQ, bytes(4))) +
                     field(COMMAND_SEQ, req.get(COMMAND_SEQ, bytes(4))))
    if op == 7:
        return reply(req, field(RANDOM, req.get(RANDOM, bytes(16))) + field(AES_KEY, bytes(16)) +
                     u32(STATUS_SEQ, 1) + u32(COMMAND_SEQ, 2))
    return reply(req, field(MESSAGE, "no such operation"), status=4)


class FakeDaemon:
    def __init__(self, path, handler, backlog=16, accept=True):
        self.path = path
        self.handler = handler
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(backlog)
        self.stopping = False
        self.requests = []      # every request received, for tests to look at
        self.thread = None
        if accept:
            self.thread = threading.Thread(target=self._accept, daemon=True)
            self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _frames(self, buf):
        out = []
        while len(buf) >= 4:
            n = struct.unpack_from(">I", buf, 0)[0]
            if len(buf) < 4 + n:
                break
            out.append(Request(bytes(buf[:4 + n])))
            del buf[:4 + n]
        return out

    def _serve(self, c):
        buf = bytearray()
        handler = self.handler() if getattr(self.handler, "per_connection", False) else self.handler
        batch = getattr(handler, "batch", False)
        pending = []
        if getattr(handler, "deaf", False):
            while not self.stopping:
                time.sleep(0.05)
            c.close()
            return
        try:
            while not self.stopping:
                # A batch handler answers what came together: 50 ms of quiet ends a group.
                ready = select.select([c], [], [], 0.05 if pending else 0.5)[0]
                if not ready:
                    if pending:
                        out, pending = handler(pending), []
                        if out is None:
                            return
                        c.sendall(out)
                    continue
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                for req in self._frames(buf):
                    self.requests.append(req)
                    if batch:
                        pending.append(req)
                        continue
                    out = handler(req)
                    if out is None:
                        return
                    c.sendall(out)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.thread is not None:
            self.thread.join(5)
        try:
            os.unlink(self.path)
        except OSError:
            pass


def silent(req):
    """Reads requests and never answers."""
    return b""


def closing(req):
    """Reads a request, then closes the connection."""
    return None


def deaf(req):
    """Accepts connections and never reads from them."""
    raise AssertionError("a deaf daemon gets no requests")


deaf.deaf = True


def reverse_order(reqs):
    """Answers each group of requests that arrived together, the last one first."""
    return b"".join(good_answer(r) for r in reversed(reqs))


reverse_order.batch = True


def late_first():
    """Answers the first request of each connection only when the next one arrives (just
    before answering that one): a client that gave up waiting gets a late answer."""
    def factory():
        held = []

        def handler(req):
            if not held:
                held.append(req)
                return b""
            late = b"" if held[0] is None else good_answer(held[0])
            held[0] = None
            return late + good_answer(req)
        return handler
    factory.per_connection = True
    return factory


def full_backlog(path):
    """A listening socket that never accepts, its backlog filled so that a connect()
    blocks (returns the daemon and the sockets holding the backlog)."""
    d = FakeDaemon(path, silent, backlog=0, accept=False)
    held = []
    for _ in range(64):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            return d, held
        held.append(s)
    raise AssertionError("the backlog never filled")


# --- scenarios: name -> handler; test_conformance.py and test_keytrans.py use them ---

def info_fields(skip=(), extra=b""):
    parts = {"VERSION": field(VERSION, "fake"), "TOKEN_LABEL": field(TOKEN_LABEL, "tok"),
             "KEY_COUNT": u32(KEY_COUNT, 3), "WORKER_COUNT": u32(WORKER_COUNT, 2),
             "UPTIME": u64(UPTIME, 42)}
    return b"".join(v for k, v in parts.items() if k not in skip) + extra


def frame_with_length(req, n):
    return struct.pack(">I", n) + struct.pack(">BBHI", 1, req.op, 0, req.id) + bytes(max(0, n - 8))


def key_entry(*fields):
    return field(KEY_ENTRY, b"".join(fields))


def std_entry(name="k1", extra=b""):
    return key_entry(field(NAME, name), u32(BITS, 2048), u64(EXPONENT, 65537),
                     field(MECHANISM, "raw"), extra)


def wrap_blob(alg, n=256, btype=1):
    return struct.pack("<BBHII", btype, 2, 0, alg, 0xa400) + bytes(n)


def req_alg(req):
    return struct.unpack(">I", req.get(ALG_ID))[0]


def wrap_answer(req, alg=None, blob_alg=None, btype=1, key=bytes(16)):
    """A wrap answer: ALG_ID alg (default: the request's), a SIMPLEBLOB for blob_alg, key."""
    alg = req_alg(req) if alg is None else alg
    out = u32(ALG_ID, alg) + field(BLOB, wrap_blob(alg if blob_alg is None else blob_alg,
                                                  btype=btype))
    return reply(req, out + (field(SESSION_KEY, key) if key is not None else b""))


def hsm_entry(name="hsm0", state="up", extra=b"", skip=()):
    parts = {"NAME": field(NAME, name), "TOKEN_LABEL": field(TOKEN_LABEL, "tok-" + name),
             "STATE": field(STATE, state), "IN_FLIGHT": u32(IN_FLIGHT, 3),
             "FAULTS": u64(FAULTS, 1)}
    return field(HSM_ENTRY, b"".join(v for k, v in parts.items() if k not in skip) + extra)


def copp_answer(req, rnd=None, aes=None, sseq=None, sig=256, seqs=True):
    out = field(RANDOM, rnd if rnd is not None else req.get(RANDOM, bytes(16)))
    out += field(AES_KEY, aes if aes is not None else req.get(AES_KEY, bytes(16)))
    if seqs:
        out += u32(STATUS_SEQ, sseq if sseq is not None else 0) + u32(COMMAND_SEQ, 2)
    if sig is not None and req.op == 6:
        out += field(SIGNATURE, bytes(sig))
    return reply(req, out)


def twice(req):
    return good_answer(req) * 2


def mixed_bad(req):
    blob = req.get(BLOB)
    if blob == b"\x02":
        return reply(req, u32(ALG_ID, 0x1234) + field(SESSION_KEY, bytes(16)))
    if blob == b"\x03":
        return reply(req, field(MESSAGE, "the blob does not decrypt under key a"), status=14)
    return good_answer(req)


def big_pubkey(req):
    # The PUBLICKEYBLOB of a 16384-bit key (the largest the daemon serves): 20 + 2048 bytes.
    blob = struct.pack("<BBHI4sII", 6, 2, 0, 0xa400, b"RSA1", 16384, 65537) + b"\xff" * 2048
    return reply(req, field(PUBLIC_KEY, blob))


SCENARIOS = {
    "good": good_answer,
    "silent": silent,
    "deaf": deaf,
    "closing": closing,
    "late": late_first(),
    "reverse": reverse_order,
    "twice": twice,
    "mixed_bad": mixed_bad,
    "version2": lambda r: reply(r, info_fields(), version=2),
    "wrong_id": lambda r: reply(r, info_fields(), rid=r.id + 1000),
    "wrong_op": lambda r: reply(r, info_fields(), op=2),
    "too_large": lambda r: frame_with_length(r, 70000),
    "too_small": lambda r: frame_with_length(r, 3),
    "unknown_tag": lambda r: reply(r, info_fields(extra=field(99, b"x"))),
    "truncated_field": lambda r: reply(r, info_fields() + struct.pack(">HH", NOTICE, 10) + b"abc"),
    "truncated_unknown": lambda r: reply(r, info_fields() + struct.pack(">HH", 77, 10) + b"abc"),
    "truncated_header": lambda r: reply(r, info_fields() + b"\x00\x1a"),
    "duplicate_field": lambda r: reply(r, info_fields(extra=field(VERSION, "again"))),
    "nul_string": lambda r: reply(r, info_fields(skip=["VERSION"], extra=field(VERSION, b"a\0b"))),
    "bad_u32": lambda r: reply(r, info_fields(skip=["KEY_COUNT"], extra=field(KEY_COUNT, b"\0\1"))),
    "long_str": lambda r: reply(r, info_fields(skip=["VERSION"], extra=field(VERSION, "v" * 65))),
    "no_version": lambda r: reply(r, info_fields(skip=["VERSION"])),
    "no_uptime": lambda r: reply(r, info_fields(skip=["UPTIME"])),
    "notice": lambda r: reply(r, info_fields(
        extra=field(NOTICE, 'key "k" has no "implicit" \\ rejection'))),
    "extra_field": lambda r: reply(r, info_fields(extra=field(NAME, "ignored") + u32(FLAGS, 9))),
    "keys_no_bits": lambda r: reply(r, std_entry() + key_entry(field(NAME, "k2"),
                                                               u64(EXPONENT, 3))),
    "keys_no_name": lambda r: reply(r, key_entry(u32(BITS, 1024), u64(EXPONENT, 3))),
    "keys_bad_entry": lambda r: reply(r, std_entry() + key_entry(field(NAME, "k2"), u32(BITS, 1024),
                                                                 u64(EXPONENT, 3),
                                                                 b"\x00\x63\x00\x00")),
    "keys_dup_in_entry": lambda r: reply(r, std_entry(extra=u32(BITS, 1))),
    "keys_none": lambda r: reply(r, b""),
    "keys_full": lambda r: reply(r, std_entry("k1", field(LABEL, "label one") +
                                              field(ID, b"\x01\xff")) +
                                 key_entry(field(NAME, "k2"), u32(BITS, 4096), u64(EXPONENT, 3)) +
                                 std_entry("k3", field(ID, b""))),
    "info_hsms": lambda r: reply(r, info_fields() + hsm_entry("a") + hsm_entry(
        "b", "down", field(LAST_ERROR, "C_Login: CKR_PIN_LOCKED"))),
    "info_hsms_17": lambda r: reply(r, info_fields() + b"".join(hsm_entry("h%d" % i)
                                                                for i in range(17))),
    "info_hsm_no_state": lambda r: reply(r, info_fields() + hsm_entry(skip=["STATE"])),
    "info_hsm_bad": lambda r: reply(r, info_fields() + hsm_entry(extra=field(99, b""))),
    "pubkey_pem_for_blob": lambda r: reply(r, field(PUBLIC_KEY, b"-----BEGIN PUBLIC KEY-----\n")),
    "pubkey_short_pem": lambda r: reply(r, field(PUBLIC_KEY, b"-----BEGIN ")),
    "pubkey_missing": lambda r: reply(r, b""),
    "pubkey_16384": big_pubkey,
    "unwrap_unknown_alg": lambda r: reply(r, u32(ALG_ID, 0x1234) + field(SESSION_KEY, bytes(16))),
    "unwrap_key_15": lambda r: reply(r, u32(ALG_ID, 0x660e) + field(SESSION_KEY, bytes(15))),
    "unwrap_no_key": lambda r: reply(r, u32(ALG_ID, 0x660e)),
    "unwrap_no_alg": lambda r: reply(r, field(SESSION_KEY, bytes(16))),
    "wrap_alg_differs": lambda r: wrap_answer(r, alg=0x660f, key=bytes(24)),
    "wrap_bad_blob": lambda r: wrap_answer(r, btype=6),
    "wrap_blob_alg": lambda r: wrap_answer(r, blob_alg=0x6610),
    "wrap_key_echoed": lambda r: wrap_answer(r, key=r.get(SESSION_KEY)),
    "wrap_gen_16": lambda r: wrap_answer(r),
    "wrap_gen_no_key": lambda r: wrap_answer(r, key=None),
    "copp_sign_random": lambda r: copp_answer(r, rnd=b"\x01" * 16),
    "copp_sign_aes": lambda r: copp_answer(r, aes=b"\x02" * 16),
    "copp_sign_seq": lambda r: copp_answer(r, sseq=9),
    "copp_sign_no_sig": lambda r: copp_answer(r, sig=None),
    "copp_sign_short_sig": lambda r: copp_answer(r, sig=255),
    "copp_open_random": lambda r: copp_answer(r, rnd=b"\x03" * 16),
    "copp_open_short_aes": lambda r: copp_answer(r, aes=bytes(15)),
    "copp_open_no_seq": lambda r: copp_answer(r, seqs=False),
    "hsm_error": lambda r: reply(r, field(MESSAGE, "C_Decrypt: CKR_DEVICE_ERROR"), status=19),
    "busy_no_message": lambda r: reply(r, b"", status=20),
    "internal_empty_message": lambda r: reply(r, field(MESSAGE, ""), status=21),
    "shutting_down": lambda r: reply(r, field(MESSAGE, "keytransd is stopping"), status=22),
    "timeout_status": lambda r: reply(r, field(MESSAGE, "no worker within 30 s"), status=24),
    "hsm_unavailable": lambda r: reply(r, field(MESSAGE, "token removed"), status=25),
    "status_99": lambda r: reply(r, field(MESSAGE, "a status from the future"), status=99),
    "error_bad_fields": lambda r: reply(r, field(MESSAGE, "x") + b"\x00\x0e\x00\x30", status=14),
    "error_wrong_op": lambda r: reply(r, field(MESSAGE, "wrong"), status=5, op=1),
    "utf8_message": lambda r: reply(r, field(MESSAGE, "refus\u00e9 \u2014 non"), status=23),
    "invalid_utf8_message": lambda r: reply(r, field(MESSAGE, b"bad \xff\xfe byte"), status=23),
    "error_extra_field": lambda r: reply(r, field(MESSAGE, "field X") + field(NAME, "n"), status=5),
}
