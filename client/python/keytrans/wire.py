"""The wire format (common/wire.h, docs/protocol.md): frames, operation codes, field tags and
their types, encoding fields and parsing an answer's body."""
import struct
from typing import Dict, List, Optional, Tuple

VERSION = 1
HEADER = struct.Struct(">IBBHI")            # length, version, op, status, id
FRAME_MAX = 65536                           # a whole frame, length field included
BODY_OFFSET = 12                            # the fields start after the header

OPS: Dict[int, str] = {1: "info", 2: "keys", 3: "pubkey", 4: "unwrap", 5: "wrap",
                       6: "copp-sign", 7: "copp-open", 8: "stats", 9: "keygen", 10: "import",
                       11: "opm-sign", 12: "opm-open", 13: "session-mac", 14: "session-verify",
                       15: "session-close"}
OP_CODE: Dict[str, int] = {name: code for code, name in OPS.items()}

U8, U32, U64, BYTES, STR, GROUP = range(6)
# tag: (NAME, type, maximum length)
TAGS: Dict[int, Tuple[str, int, int]] = {
    1: ("NAME", STR, 64), 2: ("BLOB", BYTES, 2060), 3: ("PADDING", U8, 1),
    4: ("ALG_ID", U32, 4), 5: ("SESSION_KEY", BYTES, 32), 6: ("PUBLIC_KEY", BYTES, 60000),
    7: ("FORMAT", U8, 1), 8: ("KEY_BITS", U32, 4), 9: ("RANDOM", BYTES, 16),
    10: ("AES_KEY", BYTES, 16), 11: ("STATUS_SEQ", U32, 4), 12: ("COMMAND_SEQ", U32, 4),
    13: ("SIGNATURE", BYTES, 256), 14: ("MESSAGE", STR, 1024), 15: ("VERSION", STR, 64),
    16: ("TOKEN_LABEL", STR, 32), 17: ("KEY_COUNT", U32, 4), 18: ("WORKER_COUNT", U32, 4),
    19: ("UPTIME", U64, 8), 20: ("KEY_ENTRY", GROUP, 60000), 21: ("LABEL", STR, 256),
    22: ("ID", BYTES, 255), 23: ("BITS", U32, 4), 24: ("EXPONENT", U64, 8),
    25: ("FLAGS", U32, 4), 26: ("NOTICE", STR, 1024), 27: ("MECHANISM", STR, 8),
    28: ("HSM_ENTRY", GROUP, 4096), 29: ("STATE", STR, 16), 30: ("IN_FLIGHT", U32, 4),
    31: ("FAULTS", U64, 8), 32: ("LAST_ERROR", STR, 512),
    33: ("OP_ENTRY", GROUP, 2048), 34: ("OP", U8, 1), 35: ("STATUS_COUNTS", BYTES, 1000),
    36: ("LATENCY_BOUNDS", BYTES, 124), 37: ("LATENCY_BUCKETS", BYTES, 256),
    38: ("LATENCY_SUM", U64, 8), 39: ("CONNECTIONS", U32, 4), 40: ("ACCEPTED", U64, 8),
    41: ("REFUSED", U64, 8), 42: ("POOL_ENTRY", GROUP, 256), 43: ("QUEUED", U32, 4),
    44: ("RECIPIENT_HITS", U64, 8), 45: ("RECIPIENT_MISSES", U64, 8), 46: ("RECIPIENTS", U32, 4),
    47: ("SESSION", BYTES, 16), 48: ("DATA", BYTES, 4096), 49: ("OMAC", BYTES, 16),
    50: ("PRIVATE_KEY", BYTES, 32768), 51: ("KIND", U8, 1), 52: ("SESSIONS", U32, 4),
    53: ("SESSIONS_OPENED", U64, 8), 54: ("SESSIONS_EXPIRED", U64, 8),
}
T: Dict[str, int] = {name: tag for tag, (name, _, _) in TAGS.items()}
_FIXED = {U8: 1, U32: 4, U64: 8}

Fields = Dict[int, bytes]       # tag -> value, as parse_fields() reads a body


class WireError(Exception):
    """A body that wire_parse_answer refuses (the caller makes it ERR_PROTOCOL)."""


def field(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def u8(tag: int, v: int) -> bytes:
    return field(tag, struct.pack(">B", v))


def u32(tag: int, v: int) -> bytes:
    return field(tag, struct.pack(">I", v))


def parse_fields(body: bytes) -> Fields:
    """tag -> value (first occurrence), refusing what wire_parse_answer refuses.

    Unknown tags are skipped: a newer daemon may add fields to its answers."""
    out: Fields = {}
    off, n = 0, len(body)
    while off < n:
        at = off
        if n - at < 4:
            raise WireError("field header truncated at byte %d of the body" % at)
        tag, length = struct.unpack_from(">HH", body, at)
        if n - at - 4 < length:
            if tag in TAGS:
                raise WireError("field %s truncated at byte %d of the body" % (TAGS[tag][0], at))
            raise WireError("field UNKNOWN (tag %d) truncated at byte %d of the body" % (tag, at))
        value = bytes(body[at + 4:at + 4 + length])
        off = at + 4 + length
        if tag not in TAGS:
            continue
        name, typ, maxlen = TAGS[tag]
        if (length != _FIXED[typ]) if typ in _FIXED else (length > maxlen):
            raise WireError("field %s has a bad length (%d)" % (name, length))
        if typ == STR and b"\0" in value:
            raise WireError("field %s contains a NUL byte" % name)
        if tag in out and typ != GROUP:
            raise WireError("field %s given twice" % name)
        out.setdefault(tag, value)
    return out


def all_fields(body: bytes, tag: int) -> List[bytes]:
    """Every value of tag in a body already accepted by parse_fields, in order."""
    off, vals = 0, []
    while off < len(body):
        t, length = struct.unpack_from(">HH", body, off)
        if t == tag:
            vals.append(bytes(body[off + 4:off + 4 + length]))
        off += 4 + length
    return vals


def request_frame(op: int, rid: int, fields: bytes) -> bytes:
    """A whole request frame, length field included."""
    body = struct.pack(">BBHI", VERSION, op, 0, rid) + fields
    return struct.pack(">I", len(body)) + body


def frame_length_error(n: int) -> Optional[str]:
    """Why an answer's length field n (the bytes after it) is refused, or None."""
    if n > FRAME_MAX - 4:
        return "response frame of %d bytes exceeds the %d-byte limit" % (n + 4, FRAME_MAX)
    if n < 8:
        return "response frame length %d is too small" % n
    return None
