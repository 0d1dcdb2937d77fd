"""PKCS#11 URIs (RFC 7512): a keytransd configured by URIs alone (token, module,
PIN file and every key), start-up refusals a URI brings, and the CLI naming keys
by URI (one match, none, several, bad URIs)."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SOFTHSM_MODULE, Daemon, Token, Workspace, run_tests, vectors

EX_CONFIG = 78
ROOT = None
TOKEN = None
D = None        # the daemon configured by URIs
SERIAL = None   # of TOKEN, as softhsm2-util shows it


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    return path


def token_serial(token):
    out = subprocess.run(["softhsm2-util", "--show-slots"], env=token.env, check=True,
                         capture_output=True, text=True).stdout
    for slot in out.split("Slot ")[1:]:
        if re.search(r"Label:\s+%s\s*$" % re.escape(token.label), slot, re.M):
            return re.search(r"Serial number:\s+(\S+)", slot).group(1)
    raise AssertionError("no serial for %s in:\n%s" % (token.label, out))


def uri_config(root, hsm_uri, keys, extra_hsm=""):
    """A configuration naming the token and each key (name -> uri) by URI only."""
    lines = ["[daemon]", "socket = kt.sock", "socket_mode = 0600", "workers = 2",
             "[hsm]", "token = " + hsm_uri] + ([extra_hsm] if extra_hsm else [])
    for name, uri in keys.items():
        lines += ["[key %s]" % name, "uri = " + uri]
    path = os.path.join(root, "keytransd.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def hsm_uri(serial=None, pin="file:pin"):
    """The token as p11tool writes it, with the module and the PIN file after the "?"."""
    return ("pkcs11:model=SoftHSM%%20v2;manufacturer=SoftHSM%%20project;serial=%s;token=%s"
            "?module-path=%s&pin-source=%s" % (serial or SERIAL, TOKEN.label, SOFTHSM_MODULE, pin))


URI_KEYS = {
    "rsa1024": "pkcs11:token=kt-test;object=rsa1024;id=%01;type=private",
    "rsa2048": "pkcs11:object=rsa2048",
    "rsa4096": "pkcs11:id=%03",
    "wine1024": None,   # p11tool's full form, filled in by main
}


def uri_daemon(name, keys, hsm=None, start=True):
    """A Daemon (harness: pin file, log, stop) whose configuration is replaced by URIs."""
    d = Daemon(new_root(name), TOKEN, start=False)
    uri_config(d.root, hsm or hsm_uri(), keys)
    if start:
        d.start()
    return d


def keytransd(*args):
    return subprocess.run([os.environ["KT_KEYTRANSD"], *args], capture_output=True, text=True,
                          env=TOKEN.env, timeout=60)


def kt(*args):
    r = subprocess.run([os.environ["KT_CLI"], "-s", D.socket, *args], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def ok(*args):
    r = kt(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout[:300], r.stderr)
    return r


def js_err(*args, rc, code):
    r = kt("--json", *args)
    assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
    obj = json.loads(r.stdout)
    assert obj["error"] == code, (args, obj)
    return obj["message"]


# --- the daemon ----------------------------------------------------------------

def test_daemon_configured_by_uris():
    r = keytransd("-t", "-c", D.config)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    info = json.loads(ok("--json", "info").stdout)
    assert info["token_label"] == TOKEN.label and info["key_count"] == 4, info
    keys = {k["name"]: (k["label"], k["id"]) for k in json.loads(ok("--json", "keys").stdout)["keys"]}
    assert keys == {"rsa1024": ("rsa1024", "01"), "rsa2048": ("rsa2048", "02"),
                    "rsa4096": ("rsa4096", "03"), "wine1024": ("wine1024", "04")}, keys


def test_start_refusals():
    # The token's serial is part of the selection: another serial is another token.
    # It may yet appear: keytransd starts, and waits for it.
    d = uri_daemon("serial", {"rsa2048": "pkcs11:object=rsa2048"}, hsm=hsm_uri("0123456789"))
    try:
        assert 'token "kt-test" (manufacturer "SoftHSM project", serial "0123456789", model ' \
            '"SoftHSM v2") not found' in d.log_text(), d.log_text()
        assert "no HSM in service yet: waiting" in d.log_text(), d.log_text()
    finally:
        d.stop()
    # A key URI's token attributes the [hsm] URI left open are checked against the token.
    d = uri_daemon("keyserial", {"rsa2048": "pkcs11:serial=0123456789;object=rsa2048"},
                   hsm="pkcs11:token=%s?module-path=%s&pin-source=file:pin"
                   % (TOKEN.label, SOFTHSM_MODULE), start=False)
    r = keytransd("-f", "-c", d.config)
    assert r.returncode == EX_CONFIG and "[key rsa2048]: its uri names token" in r.stderr, r
    # A key URI naming another token is refused at its line, before any HSM is touched.
    d = uri_daemon("keytoken", {"rsa2048": "pkcs11:token=other;object=rsa2048"}, start=False)
    r = keytransd("-t", "-c", d.config)
    assert r.returncode == EX_CONFIG and "%s:8: uri: its token differs" % d.config in r.stderr, r
    # The PIN file named by pin-source has the pin_file checks: private, or refused.
    d = uri_daemon("pinmode", {"rsa2048": "pkcs11:object=rsa2048"}, start=False)
    os.chmod(os.path.join(d.root, "pin"), 0o644)
    r = keytransd("-t", "-c", d.config)
    assert r.returncode != 0 and "readable by its owner only" in r.stderr, r
    # A PIN written in the URI is refused and not echoed.
    d = uri_daemon("pinvalue", {"rsa2048": "pkcs11:object=rsa2048"},
                   hsm="pkcs11:token=kt-test?module-path=%s&pin-value=4321" % SOFTHSM_MODULE,
                   start=False)
    r = keytransd("-t", "-c", d.config)
    assert r.returncode == EX_CONFIG and "%s:6: token: pin-value is refused" % d.config in r.stderr
    assert "4321" not in r.stderr, r
    # A public key is not what the daemon uses.
    d = uri_daemon("public", {"rsa2048": "pkcs11:object=rsa2048;type=public"}, start=False)
    r = keytransd("-t", "-c", d.config)
    assert r.returncode == EX_CONFIG and "%s:8: uri: type must be private" % d.config in r.stderr


# --- the CLI ---------------------------------------------------------------------

def test_cli_uri_matches_one_key():
    by_name = ok("pubkey", "rsa2048", "--format", "pem").stdout
    for uri in ("pkcs11:object=rsa2048", "pkcs11:id=%02", "pkcs11:id=%02;type=public",
                "pkcs11:token=kt-test;object=rsa2048;id=%02;type=private",
                "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=" + SERIAL +
                ";token=kt-test;id=%02;object=rsa2048;type=private?pin-source=file:/nonexistent"):
        assert ok("pubkey", uri, "--format", "pem").stdout == by_name, uri
    obj = json.loads(ok("--json", "pubkey", "pkcs11:object=rsa2048", "--format", "der").stdout)
    assert obj["name"] == "rsa2048", obj
    # unwrap, wrap, copp-sign and copp-open take URIs wherever they take a key name.
    blob = os.path.join(ROOT, "blob.bin")
    r = ok("--json", "wrap", "--to-key", "pkcs11:object=rsa1024", "--alg", "AES_128",
           "--generate", "-o", blob)
    key = json.loads(r.stdout)["key"]
    r = ok("--json", "unwrap", "pkcs11:id=%01;type=private", "-i", blob)
    assert json.loads(r.stdout)["key"] == key, r.stdout
    sig = os.path.join(ROOT, "sig.bin")
    ok("copp-sign", "--to-key", "pkcs11:object=rsa2048", "--random", "00" * 16, "-o", sig)
    r = ok("--json", "copp-open", "pkcs11:object=rsa2048", "-i", sig)
    assert json.loads(r.stdout)["random"] == "00" * 16, r.stdout
    # A key name is still a name.
    ok("unwrap", "rsa1024", "-i", blob, "-o", os.path.join(ROOT, "k.bin"))


def test_cli_uri_no_match():
    msg = js_err("pubkey", "pkcs11:object=nope", rc=1, code="UNKNOWN_KEY")
    assert msg == "no key of the daemon matches pkcs11:object=nope", msg
    js_err("unwrap", "pkcs11:object=rsa1024;id=%02", rc=1, code="UNKNOWN_KEY")
    msg = js_err("pubkey", "pkcs11:token=other;object=rsa2048", rc=1, code="UNKNOWN_KEY")
    assert 'serves token "kt-test", not "other"' in msg, msg
    r = kt("pubkey", "pkcs11:object=nope")
    assert r.returncode == 1 and r.stderr.startswith(b"keytrans: UNKNOWN_KEY: no key"), r


def test_cli_uri_ambiguous():
    msg = js_err("pubkey", "pkcs11:type=private", rc=1, code="UNKNOWN_KEY")
    assert msg.startswith("4 keys match pkcs11:type=private (rsa1024, rsa2048, rsa4096, wine1024)"), msg
    msg = js_err("wrap", "--to-key", "pkcs11:token=kt-test", "--alg", "AES_128", "--generate",
                 rc=1, code="UNKNOWN_KEY")
    assert "4 keys match" in msg, msg


def test_cli_bad_uris():
    for uri, why in (("pkcs11:object=a;colour=blue", 'unknown attribute "colour"'),
                     ("pkcs11:id=%zz", "URI encoding invalid"),
                     ("pkcs11:object=rsa2048?pin-value=4321", "pin-value is refused"),
                     ("pkcs11:object=rsa2048;type=cert", "type must be private or public"),
                     ("pkcs11:object=rsa2048;slot-id=1", '"slot-id" is not supported')):
        msg = js_err("pubkey", uri, rc=2, code="USAGE")
        assert why in msg and "4321" not in msg, (uri, msg)
    # Refused before the daemon is asked: no socket needed.
    r = subprocess.run([os.environ["KT_CLI"], "-s", "/nonexistent.sock", "unwrap", "pkcs11:id=%zz"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2 and b"key URI: not a valid PKCS#11 URI" in r.stderr, r


def main():
    global ROOT, TOKEN, D, SERIAL
    with Workspace() as root:
        ROOT = root
        TOKEN = Token(os.path.join(root, "hsm"))
        SERIAL = token_serial(TOKEN)
        URI_KEYS["wine1024"] = ("pkcs11:model=SoftHSM%%20v2;manufacturer=SoftHSM%%20project;"
                                "serial=%s;token=%s;id=%%04;object=wine1024;type=private"
                                % (SERIAL, TOKEN.label))
        D = uri_daemon("daemon", URI_KEYS)
        try:
            run_tests([test_daemon_configured_by_uris, test_start_refusals,
                       test_cli_uri_matches_one_key, test_cli_uri_no_match,
                       test_cli_uri_ambiguous, test_cli_bad_uris])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
