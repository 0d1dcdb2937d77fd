"""Building requests (client/lib/request.c): each operation's arguments checked and encoded
before anything is sent, with the decoder of its answer; Op and BatchResults for batch()."""
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from . import status as st
from .algs import alg_id
from .answers import (Decoder, copp_open_decoder, copp_sign_decoder, dec_info, dec_keys,
                      dec_none, dec_omac, dec_session_seq, dec_stats, dec_unwrap,
                      new_key_decoder, pubkey_decoder, sealed_decoder, text, wrap_decoder)
from .checks import arg_error, check_bytes, key_name, padding, u32_arg
from .copp_cert import copp_cert_key, is_xml
from .errors import KeytransError
from .results import Copp, Info, Key, NewKey, SessionKey, SessionSeq, Stats, Wrapped
from .wire import OP_CODE, T, field, u8, u32

R = TypeVar("R")
# (op code, the request's fields, the decoder of its answer)
Request = Tuple[int, bytes, Decoder[R]]

_FLAG_STRICT = 1
_FLAG_SEAL = 2
_DATA_MAX = 4096
_KINDS = {"none": 0, "status": 1, "command": 2}
_PUBLIC_KEY_MAX = 60000
_BLOB_MAX = 2060
_KEY_MAX = 32
_PRIVATE_KEY_MAX = 32768
_FORMATS = {"blob": 0, "pem": 1, "der": 2, "cng": 3}


def _recipient(to_key: Any, to_pub: Any) -> bytes:
    if (to_key is None) == (to_pub is None):
        raise arg_error("give exactly one recipient: a key name or a public key")
    if to_key is not None:
        return field(T["NAME"], key_name(to_key))
    pub = check_bytes(to_pub, "public key")
    if not 0 < len(pub) <= _PUBLIC_KEY_MAX:
        raise arg_error("public key must be 1 to 60000 bytes")
    return field(T["PUBLIC_KEY"], pub)


def _alg_arg(alg: Any) -> int:
    if isinstance(alg, str):
        return alg_id(alg)
    return u32_arg(alg, "ALG_ID")


def req_info() -> Request[Info]:
    return OP_CODE["info"], b"", dec_info


def req_stats() -> Request[Stats]:
    return OP_CODE["stats"], b"", dec_stats


def req_keys() -> Request[List[Key]]:
    return OP_CODE["keys"], b"", dec_keys


def req_pubkey(name: Any, format: Union[str, int] = "blob") -> Request[bytes]:
    n = key_name(name)
    if isinstance(format, str) and format.lower() in _FORMATS:
        fmt = _FORMATS[format.lower()]
    elif isinstance(format, int) and not isinstance(format, bool) and format in (0, 1, 2, 3):
        fmt = format
    else:
        raise arg_error("unknown public key format")
    return OP_CODE["pubkey"], field(T["NAME"], n) + u8(T["FORMAT"], fmt), pubkey_decoder(fmt)


def req_unwrap(name: Any, blob: Any, oaep: Any = False, strict: Any = False) -> Request[SessionKey]:
    n = key_name(name)
    b = check_bytes(blob, "SIMPLEBLOB")
    if len(b) > _BLOB_MAX:
        raise arg_error("SIMPLEBLOB must be at most 2060 bytes")
    f = field(T["NAME"], n) + field(T["BLOB"], b) + u8(T["PADDING"], padding(oaep))
    if strict:
        f += u32(T["FLAGS"], _FLAG_STRICT)
    return OP_CODE["unwrap"], f, dec_unwrap


def req_wrap(alg: Any, key: Any = None, bits: Any = None, to_key: Any = None, to_pub: Any = None,
             oaep: Any = False) -> Request[Wrapped]:
    pad = padding(oaep)
    aid = _alg_arg(alg)
    f = u32(T["ALG_ID"], aid)
    nbits = 0 if bits is None else u32_arg(bits, "bits")
    given = None
    if key is None:
        if nbits:
            f += u32(T["KEY_BITS"], nbits)
    else:
        if nbits:
            raise arg_error("gen_bits is only for a generated key")
        given = check_bytes(key, "session key")
        if not 0 < len(given) <= _KEY_MAX:
            raise arg_error("session key must be 1 to 32 bytes")
        f += field(T["SESSION_KEY"], given)
    f += _recipient(to_key, to_pub) + u8(T["PADDING"], pad)
    return OP_CODE["wrap"], f, wrap_decoder(aid, given, nbits)


def _bytes16(v: Any, what: str) -> bytes:
    b = check_bytes(v, what)
    if len(b) != 16:
        raise arg_error("%s must be 16 bytes" % what)
    return b


def req_copp_sign(random: Any, to_key: Any = None, to_pub: Any = None, aes_key: Any = None,
                  status_seq: Any = None, command_seq: Any = None) -> Request[Copp]:
    return _sign("copp-sign", random, to_key, to_pub, aes_key, status_seq, command_seq)


def req_opm_sign(random: Any, to_key: Any = None, to_pub: Any = None, aes_key: Any = None,
                 status_seq: Any = None, command_seq: Any = None) -> Request[Copp]:
    return _sign("opm-sign", random, to_key, to_pub, aes_key, status_seq, command_seq)


def _sign(op: str, random: Any, to_key: Any, to_pub: Any, aes_key: Any, status_seq: Any,
          command_seq: Any) -> Request[Copp]:
    """copp-sign and opm-sign: the same fields, only the operation differs."""
    if to_key is None and isinstance(to_pub, (bytes, bytearray, memoryview)) and is_xml(to_pub):
        to_pub = copp_cert_key(to_pub)      # the daemon reads no XML
    f = _recipient(to_key, to_pub)
    rnd = _bytes16(random, "random")
    f += field(T["RANDOM"], rnd)
    aes = None
    if aes_key is not None:
        aes = _bytes16(aes_key, "AES key")
        f += field(T["AES_KEY"], aes)
    if status_seq is not None:
        f += u32(T["STATUS_SEQ"], u32_arg(status_seq, "status_seq"))
    if command_seq is not None:
        f += u32(T["COMMAND_SEQ"], u32_arg(command_seq, "command_seq"))
    return OP_CODE[op], f, copp_sign_decoder(rnd, aes, status_seq, command_seq)


def req_copp_open(name: Any, signature: Any, expect_random: Any = None,
                  strict: Any = False, seal: Any = False) -> Request[Any]:
    """Copp, or Sealed with seal."""
    return _open("copp-open", name, signature, expect_random,
                 (_FLAG_STRICT if strict else 0) | (_FLAG_SEAL if seal else 0))


def req_opm_open(name: Any, signature: Any, expect_random: Any = None,
                 seal: Any = False) -> Request[Any]:
    """Copp, or Sealed with seal (OPM has no implicit rejection: no strict)."""
    return _open("opm-open", name, signature, expect_random, _FLAG_SEAL if seal else 0)


def _open(op: str, name: Any, signature: Any, expect_random: Any, flags: int) -> Request[Any]:
    n = key_name(name)
    if signature is None:
        raise arg_error("no signature given")
    sig = check_bytes(signature, "signature")
    if len(sig) != 256:
        raise arg_error("signature must be 256 bytes")
    f = field(T["NAME"], n) + field(T["SIGNATURE"], sig)
    expect = None
    if expect_random is not None:
        expect = _bytes16(expect_random, "expected random")
        f += field(T["RANDOM"], expect)
    if flags:
        f += u32(T["FLAGS"], flags)
    if flags & _FLAG_SEAL:
        return OP_CODE[op], f, sealed_decoder(expect)
    return OP_CODE[op], f, copp_open_decoder(expect)


def _session(handle: Any) -> bytes:
    if handle is None:
        raise arg_error("no session handle given")
    return field(T["SESSION"], _bytes16(handle, "session handle"))


def _data(data: Any) -> bytes:
    d = check_bytes(data, "data")
    if len(d) > _DATA_MAX:
        raise arg_error("data must be at most 4096 bytes")
    return field(T["DATA"], d)


def _kind(kind: Any) -> int:
    if kind is None:
        return 0
    if isinstance(kind, str) and kind.lower() in _KINDS:
        return _KINDS[kind.lower()]
    if isinstance(kind, int) and not isinstance(kind, bool) and kind in (0, 1, 2):
        return kind
    raise arg_error("unknown message kind (None, \"status\" or \"command\")")


def req_session_mac(session: Any, data: Any) -> Request[bytes]:
    return OP_CODE["session-mac"], _session(session) + _data(data), dec_omac


def req_session_verify(session: Any, data: Any, omac: Any = None,
                       kind: Any = None) -> Request[SessionSeq]:
    k = _kind(kind)
    f = _session(session) + _data(data)
    if omac is not None:
        f += field(T["OMAC"], _bytes16(omac, "OMAC"))
    if k:
        f += u8(T["KIND"], k)
    return OP_CODE["session-verify"], f, dec_session_seq


def req_session_close(session: Any) -> Request[None]:
    return OP_CODE["session-close"], _session(session), dec_none


def req_keygen(name: Any, bits: Any = None, exponent: Any = None) -> Request[NewKey]:
    n = key_name(name)
    f = field(T["NAME"], n)
    if bits is not None:
        f += u32(T["BITS"], u32_arg(bits, "bits"))
    if exponent is not None:
        if isinstance(exponent, bool) or not isinstance(exponent, int) or \
                not 0 < exponent < 1 << 64:
            raise arg_error("exponent must be a positive 64-bit number")
        f += field(T["EXPONENT"], struct.pack(">Q", exponent))
    return OP_CODE["keygen"], f, new_key_decoder(text(n))


def req_import(name: Any, key: Any) -> Request[NewKey]:
    n = key_name(name)
    k = check_bytes(key, "private key")
    if not 0 < len(k) <= _PRIVATE_KEY_MAX:
        raise arg_error("private key must be 1 to 32768 bytes")
    return OP_CODE["import"], field(T["NAME"], n) + field(T["PRIVATE_KEY"], k), \
        new_key_decoder(text(n))


# The operations batch() takes (not keygen and import, which change the token).
REQUESTS: Dict[str, Callable[..., Request[Any]]] = {
    "info": req_info, "keys": req_keys, "pubkey": req_pubkey, "unwrap": req_unwrap,
    "wrap": req_wrap, "copp_sign": req_copp_sign, "copp-sign": req_copp_sign,
    "copp_open": req_copp_open, "copp-open": req_copp_open,
    "opm_sign": req_opm_sign, "opm-sign": req_opm_sign,
    "opm_open": req_opm_open, "opm-open": req_opm_open,
    "session_mac": req_session_mac, "session-mac": req_session_mac,
    "session_verify": req_session_verify, "session-verify": req_session_verify,
    "session_close": req_session_close, "session-close": req_session_close,
}


class Op:
    """One operation for batch(): Op("unwrap", "rsa2048", blob, strict=True).
    A plain tuple ("unwrap", "rsa2048", blob) works too. repr() shows no argument."""

    __slots__ = ("name", "args", "kwargs")

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs

    def __repr__(self) -> str:
        return "Op(%r, %d args, %r)" % (self.name, len(self.args), sorted(self.kwargs))


class BatchResults(List[Any]):
    """batch()'s answer: a list of results and errors; .error is what ended the batch early."""

    error: Optional[KeytransError] = None


def build(op: Any) -> Request[Any]:
    """The request of a batch item (an Op or a tuple); ERR_ARG when it is not one."""
    if isinstance(op, Op):
        name, args, kwargs = op.name, op.args, op.kwargs
    elif isinstance(op, (tuple, list)) and op:
        name, args, kwargs = op[0], tuple(op[1:]), {}
    else:
        raise arg_error("an operation is an Op or a tuple (name, args...)")
    make = REQUESTS.get(name) if isinstance(name, str) else None
    if make is None:
        raise arg_error("unknown item operation %r" % (name,))
    try:
        return make(*args, **kwargs)
    except TypeError as e:
        raise arg_error("%s: %s" % (name, e)) from None


# Statuses of an item refused before it was sent (a COPP certificate chain's key too): they
# fail that item only, in a batch.
LOCAL_REFUSALS = (st.ERR_ARG, st.ERR_NOMEM, st.BAD_PUBLIC_KEY, st.KEY_SIZE)
