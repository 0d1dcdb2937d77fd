"""How keytransd classifies what a PKCS#11 module answers, whatever the module
(faults injected through tests/faultp11 over SoftHSM; the real modules are in
tests/modules):

- raw mechanism: every failed private operation is a fault (rebuild), whatever
  the code (CKR_GENERAL_ERROR, CKR_OPERATION_ACTIVE ...);
- rsa_mechanism = pkcs: a refused ciphertext is UNWRAP_FAILED only when the code
  says bad data or the HSM proves sound right after; OAEP goes through
  CKM_RSA_PKCS_OAEP; a failed call leaves no operation active;
- administrative calls never take an HSM out of service; a refused template is
  NOT_SUPPORTED, a keygen template the module refuses falls back to the short one;
- start-up tells a library that cannot be loaded (exit 78) from a module that
  does not initialise (the daemon starts, says why it waits, and serves once the
  module comes);
- keys that can leave the HSM are flagged, and refused with require_sensitive.
"""
import os
import subprocess
import time

import harness
from harness import Daemon, Token, Workspace, run_tests
from test_reliability import BLOB, KEY, FAULTP11, SOFTHSM, Faulty

import keytrans

OAEP = [(bytes.fromhex(v[4]), bytes.fromhex(v[3]))
        for v in harness.read_vector_lines("simpleblob.txt")
        if v[0] == "rsa2048" and v[1] == "oaep"]
PKCS1 = [(bytes.fromhex(v[4]), bytes.fromhex(v[3]))
         for v in harness.read_vector_lines("simpleblob.txt")
         if v[0] == "rsa2048" and v[1] == "pkcs1"]
BAD = [bytes.fromhex(v[2]) for v in harness.read_vector_lines("negative.txt")
       if v[1] == "decrypt"]


RETRY_FAST = "hsm_retry_max = 1"     # [daemon]: rebuild attempts at most 1 s apart


def pkcs_keys():
    return {"rsa2048": ("rsa2048", "02", "rsa_mechanism = pkcs")}


def faulty_from_start(root, rules, extra_daemon="", log=None):
    """A daemon over faultp11 whose rules are in force from its very start (Faulty
    starts with none); its start may fail (RuntimeError)."""
    control = os.path.join(root, "faults")
    with open(control, "w") as fh:
        fh.write(rules)
    token = Token(os.path.join(root, "hsm"))
    env = {"FAULTP11_MODULE": SOFTHSM, "FAULTP11_CONTROL": control}
    if log:
        env["FAULTP11_LOG"] = log
    d = Daemon(root, token=token, extra_daemon=extra_daemon, env=env,
               hsm_text="[hsm]\nmodule = %s\ntoken = %s\npin_file = pin" % (FAULTP11, token.label))
    return d, control


def call(f, fn):
    try:
        with f.conn() as c:
            return "OK", fn(c)
    except keytrans.KeytransError as e:
        return e.name, e.message


def test_raw_any_failure_is_a_fault():
    """CKR_GENERAL_ERROR / CKR_OPERATION_ACTIVE / CKR_FUNCTION_FAILED under raw RSA:
    the HSM is rebuilt (answers HSM_UNAVAILABLE meanwhile), never HSM_ERROR forever."""
    with Workspace() as root:
        f = Faulty(root, extra_daemon="hsm_retry_max = 1")
        try:
            assert f.unwrap()[0] == "OK"
            for n, code in enumerate(["CKR_GENERAL_ERROR", "CKR_OPERATION_ACTIVE",
                                      "CKR_FUNCTION_FAILED", "CKR_ARGUMENTS_BAD"], 1):
                f.rules("C_Decrypt rv=%s\n" % code)
                st, msg, _ = f.unwrap()
                assert st == "HSM_UNAVAILABLE" and code in msg, (code, st, msg)
                h = f.hsms()["hsm"]
                assert h.faults >= n and code in h.last_error, h
                f.rules("")
                f.wait_ok()     # within back_within(): hsm_retry_max + a rebuild
                n = f.hsms()["hsm"].faults
            assert "(0x90)" in f.d.log_text()   # the code in hex beside its name
            # The random generator (a generated session key): a fault too ...
            f.rules("C_GenerateRandom rv=CKR_GENERAL_ERROR\n")
            st, msg = call(f, lambda c: c.wrap("AES_128", to_key="rsa2048"))
            assert st == "HSM_UNAVAILABLE" and "CKR_GENERAL_ERROR" in msg, (st, msg)
            f.rules("")
            f.wait_ok()     # within back_within(): hsm_retry_max + a rebuild
            # ... unless the token says it has none.
            faults = f.hsms()["hsm"].faults
            f.rules("C_GenerateRandom rv=CKR_RANDOM_NO_RNG count=1\n")
            st, msg = call(f, lambda c: c.wrap("AES_128", to_key="rsa2048"))
            assert st == "HSM_ERROR" and "CKR_RANDOM_NO_RNG" in msg, (st, msg)
            assert f.hsms()["hsm"].faults == faults
        finally:
            f.d.stop()


def test_pkcs_bad_blob_is_unwrap_failed_and_hsm_stays():
    """SoftHSM refuses a bad padding with CKR_GENERAL_ERROR: the HSM proves sound, so
    UNWRAP_FAILED; the next good blob works; no fault counted."""
    with Workspace() as root:
        f = Faulty(root, keys=pkcs_keys(), extra_daemon="hsm_retry_max = 1")
        try:
            for blob in BAD:
                st, msg = call(f, lambda c: c.unwrap("rsa2048", blob, strict=True))
                assert st in ("UNWRAP_FAILED", "BLOB_RANGE", "BLOB_LENGTH", "BLOB_ALG",
                              "KEY_LENGTH"), (st, msg)
                for blob_ok, key in PKCS1[:2]:
                    st, k = call(f, lambda c: c.unwrap("rsa2048", blob_ok))
                    assert st == "OK" and k.key == key, (st, k)
            # A C_Decrypt refused with a data code needs no probe at all.
            f.rules("C_Decrypt rv=CKR_ENCRYPTED_DATA_INVALID count=1\n")
            st, msg = call(f, lambda c: c.unwrap("rsa2048", PKCS1[0][0]))
            assert st == "UNWRAP_FAILED", (st, msg)
            f.rules("")
            st, k = call(f, lambda c: c.unwrap("rsa2048", PKCS1[0][0]))
            assert st == "OK", (st, k)
            h = f.hsms()["hsm"]
            assert h.state == "up" and h.faults == 0, h
            # The same code while the HSM is really broken (the probe fails too): a fault.
            f.rules("C_Decrypt rv=CKR_GENERAL_ERROR\n")
            st, msg = call(f, lambda c: c.unwrap("rsa2048", PKCS1[0][0]))
            assert st == "HSM_UNAVAILABLE" and "CKR_GENERAL_ERROR" in msg, (st, msg)
            f.rules("")
            f.wait_ok()     # within back_within(): hsm_retry_max + a rebuild
            # C_DecryptInit failing is never bad data.
            f.rules("C_DecryptInit rv=CKR_OPERATION_ACTIVE count=1\n")
            st, msg = call(f, lambda c: c.unwrap("rsa2048", PKCS1[0][0]))
            assert st == "HSM_UNAVAILABLE" and "CKR_OPERATION_ACTIVE" in msg, (st, msg)
            f.rules("")
            f.wait_ok()     # within back_within(): hsm_retry_max + a rebuild
            # A refused mechanism is the configuration's problem: HSM_ERROR, HSM stays.
            faults = f.hsms()["hsm"].faults
            f.rules("C_DecryptInit rv=CKR_MECHANISM_INVALID count=1\n")
            st, msg = call(f, lambda c: c.unwrap("rsa2048", OAEP[0][0], oaep=True))
            assert st == "HSM_ERROR" and "CKM_RSA_PKCS_OAEP" in msg, (st, msg)
            f.rules("")
            assert f.hsms()["hsm"].faults == faults
        finally:
            f.d.stop()


def test_pkcs_oaep_through_the_hsm():
    """rsa_mechanism = pkcs: OAEP unwraps through CKM_RSA_PKCS_OAEP (every vector)."""
    with Workspace() as root:
        d = Daemon(root, keys=pkcs_keys(), env={"FAULTP11_LOG": os.path.join(root, "calls")})
        try:
            with keytrans.Connection(d.socket) as c:
                for blob, key in OAEP:
                    assert c.unwrap("rsa2048", blob, oaep=True).key == key
                try:
                    c.unwrap("rsa2048", PKCS1[0][0], oaep=True, strict=True)
                    raise AssertionError("a PKCS#1 blob unwrapped as OAEP")
                except keytrans.KeytransError as e:
                    assert e.name == "UNWRAP_FAILED", e
                # wrap with OAEP, unwrap through the HSM
                w = c.wrap("AES_256", oaep=True, to_key="rsa2048")
                assert c.unwrap("rsa2048", w.blob, oaep=True).key == w.key
                assert c.info().hsms[0].faults == 0
        finally:
            d.stop()


def test_admin_failure_keeps_the_hsm():
    with Workspace() as root:
        f = Faulty(root, extra_daemon="admin = uid:0")
        try:
            f.rules("C_GenerateKeyPair rv=CKR_USER_NOT_LOGGED_IN\n")
            st, msg = call(f, lambda c: c.keygen("k1", bits=2048))
            assert st == "HSM_ERROR" and "CKR_USER_NOT_LOGGED_IN (0x101)" in msg, (st, msg)
            h = f.hsms()["hsm"]
            assert h.state == "up" and h.faults == 0, h
            assert f.unwrap()[0] == "OK"
            # The full template refused once: the short one goes through.
            f.rules("C_GenerateKeyPair rv=CKR_TEMPLATE_INCONSISTENT count=1\n")
            st, k = call(f, lambda c: c.keygen("k2", bits=2048))
            assert st == "OK", (st, k)
            # Refused for good: NOT_SUPPORTED with the module's reason.
            f.rules("C_GenerateKeyPair rv=CKR_GENERAL_ERROR\n")
            st, msg = call(f, lambda c: c.keygen("k3", bits=2048))
            assert st == "NOT_SUPPORTED" and "CKR_GENERAL_ERROR" in msg, (st, msg)
            pem = open(harness.vectors("keys", "wine1024.pem"), "rb").read()
            f.rules("C_CreateObject rv=CKR_TEMPLATE_INCONSISTENT\n")
            st, msg = call(f, lambda c: c.import_key("k4", pem))
            assert st == "NOT_SUPPORTED" and "C_CreateObject (private key)" in msg, (st, msg)
            f.rules("")
            h = f.hsms()["hsm"]
            assert h.state == "up" and h.faults == 0, h
        finally:
            f.d.stop()


def test_missing_library_is_a_configuration_error():
    with Workspace() as root:
        try:
            Daemon(root, hsm_text="[hsm]\nmodule = /nonexistent/libnothing.so\n"
                                  "token = kt-test\npin_file = pin")
            raise AssertionError("started without its module")
        except RuntimeError as e:
            assert "exited with 78" in str(e), e
            assert "cannot load PKCS#11 module /nonexistent/libnothing.so" in str(e), e


def test_module_that_does_not_initialise_is_waited_for():
    """C_Initialize fails (opencryptoki without pkcsslotd: CKR_HOST_MEMORY): keytransd
    starts anyway, answers HSM_UNAVAILABLE saying why, and serves once it initialises."""
    with Workspace() as root:
        d, control = faulty_from_start(root, "C_Initialize rv=CKR_HOST_MEMORY\n",
                                       RETRY_FAST)
        try:
            with keytrans.Connection(d.socket) as c:
                info = c.info()
                assert info.key_count == 0 and info.hsms[0].state == "down", info
                assert "CKR_HOST_MEMORY (0x2), a resource error" in info.hsms[0].last_error, info
                try:
                    c.unwrap("rsa2048", BLOB)
                    raise AssertionError("served without an HSM")
                except keytrans.KeytransError as e:
                    assert e.name == "HSM_UNAVAILABLE" and "not known yet" in e.message, e
            assert "waiting for" in d.log_text(), d.log_text()
            os.unlink(control)
            # Initialised at the next attempt: within hsm_retry_max and a rebuild.
            deadline = time.monotonic() + harness.hsm_back_within(RETRY_FAST)
            while True:
                try:
                    with keytrans.Connection(d.socket) as c:
                        assert c.unwrap("rsa2048", BLOB).key == KEY
                        assert c.info().key_count == len(harness.KEYS)
                        break
                except keytrans.KeytransError as e:
                    assert e.name == "HSM_UNAVAILABLE", e
                    assert time.monotonic() < deadline, d.log_text()[-3000:]
                    time.sleep(0.1)
            while "serving %d keys" % len(harness.KEYS) not in d.log_text():
                assert time.monotonic() < deadline + 5, d.log_text()[-3000:]
                time.sleep(0.1)
        finally:
            d.stop()


def test_failed_start_closes_the_module():
    """A start that fails after logging in (the HSM refuses raw RSA for the
    implicit-rejection secret) finalises the module before exiting 78, and the
    message suggests rsa_mechanism = pkcs for that refusal only."""
    with Workspace() as root:
        calls = os.path.join(root, "calls")
        try:
            faulty_from_start(root, "C_Decrypt rv=CKR_MECHANISM_INVALID\n", log=calls)
            raise AssertionError("started")
        except RuntimeError as e:
            assert "exited with 78" in str(e), e
            assert "set rsa_mechanism = pkcs" in str(e), e
        log = open(calls).read()
        assert "C_Login" in log and "C_Finalize" in log.split("C_Login", 1)[1], log[-2000:]


def test_resource_error_is_not_pkcs_advice():
    """A resource error while deriving the secret says so, and is retried (0x902 on a TPM)."""
    with Workspace() as root:
        d, control = faulty_from_start(root, "C_Decrypt rv=CKR_DEVICE_MEMORY\n",
                                       RETRY_FAST)
        try:
            log = d.log_text()
            assert "CKR_DEVICE_MEMORY (0x31), a resource error in the HSM" in log, log
            assert "rsa_mechanism = pkcs" not in log.replace(
                "rsa_mechanism = pkcs: implicit", ""), log
            os.unlink(control)
            deadline = time.monotonic() + harness.hsm_back_within(RETRY_FAST)
            while "serving" not in d.log_text():
                assert time.monotonic() < deadline, d.log_text()[-3000:]
                time.sleep(0.1)
            with keytrans.Connection(d.socket) as c:
                assert c.unwrap("rsa2048", BLOB).key == KEY
        finally:
            d.stop()


def loose_token(root):
    """A SoftHSM token with the vector keys (softhsm2-util imports them sensitive and not
    extractable) and wine1024 written extractable by pkcs11-tool, as "loose"."""
    t = Token(root, label="hyg")
    der = os.path.join(root, "wine.der")
    subprocess.run(["openssl", "pkey", "-in", harness.vectors("keys", "wine1024.pem"),
                    "-outform", "DER", "-out", der], check=True)
    subprocess.run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", "hyg", "--login",
                    "--pin", t.pin, "--write-object", der, "--type", "privkey", "--extractable",
                    "--label", "loose", "--id", "99"], env=t.env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return t


def test_key_hygiene():
    with Workspace() as root:
        t = loose_token(os.path.join(root, "hsm"))
        keys = {"rsa2048": ("rsa2048", "02"), "loose": ("loose", "99")}
        d = Daemon(root, token=t, keys=keys)
        try:
            log = d.log_text()
            assert "[key loose]: the private key can leave the HSM (CKA_EXTRACTABLE = TRUE" \
                in log, log
            assert "[key rsa2048]" not in log, log
            with keytrans.Connection(d.socket) as c:
                ks = {k.name: k for k in c.keys()}
                assert ks["loose"].notice.startswith("CKA_EXTRACTABLE = TRUE"), ks
                assert ks["rsa2048"].notice == "", ks
                notice = c.info().notice
                assert "can leave the HSM" in notice and "loose" in notice, notice
                assert "rsa2048" not in notice, notice
        finally:
            d.stop()
        for where in ("key", "hsm"):
            root2 = os.path.join(root, "req-" + where)
            os.makedirs(root2)
            ks = dict(keys)
            hsm = None
            if where == "key":
                ks["loose"] = ("loose", "99", "require_sensitive = yes")
            else:
                hsm = "[hsm]\nmodule = %s\ntoken = hyg\npin_file = pin\nrequire_sensitive = yes" \
                    % SOFTHSM
            try:
                Daemon(root2, token=t, keys=ks, hsm_text=hsm)
                raise AssertionError("served a key that can leave the HSM")
            except RuntimeError as e:
                assert "exited with 78" in str(e), e
                assert "[key loose]: the private key can leave the HSM (CKA_EXTRACTABLE = " \
                    "TRUE" in str(e) and "and require_sensitive = yes" in str(e), e
        # The key's own "no" overrides its [hsm]'s "yes".
        root3 = os.path.join(root, "override")
        os.makedirs(root3)
        d = Daemon(root3, token=t, keys={"rsa2048": ("rsa2048", "02"),
                                          "loose": ("loose", "99", "require_sensitive = no")},
                   hsm_text="[hsm]\nmodule = %s\ntoken = hyg\npin_file = pin\n"
                            "require_sensitive = yes" % SOFTHSM)
        d.stop()


if __name__ == "__main__":
    run_tests([test_raw_any_failure_is_a_fault,
               test_pkcs_bad_blob_is_unwrap_failed_and_hsm_stays,
               test_pkcs_oaep_through_the_hsm,
               test_admin_failure_keeps_the_hsm,
               test_missing_library_is_a_configuration_error,
               test_module_that_does_not_initialise_is_waited_for,
               test_failed_start_closes_the_module,
               test_resource_error_is_not_pkcs_advice,
               test_key_hygiene])
