"""CryptoAPI session-key algorithms (common/alg.c): their ALG_IDs, names and key lengths, and
the spellings the keytrans CLI accepts."""
import collections
from typing import Optional, Tuple, Union

from .checks import arg_error

# id -> (name, min bytes, max bytes)
ALGS: "collections.OrderedDict[int, Tuple[str, int, int]]" = collections.OrderedDict([
    (0x6602, ("CALG_RC2", 5, 16)),
    (0x6801, ("CALG_RC4", 5, 16)),
    (0x6601, ("CALG_DES", 8, 8)),
    (0x6609, ("CALG_3DES_112", 16, 16)),
    (0x6603, ("CALG_3DES", 24, 24)),
    (0x660e, ("CALG_AES_128", 16, 16)),
    (0x660f, ("CALG_AES_192", 24, 24)),
    (0x6610, ("CALG_AES_256", 32, 32)),
])
CALG_RSA_KEYX = 0xa400


def _strtoul(s: bytes) -> Optional[int]:
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


def _alg_matches(user: bytes, calg: bytes) -> bool:
    bare = calg[len("CALG_"):]
    if user[:5].upper() in (b"CALG_", b"CALG-"):
        user = user[5:]
    return user.replace(b"-", b"_").upper() == bare


def alg_id(spelling: Union[str, int]) -> int:
    """The ALG_ID of a session-key algorithm as the keytrans CLI spells it: "AES_128",
    "CALG_AES_128", "aes-128", "0x660e", "26126"... (common/alg.c). ERR_ARG if unknown."""
    if isinstance(spelling, int) and not isinstance(spelling, bool):
        if spelling in ALGS:
            return spelling
        raise arg_error("unknown algorithm %r" % spelling)
    if not isinstance(spelling, str):
        raise arg_error("an algorithm is a name or a number")
    raw = spelling.encode("utf-8", "surrogateescape")
    if raw and b"\0" not in raw:
        if raw[:1].isdigit():
            v = _strtoul(raw)
            if v is not None:
                if v in ALGS:
                    return v
                raise arg_error("unknown algorithm '%s'" % spelling)
        for aid, (calg, _, _) in ALGS.items():
            if _alg_matches(raw, calg.encode()):
                return aid
    raise arg_error("unknown algorithm '%s'" % spelling)


def alg_name(aid: int) -> Optional[str]:
    """"CALG_AES_128" for 0x660e; None for an unknown ALG_ID."""
    a = ALGS.get(aid)
    return a[0] if a else None
