"""OPM session start and sealed sessions (issue 14, parts A and C) through the CLI and the
Python client against a real daemon (test_lib.c has libkeytrans' calls):

- opm-sign -> opm-open round trips (given and generated parameters; recipients as a key
  name, a DER key, a CNG BCRYPT_RSAPUBLIC_BLOB and a COPP XML chain), checked against an
  independent RSAES-OAEP (SHA-512) in python3-cryptography; RANDOM_MISMATCH, KEY_SIZE,
  UNWRAP_FAILED;
- copp-open/opm-open --seal answer a handle and no AES key; session-mac equals an independent
  AES-CMAC (cryptography's cmac.CMAC) under the key an unsealed open of the same signature
  gives, and RFC 4493's vectors;
- session-verify: OK, OMAC_MISMATCH, BAD_SEQUENCE on OPM/COPP status and command structures
  (replay and skip refused, a failed check does not advance, 2^32-1 wraps to 0), COPP status
  requests without an OMAC;
- sessions belong to their uid (another one gets UNKNOWN_SESSION), close, the per-uid cap
  (SESSION_LIMIT), idle expiry, SIGHUP wipes them all; stats, Prometheus and bench.

Other users are forked children (harness.Child): needs root."""
import json
import os
import signal
import struct
import subprocess

from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import algorithms

from harness import Child, Daemon, Workspace, run_tests, vectors, wait_until, writable_memory

import keytrans

OTHER = 4250            # may open sessions on rsa2048 too, never uses root's
CAP = 4                 # max_sessions_per_uid of the main daemon
IDLE = 1                # session_idle_timeout of the expiry daemon, seconds
KEYS = {
    "rsa1024": ("rsa1024", "01"),
    "rsa2048": ("rsa2048", "02", "allow_copp_open = uid:%d\nallow_opm_open = uid:%d\n"
                "allow_wrap = uid:%d" % (OTHER, OTHER, OTHER)),
    "rsa4096": ("rsa4096", "03"),
}
EXTRA = "socket_mode = 0666\nmax_sessions_per_uid = %d" % CAP

D = None                # the main daemon
ROOT = None
RND = bytes(range(16))
AES = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")     # RFC 4493's key
GUID = bytes(range(0xa0, 0xb0))
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA512()), algorithm=hashes.SHA512(), label=None)


def private_key(name):
    with open(vectors("keys", name + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def omac(key, data):
    """AES-CMAC (OMAC-1) by python3-cryptography: independent of the daemon's."""
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def kt(*args, inp=None, sock=None):
    return subprocess.run([os.environ["KT_CLI"], "-s", sock or D.socket, *args], input=inp,
                          capture_output=True, timeout=120)


def ok_json(*args, inp=None):
    r = kt("--json", *args, inp=inp)
    assert r.returncode == 0 and r.stderr == b"", (args, r)
    return json.loads(r.stdout)


def fails(status, *args, inp=None, code=1):
    """The CLI's --json error: the status name and its exit code."""
    r = kt("--json", *args, inp=inp)
    out = json.loads(r.stdout)
    assert r.returncode == code and out["error"] == status, (args, r)
    return out


def path(name):
    return os.path.join(ROOT, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)
    return path(name)


def opm_message(random, aes, status_seq, command_seq):
    """OPM's 40-byte initialization parameters: ULONGs in memory order (little-endian)."""
    return random + aes + struct.pack("<II", status_seq, command_seq)


def opm_sign(name="sig", *extra):
    """opm-sign to rsa2048 with RND; the JSON and the signature file's path."""
    out = ok_json("opm-sign", "--to-key", "rsa2048", "--random", RND.hex(), "-o", path(name),
                  *extra)
    with open(path(name), "rb") as f:
        assert f.read().hex() == out["signature"]
    return out, path(name)


def sealed(op="opm-open", sig=None, *extra):
    """A sealed open of sig; its JSON."""
    out = ok_json(op, "rsa2048", "-i", sig, "--expect-random", RND.hex(), "--seal", *extra)
    assert set(out) == {"session", "random", "status_seq", "command_seq"}, out
    assert len(bytes.fromhex(out["session"])) == 16 and out["random"] == RND.hex()
    return out


def opm_session(status_seq, command_seq, aes=AES, name="sess-sig"):
    """A sealed OPM session with the given key and numbers: its handle (hex)."""
    _, sig = opm_sign(name, "--aes-key", aes.hex(), "--status-seq", str(status_seq),
                      "--command-seq", str(command_seq))
    out = sealed("opm-open", sig)
    assert (out["status_seq"], out["command_seq"]) == (status_seq, command_seq)
    return out["session"]


def close(handle):
    assert ok_json("session-close", handle) == {"closed": True}


def stats():
    return keytrans.connect(D.socket).stats()


# OPM_GET_INFO_PARAMETERS after its OMAC: rnRandomNumber, guidInformation, ulSequenceNumber,
# cbParametersSize, abParameters. OPM_CONFIGURE_PARAMETERS after its OMAC: guidSetting,
# ulSequenceNumber, cbParametersSize, abParameters. (COPP's DXVA_COPPStatusInput and
# DXVA_COPPCommand have the same layout.)
def status_request(seq, random=RND):
    return random + GUID + struct.pack("<II", seq, 8) + b"parameter"[:8]


def command(seq):
    return GUID + struct.pack("<II", seq, 4) + b"\x01\x02\x03\x04"


def verify(handle, data, tag, kind=None):
    """session-verify through the CLI: (exit code, JSON)."""
    args = ["--json", "session-verify", handle, "--omac", tag.hex()]
    if kind:
        args += ["--kind", kind]
    r = kt(*args, inp=data)
    return r.returncode, json.loads(r.stdout)


def nexts(out):
    return out["next_status_seq"], out["next_command_seq"]


# --- A: OPM ------------------------------------------------------------------------------

def test_opm_given_parameters_round_trip():
    out, sig = opm_sign("given", "--aes-key", AES.hex(), "--status-seq", "7",
                        "--command-seq", "4294967295")
    assert (out["random"], out["aes_key"], out["status_seq"], out["command_seq"]) == \
        (RND.hex(), AES.hex(), 7, 0xffffffff)
    with open(sig, "rb") as f:
        raw = f.read()
    # Big-endian OAEP as is: the private key decrypts it to M, numbers little-endian.
    assert private_key("rsa2048").decrypt(raw, OAEP) == opm_message(RND, AES, 7, 0xffffffff)
    opened = ok_json("opm-open", "rsa2048", "-i", sig, "--expect-random", RND.hex())
    assert opened == {"random": RND.hex(), "aes_key": AES.hex(), "status_seq": 7,
                      "command_seq": 0xffffffff}, opened


def test_opm_generated_parameters_and_recipients():
    pub = private_key("rsa2048").public_key()
    der = write("rsa2048.der", pub.public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    cng = write("rsa2048.cng", ok_pubkey_cng())
    xml = os.path.join(os.environ["KT_COPP_DATA"], "leaf2048.xml")
    seen = set()
    for to in (["--to-key", "rsa2048"], ["--to", der], ["--to", cng], ["--to", xml]):
        out = ok_json("opm-sign", *to, "--random", RND.hex(), "-o", path("gen"))
        seen.add(out["aes_key"])
        opened = ok_json("opm-open", "rsa2048", "-i", path("gen"))
        assert opened == {k: out[k] for k in ("random", "aes_key", "status_seq", "command_seq")}
    assert len(seen) == 4, "the HSM's generator gave the same AES key twice"
    # An array made by cryptography opens to what it holds.
    msg = opm_message(RND, bytes(16), 0, 123456)
    write("indep", pub.encrypt(msg, OAEP))
    assert ok_json("opm-open", "rsa2048", "-i", path("indep")) == {
        "random": RND.hex(), "aes_key": "00" * 16, "status_seq": 0, "command_seq": 123456}


def ok_pubkey_cng():
    r = kt("pubkey", "rsa2048", "--format", "cng")
    assert r.returncode == 0 and r.stdout[:4] == b"RSA1", r
    return r.stdout


def test_opm_refusals():
    _, sig = opm_sign("refused")
    out = fails("RANDOM_MISMATCH", "opm-open", "rsa2048", "-i", sig, "--expect-random", "ff" * 16)
    assert "aes_key" not in out
    fails("KEY_SIZE", "opm-sign", "--to-key", "rsa1024", "--random", RND.hex(), "-o",
          path("x1024"))
    fails("KEY_SIZE", "opm-open", "rsa4096", "-i", sig)
    fails("KEY_SIZE", "opm-open", "rsa1024", "-i", sig)
    fails("UNWRAP_FAILED", "opm-open", "rsa2048", inp=bytes(255) + b"\x01")
    fails("BLOB_RANGE", "opm-open", "rsa2048", inp=b"\xff" * 256)
    # A COPP signature (little-endian) is no OPM array: above the modulus, or no OAEP.
    copp = ok_json("copp-sign", "--to-key", "rsa2048", "--random", RND.hex(), "-o", path("copp"))
    r = kt("--json", "opm-open", "rsa2048", "-i", path("copp"))
    assert r.returncode == 1 and json.loads(r.stdout)["error"] in ("BLOB_RANGE", "UNWRAP_FAILED")
    assert ok_json("copp-open", "rsa2048", "-i", path("copp"))["aes_key"] == copp["aes_key"]
    fails("USAGE", "opm-open", "rsa2048", "-i", sig, "--strict", code=2)    # no such option
    fails("USAGE", "opm-open", "rsa2048", inp=bytes(255), code=2)


# --- C: sealed sessions ----------------------------------------------------------------------

def test_sealed_open_hides_the_key():
    out, sig = opm_sign("seal")
    s = sealed("opm-open", sig)
    assert (s["status_seq"], s["command_seq"]) == (out["status_seq"], out["command_seq"])
    assert out["aes_key"] not in json.dumps(s)
    r = kt("opm-open", "rsa2048", "-i", sig, "--seal")         # the text form too
    assert r.returncode == 0 and b"aes_key" not in r.stdout and b"session: " in r.stdout, r
    handle = r.stdout.split(b"session: ")[1].split(b"\n")[0].decode()
    copp = ok_json("copp-sign", "--to-key", "rsa2048", "--random", RND.hex(), "-o", path("cs"))
    c = sealed("copp-open", path("cs"))
    assert c["status_seq"] == copp["status_seq"] and copp["aes_key"] not in json.dumps(c)
    for h in (s["session"], handle, c["session"]):
        close(h)


def test_session_mac_is_aes_cmac():
    out, sig = opm_sign("mac")
    key = bytes.fromhex(ok_json("opm-open", "rsa2048", "-i", sig)["aes_key"])
    assert key.hex() == out["aes_key"]
    handle = sealed("opm-open", sig)["session"]
    for n in (0, 1, 15, 16, 17, 40, 4095, 4096):
        data = os.urandom(n)
        assert ok_json("session-mac", handle, inp=data)["omac"] == omac(key, data).hex(), n
    fails("USAGE", "session-mac", handle, inp=bytes(4097), code=2)
    close(handle)
    # RFC 4493's examples, with its key given to opm-sign.
    handle = opm_session(0, 0)
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
    for n, tag in ((0, "bb1d6929e95937287fa37d129b756746"),
                   (16, "070a16b46b4d4144f79bdd9dd04a287c"),
                   (40, "dfa66747de9ae63030ca32611497c827"),
                   (64, "51f0bebf7e3b9d92fc49741779363cfe")):
        assert ok_json("session-mac", handle, inp=msg[:n])["omac"] == tag, n
    close(handle)


def test_verify_opm_status_and_command_sequences():
    handle = opm_session(10, 20)
    st = status_request(10)
    # KIND none: the OMAC alone, no number moves.
    assert verify(handle, st, omac(AES, st)) == (0, {"ok": True, "next_status_seq": 10,
                                                    "next_command_seq": 20})
    rc, out = verify(handle, st, omac(AES, st), "status")
    assert rc == 0 and nexts(out) == (11, 20), out
    rc, out = verify(handle, st, omac(AES, st), "status")       # replayed
    assert rc == 1 and out["error"] == "BAD_SEQUENCE", out
    skip = status_request(12)
    rc, out = verify(handle, skip, omac(AES, skip), "status")   # skipped
    assert rc == 1 and out["error"] == "BAD_SEQUENCE", out
    nxt = status_request(11)
    bad = bytearray(omac(AES, nxt))
    bad[0] ^= 1
    rc, out = verify(handle, nxt, bytes(bad), "status")         # the right number, a bad OMAC
    assert rc == 1 and out["error"] == "OMAC_MISMATCH", out
    rc, out = verify(handle, nxt, omac(AES, nxt), "status")     # the failure did not advance
    assert rc == 0 and nexts(out) == (12, 20), out
    cmd = command(20)
    rc, out = verify(handle, cmd, omac(AES, cmd), "command")
    assert rc == 0 and nexts(out) == (12, 21), out
    rc, out = verify(handle, cmd, omac(AES, cmd), "command")
    assert rc == 1 and out["error"] == "BAD_SEQUENCE", out
    rc, out = verify(handle, command(21), omac(AES, command(20)), "command")
    assert rc == 1 and out["error"] == "OMAC_MISMATCH", out
    # Too short for the number's offset; a tag of the whole data, so only the length is wrong.
    short = status_request(12)[:35]
    rc, out = verify(handle, short, omac(AES, short), "status")
    assert rc == 1 and out["error"] == "BAD_REQUEST", out
    rc, out = verify(handle, cmd[:19], omac(AES, cmd[:19]), "command")
    assert rc == 1 and out["error"] == "BAD_REQUEST", out
    # An OPM status request needs its OMAC.
    fails("BAD_REQUEST", "session-verify", handle, "--kind", "status", inp=status_request(12))
    fails("USAGE", "session-verify", handle, "--kind", "sideways", inp=st, code=2)
    rc, out = verify(handle, status_request(12), omac(AES, status_request(12)), "status")
    assert rc == 0 and nexts(out) == (13, 21), out
    close(handle)


def test_verify_wraps_around():
    handle = opm_session(0xffffffff, 0xffffffff)
    for seq, want in ((0xffffffff, 0), (0, 1)):
        st, cmd = status_request(seq), command(seq)
        rc, out = verify(handle, st, omac(AES, st), "status")
        assert rc == 0 and out["next_status_seq"] == want, out
        rc, out = verify(handle, cmd, omac(AES, cmd), "command")
        assert rc == 0 and nexts(out) == (want, want), out
    close(handle)


def test_copp_status_without_omac():
    copp = ok_json("copp-sign", "--to-key", "rsa2048", "--random", RND.hex(), "--aes-key",
                   AES.hex(), "--status-seq", "5", "--command-seq", "9", "-o", path("cst"))
    assert copp["status_seq"] == 5
    handle = sealed("copp-open", path("cst"))["session"]
    st = status_request(5)
    out = ok_json("session-verify", handle, "--kind", "status", inp=st)      # no --omac
    assert nexts(out) == (6, 9), out
    fails("BAD_SEQUENCE", "session-verify", handle, "--kind", "status", inp=st)
    # An OMAC on a COPP status request is refused; commands carry one as usual.
    fails("BAD_REQUEST", "session-verify", handle, "--kind", "status", "--omac",
          omac(AES, status_request(6)).hex(), inp=status_request(6))
    fails("BAD_REQUEST", "session-verify", handle, "--kind", "command", inp=command(9))
    rc, out = verify(handle, command(9), omac(AES, command(9)), "command")
    assert rc == 0 and nexts(out) == (6, 10), out
    # The COPP driver signs its status answers with the same key.
    assert ok_json("session-mac", handle, inp=b"answer")["omac"] == omac(AES, b"answer").hex()
    close(handle)


def other_user(sock, handle):
    """What uid OTHER gets with root's handle, and that it may open sessions of its own."""
    got = []
    with keytrans.connect(sock) as c:
        for call in (lambda: c.session_mac(handle, b"x"),
                     lambda: c.session_verify(handle, b"x", bytes(16)),
                     lambda: c.session_close(handle)):
            try:
                call()
                got.append("OK")
            except keytrans.KeytransError as e:
                got.append(e.name)
        sig = c.opm_sign(RND, to_key="rsa2048", aes_key=AES).signature
        s = c.opm_open("rsa2048", sig, RND, seal=True)
        tag = c.session_mac(s.session, b"mine")
        c.session_close(s.session)
    return got, tag


def test_other_uid_and_close():
    handle = opm_session(1, 1)
    got, tag = Child(other_user, D.socket, bytes.fromhex(handle), uid=OTHER, gid=OTHER).result()
    assert got == ["UNKNOWN_SESSION"] * 3, got
    assert tag == omac(AES, b"mine")
    # Still root's, untouched by the other user's close.
    assert ok_json("session-mac", handle, inp=b"x")["omac"] == omac(AES, b"x").hex()
    close(handle)
    for args in (["session-mac", handle], ["session-verify", handle, "--omac", "00" * 16],
                 ["session-close", handle]):
        fails("UNKNOWN_SESSION", *args, inp=b"x")
    fails("UNKNOWN_SESSION", "session-mac", "00" * 16, inp=b"x")
    fails("USAGE", "session-mac", "00" * 15, inp=b"x", code=2)


def test_per_uid_cap():
    _, sig = opm_sign("cap", "--aes-key", AES.hex())
    before = stats()
    handles = [sealed("opm-open", sig)["session"] for _ in range(CAP - before.sessions)]
    assert stats().sessions == CAP
    fails("SESSION_LIMIT", "opm-open", "rsa2048", "-i", sig, "--seal")
    ok_json("copp-sign", "--to-key", "rsa2048", "--random", RND.hex(), "-o", path("cap-copp"))
    fails("SESSION_LIMIT", "copp-open", "rsa2048", "-i", path("cap-copp"), "--seal")
    # The unsealed open is no session: still served.
    assert ok_json("opm-open", "rsa2048", "-i", sig)["aes_key"] == AES.hex()
    close(handles.pop())
    handles.append(sealed("opm-open", sig)["session"])
    assert len(set(handles)) == len(handles)
    for h in handles:
        close(h)
    after = stats()
    assert after.sessions == before.sessions
    assert after.sessions_opened == before.sessions_opened + len(handles) + 1


def test_stats_lines():
    before = stats()
    handle = opm_session(0, 0)
    s = stats()
    assert (s.sessions, s.sessions_opened, s.sessions_expired) == \
        (before.sessions + 1, before.sessions_opened + 1, before.sessions_expired)
    obj = ok_json("stats")
    assert obj["sessions"] == {"open": s.sessions, "opened": s.sessions_opened,
                               "expired": s.sessions_expired}, obj["sessions"]
    text = kt("stats").stdout.decode()
    assert "sessions: %d open, %d opened, %d expired" % (
        s.sessions, s.sessions_opened, s.sessions_expired) in text, text
    prom = kt("stats", "--prometheus").stdout.decode()
    for line in ("keytrans_sessions_open %d" % s.sessions,
                 "keytrans_sessions_opened_total %d" % s.sessions_opened,
                 "keytrans_sessions_expired_total %d" % s.sessions_expired,
                 "# TYPE keytrans_sessions_open gauge",
                 "# TYPE keytrans_sessions_opened_total counter"):
        assert line + "\n" in prom, (line, prom)
    close(handle)
    assert stats().sessions == before.sessions
    # The earlier tests' refusals, each counted under its own status.
    ops = {o.name: o for o in stats().ops}
    verify_statuses = ops["session-verify"].by_status
    for status in ("OK", "OMAC_MISMATCH", "BAD_SEQUENCE", "BAD_REQUEST", "UNKNOWN_SESSION"):
        assert verify_statuses.get(getattr(keytrans, status), 0) > 0, (status, verify_statuses)
    assert keytrans.INTERNAL not in verify_statuses, verify_statuses
    assert ops["opm-open"].by_status.get(keytrans.SESSION_LIMIT, 0) > 0, ops["opm-open"]


def test_bench_ops():
    before = stats()
    for op in ("opm-sign", "opm-open", "session-mac", "session-verify"):
        r = kt("--json", "bench", "--op", op, "--key", "rsa2048", "-n", "40", "-P", "4")
        out = json.loads(r.stdout)
        assert r.returncode == 0 and out["requests"] == 40 and out["errors"] == 0, (op, r)
    r = kt("--json", "bench", "--op", "opm-sign", "--to", path("rsa2048.der"), "-n", "8")
    assert r.returncode == 0 and json.loads(r.stdout)["errors"] == 0, r
    r = kt("--json", "bench", "--op", "session-mac", "--to", path("rsa2048.der"), "-n", "8")
    assert r.returncode == 2, r
    # The bench closed the sessions it opened.
    after = stats()
    assert after.sessions == before.sessions and after.sessions_opened == before.sessions_opened + 2


def test_python_client():
    with keytrans.connect(D.socket) as c:
        made = c.opm_sign(RND, to_key="rsa2048", aes_key=AES, status_seq=3, command_seq=4)
        assert private_key("rsa2048").decrypt(made.signature, OAEP) == opm_message(RND, AES, 3, 4)
        opened = c.opm_open("rsa2048", made.signature, RND)
        assert opened == (None, RND, AES, 3, 4) and "2b7e" not in repr(opened)
        e = raises(keytrans.UnwrapFailed, c.opm_open, "rsa2048", made.signature, bytes(16))
        assert e.code == keytrans.RANDOM_MISMATCH
        s = c.opm_open("rsa2048", made.signature, RND, seal=True)
        assert isinstance(s, keytrans.Sealed) and (s.random, s.status_seq, s.command_seq) == \
            (RND, 3, 4) and len(s.session) == 16
        assert c.session_mac(s.session, b"data") == omac(AES, b"data")
        st = status_request(3)
        assert c.session_verify(s.session, st, omac(AES, st), kind="status") == (4, 4)
        e = raises(keytrans.VerifyFailed, c.session_verify, s.session, st, omac(AES, st),
                   kind="status")
        assert e.code == keytrans.BAD_SEQUENCE
        e = raises(keytrans.VerifyFailed, c.session_verify, s.session, b"x", bytes(16))
        assert e.code == keytrans.OMAC_MISMATCH
        assert c.session_verify(s.session, command(4), omac(AES, command(4)),
                                kind="command").next_command_seq == 5
        raises(keytrans.InvalidArgument, c.session_verify, s.session, b"x", bytes(16), kind="x")
        raises(keytrans.InvalidArgument, c.session_mac, s.session, bytes(4097))
        raises(keytrans.InvalidArgument, c.session_mac, s.session[:15], b"")
        c.session_close(s.session)
        e = raises(keytrans.UnknownSession, c.session_mac, s.session, b"")
        assert e.code == keytrans.UNKNOWN_SESSION
        # COPP: sealed, and a status request without an OMAC.
        cs = c.copp_sign(RND, to_key="rsa2048", aes_key=AES, status_seq=0, command_seq=0)
        cp = c.copp_open("rsa2048", cs.signature, RND, seal=True)
        assert c.session_verify(cp.session, status_request(0), kind="status") == (1, 0)
        c.session_close(cp.session)
        # Pipelined, as batch items.
        r = c.batch([keytrans.Op("opm_sign", RND, to_key="rsa2048", aes_key=AES),
                     keytrans.Op("opm_open", "rsa2048", made.signature, RND)])
        assert r.error is None and r[0].aes_key == AES and r[1].aes_key == AES
        assert c.pubkey("rsa2048", "cng")[:4] == b"RSA1"
        s = c.stats()
        assert None not in (s.sessions, s.sessions_opened, s.sessions_expired)
        # The cap, as its own class.
        handles = [c.opm_open("rsa2048", made.signature, seal=True).session
                   for _ in range(CAP - s.sessions)]
        e = raises(keytrans.SessionLimit, c.opm_open, "rsa2048", made.signature, seal=True)
        assert e.code == keytrans.SESSION_LIMIT
        for h in handles:
            c.session_close(h)


def raises(cls, fn, *args, **kw):
    """fn(*args, **kw) must raise a KeytransError of exactly the family class cls."""
    try:
        r = fn(*args, **kw)
    except keytrans.KeytransError as e:
        assert type(e) is cls, (e, cls)
        return e
    raise AssertionError("no %s, got %r" % (cls.__name__, r))


def holds(pid, needle):
    return any(needle in data for _, data in writable_memory(pid))


def test_closed_session_leaves_no_key():
    """A sealed session's AES key is in the daemon's memory while the session is open (the
    scan sees the locked heap) and nowhere once it is closed: not in its block of the locked
    heap, nor in the AES-CMAC context that used it (ordinary heap; the first round key is
    the key itself). The array is made here, so the key enters the daemon only by opm-open."""
    key = os.urandom(16)
    sig = private_key("rsa2048").public_key().encrypt(opm_message(RND, key, 1, 2), OAEP)
    with keytrans.connect(D.socket) as c:
        s = c.opm_open("rsa2048", sig, RND, seal=True)
        assert c.session_mac(s.session, b"m") == omac(key, b"m")
        assert holds(D.pid(), key), "the scan does not see the open session's key"
        c.session_close(s.session)
    assert not holds(D.pid(), key), "a closed session's key is still in the daemon's memory"


def test_sighup_wipes_sessions():
    handle = opm_session(0, 0)
    assert stats().sessions >= 1
    before = D.log_text().count("configuration reloaded")
    os.kill(D.pid(), signal.SIGHUP)
    wait_until(lambda: D.log_text().count("configuration reloaded") > before, 30,
               "the reload")
    assert stats().sessions == 0
    fails("UNKNOWN_SESSION", "session-mac", handle, inp=b"x")


def mac_unless_expired(c, handle, expired_before):
    """The session signs with its key, unless this (loaded) machine let it sit idle for
    IDLE seconds first: then the daemon must have counted it expired. True if it signed."""
    try:
        assert c.session_mac(handle, b"x") == omac(AES, b"x")
        return True
    except keytrans.UnknownSession:
        assert c.stats().sessions_expired == expired_before + 1, c.stats()
        return False


def test_idle_expiry():
    """A session unused for session_idle_timeout goes (waited for with a deadline: the daemon
    looks at idle sessions periodically, so when exactly is not asserted)."""
    with Workspace() as root:
        os.chmod(root, 0o755)
        d = Daemon(root, keys=KEYS, extra_daemon="session_idle_timeout = %d" % IDLE)
        try:
            with keytrans.connect(d.socket) as c:
                sig = c.opm_sign(RND, to_key="rsa2048", aes_key=AES).signature
                s = c.opm_open("rsa2048", sig, seal=True)
                mac_unless_expired(c, s.session, 0)
                wait_until(lambda: c.stats().sessions_expired == 1, IDLE + 60,
                           "the idle session to expire")
                st = c.stats()
                assert (st.sessions, st.sessions_opened, st.sessions_expired) == (0, 1, 1), st
                raises(keytrans.UnknownSession, c.session_mac, s.session, b"")
                # A new one works as before.
                s = c.opm_open("rsa2048", sig, seal=True)
                if mac_unless_expired(c, s.session, 1):
                    c.session_close(s.session)
        finally:
            d.stop()


def main():
    global D, ROOT
    with Workspace() as root:
        ROOT = root
        os.chmod(root, 0o755)
        D = Daemon(root, keys=KEYS, extra_daemon=EXTRA)
        try:
            run_tests([test_opm_given_parameters_round_trip,
                       test_opm_generated_parameters_and_recipients, test_opm_refusals,
                       test_sealed_open_hides_the_key, test_session_mac_is_aes_cmac,
                       test_verify_opm_status_and_command_sequences, test_verify_wraps_around,
                       test_copp_status_without_omac, test_other_uid_and_close,
                       test_per_uid_cap, test_stats_lines, test_bench_ops, test_python_client,
                       test_closed_session_leaves_no_key, test_sighup_wipes_sessions,
                       test_idle_expiry])
        finally:
            D.stop()


if __name__ == "__main__":
    main()
