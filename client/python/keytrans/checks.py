"""Argument checks shared by the requests (client/lib/request.c): what is refused with ERR_ARG
before anything is sent."""
from typing import Any, Union

from . import status as st
from .errors import KeytransError

Buffer = Union[bytes, bytearray, memoryview]
NAME_MAX = 64


def arg_error(message: str) -> KeytransError:
    return KeytransError(st.ERR_ARG, message)


def check_bytes(v: Any, what: str) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise arg_error("%s must be bytes" % what)
    return bytes(v)


def key_name(name: Any) -> bytes:
    """A key's name as sent: 1 to 64 bytes, no NUL (str is encoded as UTF-8)."""
    raw = None
    if isinstance(name, str):
        raw = name.encode("utf-8", "surrogateescape")
    elif isinstance(name, (bytes, bytearray)):
        raw = bytes(name)
    if not raw or len(raw) > NAME_MAX or b"\0" in raw:
        raise arg_error("key name must be 1 to 64 bytes")
    return raw


def u32_arg(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xffffffff:
        raise arg_error("%s must be an integer from 0 to 4294967295" % what)
    return v


def padding(oaep: Any) -> int:
    if oaep not in (False, True, 0, 1):
        raise arg_error("unknown padding")
    return 1 if oaep else 0
