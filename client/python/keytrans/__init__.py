"""keytrans: a client for keytransd (docs/protocol.md), Python 3.9+, standard library only, typed
(PEP 561).

    import keytrans
    with keytrans.connect() as kt:          # $KEYTRANS_SOCKET, else the default socket
        alg_id, key = kt.unwrap("exchange1", blob)

    import keytrans.aio                     # the same with asyncio, pipelined on one connection
    async with await keytrans.aio.connect() as kt:
        alg_id, key = await kt.unwrap("exchange1", blob)

It behaves as libkeytrans does: one method per operation, the same argument checks, the same
response validation, and every failure raised as a KeytransError whose .code is libkeytrans'
status: the daemon's (> 0) or a local one (< 0). A blocking Connection is for one thread at a
time. The results holding key bytes (SessionKey, Wrapped, Copp) never show them in repr().
Sealed sessions (copp_open/opm_open with seal=True) keep the AES key in the daemon: Sealed
carries a handle for session_mac, session_verify and session_close.

Each status raises the class of its family, a subclass of KeytransError (error_class(code)):
UnknownKey, Denied, UnwrapFailed, HsmUnavailable, Busy, ... (keytrans.errors lists which
statuses each takes). A status in no family (from a newer daemon) raises KeytransError itself.

Submodules: status (codes and names), errors, wire (the frame format), algs (ALG_IDs),
results, copp_cert (COPP XML certificate chains), requests and answers (encoding and
checking), client (the blocking Connection), aio (the asyncio Connection).
"""
from ._version import __version__
from .algs import ALGS, alg_id, alg_name
from .client import DEFAULT_DEPTH, DEFAULT_SOCKET, DEFAULT_TIMEOUT, Connection, connect
from .copp_cert import COPP_CERT_MAX, copp_cert_key, is_xml
from .errors import (FAMILIES, BadBlob, BadKey, BadRequest, Busy, ConnectError, ConnectionLost,
                     Denied, HsmUnavailable, InternalError, InvalidArgument, KeytransError,
                     NotSupported, OutOfMemory, ProtocolError, SessionLimit, Timeout, UnknownKey,
                     UnknownSession, UnwrapFailed, VerifyFailed, error_class)
from .requests import BatchResults, Op
# The wire tables and helpers under their old underscored names (not part of the API): the
# project's own tests (tests/soak, client/python/test_keytrans.py) use them.
from .requests import build as _build  # noqa: F401
from .results import (Copp, Hsm, Info, Key, NewKey, OpStats, Pool, Sealed, SessionKey,
                      SessionSeq, Stats, Wrapped)
from .status import (BAD_FRAME, BAD_PUBLIC_KEY, BAD_REQUEST, BAD_VERSION, BLOB_ALG, BLOB_LENGTH,
                     BLOB_RANGE, BLOB_RESERVED, BLOB_TYPE, BLOB_VERSION, BLOB_WRAP_ALG, BUSY,
                     DENIED, ERR_ARG, ERR_CONNECT, ERR_IO, ERR_NOMEM, ERR_PROTOCOL, ERR_TIMEOUT,
                     FRAME_TOO_LARGE, HSM_ERROR, HSM_UNAVAILABLE, INTERNAL, KEY_LENGTH, KEY_SIZE,
                     NOT_SUPPORTED, OK, RANDOM_MISMATCH, SHUTTING_DOWN, STATUS_NAMES, TIMEOUT,
                     UNKNOWN_KEY, UNKNOWN_OP, UNWRAP_FAILED, OMAC_MISMATCH, UNKNOWN_SESSION,
                     BAD_SEQUENCE, SESSION_LIMIT, status_name, status_text)
from .status import STATUS_LIST as _STATUS_LIST  # noqa: F401
from .wire import BYTES as _BYTES  # noqa: F401
from .wire import GROUP as _GROUP  # noqa: F401
from .wire import OPS as _OPS  # noqa: F401
from .wire import STR as _STR  # noqa: F401
from .wire import TAGS as _TAGS  # noqa: F401
from .wire import U8 as _U8  # noqa: F401
from .wire import U32 as _U32  # noqa: F401
from .wire import U64 as _U64  # noqa: F401
from .wire import T as _T  # noqa: F401
from .wire import WireError as _WireError  # noqa: F401
from .wire import parse_fields as _parse_fields  # noqa: F401

__all__ = [
    "__version__",
    "Connection", "KeytransError", "Op", "BatchResults", "Info", "Hsm", "Key", "SessionKey",
    "Wrapped", "Copp", "Stats", "OpStats", "Pool", "NewKey", "Sealed", "SessionSeq",
    "connect", "alg_id", "alg_name", "status_name", "status_text", "copp_cert_key", "is_xml",
    "DEFAULT_SOCKET", "DEFAULT_TIMEOUT", "DEFAULT_DEPTH", "ALGS", "COPP_CERT_MAX",
    # the status families
    "ProtocolError", "BadRequest", "UnknownKey", "BadBlob", "UnwrapFailed", "BadKey",
    "HsmUnavailable", "Busy", "InternalError", "Denied", "NotSupported", "ConnectError",
    "ConnectionLost", "InvalidArgument", "OutOfMemory", "Timeout", "VerifyFailed",
    "UnknownSession", "SessionLimit", "FAMILIES", "error_class",
    # the status codes
    "OK", "BAD_FRAME", "FRAME_TOO_LARGE", "BAD_VERSION", "UNKNOWN_OP", "BAD_REQUEST",
    "UNKNOWN_KEY", "BLOB_TYPE", "BLOB_VERSION", "BLOB_RESERVED", "BLOB_WRAP_ALG", "BLOB_ALG",
    "BLOB_LENGTH", "BLOB_RANGE", "UNWRAP_FAILED", "KEY_LENGTH", "BAD_PUBLIC_KEY", "KEY_SIZE",
    "RANDOM_MISMATCH", "HSM_ERROR", "BUSY", "INTERNAL", "SHUTTING_DOWN", "DENIED", "TIMEOUT",
    "HSM_UNAVAILABLE", "NOT_SUPPORTED", "OMAC_MISMATCH", "UNKNOWN_SESSION", "BAD_SEQUENCE",
    "SESSION_LIMIT", "ERR_CONNECT", "ERR_IO", "ERR_PROTOCOL", "ERR_ARG",
    "ERR_NOMEM", "ERR_TIMEOUT", "STATUS_NAMES",
]
