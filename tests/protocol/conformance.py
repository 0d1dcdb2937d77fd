#!/usr/bin/env python3
"""Protocol conformance suite for the keytrans protocol, version 1.

Speaks raw bytes to a server on a Unix socket and checks it against the
document that specifies the protocol (docs/protocol.md, and docs/formats.md
for the blob formats). The frame header, field types, field tags, FLAGS bits,
operation codes and status codes are read from the document's tables, and the
cases are built from them; every answer received goes through one validator
derived from the same tables.

Python 3.11 standard library only. The `cryptography` package, when it is
installed, is used as a second reader of keys (private key PEMs in more
formats, the PEM/DER public keys of `pubkey`); without it the suite's own
DER reader does the work and a note says so.

See README.md next to this file for what the server under test must provide.
Output: one line per case, `ok NAME`, `FAIL NAME: why` or `skip NAME: why`,
then `N passed, M failed`; the exit status is 0 only if nothing failed.
"""
import argparse
import base64
import fcntl
import hashlib
import hmac
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import termios
import time
import traceback

try:
    from cryptography.hazmat.primitives import serialization as _serialization
    HAVE_CRYPTOGRAPHY = True
except ImportError:          # degrade: the suite's own DER reader only
    _serialization = None
    HAVE_CRYPTOGRAPHY = False

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------

class Violation(AssertionError):
    """An answer that breaks the document's rules, or an expectation not met."""


class Skip(Exception):
    """The case cannot run with what the tester provided (or the server refused it)."""


def require(cond, why):
    if not cond:
        raise Violation(why)


# ---------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------

def _clean(cell):
    return cell.replace("`", "").replace("**", "").strip()


def md_tables(text):
    """Every pipe table of a markdown text: (header cells, rows of cells), cells cleaned."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.startswith("|") and re.fullmatch(r"\|[\s:|-]+\|", nxt or "x"):
            header = [_clean(c) for c in line.strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = lines[i].strip().strip("|").split("|")
                # a last column may itself hold a '|': glue the surplus back on
                cells = cells[:len(header) - 1] + ["|".join(cells[len(header) - 1:])]
                rows.append([_clean(c) for c in cells])
                i += 1
            out.append((header, rows))
            continue
        i += 1
    return out


def find_table(tables, header, where):
    for h, rows in tables:
        if [c.lower() for c in h] == header:
            return [dict(zip(header, r)) for r in rows]
    raise SystemExit("conformance: %s has no table with the columns %s" % (where, header))


class Tag:
    def __init__(self, tag, name, type_, max_, direction, spec):
        self.tag, self.name, self.type, self.dir = tag, name, type_, direction
        t = spec.types[type_]
        self.size = t["size"]               # fixed size, or None
        self.max = None if self.size is not None else int(max_)
        self.utf8 = t["utf8"]
        self.group = t["group"]

    @property
    def in_request(self):
        return self.dir in ("request", "both")

    @property
    def in_answer(self):
        return self.dir in ("answer", "both")


class Spec:
    """What the suite reads from docs/protocol.md and docs/formats.md."""

    def __init__(self, protocol_path, formats_path):
        with open(protocol_path, encoding="utf-8") as f:
            text = f.read()
        self.text = text
        tables = md_tables(text)
        where = protocol_path
        # frame header: offset, size, field
        hdr = find_table(tables, ["offset", "size", "field", "meaning"], where)
        self.header = [(int(r["offset"]), int(r["size"]), r["field"], r["meaning"]) for r in hdr
                       if r["size"].isdigit()]          # not the "fields" row (size …)
        names = [h[2] for h in self.header]
        for need in ("length", "version", "op", "status", "id"):
            if need not in names:
                raise SystemExit("conformance: the frame header table lacks %r" % need)
        self.hdr_len = max(o + s for o, s, _, _ in self.header)
        self.version = int(re.search(r"\d+", dict((h[2], h[3]) for h in self.header)["version"]).group())
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}
        self.hdr_fmt = ">" + "".join(fmt[s] for _, s, _, _ in sorted(self.header))
        self.hdr_names = [n for _, _, n, _ in sorted(self.header)]
        # the field header
        fh = find_table(tables, ["size", "part"], where)
        parts = [(r["part"], r["size"]) for r in fh]
        self.fld_fmt = ">" + "".join(fmt[int(s)] for p, s in parts if s.isdigit())
        self.fld_hdr_len = struct.calcsize(self.fld_fmt)
        # field types
        self.types = {}
        for r in find_table(tables, ["type", "value"], where):
            m = re.match(r"exactly (\d+) bytes?", r["value"])
            self.types[r["type"]] = {"size": int(m.group(1)) if m else None,
                                     "utf8": "UTF-8" in r["value"],
                                     "group": "run of fields" in r["value"]}
        # field tags
        self.tags = {}
        for r in find_table(tables, ["tag", "name", "type", "max", "in", "meaning"], where):
            t = Tag(int(r["tag"]), r["name"], r["type"], r["max"], r["in"], self)
            self.tags[t.tag] = t
        self.T = {t.name: t for t in self.tags.values()}
        # statuses
        self.status = {}
        self.status_rows = {}
        for r in find_table(tables, ["code", "name", "meaning", "connection"], where):
            self.status[r["name"]] = int(r["code"])
            self.status_rows[int(r["code"])] = r
        self.status_name = {v: k for k, v in self.status.items()}
        # answers sent without a request carry op 0 and id 0
        self.unsolicited = {c for c, r in self.status_rows.items()
                            if re.search(r"op and id 0|op 0, id 0", r["meaning"])}
        self.closing = {c for c, r in self.status_rows.items()
                        if r["connection"].startswith("closed after the answer")}
        # operations: "### N `name`"
        self.ops = {m.group(2): int(m.group(1))
                    for m in re.finditer(r"^### (\d+) `([a-z-]+)`", text, re.M)}
        if not self.ops:
            raise SystemExit("conformance: no operations (### N `name`) in %s" % where)
        # FLAGS bits
        m = re.search(r"`FLAGS` bits:(.*?)\n\n", text, re.S)
        if not m:
            raise SystemExit("conformance: no \"`FLAGS` bits:\" paragraph in %s" % where)
        self.flag_bits = {nm: int(b) for b, nm in re.findall(r"bit (\d+) `(\w+)`", m.group(1))}
        self.flags_defined = sum(1 << b for b in self.flag_bits.values())
        # frame limits
        m = re.search(r"`length` is (\d+) to (\d+)", text)
        self.len_min, self.len_max = int(m.group(1)), int(m.group(2))
        m = re.search(r"at most \*\*(\d+) bytes\*\*", text)
        self.frame_max = int(m.group(1))
        # the repeating groups of answers
        m = re.search(r"In answers only the groups (.*?) repeat", text, re.S)
        self.repeating = set(re.findall(r"`(\w+)`", m.group(1))) if m else \
            {t.name for t in self.tags.values() if t.group}
        # the unwrap section's numbered list of blob checks
        sec = re.search(r"^### \d+ `unwrap`(.*?)^### ", text, re.S | re.M)
        self.blob_checks = re.findall(r"^\s*\d+\. `(\w+)`", sec.group(1), re.M) if sec else []
        # formats.md: the session key algorithms and their lengths
        self.algs = {}
        with open(formats_path, encoding="utf-8") as f:
            ftext = f.read()
        for r in find_table(md_tables(ftext), ["alg_id", "name", "key bytes"], formats_path):
            m = re.fullmatch(r"(\d+)(?: to (\d+))?", r["key bytes"])
            lo = int(m.group(1))
            self.algs[int(r["alg_id"], 16)] = (r["name"], lo, int(m.group(2) or lo))
        self.ir_label = None
        m = re.search(r'SHA-256\("([^"]+)" ‖ n ‖ u32\(0\)\)', ftext)
        if m:
            self.ir_label = m.group(1).encode()

    # -- building requests --

    def op(self, name):
        return self.ops[name] if isinstance(name, str) else name

    def frame(self, op, fields=b"", rid=0, version=None, status=0, length=None):
        vals = {"length": self.hdr_len - 4 + len(fields) if length is None else length,
                "version": self.version if version is None else version,
                "op": self.op(op), "status": status, "id": rid}
        return struct.pack(self.hdr_fmt, *[vals[n] for n in self.hdr_names]) + fields

    def raw_field(self, tag, value):
        return struct.pack(self.fld_fmt, tag, len(value)) + value

    def field(self, name, value):
        t = self.T[name]
        if isinstance(value, int):
            value = value.to_bytes(t.size, "big")
        elif isinstance(value, str):
            value = value.encode("utf-8")
        return self.raw_field(t.tag, value)

    def fields(self, *pairs):
        return b"".join(self.field(n, v) for n, v in pairs if v is not None)

    # -- reading answers --

    def split_fields(self, body):
        """[(tag, value)], or raises Violation when the run of fields is malformed."""
        out, off = [], 0
        while off < len(body):
            if len(body) - off < self.fld_hdr_len:
                raise Violation("a field header is cut off at byte %d" % off)
            tag, n = struct.unpack_from(self.fld_fmt, body, off)
            off += self.fld_hdr_len
            if off + n > len(body):
                raise Violation("field %s (%d bytes) overruns its frame or group" % (
                    self.tag_label(tag), n))
            out.append((tag, bytes(body[off:off + n])))
            off += n
        return out

    def tag_label(self, tag):
        return self.tags[tag].name if tag in self.tags else "tag %d" % tag


# ---------------------------------------------------------------------------
# The one validator every answer goes through
# ---------------------------------------------------------------------------

class Answer:
    def __init__(self, spec, raw):
        self.spec = spec
        self.raw = raw                   # the whole frame, length field included
        vals = dict(zip(spec.hdr_names, struct.unpack_from(spec.hdr_fmt, raw, 0)))
        self.length, self.version, self.op = vals["length"], vals["version"], vals["op"]
        self.status, self.id = vals["status"], vals["id"]
        self.fields = []
        self.problems = []

    @property
    def status_name(self):
        return self.spec.status_name.get(self.status, str(self.status))

    def all(self, name):
        tag = self.spec.T[name].tag
        return [v for t, v in self.fields if t == tag]

    def get(self, name):
        v = self.all(name)
        return v[0] if v else None

    def num(self, name):
        v = self.get(name)
        return None if v is None else int.from_bytes(v, "big")

    def text(self, name):
        v = self.get(name)
        return None if v is None else v.decode("utf-8", "replace")

    @property
    def message(self):
        return self.text("MESSAGE") or ""

    def __str__(self):
        s = "op %d id %d %s" % (self.op, self.id, self.status_name)
        if self.get("MESSAGE") is not None:
            s += " %r" % self.message
        return s


def validate_fields(spec, body, where, problems):
    try:
        fields = spec.split_fields(body)
    except Violation as e:
        problems.append("%s%s" % (where + ": " if where else "", e))
        return []
    seen = set()
    for tag, v in fields:
        t = spec.tags.get(tag)
        if t is None:
            continue                     # a client skips tags it does not know
        label = "%s%s" % (where + " " if where else "", t.name)
        if not t.in_answer:
            problems.append("%s: a request-only field in an answer" % label)
        if tag in seen and t.name not in spec.repeating:
            problems.append("%s: repeated (only %s repeat)" % (label, "/".join(sorted(spec.repeating))))
        seen.add(tag)
        if t.size is not None and len(v) != t.size:
            problems.append("%s: %d bytes, its type %s has %d" % (label, len(v), t.type, t.size))
        if t.size is None and len(v) > t.max:
            problems.append("%s: %d bytes, above its max %d" % (label, len(v), t.max))
        if t.utf8:
            if b"\0" in v:
                problems.append("%s: holds a NUL byte" % label)
            try:
                v.decode("utf-8", "strict")
            except UnicodeDecodeError as e:
                problems.append("%s: not valid UTF-8 (%s): %r" % (label, e.reason, v[:80]))
        if t.group:
            validate_fields(spec, v, label, problems)
    return fields


def validate(spec, raw):
    """Checks one answer frame against the tables; returns the Answer with .problems set."""
    a = Answer(spec, raw)
    p = a.problems
    if a.version != spec.version:
        p.append("version %d, every answer carries %d" % (a.version, spec.version))
    if a.status not in spec.status_name:
        p.append("status %d is not in the status table" % a.status)
    a.fields = validate_fields(spec, raw[spec.hdr_len:], "", p)
    if a.status != spec.status.get("OK", 0) and a.status in spec.status_name:
        names = [spec.tag_label(t) for t, _ in a.fields]
        if names != ["MESSAGE"]:
            p.append("an error answer carries %s; the document says MESSAGE and nothing else" % (
                names or "no field"))
    return a


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

class Conn:
    """One client connection: frames out, validated answers in, op/id echo enforced."""

    def __init__(self, suite, connect=True):
        self.suite, self.spec = suite, suite.spec
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(suite.args.timeout)
        self.buf = bytearray()
        self.pending = {}                # id -> [op, ...] (ids may be reused on purpose)
        self.eof = False
        self.reset = False
        self.next_id = random.randrange(1 << 20, 1 << 31)
        suite.open_conns.append(self)
        if connect:
            self.s.connect(suite.args.socket)

    def new_id(self):
        self.next_id = (self.next_id + 1) & 0xffffffff
        return self.next_id

    def expect(self, op, rid):
        self.pending.setdefault(rid, []).append(self.spec.op(op))

    def send(self, op, fields=b"", rid=None, version=None, status=0):
        rid = self.new_id() if rid is None else rid
        self.expect(op, rid)
        self.s.sendall(self.spec.frame(op, fields, rid, version, status))
        return rid

    def send_raw(self, data):
        self.s.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            pl = select.poll()
            pl.register(self.s.fileno(), select.POLLIN)
            if not pl.poll(left * 1000):
                raise TimeoutError
            try:
                chunk = self.s.recv(262144, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk, self.reset = b"", True
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_answer(self, timeout=None, unsolicited_ok=False):
        """The next answer, validated; None at end of file. Raises TimeoutError, Violation."""
        timeout = self.suite.args.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._fill(4, deadline):
            if self.buf:
                raise Violation("the connection closed within an answer (%d bytes)" % len(self.buf))
            self.eof = True
            return None
        length = struct.unpack_from(">I", self.buf, 0)[0]
        if not self.spec.len_min <= length <= self.spec.len_max:
            raise Violation("an answer with length %d (outside %d..%d)" % (
                length, self.spec.len_min, self.spec.len_max))
        if not self._fill(4 + length, deadline):
            raise Violation("the connection closed within an answer (%d of %d bytes)" % (
                len(self.buf), 4 + length))
        raw = bytes(self.buf[:4 + length])
        del self.buf[:4 + length]
        a = validate(self.spec, raw)
        ops = self.pending.get(a.id)
        if ops and a.op in ops:
            ops.remove(a.op)
            if not ops:
                del self.pending[a.id]
        elif a.op == 0 and a.id == 0 and a.status in self.spec.unsolicited:
            pass                         # an answer sent without a request
        elif ops:
            a.problems.append("op %d does not echo the op of request id %d (%s)" % (
                a.op, a.id, "/".join(map(str, ops))))
        else:
            a.problems.append("id %d answers no outstanding request (never sent, or answered "
                              "twice)" % a.id)
        self.suite.answers_seen += 1
        if a.problems:
            self.suite.violations += 1
            raise Violation("answer %s: %s" % (a, "; ".join(a.problems)))
        return a

    def call(self, op, fields=b"", **kw):
        rid = self.send(op, fields, **kw)
        a = self.read_answer()
        require(a is not None, "the connection closed instead of answering %s" % op)
        require(a.id == rid, "answer to id %d while only id %d was outstanding" % (a.id, rid))
        return a

    def expect_eof(self, timeout=5.0):
        try:
            a = self.read_answer(timeout)
        except TimeoutError:
            raise Violation("the connection was not closed within %.1f s" % timeout) from None
        require(a is None, "expected the connection closed, got another answer: %s" % a)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def expect_status(a, status, what=""):
    names = [status] if isinstance(status, str) else list(status)
    codes = [a.spec.status[n] for n in names]
    require(a.status in codes, "%sgot %s, expected %s" % (what + ": " if what else "", a,
                                                          " or ".join(names)))
    return a


def names_field(message, name):
    """The message names the field: its name as the table spells it, as a word."""
    return re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), message) is not None


def names_tag_number(message, tag):
    return re.search(r"(?<!\d)%d(?!\d)" % tag, message) is not None


# ---------------------------------------------------------------------------
# RSA and the blob formats, standard library only
# ---------------------------------------------------------------------------

def i2osp(x, k):
    return x.to_bytes(k, "big")


def os2ip(b):
    return int.from_bytes(b, "big")


def nonzero_bytes(n):
    out = bytearray()
    while len(out) < n:
        out += bytes(b for b in os.urandom(n) if b)
    return bytes(out[:n])


def pkcs1_pad(msg, k):
    require(len(msg) <= k - 11, "message too long for PKCS#1 v1.5")
    return b"\x00\x02" + nonzero_bytes(k - 3 - len(msg)) + b"\x00" + msg


def pkcs1_unpad(em):
    """The message of a PKCS#1 v1.5 encryption block, or None."""
    if em[:2] != b"\x00\x02":
        return None
    sep = em.find(b"\x00", 2)
    if sep < 10:
        return None
    return em[sep + 1:]


def _mgf1(seed, n):
    out, c = b"", 0
    while len(out) < n:
        out += hashlib.sha1(seed + struct.pack(">I", c)).digest()
        c += 1
    return out[:n]


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def oaep_pad(msg, k):
    hlen = 20
    db = hashlib.sha1(b"").digest() + b"\0" * (k - len(msg) - 2 * hlen - 2) + b"\x01" + msg
    seed = os.urandom(hlen)
    mdb = _xor(db, _mgf1(seed, k - hlen - 1))
    return b"\x00" + _xor(seed, _mgf1(mdb, hlen)) + mdb


CALG_RSA_KEYX = 0xa400


def simpleblob(alg, c_be, btype=1, bversion=2, reserved=0, wrap_alg=CALG_RSA_KEYX):
    return struct.pack("<BBHII", btype, bversion, reserved, alg, wrap_alg) + c_be[::-1]


def der_tlv(b, off):
    tag = b[off]
    ln = b[off + 1]
    off += 2
    if ln & 0x80:
        nb = ln & 0x7f
        ln = int.from_bytes(b[off:off + nb], "big")
        off += nb
    if off + ln > len(b):
        raise ValueError("DER value overruns")
    return tag, b[off:off + ln], off + ln


def der_items(b):
    out, off = [], 0
    while off < len(b):
        tag, v, off = der_tlv(b, off)
        out.append((tag, v))
    return out


RSA_OID = bytes.fromhex("2a864886f70d010101")


def der_rsa_public(der):
    """(n, e) of a DER SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey)."""
    tag, seq, end = der_tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not one DER SEQUENCE")
    items = der_items(seq)
    if items[0][0] == 0x30:
        alg = der_items(items[0][1])
        if alg[0] != (0x06, RSA_OID):
            raise ValueError("not rsaEncryption")
        if items[1][0] != 0x03 or items[1][1][:1] != b"\0":
            raise ValueError("no BIT STRING")
        _, inner, _ = der_tlv(items[1][1], 1)
        items = der_items(inner)
    return os2ip(items[0][1]), os2ip(items[1][1])


def pem_blocks(data):
    text = data.decode("ascii", "replace")
    return [(m.group(1), base64.b64decode("".join(m.group(2).split())))
            for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S)]


def load_private_key(path):
    """(n, e, d) of an unencrypted RSA private key file (PEM or DER, PKCS#1 or PKCS#8)."""
    with open(path, "rb") as f:
        data = f.read()
    if HAVE_CRYPTOGRAPHY:
        try:
            key = (_serialization.load_pem_private_key(data, None) if b"-----BEGIN" in data
                   else _serialization.load_der_private_key(data, None))
            nums = key.private_numbers()
            return nums.public_numbers.n, nums.public_numbers.e, nums.d
        except Exception:        # noqa: BLE001 - fall back to the suite's reader
            pass
    der = pem_blocks(data)[0][1] if b"-----BEGIN" in data else data
    _, seq, _ = der_tlv(der, 0)
    items = der_items(seq)
    if len(items) >= 3 and items[1][0] == 0x30:       # PKCS#8
        _, seq, _ = der_tlv(items[2][1], 0)
        items = der_items(seq)
    n, e, d = (os2ip(items[i][1]) for i in (1, 2, 3))
    return n, e, d


# ---------------------------------------------------------------------------
# Implicit rejection, as formats.md says
# ---------------------------------------------------------------------------

class ImplicitRejection:
    def __init__(self, label, n, d, k):
        nb = i2osp(n, k)
        stream, i = b"", 0
        while len(stream) < k:
            stream += hashlib.sha256(label + nb + struct.pack(">I", i)).digest()
            i += 1
        m = bytearray(stream[:k])
        m[0] = 0
        self.secret = hashlib.sha256(i2osp(pow(os2ip(m), d, n), k)).digest()

    @staticmethod
    def prf(kdk, label, n):
        out, i = b"", 0
        while len(out) < n:
            out += hmac.new(kdk, struct.pack(">H", i) + label + struct.pack(">H", 8 * n),
                            hashlib.sha256).digest()
            i += 1
        return out[:n]

    def synthetic(self, c_be, lo, hi):
        kdk = hmac.new(self.secret, c_be, hashlib.sha256).digest()
        msg = self.prf(kdk, b"message", hi)
        r = struct.unpack(">I", self.prf(kdk, b"length", 4))[0]
        return msg[:lo + (r * (hi - lo + 1) >> 32)]


def copp_fields(m40):
    """random, aes, status_seq, command_seq of a 40-byte COPP message M (S = M reversed)."""
    s = m40[::-1]
    return s[:16], s[16:32], struct.unpack("<I", s[32:36])[0], struct.unpack("<I", s[36:40])[0]


def copp_message(rnd, aes, sseq, cseq):
    return (rnd + aes + struct.pack("<II", sseq, cseq))[::-1]


# ---------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------

class Suite:
    def __init__(self, args, spec):
        self.args, self.spec = args, spec
        self.passed = self.failed = self.skipped = 0
        self.open_conns = []
        self.answers_seen = 0
        self.violations = 0
        self.key = None                 # (n, e, k) of the key under test
        self.priv = None                # (n, e, d) when given
        self.ir = None
        self.only = re.compile(args.only) if args.only else None

    # -- running --

    def check(self, name, fn, *a, always=False):
        if self.only and not always and not self.only.search(name):
            return None
        start = time.monotonic()
        result = None
        try:
            result = fn(*a)
            self.passed += 1
            line = "ok %s" % name
            if self.args.verbose:
                line += "  (%.2fs)" % (time.monotonic() - start)
            print(line, flush=True)
        except Skip as e:
            self.skipped += 1
            print("skip %s: %s" % (name, e), flush=True)
        except Exception as e:          # noqa: BLE001 - reported as the case's failure
            self.failed += 1
            why = str(e) or type(e).__name__
            if isinstance(e, TimeoutError):
                why = "no answer within the time limit" + (": " + str(e) if str(e) else "")
            elif isinstance(e, OSError) and not isinstance(e, Violation):
                why = "%s: %s" % (type(e).__name__, e)
            print("FAIL %s: %s" % (name, " ".join(why.split())[:600]), flush=True)
            if self.args.verbose:
                traceback.print_exc()
        finally:
            for c in self.open_conns:
                c.close()
            self.open_conns = []
        return result

    def conn(self):
        return Conn(self)

    def need_key(self):
        if self.key is None:
            raise Violation("the key under test could not be read (see the pubkey-blob case)")
        return self.key

    def need_priv(self):
        if self.priv is None:
            raise Skip("needs --private-key")
        return self.priv

    # -- helpers --

    def blob_for(self, alg, key, padding=0):
        n, e, k = self.need_key()
        em = oaep_pad(key, k) if padding else pkcs1_pad(key, k)
        return simpleblob(alg, i2osp(pow(os2ip(em), e, n), k))

    def unwrap_fields(self, blob, padding=None, flags=None, name=None):
        return self.spec.fields(("NAME", self.args.key if name is None else name), ("BLOB", blob),
                                ("PADDING", padding), ("FLAGS", flags))

    def unwrap(self, c, blob, padding=None, flags=None):
        return c.call("unwrap", self.unwrap_fields(blob, padding, flags))

    def stats(self, c):
        a = c.call("stats")
        expect_status(a, "OK", "stats")
        return parse_stats(self.spec, a)

    def op_count(self, st, op):
        e = st["ops"].get(self.spec.op(op))
        return None if e is None else sum(e["counts"].values())

    def wait_quiet(self, limit=5.0):
        """Waits until the server counts no connection but the one asking (best effort)."""
        deadline = time.monotonic() + limit
        while True:
            try:
                c = Conn(self)
                a = c.call("stats")
                conns = a.num("CONNECTIONS")
                c.close()
                if a.status == 0 and conns is not None and conns <= 1:
                    return True
            except (OSError, Violation, TimeoutError):
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def parse_stats(spec, a):
    st = {"ops": {}, "pools": [], "hsms": [], "problems": []}
    p = st["problems"]
    bounds_raw = a.get("LATENCY_BOUNDS") or b""
    if len(bounds_raw) % 4 or not 4 <= len(bounds_raw) <= 124:
        p.append("LATENCY_BOUNDS of %d bytes" % len(bounds_raw))
    bounds = [struct.unpack_from(">I", bounds_raw, i)[0] for i in range(0, len(bounds_raw) // 4 * 4, 4)]
    if any(x >= y for x, y in zip(bounds, bounds[1:])):
        p.append("LATENCY_BOUNDS not strictly ascending: %s" % bounds)
    st["bounds"] = bounds
    for v in a.all("OP_ENTRY"):
        f = spec.split_fields(v)
        d = {}
        for t, val in f:
            d.setdefault(spec.tag_label(t), val)
        missing = [n for n in ("OP", "STATUS_COUNTS", "LATENCY_BUCKETS", "LATENCY_SUM") if n not in d]
        if missing:
            p.append("an OP_ENTRY lacks %s" % missing)
            continue
        op = d["OP"][0]
        if op in st["ops"]:
            p.append("OP %d reported twice" % op)
        sc = d["STATUS_COUNTS"]
        counts = {}
        if len(sc) % 10:
            p.append("OP %d: STATUS_COUNTS of %d bytes" % (op, len(sc)))
        prev = -1
        for i in range(0, len(sc) // 10 * 10, 10):
            s, n = struct.unpack_from(">HQ", sc, i)
            if s <= prev:
                p.append("OP %d: statuses not strictly ascending" % op)
            if s not in spec.status_name:
                p.append("OP %d: unknown status %d counted" % (op, s))
            if n == 0:
                p.append("OP %d: a zero count for status %d (zero counts are left out)" % (op, s))
            prev = s
            counts[s] = n
        lb = d["LATENCY_BUCKETS"]
        total = sum(counts.values())
        if len(lb) != 8 * (len(bounds) + 1):
            p.append("OP %d: %d buckets for %d bounds" % (op, len(lb) // 8, len(bounds)))
        buckets = [struct.unpack_from(">Q", lb, i)[0] for i in range(0, len(lb) // 8 * 8, 8)]
        if sum(buckets) != total:
            p.append("OP %d: buckets add up to %d, counts to %d" % (op, sum(buckets), total))
        # A hidden entry (a private-key operation, asked by a peer not in [daemon] admin) looks
        # like one that answered nothing: empty STATUS_COUNTS, zero buckets, LATENCY_SUM 0.
        hidden = total == 0 and struct.unpack(">Q", d["LATENCY_SUM"])[0] == 0
        st["ops"][op] = {"counts": counts, "hidden": hidden}
    for v in a.all("POOL_ENTRY"):
        d = {spec.tag_label(t): val for t, val in spec.split_fields(v)}
        miss = [n for n in ("NAME", "WORKER_COUNT", "QUEUED", "IN_FLIGHT") if n not in d]
        if miss:
            p.append("a POOL_ENTRY lacks %s" % miss)
            continue
        st["pools"].append({"name": d["NAME"].decode(), "in_flight": os2ip(d["IN_FLIGHT"]),
                            "queued": os2ip(d["QUEUED"]), "workers": os2ip(d["WORKER_COUNT"])})
    for v in a.all("HSM_ENTRY"):
        st["hsms"].append({spec.tag_label(t): val for t, val in spec.split_fields(v)})
    for n in ("UPTIME", "CONNECTIONS", "ACCEPTED", "REFUSED"):
        st[n] = a.num(n)
    return st


def check_hsm_entry(e, where):
    for n in ("NAME", "TOKEN_LABEL", "STATE", "IN_FLIGHT", "FAULTS"):
        require(n in e, "%s: an HSM_ENTRY lacks %s" % (where, n))
    require(e["STATE"] in (b"up", b"down"), "%s: HSM STATE %r" % (where, e["STATE"]))


# ---------------------------------------------------------------------------
# Cases: the positive path of every operation
# ---------------------------------------------------------------------------

def case_setup_pubkey(s):
    c = s.conn()
    a = expect_status(c.call("pubkey", s.spec.fields(("NAME", s.args.key))), "OK", "pubkey")
    pk = a.get("PUBLIC_KEY")
    require(pk is not None, "no PUBLIC_KEY in the answer")
    require(len(pk) >= 20, "PUBLIC_KEY of %d bytes" % len(pk))
    btype, bver, res, alg = struct.unpack_from("<BBHI", pk, 0)
    magic, bitlen, pubexp = struct.unpack_from("<4sII", pk, 8)
    require((btype, bver, res, alg) == (6, 2, 0, CALG_RSA_KEYX),
            "PUBLICKEYBLOB header %02x %02x %04x %08x, expected 06 02 0000 0000a400" % (
                btype, bver, res, alg))
    require(magic == b"RSA1", "magic %r" % magic)
    require(bitlen % 8 == 0 and len(pk) == 20 + bitlen // 8,
            "bitlen %d and %d bytes" % (bitlen, len(pk)))
    k = bitlen // 8
    n = int.from_bytes(pk[20:], "little")
    require(n.bit_length() == bitlen, "modulus of %d bits, bitlen %d" % (n.bit_length(), bitlen))
    require(bitlen == 2048, "the key under test must be RSA-2048, it has %d bits" % bitlen)
    s.key = (n, pubexp, k)
    s.pubkeyblob = pk
    if s.args.private_key:
        pn, pe, d = load_private_key(s.args.private_key)
        require((pn, pe) == (n, pubexp), "--private-key is not the private half of key %s" % s.args.key)
        s.priv = (pn, pe, d)
        if s.spec.ir_label is None:
            raise Violation("formats.md: no implicit-rejection label found")
        s.ir = ImplicitRejection(s.spec.ir_label, pn, d, k)


def case_pubkey_format(s, fmt):
    n, e, k = s.need_key()
    c = s.conn()
    a = expect_status(c.call("pubkey", s.spec.fields(("NAME", s.args.key), ("FORMAT", fmt))), "OK")
    names = sorted({s.spec.tag_label(t) for t, _ in a.fields})
    require(names == ["PUBLIC_KEY"], "the answer carries %s, expected PUBLIC_KEY" % names)
    pk = a.get("PUBLIC_KEY")
    if fmt == 0:
        require(pk == s.pubkeyblob, "FORMAT 0 differs from the default (PUBLICKEYBLOB)")
        return
    if fmt == 1:
        text = pk.decode("ascii")
        require(text.startswith("-----BEGIN PUBLIC KEY-----"), "not a PEM PUBLIC KEY: %r" % text[:40])
        blocks = pem_blocks(pk)
        require(len(blocks) == 1 and blocks[0][0] == "PUBLIC KEY", "PEM blocks %s" % [b[0] for b in blocks])
        der = blocks[0][1]
        s.pem_der = der
    else:
        der = pk
        if getattr(s, "pem_der", None) is not None:
            require(der == s.pem_der, "FORMAT 2 is not the DER inside FORMAT 1's PEM")
    tag, seq, _ = der_tlv(der, 0)
    alg = der_items(seq)[0]
    require(alg[0] == 0x30, "not a SubjectPublicKeyInfo (PKCS#1 RSAPublicKey?)")
    require((n, e) == der_rsa_public(der), "its key is not the PUBLICKEYBLOB's")
    if HAVE_CRYPTOGRAPHY:
        key = (_serialization.load_pem_public_key(pk) if fmt == 1
               else _serialization.load_der_public_key(pk))
        nums = key.public_numbers()
        require((nums.n, nums.e) == (n, e), "cryptography reads another key")


def case_pubkey_bad_format(s):
    c = s.conn()
    a = c.call("pubkey", s.spec.fields(("NAME", s.args.key), ("FORMAT", 4)))
    expect_status(a, "BAD_REQUEST", "FORMAT 4 (no such format)")


def case_info(s):
    c = s.conn()
    a = expect_status(c.call("info"), "OK")
    for n in ("VERSION", "TOKEN_LABEL", "KEY_COUNT", "WORKER_COUNT", "UPTIME"):
        require(a.get(n) is not None, "info lacks %s" % n)
    require(a.num("KEY_COUNT") >= 1, "KEY_COUNT 0 although key %s is usable" % s.args.key)
    require(a.num("WORKER_COUNT") >= 1, "WORKER_COUNT 0")
    hsms = [{s.spec.tag_label(t): v for t, v in s.spec.split_fields(g)} for g in a.all("HSM_ENTRY")]
    require(hsms, "info has no HSM_ENTRY")
    for h in hsms:
        check_hsm_entry(h, "info")
    s.key_count = a.num("KEY_COUNT")


def case_keys(s):
    c = s.conn()
    a = expect_status(c.call("keys"), "OK")
    entries = [s.spec.split_fields(g) for g in a.all("KEY_ENTRY")]
    require(entries, "keys lists no KEY_ENTRY")
    if getattr(s, "key_count", None) is not None:
        require(len(entries) == s.key_count, "%d KEY_ENTRY, info's KEY_COUNT says %d" % (
            len(entries), s.key_count))
    found = None
    for f in entries:
        d = {s.spec.tag_label(t): v for t, v in f}
        for n in ("NAME", "BITS", "EXPONENT", "MECHANISM"):
            require(n in d, "a KEY_ENTRY lacks %s" % n)
        require(d["MECHANISM"] in (b"raw", b"pkcs"), "MECHANISM %r" % d["MECHANISM"])
        if d["NAME"] == s.args.key.encode():
            found = d
    require(found is not None, "key %s is not listed" % s.args.key)
    require(os2ip(found["BITS"]) == 2048, "BITS %d" % os2ip(found["BITS"]))
    if s.key:
        require(os2ip(found["EXPONENT"]) == s.key[1], "EXPONENT %d, the PUBLICKEYBLOB says %d" % (
            os2ip(found["EXPONENT"]), s.key[1]))
    s.mechanism = found["MECHANISM"].decode()


def case_no_fields(s, op):
    c = s.conn()
    a = c.call(op, s.spec.fields(("NAME", s.args.key)))
    expect_status(a, "BAD_REQUEST", "%s takes no fields at all" % op)
    a = expect_status(c.call(op), "OK", "the connection stays open")


def case_unwrap_alg(s, alg):
    name, lo, hi = s.spec.algs[alg]
    c = s.conn()
    for ln in sorted({lo, hi}):
        key = os.urandom(ln)
        a = expect_status(s.unwrap(c, s.blob_for(alg, key)), "OK", "%s with %d bytes" % (name, ln))
        names = sorted(s.spec.tag_label(t) for t, _ in a.fields)
        require(names == ["ALG_ID", "SESSION_KEY"], "the answer carries %s" % names)
        require(a.num("ALG_ID") == alg, "ALG_ID 0x%x, expected 0x%x" % (a.num("ALG_ID"), alg))
        require(a.get("SESSION_KEY") == key, "%s: SESSION_KEY %s, expected %s" % (
            name, a.get("SESSION_KEY").hex(), key.hex()))


def case_unwrap_variants(s):
    c = s.conn()
    key = os.urandom(16)
    a = expect_status(s.unwrap(c, s.blob_for(0x660e, key, padding=1), padding=1), "OK", "OAEP")
    require(a.get("SESSION_KEY") == key, "OAEP: another key")
    strict = s.spec.flag_bits.get("STRICT", 0)
    a = expect_status(s.unwrap(c, s.blob_for(0x660e, key), flags=1 << strict), "OK", "STRICT")
    require(a.get("SESSION_KEY") == key, "STRICT: another key")
    a = expect_status(s.unwrap(c, s.blob_for(0x660e, key), padding=0, flags=0), "OK",
                      "PADDING 0 and FLAGS 0 given")
    require(a.get("SESSION_KEY") == key, "another key")


def wrap_call(s, c, fields, what):
    a = c.call("wrap", fields)
    if a.status == s.spec.status["DENIED"]:
        raise Skip("%s: DENIED (the key or allow_public_ops does not allow this user to wrap)" % what)
    return a


def check_wrapped(s, c, a, alg, key):
    """An OK wrap answer: unwrap it back through the server (and with the private key, if given)."""
    blob = a.get("BLOB")
    require(blob is not None and len(blob) == 12 + s.key[2], "BLOB of %s bytes" % (
        None if blob is None else len(blob)))
    require(a.num("ALG_ID") == alg, "ALG_ID 0x%x" % (a.num("ALG_ID") or 0))
    require(blob[:12] == struct.pack("<BBHII", 1, 2, 0, alg, CALG_RSA_KEYX),
            "SIMPLEBLOB header %s" % blob[:12].hex())
    if s.priv:
        n, e, d = s.priv
        em = i2osp(pow(os2ip(blob[12:][::-1]), d, n), s.key[2])
        require(pkcs1_unpad(em) == key, "the private key decrypts another key (or bad padding)")
    u = expect_status(s.unwrap(c, blob), "OK", "unwrapping the wrapped blob")
    require(u.get("SESSION_KEY") == key, "unwrap gives another key")


def case_wrap(s):
    c = s.conn()
    F = s.spec.fields
    key = os.urandom(16)
    a = expect_status(wrap_call(s, c, F(("ALG_ID", 0x660e), ("NAME", s.args.key),
                                        ("SESSION_KEY", key)), "wrap to NAME"), "OK")
    require(a.get("SESSION_KEY") is None, "SESSION_KEY in the answer although the key was given")
    check_wrapped(s, c, a, 0x660e, key)
    a = expect_status(wrap_call(s, c, F(("ALG_ID", 0x6610), ("NAME", s.args.key)), "wrap"), "OK",
                      "wrap with a generated key")
    gen = a.get("SESSION_KEY")
    require(gen is not None and len(gen) == 32, "a generated AES-256 key of %s bytes" % (
        None if gen is None else len(gen)))
    check_wrapped(s, c, a, 0x6610, gen)
    for bits, want in ((None, 16), (40, 5), (128, 16), (88, 11)):
        a = expect_status(wrap_call(s, c, F(("ALG_ID", 0x6801), ("NAME", s.args.key),
                                            ("KEY_BITS", bits)), "wrap"), "OK", "RC4 KEY_BITS %s" % bits)
        gen = a.get("SESSION_KEY")
        require(gen is not None and len(gen) == want, "RC4 KEY_BITS %s: a key of %s bytes, expected %d" % (
            bits, None if gen is None else len(gen), want))
        check_wrapped(s, c, a, 0x6801, gen)


def case_wrap_public_key(s):
    c = s.conn()
    key = os.urandom(24)
    for what, pub in (("PUBLICKEYBLOB", s.pubkeyblob), ("DER SubjectPublicKeyInfo", getattr(s, "pem_der", None))):
        if pub is None:
            continue
        a = wrap_call(s, c, s.spec.fields(("ALG_ID", 0x6603), ("PUBLIC_KEY", pub), ("SESSION_KEY", key)),
                      "wrap to a PUBLIC_KEY")
        expect_status(a, "OK", what)
        check_wrapped(s, c, a, 0x6603, key)


def case_wrap_errors(s):
    c = s.conn()
    F = s.spec.fields
    nm = ("NAME", s.args.key)
    cases = [
        ("NAME and PUBLIC_KEY", F(("ALG_ID", 0x660e), nm, ("PUBLIC_KEY", s.pubkeyblob)), "BAD_REQUEST"),
        ("no recipient", F(("ALG_ID", 0x660e)), "BAD_REQUEST"),
        ("unknown ALG_ID", F(("ALG_ID", 0x6604), nm), "BLOB_ALG"),
        ("AES-128 key of 15 bytes", F(("ALG_ID", 0x660e), nm, ("SESSION_KEY", os.urandom(15))), "KEY_LENGTH"),
        ("RC4 key of 4 bytes", F(("ALG_ID", 0x6801), nm, ("SESSION_KEY", os.urandom(4))), "KEY_LENGTH"),
        ("KEY_BITS with SESSION_KEY", F(("ALG_ID", 0x6801), nm, ("SESSION_KEY", os.urandom(16)),
                                        ("KEY_BITS", 128)), "BAD_REQUEST"),
        ("KEY_BITS for AES", F(("ALG_ID", 0x660e), nm, ("KEY_BITS", 128)), "BAD_REQUEST"),
        ("KEY_BITS 32", F(("ALG_ID", 0x6801), nm, ("KEY_BITS", 32)), "KEY_LENGTH"),
        ("KEY_BITS 136", F(("ALG_ID", 0x6602), nm, ("KEY_BITS", 136)), "KEY_LENGTH"),
        ("KEY_BITS 44", F(("ALG_ID", 0x6801), nm, ("KEY_BITS", 44)), "KEY_LENGTH"),
    ]
    bad = []
    for what, fields, want in cases:
        a = c.call("wrap", fields)
        if a.status == s.spec.status["DENIED"]:
            raise Skip("wrap to key %s is DENIED for this user" % s.args.key)
        if a.status != s.spec.status[want]:
            bad.append("%s: %s, expected %s" % (what, a, want))
    a = c.call("wrap", F(("ALG_ID", 0x660e), ("PUBLIC_KEY", b"not a key at all")))
    if a.status not in (s.spec.status["BAD_PUBLIC_KEY"], s.spec.status["DENIED"]):
        bad.append("garbage PUBLIC_KEY: %s, expected BAD_PUBLIC_KEY" % a)
    require(not bad, "; ".join(bad))


def copp_open(s, c, sig, rnd=None, flags=None):
    return c.call("copp-open", s.spec.fields(("NAME", s.args.key), ("SIGNATURE", sig), ("RANDOM", rnd),
                                             ("FLAGS", flags)))


def selfmade_signature(s, rnd, aes, sseq, cseq):
    n, e, k = s.need_key()
    em = pkcs1_pad(copp_message(rnd, aes, sseq, cseq), k)
    return i2osp(pow(os2ip(em), e, n), k)[::-1]


def check_copp_answer(a, rnd, aes, sseq, cseq, what):
    names = sorted(a.spec.tag_label(t) for t, _ in a.fields)
    require(names == sorted(["RANDOM", "AES_KEY", "STATUS_SEQ", "COMMAND_SEQ"]) or
            names == sorted(["SIGNATURE", "RANDOM", "AES_KEY", "STATUS_SEQ", "COMMAND_SEQ"]),
            "%s: the answer carries %s" % (what, names))
    got = (a.get("RANDOM"), a.get("AES_KEY"), a.num("STATUS_SEQ"), a.num("COMMAND_SEQ"))
    require(got == (rnd, aes, sseq, cseq), "%s: got %s, expected %s" % (
        what, (got[0].hex(), got[1].hex(), got[2], got[3]), (rnd.hex(), aes.hex(), sseq, cseq)))


def case_copp_open_selfmade(s):
    c = s.conn()
    rnd, aes = os.urandom(16), os.urandom(16)
    sseq, cseq = random.getrandbits(32), random.getrandbits(32)
    sig = selfmade_signature(s, rnd, aes, sseq, cseq)
    a = expect_status(copp_open(s, c, sig, rnd), "OK", "copp-open with the expected RANDOM")
    check_copp_answer(a, rnd, aes, sseq, cseq, "copp-open")
    a = expect_status(copp_open(s, c, sig), "OK", "copp-open without RANDOM")
    check_copp_answer(a, rnd, aes, sseq, cseq, "copp-open without RANDOM")
    strict = 1 << s.spec.flag_bits.get("STRICT", 0)
    a = expect_status(copp_open(s, c, sig, rnd, strict), "OK", "copp-open STRICT")
    check_copp_answer(a, rnd, aes, sseq, cseq, "copp-open STRICT")
    expect_status(copp_open(s, c, sig, os.urandom(16)), "RANDOM_MISMATCH", "another RANDOM")
    n, e, k = s.key
    expect_status(copp_open(s, c, i2osp(n, k)[::-1], rnd), "BLOB_RANGE", "signature = modulus")
    expect_status(copp_open(s, c, b"\xff" * k, rnd), "BLOB_RANGE", "signature ff..ff")


def case_copp_sign(s):
    c = s.conn()
    rnd, aes = os.urandom(16), os.urandom(16)
    sseq, cseq = random.getrandbits(32), random.getrandbits(32)
    a = c.call("copp-sign", s.spec.fields(("NAME", s.args.key), ("RANDOM", rnd), ("AES_KEY", aes),
                                          ("STATUS_SEQ", sseq), ("COMMAND_SEQ", cseq)))
    if a.status == s.spec.status["DENIED"]:
        raise Skip("copp-sign to key %s is DENIED for this user (allow_wrap)" % s.args.key)
    expect_status(a, "OK", "copp-sign")
    check_copp_answer(a, rnd, aes, sseq, cseq, "copp-sign")
    sig = a.get("SIGNATURE")
    require(sig is not None and len(sig) == 256, "SIGNATURE of %s bytes" % (None if sig is None else len(sig)))
    if s.priv:
        n, e, d = s.priv
        m = pkcs1_unpad(i2osp(pow(os2ip(sig[::-1]), d, n), 256))
        require(m == copp_message(rnd, aes, sseq, cseq), "the private key does not open it to the inputs")
    o = expect_status(copp_open(s, c, sig, rnd), "OK", "copp-open of copp-sign's signature")
    check_copp_answer(o, rnd, aes, sseq, cseq, "round trip")
    # what is absent is drawn at random
    a = expect_status(c.call("copp-sign", s.spec.fields(("NAME", s.args.key), ("RANDOM", rnd))), "OK",
                      "copp-sign with RANDOM only")
    for n_ in ("SIGNATURE", "RANDOM", "AES_KEY", "STATUS_SEQ", "COMMAND_SEQ"):
        require(a.get(n_) is not None, "copp-sign answer lacks %s" % n_)
    require(a.get("RANDOM") == rnd, "RANDOM not echoed")
    o = expect_status(copp_open(s, c, a.get("SIGNATURE"), rnd), "OK", "round trip, drawn values")
    check_copp_answer(o, rnd, a.get("AES_KEY"), a.num("STATUS_SEQ"), a.num("COMMAND_SEQ"), "round trip")


def case_stats(s):
    c = s.conn()
    st1 = s.stats(c)
    expect_status(c.call("info"), "OK")
    key = os.urandom(16)
    u = expect_status(s.unwrap(c, s.blob_for(0x660e, key)), "OK", "unwrap")
    require(u.get("SESSION_KEY") == key, "unwrap gave another key")
    a = expect_status(c.call("stats"), "OK")
    st2 = parse_stats(s.spec, a)
    require(not st2["problems"], "; ".join(st2["problems"]))
    for n in ("UPTIME", "CONNECTIONS", "ACCEPTED", "REFUSED"):
        require(st2[n] is not None, "stats lacks %s" % n)
    require(st2["CONNECTIONS"] >= 1, "CONNECTIONS %d while this one is open" % st2["CONNECTIONS"])
    require(st2["ACCEPTED"] >= st2["CONNECTIONS"], "ACCEPTED %d < CONNECTIONS %d" % (
        st2["ACCEPTED"], st2["CONNECTIONS"]))
    want_ops = set(s.spec.ops.values()) | {0}
    require(set(st2["ops"]) == want_ops, "OP_ENTRY for ops %s, the document has %s" % (
        sorted(st2["ops"]), sorted(want_ops)))
    require(st2["pools"], "stats has no POOL_ENTRY")
    require(st2["hsms"], "stats has no HSM_ENTRY")
    for h in st2["hsms"]:
        check_hsm_entry(h, "stats")
    info = s.spec.op("info")
    d1, d2 = s.op_count(st1, info), s.op_count(st2, info)
    require(d1 is not None and d2 is not None and d2 >= d1 + 1,
            "info's count went from %s to %s across an info request" % (d1, d2))
    so = s.spec.op("stats")
    require(s.op_count(st2, so) >= (s.op_count(st1, so) or 0) + 1, "the first stats is not counted")
    # a private-key operation's entry is either hidden (empty counts and buckets, sum 0: not an
    # admin peer) or counts: never a visible entry that missed this peer's own unwrap
    uw = s.spec.op("unwrap")
    e1, e2 = st1["ops"][uw], st2["ops"][uw]
    # after this peer's own unwrap answered OK, a visible entry counts it; a hidden one is empty
    if not e2["hidden"]:
        require(sum(e2["counts"].values()) >= sum(e1["counts"].values()) + 1,
                "the unwrap entry shows %d answers, %d before an unwrap answered OK" % (
                    sum(e2["counts"].values()), sum(e1["counts"].values())))
    else:
        require(e1["hidden"], "the unwrap entry counted answers, then none")


# ---------------------------------------------------------------------------
# 1. str fields
# ---------------------------------------------------------------------------

def case_str_not_utf8(s, value):
    c = s.conn()
    a = c.call("pubkey", s.spec.raw_field(s.spec.T["NAME"].tag, value))
    expect_status(a, "BAD_REQUEST", "NAME %s" % value.hex(" "))
    require(names_field(a.message, "NAME"), "the message does not name the field: %r" % a.message)
    expect_status(c.call("info"), "OK", "the connection stays open")


def case_name_escaped(s):
    c = s.conn()
    name = "no\nsuch\x1bkey\\\u00e9\x7fend"
    a = c.call("pubkey", s.spec.fields(("NAME", name)))
    expect_status(a, ("UNKNOWN_KEY", "DENIED"), "a NAME that matches no key")
    raw = a.get("MESSAGE")
    require(not any(b < 0x20 or b == 0x7f for b in raw), "raw control bytes in the MESSAGE: %r" % raw)
    msg = raw.decode("utf-8")
    if "such" in msg or a.status == s.spec.status["DENIED"]:
        want = "no\\x0asuch\\x1bkey\\x5c\u00e9\\x7fend"
        require(want.lower() in msg.lower(), "the quoted NAME is not escaped as %r: %r" % (want, msg))


# ---------------------------------------------------------------------------
# 2. frame lengths
# ---------------------------------------------------------------------------

def case_bad_length(s, length, status, extra=b""):
    c = s.conn()
    t0 = time.monotonic()
    c.send_raw(struct.pack(">I", length) + extra)
    try:
        a = c.read_answer(timeout=s.args.prompt)
    except TimeoutError:
        raise Violation("no answer within %.1f s after %d bytes (the length is judged as soon as "
                        "its 4 bytes have arrived)" % (s.args.prompt, 4 + len(extra))) from None
    el = time.monotonic() - t0
    require(a is not None, "the connection closed without an answer")
    expect_status(a, status, "length %d" % length)
    require((a.op, a.id) == (0, 0), "the answer carries op %d id %d, the document says 0 and 0" % (a.op, a.id))
    require(s.spec.status[status] in s.spec.closing, "the status table does not close after %s" % status)
    c.expect_eof(timeout=s.args.prompt)
    require(el < s.args.request_timeout / 4, "answered after %.1f s" % el)


def case_length_min_ok(s):
    c = s.conn()
    require(s.spec.hdr_len - 4 == s.spec.len_min, "the header is %d bytes, length min %d" % (
        s.spec.hdr_len, s.spec.len_min))
    expect_status(c.call("info"), "OK", "a frame of length %d" % s.spec.len_min)


def case_length_max_ok(s):
    F = s.spec.fields
    c = s.conn()
    base = F(("NAME", s.args.key), ("PUBLIC_KEY", b"\0" * s.spec.T["PUBLIC_KEY"].max))
    room = s.spec.len_max - (s.spec.hdr_len - 4) - len(base) - s.spec.fld_hdr_len
    fields = base + F(("PRIVATE_KEY", b"\0" * room))
    frame = s.spec.frame("pubkey", fields, rid=c.new_id())
    require(len(frame) == s.spec.frame_max, "built %d bytes" % len(frame))
    c.expect("pubkey", c.next_id)
    c.send_raw(frame)
    a = c.read_answer()
    expect_status(a, "OK", "a %d-byte frame of pubkey with fields it does not use" % len(frame))


# ---------------------------------------------------------------------------
# 3. SIMPLEBLOB check order
# ---------------------------------------------------------------------------

def blob_defects(s):
    n, e, k = s.key
    # each takes a bytearray of a valid blob and spoils one thing
    def length(b):
        b.append(0)

    def btype(b):
        b[0] = 0x06

    def bversion(b):
        b[1] = 0x03

    def reserved(b):
        b[2] = 0x01

    def alg(b):
        struct.pack_into("<I", b, 4, 0x6604)

    def wrap_alg(b):
        struct.pack_into("<I", b, 8, 0x2400)

    def rng(b):
        b[12:12 + k] = i2osp(n, k)[::-1]

    return {"BLOB_LENGTH": length, "BLOB_TYPE": btype, "BLOB_VERSION": bversion,
            "BLOB_RESERVED": reserved, "BLOB_ALG": alg, "BLOB_WRAP_ALG": wrap_alg,
            "BLOB_RANGE": rng}


def spoiled(s, base, names):
    d = blob_defects(s)
    b = bytearray(base)
    # the length defect last: it appends a byte after everything else is in place
    for nm in sorted(names, key=lambda x: x == "BLOB_LENGTH"):
        d[nm](b)
    return bytes(b)


def case_blob_checks(s):
    """Each defect alone, every pair, and all at once; reports every mismatch."""
    s.need_key()
    order = s.spec.blob_checks
    require(order, "protocol.md's unwrap section has no numbered list of checks")
    defects = blob_defects(s)
    buildable = [x for x in order if x in defects]
    unknown = [x for x in order if x not in defects and x != "KEY_SIZE"]
    require(not unknown, "the suite cannot build a blob for %s" % unknown)
    base = s.blob_for(0x660e, os.urandom(16))
    c = s.conn()
    bad = []
    combos = [(x,) for x in buildable]
    combos += [(x, y) for i, x in enumerate(buildable) for y in buildable[i + 1:]]
    combos.append(tuple(buildable))
    for combo in combos:
        for pad in (None, 1) if len(combo) == 1 else (None,):
            a = s.unwrap(c, spoiled(s, base, combo), padding=pad)
            if a.status != s.spec.status[combo[0]]:
                bad.append("%s%s: %s, expected %s" % ("+".join(combo), " (OAEP)" if pad else "", a,
                                                       combo[0]))
    s.blob_check_count = len(combos)
    require(not bad, "%d of %d wrong: %s" % (len(bad), len(combos), "; ".join(bad)))


def case_blob_variants(s):
    n, e, k = s.need_key()
    base = s.blob_for(0x6801, os.urandom(16))
    hdr = base[:12]
    c = s.conn()
    variants = [
        ("empty blob", b"", "BLOB_LENGTH"),
        ("11 bytes", base[:11], "BLOB_LENGTH"),
        ("header only", hdr, "BLOB_LENGTH"),
        ("one byte short", base[:-1], "BLOB_LENGTH"),
        ("one byte long", base + b"\0", "BLOB_LENGTH"),
        ("max BLOB", base + b"\0" * (s.spec.T["BLOB"].max - len(base)), "BLOB_LENGTH"),
        ("short blob with a bad type", b"\x06" + base[1:100], "BLOB_LENGTH"),
        ("bType 0", b"\x00" + base[1:], "BLOB_TYPE"),
        ("bType PLAINTEXTKEYBLOB", b"\x08" + base[1:], "BLOB_TYPE"),
        ("bVersion 0", base[:1] + b"\x00" + base[2:], "BLOB_VERSION"),
        ("reserved 0x0100", base[:2] + b"\x00\x01" + base[4:], "BLOB_RESERVED"),
        ("aiKeyAlg CALG_RSA_KEYX", base[:4] + struct.pack("<I", CALG_RSA_KEYX) + base[8:], "BLOB_ALG"),
        ("aiKeyAlg 0", base[:4] + b"\0\0\0\0" + base[8:], "BLOB_ALG"),
        ("algid 0", base[:8] + b"\0\0\0\0" + base[12:], "BLOB_WRAP_ALG"),
        ("algid 0xa401", base[:8] + struct.pack("<I", 0xa401) + base[12:], "BLOB_WRAP_ALG"),
        ("ciphertext = n + 1", hdr + i2osp(n + 1, k)[::-1], "BLOB_RANGE"),
        ("ciphertext ff..ff", hdr + b"\xff" * k, "BLOB_RANGE"),
    ]
    bad = []
    for what, blob, want in variants:
        a = s.unwrap(c, blob)
        if a.status != s.spec.status[want]:
            bad.append("%s: %s, expected %s" % (what, a, want))
    require(not bad, "; ".join(bad))


# ---------------------------------------------------------------------------
# 4. header values and FLAGS
# ---------------------------------------------------------------------------

def case_request_status(s, status):
    c = s.conn()
    a = c.call("info", status=status)
    expect_status(a, "BAD_REQUEST", "a request with status %d" % status)
    expect_status(c.call("info"), "OK", "the connection stays open")


def case_version(s, version):
    c = s.conn()
    a = c.call("info", version=version)
    expect_status(a, "BAD_VERSION", "version %d" % version)
    expect_status(c.call("pubkey", s.spec.fields(("NAME", s.args.key))), "OK",
                  "the connection stays open after BAD_VERSION")


def case_unknown_ops(s):
    c = s.conn()
    known = set(s.spec.ops.values())
    bad = []
    for op in [o for o in (0, max(known) + 1, max(known) + 2, 100, 255) if o not in known]:
        a = c.call(op)
        if a.status != s.spec.status["UNKNOWN_OP"]:
            bad.append("op %d: %s" % (op, a))
        a = c.call(op, s.spec.fields(("NAME", s.args.key), ("PRIVATE_KEY", b"x" * 600)))
        if a.status != s.spec.status["UNKNOWN_OP"]:
            bad.append("op %d with fields: %s" % (op, a))
    expect_status(c.call("info"), "OK", "the connection stays open")
    require(not bad, "; ".join(bad))


def case_flags(s):
    c = s.conn()
    key = os.urandom(16)
    blob = s.blob_for(0x660e, key)
    undefined = [1 << b for b in range(32) if not s.spec.flags_defined & (1 << b)]
    bad = []
    for flags in undefined + [0xffffffff, s.spec.flags_defined | undefined[0]]:
        for what, req in (("unwrap", s.unwrap_fields(blob, flags=flags)),
                          ("copp-open", s.spec.fields(("NAME", s.args.key), ("SIGNATURE", blob[12:]),
                                                      ("FLAGS", flags)))):
            a = c.call(what, req)
            if a.status != s.spec.status["BAD_REQUEST"]:
                bad.append("%s FLAGS 0x%08x: %s" % (what, flags, a))
            elif not names_field(a.message, "FLAGS"):
                bad.append("%s FLAGS 0x%08x: the message does not name FLAGS: %r" % (what, flags, a.message))
    a = c.call("pubkey", s.spec.fields(("NAME", s.args.key), ("FLAGS", undefined[0])))
    if a.status != s.spec.status["BAD_REQUEST"]:
        bad.append("pubkey with FLAGS 0x%08x: %s" % (undefined[0], a))
    for nm, bit in s.spec.flag_bits.items():
        a = s.unwrap(c, blob, flags=1 << bit)
        if nm == "SEAL":
            # Documented for copp-open and opm-open only: BAD_REQUEST anywhere else.
            if a.status != s.spec.status["BAD_REQUEST"] or not names_field(a.message, "SEAL"):
                bad.append("unwrap with SEAL (not an open): %s" % a)
        elif a.status != 0 or a.get("SESSION_KEY") != key:
            bad.append("unwrap with the defined bit %s: %s" % (nm, a))
    require(not bad, "%d wrong: %s" % (len(bad), "; ".join(bad[:12])))


# ---------------------------------------------------------------------------
# 5. tags
# ---------------------------------------------------------------------------

def valid_value(s, t, big=False):
    if t.name == "NAME":
        return s.args.key.encode()
    if t.size is not None:
        return b"\0" * t.size
    if t.utf8:
        return b"a" * (t.max if big else 1)
    if t.group:
        return b""
    return b"\0" * (t.max if big else min(t.max, 16))


def tag_request(s, t, values):
    """A pubkey request for the key, with the given values of tag t (NAME only once)."""
    name = s.spec.T["NAME"]
    parts = [] if t.tag == name.tag else [s.spec.field("NAME", s.args.key)]
    parts += [s.spec.raw_field(t.tag, v) for v in values]
    return b"".join(parts)


def expect_bad_field(s, c, fields, t, what):
    a = c.call("pubkey", fields)
    expect_status(a, "BAD_REQUEST", what)
    ok = names_field(a.message, t.name) if isinstance(t, Tag) else names_tag_number(a.message, t)
    require(ok, "%s: the message does not name %s: %r" % (
        what, t.name if isinstance(t, Tag) else "tag %d" % t, a.message))


def case_tag_ignored(s, t):
    c = s.conn()
    for v in {valid_value(s, t), valid_value(s, t, big=True)}:
        a = c.call("pubkey", tag_request(s, t, [v]))
        expect_status(a, "OK", "pubkey with %s of %d bytes (a field the operation does not use "
                      "is ignored; its value fits the table)" % (t.name, len(v)))


def case_tag_repeated(s, t):
    c = s.conn()
    v = valid_value(s, t)
    expect_bad_field(s, c, tag_request(s, t, [v, v]), t, "%s given twice" % t.name)


def case_tag_answer_only(s, t):
    c = s.conn()
    expect_bad_field(s, c, tag_request(s, t, [valid_value(s, t)]), t, "answer-only %s in a request" % t.name)


def case_tag_unknown(s, tags):
    c = s.conn()
    bad = []
    for tag in tags:
        fields = s.spec.field("NAME", s.args.key) + s.spec.raw_field(tag, b"\0\0\0\0")
        try:
            expect_bad_field(s, c, fields, tag, "unknown tag %d" % tag)
        except Violation as e:
            bad.append(str(e))
    require(not bad, "; ".join(bad))


def case_tag_size(s, t):
    c = s.conn()
    if t.size is not None:
        sizes = sorted({0, t.size - 1, t.size + 1} - {t.size})
    else:
        sizes = [t.max + 1]
    bad = []
    for n in sizes:
        v = (b"a" if t.utf8 else b"\0") * n
        try:
            expect_bad_field(s, c, tag_request(s, t, [v]), t, "%s of %d bytes" % (t.name, n))
        except Violation as e:
            bad.append(str(e))
    require(not bad, "; ".join(bad))


def case_name_max(s):
    c = s.conn()
    t = s.spec.T["NAME"]
    a = c.call("pubkey", s.spec.fields(("NAME", "k" * t.max)))
    expect_status(a, ("UNKNOWN_KEY", "DENIED"), "a NAME of %d bytes that matches no key" % t.max)


# ---------------------------------------------------------------------------
# 9. implicit rejection
# ---------------------------------------------------------------------------

def bad_ciphertexts(s, alg):
    """(what, c big-endian) that do not decrypt to a key allowed for alg, built with the private key."""
    n, e, d = s.need_priv()
    k = s.key[2]
    name, lo, hi = s.spec.algs[alg]
    enc = lambda em: i2osp(pow(os2ip(em), e, n), k)   # noqa: E731
    out = [("no separator", enc(b"\x00\x02" + nonzero_bytes(k - 2))),
           ("block type 1", enc(b"\x00\x01" + b"\xff" * (k - 3 - hi) + b"\x00" + os.urandom(hi))),
           ("PS of 7 bytes", enc(b"\x00\x02" + nonzero_bytes(7) + b"\x00" + os.urandom(k - 10))),
           ("key of %d bytes" % (hi + 1), enc(pkcs1_pad(os.urandom(hi + 1), k)))]
    if lo > 1:
        out.append(("key of %d bytes" % (lo - 1), enc(pkcs1_pad(os.urandom(lo - 1), k))))
    while True:
        c = os.urandom(k)
        if os2ip(c) < n:
            m = pkcs1_unpad(i2osp(pow(os2ip(c), d, n), k))
            if m is None or not lo <= len(m) <= hi:
                out.append(("random ciphertext", c))
                break
    return out


def case_ir_exact(s, alg):
    s.need_priv()
    name, lo, hi = s.spec.algs[alg]
    c = s.conn()
    bad = []
    strict = 1 << s.spec.flag_bits.get("STRICT", 0)
    strict_msgs, oaep_msgs = set(), set()
    for what, cbe in bad_ciphertexts(s, alg):
        blob = simpleblob(alg, cbe)
        want = s.ir.synthetic(cbe, lo, hi)
        for attempt in (1, 2):
            a = s.unwrap(c, blob)
            if a.status != 0:
                bad.append("%s: %s, expected OK with the synthetic key" % (what, a))
                break
            got = a.get("SESSION_KEY")
            if a.num("ALG_ID") != alg or got != want:
                bad.append("%s (try %d): ALG_ID 0x%x key %s, formats.md gives %s" % (
                    what, attempt, a.num("ALG_ID"), got.hex(), want.hex()))
                break
        a = s.unwrap(c, blob, flags=strict)
        if a.status != s.spec.status["UNWRAP_FAILED"]:
            bad.append("%s with STRICT: %s, expected UNWRAP_FAILED" % (what, a))
        else:
            strict_msgs.add(a.message)
        a = s.unwrap(c, blob, padding=1)
        if a.status != s.spec.status["UNWRAP_FAILED"]:
            bad.append("%s as OAEP: %s, expected UNWRAP_FAILED" % (what, a))
        else:
            oaep_msgs.add(a.message)
    if len(strict_msgs) > 1:
        bad.append("STRICT failures carry %d different messages (one fixed message per key): %s" % (
            len(strict_msgs), sorted(strict_msgs)))
    if len(oaep_msgs) > 1:
        bad.append("OAEP failures carry %d different messages: %s" % (len(oaep_msgs), sorted(oaep_msgs)))
    require(not bad, "; ".join(bad))


def case_ir_copp_exact(s):
    n, e, d = s.need_priv()
    k = s.key[2]
    c = s.conn()
    strict = 1 << s.spec.flag_bits.get("STRICT", 0)
    enc = lambda em: i2osp(pow(os2ip(em), e, n), k)   # noqa: E731
    bad = []
    for what, cbe in (("a 39-byte message", enc(pkcs1_pad(os.urandom(39), k))),
                      ("a 41-byte message", enc(pkcs1_pad(os.urandom(41), k))),
                      ("no separator", enc(b"\x00\x02" + nonzero_bytes(k - 2)))):
        sig = cbe[::-1]
        rnd, aes, sseq, cseq = copp_fields(s.ir.synthetic(cbe, 40, 40))
        a = copp_open(s, c, sig)
        if a.status != 0:
            bad.append("%s without RANDOM: %s, expected OK with the made-up message" % (what, a))
        else:
            try:
                check_copp_answer(a, rnd, aes, sseq, cseq, what)
            except Violation as v:
                bad.append(str(v))
        a = copp_open(s, c, sig, os.urandom(16))
        if a.status != s.spec.status["RANDOM_MISMATCH"]:
            bad.append("%s with RANDOM: %s, expected RANDOM_MISMATCH" % (what, a))
        a = copp_open(s, c, sig, os.urandom(16), strict)
        if a.status != s.spec.status["UNWRAP_FAILED"]:
            bad.append("%s with STRICT: %s, expected UNWRAP_FAILED" % (what, a))
    require(not bad, "; ".join(bad))


def random_ciphertext(s):
    n, e, k = s.need_key()
    while True:
        c = os.urandom(k)
        if os2ip(c) < n:
            return c


def case_ir_blind(s, alg, count):
    """Without the private key: random ciphertexts give OK keys of allowed lengths, always the same."""
    name, lo, hi = s.spec.algs[alg]
    c1, c2 = s.conn(), s.conn()
    lens, bad = set(), []
    for _ in range(count):
        cbe = random_ciphertext(s)
        blob = simpleblob(alg, cbe)
        a = s.unwrap(c1, blob)
        if a.status != 0:
            bad.append("random ciphertext: %s, expected OK (implicit rejection)" % a)
            continue
        key = a.get("SESSION_KEY")
        if a.num("ALG_ID") != alg or not lo <= len(key) <= hi:
            bad.append("ALG_ID 0x%x and a key of %d bytes (%s allows %d..%d)" % (
                a.num("ALG_ID"), len(key), name, lo, hi))
        lens.add(len(key))
        b = s.unwrap(c2, blob)
        if (b.status, b.get("SESSION_KEY")) != (0, key):
            bad.append("the same blob again (another connection): %s, first %s" % (b, key.hex()))
        if s.ir is not None and key != s.ir.synthetic(cbe, lo, hi):
            m = pkcs1_unpad(i2osp(pow(os2ip(cbe), s.priv[2], s.priv[0]), s.key[2]))
            if m is None or not lo <= len(m) <= hi:
                bad.append("key %s, formats.md gives %s" % (key.hex(), s.ir.synthetic(cbe, lo, hi).hex()))
    if hi - lo >= 4 and count >= 20 and len(lens) < 3:
        bad.append("%d blobs gave only the lengths %s (spread evenly over %d..%d)" % (count, sorted(lens), lo, hi))
    require(not bad, "; ".join(bad[:8]))


def case_ir_copp_blind(s):
    c1, c2 = s.conn(), s.conn()
    bad = []
    for _ in range(4):
        sig = random_ciphertext(s)[::-1]
        a = copp_open(s, c1, sig)
        if a.status != 0:
            bad.append("random signature without RANDOM: %s, expected OK (a made-up message)" % a)
            continue
        b = copp_open(s, c2, sig)
        fa = [a.get(x) for x in ("RANDOM", "AES_KEY", "STATUS_SEQ", "COMMAND_SEQ")]
        fb = [b.get(x) for x in ("RANDOM", "AES_KEY", "STATUS_SEQ", "COMMAND_SEQ")]
        if b.status != 0 or fa != fb:
            bad.append("the same signature again: %s, not the same message" % b)
        r = copp_open(s, c1, sig, os.urandom(16))
        if r.status != s.spec.status["RANDOM_MISMATCH"]:
            bad.append("random signature with RANDOM: %s, expected RANDOM_MISMATCH" % r)
    require(not bad, "; ".join(bad))


# ---------------------------------------------------------------------------
# 10, 11, half-close
# ---------------------------------------------------------------------------

def case_duplicate_ids(s):
    c = s.conn()
    rid = c.new_id()
    k1, k2 = os.urandom(16), os.urandom(24)
    c.send("info", rid=rid)
    c.send("pubkey", s.spec.fields(("NAME", s.args.key)), rid=rid)
    c.send("unwrap", s.unwrap_fields(s.blob_for(0x660e, k1)), rid=rid)
    c.send("unwrap", s.unwrap_fields(s.blob_for(0x660f, k2)), rid=rid)
    c.send("stats", rid=rid)
    c.send(s.spec.op("info"), rid=rid, version=s.spec.version + 1)
    got = []
    for _ in range(6):
        a = c.read_answer()
        require(a is not None, "the connection closed after %d of 6 answers" % len(got))
        got.append(a)
    keys = sorted(a.get("SESSION_KEY") for a in got if a.op == s.spec.op("unwrap") and a.status == 0)
    require(keys == sorted([k1, k2]), "the unwraps gave %s" % [a for a in got if a.op == 4])
    require(not c.pending, "unanswered: %s" % c.pending)


def case_half_close(s):
    c = s.conn()
    want = {}
    for _ in range(12):
        key = os.urandom(16)
        want[c.send("unwrap", s.unwrap_fields(s.blob_for(0x660e, key)))] = key
    c.s.shutdown(socket.SHUT_WR)
    while True:
        a = c.read_answer()
        if a is None:
            break
        require(a.status == 0 and a.get("SESSION_KEY") == want.get(a.id), "answer %s" % a)
    require(not c.pending, "%d requests unanswered before the close" % len(c.pending))


def case_import_message(s):
    if not s.args.import_allowed:
        raise Skip("needs --import-allowed")
    c = s.conn()
    a = c.call("import", s.spec.fields(("NAME", "kt_conformance_probe"),
                                       ("PRIVATE_KEY", b"this is not a private key in any format\n")))
    expect_status(a, "BAD_REQUEST", "import of an unparseable PRIVATE_KEY")
    require(re.search(r"DER[^.;]*PKCS ?#1", a.message),
            "the message does not list DER PKCS#1 among the accepted formats: %r" % a.message)


# ---------------------------------------------------------------------------
# 8. back-pressure
# ---------------------------------------------------------------------------

def fionread(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def pool_in_flight(st, name="hsm"):
    for p in st["pools"]:
        if p["name"] == name:
            return p["in_flight"]
    return sum(p["in_flight"] for p in st["pools"])


def case_backpressure(s):
    args = s.args
    out_high, per_req = 256 * 1024, 4096
    s.wait_quiet()
    mon = s.conn()
    unwrap = s.spec.op("unwrap")
    key = os.urandom(16)
    blob = s.blob_for(0x660e, key)
    # does stats count this user's unwraps? (hidden entries are empty; check that they move)
    before = s.op_count(s.stats(mon), unwrap)
    expect_status(s.unwrap(mon, blob), "OK", "unwrap")
    count0 = s.op_count(s.stats(mon), unwrap)
    if before is None or count0 is None or count0 < before + 1:
        count0 = None
    fields = s.unwrap_fields(blob)
    c = s.conn()
    c.s.setblocking(False)
    total = args.backpressure_requests
    first = c.next_id + 1
    frames = [s.spec.frame("unwrap", fields, rid=(first + i) & 0xffffffff) for i in range(total)]
    written, partial, max_inflight_seen = 0, b"", 0
    t0 = time.monotonic()
    guard = args.request_timeout * 0.4
    last_stats = 0.0
    stopped = "all %d written" % total
    while written < total:
        try:
            n = c.s.send(frames[written])
            c.expect("unwrap", (first + written) & 0xffffffff)
            written += 1
            if n < len(frames[written - 1]):
                partial = frames[written - 1][n:]
                stopped = "a partial write"
                break
            continue
        except BlockingIOError:
            pass
        pl = select.poll()
        pl.register(c.s.fileno(), select.POLLOUT)
        waited = time.monotonic()
        writable = False
        while time.monotonic() - waited < args.stall:
            if pl.poll(50):
                writable = True
                break
            if time.monotonic() - last_stats > 0.05:
                last_stats = time.monotonic()
                max_inflight_seen = max(max_inflight_seen, pool_in_flight(s.stats(mon)))
        if not writable:
            stopped = "blocked after %d requests (no room for %.1f s)" % (written, args.stall)
            break
        if time.monotonic() - t0 > guard:
            stopped = "the time guard (%.0f s) after %d requests" % (guard, written)
            break
        if time.monotonic() - last_stats > 0.05:
            last_stats = time.monotonic()
            max_inflight_seen = max(max_inflight_seen, pool_in_flight(s.stats(mon)))
    # let the server settle: no answer in the making any more
    settle_start = time.monotonic()
    held = r_read = inq = None
    settled = False
    if count0 is not None:
        last, stable_since = None, time.monotonic()
        cap = max(1.0, min(args.wait + 5, args.request_timeout * 0.3))
        while time.monotonic() - settle_start < cap:
            st = s.stats(mon)
            cnt = s.op_count(st, unwrap) - count0
            if cnt != last:
                last, stable_since = cnt, time.monotonic()
            if (pool_in_flight(st) == 0 and time.monotonic() - stable_since >= 0.5 and
                    time.monotonic() - settle_start >= min(args.wait, cap)):
                settled = True
                break
            time.sleep(0.1)
        r_read = last
        inq = fionread(c.s)
    else:
        time.sleep(min(args.wait, args.request_timeout * 0.3))
    elapsed_before_read = time.monotonic() - t0
    # read everything (finishing a partial request first)
    c.s.setblocking(True)
    if partial:
        c.s.settimeout(args.timeout)
        c.s.sendall(partial)
    answers, alen, wrong = 0, None, []
    while c.pending:
        a = c.read_answer()
        require(a is not None, "the connection closed with %d of %d requests unanswered (%d answered; "
                "answers are never dropped while it is open)" % (written - answers, written, answers))
        answers += 1
        if a.status != 0 or a.get("SESSION_KEY") != key:
            wrong.append(str(a))
        alen = len(a.raw)
    require(not wrong, "%d answers not OK with the key: %s" % (len(wrong), wrong[:3]))
    facts = "%s; %d answers read after %.1f s" % (stopped, answers, elapsed_before_read)
    require(max_inflight_seen <= args.max_inflight,
            "the pool held %d requests in flight; the daemon stops reading at max_inflight %d" % (
                max_inflight_seen, args.max_inflight))
    if count0 is None:
        raise Skip("stats does not count this user's unwraps: only checked that every request was "
                   "answered once and max_inflight (%s)" % facts)
    held = r_read * alen - inq
    slack = (args.max_inflight + 1) * alen
    facts += ("; the server had read %d, %d bytes of answers were in the client's socket, %d bytes "
              "held by the server" % (r_read, inq, held))
    require(held <= out_high + slack, "the server held %d bytes of answers, more than 256 KiB + the "
            "answers of %d requests in flight (%d): it should have stopped reading: %s" % (
                held, args.max_inflight, out_high + slack, facts))
    if not settled:
        raise Skip("inconclusive: the server was still answering after the wait (%s)" % facts)
    if r_read < written:
        # it stopped reading with nothing in flight: only answers waiting (256 KiB) or the uid's
        # memory share can hold it; the latter is out of reach when the numbers below say so
        mem = (out_high // alen + args.max_inflight + 1) * (1 << (alen - 1).bit_length()) + \
            args.max_inflight * per_req
        if mem < args.job_memory_per_uid * 1024 * 3 // 4:
            require(held >= out_high, "the server stopped reading with only %d bytes of answers held "
                    "and no request in flight; it reads until 256 KiB wait (the document's example: "
                    "about 5,000 unwrap answers): %s" % (held, facts))
    else:
        raise Skip("inconclusive: the server read all %d requests written (%s); the held answers "
                   "stayed within the bound; raise --backpressure-requests or --request-timeout" % (
                       written, facts))
    if args.verbose:
        print("  back-pressure: %s" % facts)


# ---------------------------------------------------------------------------
# 7. connection limits
# ---------------------------------------------------------------------------

def case_connection_limit(s):
    limits = [x for x in (s.args.max_connections_per_uid, s.args.max_connections) if x]
    if not limits:
        raise Skip("needs --max-connections-per-uid (or --max-connections)")
    lim = min(limits)
    if lim > 512:
        raise Skip("limit %d is too large to fill cheaply" % lim)
    s.wait_quiet()
    mon = s.conn()
    refused0 = s.stats(mon)["REFUSED"]
    mon.close()
    s.open_conns.remove(mon)
    time.sleep(0.2)
    conns = []
    for i in range(lim):
        c = s.conn()
        a = c.call("info")
        require(a.status == 0, "connection %d of %d: %s" % (i + 1, lim, a))
        conns.append(c)
    extra = s.conn()
    try:
        a = extra.read_answer(timeout=s.args.prompt * 2)
    except TimeoutError:
        raise Violation("connection %d got no answer within %.1f s" % (lim + 1, s.args.prompt * 2)) from None
    require(a is not None, "connection %d was closed without the BUSY answer" % (lim + 1))
    expect_status(a, "BUSY", "connection %d" % (lim + 1))
    require((a.op, a.id) == (0, 0), "BUSY with op %d id %d, expected 0 0" % (a.op, a.id))
    per_uid = s.args.max_connections_per_uid
    want = "max_connections_per_uid" if per_uid and lim == per_uid else "max_connections"
    require(want in a.message or (per_uid == s.args.max_connections and "max_connections" in a.message),
            "the MESSAGE does not name the limit %s: %r" % (want, a.message))
    extra.expect_eof(timeout=s.args.prompt)
    for i, c in enumerate(conns):
        expect_status(c.call("pubkey", s.spec.fields(("NAME", s.args.key))), "OK",
                      "connection %d after the refusal" % (i + 1))
    for c in conns:
        c.close()
    s.wait_quiet()
    mon = s.conn()
    refused1 = s.stats(mon)["REFUSED"]
    require(refused1 >= refused0 + 1, "REFUSED went from %d to %d" % (refused0, refused1))


# ---------------------------------------------------------------------------
# 6. stopping
# ---------------------------------------------------------------------------

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def case_shutdown(s):
    """SIGTERM while three connections have work: A and B wrote all their requests before the
    signal (B before any work started, A then waited for its first answer), C writes one
    request at a time only after it. Every request written before SIGTERM is answered
    exactly once, OK with the right key or SHUTTING_DOWN; on C, the answered requests are a
    prefix of those sent (the daemon reads in order and answers whatever it read)."""
    pid = s.args.pid
    if not pid:
        raise Skip("needs --pid (the suite then sends SIGTERM to the server)")
    s.wait_quiet()
    count = s.args.shutdown_requests
    ok, sd = s.spec.status["OK"], s.spec.status["SHUTTING_DOWN"]
    keys, problems = {}, []
    blobs = [(k, s.blob_for(0x660e, k)) for k in (os.urandom(16) for _ in range(8))]

    def request(conn):
        key, blob = random.choice(blobs)
        rid = conn.new_id()
        keys[(id(conn), rid)] = key
        conn.expect("unwrap", rid)
        return rid, s.spec.frame("unwrap", s.unwrap_fields(blob), rid=rid)

    def take(conn, label, a, got):
        if a.id in got:
            problems.append("%s: id %d answered twice" % (label, a.id))
        got[a.id] = a
        if a.status == ok:
            if a.get("SESSION_KEY") != keys.get((id(conn), a.id)):
                problems.append("%s: id %d OK with another key" % (label, a.id))
        elif a.status != sd:
            problems.append("%s: id %d: %s, expected OK or SHUTTING_DOWN" % (label, a.id, a))

    conns = {"A": s.conn(), "B": s.conn(), "C": s.conn()}
    got = {x: {} for x in conns}
    ids = {x: [] for x in conns}
    expect_status(conns["C"].call("info"), "OK", "C before SIGTERM")
    for x in ("B", "A"):
        reqs = [request(conns[x]) for _ in range(count)]
        ids[x] = [r for r, _ in reqs]
        conns[x].send_raw(b"".join(f for _, f in reqs))
    a = conns["A"].read_answer()
    require(a is not None, "A closed before any answer")
    take(conns["A"], "A", a, got["A"])
    os.kill(pid, signal.SIGTERM)
    t_sig = time.monotonic()
    # C: one request at a time after SIGTERM, reading as it goes, until the daemon closes it
    c = conns["C"]
    c.s.setblocking(False)
    c_closed = False
    while len(ids["C"]) < count and not c_closed:
        rid, fr = request(c)
        try:
            c.s.send(fr)
            ids["C"].append(rid)
        except BlockingIOError:
            c.pending.pop(rid, None)
        except (BrokenPipeError, ConnectionResetError):
            c.pending.pop(rid, None)
            c_closed = True
            break
        try:
            while True:
                a = c.read_answer(timeout=0.001)
                if a is None:
                    c_closed = True
                    break
                take(c, "C", a, got["C"])
        except TimeoutError:
            pass
    # read every connection until the end of file
    for x, conn in conns.items():
        conn.s.setblocking(True)
        while not (x == "C" and c_closed):
            try:
                a = conn.read_answer(timeout=max(1.0, t_sig + s.args.drain + 5 - time.monotonic()))
            except TimeoutError:
                problems.append("%s not closed %.0f s after SIGTERM" % (x, s.args.drain + 5))
                break
            if a is None:
                break
            take(conn, x, a, got[x])
    for x in ("A", "B"):
        missing = [i for i in ids[x] if i not in got[x]]
        if missing:
            problems.append("%s: %d of the %d requests written before SIGTERM got no answer" % (
                x, len(missing), count))
    answered = [i in got["C"] for i in ids["C"]]
    if False in answered and True in answered[answered.index(False):]:
        problems.append("C: id %d got no answer but a later request did" % ids["C"][answered.index(False)])
    for x in conns:
        stray = [i for i in got[x] if i not in ids[x]]
        if stray:
            problems.append("%s: answers to ids never sent: %s" % (x, stray[:5]))
    # a connection made now is not served
    try:
        late = Conn(s)
        late.s.settimeout(2)
        try:
            a = late.call("info")
            if a.status == ok:
                problems.append("a connection made after SIGTERM was served: %s" % a)
        except (TimeoutError, OSError, Violation):
            pass
    except OSError:
        pass
    gone = time.monotonic() + s.args.drain + 10
    while pid_alive(pid) and time.monotonic() < gone:
        time.sleep(0.1)
    if pid_alive(pid):
        problems.append("the server (pid %d) still runs %.0f s after SIGTERM" % (
            pid, time.monotonic() - t_sig))
    require(not problems, "; ".join(problems[:8]))
    if s.args.verbose:
        print("  shutdown: " + "; ".join("%s sent %d, answered %d (%d SHUTTING_DOWN)" % (
            x, len(ids[x]), len(got[x]), sum(1 for a in got[x].values() if a.status == sd))
            for x in conns))


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

def run(s):
    spec = s.spec
    s.pubkeyblob = None
    s.check("pubkey-blob", case_setup_pubkey, s, always=True)     # reads the key: always
    for fmt, nm in ((0, "pubkey-format-0"), (1, "pubkey-pem"), (2, "pubkey-der")):
        s.check(nm, case_pubkey_format, s, fmt)
    s.check("pubkey-unknown-format", case_pubkey_bad_format, s)
    s.check("info", case_info, s)
    s.check("keys", case_keys, s)
    for op in ("info", "keys", "stats"):
        s.check("%s-takes-no-fields" % op, case_no_fields, s, op)
    for alg in sorted(spec.algs):
        s.check("unwrap-%s" % spec.algs[alg][0].lower(), case_unwrap_alg, s, alg)
    s.check("unwrap-oaep-strict", case_unwrap_variants, s)
    s.check("wrap", case_wrap, s)
    s.check("wrap-public-key", case_wrap_public_key, s)
    s.check("wrap-errors", case_wrap_errors, s)
    s.check("copp-open", case_copp_open_selfmade, s)
    s.check("copp-sign-open", case_copp_sign, s)
    s.check("stats", case_stats, s)
    # 1. str
    for v in (b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"k\xe2\x82", b"\xf4\x90\x80\x80", b"\x80"):
        s.check("str-not-utf8-%s" % v.hex(), case_str_not_utf8, s, v)
    s.check("str-nul", case_str_not_utf8, s, s.args.key.encode()[:2] + b"\0" + s.args.key.encode()[2:])
    s.check("str-nul-end", case_str_not_utf8, s, s.args.key.encode() + b"\0")
    s.check("message-escapes-name", case_name_escaped, s)
    # 2. lengths
    for ln in range(0, spec.len_min):
        s.check("length-%d" % ln, case_bad_length, s, ln, "BAD_FRAME")
    s.check("length-4-with-header", case_bad_length, s, 4, "BAD_FRAME",
            struct.pack(">BBHI", spec.version, spec.op("info"), 0, 77))
    for ln in (spec.len_max + 1, spec.frame_max, 1 << 24, 0xffffffff):
        s.check("length-%d" % ln, case_bad_length, s, ln, "FRAME_TOO_LARGE")
    s.check("length-%d-ok" % spec.len_min, case_length_min_ok, s)
    s.check("length-%d-ok" % spec.len_max, case_length_max_ok, s)
    # 3. blobs
    s.check("blob-check-order", case_blob_checks, s)
    s.check("blob-defects", case_blob_variants, s)
    # 4. header values, FLAGS, ops
    for st in (1, 5, 0x8000, 0xffff):
        s.check("request-status-%d" % st, case_request_status, s, st)
    for v in (0, spec.version + 1, 255):
        s.check("version-%d" % v, case_version, s, v)
    s.check("unknown-ops", case_unknown_ops, s)
    s.check("flags-reserved-bits", case_flags, s)
    # 5. tags
    for t in sorted(spec.tags.values(), key=lambda t: t.tag):
        if t.in_request:
            if t.name != "NAME":
                s.check("tag-ignored-%s" % t.name, case_tag_ignored, s, t)
            s.check("tag-repeated-%s" % t.name, case_tag_repeated, s, t)
        else:
            s.check("tag-answer-only-%s" % t.name, case_tag_answer_only, s, t)
        s.check("tag-size-%s" % t.name, case_tag_size, s, t)
    top = max(spec.tags)
    unknown = sorted(set(range(0, top + 3)) - set(spec.tags)) + [1000, 0x7fff, 0xffff]
    s.check("tag-unknown", case_tag_unknown, s, unknown)
    s.check("tag-max-NAME", case_name_max, s)
    # 9. implicit rejection
    for alg in (0x6801, 0x6602, 0x660e, 0x6603):
        if alg in spec.algs:
            s.check("implicit-rejection-%s" % spec.algs[alg][0].lower(), case_ir_exact, s, alg)
    s.check("implicit-rejection-copp", case_ir_copp_exact, s)
    s.check("implicit-rejection-blind-rc4", case_ir_blind, s, 0x6801, 24)
    s.check("implicit-rejection-blind-rc2", case_ir_blind, s, 0x6602, 24)
    s.check("implicit-rejection-blind-aes_128", case_ir_blind, s, 0x660e, 4)
    s.check("implicit-rejection-blind-copp", case_ir_copp_blind, s)
    # 10, 11, half-close
    s.check("duplicate-ids", case_duplicate_ids, s)
    s.check("half-close", case_half_close, s)
    s.check("import-message", case_import_message, s)
    # 8, 7, 6: the heavy ones, the one that stops the server last
    s.check("back-pressure", case_backpressure, s)
    s.check("connection-limit", case_connection_limit, s)
    s.check("shutdown", case_shutdown, s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True, help="the server's Unix socket")
    ap.add_argument("--key", required=True,
                    help="name of an RSA-2048 key this user may unwrap, pubkey and copp-open (STRICT too)")
    ap.add_argument("--private-key", help="that key's private key (PEM or DER): exact implicit-rejection checks")
    ap.add_argument("--pid", type=int, help="the server's pid: enables the shutdown case, which SIGTERMs it")
    ap.add_argument("--max-connections-per-uid", type=int, help="the server's per-uid connection limit")
    ap.add_argument("--max-connections", type=int, help="the server's connection limit")
    ap.add_argument("--max-inflight", type=int, default=64, help="the server's max_inflight (default 64)")
    ap.add_argument("--job-memory-per-uid", type=int, default=1024,
                    help="the server's job_memory_per_uid in KiB (default 1024)")
    ap.add_argument("--request-timeout", type=float, default=30, help="the server's request_timeout (30)")
    ap.add_argument("--drain", type=float, default=10, help="the server's drain limit in seconds (10)")
    ap.add_argument("--import-allowed", action="store_true",
                    help="this user may call import (the case sends an unparseable key only)")
    ap.add_argument("--protocol", default=os.path.join(HERE, "..", "..", "docs", "protocol.md"),
                    help="the protocol document (default ../../docs/protocol.md from this file)")
    ap.add_argument("--formats", help="the formats document (default formats.md next to --protocol)")
    ap.add_argument("--timeout", type=float, default=20, help="seconds to wait for an answer (20)")
    ap.add_argument("--prompt", type=float, default=2.0,
                    help="seconds within which an answer 'at once' must come (2)")
    ap.add_argument("--backpressure-requests", type=int, default=20000,
                    help="unwraps the back-pressure case tries to write without reading (20000)")
    ap.add_argument("--stall", type=float, default=1.5,
                    help="back-pressure: seconds without room in the socket that count as blocked (1.5)")
    ap.add_argument("--wait", type=float, default=3.0,
                    help="back-pressure: seconds to wait before reading (3; well under request_timeout)")
    ap.add_argument("--shutdown-requests", type=int, default=200, help="unwraps per connection in shutdown")
    ap.add_argument("--only", help="run only the cases whose name matches this regular expression")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks, timings and measurements")
    args = ap.parse_args(argv)
    args.formats = args.formats or os.path.join(os.path.dirname(args.protocol), "formats.md")
    spec = Spec(args.protocol, args.formats)
    if not HAVE_CRYPTOGRAPHY:
        print("# note: the cryptography package is not installed: keys are read with the suite's own "
              "DER reader only (PEM/DER pubkey answers get no second opinion)", flush=True)
    print("# %s: %d tags, %d statuses, %d operations, FLAGS bits %s" % (
        os.path.relpath(args.protocol), len(spec.tags), len(spec.status), len(spec.ops),
        sorted(spec.flag_bits.items())), flush=True)
    s = Suite(args, spec)
    run(s)
    if s.skipped:
        print("# %d skipped" % s.skipped)
    print("%d passed, %d failed" % (s.passed, s.failed), flush=True)
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
