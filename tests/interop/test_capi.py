"""Interop with Microsoft CryptoAPI itself, as Wine implements it (advapi32 + rsaenh):
capi.exe (capi.c, mingw-w64) calls CryptImportKey / CryptExportKey / CryptGenKey /
CryptEncrypt / CryptDecrypt under Wine, and every blob keytrans makes must be read by
CryptoAPI, every blob CryptoAPI makes must be read by keytrans, byte for byte:

- keytrans -> CryptoAPI: `keytrans wrap` (given and generated keys) for every ALG_ID of
  docs/formats.md, PKCS#1 v1.5 and CRYPT_OAEP, keys of 1024, 2048 and 4096 bits (and
  wine1024); CryptImportKey(SIMPLEBLOB) + CryptExportKey(PLAINTEXTKEYBLOB) must give the
  key, and equal `keytrans unwrap -o` byte for byte; keytrans's PLAINTEXTKEYBLOBs must be
  accepted by CryptImportKey; a blob unwrapped with the other padding must be refused.
- CryptoAPI -> keytrans: CryptGenKey + CryptExportKey(SIMPLEBLOB under a PUBLICKEYBLOB,
  the daemon's own `keytrans pubkey` export for half of them) for the same grid, RC2/RC4
  at 40, 56 and 128 bits; `keytrans unwrap -o` must equal CryptoAPI's PLAINTEXTKEYBLOB, and
  `keytrans wrap --key-blob` of CryptoAPI's PLAINTEXTKEYBLOB must import back into CryptoAPI.
- PUBLICKEYBLOB: `keytrans pubkey` equals the vector CryptoAPI exported, and CryptImportKey
  + CryptExportKey of it gives the same bytes back.
- The repository's vectors (simpleblob.txt, copp.txt), said to be made by CryptoAPI, are
  read by CryptoAPI.
- COPP on rsa2048 both ways: `keytrans copp-sign` opened by CryptDecrypt (M = reversed
  random|aes|status LE|command LE), and CryptEncrypt(M, final TRUE, buffer 256) opened by
  `keytrans copp-open --expect-random`.

Wine runs in a private WINEPREFIX in the test's folder (one `wineboot -i`, one wineserver
for the run, stopped at the end); each test runs its CryptoAPI calls as one batch in one
Wine process. If capi.exe was not built or Wine cannot start, the test FAILS with a message
saying so; it never passes or skips silently.

Wine's rsaenh (8.0 in Debian 12), what this test relies on and what it works around:
- Nothing in the grid above is left out: every ALG_ID, both paddings, 1024/2048/4096.
- CryptImportKey(SIMPLEBLOB) removes OAEP padding only when dwFlags is exactly CRYPT_OAEP
  (rsaenh's unpad_data() compares `dwFlags == CRYPT_OAEP`); CRYPT_EXPORTABLE | CRYPT_OAEP
  is unpadded as PKCS#1 v1.5 and refused with NTE_BAD_DATA, for CryptoAPI's own blobs too
  (CryptImportKey documents them as flags to combine). So capi.exe passes CRYPT_OAEP alone
  under Wine and CRYPT_OAEP | CRYPT_EXPORTABLE on Windows; Wine exports a PLAINTEXTKEYBLOB
  of the key either way (its crypt_export_plaintext_key() checks no export permission).
- CryptGenKey honours the key length in the upper 16 bits for RC2/RC4 (40..128, multiples
  of 8); DES/3DES_112/3DES take 56/112/168 (stored as 8/16/24 bytes), AES_n only n.
- The 11 salt bytes of 40-bit RC2/RC4 keys are in neither SIMPLEBLOB nor PLAINTEXTKEYBLOB,
  as docs/formats.md says.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Daemon, Workspace, read_vector_lines, run_tests, vectors  # noqa: E402

# name, ALG_ID, key lengths (bytes) keytrans is given, CryptGenKey bit lengths.
ALGS = [
    ("RC2", 0x6602, (5, 11, 16), (40, 56, 128)),
    ("RC4", 0x6801, (5, 7, 16), (40, 56, 128)),
    ("DES", 0x6601, (8,), (56,)),
    ("3DES_112", 0x6609, (16,), (112,)),
    ("3DES", 0x6603, (24,), (168,)),
    ("AES_128", 0x660e, (16,), (128,)),
    ("AES_192", 0x660f, (24,), (192,)),
    ("AES_256", 0x6610, (32,), (256,)),
]
# The bytes of the key CryptGenKey makes for ALG_ID with BITS (0: the provider's default).
# DES keys are stored with their parity bits: 56 -> 8, 112 -> 16, 168 -> 24 bytes.
STORED_BYTES = {0x6601: 8, 0x6609: 16, 0x6603: 24}
DEFAULT_BYTES = {0x6602: 16, 0x6801: 16, 0x660e: 16, 0x660f: 24, 0x6610: 32}


def gen_bytes(alg, bits):
    return STORED_BYTES.get(alg) or (bits // 8 if bits else DEFAULT_BYTES[alg])

KEYS = {"rsa1024": 1024, "rsa2048": 2048, "rsa4096": 4096, "wine1024": 1024}
NTE_BAD_DATA = 0x80090005

D = None      # the daemon
W = None      # Wine
TMP = None    # the test's files
_counter = [0]


class WineUnavailable(Exception):
    pass


# --- files, keytrans ---------------------------------------------------------

def tmpfile(data=None, stem="f"):
    _counter[0] += 1
    path = os.path.join(TMP, "%s-%d" % (stem, _counter[0]))
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def kt(*args):
    """Runs the CLI against the daemon; requires exit 0 and no sanitizer report."""
    cmd = [os.environ["KT_CLI"], "-s", D.socket] + [str(a) for a in args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    assert r.returncode == 0, (args, r.returncode, r.stdout[:300], r.stderr.decode())
    return r


def kt_try(*args):
    """Runs the CLI; returns (exit status, stdout, stderr) without judging them."""
    cmd = [os.environ["KT_CLI"], "-s", D.socket] + [str(a) for a in args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r.returncode, r.stdout, r.stderr.decode(errors="replace").strip()


def kt_json(*args):
    return json.loads(kt("--json", *args).stdout)


def keyblob(alg, key):
    """PLAINTEXTKEYBLOB: 08 02 0000 | alg LE32 | len LE32 | key."""
    return bytes([8, 2, 0, 0]) + struct.pack("<II", alg, len(key)) + key


def simpleblob_header(alg):
    return bytes([1, 2, 0, 0]) + struct.pack("<II", alg, 0xa400)


def pad_args(oaep):
    return ["--oaep"] if oaep else []


def copp_m(rnd, aes, sseq, cseq):
    """docs/formats.md: M = (random | aes_key | status_seq LE | command_seq LE) reversed."""
    return (rnd + aes + struct.pack("<II", sseq, cseq))[::-1]


# --- Wine ----------------------------------------------------------------------

def winepath(path):
    """A Unix path as Wine's Z: drive sees it (Z: is / in every prefix)."""
    path = os.path.abspath(path)
    assert not any(c.isspace() for c in path), "capi batch lines split on spaces: " + path
    return "Z:" + path.replace("/", "\\")


class Wine:
    """A private 64-bit WINEPREFIX under root, booted once, with capi.exe ready to run."""

    def __init__(self, root):
        self.exe = os.environ.get("KT_CAPI_EXE", "")
        if not self.exe or not os.path.isfile(self.exe):
            raise WineUnavailable(
                "capi.exe was not built (KT_CAPI_EXE=%r): x86_64-w64-mingw32-gcc was not found "
                "when meson configured. Install gcc-mingw-w64-x86-64 (scripts/deps), then "
                "`meson setup --reconfigure BUILDDIR`." % self.exe)
        self.wine = shutil.which("wine64") or shutil.which("wine")
        if not self.wine:
            raise WineUnavailable("neither wine64 nor wine is on PATH: install wine and wine64 "
                                  "(scripts/deps)")
        self.wineserver = shutil.which("wineserver") or "/usr/lib/wine/wineserver"
        self.prefix = os.path.join(root, "wineprefix")
        self.env = dict(os.environ, WINEPREFIX=self.prefix, WINEARCH="win64", WINEDEBUG="-all",
                        WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d")
        for var in ("DISPLAY", "WAYLAND_DISPLAY"):   # console programs need no display
            self.env.pop(var, None)
        self.server = False
        start = time.time()
        try:
            self._boot()
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.time() - start
        r = self.run("probe")
        if r.returncode != 0:
            self.close()
            raise WineUnavailable("capi.exe probe under Wine exited %d:\n%s" % (
                r.returncode, r.output))
        self.provider = r.stdout.decode().strip()

    def _boot(self):
        os.makedirs(self.prefix)
        # One wineserver for the run: -p30 keeps it up 30 s after the last Wine process
        # (the gaps between batches), and lets it end by itself if this test is killed.
        r = self._spawn([self.wineserver, "-p30"], timeout=60)
        if r.returncode != 0:
            raise WineUnavailable("`wineserver -p30` exited %d: %s" % (r.returncode, r.output))
        self.server = True
        r = self._spawn([self.wine, "wineboot", "-i"], timeout=600)
        if r.returncode != 0 or not os.path.isdir(os.path.join(self.prefix, "drive_c")):
            raise WineUnavailable("`%s wineboot -i` (WINEPREFIX=%s) exited %d:\n%s" % (
                self.wine, self.prefix, r.returncode, r.output))

    def _spawn(self, cmd, timeout):
        """Runs cmd with its output in files, not pipes: wineserver and the Wine services
        wineboot starts outlive the command and would hold a pipe open."""
        out, err = tmpfile(stem="wine-out"), tmpfile(stem="wine-err")
        try:
            with open(out, "wb") as fo, open(err, "wb") as fe:
                r = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=fo,
                                   stderr=fe, timeout=timeout)
        except FileNotFoundError as e:
            raise WineUnavailable("%s: %s" % (cmd[0], e)) from e
        except subprocess.TimeoutExpired as e:
            raise WineUnavailable("`%s` did not finish in %ds" % (" ".join(cmd), timeout)) from e
        r.stdout, r.stderr = read(out), read(err)
        r.output = (r.stdout + r.stderr).decode(errors="replace")[-3000:]
        return r

    def run(self, *args, timeout=600):
        try:
            return self._spawn([self.wine, self.exe] + list(args), timeout)
        except WineUnavailable as e:
            raise AssertionError("capi.exe %s: %s" % (args[0], e)) from e

    def batch(self, lines):
        """Runs capi.exe commands in one Wine process; returns, for each line in order,
        ("ok", [hex fields]) or ("err", (GetLastError, message))."""
        inp = tmpfile(("\n".join(lines) + "\n").encode(), "batch")
        outp = tmpfile(stem="results")
        r = self.run("batch", winepath(inp), winepath(outp))
        if r.returncode not in (0, 1) or not os.path.exists(outp):
            raise AssertionError("capi.exe batch exited %d:\n%s" % (r.returncode, r.output))
        out = read(outp).decode().splitlines()
        assert len(out) == len(lines), (len(out), len(lines), out[-3:])
        results = []
        for line in out:
            kind, _, rest = line.partition(" ")
            if kind == "ok":
                results.append(("ok", rest.split()))
            else:
                assert kind == "err", line
                code, _, msg = rest.partition(" ")
                results.append(("err", (int(code, 16), msg)))
        return results

    def close(self):
        """Stops this prefix's wineserver (and with it the Wine services of the prefix)."""
        if self.server:
            self.server = False
            for flag in ("-k", "-w"):
                subprocess.run([self.wineserver, flag], env=self.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


class Problems:
    """Collects every failed check of a test, so that one run shows every discrepancy
    (with the bytes) instead of the first."""
    API, CODE = "CryptoAPI", "error"      # who refuses, and what its code is called

    def __init__(self):
        self.items = []

    def check(self, cond, msg):
        if not cond:
            self.items.append(msg)
        return cond

    def fields(self, result, what):
        """The hex fields of a capi.exe result as bytes, or None (and a problem) if
        CryptoAPI refused."""
        kind, value = result
        if kind != "ok":
            self.items.append("%s refused %s: %s 0x%08x (%s)" % (self.API, what, self.CODE,
                                                                 *value))
            return None
        return [bytes.fromhex(v) for v in value]

    def done(self, checked):
        assert not self.items, "%d of %d checks failed:\n  %s" % (
            len(self.items), checked, "\n  ".join(self.items[:40]))


def key_blob(name, kind):
    """The vector NAME.KIND.blob (KIND priv or pub), copied into the test's folder so that
    the source tree's path (spaces, anything) never reaches a capi batch line."""
    path = os.path.join(TMP, "%s.%s.blob" % (name, kind))
    if not os.path.exists(path):
        shutil.copyfile(vectors("keys", "%s.%s.blob" % (name, kind)), path)
    return path


def priv_blob(name):
    return winepath(key_blob(name, "priv"))


def import_unwrap_line(name, path, oaep):
    return "import-unwrap %s %s%s" % (priv_blob(name), winepath(path), " oaep" if oaep else "")


# --- tests ----------------------------------------------------------------------

PUB_EXPORT = {}   # key name -> path of the daemon's own PUBLICKEYBLOB (`keytrans pubkey`)


def test_publickeyblob():
    """`keytrans pubkey` is the PUBLICKEYBLOB CryptoAPI exported for the key (the vector),
    and CryptImportKey + CryptExportKey(PUBLICKEYBLOB) of it gives the same bytes back."""
    p = Problems()
    lines = []
    for name in KEYS:
        path = tmpfile(stem="pub-" + name)
        kt("pubkey", name, "--format", "blob", "-o", path)
        PUB_EXPORT[name] = path
        p.check(read(path) == read(vectors("keys", name + ".pub.blob")),
                "%s: keytrans pubkey %s differs from CryptoAPI's vector %s" % (
                    name, read(path).hex(), read(vectors("keys", name + ".pub.blob")).hex()))
        lines.append("pub-export " + winepath(path))
    for name, res in zip(KEYS, W.batch(lines)):
        f = p.fields(res, "keytrans's PUBLICKEYBLOB of " + name)
        if f:
            p.check(f[0] == read(PUB_EXPORT[name]), "%s: CryptExportKey gave %s for %s" % (
                name, f[0].hex(), read(PUB_EXPORT[name]).hex()))
    p.done(2 * len(KEYS))


def test_vectors_through_capi():
    """The repository's vectors, which say CryptoAPI made them, read by CryptoAPI: every
    SIMPLEBLOB of simpleblob.txt and every signature of copp.txt."""
    p = Problems()
    cases, lines = [], []
    for name, pad, alg, key, blob in read_vector_lines("simpleblob.txt"):
        cases.append(("%s %s %s %s" % (name, pad, alg, key), keyblob(int(alg, 16),
                                                                    bytes.fromhex(key))))
        lines.append(import_unwrap_line(name, tmpfile(bytes.fromhex(blob), "vec"),
                                        pad == "oaep"))
    for name, rnd, aes, sseq, cseq, sig in read_vector_lines("copp.txt"):
        cases.append(("copp %s %s" % (name, rnd), copp_m(bytes.fromhex(rnd), bytes.fromhex(aes),
                                                         int(sseq), int(cseq))))
        lines.append("copp-decrypt %s %s" % (priv_blob(name), sig))
    for (label, want), res in zip(cases, W.batch(lines)):
        f = p.fields(res, "vector " + label)
        if f:
            p.check(f[0] == want, "vector %s: CryptoAPI gave %s, expected %s" % (
                label, f[0].hex(), want.hex()))
    p.done(len(cases))


def test_keytrans_to_capi():
    """keytrans wrap (given keys of every length class, generated keys) -> CryptoAPI
    CryptImportKey(SIMPLEBLOB) + CryptExportKey(PLAINTEXTKEYBLOB), for every ALG_ID, both
    paddings, every key; keytrans unwrap -o gives the same PLAINTEXTKEYBLOB, and CryptImportKey
    takes keytrans's PLAINTEXTKEYBLOB."""
    p = Problems()
    cases = []   # (label, name, alg, key, oaep, SIMPLEBLOB file, keytrans's PLAINTEXTKEYBLOB file)
    for name in KEYS:
        for calg, alg, lengths, _ in ALGS:
            for oaep in (False, True):
                keys = [("given", os.urandom(n), None) for n in lengths]
                # Generated by the daemon: the longest key, and 40 bits for RC2/RC4.
                obj = kt_json("wrap", "--to-key", name, "--alg", calg, "--generate",
                              *pad_args(oaep))
                keys.append(("generated", bytes.fromhex(obj["key"]), obj["blob"]))
                if alg in (0x6602, 0x6801):
                    obj = kt_json("wrap", "--to-key", name, "--alg", calg, "--generate",
                                  "--bits", "40", *pad_args(oaep))
                    keys.append(("generated-40", bytes.fromhex(obj["key"]), obj["blob"]))
                for how, key, blob_hex in keys:
                    if blob_hex is None:
                        blob_hex = kt_json("wrap", "--to-key", name, "--alg", calg, "--key",
                                           key.hex(), *pad_args(oaep))["blob"]
                    blob = bytes.fromhex(blob_hex)
                    label = "%s %s %s %s %d-byte key %s" % (
                        name, calg, "oaep" if oaep else "pkcs1", how, len(key), key.hex())
                    p.check(len(blob) == 12 + KEYS[name] // 8 and
                            blob[:12] == simpleblob_header(alg),
                            "%s: keytrans SIMPLEBLOB header %s" % (label, blob[:12].hex()))
                    path = tmpfile(blob, "sb")
                    kb = tmpfile(stem="kb")
                    kt("unwrap", name, "-i", path, "-o", kb, *pad_args(oaep))
                    cases.append((label, name, alg, key, oaep, path, kb))
    lines = []
    for label, name, alg, key, oaep, path, kb in cases:
        lines.append(import_unwrap_line(name, path, oaep))
        lines.append("plain-import " + winepath(kb))
    # The padding must matter: each padding's blob under the other padding is refused.
    crossed = [c for c in cases if c[1] == "rsa2048" and c[2] == 0x660e]
    for label, name, alg, key, oaep, path, kb in crossed:
        lines.append(import_unwrap_line(name, path, not oaep))
    results = W.batch(lines)
    for i, (label, name, alg, key, oaep, path, kb) in enumerate(cases):
        f = p.fields(results[2 * i], "keytrans's SIMPLEBLOB, " + label)
        if f and p.check(f[0] == keyblob(alg, key), "%s: CryptoAPI unwrapped %s from %s" % (
                label, f[0].hex(), read(path).hex())):
            p.check(read(kb) == f[0], "%s: keytrans unwrap -o wrote %s, CryptoAPI %s" % (
                label, read(kb).hex(), f[0].hex()))
        f = p.fields(results[2 * i + 1], "keytrans's PLAINTEXTKEYBLOB, " + label)
        if f:
            p.check(f[0] == read(kb), "%s: CryptoAPI re-exported keytrans's %s as %s" % (
                label, read(kb).hex(), f[0].hex()))
    assert len(crossed) == 4, len(crossed)   # given + generated, both paddings
    for (label, *_), (kind, value) in zip(crossed, results[2 * len(cases):]):
        p.check(kind == "err" and value[0] == NTE_BAD_DATA,
                "%s: CryptoAPI gave %r for it under the other padding" % (label, value))
    p.done(3 * len(cases) + len(crossed))
    print("  %d keytrans SIMPLEBLOBs read by CryptoAPI" % len(cases))


def test_capi_to_keytrans():
    """CryptGenKey + CryptExportKey(SIMPLEBLOB, PLAINTEXTKEYBLOB) -> keytrans unwrap, byte for
    byte; then keytrans wrap --key-blob of CryptoAPI's PLAINTEXTKEYBLOB -> CryptoAPI again."""
    p = Problems()
    cases, lines = [], []   # cases: (label, name, alg, bits, oaep)
    n = 0
    for name in KEYS:
        for calg, alg, _, bit_lengths in ALGS:
            for bits in bit_lengths:
                for oaep in (False, True):
                    n += 1
                    # Half under the daemon's own PUBLICKEYBLOB export, half under the vector.
                    pub = PUB_EXPORT[name] if n % 2 else key_blob(name, "pub")
                    cases.append(("%s %s %d bits %s" % (name, calg, bits,
                                                       "oaep" if oaep else "pkcs1"),
                                  name, alg, bits, oaep))
                    lines.append("gen-wrap %s %s %d%s" % (winepath(pub), calg, bits,
                                                          " oaep" if oaep else ""))
    # And each algorithm's default length (BITS 0) once.
    for calg, alg, _, _ in ALGS:
        cases.append(("rsa2048 %s default length pkcs1" % calg, "rsa2048", alg, 0, False))
        lines.append("gen-wrap %s %s 0" % (winepath(PUB_EXPORT["rsa2048"]), calg))
    back = []   # (label, name, oaep, CryptoAPI's key blob, keytrans's SIMPLEBLOB of it)
    for (label, name, alg, bits, oaep), res in zip(cases, W.batch(lines)):
        f = p.fields(res, "CryptGenKey/CryptExportKey, " + label)
        if not f:
            continue
        sb, capi_kb = f
        nbytes = gen_bytes(alg, bits)
        label += " key " + capi_kb.hex()
        p.check(sb[:12] == simpleblob_header(alg) and len(sb) == 12 + KEYS[name] // 8,
                "%s: CryptoAPI SIMPLEBLOB %s" % (label, sb.hex()))
        if not p.check(capi_kb[:12] == keyblob(alg, bytes(nbytes))[:12] and
                       len(capi_kb) == 12 + nbytes,
                       "%s: CryptoAPI PLAINTEXTKEYBLOB of %d bytes expected" % (label, nbytes)):
            continue
        kb = tmpfile(stem="kb")
        sb_path = tmpfile(sb, "sb")
        rc, _, err = kt_try("unwrap", name, "-i", sb_path, "-o", kb, *pad_args(oaep))
        if rc != 0 or read(kb) != capi_kb:
            # --strict: an error instead of the made-up key of implicit rejection.
            rc, out, err = kt_try("--json", "unwrap", name, "--strict", "-i", sb_path,
                                  *pad_args(oaep))
            p.check(False, "%s: keytrans did not unwrap CryptoAPI's SIMPLEBLOB %s to its key "
                           "(unwrap --strict: exit %d %s %s)" % (label, sb.hex(), rc,
                                                                  out.decode().strip(), err))
            continue
        obj = kt_json("wrap", "--to-key", name, "--key-blob", tmpfile(capi_kb, "capikb"),
                      *pad_args(oaep))
        back.append((label, name, oaep, capi_kb, tmpfile(bytes.fromhex(obj["blob"]), "sb")))
    lines = [import_unwrap_line(name, path, oaep) for label, name, oaep, _, path in back]
    for (label, name, oaep, capi_kb, path), res in zip(back, W.batch(lines)):
        f = p.fields(res, "keytrans wrap --key-blob of CryptoAPI's key, " + label)
        if f:
            p.check(f[0] == capi_kb, "%s: wrapped back by keytrans, CryptoAPI unwrapped %s" % (
                label, f[0].hex()))
    p.done(2 * len(cases))
    print("  %d CryptoAPI SIMPLEBLOBs read by keytrans, and wrapped back" % len(cases))


COPP_CASES = [   # (aes key or None: keytrans picks, status_seq, command_seq)
    (None, None, None),
    (bytes(range(16)), 0, 0),
    (b"\xff" * 16, 0xffffffff, 0xffffffff),
    (os.urandom(16), 7, 4294967295),
    (os.urandom(16), 0x01020304, 0x0a0b0c0d),
    (os.urandom(16), 1, 2),
]


def test_copp_keytrans_to_capi():
    """keytrans copp-sign -> CryptDecrypt gives M = reversed(random|aes|status LE|command LE)."""
    p = Problems()
    cases, lines = [], []
    for i, (aes, sseq, cseq) in enumerate(COPP_CASES):
        rnd = os.urandom(16)
        args = ["--random", rnd.hex()]
        if aes is not None:
            args += ["--aes-key", aes.hex(), "--status-seq", sseq, "--command-seq", cseq]
        to = ["--to", PUB_EXPORT["rsa2048"]] if i % 2 else ["--to-key", "rsa2048"]
        sig_path = tmpfile(stem="sig")
        obj = kt_json("copp-sign", *to, *args, "-o", sig_path)
        sig = read(sig_path)
        assert len(sig) == 256 and bytes.fromhex(obj["signature"]) == sig, len(sig)
        got_aes = bytes.fromhex(obj["aes_key"])
        if aes is not None:
            assert (got_aes, obj["status_seq"], obj["command_seq"]) == (aes, sseq, cseq), obj
        cases.append((rnd, got_aes, obj["status_seq"], obj["command_seq"], sig))
        lines.append("copp-decrypt %s %s" % (priv_blob("rsa2048"), sig.hex()))
    for (rnd, aes, sseq, cseq, sig), res in zip(cases, W.batch(lines)):
        want = copp_m(rnd, aes, sseq, cseq)
        f = p.fields(res, "keytrans's COPP signature " + sig.hex())
        if f:
            p.check(f[0] == want, "CryptDecrypt of keytrans's signature %s gave M=%s, "
                                  "expected %s" % (sig.hex(), f[0].hex(), want.hex()))
    p.done(len(cases))


def test_copp_capi_to_keytrans():
    """CryptEncrypt(M, final TRUE, buffer 256) -> keytrans copp-open --expect-random."""
    p = Problems()
    cases, lines = [], []
    for i, (aes, sseq, cseq) in enumerate(COPP_CASES):
        rnd = os.urandom(16)
        if aes is None:
            aes, sseq, cseq = os.urandom(16), *struct.unpack("<II", os.urandom(8))
        m = copp_m(rnd, aes, sseq, cseq)
        assert len(m) == 40
        pub = PUB_EXPORT["rsa2048"] if i % 2 else key_blob("rsa2048", "pub")
        cases.append((rnd, aes, sseq, cseq))
        lines.append("copp-encrypt %s %s" % (winepath(pub), m.hex()))
    for (rnd, aes, sseq, cseq), res in zip(cases, W.batch(lines)):
        f = p.fields(res, "CryptEncrypt of M")
        if not f or not p.check(len(f[0]) == 256, "CryptEncrypt gave %d bytes" % len(f[0])):
            continue
        got = kt_json("copp-open", "rsa2048", "-i", tmpfile(f[0], "sig"), "--expect-random",
                      rnd.hex())
        want = {"random": rnd.hex(), "aes_key": aes.hex(), "status_seq": sseq,
                "command_seq": cseq}
        p.check(got == want, "copp-open of CryptEncrypt's %s gave %r, expected %r" % (
            f[0].hex(), got, want))
    p.done(len(cases))


def wine_unusable(what, why):
    """The interop test's one failure when Wine cannot run its program: it does not skip."""
    bar = "#" * 78
    print("%s\nFAIL: the %s interop test cannot run, Wine is not usable.\n%s\n"
          "This test does not skip: install the packages (scripts/deps installs wine, "
          "wine64,\ngcc-mingw-w64-x86-64) and make `wine wineboot -i` work.\n%s"
          % (bar, what, why, bar), flush=True)
    print("0 passed, 1 failed")
    sys.exit(1)


def main():
    global D, W, TMP
    start = time.time()
    with Workspace() as root:
        TMP = os.path.join(root, "files")
        os.makedirs(TMP)
        try:
            W = Wine(root)
        except WineUnavailable as e:
            wine_unusable("CryptoAPI", e)
        try:
            print("wine: %s, prefix booted in %.1fs (%.1fs since start); CryptoAPI provider: %s"
                  % (W.wine, W.boot_seconds, time.time() - start, W.provider), flush=True)
            D = Daemon(root)
            try:
                run_tests([test_publickeyblob, test_vectors_through_capi, test_keytrans_to_capi,
                           test_capi_to_keytrans, test_copp_keytrans_to_capi,
                           test_copp_capi_to_keytrans])
            finally:
                if D.alive():
                    D.stop()
        finally:
            W.close()


if __name__ == "__main__":
    main()
