"""keygen and import (the administrative operations) against a running keytransd: the
key in the token and its attributes, each import format, serving the new key after a
restart, the [daemon] admin rule, and every refusal.

Other users are played by forked children (harness.Child), so those tests need root."""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (KEYS, PIN, SOFTHSM_MODULE, STATUS, Conn, Daemon, Token, Workspace,
                     as_user, frame, memory_holds, read_vector_lines, run_tests, vectors)

OP_KEYGEN, OP_IMPORT = 9, 10
T_NAME, T_BITS, T_EXPONENT, T_PRIVATE_KEY = 1, 23, 24, 50
ADMIN_UID = 4242            # in [daemon] admin
OTHER_UID = 65534           # nobody

ROOT = None
TOKEN = None
D = None        # the daemon the tests ask
TMP = None
_counter = [0]


# --- helpers ---------------------------------------------------------------

def tmpfile(data=None):
    _counter[0] += 1
    path = os.path.join(TMP, "f-%d" % _counter[0])
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def kt(*args, sock=None):
    cmd = [os.environ["KT_CLI"], "-s", sock or D.socket] + [str(a) for a in args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def js(*args, rc=0, sock=None):
    r = kt("--json", *args, sock=sock)
    assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.decode())


def refused(*args, code, text, sock=None):
    obj = js(*args, rc=1 if code != "USAGE" else 2, sock=sock)
    assert obj["error"] == code, (args, obj)
    assert re.search(text, obj["message"]), (args, obj)
    return obj


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True,
                          check=True).stdout


def public_der(private_pem_path):
    return openssl("pkey", "-in", private_pem_path, "-pubout", "-outform", "DER")


def token_objects():
    """label -> list of (kind, text of its block) from pkcs11-tool --list-objects."""
    out = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label",
                          TOKEN.label, "--login", "--pin", PIN, "--list-objects"],
                         env=TOKEN.env, capture_output=True, check=True).stdout.decode()
    objs = {}
    for block in re.split(r"\n(?=\S)", out):
        m = re.search(r"label:\s*(\S+)", block)
        if m:
            objs.setdefault(m.group(1), []).append((block.split(";")[0].strip(), block))
    return objs


def serve(name, sections):
    """A second daemon, configured with the new keys' sections as the CLI printed them."""
    root = os.path.join(ROOT, "serve-%s" % name)
    os.makedirs(root)
    d = Daemon(root, token=TOKEN, keys={}, start=False)
    with open(d.config, "a") as f:
        f.write(sections)
    d.start()
    return d


def wrap_unwrap(d, name):
    blob = tmpfile()
    r = kt("wrap", "--to-key", name, "--alg", "AES_256", "--key", "11" * 32, "-o", blob,
           sock=d.socket)
    assert r.returncode == 0, r.stderr
    got = js("unwrap", name, "-i", blob, sock=d.socket)
    assert got["key"] == "11" * 32, got


def check_new_key(obj, name, bits):
    assert obj["name"] == name and obj["label"] == name, obj
    assert re.fullmatch(r"[0-9a-f]{16}", obj["id"]), obj
    assert obj["bits"] == bits and obj["exponent"] == 65537, obj
    assert obj["config"] == "[key %s]\nlabel = %s\nid = %s\n" % (name, name, obj["id"]), obj
    der = bytes.fromhex(obj["public_key"])
    text = openssl("pkey", "-pubin", "-inform", "DER", "-noout", "-text", data=der).decode()
    assert "(%d bit)" % bits in text, text


def check_in_token(name, obj, generated):
    objs = token_objects()
    kinds = sorted(k for k, _ in objs.get(name, []))
    assert kinds == ["Private Key Object", "Public Key Object"], objs.get(name)
    for kind, block in objs[name]:
        assert re.search(r"ID:\s*%s" % obj["id"], block), block
        if kind == "Private Key Object":
            access = re.search(r"Access:\s*(.*)", block).group(1).split(", ")
            # pkcs11-tool lists "extractable" only for CKA_EXTRACTABLE = true; an imported key
            # is not "never extractable" (CKA_NEVER_EXTRACTABLE): it was known outside.
            assert "sensitive" in access and "extractable" not in access, block
            assert ("never extractable" in access) == generated, block


def call(sock, op, fields):
    c = Conn(sock)
    try:
        return c.call(op, fields)
    finally:
        c.close()


def tlv(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">HH", tag, len(value)) + value


# --- tests -----------------------------------------------------------------

def test_keygen_serves_after_restart():
    obj = js("keygen", "gen2048")
    check_new_key(obj, "gen2048", 2048)
    check_in_token("gen2048", obj, True)
    human = kt("keygen", "gen-human", "--bits", "3072")
    assert human.returncode == 0, human.stderr
    text = human.stdout.decode()
    assert "[key gen-human]\nlabel = gen-human\nid = " in text and "BEGIN PUBLIC KEY" in text, text
    d = serve("gen", obj["config"])
    try:
        wrap_unwrap(d, "gen2048")
        pub = js("pubkey", "gen2048", "--format", "der", sock=d.socket)
        assert pub["data"] == obj["public_key"], pub
    finally:
        d.stop()


def test_keygen_then_reload_serves_it():
    """The operator's path: keygen, paste the printed section, systemctl reload."""
    obj = js("keygen", "genreload")
    with open(D.config, "a") as f:
        f.write(obj["config"])
    before = D.log_text().count("configuration reloaded")
    os.kill(D.pid(), signal.SIGHUP)
    deadline = time.time() + 30
    while D.log_text().count("configuration reloaded") == before:
        assert time.time() < deadline and "reload refused" not in D.log_text(), D.log_text()
        time.sleep(0.05)
    assert "added: genreload; removed: none" in D.log_text()
    wrap_unwrap(D, "genreload")
    refused("keygen", "genreload", code="BAD_REQUEST", text='"genreload" is configured already')


def test_keygen_4096_and_refusals():
    check_new_key(js("keygen", "gen4096", "--bits", 4096), "gen4096", 4096)
    for bits in (1024, 2047, 8192):
        refused("keygen", "badbits", "--bits", bits, code="KEY_SIZE", text="2048, 3072 or 4096")
    r = call(D.socket, OP_KEYGEN, tlv(T_NAME, "badbits") + tlv(T_BITS, struct.pack(">I", 0)))
    assert r.status == STATUS["KEY_SIZE"], r.message()
    refused("keygen", "gen2048", code="BAD_REQUEST", text='already holds an object labelled "gen2048"')
    refused("keygen", "rsa2048", code="BAD_REQUEST", text='"rsa2048" is configured already')
    refused("keygen", "bad/name", code="BAD_REQUEST", text="A-Z a-z 0-9")
    r = call(D.socket, OP_KEYGEN, tlv(T_NAME, "exp") + tlv(T_EXPONENT, struct.pack(">Q", 3)))
    assert r.status == STATUS["BAD_REQUEST"] and "EXPONENT" in r.message(), r.message()
    r = call(D.socket, OP_KEYGEN, tlv(T_NAME, "exp3") + tlv(T_EXPONENT, struct.pack(">Q", 65539)))
    assert r.status == 0, r.message()


def pkcs1_pem(key):
    return openssl("rsa", "-in", vectors("keys", key + ".pem"), "-traditional")


def test_import_each_format():
    der_key = tmpfile()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", der_key)
    cases = [
        ("imp-pkcs1", tmpfile(pkcs1_pem("rsa1024")), "rsa1024", 1024, "PEM"),
        ("imp-pkcs8", vectors("keys", "rsa2048.pem"), "rsa2048", 2048, "PEM"),
        ("imp-blob", vectors("keys", "wine1024.priv.blob"), "wine1024", 1024, "PRIVATEKEYBLOB"),
        ("imp-der", tmpfile(openssl("pkey", "-in", der_key, "-outform", "DER")), None, 2048,
         "DER"),
    ]
    made = {}
    for name, path, vector_key, bits, fmt in cases:
        assert read(path)[:1] == (b"\x07" if fmt == "PRIVATEKEYBLOB" else
                                  b"\x30" if fmt == "DER" else b"-")
        obj = js("import", name, path)
        check_new_key(obj, name, bits)
        check_in_token(name, obj, False)
        want = public_der(vectors("keys", vector_key + ".pem") if vector_key else der_key)
        assert bytes.fromhex(obj["public_key"]) == want, name
        made[name] = obj
    human = kt("import", "imp-4096", vectors("keys", "rsa4096.priv.blob"))
    assert human.returncode == 0 and b"Imported (PRIVATEKEYBLOB)" in human.stdout, human
    # The imported keys serve: each unwraps its vector SIMPLEBLOBs.
    d = serve("imp", "".join(o["config"] for o in made.values()))
    try:
        for name, _, vector_key, _, _ in cases:
            if vector_key is None:
                wrap_unwrap(d, name)
                continue
            for key, pad, alg, khex, blob in read_vector_lines("simpleblob.txt"):
                if key != vector_key:
                    continue
                args = ["unwrap", name, "-i", tmpfile(bytes.fromhex(blob)), "--strict"]
                got = js(*(args + (["--oaep"] if pad == "oaep" else [])), sock=d.socket)
                assert got["key"] == khex and got["alg_id"] == int(alg, 16), (name, got)
    finally:
        d.stop()


def test_import_refusals():
    refused("import", "again", vectors("keys", "rsa2048.pem"), code="BAD_REQUEST",
            text="already holds this key")
    refused("import", "imp-pkcs8", vectors("keys", "rsa4096.pem"), code="BAD_REQUEST",
            text='already holds an object labelled "imp-pkcs8"')
    refused("import", "garbage", tmpfile(os.urandom(300)), code="BAD_REQUEST",
            text="not an RSA private key")
    refused("import", "garbage", tmpfile(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE "
                                         b"KEY-----\n"), code="BAD_REQUEST", text="PEM private key")
    enc = openssl("pkey", "-in", vectors("keys", "rsa1024.pem"), "-aes128", "-passout",
                  "pass:x")
    refused("import", "enc", tmpfile(enc), code="BAD_REQUEST", text="encrypted")
    ec = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    refused("import", "ec", tmpfile(ec), code="BAD_REQUEST", text="not an RSA key")
    blob = read(vectors("keys", "rsa1024.priv.blob"))
    refused("import", "short", tmpfile(blob[:-1]), code="BAD_REQUEST", text="PRIVATEKEYBLOB")
    bad = bytearray(blob)
    bad[30] ^= 1            # a byte of the modulus: the numbers no longer make a key
    refused("import", "broken", tmpfile(bytes(bad)), code="BAD_REQUEST",
            text="do not make one RSA key")
    refused("import", "nofile", os.path.join(TMP, "missing"), code="INPUT",
            text="cannot read .*missing: No such file or directory")
    r = call(D.socket, OP_IMPORT, tlv(T_NAME, "nokey"))
    assert r.status == STATUS["BAD_REQUEST"] and "PRIVATE_KEY" in r.message(), r.message()
    assert "garbage" not in token_objects() and "broken" not in token_objects()


def blob_numbers(blob, names=("p", "q", "dP", "dQ", "qInv", "d")):
    """Numbers of a 2048-bit PRIVATEKEYBLOB (by default the private ones, dQ and qInv among
    them), big-endian (as PKCS#1, PKCS#11 and the DER and PEM forms carry them) and
    little-endian (as the blob does, and OpenSSL's BIGNUMs on this machine), unpadded."""
    k, h = 256, 128
    assert len(blob) == 20 + 2 * k + 5 * h
    out, off = {}, 20
    for name, size in (("n", k), ("p", h), ("q", h), ("dP", h), ("dQ", h), ("qInv", h), ("d", k)):
        be = blob[off:off + size][::-1].lstrip(b"\0")
        off += size
        assert len(be) > size - 8, name
        if name not in names:
            continue
        out[name + " (big-endian)"] = be
        out[name + " (little-endian)"] = be[::-1]
    return out


def assert_daemon_forgot(secrets, after):
    """None of the secrets is left anywhere in the daemon's memory after a reply (looked at
    again for a while if need be: the job's memory is wiped as the connection's write
    completes, which on a busy machine may come a moment after the client has its answer;
    a secret still there half a minute later was left behind)."""
    deadline = time.monotonic() + 30
    found = memory_holds(D.pid(), secrets)
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = memory_holds(D.pid(), secrets)
    assert not found, "after %s the daemon's memory holds %s" % (after, found)


def fresh_key_forms():
    """A new 2048-bit key (no other test has it), as PKCS#8 PEM, PKCS#1 DER and PRIVATEKEYBLOB."""
    pem = tmpfile()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem)
    der = openssl("rsa", "-in", pem, "-traditional", "-outform", "DER")
    blob = openssl("rsa", "-in", pem, "-outform", "MSBLOB")
    return read(pem), der, blob


def test_import_leaves_no_secret_in_memory():
    """The private numbers of an imported key (dQ and qInv among them) are nowhere in the
    daemon's memory after the import, be it done or refused after decoding (the token has the
    key; the numbers do not make a key), from each format (docs/security.md, Administration)."""
    pem, der, blob = fresh_key_forms()
    secrets = blob_numbers(blob)
    r = call(D.socket, OP_IMPORT, tlv(T_NAME, "mem-pem") + tlv(T_PRIVATE_KEY, pem))
    assert r.status == 0, r.message()
    # The scan sees the numbers an import leaves behind: the public modulus is still there.
    assert memory_holds(D.pid(), blob_numbers(blob, ("n",))), "the scan misses n"
    assert_daemon_forgot(secrets, "a PEM PKCS#8 import")
    # Refused before decoding: the key's bytes were in the request only.
    r = call(D.socket, OP_IMPORT, tlv(T_NAME, "rsa2048") + tlv(T_PRIVATE_KEY, der))
    assert r.status == STATUS["BAD_REQUEST"] and "configured already" in r.message(), r.message()
    assert_daemon_forgot(secrets, "an import refused for its name")
    for name, key in (("mem-der", der), ("mem-blob", blob)):
        r = call(D.socket, OP_IMPORT, tlv(T_NAME, name) + tlv(T_PRIVATE_KEY, key))
        assert r.status == STATUS["BAD_REQUEST"] and "already holds this key" in r.message(), \
            r.message()
        assert_daemon_forgot(secrets, "an import of %s refused by the token" % name)
    # A byte of p changed: decoded, then refused; the other numbers are still the key's.
    _, der2, blob2 = fresh_key_forms()
    secrets = blob_numbers(blob2)
    bad_blob = bytearray(blob2)
    bad_blob[20 + 256 + 5] ^= 0x40
    p_at = der2.index(blob2[20 + 256:20 + 256 + 128][::-1].lstrip(b"\0"))
    bad_der = bytearray(der2)
    bad_der[p_at + 5] ^= 0x40
    for name, key in (("mem-bad-der", bad_der), ("mem-bad-blob", bad_blob)):
        r = call(D.socket, OP_IMPORT, tlv(T_NAME, name) + tlv(T_PRIVATE_KEY, bytes(key)))
        assert r.status == STATUS["BAD_REQUEST"] and "do not make one RSA key" in r.message(), \
            r.message()
        assert_daemon_forgot(secrets, "an inconsistent %s refused" % name)
    r = call(D.socket, OP_IMPORT, tlv(T_NAME, "mem-blob2") + tlv(T_PRIVATE_KEY, blob2))
    assert r.status == 0, r.message()
    assert_daemon_forgot(secrets, "a PRIVATEKEYBLOB import")


def child_call(sock, op, fields):
    r = call(sock, op, fields)
    return r.status, r.message()


def test_admin_rule():
    """Only root, the daemon's uid and [daemon] admin (uid 4242 here) may create keys."""
    pem = read(vectors("keys", "rsa1024.pem"))
    for op, fields in ((OP_KEYGEN, tlv(T_NAME, "by-other")),
                       (OP_IMPORT, tlv(T_NAME, "by-other") + tlv(T_PRIVATE_KEY, pem))):
        _, (st, msg) = as_user(child_call, D.socket, op, fields, uid=OTHER_UID, gid=OTHER_UID)
        name = "keygen" if op == OP_KEYGEN else "import"
        assert st == STATUS["DENIED"], (st, msg)
        assert msg.startswith(name + " is an administrative operation"), msg
    _, (st, msg) = as_user(child_call, D.socket, OP_KEYGEN, tlv(T_NAME, "by-admin"),
                           uid=ADMIN_UID, gid=ADMIN_UID)
    assert st == 0, msg
    assert "by-other" not in token_objects() and "by-admin" in token_objects()
    log = D.log_text()
    assert re.search(r'audit op=keygen key="by-other" mode=- uid=%d .* outcome=DENIED' % OTHER_UID, log)
    assert re.search(r'audit op=import key="by-other" mode=- uid=%d .* outcome=DENIED' % OTHER_UID, log)
    assert re.search(r'audit op=keygen key="by-admin" mode=- uid=%d .* outcome=OK' % ADMIN_UID, log)
    assert re.search(r'audit op=import key="imp-blob" mode=- uid=0 .* outcome=OK', log), log


def test_several_hsms_refused():
    root = os.path.join(ROOT, "two")
    os.makedirs(root)
    text = []
    for name in ("a", "b"):
        path = os.path.join(root, "softhsm-%s.so" % name)
        shutil.copy(SOFTHSM_MODULE, path)
        text += ["[hsm %s]" % name, "module = " + path, "token = " + TOKEN.label,
                 "pin_file = pin"]
    d = Daemon(root, token=TOKEN, keys={"rsa2048": KEYS["rsa2048"]}, hsm_text="\n".join(text))
    try:
        refused("keygen", "two", code="BAD_REQUEST", text="cannot be copied", sock=d.socket)
        refused("import", "two", vectors("keys", "rsa1024.pem"), code="BAD_REQUEST",
                text="one HSM only", sock=d.socket)
    finally:
        d.stop()


def test_python_client():
    import keytrans
    with keytrans.Connection(D.socket, timeout=120) as c:
        k = c.keygen("py-gen", bits=3072)
        assert k.name == k.label == "py-gen" and len(k.id) == 8 and k.bits == 3072, k
        assert k.exponent == 65537 and k.public_key[0] == 0x30, k
        path = tmpfile()
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
        k = c.import_key("py-imp", read(path))
        assert k.public_key == public_der(path) and k.bits == 2048, k
        try:
            c.import_key("py-imp2", read(path))
            raise AssertionError("the same key went in twice")
        except keytrans.KeytransError as e:
            assert e.name == "BAD_REQUEST" and "already holds this key" in e.message, e
        try:
            c.keygen("py-bad", bits=1024)
            raise AssertionError("1024 bits accepted")
        except keytrans.KeytransError as e:
            assert e.name == "KEY_SIZE", e


def test_log_has_no_key_material():
    """The daemons' logs name the keys, never their numbers (nor long hex runs)."""
    text = D.log_text()
    assert not re.search(r"[0-9a-fA-F]{10}", text), text[-3000:]
    assert "PRIVATE KEY" not in text and "MII" not in text


def main():
    global ROOT, TOKEN, D, TMP
    if os.geteuid() != 0:
        print("SKIP: needs root (peers of other uids)")
        return
    with Workspace() as root:
        ROOT = root
        os.chmod(root, 0o755)
        TMP = os.path.join(root, "files")
        os.makedirs(TMP)
        TOKEN = Token(os.path.join(root, "hsm"))
        main_root = os.path.join(root, "main")
        os.makedirs(main_root)
        os.chmod(main_root, 0o755)     # other users' children reach the socket in it
        D = Daemon(main_root, token=TOKEN,
                   extra_daemon="socket_mode = 0666\nadmin = uid:%d" % ADMIN_UID)
        try:
            run_tests([test_keygen_serves_after_restart, test_keygen_4096_and_refusals,
                       test_import_each_format, test_import_refusals,
                       test_import_leaves_no_secret_in_memory, test_admin_rule,
                       test_several_hsms_refused, test_python_client,
                       test_log_has_no_key_material, test_keygen_then_reload_serves_it])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
