"""Protocol conformance: the same cases through libkeytrans (run_c) and through the Python
client (run_py.py, client/python/keytrans.py), against one keytransd and against fake
daemons that answer wrongly on purpose; both must print the same normalized line for
every case (statuses, status names, messages, outputs; randomized outputs are compared
through a round trip). The cases are cases.txt plus one or more for every line of the
vector files. KT_CONFORMANCE_DUMP=PREFIX keeps both outputs (PREFIX.c, PREFIX.py)."""
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fake_daemon import SCENARIOS as FAKES, FakeDaemon, full_backlog
from harness import KEYS, Daemon, Workspace, as_user, read_vector_lines, run_tests, vectors

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.environ["KT_VECTORS"], "..", "data")
KEYS_HERE = dict(KEYS, pkcs2048=("rsa2048", "02", "rsa_mechanism = pkcs\nallow_pubkey = *"))
OTHER_UID = 4242        # DENIED is what another user gets for keys without a rule for it
PAD = {"pkcs1": 0, "oaep": 1}
NEGATIVE_STATUS = {"bad_btype": "BLOB_TYPE", "bad_version": "BLOB_VERSION",
                   "bad_reserved": "BLOB_RESERVED", "wrap_alg_sign": "BLOB_WRAP_ALG",
                   "unknown_key_alg": "BLOB_ALG", "truncated": "BLOB_LENGTH",
                   "trailing_byte": "BLOB_LENGTH", "header_only": "BLOB_LENGTH",
                   "empty": "BLOB_LENGTH", "ciphertext_ge_modulus": "BLOB_RANGE"}
ALGS = {0x6602: (5, 16), 0x6801: (5, 16), 0x6601: (8, 8), 0x6609: (16, 16), 0x6603: (24, 24),
        0x660e: (16, 16), 0x660f: (24, 24), 0x6610: (32, 32)}

RUN = {}        # what the runners printed, filled by main()


# --- the cases ---

class Case:
    def __init__(self, line):
        parts = line.split()
        self.id, self.op = parts[0], parts[1]
        self.kv = dict(p.split("=", 1) for p in parts[2:])
        self.line = line


def vector_cases():
    """Cases for every line of the vector files, with what each must give."""
    lines, want = [], {}
    for i, (name, pad, alg, key, blob) in enumerate(read_vector_lines("simpleblob.txt")):
        for strict in (0, 1):
            cid = "vec-sb-%d-%d" % (i, strict)
            lines.append("%s unwrap name=%s pad=%d strict=%d blob=%s expect=OK" % (
                cid, name, PAD[pad], strict, blob))
            want[cid] = " alg=0x%x key=%s" % (int(alg, 16), key)
    for name, cls, blob in read_vector_lines("negative.txt"):
        variants = [("rsa2048", 0, 0), ("rsa2048", 0, 1), ("rsa2048", 1, 0), ("pkcs2048", 0, 0),
                    ("pkcs2048", 0, 1)]
        for key, pad, strict in variants:
            cid = "vec-neg-%s-%s-%d-%d" % (name, key, pad, strict)
            if cls == "format":
                st = NEGATIVE_STATUS[name]
            else:
                st = "OK" if (key, pad, strict) == ("rsa2048", 0, 0) else "UNWRAP_FAILED"
            lines.append("%s unwrap name=%s pad=%d strict=%d blob=%s expect=%s" % (
                cid, key, pad, strict, blob, st))
    for i, (name, rnd, aes, sseq, cseq, sig) in enumerate(read_vector_lines("copp.txt")):
        out = " random=%s aes=%s sseq=%s cseq=%s" % (rnd, aes, sseq, cseq)
        for suffix, extra, st in (("plain", "", "OK"), ("expect", " expect_random=" + rnd, "OK"),
                                  ("strict", " strict=1 expect_random=" + rnd, "OK"),
                                  ("pkcs", " expect_random=" + rnd, "OK"),
                                  ("mismatch", " expect_random=" + "00" * 16, "RANDOM_MISMATCH")):
            cid = "vec-copp-%d-%s" % (i, suffix)
            key = "pkcs2048" if suffix == "pkcs" else name
            lines.append("%s copp-open name=%s sig=%s%s expect=%s" % (cid, key, sig, extra, st))
            if st == "OK":
                want[cid] = out
    # Wrap: every ALG_ID, both paddings, the shortest and longest given keys and a
    # generated one, to each vector key in turn (by name, or by its public blob).
    n = 0
    for alg, (lo, hi) in ALGS.items():
        for pad in (0, 1):
            for key in sorted({lo, hi}) + [None]:
                name = ("rsa1024", "rsa2048", "rsa4096", "wine1024")[n % 4]
                to = ("to=" + name) if n % 2 else "pub=@%s" % vectors("keys", name + ".pub.blob")
                given = "" if key is None else " key=" + bytes(range(1, key + 1)).hex()
                lines.append("vec-wrap-%d wrap alg=0x%x pad=%d %s%s check=%s expect=OK" % (
                    n, alg, pad, to, given, name))
                want["vec-wrap-%d" % n] = " check=ok"
                n += 1
    # Every simpleblob vector pipelined, both ways.
    sb = read_vector_lines("simpleblob.txt")
    for bid, depth, mode in (("vec-batch", 8, "batch"), ("vec-submit", 64, "submit")):
        lines.append("%s batch-begin depth=%d mode=%s expect=OK" % (bid, depth, mode))
        for i, (name, pad, alg, key, blob) in enumerate(sb):
            cid = "%s-%d" % (bid, i)
            lines.append("%s unwrap name=%s pad=%d blob=%s expect=OK" % (cid, name, PAD[pad], blob))
            want[cid] = " alg=0x%x key=%s" % (int(alg, 16), key)
        lines.append("%s batch-end" % bid)
    return lines, want


def make_files(tmp):
    def put(name, data):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
    hdr = bytes.fromhex("010200000e66000000a40000")
    put("zero268.bin", hdr + bytes(256))
    put("zero256.bin", bytes(256))
    put("ff256.bin", b"\xff" * 256)
    put("blob2060.bin", hdr + bytes(2048))
    put("blob2061.bin", hdr + bytes(2049))
    put("pub60000.bin", b"\x30" * 60000)
    put("pub60001.bin", b"\x30" * 60001)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(os.path.join(tmp, "dead.sock"))
    dead.close()


def substitute(line, where):
    def one(m):
        key = m.group(1)
        if key.startswith("fake:"):
            return where["fakes"][key[5:]]
        return where[key]
    return re.sub(r"\{([a-z0-9_:]+)\}", one, line)


def run_runner(cmd, casefile, env, user=None):
    kw = {} if user is None else dict(user=user, group=user, extra_groups=[])
    p = subprocess.run(cmd + [casefile], env=env, capture_output=True, timeout=300, **kw)
    assert p.returncode == 0, "%s exited %d:\n%s" % (cmd[0], p.returncode,
                                                     p.stderr.decode(errors="replace"))
    return p.stdout.decode("ascii").splitlines()


def py_as_other_user(casefile, sock):
    """run_py in a forked child as OTHER_UID (this interpreter may live where that user
    cannot go, so no new process is started)."""
    def child():
        import io
        import run_py
        os.environ["KEYTRANS_SOCKET"] = sock
        run_py.OUT = io.StringIO()
        run_py.run(casefile)
        return run_py.OUT.getvalue()
    return as_user(child, uid=OTHER_UID, gid=OTHER_UID)[1].splitlines()


def by_id(lines):
    out = {}
    for line in lines:
        cid = line.split(" ", 1)[0]
        assert cid not in out, "case %s printed twice" % cid
        out[cid] = line
    return out


def status_of(line):
    return line.split()[1]


# --- the checks ---

def test_same_cases_printed():
    c, py = RUN["c"], RUN["py"]
    assert [l.split(" ", 1)[0] for l in c] == [l.split(" ", 1)[0] for l in py], \
        "the runners printed different cases"
    assert len(c) >= 500, len(c)


def test_identical_results():
    c, py = by_id(RUN["c"]), by_id(RUN["py"])
    differ = []
    for cid in c:
        if cid in RUN["known"]:
            continue
        if c[cid] != py[cid]:
            differ.append("C:  %s\nPy: %s" % (c[cid], py[cid]))
    assert not differ, "%d cases differ:\n%s" % (len(differ), "\n".join(differ[:20]))


def test_expected_statuses():
    c = by_id(RUN["c"])
    wrong, checked = [], 0
    for case in RUN["cases"]:
        want = case.kv.get("expect")
        if want is None:
            continue
        wants = want.split(",")
        ids = [case.id]
        if len(wants) > 1:
            ids = ["%s#%d" % (case.id, i + 1) for i in range(len(wants))]
        for cid, w in zip(ids, wants):
            checked += 1
            if cid not in c:
                wrong.append("%s: no result" % cid)
            elif status_of(c[cid]) != w:
                wrong.append("%s: expected %s: %s" % (cid, w, c[cid]))
    assert not wrong, "\n".join(wrong[:20])
    assert checked >= 500, checked


def test_vector_outputs():
    c, py = by_id(RUN["c"]), by_id(RUN["py"])
    for cid, frag in RUN["want"].items():
        assert frag in c[cid], (cid, frag, c[cid])
        assert frag in py[cid], (cid, frag, py[cid])


def test_every_error_kind_seen():
    seen = {status_of(l) for l in RUN["c"]} | {status_of(l) for l in RUN["denied_c"]}
    for st in ("OK", "BAD_REQUEST", "UNKNOWN_KEY", "BLOB_TYPE", "BLOB_VERSION", "BLOB_RESERVED",
               "BLOB_WRAP_ALG", "BLOB_ALG", "BLOB_LENGTH", "BLOB_RANGE", "UNWRAP_FAILED",
               "KEY_LENGTH", "BAD_PUBLIC_KEY", "KEY_SIZE", "RANDOM_MISMATCH", "HSM_ERROR", "BUSY",
               "INTERNAL", "SHUTTING_DOWN", "TIMEOUT", "HSM_UNAVAILABLE", "UNKNOWN",
               "ERR_CONNECT", "ERR_IO", "ERR_PROTOCOL", "ERR_ARG", "ERR_TIMEOUT"):
        assert st in seen, st
    if os.geteuid() == 0:
        assert "DENIED" in seen


def test_known_differences():
    """What differs on purpose, and only that: each case marked known_difference."""
    c, py = by_id(RUN["c"]), by_id(RUN["py"])
    for cid, case in RUN["known"].items():
        if "expect_c" in case.kv:
            assert status_of(c[cid]) == case.kv["expect_c"], c[cid]
            assert status_of(py[cid]) == case.kv["expect_py"], py[cid]
        if case.op != "batch-begin":
            assert c[cid] != py[cid], "no longer differs (update cases.txt): %s" % c[cid]
    assert "\\xff\\xfe" in c["status-invalid-utf8"], c["status-invalid-utf8"]
    assert "\\xef\\xbf\\xbd" in py["status-invalid-utf8"], py["status-invalid-utf8"]


def test_denied_as_other_user():
    if os.geteuid() != 0:
        print("skipped: DENIED needs another uid (run as root)")
        return
    c, py = RUN["denied_c"], RUN["denied_py"]
    assert c == py, "\n".join("C:  %s\nPy: %s" % p for p in zip(c, py) if p[0] != p[1])
    got = {l.split(" ", 1)[0]: status_of(l) for l in c}
    assert got == {"other-info": "OK", "other-keys": "OK", "other-unwrap": "DENIED",
                   "other-unwrap-nosuch": "DENIED", "other-pubkey": "OK",
                   "other-pubkey-denied": "DENIED", "other-wrap": "DENIED",
                   "other-copp-open": "DENIED", "other-copp-sign-pub": "DENIED"}, got
    assert " keys=1 " in next(l for l in c if l.startswith("other-info ")), c


DENIED_CASES = """other-info info
other-keys keys
other-unwrap unwrap name=rsa2048 blob=@{tmp}/zero268.bin
other-unwrap-nosuch unwrap name=nosuch blob=0102
other-pubkey pubkey name=pkcs2048
other-pubkey-denied pubkey name=rsa2048
other-wrap wrap alg=0x660e to=rsa2048
other-copp-open copp-open name=rsa2048 sig=@{tmp}/zero256.bin
other-copp-sign-pub copp-sign pub=@{vectors}/keys/rsa2048.pub.blob random=%s
"""


def main():
    with Workspace() as root:
        os.chmod(root, 0o755)       # the DENIED runs are another user
        d = Daemon(root, keys=KEYS_HERE, extra_daemon="socket_mode = 0666")
        fakes, held = [], []
        try:
            tmp = os.path.join(root, "t")
            os.makedirs(tmp)
            os.chmod(tmp, 0o755)
            make_files(tmp)
            where = {"vectors": os.environ["KT_VECTORS"], "data": os.path.normpath(DATA),
                     "tmp": tmp, "socket": d.socket, "fakes": {}}
            for name, handler in FAKES.items():
                path = os.path.join(tmp, "f-%s.sock" % name)
                fakes.append(FakeDaemon(path, handler))
                where["fakes"][name] = path
            backlog, held = full_backlog(os.path.join(tmp, "backlog.sock"))
            fakes.append(backlog)
            where["backlog"] = backlog.path
            with open(os.path.join(HERE, "cases.txt")) as f:
                lines = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
            extra, RUN["want"] = vector_cases()
            lines = [substitute(l, where) for l in lines + extra]
            assert all("{" not in l for l in lines), "a placeholder was left unreplaced"
            casefile = os.path.join(tmp, "cases.txt")
            with open(casefile, "w") as f:
                f.write("\n".join(lines) + "\n")
            RUN["cases"] = [Case(l) for l in lines]
            RUN["known"] = {c.id: c for c in RUN["cases"] if "known_difference" in c.kv}
            env = dict(os.environ, KEYTRANS_SOCKET=d.socket)
            run_c = [os.environ["KT_RUN_C"]]
            run_py = [sys.executable, os.path.join(HERE, "run_py.py")]
            RUN["c"] = run_runner(run_c, casefile, env)
            RUN["py"] = run_runner(run_py, casefile, env)
            RUN["denied_c"] = RUN["denied_py"] = []
            if os.geteuid() == 0:
                other = os.path.join(tmp, "other.txt")
                with open(other, "w") as f:
                    f.write(substitute(DENIED_CASES % ("00" * 16), where))
                RUN["denied_c"] = run_runner(run_c, other, env, user=OTHER_UID)
                RUN["denied_py"] = py_as_other_user(other, d.socket)
            if os.environ.get("KT_CONFORMANCE_DUMP"):
                for name in ("c", "py"):
                    with open(os.environ["KT_CONFORMANCE_DUMP"] + "." + name, "w") as f:
                        f.write("\n".join(RUN[name]) + "\n")
            for s in held:
                s.close()
            for f in fakes:
                f.close()
            run_tests([test_same_cases_printed, test_identical_results, test_expected_statuses,
                       test_vector_outputs, test_every_error_kind_seen, test_known_differences,
                       test_denied_as_other_user])
        finally:
            if d.alive():
                d.stop()


if __name__ == "__main__":
    main()
