"""Recipients given in the request (wrap and copp-sign with PUBLIC_KEY) and the daemon's
cache of them (daemon/recipients.c, [daemon] recipient_cache): every format of every
vector key wraps blobs that the matching HSM key unwraps; the first request with given
bytes is a miss and the next ones hits; distinct recipients are misses; the cache never
holds more than its bound; recipient_cache = 0 works; refusals are the same, and never
kept, with the cache and without it; stats reports the counters to the Python client, the
CLI (text, --json, --prometheus) alike; bench --distinct-recipients."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Workspace, run_tests, vectors

import keytrans

KEYS = ("rsa1024", "rsa2048", "rsa4096", "wine1024")
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
ON = OFF = SMALL = None         # daemons: default cache, recipient_cache = 0, recipient_cache = 8
ROOT = None
FORMS = {}                      # (key, form) -> bytes
BOUND = 8


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def make_forms(root):
    """Each vector key in each format the daemon takes: PUBLICKEYBLOB, SPKI PEM and DER,
    PKCS#1 PEM and DER, certificate PEM and DER."""
    for name in KEYS:
        pub = vectors("keys", name + ".pub.pem")
        with open(pub, "rb") as f:
            FORMS[name, "spki.pem"] = f.read()
        with open(vectors("keys", name + ".pub.blob"), "rb") as f:
            FORMS[name, "blob"] = f.read()
        FORMS[name, "spki.der"] = openssl("pkey", "-pubin", "-in", pub, "-outform", "DER")
        FORMS[name, "pkcs1.pem"] = openssl("rsa", "-pubin", "-in", pub, "-RSAPublicKey_out")
        FORMS[name, "pkcs1.der"] = openssl("rsa", "-pubin", "-in", pub, "-RSAPublicKey_out",
                                           "-outform", "DER")
        cert = openssl("req", "-x509", "-new", "-key", vectors("keys", name + ".pem"), "-subj",
                       "/CN=" + name, "-days", "2")
        FORMS[name, "cert.pem"] = cert
        FORMS[name, "cert.der"] = openssl("x509", "-outform", "DER", data=cert)
    assert b"BEGIN RSA PUBLIC KEY" in FORMS["rsa2048", "pkcs1.pem"]
    assert b"BEGIN CERTIFICATE" in FORMS["rsa2048", "cert.pem"]


def modulus(name):
    """The key's modulus, big-endian."""
    text = openssl("rsa", "-pubin", "-in", vectors("keys", name + ".pub.pem"), "-noout", "-modulus")
    return bytes.fromhex(text.split(b"=")[1].strip().decode())


def variant(enc, i, n):
    """Another recipient like enc (a binary form of the key whose modulus is n): bytes in the
    middle of the modulus changed, as keytrans bench --distinct-recipients does."""
    at = enc.find(n)
    if at < 0:
        at = enc.index(n[::-1])         # a PUBLICKEYBLOB's, little-endian
    b = bytearray(enc)
    mid = at + len(n) // 2
    b[mid:mid + 4] = bytes(x ^ y for x, y in zip(b[mid:mid + 4], (i + 1).to_bytes(4, "little")))
    return bytes(b)


def counters(d):
    with keytrans.Connection(d.socket, timeout=60) as c:
        s = c.stats()
    return s.recipient_hits, s.recipient_misses, s.recipients


def cli(d, *args):
    r = subprocess.run([os.environ["KT_CLI"], "-s", d.socket, *args], capture_output=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    assert r.returncode == 0, (args, r.returncode, r.stdout[-500:], r.stderr[-500:])
    return r.stdout.decode()


def wrap_and_unwrap(c, name, pub, oaep=False):
    key = os.urandom(16)
    w = c.wrap("AES_128", key=key, to_pub=pub, oaep=oaep)
    assert c.unwrap(name, w.blob, oaep=oaep, strict=True).key == key, (name, oaep)
    return w.blob


def test_every_format_unwraps():
    """Four wraps to each form of each key (one with OAEP): 1 miss, 3 hits, and every blob
    opens with the HSM's private key."""
    with keytrans.Connection(ON.socket, timeout=60) as c:
        for (name, form), pub in sorted(FORMS.items()):
            hits, misses, entries = counters(ON)
            for oaep in (False, False, True, False):
                wrap_and_unwrap(c, name, pub, oaep)
            assert counters(ON) == (hits + 3, misses + 1, entries + 1), (name, form)


def test_copp_sign_every_format():
    """copp-sign to each form of the RSA-2048 key: the HSM key opens the signature."""
    with keytrans.Connection(ON.socket, timeout=60) as c:
        for form in sorted(f for k, f in FORMS if k == "rsa2048"):
            rnd = os.urandom(16)
            s = c.copp_sign(rnd, to_pub=FORMS["rsa2048", form])
            o = c.copp_open("rsa2048", s.signature, expect_random=rnd)
            assert (o.aes_key, o.status_seq, o.command_seq) == \
                (s.aes_key, s.status_seq, s.command_seq), form
        try:
            c.copp_sign(os.urandom(16), to_pub=FORMS["rsa1024", "cert.der"])
            raise AssertionError("copp-sign to a 1024-bit key")
        except keytrans.KeytransError as e:
            assert e.name == "KEY_SIZE", e


def test_distinct_and_bounded():
    """Distinct recipients are misses; the cache keeps the most recent BOUND of them."""
    n = modulus("rsa2048")
    subjects = [variant(FORMS["rsa2048", "spki.der"], i, n) for i in range(3 * BOUND)]
    hits, misses, entries = counters(SMALL)
    with keytrans.Connection(SMALL.socket, timeout=60) as c:
        for i, pub in enumerate(subjects):
            c.wrap("AES_128", key=os.urandom(16), to_pub=pub)
            h, m, e = counters(SMALL)
            assert (h, m) == (hits, misses + i + 1), (i, h, m)
            assert e == min(entries + i + 1, BOUND), (i, e)
        for pub in subjects[-BOUND:]:
            c.wrap("AES_128", key=os.urandom(16), to_pub=pub)
        assert counters(SMALL) == (hits + BOUND, misses + 3 * BOUND, BOUND)
        c.wrap("AES_128", key=os.urandom(16), to_pub=subjects[0])
        assert counters(SMALL) == (hits + BOUND, misses + 3 * BOUND + 1, BOUND)
    # Each format's variants are recipients the daemon takes (none holds a private key).
    for form in ("blob", "spki.der", "pkcs1.der", "cert.der"):
        with keytrans.Connection(SMALL.socket, timeout=60) as c:
            for i in range(3):
                w = c.wrap("AES_128", key=os.urandom(16),
                           to_pub=variant(FORMS["rsa2048", form], i, n))
                assert len(w.blob) == 12 + 256, form


def test_cache_off():
    """recipient_cache = 0: every request decodes its key, the results are the same."""
    with keytrans.Connection(OFF.socket, timeout=60) as c:
        for (name, form), pub in sorted(FORMS.items()):
            hits, misses, entries = counters(OFF)
            for oaep in (False, True):
                wrap_and_unwrap(c, name, pub, oaep)
            assert counters(OFF) == (0, misses + 2, 0), (name, form)


def outcome(d, pub):
    """wrap's status and message (or the blob's length) for pub, and the counters' change."""
    before = counters(d)
    with keytrans.Connection(d.socket, timeout=60) as c:
        try:
            r = ("OK", len(c.wrap("AES_128", key=bytes(16), to_pub=pub).blob))
        except keytrans.KeytransError as e:
            r = (e.name, str(e))
    after = counters(d)
    return r, (after[0] - before[0], after[1] - before[1], after[2] - before[2])


def test_same_results_with_and_without():
    """The same status and message with the cache and without it, for good keys and bad;
    a refused key counts as a miss and is not kept (so it is a miss again)."""
    def read(name):
        with open(os.path.join(DATA, name), "rb") as f:
            return f.read()
    spki = FORMS["rsa2048", "spki.der"]
    pem = FORMS["rsa2048", "spki.pem"]
    cases = {
        "ec256": read("ec256.pub.pem"), "rsa512": read("rsa512.pub.pem"), "junk": b"not a key",
        "empty-ish": b"\x30\x00", "truncated": spki[:-1], "trailing byte": spki + b"\x00",
        "text before PEM": b"Subject: x\n" + pem, "tab before PEM": b"\t" + pem,
        "PSS OID": spki.replace(bytes.fromhex("2a864886f70d010101"),
                                bytes.fromhex("2a864886f70d01010a")),
        "PEM cut": pem[:-40], "blob cut": FORMS["rsa2048", "blob"][:-1],
    }
    for key, pub in sorted(cases.items()) + sorted((str(k), v) for k, v in FORMS.items()):
        on, d_on = outcome(ON, pub)
        again, d_again = outcome(ON, pub)
        off, d_off = outcome(OFF, pub)
        assert on == off == again, (key, on, off, again)
        assert d_off == (0, 1, 0), (key, d_off)
        if on[0] == "OK":
            assert d_again == (1, 0, 0), (key, d_again)
        else:
            assert d_on == d_again == (0, 1, 0), (key, d_on, d_again)
    assert outcome(ON, cases["ec256"])[0][0] == "BAD_PUBLIC_KEY"
    assert outcome(ON, cases["rsa512"])[0][0] == "KEY_SIZE"
    assert outcome(ON, cases["text before PEM"])[0][0] == "OK"


def test_stats_everywhere():
    """The CLI's text, --json and --prometheus show what the Python client sees."""
    hits, misses, entries = counters(SMALL)
    assert entries == BOUND and misses > 0 and hits > 0
    text = cli(SMALL, "stats")
    line = "recipient cache: %d key%s, %d hit%s, %d miss%s\n" % (
        entries, "" if entries == 1 else "s", hits, "" if hits == 1 else "s",
        misses, "" if misses == 1 else "es")
    assert line in text, text
    obj = json.loads(cli(SMALL, "--json", "stats"))
    assert obj["recipient_cache"] == {"entries": entries, "hits": hits, "misses": misses}, obj
    prom = cli(SMALL, "stats", "--prometheus")
    for line in ("# TYPE keytrans_recipient_cache_hits_total counter",
                 "keytrans_recipient_cache_hits_total %d" % hits,
                 "# TYPE keytrans_recipient_cache_misses_total counter",
                 "keytrans_recipient_cache_misses_total %d" % misses,
                 "# TYPE keytrans_recipient_cache_entries gauge",
                 "keytrans_recipient_cache_entries %d" % entries):
        assert line + "\n" in prom, (line, prom)
    assert counters(SMALL) == (hits, misses, entries)      # stats changes none of them


def test_bench_distinct_recipients():
    """bench --distinct-recipients N: N misses, then hits (a cache larger than N), in every
    format; and all misses with a cache smaller than N."""
    n, requests = 20, 100
    for (name, form), pub in sorted(FORMS.items()):
        if name != "rsa2048":
            continue
        path = os.path.join(ROOT, "to." + form)
        with open(path, "wb") as f:
            f.write(pub)
        hits, misses, _ = counters(ON)
        out = json.loads(cli(ON, "--json", "bench", "--op", "wrap", "--to", path,
                             "--distinct-recipients", str(n), "-c", "2", "-P", "4", "-n",
                             str(requests)))
        assert out["errors"] == 0 and out["distinct_recipients"] == n, (form, out)
        h, m, _ = counters(ON)
        # One more wrap than requests: the bench's first, to learn the blob's length.
        assert h - hits + m - misses == requests + 1, (form, h - hits, m - misses)
        assert n <= m - misses <= n + 4, (form, m - misses)
    out = cli(ON, "bench", "--op", "copp-sign", "--to", path, "--distinct-recipients", "5",
              "-n", "20")
    assert "5 distinct recipients" in out and "errors 0" in out, out
    hits, misses, _ = counters(SMALL)
    cli(SMALL, "bench", "--op", "wrap", "--to", path, "--distinct-recipients", str(3 * BOUND),
        "-n", str(6 * BOUND))
    h, m, e = counters(SMALL)
    # More recipients than the cache holds, in turn: all misses but the one right after the
    # bench's first wrap (the same recipient).
    assert (h - hits, m - misses, e) == (1, 6 * BOUND, BOUND), (h - hits, m - misses, e)
    r = subprocess.run([os.environ["KT_CLI"], "-s", ON.socket, "bench", "--op", "wrap", "--key",
                        "rsa2048", "--distinct-recipients", "3", "-n", "1"], capture_output=True)
    assert r.returncode == 2 and b"--distinct-recipients needs --to" in r.stderr, r


def main():
    global ON, OFF, SMALL, ROOT
    with Workspace() as root:
        ROOT = root
        make_forms(root)
        public = "allow_public_ops = *"
        for sub in ("on", "off", "small"):
            os.makedirs(os.path.join(root, sub))
        try:
            ON = Daemon(os.path.join(root, "on"), extra_daemon=public)
            OFF = Daemon(os.path.join(root, "off"), token=ON.token,
                         extra_daemon=public + "\nrecipient_cache = 0")
            SMALL = Daemon(os.path.join(root, "small"), token=ON.token,
                           extra_daemon=public + "\nrecipient_cache = %d" % BOUND)
            assert counters(ON) == (0, 0, 0) and counters(OFF) == (0, 0, 0)
            run_tests([test_every_format_unwraps, test_copp_sign_every_format,
                       test_distinct_and_bounded, test_cache_off,
                       test_same_results_with_and_without, test_stats_everywhere,
                       test_bench_distinct_recipients])
        finally:
            for d in (SMALL, OFF, ON):
                if d is not None:
                    d.stop()


if __name__ == "__main__":
    main()
