"""The keytrans command line against a running keytransd: every command and option,
outputs (human, --json, files) checked byte for byte against the vectors and OpenSSL."""
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data", "copp"))
from harness import Daemon, Workspace, read_vector_lines, run_tests, vectors  # noqa: E402
import make_copp_xml  # noqa: E402

# ALG_ID -> (CALG name, shortest key, longest key) as in docs/formats.md.
ALGS = {0x6602: ("CALG_RC2", 5, 16), 0x6801: ("CALG_RC4", 5, 16), 0x6601: ("CALG_DES", 8, 8),
        0x6609: ("CALG_3DES_112", 16, 16), 0x6603: ("CALG_3DES", 24, 24),
        0x660e: ("CALG_AES_128", 16, 16), 0x660f: ("CALG_AES_192", 24, 24),
        0x6610: ("CALG_AES_256", 32, 32)}
KEY_NAMES = ("rsa1024", "rsa2048", "rsa4096", "wine1024")
BITS = {"rsa1024": 1024, "rsa2048": 2048, "rsa4096": 4096, "wine1024": 1024}
NEGATIVE_STATUS = {"bad_btype": "BLOB_TYPE", "bad_version": "BLOB_VERSION",
                   "bad_reserved": "BLOB_RESERVED", "wrap_alg_sign": "BLOB_WRAP_ALG",
                   "unknown_key_alg": "BLOB_ALG", "truncated": "BLOB_LENGTH",
                   "trailing_byte": "BLOB_LENGTH", "header_only": "BLOB_LENGTH",
                   "empty": "BLOB_LENGTH", "ciphertext_ge_modulus": "BLOB_RANGE"}
HEX = re.compile(r"[0-9a-f]*")

D = None      # the daemon
TMP = None    # a folder for the files the tests write
_counter = [0]


# --- helpers ---------------------------------------------------------------

def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def data_file(name):
    return os.path.join(os.environ["KT_VECTORS"], "..", "data", name)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tmpfile(data=None, stem="f"):
    """A fresh path in TMP; written with data when given."""
    _counter[0] += 1
    path = os.path.join(TMP, "%s-%d" % (stem, _counter[0]))
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    return path


def kt(*args, input=None, env=None, sock=True):
    """Runs the CLI; -s D.socket first unless sock is False."""
    cmd = [os.environ["KT_CLI"]] + (["-s", D.socket] if sock else []) + [str(a) for a in args]
    r = subprocess.run(cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, env=env, timeout=60)
    # In a sanitizer build, a report (UBSan's does not change the exit status) is a failure.
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def ok(*args, **kw):
    r = kt(*args, **kw)
    assert r.returncode == 0, (args, r.returncode, r.stdout[:300], r.stderr)
    return r


def one_json(out):
    """stdout must be exactly one JSON object, one line."""
    text = out.decode()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text[:300])
    obj = json.loads(text)
    assert isinstance(obj, dict), obj
    return obj


def js(*args, rc=0, **kw):
    """Runs with --json; checks the exit status and returns the one object."""
    r = kt("--json", *args, **kw)
    assert r.returncode == rc, (args, r.returncode, r.stdout[:300], r.stderr)
    obj = one_json(r.stdout)
    if rc != 0:
        assert set(obj) == {"error", "code", "message"}, obj
        assert isinstance(obj["message"], str) and obj["message"], obj
        # The error is said once, on stdout.
        assert r.stderr == b"", r.stderr
    return obj


def err(*args, rc, code, **kw):
    """A failure with --json: exit status rc and error code; returns the object."""
    obj = js(*args, rc=rc, **kw)
    assert obj["error"] == code, (args, obj)
    return obj


def human_err(*args, rc, code, **kw):
    """A failure without --json: nothing on stdout, "keytrans: CODE: ..." on stderr."""
    r = kt(*args, **kw)
    assert r.returncode == rc, (args, r.returncode, r.stderr)
    assert r.stdout == b"", r.stdout
    assert r.stderr.decode().startswith("keytrans: %s" % code if code else "keytrans: "), r.stderr
    return r


def hexfield(obj, key, nbytes=None):
    v = obj[key]
    assert isinstance(v, str) and HEX.fullmatch(v), (key, v)   # lowercase hex only
    b = bytes.fromhex(v)
    if nbytes is not None:
        assert len(b) == nbytes, (key, len(b))
    return b


def human_fields(text):
    out = {}
    for line in text.strip().split("\n"):
        k, v = line.split(": ", 1)
        assert k not in out, k
        out[k] = v
    return out


def keyblob(alg, key):
    """PLAINTEXTKEYBLOB: 08 02 0000 | alg LE32 | len LE32 | key."""
    return bytes([8, 2, 0, 0]) + struct.pack("<II", alg, len(key)) + key


def simpleblob_header(alg):
    return bytes([1, 2, 0, 0]) + struct.pack("<II", alg, 0xa400)


def pub_blob_file(name):
    return vectors("keys", name + ".pub.blob")


def openssl_decrypt(name, ciphertext, oaep):
    cmd = ["openssl", "pkeyutl", "-decrypt", "-inkey", vectors("keys", name + ".pem")]
    if oaep:
        cmd += ["-pkeyopt", "rsa_padding_mode:oaep"]
    return subprocess.run(cmd, input=ciphertext, capture_output=True, check=True).stdout


def check_simpleblob(blob, name, alg, key, oaep):
    """Header, length, and an independent decryption with OpenSSL."""
    assert len(blob) == 12 + BITS[name] // 8, (name, len(blob))
    assert blob[:12] == simpleblob_header(alg), blob[:12].hex()
    assert openssl_decrypt(name, blob[12:][::-1], oaep) == key, (name, hex(alg), oaep)


def unwrap_json(name, blob, oaep):
    """Unwraps blob with the CLI (-i FILE, --json) and returns (alg_id, key)."""
    args = ["unwrap", name, "-i", tmpfile(blob, "sb")] + (["--oaep"] if oaep else [])
    obj = js(*args)
    assert set(obj) == {"alg_id", "alg", "key"}, obj
    assert obj["alg"] == ALGS[obj["alg_id"]][0], obj
    return obj["alg_id"], hexfield(obj, "key")


def spellings(alg, digit_names=True):
    """The three ways to name an algorithm: bare name, CALG_ name, 0x number.
    digit_names=False swaps the bare names that start with a digit ("3DES", which
    test_wrap_alg_spellings covers) for "calg_3des", so the other tests do not
    depend on them."""
    calg = ALGS[alg][0]
    bare = calg[len("CALG_"):]
    if not digit_names and bare[0].isdigit():
        bare = calg.lower()
    return [bare, calg, "0x%04x" % alg]


# --- info, keys, pubkey ------------------------------------------------------

def test_info():
    r = ok("info")
    f = human_fields(r.stdout.decode())
    assert set(f) == {"version", "token_label", "key_count", "worker_count", "uptime_s",
                      "hsm hsm"}, f
    assert f["version"] == "0.1.0" and f["token_label"] == D.token.label, f
    assert f["key_count"] == "4" and f["worker_count"] == "2", f
    assert 0 <= int(f["uptime_s"]) < 3600, f
    assert f["hsm hsm"] == "token %s, up, 0 in flight, 0 faults" % D.token.label, f
    obj = js("info")
    assert set(obj) == {"version", "token_label", "key_count", "worker_count", "uptime_s",
                        "hsms"}, obj
    assert obj["version"] == "0.1.0" and obj["token_label"] == D.token.label
    assert obj["key_count"] == 4 and obj["worker_count"] == 2
    assert isinstance(obj["uptime_s"], int) and 0 <= obj["uptime_s"] < 3600
    assert obj["hsms"] == [{"name": "hsm", "token_label": D.token.label, "state": "up",
                            "in_flight": 0, "faults": 0}], obj
    # --json after the command, and the --socket=PATH spelling.
    r = kt("--socket=" + D.socket, "info", "--json", sock=False)
    assert r.returncode == 0 and one_json(r.stdout)["key_count"] == 4, r
    err("info", "extra", rc=2, code="USAGE")


def test_keys():
    want = [{"name": n, "label": n, "id": "%02x" % (i + 1), "bits": BITS[n], "exponent": 65537,
             "mechanism": "raw"}
            for i, n in enumerate(KEY_NAMES)]
    obj = js("keys")
    assert obj == {"keys": want}, obj
    lines = ok("keys").stdout.decode().strip().split("\n")
    assert lines[0].split() == ["NAME", "BITS", "EXPONENT", "MECH", "LABEL", "ID"], lines[0]
    rows = [line.split() for line in lines[1:]]
    assert rows == [[k["name"], str(k["bits"]), "65537", "raw", k["label"], k["id"]]
                    for k in want], rows


def test_pubkey_every_key_every_format():
    for name in KEY_NAMES:
        blob = read(pub_blob_file(name))
        pem = read(vectors("keys", name + ".pub.pem"))
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER", "-in",
                              vectors("keys", name + ".pub.pem")], capture_output=True,
                             check=True).stdout
        assert blob[:8] == bytes.fromhex("0602000000a40000") and len(blob) == 20 + BITS[name] // 8
        for fmt, want in (("blob", blob), ("pem", pem), ("der", der)):
            fmt_args = [] if fmt == "blob" else ["--format", fmt]   # blob is the default
            # To stdout.
            r = ok("pubkey", name, *fmt_args)
            assert r.stdout == want, (name, fmt)
            # To a file with -o; nothing on stdout.
            path = tmpfile(stem="pub")
            r = ok("pubkey", name, "--format=" + fmt, "-o", path)
            assert r.stdout == b"" and read(path) == want, (name, fmt)
            # --json: the data inline (PEM as text, the others as hex).
            obj = js("pubkey", name, "--format", fmt)
            assert set(obj) == {"name", "format", "data"} and obj["name"] == name, obj
            assert obj["format"] == fmt, obj
            if fmt == "pem":
                assert obj["data"].encode() == want, name
            else:
                assert hexfield(obj, "data") == want, (name, fmt)
            # --json with -o: the file and the JSON.
            path = tmpfile(stem="pub")
            obj = js("pubkey", name, "--format", fmt, "--out", path)
            assert read(path) == want and obj["format"] == fmt, (name, fmt)
    err("pubkey", "rsa2048", "--format", "xml", rc=2, code="USAGE")
    err("pubkey", rc=2, code="USAGE")
    err("pubkey", "rsa2048", "-o", "-", rc=2, code="USAGE")   # stdout carries the JSON
    o = err("pubkey", "nosuch", rc=1, code="UNKNOWN_KEY")
    assert "nosuch" in o["message"], o
    # A failed request leaves no output file behind, and an existing one alone.
    path = tmpfile(stem="pub")
    err("pubkey", "nosuch", "-o", path, rc=1, code="UNKNOWN_KEY")
    assert not os.path.exists(path)
    path = tmpfile(b"old contents " * 100, "pub")
    err("pubkey", "nosuch", "-o", path, rc=1, code="UNKNOWN_KEY")
    assert read(path) == b"old contents " * 100
    # A longer existing file is replaced exactly (truncated).
    ok("pubkey", "rsa1024", "-o", path)
    assert read(path) == read(pub_blob_file("rsa1024"))


# --- unwrap ----------------------------------------------------------------

def test_unwrap_every_vector():
    lines = read_vector_lines("simpleblob.txt")
    assert len(lines) == 61
    for i, (name, pad, alg, key, blob) in enumerate(lines):
        alg, key, blob = int(alg, 16), unhex(key), unhex(blob)
        oaep = ["--oaep"] if pad == "oaep" else []
        want_json = {"alg_id": alg, "alg": ALGS[alg][0], "key": key.hex()}
        want_blob = keyblob(alg, key)
        blob_path = tmpfile(blob, "sb")
        # -i FILE, --json: the exact object.
        assert js("unwrap", name, "-i", blob_path, *oaep) == want_json, (i, name, pad)
        # stdin, --json, and the --in= spelling on alternate lines.
        if i % 2:
            assert js("unwrap", name, *oaep, input=blob) == want_json, (i, name)
        else:
            assert js("unwrap", name, "--in=" + blob_path, *oaep) == want_json, (i, name)
            assert js("unwrap", name, "-i", "-", *oaep, input=blob) == want_json, (i, name)
        # -o KEYBLOBFILE: the PLAINTEXTKEYBLOB bytes, mode 0600, summary on stdout.
        out = tmpfile(stem="kb")
        r = ok("unwrap", name, "-i", blob_path, "-o", out, *oaep)
        assert read(out) == want_blob, (i, name, read(out).hex())
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600, oct(os.stat(out).st_mode)
        assert human_fields(r.stdout.decode()) == {"alg": ALGS[alg][0],
                                                   "key_len": str(len(key))}, r.stdout
        # No -o: the PLAINTEXTKEYBLOB on stdout, the summary on stderr (a few lines suffice).
        if i % 8 == 0:
            r = ok("unwrap", name, *oaep, input=blob)
            assert r.stdout == want_blob, i
            assert human_fields(r.stderr.decode())["alg"] == ALGS[alg][0], r.stderr
            # --json with -o: the file and the JSON.
            out = tmpfile(stem="kb")
            assert js("unwrap", name, "-o", out, *oaep, input=blob) == want_json
            assert read(out) == want_blob


def test_unwrap_negative_vectors():
    decrypt_json, decrypt_human = set(), set()
    n_format = n_decrypt = 0
    for name, cls, blob in read_vector_lines("negative.txt"):
        blob = unhex(blob)
        path = tmpfile(blob, "neg")
        if cls == "format":
            n_format += 1
            o = err("unwrap", "rsa2048", "-i", path, rc=1, code=NEGATIVE_STATUS[name])
            human_err("unwrap", "rsa2048", "-i", path, rc=1, code=NEGATIVE_STATUS[name] + ": ")
            err("unwrap", "rsa2048", rc=1, code=NEGATIVE_STATUS[name], input=blob)
        else:
            assert cls == "decrypt", cls
            n_decrypt += 1
            # By default, implicit rejection: a made-up key, the same every time.
            r1 = kt("--json", "unwrap", "rsa2048", "-i", path)
            r2 = kt("--json", "unwrap", "rsa2048", "-i", path)
            assert r1.returncode == 0 and r1.stdout == r2.stdout, (name, r1, r2)
            got = one_json(r1.stdout)
            assert got["alg_id"] == struct.unpack_from("<I", blob, 4)[0], (name, got)
            r = kt("--json", "unwrap", "rsa2048", "--strict", "-i", path)
            assert r.returncode == 1, (name, r)
            assert one_json(r.stdout)["error"] == "UNWRAP_FAILED", (name, r.stdout)
            decrypt_json.add(r.stdout)
            r = human_err("unwrap", "rsa2048", "--strict", "-i", path, rc=1, code="UNWRAP_FAILED: ")
            decrypt_human.add(r.stderr)
            # OAEP unpadding of the same bytes fails the same way.
            r = kt("--json", "unwrap", "rsa2048", "--oaep", "-i", path)
            assert r.returncode == 1
            decrypt_json.add(r.stdout)
    assert n_format == 10 and n_decrypt == 8, (n_format, n_decrypt)
    # A good blob unwrapped with the wrong padding: the same answer again (under --strict
    # for PKCS#1 v1.5, always for OAEP).
    for name, pad, alg, key, blob in read_vector_lines("simpleblob.txt"):
        if name == "rsa2048":
            wrong = ["--strict"] if pad == "oaep" else ["--oaep"]
            r = kt("--json", "unwrap", "rsa2048", *wrong, input=unhex(blob))
            assert r.returncode == 1
            decrypt_json.add(r.stdout)
    # Every decryption failure is one and the same JSON object, byte for byte.
    assert len(decrypt_json) == 1, decrypt_json
    assert len(decrypt_human) == 1, decrypt_human
    # A blob for rsa2048 sent to rsa4096 is a length error (public information).
    name, pad, alg, key, blob = [l for l in read_vector_lines("simpleblob.txt")
                                 if l[0] == "rsa2048"][0]
    err("unwrap", "rsa4096", rc=1, code="BLOB_LENGTH", input=unhex(blob))


def test_unwrap_usage_errors():
    blob = tmpfile(unhex(read_vector_lines("simpleblob.txt")[0][4]), "sb")
    err("unwrap", "-i", blob, rc=2, code="USAGE")                      # no NAME
    err("unwrap", "rsa1024", "-i", os.path.join(TMP, "missing"), rc=1, code="INPUT")
    err("unwrap", "rsa1024", "-i", blob, "-o", "-", rc=2, code="USAGE")
    err("unwrap", "rsa1024", "rsa2048", "-i", blob, rc=2, code="USAGE")  # two names
    err("unwrap", "rsa1024", "-i", blob, "--oaep=1", rc=2, code="USAGE")
    err("unwrap", "rsa1024", "-i", blob, "-i", blob, rc=2, code="USAGE")  # given twice
    err("unwrap", "rsa1024", "--pad", "x", rc=2, code="USAGE")
    err("unwrap", "rsa1024", rc=1, code="INPUT", input=b"\0" * (64 * 1024 + 1))  # too large
    o = err("unwrap", "nosuch", "-i", blob, rc=1, code="UNKNOWN_KEY")
    assert "nosuch" in o["message"], o
    human_err("unwrap", "nosuch", "-i", blob, rc=1, code="UNKNOWN_KEY: ")


# --- wrap ------------------------------------------------------------------

def test_wrap_every_alg_padding_size():
    """Given and generated keys, every ALG, both paddings, 1024/2048/4096 bits; each
    result unwrapped with the CLI and decrypted with OpenSSL."""
    n = 0
    for name in ("rsa1024", "rsa2048", "rsa4096"):
        for alg, (calg, lo, hi) in ALGS.items():
            for oaep in (False, True):
                n += 1
                pad = ["--oaep"] if oaep else []
                spelled = spellings(alg, digit_names=False)[n % 3]
                to = ["--to-key", name] if n % 2 else ["--to", pub_blob_file(name)]
                key = os.urandom(hi if n % 4 < 2 else lo)
                # Given key: alternately -o FILE (no summary), --json, and stdout.
                mode = n % 3
                if mode == 0:
                    path = tmpfile(stem="wrap")
                    r = ok("wrap", *to, "--alg", spelled, "--key", key.hex(), *pad, "-o", path)
                    assert r.stdout == b"" and r.stderr == b"", r
                    blob = read(path)
                elif mode == 1:
                    obj = js("wrap", *to, "--alg", spelled, "--key", key.hex().upper(), *pad)
                    assert set(obj) == {"alg_id", "alg", "blob"}, obj   # no "key": given
                    assert obj["alg_id"] == alg and obj["alg"] == calg, obj
                    blob = hexfield(obj, "blob")
                else:
                    r = ok("wrap", *to, "--alg", spelled, "--key", "0x" + key.hex(), *pad)
                    blob = r.stdout
                check_simpleblob(blob, name, alg, key, oaep)
                assert unwrap_json(name, blob, oaep) == (alg, key), (name, calg, oaep)
                # Generated key: the algorithm's longest length.
                obj = js("wrap", *to, "--alg", spelled, "--generate", *pad)
                assert set(obj) == {"alg_id", "alg", "blob", "key"}, obj
                assert obj["alg_id"] == alg and obj["alg"] == calg, obj
                gkey = hexfield(obj, "key", hi)
                gblob = hexfield(obj, "blob")
                check_simpleblob(gblob, name, alg, gkey, oaep)
                assert unwrap_json(name, gblob, oaep) == (alg, gkey)
    # Generated, without --json: blob on stdout and "alg/key" on stderr, or the
    # summary on stdout when the blob goes to a file.
    r = ok("wrap", "--to-key", "rsa2048", "--alg", "AES_256", "--generate")
    f = human_fields(r.stderr.decode())
    assert f["alg"] == "CALG_AES_256" and HEX.fullmatch(f["key"]) and len(f["key"]) == 64, f
    assert unwrap_json("rsa2048", r.stdout, False) == (0x6610, bytes.fromhex(f["key"]))
    path = tmpfile(stem="wrap")
    r = ok("wrap", "--to-key", "rsa2048", "--alg", "CALG_3DES", "--generate", "-o", path, "--oaep")
    f = human_fields(r.stdout.decode())
    assert f["alg"] == "CALG_3DES" and len(f["key"]) == 48, f
    assert unwrap_json("rsa2048", read(path), True) == (0x6603, bytes.fromhex(f["key"]))


def test_wrap_alg_spellings():
    """Every ALG by bare name, CALG_ name, 0x number (and lower case, decimal)."""
    refused = []
    for alg, (calg, lo, hi) in ALGS.items():
        key = os.urandom(hi)
        for spelled in spellings(alg) + [calg.lower(), calg[5:].lower().replace("_", "-"),
                                         str(alg)]:
            r = kt("--json", "wrap", "--to-key", "rsa2048", "--alg", spelled, "--key", key.hex())
            if r.returncode != 0:
                refused.append((spelled, r.returncode, r.stdout.decode().strip()))
                continue
            obj = one_json(r.stdout)
            assert obj["alg_id"] == alg and obj["alg"] == calg, (spelled, obj)
            assert unwrap_json("rsa2048", hexfield(obj, "blob"), False) == (alg, key), spelled
    # "3DES" and "3DES_112" are names too (the spec: "ALG is a name ... or a number").
    assert not refused, refused
    for bad in ("AES_512", "CALG_", "0x1234", "0x660e0", "RSA_KEYX", "aes 128"):
        err("wrap", "--to-key", "rsa2048", "--alg", bad, "--key", "00" * 16, rc=2, code="USAGE")


def test_wrap_recipient_files():
    """--to with a PUBLICKEYBLOB, PEM and DER SubjectPublicKeyInfo, PEM and DER certificates."""
    files = [pub_blob_file("rsa2048"), vectors("keys", "rsa2048.pub.pem"),
             data_file("rsa2048.pub.der"), data_file("rsa2048.crt.pem"),
             data_file("rsa2048.crt.der")]
    for path in files:
        for oaep in (False, True):
            pad = ["--oaep"] if oaep else []
            key = os.urandom(32)
            obj = js("wrap", "--to", path, "--alg", "AES_256", "--key", key.hex(), *pad)
            blob = hexfield(obj, "blob")
            check_simpleblob(blob, "rsa2048", 0x6610, key, oaep)
            assert unwrap_json("rsa2048", blob, oaep) == (0x6610, key), path
    # PEM SPKI of the other key sizes too.
    for name in ("rsa1024", "rsa4096"):
        key = os.urandom(16)
        obj = js("wrap", "--to", vectors("keys", name + ".pub.pem"), "--alg", "RC4",
                 "--key", key.hex(), "--oaep")
        check_simpleblob(hexfield(obj, "blob"), name, 0x6801, key, True)
    # Not RSA, too small, not a key at all.
    err("wrap", "--to", data_file("ec256.pub.pem"), "--alg", "AES_128", "--generate",
        rc=1, code="BAD_PUBLIC_KEY")
    err("wrap", "--to", data_file("rsa512.pub.pem"), "--alg", "AES_128", "--generate",
        rc=1, code="KEY_SIZE")
    err("wrap", "--to", tmpfile(b"not a key", "garbage"), "--alg", "AES_128", "--generate",
        rc=1, code="BAD_PUBLIC_KEY")
    err("wrap", "--to", tmpfile(b"", "empty"), "--alg", "AES_128", "--generate",
        rc=2, code="USAGE")
    err("wrap", "--to", os.path.join(TMP, "missing"), "--alg", "AES_128", "--generate",
        rc=1, code="INPUT")


def test_wrap_generate_bits_and_key_out():
    for alg in (0x6602, 0x6801):
        calg = ALGS[alg][0]
        for bits in ("40", "128", "0x38", "72"):
            nbytes = int(bits, 0) // 8
            kout = tmpfile(stem="kout")
            obj = js("wrap", "--to-key", "rsa2048", "--alg", calg, "--generate", "--bits", bits,
                     "--key-out", kout)
            # --key-out takes the key: the JSON has its length only.
            assert "key" not in obj and obj["key_len"] == nbytes, obj
            key = read(kout)[12:]
            assert len(key) == nbytes and read(kout) == keyblob(alg, key), (calg, bits)
            assert stat.S_IMODE(os.stat(kout).st_mode) == 0o600
            assert unwrap_json("rsa2048", hexfield(obj, "blob"), False) == (alg, key)
        # Without --bits: the longest key.
        obj = js("wrap", "--to-key", "rsa1024", "--alg", calg, "--generate", "--oaep")
        hexfield(obj, "key", 16)
        err("wrap", "--to-key", "rsa2048", "--alg", calg, "--generate", "--bits", "36",
            rc=1, code="KEY_LENGTH")
        err("wrap", "--to-key", "rsa2048", "--alg", calg, "--generate", "--bits", "136",
            rc=1, code="KEY_LENGTH")
    # --key-out for the other algorithms, human output: blob to -o, key to --key-out.
    for alg, (calg, lo, hi) in ALGS.items():
        kout, bout = tmpfile(stem="kout"), tmpfile(stem="bout")
        r = ok("wrap", "--to", pub_blob_file("rsa4096"), "--alg", "0x%x" % alg, "--generate",
               "--key-out", kout, "-o", bout)
        f = human_fields(r.stdout.decode())
        key = read(kout)[12:]
        assert f == {"alg": calg, "key_len": str(hi)} and len(key) == hi, f
        assert read(kout) == keyblob(alg, key)
        check_simpleblob(read(bout), "rsa4096", alg, key, False)
    # --key-out to stdout and the blob to a file: the summary (without the key) on stderr.
    bout = tmpfile(stem="bout")
    r = ok("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--generate", "--key-out", "-",
           "-o", bout)
    assert human_fields(r.stderr.decode()) == {"alg": "CALG_AES_128", "key_len": "16"}, r.stderr
    assert r.stdout == keyblob(0x660e, r.stdout[12:]) and len(r.stdout) == 28, r.stdout
    assert unwrap_json("rsa2048", read(bout), False) == (0x660e, r.stdout[12:])
    # --bits is for RC2/RC4 only (the daemon says so).
    err("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--generate", "--bits", "128",
        rc=1, code="BAD_REQUEST")
    err("wrap", "--to-key", "rsa2048", "--alg", "RC4", "--generate", "--bits", "0",
        rc=2, code="USAGE")
    err("wrap", "--to-key", "rsa2048", "--alg", "RC4", "--generate", "--bits", "x40",
        rc=2, code="USAGE")
    # A refused request leaves no --key-out or -o file behind.
    kout, bout = tmpfile(stem="kout"), tmpfile(stem="bout")
    err("wrap", "--to-key", "nosuch", "--alg", "RC4", "--generate", "--key-out", kout, "-o", bout,
        rc=1, code="UNKNOWN_KEY")
    assert not os.path.exists(kout) and not os.path.exists(bout)


def test_wrap_key_blob():
    for i, (alg, (calg, lo, hi)) in enumerate(ALGS.items()):
        key = os.urandom(lo if i % 2 else hi)
        kb = tmpfile(keyblob(alg, key), "kb")
        oaep = i % 3 == 0
        pad = ["--oaep"] if oaep else []
        name = ("rsa1024", "rsa2048", "rsa4096")[i % 3]
        obj = js("wrap", "--to-key", name, "--key-blob", kb, *pad)
        assert set(obj) == {"alg_id", "alg", "blob"} and obj["alg_id"] == alg, obj
        blob = hexfield(obj, "blob")
        check_simpleblob(blob, name, alg, key, oaep)
        # Round trip: unwrap -o KEYBLOB gives the same PLAINTEXTKEYBLOB back.
        out = tmpfile(stem="kb")
        ok("unwrap", name, "-o", out, *pad, input=blob)
        assert read(out) == keyblob(alg, key)
        # The key blob from stdin.
        r = ok("wrap", "--to", pub_blob_file(name), "--key-blob", "-", *pad, "-o",
               tmpfile(stem="w"), input=keyblob(alg, key))
        assert r.stdout == b"", r.stdout
    # A vector unwrapped to a key blob and wrapped again to another key.
    name, pad, alg, key, blob = read_vector_lines("simpleblob.txt")[0]
    kb = tmpfile(stem="kb")
    ok("unwrap", name, "-i", tmpfile(unhex(blob), "sb"), "-o", kb)
    obj = js("wrap", "--to-key", "rsa4096", "--key-blob", kb)
    assert unwrap_json("rsa4096", hexfield(obj, "blob"), False) == (int(alg, 16), unhex(key))
    # Bad key blobs and forbidden combinations.
    good = tmpfile(keyblob(0x660e, bytes(16)), "kb")
    for bad in (keyblob(0x660e, bytes(16))[:-1], keyblob(0x660e, bytes(15)),
                b"\x01" + keyblob(0x660e, bytes(16))[1:], keyblob(0x1234, bytes(16)), b"x"):
        err("wrap", "--to-key", "rsa2048", "--key-blob", tmpfile(bad, "kb"), rc=2, code="USAGE")
    for extra in (["--alg", "AES_128"], ["--key", "00" * 16], ["--generate"], ["--bits", "40"],
                  ["--key-out", tmpfile(stem="ko")]):
        err("wrap", "--to-key", "rsa2048", "--key-blob", good, *extra, rc=2, code="USAGE")


def test_wrap_refusals():
    k16 = "00" * 16
    err("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--key", "00" * 15,
        rc=1, code="KEY_LENGTH")
    err("wrap", "--to-key", "rsa2048", "--alg", "RC4", "--key", "00" * 4, rc=1, code="KEY_LENGTH")
    err("wrap", "--to-key", "rsa2048", "--alg", "DES", "--key", "00" * 7, rc=1, code="KEY_LENGTH")
    o = err("wrap", "--to-key", "nosuch", "--alg", "AES_128", "--key", k16,
            rc=1, code="UNKNOWN_KEY")
    assert "nosuch" in o["message"], o
    usage = [
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", "zz" * 16],          # bad hex
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", "000"],              # odd digits
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", "00" * 33],          # too long
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", ""],
        ["--to-key", "rsa2048", "--to", pub_blob_file("rsa2048"), "--alg", "AES_128",
         "--key", k16],                                                           # both
        ["--alg", "AES_128", "--key", k16],                                       # neither
        ["--to-key", "rsa2048", "--key", k16],                                    # no --alg
        ["--to-key", "rsa2048", "--alg", "AES_128"],                              # no key
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "--generate"],  # both keys
        ["--to-key", "rsa2048", "--alg", "RC4", "--key", k16, "--bits", "128"],   # --bits
        ["--to-key", "rsa2048", "--alg", "RC4", "--key", k16, "--key-out", "x"],
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key"],                     # no value
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "extra"],
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "--colour", "blue"],
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "--oaep=yes"],
        ["--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "--alg", "RC4"],
    ]
    for args in usage:
        o = err("wrap", *args, rc=2, code="USAGE")
        r = human_err("wrap", *args, rc=2, code=None)
        assert "usage: keytrans" in r.stderr.decode(), r.stderr
    # With --json, stdout carries the JSON: -o - is refused.
    err("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--key", k16, "-o", "-",
        rc=2, code="USAGE")
    # Without --json, -o and --key-out cannot both be stdout.
    human_err("wrap", "--to-key", "rsa2048", "--alg", "RC4", "--generate", "--key-out", "-",
              rc=2, code=None)
    human_err("wrap", "--to-key", "nosuch", "--alg", "RC4", "--generate", rc=1,
              code="UNKNOWN_KEY: ")


# --- COPP ------------------------------------------------------------------

def copp_plaintext(rnd, aes, sseq, cseq):
    return rnd + aes + struct.pack("<II", sseq, cseq)


def test_copp_sign_then_open():
    cases = [
        (["--to-key", "rsa2048"], {}),
        (["--to", pub_blob_file("rsa2048")], {}),
        (["--to", vectors("keys", "rsa2048.pub.pem")], {"aes": bytes(range(16))}),
        (["--to-key", "rsa2048"], {"aes": os.urandom(16), "sseq": "7", "cseq": "4294967295"}),
        (["--to", data_file("rsa2048.crt.der")], {"sseq": "0x10", "cseq": "0"}),
        (["--to-key", "rsa2048"], {"cseq": "123456"}),
    ]
    for i, (to, given) in enumerate(cases):
        rnd = os.urandom(16)
        extra = []
        if "aes" in given:
            extra += ["--aes-key", given["aes"].hex().upper() if i % 2 else given["aes"].hex()]
        if "sseq" in given:
            extra += ["--status-seq", given["sseq"]]
        if "cseq" in given:
            extra += ["--command-seq", given["cseq"]]
        sig_path = tmpfile(stem="sig")
        obj = js("copp-sign", *to, "--random", rnd.hex(), *extra, "-o", sig_path)
        assert set(obj) == {"signature", "random", "aes_key", "status_seq", "command_seq"}, obj
        sig = read(sig_path)
        assert len(sig) == 256 and hexfield(obj, "signature", 256) == sig
        assert hexfield(obj, "random", 16) == rnd
        aes = hexfield(obj, "aes_key", 16)
        sseq, cseq = obj["status_seq"], obj["command_seq"]
        assert isinstance(sseq, int) and isinstance(cseq, int) and 0 <= sseq <= 0xffffffff
        if "aes" in given:
            assert aes == given["aes"], i
        if "sseq" in given:
            assert sseq == int(given["sseq"], 0), i
        if "cseq" in given:
            assert cseq == int(given["cseq"], 0), i
        # Independent check: the plaintext is S reversed, PKCS#1 v1.5, reversed ciphertext.
        assert openssl_decrypt("rsa2048", sig[::-1], False) == \
            copp_plaintext(rnd, aes, sseq, cseq)[::-1], i
        want = {"random": rnd.hex(), "aes_key": aes.hex(), "status_seq": sseq,
                "command_seq": cseq}
        assert js("copp-open", "rsa2048", "-i", sig_path) == want, i
        assert js("copp-open", "rsa2048", input=sig) == want, i
        assert js("copp-open", "rsa2048", "--expect-random", rnd.hex(), input=sig) == want
        o = err("copp-open", "rsa2048", "-i", sig_path, "--expect-random", os.urandom(16).hex(),
                rc=1, code="RANDOM_MISMATCH")
        human_err("copp-open", "rsa2048", "-i", sig_path, "--expect-random", bytes(16).hex(),
                  rc=1, code="RANDOM_MISMATCH: ")
        r = ok("copp-open", "rsa2048", "-i", sig_path, "--expect-random", rnd.hex())
        assert human_fields(r.stdout.decode()) == {
            "random": rnd.hex(), "aes_key": aes.hex(), "status_seq": str(sseq),
            "command_seq": str(cseq)}, r.stdout
    # Human copp-sign: signature on stdout and the summary on stderr; or with -o, on stdout.
    rnd = os.urandom(16)
    r = ok("copp-sign", "--to-key", "rsa2048", "--random", rnd.hex(), "--status-seq", "5")
    sig = r.stdout
    assert len(sig) == 256, len(sig)
    f = human_fields(r.stderr.decode())
    assert set(f) == {"aes_key", "status_seq", "command_seq"} and f["status_seq"] == "5", f
    assert js("copp-open", "rsa2048", input=sig)["aes_key"] == f["aes_key"]
    sig_path = tmpfile(stem="sig")
    r = ok("copp-sign", "--to-key", "rsa2048", "--random", rnd.hex(), "--out=" + sig_path,
           "--aes-key", "ff" * 16)
    f = human_fields(r.stdout.decode())
    assert f["aes_key"] == "ff" * 16, f
    assert js("copp-open", "rsa2048", "-i", sig_path)["aes_key"] == "ff" * 16
    # Two signatures of the same input differ (random padding), open the same.
    obj1 = js("copp-sign", "--to-key", "rsa2048", "--random", rnd.hex(), "--aes-key", "11" * 16,
              "--status-seq", "1", "--command-seq", "2")
    obj2 = js("copp-sign", "--to-key", "rsa2048", "--random", rnd.hex(), "--aes-key", "11" * 16,
              "--status-seq", "1", "--command-seq", "2")
    assert obj1["signature"] != obj2["signature"]
    assert {k: v for k, v in obj1.items() if k != "signature"} == \
        {k: v for k, v in obj2.items() if k != "signature"}


def copp_xml_file(name):
    return data_file(os.path.join("copp", name))


def test_copp_sign_to_xml_chain():
    """--to takes a driver's XML certificate chain: the leaf's key, read by the CLI."""
    blob_path = tmpfile(stem="pub")
    ok("pubkey", "rsa2048", "--format", "blob", "-o", blob_path)
    made = tmpfile(make_copp_xml.chain(read(blob_path)), "chain")     # from the token's key
    for path in (made, copp_xml_file("leaf2048.xml"), copp_xml_file("leaf2048_ns.xml"), "-"):
        rnd = os.urandom(16)
        sig_path = tmpfile(stem="sig")
        xml = read(copp_xml_file("leaf2048.xml")) if path == "-" else None
        obj = js("copp-sign", "--to", path, "--random", rnd.hex(), "--status-seq", "9",
                 "-o", sig_path, input=xml)
        sig = read(sig_path)
        aes = hexfield(obj, "aes_key", 16)
        assert openssl_decrypt("rsa2048", sig[::-1], False) == \
            copp_plaintext(rnd, aes, 9, obj["command_seq"])[::-1], path
        want = {"random": rnd.hex(), "aes_key": aes.hex(), "status_seq": 9,
                "command_seq": obj["command_seq"]}
        assert js("copp-open", "rsa2048", "-i", sig_path, "--expect-random", rnd.hex()) == want
    # Human output as for any other recipient file.
    r = ok("copp-sign", "--to", made, "--random", bytes(16).hex())
    assert len(r.stdout) == 256 and set(human_fields(r.stderr.decode())) == \
        {"aes_key", "status_seq", "command_seq"}


def test_copp_sign_xml_refusals():
    rnd = bytes(16).hex()
    cases = [
        ("leaf1024.xml", "KEY_SIZE", "leaf certificate's key is 1024-bit; COPP needs 2048"),
        ("leaf4096.xml", "KEY_SIZE", "leaf certificate's key is 4096-bit; COPP needs 2048"),
        ("no_encryptkey.xml", "BAD_PUBLIC_KEY", "leaf certificate lacks KeyUsage EncryptKey"),
        ("malformed.xml", "BAD_PUBLIC_KEY", "not a COPP certificate collection: XML error at line"),
        ("xxe.xml", "BAD_PUBLIC_KEY", "not a COPP certificate collection: a DOCTYPE (DTD) is not "
                                      "allowed"),
        ("billion_laughs.xml", "BAD_PUBLIC_KEY", "not a COPP certificate collection: a DOCTYPE "
                                                 "(DTD) is not allowed"),
    ]
    for name, code, message in cases:
        path = copp_xml_file(name)
        o = err("copp-sign", "--to", path, "--random", rnd, rc=1, code=code)
        assert o["message"].startswith(path + ": " + message), o
        r = human_err("copp-sign", "--to", path, "--random", rnd, rc=1, code=code + ": ")
        assert r.stderr.decode().startswith("keytrans: %s: %s: %s" % (code, path, message)), \
            r.stderr
        assert r.stderr.decode().count("\n") == 1, r.stderr
    o = err("copp-sign", "--to", "-", "--random", rnd, rc=1, code="KEY_SIZE",
            input=read(copp_xml_file("leaf1024.xml")))
    assert o["message"].startswith("stdin: leaf certificate's key is 1024-bit"), o
    # An external DTD and entity on a local port: refused, and never fetched.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(4)
        lsn.setblocking(False)
        url = "http://127.0.0.1:%d/copp" % lsn.getsockname()[1]
        prologs = ['<!DOCTYPE CertificateCollection SYSTEM "%s.dtd">\n' % url,
                   '<!DOCTYPE CertificateCollection [<!ENTITY %% p SYSTEM "%s.ent"> %%p;]>\n' % url]
        for prolog in prologs:
            xml = make_copp_xml.chain(read(pub_blob_file("rsa2048")), prolog=prolog)
            o = err("copp-sign", "--to", tmpfile(xml, "xxe"), "--random", rnd, rc=1,
                    code="BAD_PUBLIC_KEY")
            assert "a DOCTYPE (DTD) is not allowed" in o["message"], o
        try:
            lsn.accept()
            raise AssertionError("the XML parser connected to " + url)
        except BlockingIOError:
            pass
    # An encoding libxml2 cannot switch to: one line on stderr, libxml2 itself prints nothing.
    path = tmpfile(b'<?xml version="1.0" encoding="UTF-32"?>\x04   <CertificateCollection/>', "enc")
    r = human_err("copp-sign", "--to", path, "--random", rnd, rc=1, code="BAD_PUBLIC_KEY: ")
    assert r.stderr.decode().count("\n") == 1 and "not a COPP certificate collection: XML error" \
        in r.stderr.decode(), r.stderr
    # XML is recognised only by its first character: other files still go to the daemon.
    err("copp-sign", "--to", tmpfile(b"\xef\xbb\xbf  \n", "bom"), "--random", rnd, rc=1,
        code="BAD_PUBLIC_KEY")


def test_copp_open_vectors():
    lines = read_vector_lines("copp.txt")
    assert len(lines) == 3
    for name, rnd, aes, sseq, cseq, sig in lines:
        sig = unhex(sig)
        path = tmpfile(sig, "sig")
        want = {"random": rnd, "aes_key": aes, "status_seq": int(sseq), "command_seq": int(cseq)}
        assert js("copp-open", name, "-i", path) == want, name
        assert js("copp-open", name, input=sig) == want, name
        assert js("copp-open", name, "-i", path, "--expect-random", rnd) == want
        assert js("copp-open", name, "--expect-random", rnd.upper(), input=sig) == want
        err("copp-open", name, "-i", path, "--expect-random", bytes(16).hex(), rc=1,
            code="RANDOM_MISMATCH")
        r = ok("copp-open", name, "-i", path)
        assert human_fields(r.stdout.decode()) == {"random": rnd, "aes_key": aes,
                                                   "status_seq": sseq, "command_seq": cseq}


def test_copp_refusals():
    rnd = bytes(16).hex()
    err("copp-sign", "--to-key", "rsa1024", "--random", rnd, rc=1, code="KEY_SIZE")
    err("copp-sign", "--to-key", "rsa4096", "--random", rnd, rc=1, code="KEY_SIZE")
    err("copp-sign", "--to", pub_blob_file("wine1024"), "--random", rnd, rc=1, code="KEY_SIZE")
    err("copp-sign", "--to", data_file("ec256.pub.pem"), "--random", rnd, rc=1,
        code="BAD_PUBLIC_KEY")
    o = err("copp-sign", "--to-key", "nosuch", "--random", rnd, rc=1, code="UNKNOWN_KEY")
    assert "nosuch" in o["message"]
    sig = unhex(read_vector_lines("copp.txt")[0][5])
    path = tmpfile(sig, "sig")
    err("copp-open", "rsa1024", "-i", path, rc=1, code="KEY_SIZE")
    err("copp-open", "rsa4096", "-i", path, rc=1, code="KEY_SIZE")
    o = err("copp-open", "nosuch", "-i", path, rc=1, code="UNKNOWN_KEY")
    assert "nosuch" in o["message"]
    err("copp-open", "rsa2048", "--strict", rc=1, code="UNWRAP_FAILED", input=bytes(256))
    err("copp-open", "rsa2048", "--expect-random", "00" * 16, rc=1, code="RANDOM_MISMATCH",
        input=bytes(256))
    assert kt("--json", "copp-open", "rsa2048", input=bytes(256)).returncode == 0
    err("copp-open", "rsa2048", rc=1, code="BLOB_RANGE", input=b"\xff" * 256)
    human_err("copp-sign", "--to-key", "rsa1024", "--random", rnd, rc=1, code="KEY_SIZE: ")
    usage = [
        ("copp-sign", "--to-key", "rsa2048"),                                 # no --random
        ("copp-sign", "--random", rnd),                                       # no recipient
        ("copp-sign", "--to-key", "rsa2048", "--to", pub_blob_file("rsa2048"), "--random", rnd),
        ("copp-sign", "--to-key", "rsa2048", "--random", "00" * 15),
        ("copp-sign", "--to-key", "rsa2048", "--random", "00" * 17),
        ("copp-sign", "--to-key", "rsa2048", "--random", "g" * 32),
        ("copp-sign", "--to-key", "rsa2048", "--random", rnd, "--aes-key", "00" * 15),
        ("copp-sign", "--to-key", "rsa2048", "--random", rnd, "--status-seq", "4294967296"),
        ("copp-sign", "--to-key", "rsa2048", "--random", rnd, "--command-seq", "-1"),
        ("copp-sign", "--to-key", "rsa2048", "--random", rnd, "--command-seq", "12x"),
        ("copp-sign", "--to-key", "rsa2048", "--random", rnd, "-o", "-"),
        ("copp-sign", "--to", tmpfile(b"", "empty"), "--random", rnd),
        ("copp-open", "-i", path),                                            # no NAME
        ("copp-open", "rsa2048", "-i", tmpfile(sig[:255], "sig")),
        ("copp-open", "rsa2048", "-i", tmpfile(sig + b"\0", "sig")),
        ("copp-open", "rsa2048", "-i", path, "--expect-random", "00" * 15),
        ("copp-open", "rsa2048", "-i", path, "-o", "x"),                      # no -o here
    ]
    for args in usage:
        err(*args, rc=2, code="USAGE")
    err("copp-open", "rsa2048", rc=2, code="USAGE", input=b"")


# --- global behaviour ----------------------------------------------------------

def test_usage_errors_and_help():
    for args in (["bogus"], [], ["--bogus", "info"], ["-s"], ["keys", "--format", "pem"]):
        o = err(*args, rc=2, code="USAGE", sock=bool(args != ["-s"]))
        r = kt(*args, sock=bool(args != ["-s"]))
        assert r.returncode == 2 and r.stdout == b"" and r.stderr.startswith(b"keytrans: ")
    o = err("bogus", rc=2, code="USAGE")
    assert "bogus" in o["message"], o
    # --json after the command still gives JSON for a usage error.
    r = kt("wrap", "--to-key", "rsa2048", "--json")
    assert r.returncode == 2 and one_json(r.stdout)["error"] == "USAGE", r
    r = kt("--help", sock=False)
    assert r.returncode == 0 and r.stdout.startswith(b"usage:") and b"copp-open" in r.stdout
    r = kt("wrap", "--help")
    assert r.returncode == 0 and r.stdout.startswith(b"usage: keytrans") and b"--key-blob" in \
        r.stdout, r.stdout
    r = kt("--version", sock=False)
    assert r.returncode == 0 and r.stdout == b"keytrans 0.1.0 (libkeytrans 0.1.0)\n", r.stdout


def test_socket_selection():
    env_good = dict(os.environ, KEYTRANS_SOCKET=D.socket)
    env_bad = dict(os.environ, KEYTRANS_SOCKET=os.path.join(TMP, "nowhere.sock"))
    env_none = {k: v for k, v in os.environ.items() if k != "KEYTRANS_SOCKET"}
    # $KEYTRANS_SOCKET is used when -s is absent.
    r = kt("--json", "info", sock=False, env=env_good)
    assert r.returncode == 0 and one_json(r.stdout)["key_count"] == 4, r
    obj = one_json(kt("--json", "pubkey", "rsa2048", sock=False, env=env_good).stdout)
    assert hexfield(obj, "data") == read(pub_blob_file("rsa2048"))
    # ... and pointing nowhere, it is unreachable: exit 3.
    for args in (["info"], ["keys"], ["pubkey", "rsa2048"],
                 ["wrap", "--to-key", "rsa2048", "--alg", "RC4", "--generate"],
                 ["copp-sign", "--to-key", "rsa2048", "--random", "00" * 16]):
        o = err(*args, rc=3, code="ERR_CONNECT", sock=False, env=env_bad)
        assert "nowhere.sock" in o["message"], o
    o = err("unwrap", "rsa2048", rc=3, code="ERR_CONNECT", sock=False, env=env_bad, input=b"x")
    o = err("copp-open", "rsa2048", rc=3, code="ERR_CONNECT", sock=False, env=env_bad,
            input=bytes(256))
    human_err("info", rc=3, code="ERR_CONNECT: ", sock=False, env=env_bad)
    # -s wins over the environment.
    r = kt("--json", "info", env=env_bad)
    assert r.returncode == 0 and one_json(r.stdout)["key_count"] == 4, r
    # An unreachable -s: a missing path, a regular file, a socket nobody listens on.
    plain = tmpfile(b"", "plain")
    dead = os.path.join(TMP, "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()
    for path in (os.path.join(TMP, "missing.sock"), plain, dead):
        r = kt("--json", "-s", path, "info", sock=False, env=env_good)
        assert r.returncode == 3, (path, r)
        assert one_json(r.stdout)["error"] == "ERR_CONNECT", r.stdout
    # Neither -s nor $KEYTRANS_SOCKET: the default path, which the test machine lacks.
    if not os.path.exists("/run/keytransd/keytransd.sock"):
        o = err("info", rc=3, code="ERR_CONNECT", sock=False, env=env_none)
        assert "/run/keytransd/keytransd.sock" in o["message"], o
    # Usage errors are found before connecting: exit 2 even with no daemon.
    err("wrap", "--to-key", "rsa2048", rc=2, code="USAGE", sock=False, env=env_bad)


def main():
    global D, TMP
    with Workspace() as root:
        TMP = os.path.join(root, "files")
        os.makedirs(TMP)
        D = Daemon(root)
        try:
            run_tests([test_info, test_keys, test_pubkey_every_key_every_format,
                       test_unwrap_every_vector, test_unwrap_negative_vectors,
                       test_unwrap_usage_errors, test_wrap_every_alg_padding_size,
                       test_wrap_alg_spellings, test_wrap_recipient_files,
                       test_wrap_generate_bits_and_key_out, test_wrap_key_blob,
                       test_wrap_refusals, test_copp_sign_then_open, test_copp_sign_to_xml_chain,
                       test_copp_sign_xml_refusals, test_copp_open_vectors,
                       test_copp_refusals, test_usage_errors_and_help, test_socket_selection])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
