"""COPP XML certificate chains (client/lib/coppcert.c): a driver's CertificateCollection to its
leaf's RSA key, as kt_copp_cert_key() reads it. No DOCTYPE is accepted, so no entity is ever
expanded or fetched; signatures are not checked."""
import struct
from typing import Any, List, Optional, Tuple

from . import status as st
from .checks import check_bytes
from .errors import KeytransError

COPP_CERT_MAX = 64 * 1024       # the largest COPP XML certificate chain read (KT_COPP_CERT_MAX)
_NOT_COPP = "not a COPP certificate collection: "
_XML_SPACE = b" \t\r\n"
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_COPP_BITS = 2048


def is_xml(data: Any) -> bool:
    """True when data looks like XML: '<' first, after an optional UTF-8 BOM and white space
    (kt_is_xml)."""
    raw = bytes(data)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.lstrip(_XML_SPACE)[:1] == b"<"


class _Element:
    __slots__ = ("name", "children", "text")

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: List["_Element"] = []
        self.text: List[str] = []


class _Doctype(Exception):
    pass


def _not_copp(message: str) -> KeytransError:
    return KeytransError(st.BAD_PUBLIC_KEY, _NOT_COPP + message)


def _base64_ok(t: bytes) -> bool:
    """Whole groups of the standard alphabet, '=' padding only at the end (client/lib/base64.c)."""
    body = t.rstrip(b"=")
    return len(t) % 4 == 0 and len(t) - len(body) <= 2 and all(c in _B64_ALPHABET for c in body)


def _xml_tree(xml: bytes) -> _Element:
    """The document element; refuses any DOCTYPE before expat reads what it declares, so no
    entity is ever expanded or fetched. Names lose their namespace."""
    # Imported on first use: the client itself needs only the modules at the top.
    from xml.parsers import expat

    top = _Element("")
    stack = [top]

    def start(name: str, attrs: Any) -> None:
        e = _Element(name.rpartition("}")[2])     # "URI}local": no NameChar is '}'
        stack[-1].children.append(e)
        stack.append(e)

    def end(name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        stack[-1].text.append(data)

    def doctype(*args: Any) -> None:
        raise _Doctype()

    p = expat.ParserCreate(namespace_separator="}")    # an unbound prefix is refused
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = text
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


def _only_child(parent: _Element, name: str) -> Tuple[Optional[_Element], int]:
    """The one child element called name: (element, 1), (None, 0) or (None, -1) for several."""
    found = [c for c in parent.children if c.name == name]
    if len(found) == 1:
        return found[0], 1
    return None, -1 if found else 0


def _walk(node: _Element, path: Tuple[str, ...]) -> Tuple[Optional[_Element], int, str]:
    """(element, r, where): r as _only_child's for each step, where the path so far."""
    at: Optional[_Element] = node
    for i, name in enumerate(path):
        assert at is not None
        at, r = _only_child(at, name)
        if r != 1:
            return None, r, "/".join(path[:i + 1])
    return at, 1, "/".join(path)


def _element_text(e: _Element) -> Optional[str]:
    """An element's text; None when it holds elements too."""
    return None if e.children else "".join(e.text)


def _number(e: _Element, what: str, cap: int) -> bytes:
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


def _rsa_field(leaf: _Element, name: str) -> _Element:
    e, r, where = _walk(leaf, ("Data", "PublicKey", "KeyValue", "RSAKeyValue", name))
    if e is None:
        raise _not_copp("the leaf certificate has %s %s" % ("no" if r == 0 else "more than one",
                                                             where))
    return e


def _encrypt_key_usage(leaf: _Element) -> None:
    e, r, where = _walk(leaf, ("Data", "KeyUsage", "EncryptKey"))
    if r < 0:
        raise _not_copp("the leaf certificate has more than one %s" % where)
    text = _element_text(e) if e is not None else None
    if text is None or text.strip(" \t\r\n") != "1":
        raise KeytransError(st.BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey")


def copp_cert_key(xml: Any) -> bytes:
    """A COPP driver's XML certificate chain (CertificateCollection, leaf first) to its leaf's
    RSA key as a PUBLICKEYBLOB, for copp_sign(to_pub=...), as kt_copp_cert_key() does it.
    The leaf must hold a 2048-bit key and KeyUsage EncryptKey; signatures are not checked.
    KeytransError BAD_PUBLIC_KEY or KEY_SIZE says what is wrong."""
    data = check_bytes(xml, "certificate chain")
    if not 0 < len(data) <= COPP_CERT_MAX:
        raise _not_copp("%d bytes; 1 to %d are accepted" % (len(data), COPP_CERT_MAX))
    root = _xml_tree(data)
    if root.name != "CertificateCollection":
        raise _not_copp("the root element is <%s>, not <CertificateCollection>" % root.name[:40])
    leaf = next((c for c in root.children if c.name == "Certificate"), None)
    if leaf is None:
        raise _not_copp("it holds no Certificate")
    mod, exp = _rsa_field(leaf, "Modulus"), _rsa_field(leaf, "Exponent")
    n, e = _number(mod, "Modulus", 2048), _number(exp, "Exponent", 8)
    bits = (len(n) - 1) * 8 + n[0].bit_length()
    if bits != _COPP_BITS:
        raise KeytransError(st.KEY_SIZE, "leaf certificate's key is %d-bit; COPP needs %d"
                            % (bits, _COPP_BITS))
    if len(e) > 4:
        raise KeytransError(st.BAD_PUBLIC_KEY,
                            "leaf certificate's public exponent is longer than 32 bits")
    _encrypt_key_usage(leaf)
    return struct.pack("<BBHI4sII", 6, 2, 0, 0xa400, b"RSA1", _COPP_BITS,
                       int.from_bytes(e, "big")) + n[::-1]
