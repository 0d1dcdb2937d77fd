"""The daemon over its wire protocol, against a SoftHSM token holding the vector keys."""
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Conn, Daemon, STATUS, Workspace, frame, field, u8, u32, read_vector_lines,
                     run_tests, vectors)

ALGS = {0x6602: (5, 16), 0x6801: (5, 16), 0x6601: (8, 8), 0x6609: (16, 16), 0x6603: (24, 24),
        0x660e: (16, 16), 0x660f: (24, 24), 0x6610: (32, 32)}
PAD = {"pkcs1": 0, "oaep": 1}
NEGATIVE_STATUS = {"bad_btype": "BLOB_TYPE", "bad_version": "BLOB_VERSION",
                   "bad_reserved": "BLOB_RESERVED", "wrap_alg_sign": "BLOB_WRAP_ALG",
                   "unknown_key_alg": "BLOB_ALG", "truncated": "BLOB_LENGTH",
                   "trailing_byte": "BLOB_LENGTH", "header_only": "BLOB_LENGTH",
                   "empty": "BLOB_LENGTH", "ciphertext_ge_modulus": "BLOB_RANGE"}

D = None  # the daemon shared by the tests that do not stop it


def conn():
    return Conn(D.socket)


def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def expect(reply, status):
    want = STATUS[status]
    assert reply.status == want, "status %d (%s), expected %s" % (reply.status, reply.message(),
                                                                    status)


STRICT = 1


def unwrap(c, name, blob, pad=0, rid=1, flags=None):
    extra = u32("FLAGS", flags) if flags is not None else b""
    return c.call("unwrap", field("NAME", name) + field("BLOB", blob) + u8("PADDING", pad) + extra,
                  rid)


def test_info_and_keys():
    c = conn()
    r = c.call("info")
    expect(r, "OK")
    assert r.get("VERSION") == b"0.1.0"
    assert r.get("TOKEN_LABEL") == D.token.label.encode()
    assert r.u32("KEY_COUNT") == 4 and r.u32("WORKER_COUNT") == 2
    r = c.call("keys")
    expect(r, "OK")
    from harness import parse_fields, T
    entries = [parse_fields(e) for e in r.fields[T["KEY_ENTRY"]]]
    got = {e[T["NAME"]][0].decode(): e for e in entries}
    assert sorted(got) == ["rsa1024", "rsa2048", "rsa4096", "wine1024"], sorted(got)
    assert struct.unpack(">I", got["rsa4096"][T["BITS"]][0])[0] == 4096
    assert got["rsa2048"][T["ID"]][0] == b"\x02"
    assert got["wine1024"][T["LABEL"]][0] == b"wine1024"
    assert struct.unpack(">Q", got["rsa2048"][T["EXPONENT"]][0])[0] == 65537
    expect(c.call("info", field("NAME", "x")), "BAD_REQUEST")


def test_pubkey_formats():
    c = conn()
    for name in ("rsa1024", "rsa2048", "rsa4096", "wine1024"):
        r = c.call("pubkey", field("NAME", name))
        expect(r, "OK")
        with open(vectors("keys", name + ".pub.blob"), "rb") as f:
            assert r.get("PUBLIC_KEY") == f.read(), name
        pem = c.call("pubkey", field("NAME", name) + u8("FORMAT", 1)).get("PUBLIC_KEY")
        with open(vectors("keys", name + ".pub.pem"), "rb") as f:
            assert pem.split() == f.read().split(), name
        der = c.call("pubkey", field("NAME", name) + u8("FORMAT", 2)).get("PUBLIC_KEY")
        want = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER", "-in",
                               vectors("keys", name + ".pub.pem")], capture_output=True,
                              check=True).stdout
        assert der == want, name
    expect(c.call("pubkey", field("NAME", "rsa2048") + u8("FORMAT", 4)), "BAD_REQUEST")
    expect(c.call("pubkey", field("NAME", "nosuch")), "UNKNOWN_KEY")


def test_unwrap_every_vector():
    c = conn()
    lines = read_vector_lines("simpleblob.txt")
    assert len(lines) == 61
    for i, (name, pad, alg, key, blob) in enumerate(lines):
        r = unwrap(c, name, unhex(blob), PAD[pad], rid=i)
        expect(r, "OK")
        assert r.u32("ALG_ID") == int(alg, 16)
        assert r.get("SESSION_KEY") == unhex(key), (name, pad, alg)


def test_negative_vectors():
    c = conn()
    strict_answers, n_decrypt = set(), 0
    for name, cls, blob in read_vector_lines("negative.txt"):
        blob = unhex(blob)
        r = unwrap(c, "rsa2048", blob)
        if cls == "format":
            expect(r, NEGATIVE_STATUS[name])
            assert r.message(), name
            expect(unwrap(c, "rsa2048", blob, flags=STRICT), NEGATIVE_STATUS[name])
            continue
        n_decrypt += 1
        # Implicit rejection: a key of a length the ALG_ID allows, the same every time.
        expect(r, "OK")
        alg = r.u32("ALG_ID")
        assert alg == struct.unpack_from("<I", blob, 4)[0], name
        lo, hi = ALGS[alg]
        key = r.get("SESSION_KEY")
        assert lo <= len(key) <= hi, (name, len(key))
        again = unwrap(c, "rsa2048", blob)
        assert again.get("SESSION_KEY") == key, name
        # STRICT: every decrypt failure is the same answer, byte for byte.
        s = unwrap(c, "rsa2048", blob, flags=STRICT)
        expect(s, "UNWRAP_FAILED")
        strict_answers.add((s.status, s.message(), tuple(sorted(s.fields))))
        # OAEP failures are always that one error.
        o = unwrap(c, "rsa2048", blob, pad=1)
        expect(o, "UNWRAP_FAILED")
        strict_answers.add((o.status, o.message(), tuple(sorted(o.fields))))
    assert n_decrypt == 8
    assert len(strict_answers) == 1, strict_answers
    # Synthetic keys depend on the ciphertext: two random ciphertexts give two keys.
    k1 = unwrap(c, "rsa2048", bytes.fromhex("010200000e66000000a40000") + b"\x01" * 256)
    k2 = unwrap(c, "rsa2048", bytes.fromhex("010200000e66000000a40000") + b"\x02" * 256)
    expect(k1, "OK")
    expect(k2, "OK")
    assert k1.get("SESSION_KEY") != k2.get("SESSION_KEY")
    # A real key under STRICT is still the real key.
    name, pad, alg, key, blob = read_vector_lines("simpleblob.txt")[20]
    r = unwrap(c, name, unhex(blob), PAD[pad], flags=STRICT)
    expect(r, "OK")
    assert r.get("SESSION_KEY") == unhex(key)


def test_copp_open_vectors():
    c = conn()
    lines = read_vector_lines("copp.txt")
    assert len(lines) == 3
    for name, rnd, aes, sseq, cseq, sig in lines:
        r = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)))
        expect(r, "OK")
        assert r.get("RANDOM") == unhex(rnd) and r.get("AES_KEY") == unhex(aes)
        assert r.u32("STATUS_SEQ") == int(sseq) and r.u32("COMMAND_SEQ") == int(cseq)
        r = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)) +
                   field("RANDOM", unhex(rnd)))
        expect(r, "OK")
        r = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)) +
                   field("RANDOM", bytes(16)))
        expect(r, "RANDOM_MISMATCH")
    expect(c.call("copp-open", field("NAME", "rsa1024") + field("SIGNATURE", bytes(256))),
           "KEY_SIZE")
    expect(c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", b"\xff" * 256)),
           "BLOB_RANGE")
    expect(c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", bytes(255))),
           "BAD_REQUEST")
    # A signature that does not open: implicit rejection gives made-up values (the same each
    # time), a mismatch when a random number is expected, and UNWRAP_FAILED under STRICT.
    bogus = field("NAME", "rsa2048") + field("SIGNATURE", bytes(256))
    r1, r2 = c.call("copp-open", bogus), c.call("copp-open", bogus)
    expect(r1, "OK")
    assert len(r1.get("AES_KEY")) == 16 and r1.fields == r2.fields
    expect(c.call("copp-open", bogus + field("RANDOM", bytes(16))), "RANDOM_MISMATCH")
    expect(c.call("copp-open", bogus + u32("FLAGS", STRICT)), "UNWRAP_FAILED")
    name, rnd, aes, sseq, cseq, sig = lines[0]
    r = c.call("copp-open", field("NAME", name) + field("SIGNATURE", unhex(sig)) + u32("FLAGS", STRICT))
    expect(r, "OK")
    assert r.get("AES_KEY") == unhex(aes)


def pub_blob(name):
    with open(vectors("keys", name + ".pub.blob"), "rb") as f:
        return f.read()


def test_wrap_then_unwrap_everything():
    c = conn()
    rid = 0
    for name in ("rsa1024", "rsa2048", "rsa4096"):
        for alg, (lo, hi) in ALGS.items():
            for pad in (0, 1):
                for n in sorted({lo, hi}):
                    key = os.urandom(n)
                    rid += 1
                    # Alternate recipient forms: the HSM key by name, or its public blob.
                    to = field("NAME", name) if rid % 2 else field("PUBLIC_KEY", pub_blob(name))
                    r = c.call("wrap", u32("ALG_ID", alg) + field("SESSION_KEY", key) + to +
                               u8("PADDING", pad), rid)
                    expect(r, "OK")
                    assert r.get("SESSION_KEY") is None  # only generated keys come back
                    blob = r.get("BLOB")
                    assert len(blob) == 12 + int(name[3:]) // 8
                    u = unwrap(c, name, blob, pad, rid)
                    expect(u, "OK")
                    assert u.get("SESSION_KEY") == key and u.u32("ALG_ID") == alg
                # A generated key of the algorithm's length.
                r = c.call("wrap", u32("ALG_ID", alg) + field("NAME", name) + u8("PADDING", pad))
                expect(r, "OK")
                key = r.get("SESSION_KEY")
                assert len(key) == hi
                assert unwrap(c, name, r.get("BLOB"), pad).get("SESSION_KEY") == key


def test_wrap_refusals():
    c = conn()
    to = field("NAME", "rsa2048")
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + field("SESSION_KEY", bytes(15)) + to),
           "KEY_LENGTH")
    expect(c.call("wrap", u32("ALG_ID", 0x6801) + field("SESSION_KEY", bytes(4)) + to),
           "KEY_LENGTH")
    expect(c.call("wrap", u32("ALG_ID", 0x1234) + field("SESSION_KEY", bytes(16)) + to),
           "BLOB_ALG")
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + field("SESSION_KEY", bytes(16))),
           "BAD_REQUEST")
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + to + field("PUBLIC_KEY", pub_blob("rsa2048"))),
           "BAD_REQUEST")
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + field("PUBLIC_KEY", b"not a key")),
           "BAD_PUBLIC_KEY")
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + u32("KEY_BITS", 128) + to), "BAD_REQUEST")
    expect(c.call("wrap", u32("ALG_ID", 0x6801) + u32("KEY_BITS", 36) + to), "KEY_LENGTH")
    r = c.call("wrap", u32("ALG_ID", 0x6801) + u32("KEY_BITS", 40) + to)
    expect(r, "OK")
    assert len(r.get("SESSION_KEY")) == 5
    expect(c.call("wrap", u32("ALG_ID", 0x660e) + to + u8("PADDING", 7)), "BAD_REQUEST")


def openssl_decrypt(name, ciphertext, oaep):
    cmd = ["openssl", "pkeyutl", "-decrypt", "-inkey", vectors("keys", name + ".pem")]
    if oaep:
        cmd += ["-pkeyopt", "rsa_padding_mode:oaep"]
    return subprocess.run(cmd, input=ciphertext, capture_output=True, check=True).stdout


def test_wrap_checked_by_openssl():
    c = conn()
    recipients = {
        "blob": pub_blob("rsa2048"),
        "pem": open(vectors("keys", "rsa2048.pub.pem"), "rb").read(),
        "der-spki": open(vectors("..", "data", "rsa2048.pub.der"), "rb").read(),
        "pem-cert": open(vectors("..", "data", "rsa2048.crt.pem"), "rb").read(),
        "der-cert": open(vectors("..", "data", "rsa2048.crt.der"), "rb").read(),
    }
    for kind, pub in recipients.items():
        for oaep in (0, 1):
            key = os.urandom(32)
            r = c.call("wrap", u32("ALG_ID", 0x6610) + field("SESSION_KEY", key) +
                       field("PUBLIC_KEY", pub) + u8("PADDING", oaep))
            expect(r, "OK")
            blob = r.get("BLOB")
            assert blob[:12] == bytes.fromhex("0102000010660000" "00a40000"), kind
            assert openssl_decrypt("rsa2048", blob[12:][::-1], oaep) == key, (kind, oaep)


def test_copp_sign_then_open():
    c = conn()
    for to in (field("NAME", "rsa2048"), field("PUBLIC_KEY", pub_blob("rsa2048"))):
        rnd = os.urandom(16)
        r = c.call("copp-sign", to + field("RANDOM", rnd))
        expect(r, "OK")
        sig, aes = r.get("SIGNATURE"), r.get("AES_KEY")
        assert len(sig) == 256 and len(aes) == 16 and r.get("RANDOM") == rnd
        o = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", sig) +
                   field("RANDOM", rnd))
        expect(o, "OK")
        assert o.get("AES_KEY") == aes
        assert o.u32("STATUS_SEQ") == r.u32("STATUS_SEQ")
        assert o.u32("COMMAND_SEQ") == r.u32("COMMAND_SEQ")
    given = field("AES_KEY", bytes(range(16))) + u32("STATUS_SEQ", 7) + u32("COMMAND_SEQ", 0xffffffff)
    r = c.call("copp-sign", field("NAME", "rsa2048") + field("RANDOM", bytes(16)) + given)
    expect(r, "OK")
    o = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", r.get("SIGNATURE")))
    assert o.get("AES_KEY") == bytes(range(16)) and o.u32("STATUS_SEQ") == 7
    assert o.u32("COMMAND_SEQ") == 0xffffffff
    # The plaintext is exactly what formats.md says: reversed, PKCS#1 v1.5 under the key.
    m = openssl_decrypt("rsa2048", r.get("SIGNATURE")[::-1], False)
    assert m == (bytes(16) + bytes(range(16)) + struct.pack("<II", 7, 0xffffffff))[::-1]
    expect(c.call("copp-sign", field("NAME", "rsa1024") + field("RANDOM", bytes(16))), "KEY_SIZE")
    expect(c.call("copp-sign", field("PUBLIC_KEY", pub_blob("rsa4096")) + field("RANDOM", bytes(16))),
           "KEY_SIZE")
    expect(c.call("copp-sign", field("NAME", "rsa2048") + field("RANDOM", bytes(15))), "BAD_REQUEST")


def still_serving():
    """A fresh connection gets a correct unwrap of a vector."""
    name, pad, alg, key, blob = read_vector_lines("simpleblob.txt")[20]
    c = conn()
    r = unwrap(c, name, unhex(blob), PAD[pad])
    expect(r, "OK")
    assert r.get("SESSION_KEY") == unhex(key)
    c.close()


def test_malformed_frames_keep_connection():
    c = conn()
    cases = [
        (frame(99), "UNKNOWN_OP"),
        (frame("info", version=2), "BAD_VERSION"),
        (frame("unwrap", b"\x00\x01\x00\x10abc"), "BAD_REQUEST"),              # truncated field
        (frame("unwrap", b"\x00\x63\x00\x00"), "BAD_REQUEST"),                  # unknown tag
        (frame("unwrap", field("NAME", "a") + field("NAME", "b")), "BAD_REQUEST"),
        (frame("unwrap", field("NAME", "rsa2048")), "BAD_REQUEST"),             # no BLOB
        (frame("unwrap", field("NAME", "nosuch") + field("BLOB", b"x")), "UNKNOWN_KEY"),
        (frame("unwrap", field("NAME", "a\0b") + field("BLOB", b"x")), "BAD_REQUEST"),
        (frame("unwrap", field("NAME", "x" * 65) + field("BLOB", b"x")), "BAD_REQUEST"),
        (frame("wrap", field("ALG_ID", b"\x01\x02")), "BAD_REQUEST"),           # u32 of 2 bytes
    ]
    for i, (data, status) in enumerate(cases):
        c.send(data)
        r = c.recv()
        expect(r, status)
        assert r.message(), status
    rnd = random.Random(7)
    for i in range(300):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
        c.send(frame(rnd.choice([1, 2, 3, 4, 5, 6, 7, 0, 8, 255]), body, rid=i))
        r = c.recv()
        assert r.id == i
    r = c.call("info")
    expect(r, "OK")
    still_serving()


def test_fatal_frames_close_connection():
    for data, status in ((struct.pack(">I", 70000) + bytes(8), "FRAME_TOO_LARGE"),
                         (struct.pack(">I", 0xffffffff) + bytes(8), "FRAME_TOO_LARGE"),
                         (struct.pack(">I", 3) + bytes(8), "BAD_FRAME")):
        c = conn()
        c.send(data)
        expect(c.recv(), status)
        try:
            assert c.s.recv(1) == b"", "connection left open"
        except ConnectionResetError:
            pass
    # A frame of exactly the maximum size is read and answered.
    c = conn()
    big = field("PUBLIC_KEY", bytes(60000)) + field("BLOB", bytes(2060)) + field("MESSAGE", bytes(1020))
    pad = 65536 - 12 - len(big) - 4
    data = frame("wrap", big + field("LABEL", b"x" * pad))
    assert len(data) == 65536, len(data)
    c.send(data)
    expect(c.recv(), "BAD_REQUEST")
    still_serving()


def test_pipelining():
    lines = read_vector_lines("simpleblob.txt")
    c = conn()
    batch = b""
    for i in range(200):
        name, pad, alg, key, blob = lines[i % len(lines)]
        batch += frame("unwrap", field("NAME", name) + field("BLOB", unhex(blob)) +
                       u8("PADDING", PAD[pad]), rid=1000 + i)
    c.send(batch)
    seen = set()
    for _ in range(200):
        r = c.recv()
        expect(r, "OK")
        i = r.id - 1000
        assert r.get("SESSION_KEY") == unhex(lines[i % len(lines)][3])
        seen.add(r.id)
    assert len(seen) == 200


def test_clients_that_leave_early():
    lines = read_vector_lines("simpleblob.txt")
    for _ in range(20):
        c = conn()
        for i in range(10):
            name, pad, alg, key, blob = lines[i]
            c.send(frame("unwrap", field("NAME", name) + field("BLOB", unhex(blob)) +
                         u8("PADDING", PAD[pad]), rid=i))
        c.send(frame("info")[:7])   # and half a frame
        c.close()
    c = conn()
    c.send(frame("info")[:5])
    c.s.shutdown(socket.SHUT_WR)
    assert c.s.recv(10) == b""
    still_serving()
    assert D.alive()


def test_200_concurrent_clients():
    lines = read_vector_lines("simpleblob.txt")
    errors = []

    def client(k):
        try:
            c = conn()
            for j in range(3):
                name, pad, alg, key, blob = lines[(k * 3 + j) % len(lines)]
                r = unwrap(c, name, unhex(blob), PAD[pad], rid=j)
                if r.status != 0 or r.get("SESSION_KEY") != unhex(key):
                    errors.append((k, j, r.status, r.message()))
                w = c.call("wrap", u32("ALG_ID", 0x660e) + field("NAME", "rsa2048"), rid=100 + j)
                if w.status != 0:
                    errors.append((k, "wrap", w.status, w.message()))
            c.close()
        except Exception as e:  # noqa: BLE001 - any failure counts
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    still_serving()


def test_public_work_does_not_wait_for_the_hsm():
    """wrap, copp-sign and pubkey run on their own pool: a deep HSM queue does not delay them."""
    lines = [l for l in read_vector_lines("simpleblob.txt") if l[0] == "rsa4096" and l[1] == "pkcs1"]
    busy = conn()
    busy.send(b"".join(frame("unwrap", field("NAME", "rsa4096") +
                             field("BLOB", unhex(lines[i % len(lines)][4])), rid=i)
                       for i in range(200)))   # 200 × ~4 ms of HSM work over 2 workers
    c = conn()
    start = time.time()
    for i in range(20):
        expect(c.call("wrap", u32("ALG_ID", 0x660e) + field("NAME", "rsa2048"), rid=i), "OK")
        expect(c.call("copp-sign", field("NAME", "rsa2048") + field("RANDOM", bytes(16)), rid=i),
               "OK")
        expect(c.call("pubkey", field("NAME", "rsa4096"), rid=i), "OK")
    elapsed = time.time() - start
    # The unwraps are not all answered yet: the public work did not wait for the HSM queue
    # (behaviour, not speed: a slower machine slows both alike).
    answered = frames_available(busy)
    print("   60 public calls in %.3f s while %d of 200 unwraps were answered" % (elapsed, answered))
    assert answered < 200, "the HSM queue drained first"
    busy.close()


def frames_available(c):
    """Whole frames that have already arrived on c, without waiting for more."""
    c.s.settimeout(0)
    data = b""
    try:
        while True:
            chunk = c.s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    c.s.settimeout(30)
    n = off = 0
    while off + 4 <= len(data):
        off += 4 + struct.unpack_from(">I", data, off)[0]
        n += off <= len(data)
    return n


def test_answers_for_large_keys():
    """Answers beyond the daemon's 1 KiB inline reply: an 8192-bit key's public key in
    every format, SIMPLEBLOBs wrapped to it (by name and by public key) and unwrapped."""
    from harness import Token, KEYS, parse_fields
    with Workspace() as root:
        token = Token(os.path.join(root, "hsm"))
        token.util("--import", os.path.join(os.path.dirname(__file__), "data", "rsa8192.pem"),
                   "--token", token.label, "--label", "rsa8192", "--id", "08", "--pin", token.pin)
        d = Daemon(root, token=token, keys=dict(KEYS, rsa8192=("rsa8192", "08")))
        try:
            c = Conn(d.socket)
            sizes = {}
            for fmt in (0, 1, 2):
                r = c.call("pubkey", field("NAME", "rsa8192") + u8("FORMAT", fmt))
                expect(r, "OK")
                sizes[fmt] = len(r.get("PUBLIC_KEY"))
            blob = c.call("pubkey", field("NAME", "rsa8192")).get("PUBLIC_KEY")
            assert sizes[0] == 20 + 1024 and blob[:8] == bytes.fromhex("0602000000a40000"), sizes
            assert sizes[1] > 1400 and sizes[2] > 1000, sizes
            pem = c.call("pubkey", field("NAME", "rsa8192") + u8("FORMAT", 1)).get("PUBLIC_KEY")
            for to in (field("NAME", "rsa8192"), field("PUBLIC_KEY", blob), field("PUBLIC_KEY", pem)):
                for pad in (0, 1):
                    r = c.call("wrap", u32("ALG_ID", 0x6610) + to + u8("PADDING", pad))
                    expect(r, "OK")
                    assert len(r.get("BLOB")) == 12 + 1024
                    u = unwrap(c, "rsa8192", r.get("BLOB"), pad)
                    expect(u, "OK")
                    assert u.get("SESSION_KEY") == r.get("SESSION_KEY")
            # The C library and the CLI take the same answers.
            out = os.path.join(root, "pub.blob")
            p = subprocess.run([os.environ["KT_CLI"], "-s", d.socket, "pubkey", "rsa8192",
                                "-o", out], capture_output=True)
            assert p.returncode == 0, p
            with open(out, "rb") as f:
                assert f.read() == blob
        finally:
            d.stop()


def main():
    global D
    with Workspace() as root:
        D = Daemon(root)
        try:
            run_tests([test_info_and_keys, test_pubkey_formats, test_unwrap_every_vector,
                       test_negative_vectors, test_copp_open_vectors,
                       test_wrap_then_unwrap_everything, test_wrap_refusals,
                       test_wrap_checked_by_openssl, test_copp_sign_then_open,
                       test_malformed_frames_keep_connection, test_fatal_frames_close_connection,
                       test_pipelining, test_clients_that_leave_early, test_200_concurrent_clients,
                       test_public_work_does_not_wait_for_the_hsm, test_answers_for_large_keys])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
