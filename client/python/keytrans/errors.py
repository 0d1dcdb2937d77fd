"""KeytransError and its classes per status family.

Every status code maps to exactly one class (FAMILIES), and KeytransError(code, message)
itself builds an instance of that class, so whatever raises a KeytransError raises the family
class: `except keytrans.UnknownKey` and `except keytrans.KeytransError` both work, and .code
still tells the exact status. A code in no family (a newer daemon's) stays a KeytransError.

    ProtocolError    BAD_FRAME FRAME_TOO_LARGE BAD_VERSION UNKNOWN_OP ERR_PROTOCOL
                     (the two ends do not speak the same protocol)
    BadRequest       BAD_REQUEST KEY_LENGTH (the daemon refused a request's fields)
    UnknownKey       UNKNOWN_KEY
    BadBlob          BLOB_TYPE BLOB_VERSION BLOB_RESERVED BLOB_WRAP_ALG BLOB_ALG BLOB_LENGTH
                     BLOB_RANGE (the SIMPLEBLOB or signature is malformed)
    UnwrapFailed     UNWRAP_FAILED RANDOM_MISMATCH (it did not open to what was expected)
    BadKey           BAD_PUBLIC_KEY KEY_SIZE (a key unusable for the operation)
    HsmUnavailable   HSM_ERROR HSM_UNAVAILABLE (the HSM did not serve it: try later)
    Busy             BUSY SHUTTING_DOWN TIMEOUT (the daemon did not serve it: try again)
    InternalError    INTERNAL
    Denied           DENIED
    NotSupported     NOT_SUPPORTED
    ConnectError     ERR_CONNECT (also a ConnectionError)
    ConnectionLost   ERR_IO (also a ConnectionError)
    InvalidArgument  ERR_ARG (also a ValueError)
    OutOfMemory      ERR_NOMEM (libkeytrans' status; this client does not raise it)
    Timeout          ERR_TIMEOUT (also a TimeoutError)
    VerifyFailed     OMAC_MISMATCH BAD_SEQUENCE (a sealed session's check failed)
    UnknownSession   UNKNOWN_SESSION (closed, expired, or another user's)
    SessionLimit     SESSION_LIMIT (too many sealed sessions open: close one)
"""
from typing import Any, Dict, Optional, Tuple, Type, cast

from . import status as st


class KeytransError(Exception):
    """A failed call: .code (libkeytrans' status), .name ("UNWRAP_FAILED") and .message (the
    daemon's MESSAGE, or what went wrong locally). KeytransError(code, message) is an instance
    of the code's family class (error_class(code))."""

    codes: Tuple[int, ...] = ()     # the statuses of a family class

    code: int
    name: str
    message: str

    def __new__(cls, code: int, message: Optional[str] = None) -> "KeytransError":
        target = error_class(code) if cls is KeytransError else cls
        # super() of KeytransError in the target's order: OSError's __new__ for the
        # ConnectionError and TimeoutError families, which must be the one to make them
        # (typeshed knows only object's, without arguments).
        made: KeytransError = cast(Any, super(KeytransError, target)).__new__(target, code,
                                                                              message)
        return made

    def __init__(self, code: int, message: Optional[str] = None) -> None:
        self.code = code
        self.name = st.status_name(code)
        self.message = message if message else st.status_text(code)
        super().__init__(code, self.message)

    def __str__(self) -> str:
        return "%s: %s" % (self.name, self.message)

    def __repr__(self) -> str:
        return "%s(%s, %r)" % (type(self).__name__, self.name, self.message)


class ProtocolError(KeytransError):
    """The daemon refused the framing, or answered with something malformed."""
    codes = (st.BAD_FRAME, st.FRAME_TOO_LARGE, st.BAD_VERSION, st.UNKNOWN_OP, st.ERR_PROTOCOL)


class BadRequest(KeytransError):
    """The daemon refused a request's fields (a session key of a length its ALG_ID forbids)."""
    codes = (st.BAD_REQUEST, st.KEY_LENGTH)


class UnknownKey(KeytransError):
    """No key of that name."""
    codes = (st.UNKNOWN_KEY,)


class BadBlob(KeytransError):
    """The SIMPLEBLOB (or COPP signature) is malformed, or its ALG_ID unknown."""
    codes = (st.BLOB_TYPE, st.BLOB_VERSION, st.BLOB_RESERVED, st.BLOB_WRAP_ALG, st.BLOB_ALG,
             st.BLOB_LENGTH, st.BLOB_RANGE)


class UnwrapFailed(KeytransError):
    """It did not decrypt (strict), or a COPP signature opened to another random number."""
    codes = (st.UNWRAP_FAILED, st.RANDOM_MISMATCH)


class BadKey(KeytransError):
    """A public key that cannot be read, or an RSA key of a size the operation cannot use."""
    codes = (st.BAD_PUBLIC_KEY, st.KEY_SIZE)


class HsmUnavailable(KeytransError):
    """The HSM failed the operation or none is in service: try again later."""
    codes = (st.HSM_ERROR, st.HSM_UNAVAILABLE)


class Busy(KeytransError):
    """The daemon is overloaded, stopping, or did not serve the request in time: try again."""
    codes = (st.BUSY, st.SHUTTING_DOWN, st.TIMEOUT)


class InternalError(KeytransError):
    """An internal error in the daemon."""
    codes = (st.INTERNAL,)


class Denied(KeytransError):
    """The daemon's configuration does not allow this peer that operation or key."""
    codes = (st.DENIED,)


class NotSupported(KeytransError):
    """The HSM does not support the operation."""
    codes = (st.NOT_SUPPORTED,)


class ConnectError(KeytransError, ConnectionError):
    """The daemon's socket could not be connected to."""
    codes = (st.ERR_CONNECT,)


class ConnectionLost(KeytransError, ConnectionError):
    """Not connected, or the connection failed or was closed by the daemon."""
    codes = (st.ERR_IO,)


class InvalidArgument(KeytransError, ValueError):
    """An argument refused before anything was sent."""
    codes = (st.ERR_ARG,)


class OutOfMemory(KeytransError):
    """Out of memory: libkeytrans' status, which the Python client does not raise itself
    (MemoryError.__new__ refuses a class that also derives from KeytransError)."""
    codes = (st.ERR_NOMEM,)


class Timeout(KeytransError, TimeoutError):
    """No answer (or no connection: a full listen backlog) within the time limit."""
    codes = (st.ERR_TIMEOUT,)


class VerifyFailed(KeytransError):
    """session_verify(): the OMAC does not match the data, or its sequence number is not the
    session's next one (replayed or skipped); the session did not change."""
    codes = (st.OMAC_MISMATCH, st.BAD_SEQUENCE)


class UnknownSession(KeytransError):
    """No such sealed session: closed, expired, wiped by a reload, or opened by another
    user."""
    codes = (st.UNKNOWN_SESSION,)


class SessionLimit(KeytransError):
    """Too many sealed sessions open (this user's, or the daemon's): close one and open
    again."""
    codes = (st.SESSION_LIMIT,)


FAMILIES: Tuple[Type[KeytransError], ...] = (
    ProtocolError, BadRequest, UnknownKey, BadBlob, UnwrapFailed, BadKey, HsmUnavailable, Busy,
    InternalError, Denied, NotSupported, ConnectError, ConnectionLost, InvalidArgument,
    OutOfMemory, Timeout, VerifyFailed, UnknownSession, SessionLimit)

_BY_CODE: Dict[int, Type[KeytransError]] = {
    code: family for family in FAMILIES for code in family.codes}


def error_class(code: int) -> Type[KeytransError]:
    """The class a status raises: UnwrapFailed for UNWRAP_FAILED; KeytransError itself for a
    code in no family."""
    return _BY_CODE.get(code, KeytransError)
