#!/usr/bin/env python3
"""Makes the OPM and OMAC-1 known-answer vectors with Python `cryptography`
(an implementation independent of keytrans' own OAEP and CMAC code):

- opm.txt            KEY RANDOM_HEX AES_KEY_HEX STATUS_SEQ COMMAND_SEQ SIGNATURE_HEX
- opm-negative.txt   NAME CLASS SIG_HEX   (CLASS decrypt, range or format)
- omac.txt           KEY_HEX DATA_HEX TAG_HEX   (DATA_HEX "-" when empty)

The parameters, keys and data come from a PRNG with a fixed seed, so they are the
same on every run; RSAES-OAEP (and PKCS#1 v1.5) encryption draws its own random
seed, so the ciphertexts differ from run to run: the committed ones are the
vectors. `make_opm_omac.py --check` checks the committed files against
cryptography instead of writing them (every ciphertext decrypts as documented;
every tag is recomputed). See README.md for what the files mean.

OPM (IOPMVideoOutput::FinishInitialization): M = random(16) | AES key(16) |
status seq (u32 LE) | command seq (u32 LE), RSAES-OAEP with SHA-512, MGF1-SHA-512
and an empty label under keys/rsa2048.pem; the 256 bytes big-endian as they are.
"""
import os
import random
import struct
import sys

from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import algorithms

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "rsa2048"
SEED = "keytrans opm/omac vectors 1"

# RFC 4493, section 4 (Test Vectors), Examples 1-4, copied from the RFC.
RFC4493_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
RFC4493_M = ("6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
             "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710")
RFC4493 = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]
# Lengths of the generated OMAC lines: block edges, the protocol's 4096 maximum, and a
# few drawn at random.
OMAC_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 40, 48, 63, 64, 65, 255, 256, 1000, 4080, 4095,
                4096]
OMAC_RANDOM_LENGTHS = 3

# (status_seq, command_seq) of the opm.txt lines; None: drawn from the PRNG.
OPM_SEQS = [(0, 0), (1, 1), (0xffffffff, 0xffffffff), (0, 0xffffffff), (0xffffffff, 1),
            (None, None), (None, None), (None, None)]


def private_key():
    with open(os.path.join(HERE, "keys", KEY + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def oaep(hash_alg, mgf_alg, label=None):
    return padding.OAEP(mgf=padding.MGF1(mgf_alg), algorithm=hash_alg, label=label)


OPM_PADDING = oaep(hashes.SHA512(), hashes.SHA512())


def opm_message(rnd, aes, sseq, cseq):
    return rnd + aes + struct.pack("<II", sseq, cseq)


def opm_params(prng):
    """The (random, aes_key, status_seq, command_seq) of every opm.txt line."""
    out = []
    for i, (s, c) in enumerate(OPM_SEQS):
        rnd = bytes(16) if i == 0 else prng.randbytes(16)
        aes = b"\xff" * 16 if i == 0 else prng.randbytes(16)
        s = prng.getrandbits(32) if s is None else s
        c = prng.getrandbits(32) if c is None else c
        out.append((rnd, aes, s, c))
    return out


def negative_recipes(prng, n_bytes):
    """name -> (class, how to make it: a function of the public key, or None for raw bytes,
    the padding that opens it (None: nothing does), the message it holds)."""
    m = prng.randbytes(40)
    sha1, sha512 = hashes.SHA1(), hashes.SHA512()
    enc = lambda msg, pad: lambda pub: pub.encrypt(msg, pad)      # noqa: E731
    recipes = {
        "oaep_sha1": ("decrypt", oaep(sha1, sha1), m),
        "mgf1_sha1": ("decrypt", oaep(sha512, sha1), m),
        "hash_sha1_mgf1_sha512": ("decrypt", oaep(sha1, sha512), m),
        "label_opm": ("decrypt", oaep(sha512, sha512, b"OPM"), m),
        "message_39": ("decrypt", OPM_PADDING, m[:39]),
        "message_41": ("decrypt", OPM_PADDING, m + b"\x01"),
        "message_0": ("decrypt", OPM_PADDING, b""),
        "pkcs1_v15": ("decrypt", padding.PKCS1v15(), m),
    }
    made = {name: (cls, enc(msg, pad), pad, msg) for name, (cls, pad, msg) in recipes.items()}
    below = prng.randrange(2, n_bytes[1])
    short, long_ = prng.randbytes(255), prng.randbytes(257)
    made.update({
        "all_zero": ("decrypt", lambda pub: bytes(256), None, None),
        "random_below_modulus": ("decrypt", lambda pub: below.to_bytes(256, "big"), None, None),
        "ciphertext_eq_modulus": ("range", lambda pub: n_bytes[0], None, None),
        "all_ff": ("range", lambda pub: b"\xff" * 256, None, None),
        "short_255": ("format", lambda pub: short, None, None),
        "long_257": ("format", lambda pub: long_, None, None),
        "empty": ("format", lambda pub: b"", None, None),
    })
    return made


def omac_lines(prng):
    lines = [(bytes.fromhex(RFC4493_KEY), bytes.fromhex(RFC4493_M)[:n], bytes.fromhex(t))
             for n, t in RFC4493]
    lengths = OMAC_LENGTHS + [prng.randrange(0, 4097) for _ in range(OMAC_RANDOM_LENGTHS)]
    for n in lengths:
        key, data = prng.randbytes(16), prng.randbytes(n)
        lines.append((key, data, cmac_aes(key, data)))
    return lines


def cmac_aes(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def hexf(b):
    return b.hex() if b else "-"


def write(name, rows):
    with open(os.path.join(HERE, name), "w") as f:
        for row in rows:
            f.write(" ".join(str(x) for x in row) + "\n")


def read(name):
    with open(os.path.join(HERE, name)) as f:
        return [line.split() for line in f if line.strip()]


def decrypts(priv, c, pad):
    try:
        return priv.decrypt(c, pad)
    except ValueError:
        return None


def make(priv, n_bytes):
    prng = random.Random(SEED)
    pub = priv.public_key()
    rows = []
    for rnd, aes, s, c in opm_params(prng):
        sig = pub.encrypt(opm_message(rnd, aes, s, c), OPM_PADDING)
        assert priv.decrypt(sig, OPM_PADDING) == opm_message(rnd, aes, s, c)
        rows.append((KEY, rnd.hex(), aes.hex(), s, c, sig.hex()))
    write("opm.txt", rows)
    rows = []
    for name, (cls, fn, pad, msg) in negative_recipes(prng, n_bytes).items():
        sig = fn(pub)
        if pad is not None:
            assert priv.decrypt(sig, pad) == msg, name
        rows.append((name, cls, hexf(sig)))
    write("opm-negative.txt", rows)
    write("omac.txt", [(k.hex(), hexf(d), t.hex()) for k, d, t in omac_lines(prng)])


def check(priv, n_bytes):
    """The committed files against cryptography: exits non-zero on the first difference."""
    prng = random.Random(SEED)
    opm = read("opm.txt")
    params = opm_params(prng)
    assert len(opm) == len(params), "opm.txt: %d lines, %d expected" % (len(opm), len(params))
    for (key, rnd, aes, s, c, sig), want in zip(opm, params):
        got = (bytes.fromhex(rnd), bytes.fromhex(aes), int(s), int(c))
        assert key == KEY and got == want, ("opm.txt", rnd)
        assert priv.decrypt(bytes.fromhex(sig), OPM_PADDING) == opm_message(*got), ("opm.txt", rnd)
    recipes = negative_recipes(prng, n_bytes)
    neg = read("opm-negative.txt")
    assert [r[0] for r in neg] == list(recipes), "opm-negative.txt: names differ"
    n = int.from_bytes(n_bytes[0], "big")
    for name, cls, sig in neg:
        want_cls, _, pad, msg = recipes[name]
        sig = b"" if sig == "-" else bytes.fromhex(sig)
        assert cls == want_cls, name
        if cls == "format":
            assert len(sig) != 256, name
            continue
        assert len(sig) == 256, name
        if cls == "range":
            assert int.from_bytes(sig, "big") >= n, name
            continue
        assert int.from_bytes(sig, "big") < n, name
        # No 40-byte OPM message: either OAEP-SHA-512 fails, or it holds another length.
        opened = decrypts(priv, sig, OPM_PADDING)
        assert opened is None or len(opened) != 40, name
        if pad is not None:
            assert priv.decrypt(sig, pad) == msg, name
    omac = read("omac.txt")
    want = omac_lines(prng)
    assert len(omac) == len(want), "omac.txt: %d lines, %d expected" % (len(omac), len(want))
    for (k, d, t), (wk, wd, wt) in zip(omac, want):
        data = b"" if d == "-" else bytes.fromhex(d)
        assert (bytes.fromhex(k), data, bytes.fromhex(t)) == (wk, wd, wt), ("omac.txt", k)
        assert cmac_aes(wk, wd) == wt, ("omac.txt", k)


def main():
    # cryptography's CMAC must give RFC 4493's tags before anything it makes is trusted.
    for n, t in RFC4493:
        assert cmac_aes(bytes.fromhex(RFC4493_KEY), bytes.fromhex(RFC4493_M)[:n]).hex() == t
    priv = private_key()
    n = priv.public_key().public_numbers().n
    n_bytes = (n.to_bytes(256, "big"), n)
    if sys.argv[1:] == ["--check"]:
        check(priv, n_bytes)
        print("opm.txt, opm-negative.txt, omac.txt: as cryptography %s makes them"
              % __import__("cryptography").__version__)
    elif sys.argv[1:]:
        sys.exit("usage: make_opm_omac.py [--check]")
    else:
        make(priv, n_bytes)


if __name__ == "__main__":
    main()
