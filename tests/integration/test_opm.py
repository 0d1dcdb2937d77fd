"""OPM session start (opm-sign, opm-open) and the OMAC of sealed sessions, over the raw wire
protocol, judged by Python `cryptography` (an implementation independent of keytransd's)
and the vectors it made (tests/vectors/opm.txt, opm-negative.txt, make_opm_omac.py)."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (Conn, Daemon, STATUS, Workspace, field, parse_fields, read_vector_lines,  # noqa: E402
                     run_tests, u32, vectors)

from cryptography.hazmat.primitives import cmac, hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers import algorithms  # noqa: E402

# Issue 14's codes (common/wire.h, common/keytrans_status.h), beside harness.py's older ones.
harness.OPS.update({"opm-sign": 11, "opm-open": 12, "session-mac": 13, "session-verify": 14,
                    "session-close": 15})
harness.T.update(dict(HSM_ENTRY=28, STATE=29, FAULTS=31, SESSION=47, DATA=48, OMAC=49, KIND=51))
STATUS.update(dict(OMAC_MISMATCH=27, UNKNOWN_SESSION=28, BAD_SEQUENCE=29, SESSION_LIMIT=30))
T = harness.T

STRICT, SEAL = 0x1, 0x2
NEGATIVE_STATUS = {"decrypt": "UNWRAP_FAILED", "range": "BLOB_RANGE", "format": "BAD_REQUEST"}
OPM = read_vector_lines("opm.txt")
NEGATIVE = read_vector_lines("opm-negative.txt")
OAEP_SHA512 = padding.OAEP(mgf=padding.MGF1(hashes.SHA512()), algorithm=hashes.SHA512(),
                           label=None)

D = None  # the daemon shared by the tests


def conn():
    return Conn(D.socket)


def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def expect(reply, status):
    assert reply.status == STATUS[status], "status %d (%s), expected %s" % (
        reply.status, reply.message(), status)


def private_key(name="rsa2048"):
    with open(vectors("keys", name + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def key_file(name):
    with open(vectors("keys", name), "rb") as f:
        return f.read()


def cng_public_blob(name):
    """BCRYPT_RSAPUBLIC_BLOB of the vector key, built here from its numbers (the spec's
    layout: magic RSA1, bit length, cbPublicExp, cbModulus, 0, 0; exponent, modulus)."""
    nums = private_key(name).public_key().public_numbers()
    e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
    n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
    return struct.pack("<6I", 0x31415352, nums.n.bit_length(), len(e), len(n), 0, 0) + e + n


def opm_message(rnd, aes, sseq, cseq):
    return rnd + aes + struct.pack("<II", sseq, cseq)


def omac1(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def opm_open(c, sig, name="rsa2048", rnd=None, flags=None):
    extra = (field("RANDOM", rnd) if rnd is not None else b"") + (
        u32("FLAGS", flags) if flags is not None else b"")
    return c.call("opm-open", field("NAME", name) + field("SIGNATURE", sig) + extra)


def answer_shape(r):
    """What a caller can tell apart in an answer: status, message, fields."""
    return (r.status, r.message(), tuple(sorted((t, tuple(v)) for t, v in r.fields.items())))


def hsm_faults(c):
    """name -> (state, faults) of every HSM, from info."""
    r = c.call("info")
    expect(r, "OK")
    out = {}
    for g in r.fields.get(T["HSM_ENTRY"], []):
        f = parse_fields(g)
        out[f[T["NAME"]][0].decode()] = (f[T["STATE"]][0].decode(),
                                         struct.unpack(">Q", f[T["FAULTS"]][0])[0])
    assert out, "info names no HSM"
    return out


def test_open_every_vector():
    c = conn()
    assert len(OPM) == 8
    for i, (name, rnd, aes, sseq, cseq, sig) in enumerate(OPM):
        rnd, aes, sig = unhex(rnd), unhex(aes), unhex(sig)
        for expected in (None, rnd):
            for flags in (None, STRICT):     # STRICT changes nothing for OPM
                r = opm_open(c, sig, name, expected, flags)
                expect(r, "OK")
                assert r.get("RANDOM") == rnd and r.get("AES_KEY") == aes, i
                assert r.u32("STATUS_SEQ") == int(sseq) and r.u32("COMMAND_SEQ") == int(cseq), i
                assert r.get("SESSION") is None
        other = bytes(b ^ 0x01 for b in rnd)
        r = opm_open(c, sig, name, other)
        expect(r, "RANDOM_MISMATCH")
        assert r.get("AES_KEY") is None, "a mismatch must not give the key away"
        expect(opm_open(c, sig, name, other, SEAL), "RANDOM_MISMATCH")


def test_negative_vectors():
    c = conn()
    counts, decrypt_answers = {}, set()
    rnd = unhex(OPM[0][1])
    for name, cls, sig in NEGATIVE:
        sig = unhex(sig)
        counts[cls] = counts.get(cls, 0) + 1
        want = NEGATIVE_STATUS[cls]
        for expected in (None, rnd):
            for flags in (None, STRICT, SEAL):
                r = opm_open(c, sig, "rsa2048", expected, flags)
                expect(r, want)
                assert r.message(), name
                assert r.get("AES_KEY") is None and r.get("SESSION") is None, name
                if cls == "decrypt":
                    decrypt_answers.add(answer_shape(r))
    assert counts == {"decrypt": 10, "range": 2, "format": 3}, counts
    # Every failure to decode is one and the same answer, whatever its cause.
    assert len(decrypt_answers) == 1, decrypt_answers
    # The connection still serves.
    expect(opm_open(c, unhex(OPM[0][5])), "OK")


def check_signed(r, rnd, aes=None, sseq=None, cseq=None):
    """An opm-sign answer: the signature opens, with cryptography's OAEP-SHA-512, to the
    40 bytes of the parameters answered, which are those given."""
    expect(r, "OK")
    sig = r.get("SIGNATURE")
    assert len(sig) == 256
    got = (r.get("RANDOM"), r.get("AES_KEY"), r.u32("STATUS_SEQ"), r.u32("COMMAND_SEQ"))
    assert got[0] == rnd and len(got[1]) == 16, got
    for want, have in zip((aes, sseq, cseq), got[1:]):
        assert want is None or want == have, (want, have)
    # Big-endian as it is: nothing to reverse before decrypting.
    assert private_key().decrypt(sig, OAEP_SHA512) == opm_message(*got)
    return sig, got


def test_sign_to_every_recipient_form():
    c = conn()
    recipients = {
        "name": field("NAME", "rsa2048"),
        "pem": field("PUBLIC_KEY", key_file("rsa2048.pub.pem")),
        "publickeyblob": field("PUBLIC_KEY", key_file("rsa2048.pub.blob")),
        "cng": field("PUBLIC_KEY", cng_public_blob("rsa2048")),
    }
    for kind, to in recipients.items():
        rnd = os.urandom(16)
        # Only RANDOM given: the rest drawn by the daemon.
        sig, got = check_signed(c.call("opm-sign", to + field("RANDOM", rnd)), rnd)
        # The daemon opens what it signed.
        o = opm_open(c, sig, rnd=rnd)
        expect(o, "OK")
        assert (o.get("RANDOM"), o.get("AES_KEY"), o.u32("STATUS_SEQ"),
                o.u32("COMMAND_SEQ")) == got, kind
        for aes, sseq, cseq in ((bytes(range(16)), 0, 0), (os.urandom(16), 1, 0xffffffff),
                                (b"\xff" * 16, 0xffffffff, 1)):
            r = c.call("opm-sign", to + field("RANDOM", rnd) + field("AES_KEY", aes) +
                       u32("STATUS_SEQ", sseq) + u32("COMMAND_SEQ", cseq))
            check_signed(r, rnd, aes, sseq, cseq)
    # Randomised: the same parameters twice give two signatures.
    given = field("NAME", "rsa2048") + field("RANDOM", bytes(16)) + field("AES_KEY", bytes(16))
    given += u32("STATUS_SEQ", 5) + u32("COMMAND_SEQ", 6)
    assert c.call("opm-sign", given).get("SIGNATURE") != c.call("opm-sign", given).get("SIGNATURE")
    expect(c.call("opm-sign", field("NAME", "rsa2048")), "BAD_REQUEST")     # RANDOM required
    expect(c.call("opm-sign", field("NAME", "rsa2048") + field("RANDOM", bytes(15))),
           "BAD_REQUEST")


def test_key_size():
    c = conn()
    rnd = field("RANDOM", bytes(16))
    for name in ("rsa1024", "rsa4096", "wine1024"):
        r = c.call("opm-sign", field("NAME", name) + rnd)
        expect(r, "KEY_SIZE")
        assert "2048" in r.message(), r.message()
        expect(c.call("opm-sign", field("PUBLIC_KEY", key_file(name + ".pub.blob")) + rnd),
               "KEY_SIZE")
        expect(c.call("opm-sign", field("PUBLIC_KEY", key_file(name + ".pub.pem")) + rnd),
               "KEY_SIZE")
        for flags in (None, SEAL):
            r = opm_open(c, unhex(OPM[0][5]), name, flags=flags)
            expect(r, "KEY_SIZE")
            assert "2048" in r.message(), r.message()


def mac_lengths():
    return (0, 1, 15, 16, 17, 40, 64, 4095, 4096)


def check_session_mac(c, session, aes):
    for n in mac_lengths():
        data = os.urandom(n)
        r = c.call("session-mac", field("SESSION", session) + field("DATA", data))
        expect(r, "OK")
        assert r.get("OMAC") == omac1(aes, data), n


def test_sealed_session_mac_is_cmac():
    c = conn()
    opened = []
    for name, rnd, aes, sseq, cseq, sig in OPM[:3]:
        plain = opm_open(c, unhex(sig), name)
        expect(plain, "OK")
        s = opm_open(c, unhex(sig), name, unhex(rnd), SEAL)
        expect(s, "OK")
        assert s.get("AES_KEY") is None, "a sealed answer carries no key"
        assert len(s.get("SESSION")) == 16
        assert (s.get("RANDOM"), s.u32("STATUS_SEQ"), s.u32("COMMAND_SEQ")) == (
            unhex(rnd), int(sseq), int(cseq))
        opened.append((s.get("SESSION"), plain.get("AES_KEY")))
    for name, rnd, aes, sseq, cseq, sig in read_vector_lines("copp.txt"):
        plain = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)))
        expect(plain, "OK")
        s = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)) +
                   u32("FLAGS", SEAL))
        expect(s, "OK")
        assert s.get("AES_KEY") is None and len(s.get("SESSION")) == 16
        assert s.get("RANDOM") == unhex(rnd) and s.u32("STATUS_SEQ") == int(sseq)
        opened.append((s.get("SESSION"), plain.get("AES_KEY")))
    assert len({h for h, _ in opened}) == len(opened), "two sessions share a handle"
    # Interleaved: each handle MACs with its own key.
    for session, aes in opened + opened[::-1]:
        check_session_mac(c, session, aes)
    # A handle is its connection's uid's, not its connection's.
    other = conn()
    check_session_mac(other, *opened[0])
    for session, _ in opened:
        expect(c.call("session-close", field("SESSION", session)), "OK")
        expect(c.call("session-mac", field("SESSION", session) + field("DATA", b"x")),
               "UNKNOWN_SESSION")


def test_pkcs_mechanism():
    """rsa_mechanism = pkcs: the HSM itself removes OAEP (CKM_RSA_PKCS_OAEP with SHA-512).
    SoftHSM 2.6 refuses that mechanism's parameters (C_DecryptInit: CKR_ARGUMENTS_BAD, it
    knows only SHA-1): then the answer is the HSM's refusal, naming the mechanism, and the
    HSM stays in service, a configuration problem and no fault. A module that does it must
    give the vectors' parameters and one UNWRAP_FAILED for every undecodable signature."""
    with Workspace() as root:
        d = Daemon(root, keys={"rsa2048": ("rsa2048", "02", "rsa_mechanism = pkcs")})
        try:
            c = Conn(d.socket)
            name, rnd, aes, sseq, cseq, sig = OPM[0]
            r = opm_open(c, unhex(sig), name)
            if r.status == STATUS["OK"]:
                for name, rnd, aes, sseq, cseq, sig in OPM:
                    r = opm_open(c, unhex(sig), name, unhex(rnd))
                    expect(r, "OK")
                    assert r.get("AES_KEY") == unhex(aes) and r.u32("COMMAND_SEQ") == int(cseq)
                answers = set()
                for _, cls, sig in NEGATIVE:
                    r = opm_open(c, unhex(sig))
                    expect(r, NEGATIVE_STATUS[cls])
                    if cls == "decrypt":
                        answers.add(answer_shape(r))
                assert len(answers) == 1, answers
            else:
                expect(r, "HSM_ERROR")
                assert "CKM_RSA_PKCS_OAEP" in r.message() and "SHA-512" in r.message(), \
                    r.message()
                # Every such request: the same refusal, never a fault.
                for _, _, _, _, _, sig in OPM[1:3]:
                    expect(opm_open(c, unhex(sig)), "HSM_ERROR")
                assert hsm_faults(c) == {"hsm": ("up", 0)}, hsm_faults(c)
            # opm-sign needs no private operation: it works whatever the mechanism.
            check_signed(c.call("opm-sign", field("NAME", "rsa2048") + field("RANDOM",
                                                                           bytes(16))),
                         bytes(16))
            # And the key still serves what its mechanism does: COPP through CKM_RSA_PKCS.
            name, rnd, aes, sseq, cseq, sig = read_vector_lines("copp.txt")[0]
            r = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)))
            expect(r, "OK")
            assert r.get("AES_KEY") == unhex(aes)
            assert hsm_faults(c) == {"hsm": ("up", 0)}, hsm_faults(c)
        finally:
            d.stop()


def main():
    global D
    with Workspace() as root:
        D = Daemon(root)
        try:
            run_tests([test_open_every_vector, test_negative_vectors,
                       test_sign_to_every_recipient_form, test_key_size,
                       test_sealed_session_mac_is_cmac, test_pkcs_mechanism])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
