"""Security properties of keytransd (issue 3): per-key access rules and the audit log,
secrecy of the log, implicit rejection, rsa_mechanism = pkcs, the PIN file and the
hardening of the running process.

Other users are played by forked children that drop to another uid/gid (harness.Child),
so the tests that need them run only as root (as in CI)."""
import collections
import os
import re
import stat
import struct
import subprocess
import time
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import (STATUS, T, Conn, Daemon, Token, Workspace, as_user, field, frame,
                     parse_fields, read_vector_lines, run_tests, sanitized, u8, u32, vectors)

# Distinctive PINs, so that finding one in a log cannot be a coincidence.
PIN = "Sesame-Qx9-Pin"
OTHER_PIN = "Other-Host-Zq7-Pin"
USER_PIN = "Kt-User-Jw4-Pin"
PINS = (PIN, OTHER_PIN, USER_PIN)

TOKEN = None        # the shared token (every vector key), PIN above
ROOT = None
DAEMONS = []        # every Daemon this file starts: their logs are checked at the end
SECRETS = set()     # every session key, AES key and synthetic key the daemons handed out
SOCKET_OPEN = "socket_mode = 0666"
STRICT = 1
PAD = {"pkcs1": 0, "oaep": 1}
NOBODY = 65534      # nobody / nogroup on Debian
EXE = os.readlink("/proc/self/exe")   # what the daemon sees for our forked children


def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    os.chmod(path, 0o755)   # other users' children reach the socket in it
    return path


def daemon(name, **kw):
    kw.setdefault("token", TOKEN)
    d = Daemon(new_root(name), **kw)
    DAEMONS.append(d)
    return d


def stop_all():
    for d in DAEMONS:
        if d.alive():
            d.stop()


def expect(reply, status):
    assert reply.status == STATUS[status], "status %d (%s), expected %s" % (
        reply.status, reply.message(), status)


def keep_secret(*values):
    for v in values:
        if v:
            SECRETS.add(bytes(v))


def status_name(code):
    return {v: k for k, v in STATUS.items()}[code]


def vector(key, pad="pkcs1"):
    """The first simpleblob vector of a vector key: (alg, session key, blob)."""
    for name, p, alg, k, blob in read_vector_lines("simpleblob.txt"):
        if name == key and p == pad:
            return int(alg, 16), unhex(k), unhex(blob)
    raise KeyError(key)


def pub_blob(key):
    with open(vectors("keys", key + ".pub.blob"), "rb") as f:
        return f.read()


def openssl_decrypt(key, ciphertext):
    """PKCS#1 v1.5 decryption with the vector key's PEM, outside the daemon."""
    return subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", vectors("keys", key + ".pem")],
                          input=ciphertext, capture_output=True, check=True).stdout


def call_all(sock, frames):
    """In whatever process runs it: sends each frame on one connection, returns the replies."""
    c = Conn(sock)
    out = []
    for data in frames:
        c.send(data)
        out.append(c.recv())
    c.close()
    return out


def key_entries(reply):
    return {parse_fields(e)[T["NAME"]][0].decode(): parse_fields(e)
            for e in reply.fields.get(T["KEY_ENTRY"], [])}


AUDIT = re.compile(r'audit op=(\S+) key="((?:[^"\\]|\\.)*)" mode=(?:-|strict|oaep|strict,oaep) '
                   r'uid=(\d+) gid=(\d+) pid=(\d+) '
                   r'exe="((?:[^"\\]|\\.)*)" exe_verified=(yes|no) outcome=(\S+)$')


def audit_lines(d):
    """The audit lines of d's log as (op, key, uid, gid, pid, exe, outcome) tuples."""
    out = []
    for line in d.log_text().splitlines():
        if " audit " in line:
            m = AUDIT.search(line)
            assert m, "malformed audit line: " + line
            op, key, uid, gid, pid, exe, verified, outcome = m.groups()
            assert (verified == "no") == (exe.startswith("comm:") or exe == "?"), line
            out.append((op, key, int(uid), int(gid), int(pid), exe, outcome))
    return out


UNLOGGED = re.compile(r"audit: uid (\d+) had (\d+) more requests refused, not written one by one")


def check_audit(d, want):
    """One line per private-key operation, nothing for public work, and every refusal
    written or counted: a uid's refusals are written one by one up to 10 a second, the
    rest counted in a line written within about a second. Returns the lines."""
    denied = collections.Counter(w[2] for w in want if w[6] == "DENIED")
    deadline = time.monotonic() + 30     # only reached if a count is missing
    while True:
        got = audit_lines(d)
        counted = collections.Counter()
        for m in UNLOGGED.finditer(d.log_text()):
            counted[int(m.group(1))] += int(m.group(2))
        written = collections.Counter(g[2] for g in got if g[6] == "DENIED")
        if all(written[u] + counted[u] == n for u, n in denied.items()) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    missing = collections.Counter(w for w in want if w[6] != "DENIED") - collections.Counter(got)
    extra = collections.Counter(got) - collections.Counter(want)
    assert not missing and not extra, "missing %s\nunexpected %s" % (list(missing)[:5],
                                                                       list(extra)[:5])
    for uid, n in denied.items():
        assert written[uid] + counted[uid] == n, (uid, n, written[uid], counted[uid])
    return got


# --- access rules and audit ---------------------------------------------------------------

# The token key behind each configured name ("spare" is rsa2048 again, with no rules;
# "ghost" is configured nowhere).
UNDERLYING = {"rsa1024": "rsa1024", "wine1024": "wine1024", "rsa4096": "rsa4096",
              "rsa2048": "rsa2048", "spare": "rsa2048", "ghost": "rsa2048"}
BITS = {"rsa1024": 1024, "wine1024": 1024, "rsa4096": 4096, "rsa2048": 2048, "spare": 2048}
ACL_KEYS = {
    "rsa1024": ("rsa1024", "01", "allow_unwrap = uid:4242"),
    "wine1024": ("wine1024", "04", "allow_pubkey = *"),
    "rsa4096": ("rsa4096", "03", "allow_wrap = group:nogroup"),
    "rsa2048": ("rsa2048", "02", "allow_copp_open = gid:4343\nallow_wrap = uid:4242"),
    "spare": ("rsa2048", "02"),
}
OPS = ("unwrap", "copp-open", "wrap", "copp-sign", "pubkey")
# The peers: (uid, gid, supplementary groups), and what the rules above allow each of them.
PEERS = {
    "uid4242": (4242, 4242, ()),
    "uid4242+group4343": (4242, 4242, (4343,)),
    "gid4343": (6000, 4343, ()),
    "nobody": (NOBODY, NOBODY, ()),
    "uid5151+nogroup": (5151, 5151, (NOBODY,)),
    "uid7777": (7777, 7777, ()),
    "root": (0, 0, ()),
}
ANYONE = {("pubkey", "wine1024")}
ALLOWED = {
    "uid4242": ANYONE | {("unwrap", "rsa1024"), ("wrap", "rsa2048"), ("copp-sign", "rsa2048")},
    "uid4242+group4343": ANYONE | {("unwrap", "rsa1024"), ("wrap", "rsa2048"),
                                   ("copp-sign", "rsa2048"), ("copp-open", "rsa2048")},
    "gid4343": ANYONE | {("copp-open", "rsa2048")},
    "nobody": ANYONE | {("wrap", "rsa4096"), ("copp-sign", "rsa4096")},
    "uid5151+nogroup": ANYONE | {("wrap", "rsa4096"), ("copp-sign", "rsa4096")},
    "uid7777": ANYONE,
    "root": {(op, k) for op in OPS for k in ACL_KEYS},
}
COPP = read_vector_lines("copp.txt")[0]   # rsa2048 RANDOM AES SSEQ CSEQ SIGNATURE


def access_request(op, key, rid, public=False):
    """A valid request of op for key (or for a public key given in the request)."""
    under = UNDERLYING[key]
    to = field("PUBLIC_KEY", pub_blob("rsa2048")) if public else field("NAME", key)
    if op == "unwrap":
        alg, k, blob = vector(under)
        return frame(op, field("NAME", key) + field("BLOB", blob), rid), k
    if op == "copp-open":
        return frame(op, field("NAME", key) + field("SIGNATURE", unhex(COPP[5])), rid), None
    if op == "wrap":
        k = os.urandom(16)
        return frame(op, u32("ALG_ID", 0x660e) + field("SESSION_KEY", k) + to, rid), k
    if op == "copp-sign":
        aes = os.urandom(16)
        return frame(op, to + field("RANDOM", bytes(range(16))) + field("AES_KEY", aes) +
                     u32("STATUS_SEQ", 5) + u32("COMMAND_SEQ", 9), rid), aes
    if op == "pubkey":
        return frame(op, field("NAME", key), rid), None
    raise ValueError(op)


def check_success(op, key, reply, secret, public=False):
    """The content of a successful answer is right."""
    under = "rsa2048" if public else UNDERLYING[key]
    if op == "unwrap":
        assert reply.get("SESSION_KEY") == secret, (op, key)
    elif op == "copp-open":
        rnd, aes, sseq, cseq, _ = COPP[1:]
        assert reply.get("RANDOM") == unhex(rnd) and reply.get("AES_KEY") == unhex(aes)
        assert reply.u32("STATUS_SEQ") == int(sseq) and reply.u32("COMMAND_SEQ") == int(cseq)
    elif op == "wrap":
        blob = reply.get("BLOB")
        assert len(blob) == 12 + (2048 if public else BITS[key]) // 8, (key, len(blob))
        assert openssl_decrypt(under, blob[12:][::-1]) == secret, (op, key)
    elif op == "copp-sign":
        want = (bytes(range(16)) + secret + struct.pack("<II", 5, 9))[::-1]
        assert openssl_decrypt(under, reply.get("SIGNATURE")[::-1]) == want, (op, key)
    elif op == "pubkey":
        assert reply.get("PUBLIC_KEY") == pub_blob(under), key


def run_peer(d, peer, public_allowed):
    """Every operation on every key (and a key that does not exist, and the public-key
    forms) as peer; checks each answer and returns the audit lines it must have caused."""
    uid, gid, groups = PEERS[peer]
    plan, rid = [], 0
    for op in OPS:
        for key in list(ACL_KEYS) + ["ghost"]:
            rid += 1
            data, secret = access_request(op, key, rid)
            plan.append((op, key, False, data, secret))
    for op in ("wrap", "copp-sign"):
        rid += 1
        data, secret = access_request(op, "rsa2048", rid, public=True)
        plan.append((op, "(public key)", True, data, secret))
    plan.append(("info", None, False, frame("info", rid=rid + 1), None))
    plan.append(("keys", None, False, frame("keys", rid=rid + 2), None))
    pid, replies = as_user(call_all, d.socket, [p[3] for p in plan], uid=uid, gid=gid,
                           groups=groups)
    assert len(replies) == len(plan)
    audits, answers = [], {}
    visible = sorted({k for _, k in ALLOWED[peer]})
    for (op, key, public, _, secret), r in zip(plan, replies):
        answers[(op, key)] = r
        if op == "info":
            expect(r, "OK")
            assert r.u32("KEY_COUNT") == len(visible), (peer, r.u32("KEY_COUNT"), visible)
            continue
        if op == "keys":
            expect(r, "OK")
            assert sorted(key_entries(r)) == visible, (peer, sorted(key_entries(r)))
            continue
        if public:
            allowed = public_allowed
        else:
            allowed = (op, key) in ALLOWED[peer]
        if key == "ghost":
            want = "UNKNOWN_KEY" if peer == "root" else "DENIED"
        elif not allowed:
            want = "DENIED"
        elif op in ("copp-open", "copp-sign") and not public and BITS[key] != 2048:
            want = "KEY_SIZE"
        else:
            want = "OK"
        assert r.status == STATUS[want], (peer, op, key, status_name(r.status), r.message(), want)
        if want == "DENIED":
            what = "%s to a public key" % op if public else '%s with key "%s"' % (op, key)
            assert r.message() == "%s is not allowed for uid %d" % (what, uid), r.message()
            assert set(r.fields) == {T["MESSAGE"]}, r.fields.keys()
            audits.append((op, key, uid, gid, pid, EXE, "DENIED"))
        elif want == "UNKNOWN_KEY":
            assert r.message() == 'no key named "ghost"', r.message()
        elif want == "OK":
            check_success(op, key, r, secret, public)
            keep_secret(r.get("SESSION_KEY"), r.get("AES_KEY"), secret)
            if op in ("unwrap", "copp-open"):
                audits.append((op, key, uid, gid, pid, EXE, "OK"))
    # A key that does not exist is answered exactly like one the peer may not use,
    # unless the peer sees every key (root), who is told it does not exist.
    if peer != "root":
        for op in OPS:
            ghost, spare = answers[(op, "ghost")], answers[(op, "spare")]
            assert ghost.status == spare.status == STATUS["DENIED"]
            assert ghost.message().replace('"ghost"', '"spare"') == spare.message()
            assert sorted(ghost.fields) == sorted(spare.fields)
    return audits


def test_access_rules_and_audit():
    d = daemon("acl", keys=ACL_KEYS, extra_daemon=SOCKET_OPEN)
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o666
    want = []
    for peer in PEERS:
        want += run_peer(d, peer, public_allowed=peer == "root")
    # The CLI as another user: its executable is what the audit line names.
    blob_path = os.path.join(d.root, "rsa1024.blob")
    _, key, blob = vector("rsa1024")
    with open(blob_path, "wb") as f:
        f.write(blob)
    os.chmod(blob_path, 0o644)
    cli = os.path.realpath(os.environ["KT_CLI"])
    for uid, gid, rc in ((NOBODY, NOBODY, 1), (4242, 4242, 0)):
        p = subprocess.Popen([os.environ["KT_CLI"], "-s", d.socket, "--json", "unwrap", "rsa1024",
                              "-i", blob_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             user=uid, group=gid, extra_groups=[])
        out, errout = p.communicate(timeout=60)
        assert p.returncode == rc, (uid, p.returncode, out, errout)
        if rc:
            assert b'"error":"DENIED"' in out.replace(b" ", b""), out
            assert b'unwrap with key \\"rsa1024\\" is not allowed for uid 65534' in out, out
            want.append(("unwrap", "rsa1024", uid, gid, p.pid, cli, "DENIED"))
        else:
            assert key.hex().encode() in out, out
            want.append(("unwrap", "rsa1024", uid, gid, p.pid, cli, "OK"))
    got = check_audit(d, want)
    assert len(want) > 150, len(want)
    outcomes = collections.Counter(g[6] for g in want)
    print("   audit: %d records, %d lines, %s" % (len(want), len(got), dict(outcomes)))
    assert outcomes["OK"] >= 10 and outcomes["DENIED"] >= 100, outcomes
    d.stop()


def test_public_ops_rule():
    """allow_public_ops decides wrap/copp-sign to a key given in the request."""
    d = daemon("public", keys=ACL_KEYS, extra_daemon=SOCKET_OPEN + "\nallow_public_ops = gid:4343")
    want = []
    for peer in ("uid4242", "uid4242+group4343", "gid4343", "root"):
        want += run_peer(d, peer, public_allowed=peer != "uid4242")
    check_audit(d, want)
    d.stop()


# --- log secrecy ------------------------------------------------------------------------

HEX_RUN = re.compile(rb"[0-9a-fA-F]{10,}")


def check_log_secrecy(d):
    """d's log: printable ASCII lines, no PIN, no key material in any form we know of."""
    with open(d.log_path, "rb") as f:
        raw = f.read()
    assert raw, "empty log " + d.log_path
    bad = [i for i, b in enumerate(raw) if not (b == 10 or 32 <= b < 127)]
    assert not bad, "non-printable byte in %s at %d: %r" % (d.log_path, bad[0],
                                                            raw[max(0, bad[0] - 60):bad[0] + 20])
    for pin in PINS:
        assert pin.encode() not in raw, "the PIN is in " + d.log_path
    m = HEX_RUN.search(raw)
    assert not m, "hex run in %s: %r" % (d.log_path, raw[max(0, m.start() - 80):m.end() + 20])
    for s in SECRETS:
        for form in (s.hex().encode(), s.hex().upper().encode()):
            assert form not in raw, "a session key (hex) is in " + d.log_path
        if len(s) >= 8:
            assert s not in raw, "a session key (raw) is in " + d.log_path


def test_log_secrecy_busy_run():
    d = daemon("busy", extra_daemon=SOCKET_OPEN)
    c = Conn(d.socket)
    n = 0
    # Every vector, in both paddings.
    for i, (name, pad, alg, key, blob) in enumerate(read_vector_lines("simpleblob.txt")):
        r = c.call("unwrap", field("NAME", name) + field("BLOB", unhex(blob)) +
                   u8("PADDING", PAD[pad]), rid=i)
        expect(r, "OK")
        assert r.get("SESSION_KEY") == unhex(key)
        keep_secret(unhex(key))
        n += 1
    # The decrypt-class negative vectors: synthetic keys (implicit rejection) and strict refusals.
    for name, cls, blob in read_vector_lines("negative.txt"):
        for flags in (b"", u32("FLAGS", STRICT)):
            r = c.call("unwrap", field("NAME", "rsa2048") + field("BLOB", unhex(blob)) + flags)
            keep_secret(r.get("SESSION_KEY"))
            n += 1
    # Generated and given keys, wrapped to every HSM key and unwrapped again.
    for name in ("rsa1024", "rsa2048", "rsa4096", "wine1024"):
        for alg in (0x6801, 0x6602, 0x6601, 0x6603, 0x660e, 0x660f, 0x6610):
            for pad in (0, 1):
                r = c.call("wrap", u32("ALG_ID", alg) + field("NAME", name) + u8("PADDING", pad))
                expect(r, "OK")
                key = r.get("SESSION_KEY")
                keep_secret(key)
                u = c.call("unwrap", field("NAME", name) + field("BLOB", r.get("BLOB")) +
                           u8("PADDING", pad))
                expect(u, "OK")
                assert u.get("SESSION_KEY") == key
                given = os.urandom(len(key))
                keep_secret(given)
                r = c.call("wrap", u32("ALG_ID", alg) + field("SESSION_KEY", given) +
                           field("PUBLIC_KEY", pub_blob(name)) + u8("PADDING", pad))
                expect(r, "OK")
                n += 3
    # COPP: generated AES keys, opened again; the vectors; a bogus signature (synthetic values).
    for _ in range(20):
        rnd = os.urandom(16)
        r = c.call("copp-sign", field("NAME", "rsa2048") + field("RANDOM", rnd))
        expect(r, "OK")
        keep_secret(r.get("AES_KEY"), rnd)
        o = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", r.get("SIGNATURE")))
        assert o.get("AES_KEY") == r.get("AES_KEY")
        n += 2
    for name, rnd, aes, sseq, cseq, sig in read_vector_lines("copp.txt"):
        keep_secret(unhex(aes))
    r = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", bytes(255) + b"\x01"))
    keep_secret(r.get("AES_KEY"), r.get("RANDOM"))
    # Errors that echo parts of the request must not echo key bytes either.
    r = c.call("wrap", u32("ALG_ID", 0x660e) + field("SESSION_KEY", b"\xab" * 15) +
               field("NAME", "rsa2048"))
    expect(r, "KEY_LENGTH")
    keep_secret(b"\xab" * 15)
    c.close()
    assert n > 250, n
    d.stop()
    check_log_secrecy(d)


# --- implicit rejection -----------------------------------------------------------------

def bad_blob(alg, k, seed):
    """A SIMPLEBLOB for a k-byte key whose ciphertext is random bytes below any modulus of
    that size (the top byte small): it decrypts to garbage."""
    c = bytearray(os.urandom(k)) if seed is None else bytearray(seed)
    c[-1] = 1   # little-endian: the most significant byte
    return struct.pack("<BBHII", 1, 2, 0, alg, 0xa400) + bytes(c)


def unwrap_many(d, name, blobs, flags=b""):
    """Pipelined unwraps, written by a thread while this one reads (the daemon stops
    reading a client that does not read its answers); the replies in request order."""
    c = Conn(d.socket)
    data = b"".join(frame("unwrap", field("NAME", name) + field("BLOB", b) + flags, rid=i)
                    for i, b in enumerate(blobs))
    writer = threading.Thread(target=c.send, args=(data,))
    writer.start()
    replies = {}
    for _ in blobs:
        r = c.recv()
        replies[r.id] = r
    writer.join()
    c.close()
    assert sorted(replies) == list(range(len(blobs)))
    return [replies[i] for i in range(len(blobs))]


def test_implicit_rejection():
    d = daemon("ir")
    samples = {alg: [bad_blob(alg, 256, None) for _ in range(n)]
               for alg, n in ((0x6801, 300), (0x6602, 300), (0x660e, 100), (0x6610, 50))}
    everything = [b for alg in sorted(samples) for b in samples[alg]]
    first = unwrap_many(d, "rsa2048", everything)
    assert all(r.status == 0 for r in first), {status_name(r.status) for r in first}
    keys = [r.get("SESSION_KEY") for r in first]
    keep_secret(*keys)
    by_alg = {}
    for blob, r, k in zip(everything, first, keys):
        alg = struct.unpack_from("<I", blob, 4)[0]
        assert r.u32("ALG_ID") == alg
        by_alg.setdefault(alg, []).append(k)
    # RC4 and RC2: a length anywhere in 5..16 bytes, spread over the whole range.
    for alg in (0x6801, 0x6602):
        lengths = collections.Counter(len(k) for k in by_alg[alg])
        assert set(lengths) == set(range(5, 17)), (hex(alg), sorted(lengths.items()))
        assert max(lengths.values()) < 60, (hex(alg), lengths)   # ~25 each for 300 draws
        assert len(set(by_alg[alg])) == len(by_alg[alg]), "two ciphertexts gave the same key"
    assert {len(k) for k in by_alg[0x660e]} == {16}
    assert {len(k) for k in by_alg[0x6610]} == {32}
    assert len(set(by_alg[0x660e])) == 100
    # The same answers after a restart...
    d.stop()
    d.start()
    assert [r.get("SESSION_KEY") for r in unwrap_many(d, "rsa2048", everything)] == keys
    # ... but not under STRICT, which refuses every one of them the same way.
    strict = unwrap_many(d, "rsa2048", everything[:50], u32("FLAGS", STRICT))
    assert {(r.status, r.message()) for r in strict} == {
        (STATUS["UNWRAP_FAILED"], "the blob does not decrypt under key rsa2048")}
    d.stop()
    # ... and on "another host": a second token, elsewhere, with another label and PIN,
    # into which the same key was imported.
    other = Token(os.path.join(ROOT, "other-host-hsm"), label="kt-other-host", pin=OTHER_PIN)
    d2 = daemon("ir-other", token=other)
    r = Conn(d2.socket).call("info")
    assert r.get("TOKEN_LABEL") == b"kt-other-host"
    assert [r.get("SESSION_KEY") for r in unwrap_many(d2, "rsa2048", everything)] == keys
    # Two keys of the same size give different synthetic keys for the same blob.
    blobs = [bad_blob(alg, 128, None) for alg in (0x660e, 0x6801, 0x6610) for _ in range(5)]
    a = [r.get("SESSION_KEY") for r in unwrap_many(d2, "rsa1024", blobs)]
    b = [r.get("SESSION_KEY") for r in unwrap_many(d2, "wine1024", blobs)]
    keep_secret(*a, *b)
    assert all(x is not None and y is not None for x, y in zip(a, b))
    assert all(x != y for x, y in zip(a, b)), "rsa1024 and wine1024 made the same key"
    # And the copp-open equivalent: a bogus signature gives the same made-up values everywhere.
    bogus = field("NAME", "rsa2048") + field("SIGNATURE", bytes(255) + b"\x01")
    on_other = Conn(d2.socket).call("copp-open", bogus)
    d2.stop()
    d.start()
    on_first = Conn(d.socket).call("copp-open", bogus)
    expect(on_first, "OK")
    assert on_first.fields == on_other.fields
    keep_secret(on_first.get("AES_KEY"))
    d.stop()


# --- rsa_mechanism = pkcs ---------------------------------------------------------------

def test_pkcs_mechanism():
    keys = {"rsa1024": ("rsa1024", "01", "allow_pubkey = uid:4242"),
            "rsa2048": ("rsa2048", "02", "rsa_mechanism = pkcs\nallow_unwrap = uid:4343"),
            "rsa4096": ("rsa4096", "03")}
    d = daemon("pkcs", keys=keys, extra_daemon=SOCKET_OPEN)
    c = Conn(d.socket)
    n = 0
    for name, pad, alg, key, blob in read_vector_lines("simpleblob.txt"):
        if name not in keys:
            continue
        r = c.call("unwrap", field("NAME", name) + field("BLOB", unhex(blob)) +
                   u8("PADDING", PAD[pad]))
        expect(r, "OK")     # OAEP too: the HSM's CKM_RSA_PKCS_OAEP
        assert r.get("SESSION_KEY") == unhex(key) and r.u32("ALG_ID") == int(alg, 16)
        n += 1
    assert n == 60, n     # every rsa1024/rsa2048/rsa4096 vector, OAEP under pkcs included
    # No implicit rejection for this key: every decrypt failure is UNWRAP_FAILED, STRICT or not.
    answers, n = set(), 0
    for name, cls, blob in read_vector_lines("negative.txt"):
        for flags in (b"", u32("FLAGS", STRICT)):
            r = c.call("unwrap", field("NAME", "rsa2048") + field("BLOB", unhex(blob)) + flags)
            if cls == "decrypt":
                expect(r, "UNWRAP_FAILED")
                answers.add((r.message(), tuple(sorted(r.fields))))
                n += 1
            else:
                assert r.status not in (0, STATUS["UNWRAP_FAILED"]), (name, r.status)
    assert n == 16 and answers == {("the blob does not decrypt under key rsa2048",
                                    (T["MESSAGE"],))}, answers
    # The raw keys next to it still reject implicitly.
    r = c.call("unwrap", field("NAME", "rsa1024") + field("BLOB", bad_blob(0x660e, 128, None)))
    expect(r, "OK")
    assert len(r.get("SESSION_KEY")) == 16
    keep_secret(r.get("SESSION_KEY"))
    # COPP with the pkcs key: the vectors open, a bogus signature is refused.
    for name, rnd, aes, sseq, cseq, sig in read_vector_lines("copp.txt"):
        r = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", unhex(sig)))
        expect(r, "OK")
        assert r.get("AES_KEY") == unhex(aes) and r.get("RANDOM") == unhex(rnd)
        assert r.u32("STATUS_SEQ") == int(sseq) and r.u32("COMMAND_SEQ") == int(cseq)
    r = c.call("copp-open", field("NAME", "rsa2048") + field("SIGNATURE", bytes(255) + b"\x01"))
    expect(r, "UNWRAP_FAILED")
    # Wrapping to it is unaffected.
    r = c.call("wrap", u32("ALG_ID", 0x660e) + field("NAME", "rsa2048"))
    expect(r, "OK")
    u = c.call("unwrap", field("NAME", "rsa2048") + field("BLOB", r.get("BLOB")))
    assert u.get("SESSION_KEY") == r.get("SESSION_KEY")
    keep_secret(r.get("SESSION_KEY"))
    # info says so (to whoever can see the key); keys shows the mechanism.
    r = c.call("info")
    assert r.get("NOTICE") == (b"implicit rejection is off (rsa_mechanism = pkcs) for: rsa2048"), \
        r.get("NOTICE")
    entries = key_entries(c.call("keys"))
    mech = {k: e[T["MECHANISM"]][0].decode() for k, e in entries.items()}
    assert mech == {"rsa1024": "raw", "rsa2048": "pkcs", "rsa4096": "raw"}, mech
    c.close()
    _, r = as_user(call_all, d.socket, [frame("info")], uid=4242, gid=4242)
    assert r[0].status == 0 and r[0].u32("KEY_COUNT") == 1 and r[0].get("NOTICE") is None
    _, r = as_user(call_all, d.socket, [frame("info")], uid=4343, gid=4343)
    assert r[0].u32("KEY_COUNT") == 1 and b"rsa2048" in r[0].get("NOTICE")
    d.stop()
    warnings = [l for l in d.log_text().splitlines() if "implicit rejection is off" in l]
    assert len(warnings) == 1 and " warning: " in warnings[0], warnings
    assert "[key rsa2048] rsa_mechanism = pkcs" in warnings[0], warnings


# --- the PIN ---------------------------------------------------------------------------

def keytransd(*args, env=None, timeout=60):
    r = subprocess.run([os.environ["KT_KEYTRANSD"], *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


EX_CONFIG = 78   # a start that a retry cannot fix (main.c)


def refused(d, expect_text, env=None, timeout=60):
    """The daemon does not start with this configuration (foreground, background, -t)."""
    env = env or d.env
    for args in (("-f", "-c", d.config), ("-c", d.config), ("-t", "-c", d.config)):
        r = keytransd(*args, env=env, timeout=timeout)
        assert r.returncode == EX_CONFIG, (args, r.returncode, r.stdout, r.stderr)
        assert expect_text in r.stderr, (args, r.stderr)
        assert not os.path.exists(d.socket)


def without_pin_file(d):
    with open(d.config) as f:
        text = f.read()
    assert "pin_file = pin\n" in text
    with open(d.config, "w") as f:
        f.write(text.replace("pin_file = pin\n", ""))


def test_pin_file():
    d = daemon("pinfile", start=False)
    pin = os.path.join(d.root, "pin")
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(pin, mode)
        refused(d, "the PIN file %s must be a regular file readable by its owner only (mode %04o;"
                % (pin, mode))
    os.chmod(pin, 0o400)
    r = keytransd("-t", "-c", d.config, env=d.env)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    d.start()
    assert Conn(d.socket).call("info").status == 0
    d.stop()
    # A symbolic link is not followed (O_NOFOLLOW), even to a private file.
    os.rename(pin, pin + ".real")
    os.symlink(pin + ".real", pin)
    refused(d, "the PIN file %s must be a regular file, not a symbolic link" % pin)
    os.unlink(pin)
    os.rename(pin + ".real", pin)
    # -t --no-pin (ExecReload=) checks everything but the PIN file.
    os.chmod(pin, 0o644)
    r = keytransd("-t", "--no-pin", "-c", d.config, env=d.env)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    os.chmod(pin, 0o600)


def test_pin_file_kinds():
    """Only a regular file of root's (or the daemon's user), mode 0600 or 0400: a FIFO is
    refused at once (opening it must not wait for a writer), so are a folder, another
    user's file (its owner could open it up at any time) and other modes."""
    d = daemon("pinkinds", start=False)
    pin = os.path.join(d.root, "pin")
    os.rename(pin, pin + ".real")
    os.mkfifo(pin, 0o600)
    # Opening it to wait for a writer would never return: each start must end by itself.
    refused(d, "the PIN file %s must be a regular file, not a FIFO" % pin, timeout=60)
    os.unlink(pin)
    os.mkdir(pin, 0o700)
    refused(d, "the PIN file %s must be a regular file, not a directory" % pin)
    os.rmdir(pin)
    os.rename(pin + ".real", pin)
    os.chown(pin, NOBODY, NOBODY)
    refused(d, "the PIN file %s must be owned by root, not by uid %d" % (pin, NOBODY))
    os.chown(pin, 0, 0)
    for mode in (0o700, 0o200, 0o4600, 0o1600):
        os.chmod(pin, mode)
        refused(d, "the PIN file %s must be a regular file readable by its owner only (mode %04o;"
                % (pin, mode))
    os.chmod(pin, 0o400)
    d.start()
    assert Conn(d.socket).call("info").status == 0
    d.stop()


def check_pin(path, **kw):
    return keytransd("--check-pin=" + path, timeout=10, **kw)


def test_check_pin():
    """keytransd --check-pin=PATH (ExecStartPre= of the unit): the checks of pin_file on
    LoadCredential='s source, which the daemon never sees (it reads systemd's 0400 copy)."""
    root = new_root("checkpin")
    pin = os.path.join(root, "pin")
    with open(pin, "w") as f:
        f.write(PIN + "\n")
    for mode in (0o640, 0o644, 0o604, 0o660, 0o700):
        os.chmod(pin, mode)
        r = check_pin(pin)
        assert r.returncode == EX_CONFIG, r
        assert ("the PIN file %s must be a regular file readable by its owner only (mode %04o;"
                % (pin, mode)) in r.stderr, r.stderr
    for mode in (0o600, 0o400):
        os.chmod(pin, mode)
        r = check_pin(pin)
        assert r.returncode == 0 and r.stdout == "keytransd: %s: PIN file OK\n" % pin, r
        assert r.stderr == "", r
    os.chown(pin, NOBODY, NOBODY)
    r = check_pin(pin)
    assert r.returncode == EX_CONFIG and "must be owned by root, not by uid %d" % NOBODY in r.stderr, r
    # The daemon's own user may own it (a pin_file of its own)...
    r = subprocess.run([os.environ["KT_KEYTRANSD"], "--check-pin", pin], capture_output=True,
                       text=True, timeout=10, user=NOBODY, group=NOBODY, extra_groups=[])
    assert r.returncode == 0, r
    # ... and checks root's 0600 file without reading it (ExecStartPre= runs as that user).
    os.chown(pin, 0, 0)
    os.chmod(pin, 0o600)
    r = subprocess.run([os.environ["KT_KEYTRANSD"], "--check-pin", pin], capture_output=True,
                       text=True, timeout=10, user=NOBODY, group=NOBODY, extra_groups=[])
    assert r.returncode == 0 and "PIN file OK" in r.stdout, r
    other = os.path.join(root, "other")
    os.mkfifo(other, 0o600)
    r = check_pin(other)
    assert r.returncode == EX_CONFIG and "%s must be a regular file, not a FIFO" % other in r.stderr, r
    os.unlink(other)
    os.symlink(pin, other)
    r = check_pin(other)
    assert r.returncode == EX_CONFIG and "%s must be a regular file, not a symbolic link" % other \
        in r.stderr, r
    os.unlink(other)
    r = check_pin(other)
    assert r.returncode == EX_CONFIG and "cannot check the PIN file %s: No such file" % other \
        in r.stderr, r
    # It stands alone.
    assert keytransd("--check-pin=" + pin, "-t").returncode == 2
    assert keytransd("--no-pin", "-c", pin).returncode == 2


def test_pin_credential():
    """No pin_file: the systemd credential $CREDENTIALS_DIRECTORY/pin."""
    d = daemon("credential", start=False)
    without_pin_file(d)
    creds = os.path.join(d.root, "credentials")
    os.mkdir(creds, 0o700)
    with open(os.path.join(creds, "pin"), "w") as f:
        f.write(PIN)      # systemd copies the file as it is: no newline needed
    env = dict(d.env)
    env.pop("CREDENTIALS_DIRECTORY", None)
    # Neither: a clear error.
    refused(d, "no PIN: set [hsm] pin_file, or run under systemd with LoadCredential=pin:FILE",
            env=env)
    refused(d, "no PIN", env=dict(env, CREDENTIALS_DIRECTORY=""))
    # A credential others could read is refused like a PIN file.
    os.chmod(os.path.join(creds, "pin"), 0o644)
    refused(d, "the PIN file %s/pin must be a regular file readable by its owner only" % creds,
            env=dict(env, CREDENTIALS_DIRECTORY=creds))
    for mode in (0o400, 0o600):
        os.chmod(os.path.join(creds, "pin"), mode)
        d.env = dict(env, CREDENTIALS_DIRECTORY=creds)
        r = keytransd("-t", "-c", d.config, env=d.env)
        assert r.returncode == 0, r
        d.start()
        r = Conn(d.socket).call("info")
        expect(r, "OK")
        assert r.get("TOKEN_LABEL") == TOKEN.label.encode()
        d.stop()
    # pin_file, when given, wins over the credential.
    with open(os.path.join(creds, "pin"), "w") as f:
        f.write("wrong-pin")
    d2 = daemon("credential2", start=False)
    d2.env = dict(env, CREDENTIALS_DIRECTORY=creds)
    d2.start()
    assert Conn(d2.socket).call("info").status == 0
    d2.stop()


# --- the running process ------------------------------------------------------------------

def proc_status(pid, field_name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return line.split()[1:]
    raise AssertionError("no %s in /proc/%d/status" % (field_name, pid))


def locked_dontdump_kib(pid):
    """KiB of mappings that are both locked (lo) and left out of core dumps (dd)."""
    total, size = 0, 0
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("VmFlags:"):
                flags = line.split()[1:]
                if "lo" in flags and "dd" in flags:
                    total += size
    return total


def read_file_as(path, uid, gid):
    def attempt():
        try:
            with open(path, "rb") as f:
                f.read()
            return "read"
        except PermissionError:
            return "denied"
    return as_user(attempt, uid=uid, gid=gid)[1]


def test_process_hardening():
    d = daemon("hardening", workers=2, extra_daemon="job_memory = 2048")
    pid = d.pid()
    with open("/proc/%d/limits" % pid) as f:
        core = [l.split() for l in f if l.startswith("Max core file size")]
    assert core and core[0][4:6] == ["0", "0"], core       # soft and hard limit: 0 bytes
    # OpenSSL's secure heap (job_memory: 2048 KiB) and the stacks of the 2 HSM workers (and
    # of the public ones), 256 KiB each, are locked (VmLck counts the heap's whole mapping,
    # locked on fault) and marked MADV_DONTDUMP ("dd" in smaps' VmFlags). AddressSanitizer
    # turns mlock() into a no-op, so under it only the heap (locked by OpenSSL with mlock2)
    # is seen locked.
    stacks = 0 if sanitized() else 2 * 256
    vmlck = int(proc_status(pid, "VmLck")[0])
    assert vmlck >= 2048 + stacks, vmlck
    assert locked_dontdump_kib(pid) >= 2048 + stacks, locked_dontdump_kib(pid)
    d.stop()

    # Not dumpable: seen from outside only when the daemon runs as a user, as the kernel
    # then gives its /proc files to root instead of that user (a dumpable process of the
    # same user, the control, keeps them), so that the user cannot read its environment,
    # memory or attach a debugger. The daemon runs as uid 4242 on a token of its own.
    uid = gid = 4242
    home = new_root("as-user")
    token = Token(os.path.join(home, "hsm"), label="kt-user", pin=USER_PIN)
    d = Daemon(home, token, keys={"rsa2048": ("rsa2048", "02"),
                                  "open": ("rsa1024", "01", "allow_pubkey = *")},
               extra_daemon=SOCKET_OPEN + "\njob_memory = 1024", start=False, user=(uid, gid))
    DAEMONS.append(d)
    for dirpath, dirnames, filenames in os.walk(home):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)
    d.start()
    pid = d.pid()
    assert int(proc_status(pid, "Uid")[0]) == uid
    control = subprocess.Popen(["sleep", "60"], user=uid, group=gid, extra_groups=[])
    try:
        assert os.stat("/proc/%d/environ" % control.pid).st_uid == uid
        assert read_file_as("/proc/%d/environ" % control.pid, uid, gid) == "read"
        assert os.stat("/proc/%d/environ" % pid).st_uid == 0
        assert read_file_as("/proc/%d/environ" % pid, uid, gid) == "denied"
        assert read_file_as("/proc/%d/mem" % pid, uid, gid) == "denied"
    finally:
        control.kill()
        control.wait()
    # The daemon's own uid, like root, may use a key that lists no rules; others may not.
    alg, key, blob = vector("rsa2048")
    req = [frame("unwrap", field("NAME", "rsa2048") + field("BLOB", blob)), frame("info")]
    for peer_uid, want, count in ((uid, "OK", 2), (0, "OK", 2), (NOBODY, "DENIED", 1)):
        _, (r, info) = as_user(call_all, d.socket, req, uid=peer_uid, gid=peer_uid)
        expect(r, want)
        assert info.u32("KEY_COUNT") == count, (peer_uid, info.u32("KEY_COUNT"))
        if want == "OK":
            assert r.get("SESSION_KEY") == key
    d.stop()
    # Another user's executable cannot be read from /proc: its command name, which the
    # process chose itself, stands in, marked unverified (the root peer here; run as root the
    # daemon reads every one: exe_verified=yes in the other tests' records).
    log = d.log_text()
    assert re.search(r'audit op=unwrap key="rsa2048" mode=- uid=0 .* exe="comm:[^"]*" '
                     r'exe_verified=no outcome=OK', log), log[-2000:]


# --- every log --------------------------------------------------------------------------

def test_every_log_is_clean():
    """The secrecy check on the log of every daemon this file started."""
    stop_all()
    logs = [d for d in DAEMONS if os.path.exists(d.log_path)]   # those that were started
    assert len(logs) >= 10, len(logs)
    assert len(SECRETS) > 500, len(SECRETS)
    for d in logs:
        check_log_secrecy(d)


def main():
    global TOKEN, ROOT
    if os.geteuid() != 0:
        # Other users are played by children that change uid: impossible without root.
        print("SKIPPED (not root): the access-rule and hardening tests need to run as root")
        sys.exit(0)
    with Workspace() as root:
        ROOT = root
        os.chmod(root, 0o755)
        TOKEN = Token(os.path.join(root, "hsm"), pin=PIN)
        try:
            run_tests([test_access_rules_and_audit, test_public_ops_rule, test_log_secrecy_busy_run,
                       test_implicit_rejection, test_pkcs_mechanism, test_pin_file,
                       test_pin_file_kinds, test_check_pin, test_pin_credential,
                       test_process_hardening, test_every_log_is_clean])
        finally:
            stop_all()


if __name__ == "__main__":
    main()
