"""keytrans: a client for keytransd (docs/protocol.md), Python 3.9+, standard library only.

    import keytrans
    with keytrans.connect() as kt:          # $KEYTRANS_SOCKET, else the default socket
        alg_id, key = kt.unwrap("exchange1", blob)

It behaves as libkeytrans does: one method per operation, the same argument
checks, the same response validation, and every failure raised as
KeytransError whose .code is libkeytrans' status: the daemon's (> 0) or a
local one (< 0: ERR_CONNECT, ERR_IO, ERR_PROTOCOL, ERR_ARG, ERR_TIMEOUT).
A Connection is for one thread at a time.
"""
import collections
import math
import os
import select
import socket
import struct
import time

__version__ = "0.1.0"

__all__ = [
    "Connection", "KeytransError", "Op", "BatchResults", "Info", "Hsm", "Key", "SessionKey",
    "Wrapped", "Copp", "Stats", "OpStats", "Pool", "NewKey",
    "connect", "alg_id", "alg_name", "status_name", "status_text", "copp_cert_key", "is_xml",
    "DEFAULT_SOCKET", "DEFAULT_TIMEOUT", "ALGS", "COPP_CERT_MAX",
]

DEFAULT_SOCKET = "/run/keytransd/keytransd.sock"
DEFAULT_TIMEOUT = 30.0          # seconds, for each call (batch: for each wait)
DEFAULT_DEPTH = 32              # requests in flight in batch()
COPP_CERT_MAX = 64 * 1024       # the largest COPP XML certificate chain read (KT_COPP_CERT_MAX)

# (NAME, code, description): common/keytrans_status.h
_STATUS_LIST = [
    ("OK", 0, "success"),
    ("BAD_FRAME", 1, "malformed frame header"),
    ("FRAME_TOO_LARGE", 2, "frame larger than the protocol maximum"),
    ("BAD_VERSION", 3, "unsupported protocol version"),
    ("UNKNOWN_OP", 4, "unknown operation"),
    ("BAD_REQUEST", 5, "missing, duplicate, unknown or malformed field"),
    ("UNKNOWN_KEY", 6, "no key of that name"),
    ("BLOB_TYPE", 7, "blob has the wrong bType"),
    ("BLOB_VERSION", 8, "blob has the wrong bVersion"),
    ("BLOB_RESERVED", 9, "blob reserved field is not zero"),
    ("BLOB_WRAP_ALG", 10, "SIMPLEBLOB wrapping algorithm is not CALG_RSA_KEYX"),
    ("BLOB_ALG", 11, "unknown or unsupported session key ALG_ID"),
    ("BLOB_LENGTH", 12, "blob length does not match the key"),
    ("BLOB_RANGE", 13, "ciphertext is not below the modulus"),
    ("UNWRAP_FAILED", 14, "decryption failed"),
    ("KEY_LENGTH", 15, "session key length not allowed for the ALG_ID"),
    ("BAD_PUBLIC_KEY", 16, "public key could not be parsed or is not RSA"),
    ("KEY_SIZE", 17, "RSA key size not usable for this operation"),
    ("RANDOM_MISMATCH", 18, "COPP random number differs from the expected one"),
    ("HSM_ERROR", 19, "the HSM failed the operation"),
    ("BUSY", 20, "daemon overloaded, try again"),
    ("INTERNAL", 21, "internal error in the daemon"),
    ("SHUTTING_DOWN", 22, "daemon is shutting down"),
    ("DENIED", 23, "not allowed for this peer"),
    ("TIMEOUT", 24, "request not served in time"),
    ("HSM_UNAVAILABLE", 25, "no HSM in service; try again later"),
    ("NOT_SUPPORTED", 26, "the HSM does not support this operation"),
    ("ERR_CONNECT", -1, "daemon unreachable"),
    ("ERR_IO", -2, "connection to the daemon failed"),
    ("ERR_PROTOCOL", -3, "malformed response from the daemon"),
    ("ERR_ARG", -4, "invalid argument"),
    ("ERR_NOMEM", -5, "out of memory"),
    ("ERR_TIMEOUT", -6, "no response in time"),
]
_STATUS_NAME = {code: name for name, code, _ in _STATUS_LIST}
_STATUS_TEXT = {code: text for _, code, text in _STATUS_LIST}
# The same numbers as constants: keytrans.UNWRAP_FAILED (test_keytrans.py checks both).
OK = 0
BAD_FRAME = 1
FRAME_TOO_LARGE = 2
BAD_VERSION = 3
UNKNOWN_OP = 4
BAD_REQUEST = 5
UNKNOWN_KEY = 6
BLOB_TYPE = 7
BLOB_VERSION = 8
BLOB_RESERVED = 9
BLOB_WRAP_ALG = 10
BLOB_ALG = 11
BLOB_LENGTH = 12
BLOB_RANGE = 13
UNWRAP_FAILED = 14
KEY_LENGTH = 15
BAD_PUBLIC_KEY = 16
KEY_SIZE = 17
RANDOM_MISMATCH = 18
HSM_ERROR = 19
BUSY = 20
INTERNAL = 21
SHUTTING_DOWN = 22
DENIED = 23
TIMEOUT = 24
HSM_UNAVAILABLE = 25
NOT_SUPPORTED = 26
ERR_CONNECT = -1
ERR_IO = -2
ERR_PROTOCOL = -3
ERR_ARG = -4
ERR_NOMEM = -5
ERR_TIMEOUT = -6
__all__ += [name for name, _, _ in _STATUS_LIST]


def status_name(code):
    """"UNWRAP_FAILED" for 14, "ERR_CONNECT" for -1; "UNKNOWN" for codes not in the list."""
    return _STATUS_NAME.get(code, "UNKNOWN")


def status_text(code):
    """One-line description of a status."""
    return _STATUS_TEXT.get(code, "unknown status")


class KeytransError(Exception):
    """A failed call: .code (libkeytrans' status), .name ("UNWRAP_FAILED") and
    .message (the daemon's MESSAGE, or what went wrong locally)."""

    def __init__(self, code, message=None):
        self.code = code
        self.name = status_name(code)
        self.message = message if message else status_text(code)
        super().__init__(code, self.message)

    def __str__(self):
        return "%s: %s" % (self.name, self.message)

    def __repr__(self):
        return "KeytransError(%s, %r)" % (self.name, self.message)


# --- the wire (common/wire.h) ---

_VERSION = 1
_HDR = struct.Struct(">IBBHI")          # length, version, op, status, id
_FRAME_MAX = 65536                      # a whole frame, length field included
_OPS = {1: "info", 2: "keys", 3: "pubkey", 4: "unwrap", 5: "wrap", 6: "copp-sign",
        7: "copp-open", 8: "stats", 9: "keygen", 10: "import"}
_OP_CODE = {name: code for code, name in _OPS.items()}
_U8, _U32, _U64, _BYTES, _STR, _GROUP = range(6)
# tag: (NAME, type, maximum length)
_TAGS = {
    1: ("NAME", _STR, 64), 2: ("BLOB", _BYTES, 2060), 3: ("PADDING", _U8, 1),
    4: ("ALG_ID", _U32, 4), 5: ("SESSION_KEY", _BYTES, 32), 6: ("PUBLIC_KEY", _BYTES, 60000),
    7: ("FORMAT", _U8, 1), 8: ("KEY_BITS", _U32, 4), 9: ("RANDOM", _BYTES, 16),
    10: ("AES_KEY", _BYTES, 16), 11: ("STATUS_SEQ", _U32, 4), 12: ("COMMAND_SEQ", _U32, 4),
    13: ("SIGNATURE", _BYTES, 256), 14: ("MESSAGE", _STR, 1024), 15: ("VERSION", _STR, 64),
    16: ("TOKEN_LABEL", _STR, 32), 17: ("KEY_COUNT", _U32, 4), 18: ("WORKER_COUNT", _U32, 4),
    19: ("UPTIME", _U64, 8), 20: ("KEY_ENTRY", _GROUP, 60000), 21: ("LABEL", _STR, 256),
    22: ("ID", _BYTES, 255), 23: ("BITS", _U32, 4), 24: ("EXPONENT", _U64, 8),
    25: ("FLAGS", _U32, 4), 26: ("NOTICE", _STR, 1024), 27: ("MECHANISM", _STR, 8),
    28: ("HSM_ENTRY", _GROUP, 4096), 29: ("STATE", _STR, 16), 30: ("IN_FLIGHT", _U32, 4),
    31: ("FAULTS", _U64, 8), 32: ("LAST_ERROR", _STR, 512),
    33: ("OP_ENTRY", _GROUP, 2048), 34: ("OP", _U8, 1), 35: ("STATUS_COUNTS", _BYTES, 1000),
    36: ("LATENCY_BOUNDS", _BYTES, 124), 37: ("LATENCY_BUCKETS", _BYTES, 256),
    38: ("LATENCY_SUM", _U64, 8), 39: ("CONNECTIONS", _U32, 4), 40: ("ACCEPTED", _U64, 8),
    41: ("REFUSED", _U64, 8), 42: ("POOL_ENTRY", _GROUP, 256), 43: ("QUEUED", _U32, 4),
    44: ("RECIPIENT_HITS", _U64, 8), 45: ("RECIPIENT_MISSES", _U64, 8), 46: ("RECIPIENTS", _U32, 4),
    50: ("PRIVATE_KEY", _BYTES, 32768),
}
_T = {name: tag for tag, (name, _, _) in _TAGS.items()}
_FIXED = {_U8: 1, _U32: 4, _U64: 8}
_FLAG_STRICT = 1
_PUBLIC_KEY_MAX = 60000
_BLOB_MAX = 2060
_KEY_MAX = 32
_NAME_MAX = 64
_PRIVATE_KEY_MAX = 32768

_FORMATS = {"blob": 0, "pem": 1, "der": 2}

# CryptoAPI session-key algorithms (common/alg.c): id -> (name, min bytes, max bytes)
ALGS = collections.OrderedDict([
    (0x6602, ("CALG_RC2", 5, 16)),
    (0x6801, ("CALG_RC4", 5, 16)),
    (0x6601, ("CALG_DES", 8, 8)),
    (0x6609, ("CALG_3DES_112", 16, 16)),
    (0x6603, ("CALG_3DES", 24, 24)),
    (0x660e, ("CALG_AES_128", 16, 16)),
    (0x660f, ("CALG_AES_192", 24, 24)),
    (0x6610, ("CALG_AES_256", 32, 32)),
])
_CALG_RSA_KEYX = 0xa400


def _field(tag, value):
    return struct.pack(">HH", tag, len(value)) + value


def _u8(tag, v):
    return _field(tag, struct.pack(">B", v))


def _u32(tag, v):
    return _field(tag, struct.pack(">I", v))


class _WireError(Exception):
    pass


def _parse_fields(body):
    """tag -> value (first occurrence), refusing what wire_parse_answer refuses.

    Unknown tags are skipped: a newer daemon may add fields to its answers."""
    out, off, n = {}, 0, len(body)
    while off < n:
        at = off
        if n - at < 4:
            raise _WireError("field header truncated at byte %d of the body" % at)
        tag, length = struct.unpack_from(">HH", body, at)
        if n - at - 4 < length:
            if tag in _TAGS:
                raise _WireError("field %s truncated at byte %d of the body" % (_TAGS[tag][0], at))
            raise _WireError("field UNKNOWN (tag %d) truncated at byte %d of the body" % (tag, at))
        value = body[at + 4:at + 4 + length]
        off = at + 4 + length
        if tag not in _TAGS:
            continue
        name, typ, maxlen = _TAGS[tag]
        if (length != _FIXED[typ]) if typ in _FIXED else (length > maxlen):
            raise _WireError("field %s has a bad length (%d)" % (name, length))
        if typ == _STR and b"\0" in value:
            raise _WireError("field %s contains a NUL byte" % name)
        if tag in out and typ != _GROUP:
            raise _WireError("field %s given twice" % name)
        out.setdefault(tag, value)
    return out


def _all_fields(body, tag):
    """Every value of tag in a body already accepted by _parse_fields, in order."""
    off, vals = 0, []
    while off < len(body):
        t, length = struct.unpack_from(">HH", body, off)
        if t == tag:
            vals.append(body[off + 4:off + 4 + length])
        off += 4 + length
    return vals


# --- argument checks and encoding (client/lib/request.c) ---

def _arg(message):
    return KeytransError(ERR_ARG, message)


def _check_bytes(v, what):
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise _arg("%s must be bytes" % what)
    return bytes(v)


def _name(name):
    if isinstance(name, str):
        raw = name.encode("utf-8", "surrogateescape")
    elif isinstance(name, (bytes, bytearray)):
        raw = bytes(name)
    else:
        raw = None
    if not raw or len(raw) > _NAME_MAX or b"\0" in raw:
        raise _arg("key name must be 1 to 64 bytes")
    return raw


def _u32_arg(v, what):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xffffffff:
        raise _arg("%s must be an integer from 0 to 4294967295" % what)
    return v


def _padding(oaep):
    if oaep not in (False, True, 0, 1):
        raise _arg("unknown padding")
    return 1 if oaep else 0


def _strtoul(s):
    """C's strtoul(s, &end, 0) when it consumes all of s (s starts with a digit), else None."""
    if s[:2] in (b"0x", b"0X") and len(s) > 2:
        digits, base, ok = s[2:], 16, b"0123456789abcdefABCDEF"
    elif s[:1] == b"0":
        digits, base, ok = s, 8, b"01234567"
    else:
        digits, base, ok = s, 10, b"0123456789"
    if not digits or any(c not in ok for c in digits):
        return None
    return int(digits, base)


def _alg_matches(user, calg):
    bare = calg[len("CALG_"):]
    if user[:5].upper() in (b"CALG_", b"CALG-"):
        user = user[5:]
    return user.replace(b"-", b"_").upper() == bare


def alg_id(spelling):
    """The ALG_ID of a session-key algorithm as the keytrans CLI spells it: "AES_128",
    "CALG_AES_128", "aes-128", "0x660e", "26126"... (common/alg.c). ERR_ARG if unknown."""
    if isinstance(spelling, int) and not isinstance(spelling, bool):
        if spelling in ALGS:
            return spelling
        raise _arg("unknown algorithm %r" % spelling)
    if not isinstance(spelling, str):
        raise _arg("an algorithm is a name or a number")
    raw = spelling.encode("utf-8", "surrogateescape")
    if raw and b"\0" not in raw:
        if raw[:1].isdigit():
            v = _strtoul(raw)
            if v is not None:
                if v in ALGS:
                    return v
                raise _arg("unknown algorithm '%s'" % spelling)
        for aid, (calg, _, _) in ALGS.items():
            if _alg_matches(raw, calg.encode()):
                return aid
    raise _arg("unknown algorithm '%s'" % spelling)


def alg_name(aid):
    """"CALG_AES_128" for 0x660e; None for an unknown ALG_ID."""
    a = ALGS.get(aid)
    return a[0] if a else None


def _alg_arg(alg):
    if isinstance(alg, str):
        return alg_id(alg)
    return _u32_arg(alg, "ALG_ID")


def _recipient(to_key, to_pub):
    if (to_key is None) == (to_pub is None):
        raise _arg("give exactly one recipient: a key name or a public key")
    if to_key is not None:
        return _field(_T["NAME"], _name(to_key))
    pub = _check_bytes(to_pub, "public key")
    if not 0 < len(pub) <= _PUBLIC_KEY_MAX:
        raise _arg("public key must be 1 to 60000 bytes")
    return _field(_T["PUBLIC_KEY"], pub)


# --- COPP XML certificate chains (client/lib/coppcert.c) ---

_NOT_COPP = "not a COPP certificate collection: "
_XML_SPACE = b" \t\r\n"
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_COPP_BITS = 2048


def is_xml(data):
    """True when data looks like XML: '<' first, after an optional UTF-8 BOM and white space
    (kt_is_xml)."""
    data = bytes(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.lstrip(_XML_SPACE)[:1] == b"<"


class _Element:
    __slots__ = ("name", "children", "text")

    def __init__(self, name):
        self.name, self.children, self.text = name, [], []


class _Doctype(Exception):
    pass


def _not_copp(message):
    return KeytransError(BAD_PUBLIC_KEY, _NOT_COPP + message)


def _base64_ok(t):
    """Whole groups of the standard alphabet, '=' padding only at the end (client/lib/base64.c)."""
    body = t.rstrip(b"=")
    return len(t) % 4 == 0 and len(t) - len(body) <= 2 and all(c in _B64_ALPHABET for c in body)


def _xml_tree(xml):
    """The document element; refuses any DOCTYPE before expat reads what it declares, so no
    entity is ever expanded or fetched. Names lose their namespace."""
    # Imported on first use: the client itself needs only the modules at the top.
    from xml.parsers import expat

    top = _Element(None)
    stack = [top]

    def start(name, attrs):
        e = _Element(name.rpartition("}")[2])     # "URI}local": no NameChar is '}'
        stack[-1].children.append(e)
        stack.append(e)

    def doctype(*args):
        raise _Doctype()

    p = expat.ParserCreate(namespace_separator="}")    # an unbound prefix is refused
    p.StartElementHandler = start
    p.EndElementHandler = lambda name: stack.pop()
    p.CharacterDataHandler = lambda data: stack[-1].text.append(data)
    p.StartDoctypeDeclHandler = doctype
    p.EntityDeclHandler = doctype
    try:
        p.Parse(xml, True)
    except _Doctype:
        raise _not_copp("a DOCTYPE (DTD) is not allowed") from None
    except expat.ExpatError as e:
        raise _not_copp("XML error at line %d: %s" % (e.lineno, expat.ErrorString(e.code))) \
            from None
    return top.children[0]


def _only_child(parent, name):
    """The one child element called name: (element, 1), (None, 0) or (None, -1) for several."""
    found = [c for c in parent.children if c.name == name]
    if len(found) == 1:
        return found[0], 1
    return None, -1 if found else 0


def _walk(node, path):
    """(element, r, where): r as _only_child's for each step, where the path so far."""
    r = 1
    for i, name in enumerate(path):
        node, r = _only_child(node, name)
        if r != 1:
            return None, r, "/".join(path[:i + 1])
    return node, 1, "/".join(path)


def _element_text(e):
    """An element's text; None when it holds elements too."""
    return None if e.children else "".join(e.text)


def _number(e, what, cap):
    """A big-endian number from base64 (XML white space skipped), leading zeros dropped."""
    text = _element_text(e)
    raw = None
    if text is not None:
        t = bytes(b for b in text.encode("utf-8", "surrogateescape") if b not in _XML_SPACE)
        if _base64_ok(t):
            import binascii     # on first use, as expat
            raw = binascii.a2b_base64(t)
    if raw is None or len(raw) > cap:
        raise _not_copp("the leaf's %s is not base64 of at most %d bytes" % (what, cap))
    raw = raw.lstrip(b"\0")
    if not raw:
        raise _not_copp("the leaf's %s is zero" % what)
    return raw


def _rsa_field(leaf, field):
    e, r, where = _walk(leaf, ("Data", "PublicKey", "KeyValue", "RSAKeyValue", field))
    if r != 1:
        raise _not_copp("the leaf certificate has %s %s" % ("no" if r == 0 else "more than one",
                                                             where))
    return e


def _encrypt_key_usage(leaf):
    e, r, where = _walk(leaf, ("Data", "KeyUsage", "EncryptKey"))
    if r < 0:
        raise _not_copp("the leaf certificate has more than one %s" % where)
    text = _element_text(e) if r == 1 else None
    if text is None or text.strip(" \t\r\n") != "1":
        raise KeytransError(BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey")


def copp_cert_key(xml):
    """A COPP driver's XML certificate chain (CertificateCollection, leaf first) to its leaf's
    RSA key as a PUBLICKEYBLOB, for copp_sign(to_pub=...), as kt_copp_cert_key() does it.
    The leaf must hold a 2048-bit key and KeyUsage EncryptKey; signatures are not checked.
    KeytransError BAD_PUBLIC_KEY or KEY_SIZE says what is wrong."""
    xml = _check_bytes(xml, "certificate chain")
    if not 0 < len(xml) <= COPP_CERT_MAX:
        raise _not_copp("%d bytes; 1 to %d are accepted" % (len(xml), COPP_CERT_MAX))
    root = _xml_tree(xml)
    if root.name != "CertificateCollection":
        raise _not_copp("the root element is <%s>, not <CertificateCollection>" % root.name[:40])
    leaf = next((c for c in root.children if c.name == "Certificate"), None)
    if leaf is None:
        raise _not_copp("it holds no Certificate")
    mod, exp = _rsa_field(leaf, "Modulus"), _rsa_field(leaf, "Exponent")
    n, e = _number(mod, "Modulus", 2048), _number(exp, "Exponent", 8)
    bits = (len(n) - 1) * 8 + n[0].bit_length()
    if bits != _COPP_BITS:
        raise KeytransError(KEY_SIZE, "leaf certificate's key is %d-bit; COPP needs %d"
                            % (bits, _COPP_BITS))
    if len(e) > 4:
        raise KeytransError(BAD_PUBLIC_KEY,
                            "leaf certificate's public exponent is longer than 32 bits")
    _encrypt_key_usage(leaf)
    return struct.pack("<BBHI4sII", 6, 2, 0, 0xa400, b"RSA1", _COPP_BITS,
                       int.from_bytes(e, "big")) + n[::-1]


# --- results ---

Info = collections.namedtuple(
    "Info", "version token_label key_count worker_count uptime notice hsms", defaults=((),))
Info.__doc__ = ("info(): key_count counts the keys this peer may use; notice is '' or a warning; "
                "hsms the daemon's HSMs (at most 16).")
Hsm = collections.namedtuple("Hsm", "name token_label state in_flight faults last_error")
Hsm.__doc__ = "One HSM in info(): state 'up' or 'down'; last_error '' when none."
Key = collections.namedtuple("Key", "name label id bits exponent mechanism notice",
                             defaults=("",))
Key.__doc__ = ("One key of keys(): label '' and id b'' when the token object has none; notice "
               "'' or how the private key can leave the HSM.")
SessionKey = collections.namedtuple("SessionKey", "alg_id key")
Wrapped = collections.namedtuple("Wrapped", "blob key")
Wrapped.__doc__ = "wrap(): the SIMPLEBLOB and the session key (given or generated)."
Copp = collections.namedtuple("Copp", "signature random aes_key status_seq command_seq")
Copp.__doc__ = "COPP session start values; signature is None for copp_open()."
Stats = collections.namedtuple(
    "Stats", "uptime connections accepted refused bounds_us ops pools hsms recipient_hits "
    "recipient_misses recipients", defaults=(None, None, None))
Stats.__doc__ = ("stats(): connections open now, accepted and refused since the start; "
                 "bounds_us the latency buckets' upper bounds (microseconds); ops the "
                 "OpStats of each operation; pools the worker pools; hsms as in info(); "
                 "recipient_hits and recipient_misses the PUBLIC_KEY recipients found in the "
                 "daemon's cache and decoded, recipients the cache's entries now (all three "
                 "None from a daemon that does not send them).")
OpStats = collections.namedtuple("OpStats", "op name count by_status buckets latency_sum_ns")
OpStats.__doc__ = ("One operation in stats(): op its code (0: unknown codes), by_status "
                   "{status code: answers}, buckets the answers per latency bucket (not "
                   "cumulative; one more than bounds_us, the last above the last bound).")
Pool = collections.namedtuple("Pool", "name workers queued in_flight")
Pool.__doc__ = "A worker pool in stats(): jobs waiting for a worker, and handed to it unanswered."
NewKey = collections.namedtuple("NewKey", "name label id bits exponent public_key")
NewKey.__doc__ = ("keygen() and import_key(): the new key's CKA_LABEL and CKA_ID (what its "
                  "[key NAME] section needs) and its public key, DER SubjectPublicKeyInfo.")


def _bad(message):
    return KeytransError(ERR_PROTOCOL, "malformed response: " + message)


def _missing(tag):
    return _bad("%s field missing or of the wrong size" % _TAGS[tag][0])


def _get(m, name, size=None):
    tag = _T[name]
    v = m.get(tag)
    if v is None or (size is not None and len(v) != size):
        raise _missing(tag)
    return v


def _num(m, name):
    return int.from_bytes(_get(m, name), "big")


def _text(v):
    return v.decode("utf-8", "replace")


def _opt_text(m, name):
    v = m.get(_T[name])
    return "" if v is None else _text(v)


_HSMS_MAX = 16


def _dec_hsm(g):
    try:
        e = _parse_fields(g)
    except _WireError as w:
        raise _bad("HSM entry: %s" % w)
    try:
        return Hsm(_text(_get(e, "NAME")), _text(_get(e, "TOKEN_LABEL")), _text(_get(e, "STATE")),
                   _num(e, "IN_FLIGHT"), _num(e, "FAULTS"), _opt_text(e, "LAST_ERROR"))
    except KeytransError:
        raise _bad("HSM entry lacks a field")


def _dec_info(m, body):
    info = Info(_text(_get(m, "VERSION")), _text(_get(m, "TOKEN_LABEL")), _num(m, "KEY_COUNT"),
                _num(m, "WORKER_COUNT"), _num(m, "UPTIME"), _opt_text(m, "NOTICE"))
    hsms = tuple(_dec_hsm(g) for g in _all_fields(body, _T["HSM_ENTRY"])[:_HSMS_MAX])
    return info._replace(hsms=hsms)


_STATS_OPS_MAX, _STATS_POOLS_MAX, _BOUNDS_MAX = 16, 4, 31


def _dec_bounds(v):
    """LATENCY_BOUNDS: 1 to 31 u32, strictly ascending (common/metrics.c)."""
    if not v or len(v) % 4 or len(v) // 4 > _BOUNDS_MAX:
        raise _bad("malformed LATENCY_BOUNDS")
    b = struct.unpack(">%dI" % (len(v) // 4), v)
    if any(x >= y for x, y in zip(b, b[1:])):
        raise _bad("malformed LATENCY_BOUNDS")
    return b


def _dec_counts(v, name):
    """STATUS_COUNTS: u16 status + u64 count entries, statuses strictly ascending."""
    if len(v) % 10:
        raise _bad("%s: malformed STATUS_COUNTS" % name)
    counts = dict(struct.unpack_from(">HQ", v, i) for i in range(0, len(v), 10))
    codes = [struct.unpack_from(">H", v, i)[0] for i in range(0, len(v), 10)]
    if any(x >= y for x, y in zip(codes, codes[1:])) or sum(counts.values()) >= 1 << 64:
        raise _bad("%s: malformed STATUS_COUNTS" % name)
    return counts


def _dec_op_stats(g, nbounds):
    try:
        e = _parse_fields(g)
    except _WireError as w:
        raise _bad("operation entry: %s" % w)
    try:
        op, counts, lat, total = (_num(e, "OP"), _get(e, "STATUS_COUNTS"),
                                  _get(e, "LATENCY_BUCKETS"), _num(e, "LATENCY_SUM"))
    except KeytransError:
        raise _bad("operation entry lacks a field")
    name = _OPS.get(op, "unknown")
    by_status = _dec_counts(counts, name)
    if len(lat) != 8 * (nbounds + 1):
        raise _bad("%s: LATENCY_BUCKETS does not hold %d counts" % (name, nbounds + 1))
    buckets = struct.unpack(">%dQ" % (nbounds + 1), lat)
    count = sum(by_status.values())
    if sum(buckets) >= 1 << 64:
        raise _bad("%s: latency buckets overflow" % name)
    if sum(buckets) != count:
        raise _bad("%s: latency buckets add up to %d, not the count %d"
                   % (name, sum(buckets), count))
    return OpStats(op, name, count, by_status, buckets, total)


def _dec_pool(g):
    try:
        e = _parse_fields(g)
    except _WireError as w:
        raise _bad("pool entry: %s" % w)
    try:
        return Pool(_text(_get(e, "NAME")), _num(e, "WORKER_COUNT"), _num(e, "QUEUED"),
                    _num(e, "IN_FLIGHT"))
    except KeytransError:
        raise _bad("pool entry lacks a field")


def _dec_stats(m, body):
    try:
        head = [_num(m, n) for n in ("UPTIME", "CONNECTIONS", "ACCEPTED", "REFUSED")]
        bounds = _get(m, "LATENCY_BOUNDS")
    except KeytransError:
        raise _bad("stats answer lacks a field")
    bounds = _dec_bounds(bounds)
    ops = []
    for g in _all_fields(body, _T["OP_ENTRY"]):
        o = _dec_op_stats(g, len(bounds))
        if any(x.op == o.op for x in ops):
            raise _bad("operation %d reported twice" % o.op)
        if len(ops) < _STATS_OPS_MAX:     # as libkeytrans: the first 16 are kept
            ops.append(o)
    pools = tuple(_dec_pool(g) for g in _all_fields(body, _T["POOL_ENTRY"])[:_STATS_POOLS_MAX])
    hsms = tuple(_dec_hsm(g) for g in _all_fields(body, _T["HSM_ENTRY"])[:_HSMS_MAX])
    recipients = [_num(m, n) if _T[n] in m else None
                  for n in ("RECIPIENT_HITS", "RECIPIENT_MISSES", "RECIPIENTS")]
    return Stats(*head, bounds, tuple(ops), pools, hsms, *recipients)


def _dec_keys(m, body):
    keys = []
    for g in _all_fields(body, _T["KEY_ENTRY"]):
        try:
            e = _parse_fields(g)
        except _WireError as w:
            raise _bad("key entry: %s" % w)
        name = _text(_get(e, "NAME"))
        label = _opt_text(e, "LABEL")
        kid = e.get(_T["ID"], b"")
        keys.append(Key(name, label, kid, _num(e, "BITS"), _num(e, "EXPONENT"),
                        _opt_text(e, "MECHANISM"), _opt_text(e, "NOTICE")))
    return keys


def _pubkey_decoder(fmt):
    def dec(m, body):
        p = _get(m, "PUBLIC_KEY")
        if fmt == 0:
            ok = len(p) > 20 and p[0] == 0x06
        elif fmt == 1:
            ok = len(p) > 12 and p.startswith(b"-----BEGIN ")
        else:
            ok = len(p) > 2 and p[0] == 0x30
        if not ok:
            raise _bad("PUBLIC_KEY is not in the requested format")
        return p
    return dec


def _session_key(m):
    aid = _num(m, "ALG_ID")
    a = ALGS.get(aid)
    if a is None:
        raise _bad("unknown ALG_ID 0x%x" % aid)
    key = _get(m, "SESSION_KEY")
    if not a[1] <= len(key) <= a[2]:
        raise _bad("%d-byte session key for %s" % (len(key), a[0]))
    return SessionKey(aid, key)


def _dec_unwrap(m, body):
    return _session_key(m)


def _simpleblob_ok(p, aid):
    if not 12 < len(p) <= _BLOB_MAX:
        return False
    btype, version, reserved, alg, wrap_alg = struct.unpack_from("<BBHII", p, 0)
    return (btype, version, reserved, alg, wrap_alg) == (1, 2, 0, aid, _CALG_RSA_KEYX)


def _wrap_decoder(aid, key, bits):
    def dec(m, body):
        got = m.get(_T["ALG_ID"])
        if got is None or int.from_bytes(got, "big") != aid:
            raise _bad("ALG_ID missing or not the one requested")
        blob = m.get(_T["BLOB"])
        if blob is None or not _simpleblob_ok(blob, aid):
            raise _bad("BLOB missing or not a SIMPLEBLOB for the ALG_ID")
        if key is not None:
            if _T["SESSION_KEY"] in m:
                raise _bad("SESSION_KEY returned for a key the caller gave")
            return Wrapped(blob, key)
        sk = _session_key(m)
        if bits and len(sk.key) * 8 != bits:
            raise _bad("generated key is %d bits, %d were asked" % (len(sk.key) * 8, bits))
        return Wrapped(blob, sk.key)
    return dec


def _copp_common(m, signature):
    return Copp(signature, _get(m, "RANDOM", 16), _get(m, "AES_KEY", 16), _num(m, "STATUS_SEQ"),
                _num(m, "COMMAND_SEQ"))


def _copp_sign_decoder(random, aes_key, status_seq, command_seq):
    def dec(m, body):
        c = _copp_common(m, None)
        c = c._replace(signature=_get(m, "SIGNATURE", 256))
        if (c.random != random or (aes_key is not None and c.aes_key != aes_key) or
                (status_seq is not None and c.status_seq != status_seq) or
                (command_seq is not None and c.command_seq != command_seq)):
            raise _bad("returned values differ from the ones given")
        return c
    return dec


def _copp_open_decoder(expect):
    def dec(m, body):
        c = _copp_common(m, None)
        if expect is not None and c.random != expect:
            raise _bad("RANDOM differs from the expected one")
        return c
    return dec


# --- requests: (op code, fields, decoder), checked before anything is sent ---

def _req_info():
    return 1, b"", _dec_info


def _req_stats():
    return 8, b"", _dec_stats


def _req_keys():
    return 2, b"", _dec_keys


def _req_pubkey(name, format="blob"):
    n = _name(name)
    if isinstance(format, str) and format.lower() in _FORMATS:
        fmt = _FORMATS[format.lower()]
    elif isinstance(format, int) and not isinstance(format, bool) and format in (0, 1, 2):
        fmt = format
    else:
        raise _arg("unknown public key format")
    return 3, _field(_T["NAME"], n) + _u8(_T["FORMAT"], fmt), _pubkey_decoder(fmt)


def _req_unwrap(name, blob, oaep=False, strict=False):
    n = _name(name)
    b = _check_bytes(blob, "SIMPLEBLOB")
    if len(b) > _BLOB_MAX:
        raise _arg("SIMPLEBLOB must be at most 2060 bytes")
    f = _field(_T["NAME"], n) + _field(_T["BLOB"], b) + _u8(_T["PADDING"], _padding(oaep))
    if strict:
        f += _u32(_T["FLAGS"], _FLAG_STRICT)
    return 4, f, _dec_unwrap


def _req_wrap(alg, key=None, bits=None, to_key=None, to_pub=None, oaep=False):
    pad = _padding(oaep)
    aid = _alg_arg(alg)
    f = _u32(_T["ALG_ID"], aid)
    bits = 0 if bits is None else _u32_arg(bits, "bits")
    if key is None:
        if bits:
            f += _u32(_T["KEY_BITS"], bits)
    else:
        if bits:
            raise _arg("gen_bits is only for a generated key")
        key = _check_bytes(key, "session key")
        if not 0 < len(key) <= _KEY_MAX:
            raise _arg("session key must be 1 to 32 bytes")
        f += _field(_T["SESSION_KEY"], key)
    f += _recipient(to_key, to_pub) + _u8(_T["PADDING"], pad)
    return 5, f, _wrap_decoder(aid, key, bits)


def _req_copp_sign(random, to_key=None, to_pub=None, aes_key=None, status_seq=None,
                   command_seq=None):
    if to_key is None and isinstance(to_pub, (bytes, bytearray, memoryview)) and is_xml(to_pub):
        to_pub = copp_cert_key(to_pub)      # the daemon reads no XML
    f = _recipient(to_key, to_pub)
    random = _check_bytes(random, "random")
    if len(random) != 16:
        raise _arg("random must be 16 bytes")
    f += _field(_T["RANDOM"], random)
    if aes_key is not None:
        aes_key = _check_bytes(aes_key, "AES key")
        if len(aes_key) != 16:
            raise _arg("AES key must be 16 bytes")
        f += _field(_T["AES_KEY"], aes_key)
    if status_seq is not None:
        f += _u32(_T["STATUS_SEQ"], _u32_arg(status_seq, "status_seq"))
    if command_seq is not None:
        f += _u32(_T["COMMAND_SEQ"], _u32_arg(command_seq, "command_seq"))
    return 6, f, _copp_sign_decoder(random, aes_key, status_seq, command_seq)


def _req_copp_open(name, signature, expect_random=None, strict=False):
    n = _name(name)
    if signature is None:
        raise _arg("no signature given")
    sig = _check_bytes(signature, "signature")
    if len(sig) != 256:
        raise _arg("signature must be 256 bytes")
    f = _field(_T["NAME"], n) + _field(_T["SIGNATURE"], sig)
    if expect_random is not None:
        expect_random = _check_bytes(expect_random, "expected random")
        if len(expect_random) != 16:
            raise _arg("expected random must be 16 bytes")
        f += _field(_T["RANDOM"], expect_random)
    if strict:
        f += _u32(_T["FLAGS"], _FLAG_STRICT)
    return 7, f, _copp_open_decoder(expect_random)


def _dec_new_key(name):
    def dec(m, body):
        got = _text(_get(m, "NAME"))
        if got != name:
            raise _bad("NAME missing or not the one requested")
        kid = _get(m, "ID")
        pub = _get(m, "PUBLIC_KEY")
        if not kid or len(pub) < 3 or pub[0] != 0x30:
            raise _bad("PUBLIC_KEY missing or not a DER public key")
        return NewKey(got, _text(_get(m, "LABEL")), kid, _num(m, "BITS"), _num(m, "EXPONENT"),
                      pub)
    return dec


def _req_keygen(name, bits=None, exponent=None):
    n = _name(name)
    f = _field(_T["NAME"], n)
    if bits is not None:
        f += _u32(_T["BITS"], _u32_arg(bits, "bits"))
    if exponent is not None:
        if isinstance(exponent, bool) or not isinstance(exponent, int) or \
                not 0 < exponent < 1 << 64:
            raise _arg("exponent must be a positive 64-bit number")
        f += _field(_T["EXPONENT"], struct.pack(">Q", exponent))
    return 9, f, _dec_new_key(_text(n))


def _req_import(name, key):
    n = _name(name)
    key = _check_bytes(key, "private key")
    if not 0 < len(key) <= _PRIVATE_KEY_MAX:
        raise _arg("private key must be 1 to 32768 bytes")
    return 10, _field(_T["NAME"], n) + _field(_T["PRIVATE_KEY"], key), _dec_new_key(_text(n))


_REQUESTS = {
    "info": _req_info, "keys": _req_keys, "pubkey": _req_pubkey, "unwrap": _req_unwrap,
    "wrap": _req_wrap, "copp_sign": _req_copp_sign, "copp-sign": _req_copp_sign,
    "copp_open": _req_copp_open, "copp-open": _req_copp_open,
}


class Op:
    """One operation for Connection.batch(): Op("unwrap", "rsa2048", blob, strict=True).
    A plain tuple ("unwrap", "rsa2048", blob) works too."""

    __slots__ = ("name", "args", "kwargs")

    def __init__(self, name, *args, **kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs

    def __repr__(self):
        return "Op(%r, %d args, %r)" % (self.name, len(self.args), sorted(self.kwargs))


class BatchResults(list):
    """batch()'s answer: a list of results and errors; .error is what ended the batch early."""

    error = None


def _build(op):
    if isinstance(op, Op):
        name, args, kwargs = op.name, op.args, op.kwargs
    elif isinstance(op, (tuple, list)) and op:
        name, args, kwargs = op[0], tuple(op[1:]), {}
    else:
        raise _arg("an operation is an Op or a tuple (name, args...)")
    make = _REQUESTS.get(name) if isinstance(name, str) else None
    if make is None:
        raise _arg("unknown item operation %r" % (name,))
    try:
        return make(*args, **kwargs)
    except TypeError as e:
        raise _arg("%s: %s" % (name, e))


# --- the connection ---

_WAITING, _DONE, _ABANDONED = range(3)


class _Pending:
    __slots__ = ("id", "op", "decode", "state", "seq", "result", "error")

    def __init__(self, rid, op, decode):
        self.id, self.op, self.decode = rid, op, decode
        self.state, self.seq, self.result, self.error = _WAITING, 0, None, None


def _socket_path(path):
    if path:
        return path
    return os.environ.get("KEYTRANS_SOCKET") or DEFAULT_SOCKET


class Connection:
    """One connection to keytransd. timeout: seconds for each call (batch: for each wait);
    None or 0 waits forever. path None: $KEYTRANS_SOCKET, else DEFAULT_SOCKET."""

    def __init__(self, path=None, timeout=DEFAULT_TIMEOUT, connect=True):
        self._sock = None
        self._path = None       # the socket of the last connect(); None once close()d
        self.reconnect = True   # as kt_set_reconnect: see _run
        self._rx = bytearray()
        self._pending = {}
        self._next_id = 1
        self._done_seq = 0
        self.timeout = timeout
        if connect:
            self.connect(path)

    # -- setup --

    @property
    def timeout(self):
        return None if self._timeout_ms == 0 else self._timeout_ms / 1000.0

    @timeout.setter
    def timeout(self, seconds):
        if seconds is None or seconds <= 0:
            self._timeout_ms = 0
        else:
            self._timeout_ms = max(1, int(round(seconds * 1000)))

    def set_timeout(self, seconds):
        """The limit for each call, in seconds; None or 0 waits forever."""
        self.timeout = seconds

    @property
    def connected(self):
        return self._sock is not None

    def connect(self, path=None):
        """(Re)connects, closing first; raises ERR_CONNECT, or ERR_TIMEOUT (full backlog)."""
        self.close()
        p = _socket_path(path)
        self._open(p)
        self._path = p

    def _open(self, p):
        self._drop()
        raw = os.fsencode(p)
        if len(raw) >= 108:
            raise KeytransError(ERR_CONNECT, "%s: socket path too long" % p)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(True)         # whatever socket.setdefaulttimeout() says
        except OSError as e:
            raise KeytransError(ERR_CONNECT, "socket: %s" % e.strerror)
        ms = self._timeout_ms
        try:
            # As libkeytrans: a blocking connect() bounded by SO_SNDTIMEO.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                         struct.pack("@ll", ms // 1000, (ms % 1000) * 1000))
            s.connect(raw)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("@ll", 0, 0))
            s.setblocking(False)
        except OSError as e:
            s.close()
            code = ERR_TIMEOUT if isinstance(e, BlockingIOError) else ERR_CONNECT
            raise KeytransError(code, "%s: %s" % (p, e.strerror or e))
        self._sock = s

    def close(self):
        """Closes the socket; requests still in flight are forgotten. No reconnecting
        after it."""
        self._path = None
        self._drop()

    def _drop(self):
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._fail_all(KeytransError(ERR_IO, "connection closed"))
        self._rx = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- operations --

    def info(self):
        """Info(version, token_label, key_count, worker_count, uptime, notice)."""
        return self._run(_req_info)

    def stats(self):
        """Stats(uptime, connections, accepted, refused, bounds_us, ops, pools, hsms,
        recipient_hits, recipient_misses, recipients): the daemon's counters since it
        started (anyone who may call info() may call it)."""
        return self._run(_req_stats)

    def keys(self):
        """[Key(name, label, id, bits, exponent, mechanism)] for the keys this peer may use."""
        return self._run(_req_keys)

    def pubkey(self, name, format="blob"):
        """The key's public half as bytes: "blob" (PUBLICKEYBLOB), "pem" or "der" (SPKI)."""
        return self._run(_req_pubkey, name, format)

    def unwrap(self, name, blob, oaep=False, strict=False):
        """SessionKey(alg_id, key) from a SIMPLEBLOB. strict: UNWRAP_FAILED instead of
        implicit rejection (only where the outcome reaches no other party)."""
        return self._run(_req_unwrap, name, blob, oaep, strict)

    def wrap(self, alg, key=None, bits=None, to_key=None, to_pub=None, oaep=False):
        """Wrapped(blob, key): key (or a generated one; bits for RC2/RC4) under exactly one
        of to_key (an HSM key's name) or to_pub (PUBLICKEYBLOB, PEM/DER SPKI or X.509).
        alg: an ALG_ID number, or a name as alg_id() reads it."""
        return self._run(_req_wrap, alg, key, bits, to_key, to_pub, oaep)

    def copp_sign(self, random, to_key=None, to_pub=None, aes_key=None, status_seq=None,
                  command_seq=None):
        """Copp(signature, random, aes_key, status_seq, command_seq) for a COPP session to an
        RSA-2048 key; what is not given is drawn by the daemon. to_pub may also be the
        driver's XML certificate chain: its leaf's key is taken here (copp_cert_key())."""
        return self._run(_req_copp_sign, random, to_key, to_pub, aes_key, status_seq,
                         command_seq)

    def copp_open(self, name, signature, expect_random=None, strict=False):
        """Copp(None, random, aes_key, status_seq, command_seq) from a 256-byte signature;
        RANDOM_MISMATCH when expect_random (16 bytes) differs."""
        return self._run(_req_copp_open, name, signature, expect_random, strict)

    def keygen(self, name, bits=None, exponent=None):
        """NewKey: an RSA key pair generated inside the HSM, never extractable, labelled name
        (bits 2048, 3072 or 4096, default 2048; exponent default 65537). [daemon] admin
        peers only. A 4096-bit key may take longer than the default timeout."""
        return self._run(_req_keygen, name, bits, exponent, retry=False)

    def import_key(self, name, key):
        """NewKey: the RSA private key in key (bytes: PEM PKCS#1 or PKCS#8, unencrypted; DER
        PKCS#8 or PKCS#1; or a PRIVATEKEYBLOB) put into the HSM as name. [daemon] admin
        peers only."""
        return self._run(_req_import, name, key, retry=False)

    def batch(self, ops, depth=DEFAULT_DEPTH):
        """Runs ops (Op objects or tuples (name, args...)) pipelined, up to depth (0: 32) in
        flight. Returns a list with one entry per op, in order: the result, or the
        KeytransError of that op (not raised). A connection failure or timeout ends the
        batch: the ops it left unfinished carry that error, also in the list's .error
        (None when the batch ran to its end)."""
        ops = list(ops)
        if depth is None or depth == 0:
            depth = DEFAULT_DEPTH
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise _arg("depth must be a positive integer")
        results = BatchResults([None] * len(ops))
        running = {}            # request id -> (index, entry)
        nxt = 0
        while nxt < len(ops) or running:
            while nxt < len(ops) and len(running) < depth:
                i = nxt
                nxt += 1
                try:
                    e = self._submit(self._deadline(), _build, ops[i])
                except KeytransError as err:
                    results[i] = err
                    # Refused before sending (a COPP certificate chain's key too): this op only.
                    if err.code in (ERR_ARG, ERR_NOMEM, BAD_PUBLIC_KEY, KEY_SIZE):
                        continue
                    return self._batch_fail(results, running, nxt, err)
                running[e.id] = (i, e)
            if not running:
                break
            try:
                e = self._wait(set(running), self._deadline())
            except KeytransError as err:
                return self._batch_fail(results, running, nxt, err)
            i, _ = running.pop(e.id)
            self._pending.pop(e.id, None)
            results[i] = e.error if e.error is not None else e.result
        return results

    # -- machinery (client/lib: batch.c, receive.c, transport.c, pending.c) --

    def _deadline(self):
        return None if self._timeout_ms == 0 else time.monotonic() + self._timeout_ms / 1000.0

    def _run(self, make, *args, retry=True):
        """Submits one request and waits for its answer (kt_*'s run_item). As
        libkeytrans: a call on a connection the daemon closed connects again first,
        and one that failed because the connection was lost (ERR_IO) or the daemon
        is stopping (SHUTTING_DOWN) is sent once more on a new connection, within the
        same time limit, when nothing else is in flight (every operation is
        idempotent, but keygen and import, which change the token: retry=False).
        reconnect = False turns both off."""
        deadline = self._deadline()      # one limit for sending, waiting and a retry
        try:
            return self._run_once(deadline, make, *args)
        except KeytransError as e:
            if not retry or not self._may_retry(e.code) or \
                    (deadline is not None and time.monotonic() >= deadline):
                raise
        self._open(self._path)
        return self._run_once(deadline, make, *args)

    def _may_retry(self, code):
        return self.reconnect and self._path is not None and not self._pending and \
            code in (ERR_IO, SHUTTING_DOWN)

    def _ensure(self):
        if self._sock is None and self.reconnect and self._path is not None and \
                not self._pending:
            self._open(self._path)

    def _run_once(self, deadline, make, *args):
        self._ensure()
        e = self._submit(deadline, make, *args)
        try:
            self._wait({e.id}, deadline)
        except KeytransError:
            self._abandon(e)
            raise
        self._pending.pop(e.id, None)
        if e.error is not None:
            raise e.error
        return e.result

    def _submit(self, deadline, make, *args):
        if self._sock is None:
            raise KeytransError(ERR_IO, "not connected to the daemon")
        op, fields, decode = make(*args)
        rid = self._next_id
        self._next_id = (self._next_id + 1) & 0xffffffff or 1     # 0 is never an id
        e = _Pending(rid, op, decode)
        self._pending[rid] = e
        body = struct.pack(">BBHI", _VERSION, op, 0, rid) + fields
        try:
            self._send(struct.pack(">I", len(body)) + body, deadline)
        except KeytransError:
            self._pending.pop(rid, None)
            raise
        return e

    def _abandon(self, e):
        """The caller gave up on e: its late answer will be dropped."""
        if self._pending.get(e.id) is not e:
            return
        if e.state == _DONE:
            del self._pending[e.id]
        else:
            e.state = _ABANDONED

    def _batch_fail(self, results, running, nxt, err):
        results.error = err
        for i in range(nxt, len(results)):
            results[i] = err
        for i, e in running.values():
            if e.state == _DONE:
                results[i] = e.error if e.error is not None else e.result
            else:
                results[i] = err
            self._abandon(e)
        return results

    def _fail_all(self, err):
        for e in self._pending.values():
            if e.state == _WAITING:
                e.error = err
        self._pending = {}

    def _fatal(self, code, message):
        err = KeytransError(code, message)
        self._fail_all(err)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._rx = bytearray()
        return err

    def _timed_out(self):
        return KeytransError(ERR_TIMEOUT, "no answer from the daemon within %d ms"
                             % self._timeout_ms)

    def _poll(self, events, deadline):
        """revents, or 0 when the deadline passed."""
        p = select.poll()
        p.register(self._sock, events)
        while True:
            ms = None
            if deadline is not None:
                ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            try:
                r = p.poll(ms)
            except OSError as e:
                raise self._fatal(ERR_IO, "poll: %s" % e.strerror)
            if r:
                return r[0][1]
            if deadline is not None and time.monotonic() >= deadline:
                return 0

    def _send(self, data, deadline):
        if self._sock is None:
            raise KeytransError(ERR_IO, "not connected to the daemon")
        sent, view = 0, memoryview(data)
        while sent < len(data):
            ev = self._poll(select.POLLOUT | select.POLLIN, deadline)
            if ev == 0 and sent > 0:
                raise self._fatal(ERR_TIMEOUT, "timed out in the middle of sending a request")
            if ev == 0:
                raise self._timed_out()
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR) and not ev & select.POLLOUT:
                self._drain()
                self._read_some()
                self._drain()
            if ev & select.POLLOUT:
                try:
                    sent += self._sock.send(view[sent:], socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    self._salvage()
                    raise self._fatal(ERR_IO, "send: %s" % e.strerror)

    def _salvage(self):
        """After a failed send: what the daemon wrote before it closed may say why (a BUSY
        answer to a connection over its limits); processing it raises that."""
        try:
            while True:
                chunk = self._sock.recv(_FRAME_MAX, socket.MSG_DONTWAIT)
                if not chunk:
                    break
                self._rx += chunk
        except OSError:
            pass
        self._drain()

    def _read_some(self):
        try:
            chunk = self._sock.recv(_FRAME_MAX, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            raise self._fatal(ERR_IO, "receive: %s" % e.strerror)
        if not chunk:
            raise self._fatal(ERR_IO, "the daemon closed the connection")
        self._rx += chunk

    def _recv(self, deadline):
        if self._sock is None:
            raise KeytransError(ERR_IO, "not connected to the daemon")
        ev = self._poll(select.POLLIN, deadline)
        if ev == 0:
            raise self._timed_out()
        self._read_some()

    def _next_frame(self):
        """The next complete frame (bytes), or None when more bytes are needed."""
        if len(self._rx) < 4:
            return None
        n = struct.unpack_from(">I", self._rx, 0)[0]
        if n > _FRAME_MAX - 4:
            raise self._fatal(ERR_PROTOCOL, "response frame of %d bytes exceeds the %d-byte limit"
                              % (n + 4, _FRAME_MAX))
        if n < 8:
            raise self._fatal(ERR_PROTOCOL, "response frame length %d is too small" % n)
        if len(self._rx) - 4 < n:
            return None
        raw = bytes(self._rx[:4 + n])
        del self._rx[:4 + n]
        return raw

    def _drain(self):
        while self._sock is not None:
            raw = self._next_frame()
            if raw is None:
                return
            self._process(raw)

    def _process(self, raw):
        _, version, op, status, rid = _HDR.unpack_from(raw, 0)
        if version != _VERSION:
            raise self._fatal(ERR_PROTOCOL, "response has protocol version %d, expected %d"
                              % (version, _VERSION))
        if op == 0 and status != OK:
            # An answer to no request: the daemon refused the connection (BUSY over a
            # connection limit) or the stream (BAD_FRAME), and closes it.
            try:
                msg = _parse_fields(raw[12:]).get(_T["MESSAGE"])
            except _WireError:
                msg = None
            raise self._fatal(status, "keytransd: %s" % (_text(msg) if msg else status_text(status)))
        e = self._pending.get(rid)
        if e is None or e.state == _DONE:
            raise self._fatal(ERR_PROTOCOL, "response (%s, status %s) to unknown request id %d"
                              % (_OPS.get(op, "unknown"), status_name(status), rid))
        if e.state == _ABANDONED:
            del self._pending[rid]
            return
        e.state = _DONE
        self._done_seq += 1
        e.seq = self._done_seq
        try:
            e.result = self._decode(e, op, status, raw[12:])
        except KeytransError as err:
            e.error = err

    @staticmethod
    def _decode(e, op, status, body):
        if op != e.op:
            raise _bad("answer for operation %s to a %s request"
                       % (_OPS.get(op, "unknown"), _OPS[e.op]))
        try:
            m = _parse_fields(body)
        except _WireError as w:
            if status != OK:
                raise KeytransError(status, status_text(status))
            raise _bad(str(w))
        if status != OK:
            msg = m.get(_T["MESSAGE"])
            raise KeytransError(status, _text(msg) if msg else status_text(status))
        return e.decode(m, body)

    def _wait(self, ids, deadline):
        """Processes frames until one of ids is answered; returns the earliest such entry."""
        while True:
            done = [self._pending[i] for i in ids
                    if i in self._pending and self._pending[i].state == _DONE]
            if done:
                return min(done, key=lambda e: e.seq)
            if self._sock is None:
                raise KeytransError(ERR_IO, "not connected to the daemon")
            raw = self._next_frame()
            if raw is not None:
                self._process(raw)
            else:
                self._recv(deadline)


def connect(path=None, timeout=DEFAULT_TIMEOUT):
    """A Connection to path (None: $KEYTRANS_SOCKET, else DEFAULT_SOCKET)."""
    return Connection(path, timeout)
