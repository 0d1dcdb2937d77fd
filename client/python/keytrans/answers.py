"""Reading the daemon's answers (client/lib/receive.c): each operation's body checked and
turned into its result, and an error status into its KeytransError."""
import struct
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

from . import status as st
from .algs import ALGS, CALG_RSA_KEYX
from .errors import KeytransError
from .results import (Copp, Hsm, Info, Key, NewKey, OpStats, Pool, Sealed, SessionKey,
                      SessionSeq, Stats, Wrapped)
from .wire import OPS, TAGS, Fields, T, WireError, all_fields, parse_fields

R = TypeVar("R")
Decoder = Callable[[Fields, bytes], R]      # (fields, body) -> the operation's result

_BLOB_MAX = 2060
_HSMS_MAX = 16
_STATS_OPS_MAX, _STATS_POOLS_MAX, _BOUNDS_MAX = 16, 4, 31


def bad(message: str) -> KeytransError:
    return KeytransError(st.ERR_PROTOCOL, "malformed response: " + message)


def _missing(tag: int) -> KeytransError:
    return bad("%s field missing or of the wrong size" % TAGS[tag][0])


def _get(m: Fields, name: str, size: Optional[int] = None) -> bytes:
    tag = T[name]
    v = m.get(tag)
    if v is None or (size is not None and len(v) != size):
        raise _missing(tag)
    return v


def _num(m: Fields, name: str) -> int:
    return int.from_bytes(_get(m, name), "big")


def text(v: bytes) -> str:
    return v.decode("utf-8", "replace")


def _opt_text(m: Fields, name: str) -> str:
    v = m.get(T[name])
    return "" if v is None else text(v)


def _group(g: bytes, what: str) -> Fields:
    try:
        return parse_fields(g)
    except WireError as w:
        raise bad("%s: %s" % (what, w)) from None


def _dec_hsm(g: bytes) -> Hsm:
    e = _group(g, "HSM entry")
    try:
        return Hsm(text(_get(e, "NAME")), text(_get(e, "TOKEN_LABEL")), text(_get(e, "STATE")),
                   _num(e, "IN_FLIGHT"), _num(e, "FAULTS"), _opt_text(e, "LAST_ERROR"))
    except KeytransError:
        raise bad("HSM entry lacks a field") from None


def dec_info(m: Fields, body: bytes) -> Info:
    info = Info(text(_get(m, "VERSION")), text(_get(m, "TOKEN_LABEL")), _num(m, "KEY_COUNT"),
                _num(m, "WORKER_COUNT"), _num(m, "UPTIME"), _opt_text(m, "NOTICE"))
    hsms = tuple(_dec_hsm(g) for g in all_fields(body, T["HSM_ENTRY"])[:_HSMS_MAX])
    return info._replace(hsms=hsms)


def _dec_bounds(v: bytes) -> Tuple[int, ...]:
    """LATENCY_BOUNDS: 1 to 31 u32, strictly ascending (common/metrics.c)."""
    if not v or len(v) % 4 or len(v) // 4 > _BOUNDS_MAX:
        raise bad("malformed LATENCY_BOUNDS")
    b: Tuple[int, ...] = struct.unpack(">%dI" % (len(v) // 4), v)
    if any(x >= y for x, y in zip(b, b[1:])):
        raise bad("malformed LATENCY_BOUNDS")
    return b


def _dec_counts(v: bytes, name: str) -> Dict[int, int]:
    """STATUS_COUNTS: u16 status + u64 count entries, statuses strictly ascending."""
    if len(v) % 10:
        raise bad("%s: malformed STATUS_COUNTS" % name)
    pairs: List[Tuple[int, int]] = []
    for i in range(0, len(v), 10):
        code, n = struct.unpack_from(">HQ", v, i)
        pairs.append((code, n))
    codes = [c for c, _ in pairs]
    counts = dict(pairs)
    if any(x >= y for x, y in zip(codes, codes[1:])) or sum(counts.values()) >= 1 << 64:
        raise bad("%s: malformed STATUS_COUNTS" % name)
    return counts


def _dec_op_stats(g: bytes, nbounds: int) -> OpStats:
    e = _group(g, "operation entry")
    try:
        op, counts, lat, total = (_num(e, "OP"), _get(e, "STATUS_COUNTS"),
                                  _get(e, "LATENCY_BUCKETS"), _num(e, "LATENCY_SUM"))
    except KeytransError:
        raise bad("operation entry lacks a field") from None
    name = OPS.get(op, "unknown")
    by_status = _dec_counts(counts, name)
    if len(lat) != 8 * (nbounds + 1):
        raise bad("%s: LATENCY_BUCKETS does not hold %d counts" % (name, nbounds + 1))
    buckets: Tuple[int, ...] = struct.unpack(">%dQ" % (nbounds + 1), lat)
    count = sum(by_status.values())
    if sum(buckets) >= 1 << 64:
        raise bad("%s: latency buckets overflow" % name)
    if sum(buckets) != count:
        raise bad("%s: latency buckets add up to %d, not the count %d"
                  % (name, sum(buckets), count))
    return OpStats(op, name, count, by_status, buckets, total)


def _dec_pool(g: bytes) -> Pool:
    e = _group(g, "pool entry")
    try:
        return Pool(text(_get(e, "NAME")), _num(e, "WORKER_COUNT"), _num(e, "QUEUED"),
                    _num(e, "IN_FLIGHT"))
    except KeytransError:
        raise bad("pool entry lacks a field") from None


def dec_stats(m: Fields, body: bytes) -> Stats:
    try:
        head = [_num(m, n) for n in ("UPTIME", "CONNECTIONS", "ACCEPTED", "REFUSED")]
        raw_bounds = _get(m, "LATENCY_BOUNDS")
    except KeytransError:
        raise bad("stats answer lacks a field") from None
    bounds = _dec_bounds(raw_bounds)
    ops: List[OpStats] = []
    for g in all_fields(body, T["OP_ENTRY"]):
        o = _dec_op_stats(g, len(bounds))
        if any(x.op == o.op for x in ops):
            raise bad("operation %d reported twice" % o.op)
        if len(ops) < _STATS_OPS_MAX:     # as libkeytrans: the first 16 are kept
            ops.append(o)
    pools = tuple(_dec_pool(g) for g in all_fields(body, T["POOL_ENTRY"])[:_STATS_POOLS_MAX])
    hsms = tuple(_dec_hsm(g) for g in all_fields(body, T["HSM_ENTRY"])[:_HSMS_MAX])
    hits, misses, recipients = _counter_group(
        m, ("RECIPIENT_HITS", "RECIPIENT_MISSES", "RECIPIENTS"), "recipient cache's")
    sessions, opened, expired = _counter_group(
        m, ("SESSIONS", "SESSIONS_OPENED", "SESSIONS_EXPIRED"), "sealed sessions'")
    return Stats(head[0], head[1], head[2], head[3], bounds, tuple(ops), pools, hsms,
                 hits, misses, recipients, sessions, opened, expired)


def _counter_group(m: Fields, names: Tuple[str, str, str], what: str) -> List[Optional[int]]:
    """Counters a newer daemon added: all of them, or none (an older daemon: None each)."""
    have = [T[n] in m for n in names]
    if any(have) and not all(have):
        raise bad("stats answer has only some of the %s counters" % what)
    return [_num(m, n) if h else None for n, h in zip(names, have)]


def dec_keys(m: Fields, body: bytes) -> List[Key]:
    keys = []
    for g in all_fields(body, T["KEY_ENTRY"]):
        e = _group(g, "key entry")
        name = text(_get(e, "NAME"))
        label = _opt_text(e, "LABEL")
        kid = e.get(T["ID"], b"")
        keys.append(Key(name, label, kid, _num(e, "BITS"), _num(e, "EXPONENT"),
                        _opt_text(e, "MECHANISM"), _opt_text(e, "NOTICE")))
    return keys


def pubkey_decoder(fmt: int) -> Decoder[bytes]:
    def dec(m: Fields, body: bytes) -> bytes:
        p = _get(m, "PUBLIC_KEY")
        if fmt == 0:
            ok = len(p) > 20 and p[0] == 0x06
        elif fmt == 1:
            ok = len(p) > 12 and p.startswith(b"-----BEGIN ")
        elif fmt == 3:      # BCRYPT_RSAPUBLIC_BLOB: magic "RSA1" and 5 more u32
            ok = len(p) > 24 and p.startswith(b"RSA1")
        else:
            ok = len(p) > 2 and p[0] == 0x30
        if not ok:
            raise bad("PUBLIC_KEY is not in the requested format")
        return p
    return dec


def _session_key(m: Fields) -> SessionKey:
    aid = _num(m, "ALG_ID")
    a = ALGS.get(aid)
    if a is None:
        raise bad("unknown ALG_ID 0x%x" % aid)
    key = _get(m, "SESSION_KEY")
    if not a[1] <= len(key) <= a[2]:
        raise bad("%d-byte session key for %s" % (len(key), a[0]))
    return SessionKey(aid, key)


def dec_unwrap(m: Fields, body: bytes) -> SessionKey:
    return _session_key(m)


def _simpleblob_ok(p: bytes, aid: int) -> bool:
    if not 12 < len(p) <= _BLOB_MAX:
        return False
    return struct.unpack_from("<BBHII", p, 0) == (1, 2, 0, aid, CALG_RSA_KEYX)


def wrap_decoder(aid: int, key: Optional[bytes], bits: int) -> Decoder[Wrapped]:
    def dec(m: Fields, body: bytes) -> Wrapped:
        got = m.get(T["ALG_ID"])
        if got is None or int.from_bytes(got, "big") != aid:
            raise bad("ALG_ID missing or not the one requested")
        blob = m.get(T["BLOB"])
        if blob is None or not _simpleblob_ok(blob, aid):
            raise bad("BLOB missing or not a SIMPLEBLOB for the ALG_ID")
        if key is not None:
            if T["SESSION_KEY"] in m:
                raise bad("SESSION_KEY returned for a key the caller gave")
            return Wrapped(blob, key)
        sk = _session_key(m)
        if bits and len(sk.key) * 8 != bits:
            raise bad("generated key is %d bits, %d were asked" % (len(sk.key) * 8, bits))
        return Wrapped(blob, sk.key)
    return dec


def _copp_common(m: Fields, signature: Optional[bytes]) -> Copp:
    return Copp(signature, _get(m, "RANDOM", 16), _get(m, "AES_KEY", 16), _num(m, "STATUS_SEQ"),
                _num(m, "COMMAND_SEQ"))


def copp_sign_decoder(random: bytes, aes_key: Optional[bytes], status_seq: Optional[int],
                      command_seq: Optional[int]) -> Decoder[Copp]:
    def dec(m: Fields, body: bytes) -> Copp:
        c = _copp_common(m, None)
        c = c._replace(signature=_get(m, "SIGNATURE", 256))
        if (c.random != random or (aes_key is not None and c.aes_key != aes_key) or
                (status_seq is not None and c.status_seq != status_seq) or
                (command_seq is not None and c.command_seq != command_seq)):
            raise bad("returned values differ from the ones given")
        return c
    return dec


def copp_open_decoder(expect: Optional[bytes]) -> Decoder[Copp]:
    def dec(m: Fields, body: bytes) -> Copp:
        c = _copp_common(m, None)
        if expect is not None and c.random != expect:
            raise bad("RANDOM differs from the expected one")
        return c
    return dec


def sealed_decoder(expect: Optional[bytes]) -> Decoder[Sealed]:
    """A sealed open: the handle instead of the AES key, which must not come back at all."""
    def dec(m: Fields, body: bytes) -> Sealed:
        s = Sealed(_get(m, "SESSION", 16), _get(m, "RANDOM", 16), _num(m, "STATUS_SEQ"),
                   _num(m, "COMMAND_SEQ"))
        if T["AES_KEY"] in m:
            raise bad("AES_KEY returned for a sealed session")
        if expect is not None and s.random != expect:
            raise bad("RANDOM differs from the expected one")
        return s
    return dec


def dec_omac(m: Fields, body: bytes) -> bytes:
    return _get(m, "OMAC", 16)


def dec_session_seq(m: Fields, body: bytes) -> SessionSeq:
    return SessionSeq(_num(m, "STATUS_SEQ"), _num(m, "COMMAND_SEQ"))


def dec_none(m: Fields, body: bytes) -> None:
    return None


def new_key_decoder(name: str) -> Decoder[NewKey]:
    def dec(m: Fields, body: bytes) -> NewKey:
        got = text(_get(m, "NAME"))
        if got != name:
            raise bad("NAME missing or not the one requested")
        kid = _get(m, "ID")
        pub = _get(m, "PUBLIC_KEY")
        if not kid or len(pub) < 3 or pub[0] != 0x30:
            raise bad("PUBLIC_KEY missing or not a DER public key")
        return NewKey(got, text(_get(m, "LABEL")), kid, _num(m, "BITS"), _num(m, "EXPONENT"),
                      pub)
    return dec


def decode_answer(want_op: int, decode: Decoder[R], op: int, status: int, body: bytes) -> R:
    """The result of an answer (op, status, body) to a want_op request, or its error raised:
    the daemon's status with its MESSAGE, or ERR_PROTOCOL for a malformed answer."""
    if op != want_op:
        raise bad("answer for operation %s to a %s request"
                  % (OPS.get(op, "unknown"), OPS[want_op]))
    try:
        m = parse_fields(body)
    except WireError as w:
        if status != st.OK:
            raise KeytransError(status, st.status_text(status)) from None
        raise bad(str(w)) from None
    if status != st.OK:
        msg = m.get(T["MESSAGE"])
        raise KeytransError(status, text(msg) if msg else st.status_text(status))
    return decode(m, body)


def refusal_message(status: int, body: bytes) -> str:
    """What an answer to no request (op 0: the daemon refusing the connection) says."""
    try:
        msg = parse_fields(body).get(T["MESSAGE"])
    except WireError:
        msg = None
    return "keytransd: %s" % (text(msg) if msg else st.status_text(status))
