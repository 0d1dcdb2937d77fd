"""Status codes (common/keytrans_status.h): the daemon's (> 0) and libkeytrans' local ones (< 0),
as constants (keytrans.UNWRAP_FAILED == 14), names and one-line descriptions."""
from typing import Dict, List, Tuple

# (NAME, code, description): common/keytrans_status.h (test_keytrans.py checks they agree)
STATUS_LIST: List[Tuple[str, int, str]] = [
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
    ("OMAC_MISMATCH", 27, "the OMAC does not match the data"),
    ("UNKNOWN_SESSION", 28, "no such session (closed, expired, or not this user's)"),
    ("BAD_SEQUENCE", 29, "sequence number replayed or skipped"),
    ("SESSION_LIMIT", 30, "too many open sessions"),
    ("ERR_CONNECT", -1, "daemon unreachable"),
    ("ERR_IO", -2, "connection to the daemon failed"),
    ("ERR_PROTOCOL", -3, "malformed response from the daemon"),
    ("ERR_ARG", -4, "invalid argument"),
    ("ERR_NOMEM", -5, "out of memory"),
    ("ERR_TIMEOUT", -6, "no response in time"),
]
_STATUS_NAME: Dict[int, str] = {code: name for name, code, _ in STATUS_LIST}
_STATUS_TEXT: Dict[int, str] = {code: text for _, code, text in STATUS_LIST}

# The same numbers as constants (test_keytrans.py checks both).
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
OMAC_MISMATCH = 27
UNKNOWN_SESSION = 28
BAD_SEQUENCE = 29
SESSION_LIMIT = 30
ERR_CONNECT = -1
ERR_IO = -2
ERR_PROTOCOL = -3
ERR_ARG = -4
ERR_NOMEM = -5
ERR_TIMEOUT = -6

STATUS_NAMES: List[str] = [name for name, _, _ in STATUS_LIST]


def status_name(code: int) -> str:
    """"UNWRAP_FAILED" for 14, "ERR_CONNECT" for -1; "UNKNOWN" for codes not in the list."""
    return _STATUS_NAME.get(code, "UNKNOWN")


def status_text(code: int) -> str:
    """One-line description of a status."""
    return _STATUS_TEXT.get(code, "unknown status")
