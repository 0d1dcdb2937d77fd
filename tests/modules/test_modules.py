"""The module matrix: the same end-to-end checks and faults against one PKCS#11
module, set up privately by its environment (hsmenv.py, env_*.py).

    test_modules.py MODULE      (softhsm, opencryptoki, tpm2, p11kit)

Paths come from the environment meson sets: KT_KEYTRANSD, KT_CLI, KT_VECTORS;
the Python client from PYTHONPATH. keytransd is never restarted during the
faults: it must report the HSM down, answer HSM_UNAVAILABLE at once meanwhile,
and serve again once the service is back (within about 5 s: its backoff is capped
at hsm_retry_max, 4 s by default).

No bound is this machine's speed: "at once" is the daemon's own latency (stats,
from a request's arrival to its answer), and waits end at deadlines derived from
its settings (hsm_retry_max, hsm_call_timeout).
"""
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hsmenv  # noqa: E402

import keytrans  # noqa: E402

ENVS = {"softhsm": ("hsmenv", "SoftHsmEnv"), "opencryptoki": ("env_opencryptoki", "OpenCryptokiEnv"),
        "tpm2": ("env_tpm2", "Tpm2Env"), "p11kit": ("env_p11kit", "P11KitEnv")}
# keytransd's defaults (keytransd.conf(5)), which the daemon here runs with: an HSM out
# of service is retried at most hsm_retry_max apart, after 0.25 s the first time, and a
# PKCS#11 call (a rebuild too) is called stuck only after hsm_call_timeout.
HSM_RETRY_MAX, HSM_CALL_TIMEOUT, FIRST_BACKOFF = 4, 10, 0.25
# The daemon is back once a service has returned within its longest backoff, the
# supervisor's period (0.1 s) and a rebuild (well under a second, but the daemon only
# calls it stuck after hsm_call_timeout). The time taken is printed.
BACK_WITHIN = HSM_RETRY_MAX + 0.1 + HSM_CALL_TIMEOUT
# Answers a request may get while an HSM fails and comes back; anything else is wrong.
DURING_FAULT = ("OK", "HSM_UNAVAILABLE")


def make_env(name, root):
    module, cls = ENVS[name]
    return getattr(importlib.import_module(module), cls)(root)


class Keytransd:
    """keytransd on env's module, in the foreground, run where the module works (prefix)."""

    def __init__(self, env, root, keys):
        self.env, self.root = env, root
        self.socket = os.path.join(root, "kt.sock")
        self.log_path = os.path.join(root, "keytransd.log")
        pin = os.path.join(root, "pin")
        with open(pin, "w") as f:
            f.write(env.pin + "\n")
        os.chmod(pin, 0o600)
        lines = ["[daemon]", "socket = " + self.socket, "socket_mode = 0600", "workers = 2",
                 "admin = uid:0", env.hsm_section(pin)]
        for name, (label, kid, _) in keys.items():
            lines += ["[key %s]" % name, "label = " + label, "id = " + kid]
        self.config = os.path.join(root, "keytransd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        self.logf = open(self.log_path, "ab")
        # The modules' own leaks (tpm2-pkcs11, opencryptoki) are not keytransd's: LeakSanitizer
        # is off here; the SoftHSM suites and the soak check keytransd's.
        env = dict(self.env.env(), ASAN_OPTIONS="detect_leaks=0")
        self.proc = subprocess.Popen([*self.env.prefix(), os.environ["KT_KEYTRANSD"], "-f", "-c",
                                      self.config], env=env, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                raise AssertionError("keytransd exited with %d:\n%s" % (self.proc.returncode,
                                                                        self.log()))
            assert time.monotonic() < deadline, "keytransd did not start:\n" + self.log()
            time.sleep(0.05)
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, timeout=30):
        return keytrans.Connection(self.socket, timeout=timeout)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("keytransd did not stop:\n" + self.log()[-3000:])
        assert rc == 0, "keytransd exited with %d:\n%s" % (rc, self.log()[-3000:])


def daemon_latency(d, fn):
    """fn(), which makes one unwrap, and the daemon's own latency for it (from its arrival
    to its answer, leaving out the client's own delays): the upper bound, in seconds, of
    its bucket in stats (admin = uid:0 here)."""
    def buckets():
        with d.conn() as c:
            st = c.stats()
        return st.bounds_us, next(o.buckets for o in st.ops if o.name == "unwrap")
    bounds, before = buckets()
    out = fn()
    new = [a - b for a, b in zip(buckets()[1], before)]
    assert sum(new) == 1, new
    i = max(i for i, k in enumerate(new) if k)
    return out, bounds[i] / 1e6 if i < len(bounds) else float("inf")


def attempt(fn):
    """(status name, result or message, seconds)"""
    t0 = time.monotonic()
    try:
        return "OK", fn(), time.monotonic() - t0
    except keytrans.KeytransError as e:
        return e.name, e.message, time.monotonic() - t0


def openssl_decrypt(pem, blob, oaep):
    """The session key in a SIMPLEBLOB, decrypted by OpenSSL (CryptoAPI's ciphertext is
    little-endian: reversed first)."""
    c = bytes(reversed(blob[12:]))
    cmd = ["openssl", "pkeyutl", "-decrypt", "-inkey", pem]
    if oaep:
        cmd += ["-pkeyopt", "rsa_padding_mode:oaep"]
    return subprocess.run(cmd, input=c, capture_output=True, check=True).stdout


class Matrix:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="kt-mod-%s-" % name)
        self.env = make_env(name, os.path.join(self.tmp, "hsm"))
        self.d = None
        self.passed = []

    # --- the checks ---------------------------------------------------------

    def check_info_and_keys(self):
        with self.d.conn() as c:
            info = c.info()
            assert info.key_count == len(self.env.keys), info
            assert [h.state for h in info.hsms] == ["up"], info
            keys = {k.name: k for k in c.keys()}
            assert set(keys) == set(self.env.keys), keys
            for name, (label, kid, _) in self.env.keys.items():
                k = keys[name]
                assert k.label == label and k.id == bytes.fromhex(kid), k
                assert k.bits in (1024, 2048, 3072, 4096) and k.exponent == 65537, k
                assert k.notice == "", k     # every module's keys here are sensitive

    def check_pubkeys(self):
        with self.d.conn() as c:
            for name, (_, _, pem) in self.env.keys.items():
                blob, der, spki = (c.pubkey(name, f) for f in ("blob", "der", "pem"))
                assert blob[:8] == bytes.fromhex("0602000000a40000"), blob[:8]
                out = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER",
                                      "-outform", "PEM"], input=der, capture_output=True,
                                     check=True).stdout
                assert out == spki, (out, spki)
                if pem:
                    want = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout"],
                                          capture_output=True, check=True).stdout
                    assert spki == want, name
                    vec = hsmenv.vectors("keys", os.path.basename(pem)[:-4] + ".pub.blob")
                    if os.path.exists(vec):
                        assert blob == open(vec, "rb").read(), name

    def check_wrap_unwrap(self):
        with self.d.conn() as c:
            for name, (_, _, pem) in self.env.keys.items():
                pub = c.pubkey(name, "pem")
                for oaep in (False, True):
                    for alg in ("AES_128", "AES_256", "3DES", "RC4"):
                        w = c.wrap(alg, to_key=name, oaep=oaep)
                        assert c.unwrap(name, w.blob, oaep=oaep).key == w.key, (name, alg)
                        w2 = c.wrap(alg, key=w.key, to_pub=pub, oaep=oaep)
                        assert c.unwrap(name, w2.blob, oaep=oaep, strict=True).key == w.key
                        if pem:
                            assert openssl_decrypt(pem, w.blob, oaep) == w.key, (name, alg)
                # A damaged blob: implicit rejection by default, UNWRAP_FAILED when strict.
                bad = bytearray(c.wrap("AES_128", to_key=name).blob)
                bad[12] ^= 1    # the ciphertext's least significant byte: still below n
                st, msg, _ = attempt(lambda: c.unwrap(name, bytes(bad), strict=True))
                assert st == "UNWRAP_FAILED", (st, msg)
                assert attempt(lambda: c.unwrap(name, bytes(bad)))[0] == "OK"

    def check_vectors(self):
        """Every CryptoAPI vector of the keys this module could import."""
        n = 0
        with self.d.conn() as c:
            for key, pad, alg, khex, bhex in hsmenv.read_vectors("simpleblob.txt"):
                if key in self.env.keys and self.env.keys[key][2]:
                    sk = c.unwrap(key, bytes.fromhex(bhex), oaep=pad == "oaep")
                    assert sk.key.hex() == khex.lower() and sk.alg_id == int(alg, 16), key
                    n += 1
            for key, rnd, aes, sseq, cseq, sig in hsmenv.read_vectors("copp.txt"):
                if key in self.env.keys and self.env.keys[key][2]:
                    o = c.copp_open(key, bytes.fromhex(sig), expect_random=bytes.fromhex(rnd))
                    assert o.aes_key.hex() == aes.lower() and o.status_seq == int(sseq), key
                    assert o.command_seq == int(cseq), key
                    n += 1
        assert n > 0 or not self.env.can_import, "no vector ran"

    def check_copp(self):
        with self.d.conn() as c:
            bits = {k.name: k.bits for k in c.keys()}
            for name in self.env.keys:
                if bits[name] != 2048:
                    continue        # COPP signatures are 2048-bit
                rnd = os.urandom(16)
                s = c.copp_sign(rnd, to_key=name)
                o = c.copp_open(name, s.signature, expect_random=rnd)
                assert (o.random, o.aes_key, o.status_seq, o.command_seq) == \
                    (rnd, s.aes_key, s.status_seq, s.command_seq), name

    def check_opm(self):
        """OPM both ways on every 2048-bit key (OAEP-SHA-512 decoded by the daemon after the
        module's raw RSA), the opm.txt vectors of the keys it could import, and a sealed
        session: its OMAC-1 is AES-CMAC under the key an unsealed open of the same array gives,
        and a status request in sequence moves its number on."""
        n = 0
        with self.d.conn() as c:
            bits = {k.name: k.bits for k in c.keys()}
            for name in self.env.keys:
                if bits[name] != 2048:
                    continue        # OPM's array is 256 bytes
                rnd = os.urandom(16)
                s = c.opm_sign(rnd, to_key=name)
                o = c.opm_open(name, s.signature, expect_random=rnd)
                assert (o.random, o.aes_key, o.status_seq, o.command_seq) == \
                    (rnd, s.aes_key, s.status_seq, s.command_seq), name
                sealed = c.opm_open(name, s.signature, expect_random=rnd, seal=True)
                data = os.urandom(32) + struct.pack("<II", s.status_seq, 0)
                mac = cmac.CMAC(algorithms.AES(o.aes_key))
                mac.update(data)
                tag = c.session_mac(sealed.session, data)
                assert tag == mac.finalize(), name
                seq = c.session_verify(sealed.session, data, tag, kind="status")
                assert seq.next_status_seq == (s.status_seq + 1) & 0xffffffff, (name, seq)
                c.session_close(sealed.session)
                n += 1
            for key, rnd, aes, sseq, cseq, sig in hsmenv.read_vectors("opm.txt"):
                if key in self.env.keys and self.env.keys[key][2]:
                    o = c.opm_open(key, bytes.fromhex(sig), expect_random=bytes.fromhex(rnd))
                    assert (o.aes_key.hex(), o.status_seq, o.command_seq) == \
                        (aes.lower(), int(sseq), int(cseq)), key
        assert n > 0, "no 2048-bit key"

    def check_admin(self):
        with self.d.conn(timeout=120) as c:
            k = c.keygen("gen1", bits=2048)
            assert k.bits == 2048 and k.public_key[:2] == b"\x30\x82", k     # DER SPKI
            pem = open(hsmenv.vectors("keys", "wine1024.pem"), "rb").read()
            st, res, _ = attempt(lambda: c.import_key("imp1", pem))
            if self.env.can_import:
                assert st == "OK", (st, res)
            else:
                assert st == "NOT_SUPPORTED" and "C_CreateObject" in res, (st, res)
            h = c.info().hsms[0]
            assert h.state == "up" and h.faults == 0, h
        self.forget_admin_keys()

    def forget_admin_keys(self):
        """keygen/import left objects in the token; other checks do not look at them."""

    def check_bench(self):
        key = next(iter(self.env.keys))
        r = subprocess.run([os.environ["KT_CLI"], "-s", self.d.socket, "--json", "bench",
                            "--op", "unwrap", "--key", key, "-d", "2", "-c", "2", "-P", "4"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr)
        out = json.loads(r.stdout)
        assert out["requests"] > 0 and out["errors"] == 0, out
        print("  bench unwrap on %s: %s ops/s" % (self.name, out.get("ops_per_s")), flush=True)

    # --- faults -------------------------------------------------------------

    def unwrap_once(self, timeout=30):
        key = next(iter(self.env.keys))
        if getattr(self, "probe", None) is None:
            with self.d.conn(timeout) as c:
                self.probe = c.wrap("AES_128", key=bytes(16), to_key=key).blob

        def go():
            with self.d.conn(timeout) as c:
                k = c.unwrap(key, self.probe, strict=True).key
                assert k == bytes(16), k
                return k
        return attempt(go)

    def wait_serving(self, within):
        t0 = time.monotonic()
        while True:
            st, res, _ = self.unwrap_once()
            if st == "OK":
                return time.monotonic() - t0
            assert st in DURING_FAULT, (st, res)
            assert time.monotonic() - t0 < within, \
                "not serving %.1f s after the service came back:\n%s" % (within,
                                                                         self.d.log()[-3000:])
            time.sleep(0.05)

    def hsm_state(self):
        with self.d.conn() as c:
            return c.info().hsms[0]

    def check_service_restart(self):
        """The module's service stopped and started again, keytransd running throughout."""
        assert self.unwrap_once()[0] == "OK"     # (and the probe blob made meanwhile)
        self.env.stop_service()
        try:
            # 3 s of requests; for a module that needs its service, on until the first
            # HSM_UNAVAILABLE, which a call that hangs brings after hsm_call_timeout.
            t_end = time.monotonic() + 3
            states = set()
            while time.monotonic() < t_end or (
                    self.name != "opencryptoki" and "HSM_UNAVAILABLE" not in states and
                    time.monotonic() < t_end + HSM_CALL_TIMEOUT + 1):
                (st, res, _), took = daemon_latency(self.d, self.unwrap_once)
                assert st in DURING_FAULT, (st, res)
                if st == "HSM_UNAVAILABLE":
                    # Answered at once: before a backoff step once the HSM is known to be
                    # down; the request that found it so, within the call's time limit.
                    limit = FIRST_BACKOFF if "HSM_UNAVAILABLE" in states else HSM_CALL_TIMEOUT
                    assert took < limit, (took, limit)
                states.add(st)
                time.sleep(0.05)
            if self.name == "opencryptoki":
                # pkcsslotd is needed at C_Initialize only: a running process keeps working.
                assert states == {"OK"}, states
            else:
                assert "HSM_UNAVAILABLE" in states, states
                h = self.hsm_state()
                assert h.state == "down" and h.last_error, h
                with self.d.conn() as c:
                    stats = c.stats()
                    assert stats.hsms[0].state == "down", stats.hsms
        finally:
            self.env.start_service()
        took = self.wait_serving(BACK_WITHIN)
        print("  %s: serving %.2f s after its service came back" % (self.name, took), flush=True)
        if self.name != "opencryptoki":
            assert any("out of service" in l and "CKR_" in l for l in self.d.log().splitlines())

    def check_absent_at_start(self, keys):
        """The service is not there when keytransd starts: it starts, says why it waits,
        answers HSM_UNAVAILABLE, and serves once the service appears."""
        self.d.stop()
        self.env.stop_service()
        root = os.path.join(self.tmp, "absent")
        os.makedirs(root)
        try:
            self.d = Keytransd(self.env, root, keys).start()
            deadline = time.monotonic() + 3 * HSM_CALL_TIMEOUT
            while "waiting" not in self.d.log():
                assert time.monotonic() < deadline, self.d.log()
                time.sleep(0.05)
            h = self.hsm_state()
            assert h.state == "down" and h.last_error, h
            with self.d.conn() as c:
                (st, res, _), took = daemon_latency(
                    self.d, lambda: attempt(lambda: c.unwrap(next(iter(keys)), bytes(12))))
            # Answered at once: before the first backoff step could pass.
            assert st == "HSM_UNAVAILABLE" and took < FIRST_BACKOFF, (st, res, took)
        finally:
            self.env.start_service()
        took = self.wait_serving(BACK_WITHIN)
        print("  %s: started without its service, serving %.2f s after it came" %
              (self.name, took), flush=True)

    def check_tpm_flush(self):
        """TPM contexts flushed from outside: healed, not poisoned."""
        for _ in range(2):
            self.env.flush_contexts()
            deadline = time.monotonic() + BACK_WITHIN
            while True:
                st, res, _ = self.unwrap_once()
                assert st in DURING_FAULT, (st, res)
                if st == "OK":
                    break
                assert time.monotonic() < deadline, self.d.log()[-3000:]
                time.sleep(0.05)
            # and it stays healed
            for _ in range(5):
                st, res, _ = self.unwrap_once()
                assert st == "OK", (st, res, self.d.log()[-2000:])

    # --- the run --------------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        checks = []
        try:
            self.env.setup()
            print("  %s set up in %.1f s" % (self.name, time.monotonic() - t0), flush=True)
            keys = dict(self.env.keys)
            self.d = Keytransd(self.env, os.path.join(self.tmp), keys).start()
            deadline = time.monotonic() + 30
            while "ready:" not in self.d.log():
                assert time.monotonic() < deadline, self.d.log()
                time.sleep(0.05)
            checks = [self.check_info_and_keys, self.check_pubkeys, self.check_wrap_unwrap,
                      self.check_vectors, self.check_copp, self.check_opm, self.check_bench,
                      self.check_admin,
                      self.check_bench]
            if self.name != "softhsm":
                checks.append(self.check_service_restart)
            if self.name == "tpm2":
                checks.append(self.check_tpm_flush)
            failed = 0
            for check in checks:
                t = time.monotonic()
                try:
                    check()
                    print("ok   %s %-28s %.2fs" % (self.name, check.__name__, time.monotonic() - t),
                          flush=True)
                except Exception:
                    failed += 1
                    import traceback
                    print("FAIL %s %s" % (self.name, check.__name__), flush=True)
                    traceback.print_exc()
                    print("keytransd's log ends:\n" + self.d.log()[-3000:], file=sys.stderr)
            if self.name != "softhsm":
                t = time.monotonic()
                try:
                    self.check_absent_at_start(keys)
                    print("ok   %s %-28s %.2fs" % (self.name, "check_absent_at_start",
                                                   time.monotonic() - t), flush=True)
                except Exception:
                    failed += 1
                    import traceback
                    print("FAIL %s check_absent_at_start" % self.name, flush=True)
                    traceback.print_exc()
                checks.append(self.check_absent_at_start)
            self.d.stop()
            return failed, len(checks)
        except Exception:
            if self.d is not None:
                print(self.d.log()[-4000:], file=sys.stderr)
            raise
        finally:
            try:
                if self.d is not None and self.d.proc and self.d.proc.poll() is None:
                    self.d.proc.kill()
            finally:
                self.env.close()
                shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    name = sys.argv[1]
    failed, total = Matrix(name).run()
    print("%d passed, %d failed" % (total - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
