#!/usr/bin/env python3
"""COPP driver certificate chains (docs/formats.md) for the tests, made from
PUBLICKEYBLOBs: CertificateCollection, leaf first, each key as base64
big-endian Modulus and Exponent. The layout follows Microsoft's description
of the chain (Data: PublicKey, KeyUsage, SecurityLevel, ManufacturerData,
Features; Signature); the signatures are filler, as keytrans does not check them.

    make_copp_xml.py [OUTDIR]     # rewrites the files in OUTDIR (default: this folder)

The integration tests import chain() to make chains for the token's keys.
"""
import base64
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "..", "..", "vectors", "keys")


def blob_numbers(blob):
    """(modulus, exponent) as big-endian bytes from a PUBLICKEYBLOB."""
    btype, _, _, _, magic, bitlen, exp = struct.unpack("<BBHI4sII", blob[:20])
    assert btype == 6 and magic == b"RSA1", "not a PUBLICKEYBLOB"
    n = blob[20:20 + bitlen // 8][::-1]
    e = exp.to_bytes(4, "big").lstrip(b"\0")
    return n, e


def b64_lines(data, width=76, indent="              "):
    text = base64.b64encode(data).decode()
    return ("\n" + indent).join(text[i:i + width] for i in range(0, len(text), width))


def certificate(blob, usage, features=True, maker="Example Graphics", model="EG-9000",
                modulus_prefix=b""):
    n, e = blob_numbers(blob)
    feats = ("\n      <Features>\n        <COPPCertificate>1</COPPCertificate>\n"
             "      </Features>" if features else "")
    usage_xml = "".join("\n        <%s>1</%s>" % (u, u) for u in usage)
    filler = base64.b64encode(n[:20]).decode()
    return """  <Certificate>
    <Data>
      <PublicKey>
        <KeyValue>
          <RSAKeyValue>
            <Modulus>
              %s
            </Modulus>
            <Exponent>%s</Exponent>
          </RSAKeyValue>
        </KeyValue>
      </PublicKey>
      <KeyUsage>%s
      </KeyUsage>
      <SecurityLevel>2000</SecurityLevel>
      <ManufacturerData>
        <ManufacturerName>%s</ManufacturerName>
        <ModelName>%s</ModelName>
      </ManufacturerData>%s
    </Data>
    <Signature>
      <SignedInfo>
        <DigestValue>%s</DigestValue>
      </SignedInfo>
      <SignatureValue>%s</SignatureValue>
    </Signature>
  </Certificate>
""" % (b64_lines(modulus_prefix + n), base64.b64encode(e).decode(), usage_xml, maker, model,
       feats, filler, filler)


def chain(leaf_blob, leaf_usage=("EncryptKey",), ca_blob=None, xmlns=None, bom=False,
          modulus_prefix=b"", prolog=""):
    """A three-certificate chain, leaf first, as bytes (UTF-8)."""
    ca_blob = ca_blob or leaf_blob
    attr = ' xmlns="%s"' % xmlns if xmlns else ""
    text = ('<?xml version="1.0" encoding="utf-8"?>\n' + prolog +
            "<CertificateCollection%s>\n" % attr +
            certificate(leaf_blob, leaf_usage, modulus_prefix=modulus_prefix) +
            certificate(ca_blob, ("SignCertificate",), features=False, maker="Example IHV",
                        model="IHV signing") +
            certificate(ca_blob, ("SignCertificate",), features=False, maker="Root",
                        model="Root signing") +
            "</CertificateCollection>\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def key_blob(name):
    with open(os.path.join(KEYS, name + ".pub.blob"), "rb") as f:
        return f.read()


XXE_PROLOG = ('<!DOCTYPE CertificateCollection [\n'
              '  <!ENTITY leak SYSTEM "file:///etc/passwd">\n'
              '  <!ENTITY remote SYSTEM "http://127.0.0.1:9/copp.dtd">\n'
              ']>\n')
LAUGHS_PROLOG = ('<!DOCTYPE CertificateCollection [\n  <!ENTITY a "lol">\n' +
                 "".join('  <!ENTITY %s "%s">\n' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10)
                         for i in range(9)) + ']>\n')


def files():
    """name -> bytes of every fixture."""
    k2048, k1024, k4096 = key_blob("rsa2048"), key_blob("rsa1024"), key_blob("rsa4096")
    good = chain(k2048, ca_blob=k4096)
    xxe = chain(k2048, ca_blob=k4096, prolog=XXE_PROLOG).replace(b"<ModelName>EG-9000",
                                                                 b"<ModelName>&leak;&remote;")
    laughs = chain(k2048, ca_blob=k4096, prolog=LAUGHS_PROLOG).replace(
        b"<ModelName>EG-9000", b"<ModelName>&j;")
    return {
        "leaf2048.xml": good,
        # A BOM, a namespace, CRLF line ends and a modulus with a leading zero byte.
        "leaf2048_ns.xml": chain(k2048, ca_blob=k4096, xmlns="urn:example:copp", bom=True,
                                 modulus_prefix=b"\0").replace(b"\n", b"\r\n"),
        "leaf1024.xml": chain(k1024, ca_blob=k4096),
        "leaf4096.xml": chain(k4096),
        "no_encryptkey.xml": chain(k2048, leaf_usage=("SignCertificate",), ca_blob=k4096),
        "malformed.xml": good[:len(good) * 2 // 3],
        "xxe.xml": xxe,
        "billion_laughs.xml": laughs,
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else HERE
    for name, data in files().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
