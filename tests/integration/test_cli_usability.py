"""The keytrans command line explains itself (issue 13, item 3), against a running keytransd:
--help per command from the parser's own option tables, keytransd --help, global options
before or after the command, enumerations in any case, input files that cannot be read
(exit 1, one line), errors said once (as JSON with --json), what ERR_CONNECT says to check,
--key-out keeping the key to itself, messages that read naturally, and bash completion."""
import glob
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Workspace, run_tests, vectors  # noqa: E402

D = None      # the daemon
TMP = None    # files the tests write
CLI_SOURCES = os.path.join(os.path.dirname(__file__), "..", "..", "client", "cli")
GLOBAL_LONG = {"--socket", "--json", "--help", "--version"}
OTHER_UID = 4242      # a user outside the daemon's folder (mode 0700)


def kt(*args, sock=True, env=None, input=None, user=None):
    cmd = [os.environ["KT_CLI"]] + (["-s", D.socket] if sock else []) + [str(a) for a in args]
    as_user = {} if user is None else dict(user=user, group=user, extra_groups=[])
    r = subprocess.run(cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, env=env, timeout=120, **as_user)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def json_error(r, rc, name, code):
    """--json failure: exit rc, one object {"error", "code", "message"} on stdout, stderr empty."""
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == b"", r.stderr
    text = r.stdout.decode()
    assert text.count("\n") == 1 and text.endswith("\n"), text
    obj = json.loads(text)
    assert list(obj) == ["error", "code", "message"], obj
    assert obj["error"] == name and obj["code"] == code, obj
    assert isinstance(obj["message"], str) and obj["message"] and "\n" not in obj["message"], obj
    return obj["message"]


def commands():
    """The commands keytrans --help lists, with their summary lines."""
    r = kt("--help", sock=False)
    assert r.returncode == 0 and r.stderr == b"", r
    text = r.stdout.decode()
    block = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in block.split("\n"):
        m = re.fullmatch(r"  ([a-z][a-z0-9-]*) +(\S.*)", line)
        assert m, "a command without its line: %r" % line
        out[m.group(1)] = m.group(2)
    return out


def help_options(text, section):
    """{option: help line} of a --help section ("Options", "Global options ...")."""
    m = re.search(r"^%s[^\n]*:\n(.*?)(?:\n\n|\Z)" % re.escape(section), text, re.S | re.M)
    if m is None:
        return {}
    out, lines = {}, m.group(1).split("\n")
    for i, line in enumerate(lines):
        m = re.fullmatch(r"  (-\w, )?(    )?(--[a-z-]+)( [A-Z]+)? *(.*)", line)
        if m is None:
            continue
        helpline = m.group(5) or (lines[i + 1].strip() if i + 1 < len(lines) else "")
        assert len(helpline) > 10, "option %s has no help line: %r" % (m.group(3), line)
        out[m.group(3)] = helpline
        if m.group(1):
            out[m.group(1)[:2]] = helpline
    return out


def source_options():
    """Every option-like string of the CLI's sources: what the parser may accept."""
    found = set()
    for path in glob.glob(os.path.join(CLI_SOURCES, "*.c")):
        with open(path, encoding="utf-8") as f:
            found.update(re.findall(r'"(--?[A-Za-z][A-Za-z0-9-]*)"', f.read()))
    return found


def accepts(cmd, opt):
    """Does cmd's parser take opt? (Anything but "unknown option" means yes.)"""
    r = kt("--json", cmd, opt, sock=False, env=dict(os.environ, KEYTRANS_SOCKET=os.path.join(
        TMP, "nowhere.sock")), input=b"")
    if r.returncode == 0:
        return True
    obj = json.loads(r.stdout)
    return not obj["message"].startswith("unknown option")


# --- 1: --help ---------------------------------------------------------------

def test_help_lists_commands():
    cmds = commands()
    assert {"info", "keys", "stats", "pubkey", "unwrap", "wrap", "copp-sign", "copp-open",
            "keygen", "import", "bench"} <= set(cmds), cmds
    text = kt("--help", sock=False).stdout.decode()
    assert set(help_options(text, "Global options")) >= GLOBAL_LONG | {"-s", "-h", "-V"}, text
    for args in (["-h"], ["--help", "info"], ["info", "--help"], ["--json", "--help"]):
        r = kt(*args, sock=False)
        assert r.returncode == 0 and r.stderr == b"" and r.stdout.startswith(b"usage: "), (args, r)


def test_help_every_command_every_option():
    """Each command's --help and -h: exit 0, stdout, a line for every option its parser takes."""
    candidates = source_options()
    for cmd in commands():
        r = kt(cmd, "--help", sock=False)
        assert r.returncode == 0 and r.stderr == b"", (cmd, r)
        text = r.stdout.decode()
        assert text.startswith("usage: keytrans ") and (" %s" % cmd) in text.split("\n")[0], text
        assert kt(cmd, "-h", sock=False).stdout == r.stdout, cmd
        assert kt("--json", cmd, "--help", sock=False).stdout == r.stdout, cmd
        listed = help_options(text, "Options")
        assert set(help_options(text, "Global options")) >= GLOBAL_LONG, (cmd, text)
        taken = {o for o in candidates if o not in GLOBAL_LONG | {"-s", "-h", "-V"}
                 and accepts(cmd, o)}
        missing = taken - set(listed)
        assert not missing, "%s --help does not explain %s" % (cmd, sorted(missing))
        extra = set(listed) - taken
        assert not extra, "%s --help lists %s, which its parser refuses" % (cmd, sorted(extra))
    # The example.
    text = kt("unwrap", "--help", sock=False).stdout.decode()
    opts = help_options(text, "Options")
    assert "OAEP" in opts["--oaep"] and "UNWRAP_FAILED" in opts["--strict"], opts
    assert {"-i", "--in", "-o", "--out"} <= set(opts), opts
    assert "NAME" in text.split("Arguments:")[1], text


def test_keytransd_help():
    for flag in ("--help", "-h"):
        r = subprocess.run([os.environ["KT_KEYTRANSD"], flag], capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stderr == b"", (flag, r)
        out = r.stdout.decode()
        assert out.startswith("usage: keytransd"), out
        for opt in ("-c FILE", "-f ", "-d ", "-t ", "--no-pin", "--check-pin=PATH", "--version",
                    "--help"):
            assert opt in out, (opt, out)
    r = subprocess.run([os.environ["KT_KEYTRANSD"], "--version"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(b"keytransd "), r
    r = subprocess.run([os.environ["KT_KEYTRANSD"], "--bogus"], capture_output=True, timeout=30)
    assert r.returncode != 0 and b"usage: keytransd" in r.stderr, r


# --- 2: global options anywhere ------------------------------------------------------

def test_global_options_before_or_after():
    want = kt("--json", "keys").stdout
    assert json.loads(want)["keys"], want
    for args in (["keys", "--json", "-s", D.socket], ["--json", "keys", "--socket", D.socket],
                 ["keys", "--socket=" + D.socket, "--json"], ["-s", D.socket, "keys", "--json"]):
        r = kt(*args, sock=False)
        assert r.returncode == 0 and r.stdout == want, (args, r)
    # Among a command's own options and arguments too.
    blob = kt("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--key", "00" * 16).stdout
    r = kt("unwrap", "rsa2048", "-s", D.socket, "--json", input=blob, sock=False)
    assert r.returncode == 0 and json.loads(r.stdout)["key"] == "00" * 16, r
    r = kt("pubkey", "--version", sock=False)
    assert r.returncode == 0 and r.stdout.startswith(b"keytrans "), r
    # A socket given twice is a usage error, as any option given twice.
    json_error(kt("--json", "keys", "-s", D.socket), 2, "USAGE", None)


# --- 3: enumerations in any case -----------------------------------------------------------

def test_enumerations_any_case():
    pem = kt("pubkey", "rsa2048", "--format", "pem")
    assert pem.returncode == 0 and pem.stdout.startswith(b"-----BEGIN PUBLIC KEY-----"), pem
    for spelled in ("PEM", "Pem", "pEm"):
        assert kt("pubkey", "rsa2048", "--format", spelled).stdout == pem.stdout, spelled
    der = kt("--json", "pubkey", "rsa2048", "--format=DER")
    assert der.returncode == 0 and json.loads(der.stdout)["format"] == "der", der
    for spelled in ("aes_256", "AES-256", "calg_aes_256"):
        r = kt("--json", "wrap", "--to-key", "rsa2048", "--alg", spelled, "--generate")
        assert r.returncode == 0 and json.loads(r.stdout)["alg"] == "CALG_AES_256", (spelled, r)
    for op, alg in (("WRAP", "aes_256"), ("Unwrap", "AES-128"), ("PUBKEY", "aes_128")):
        r = kt("--json", "bench", "--op", op, "--key", "rsa2048", "--alg", alg, "-n", "8")
        assert r.returncode == 0, (op, r)
        obj = json.loads(r.stdout)
        assert obj["op"] == op.lower() and obj["requests"] == 8 and obj["errors"] == 0, obj
    json_error(kt("--json", "pubkey", "rsa2048", "--format", "pemm"), 2, "USAGE", None)
    json_error(kt("--json", "bench", "--op", "wrap", "--key", "rsa2048", "--alg", "RC4"),
               2, "USAGE", None)


# --- 4: input files that cannot be read -----------------------------------------------------

def test_unreadable_input_is_a_runtime_error():
    missing = os.path.join(TMP, "missing.bin")
    cases = [("unwrap", "rsa2048", "-i", missing), ("copp-open", "rsa2048", "-i", missing),
             ("wrap", "--to", missing, "--alg", "AES_128", "--generate"),
             ("wrap", "--to-key", "rsa2048", "--key-blob", missing),
             ("copp-sign", "--to", missing, "--random", "00" * 16),
             ("import", "newkey", missing),
             ("bench", "--op", "wrap", "--to", missing, "-n", "1")]
    for args in cases:
        r = kt(*args)
        assert r.returncode == 1 and r.stdout == b"", (args, r)
        assert r.stderr == ("keytrans: cannot read %s: No such file or directory\n"
                            % missing).encode(), (args, r.stderr)
        msg = json_error(kt("--json", *args), 1, "INPUT", None)
        assert msg == "cannot read %s: No such file or directory" % missing, msg
    # A folder: read() fails.
    r = kt("unwrap", "rsa2048", "-i", TMP)
    assert r.returncode == 1 and r.stderr == ("keytrans: cannot read %s: Is a directory\n"
                                              % TMP).encode(), r
    # An output file that cannot be created fails at run time too (OUTPUT).
    nodir = os.path.join(TMP, "no", "such", "dir", "out.bin")
    r = kt("pubkey", "rsa2048", "-o", nodir)
    assert r.returncode == 1 and r.stderr.startswith(b"keytrans: OUTPUT: cannot open") and \
        r.stderr.count(b"\n") == 1, r
    json_error(kt("--json", "pubkey", "rsa2048", "-o", nodir), 1, "OUTPUT", None)
    # Usage errors keep exit 2 and the usage.
    r = kt("unwrap")
    assert r.returncode == 2 and b"usage: keytrans" in r.stderr, r


# --- 5: errors once; as JSON with --json -----------------------------------------------------

def test_json_errors_once():
    env_bad = dict(os.environ, KEYTRANS_SOCKET=os.path.join(TMP, "nowhere.sock"))
    blob = kt("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--key", "00" * 16).stdout
    msg = json_error(kt("--json", "unwrap", "nosuch", input=blob), 1, "UNKNOWN_KEY", 6)
    assert "nosuch" in msg and "UNKNOWN_KEY" not in msg, msg
    json_error(kt("unwrap", "nosuch", "--json", input=blob), 1, "UNKNOWN_KEY", 6)
    json_error(kt("--json", "info", sock=False, env=env_bad), 3, "ERR_CONNECT", -1)
    json_error(kt("--json", "bogus"), 2, "USAGE", None)
    json_error(kt("wrap", "--json", "--to-key", "rsa2048"), 2, "USAGE", None)
    json_error(kt("--json", "wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--key",
                  "00" * 15), 1, "KEY_LENGTH", 15)
    # Without --json: one line on stderr, nothing on stdout.
    r = kt("unwrap", "nosuch", input=blob)
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr.decode().startswith("keytrans: UNKNOWN_KEY: ") and \
        r.stderr.count(b"\n") == 1 and r.stderr.count(b"UNKNOWN_KEY") == 1, r.stderr


# --- 6: what ERR_CONNECT says ------------------------------------------------------------------

def test_connect_hints():
    nowhere = os.path.join(TMP, "nowhere.sock")
    r = kt("-s", nowhere, "info", sock=False)
    line = r.stderr.decode()
    assert r.returncode == 3 and line.count("\n") == 1, r
    assert line.startswith("keytrans: ERR_CONNECT: cannot connect to keytransd at %s "
                           "(given with -s): No such file or directory; is keytransd running?"
                           % nowhere), line
    msg = json_error(kt("--json", "info", sock=False,
                        env=dict(os.environ, KEYTRANS_SOCKET=nowhere)), 3, "ERR_CONNECT", -1)
    assert "at %s (from $KEYTRANS_SOCKET)" % nowhere in msg and "keytransd running" in msg, msg
    env_none = {k: v for k, v in os.environ.items() if k != "KEYTRANS_SOCKET"}
    if not os.path.exists("/run/keytransd/keytransd.sock"):
        msg = json_error(kt("--json", "info", sock=False, env=env_none), 3, "ERR_CONNECT", -1)
        assert "at /run/keytransd/keytransd.sock (the default;" in msg, msg
    # A socket nobody listens on.
    dead = os.path.join(TMP, "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()
    msg = json_error(kt("--json", "-s", dead, "info", sock=False), 3, "ERR_CONNECT", -1)
    assert "Connection refused; is keytransd running?" in msg, msg
    # Not allowed to open the socket (its folder is the daemon's, mode 0700): the group hint.
    r = kt("-s", D.socket, "info", sock=False, user=OTHER_UID)
    assert r.returncode == 3 and "Permission denied; not in group keytrans?" in r.stderr.decode(), r


# --- 7: --key-out keeps the key ------------------------------------------------------------------

def test_key_out_not_printed():
    for json_mode in (False, True):
        kout, bout = os.path.join(TMP, "k-%d" % json_mode), os.path.join(TMP, "b-%d" % json_mode)
        args = ["wrap", "--to-key", "rsa2048", "--alg", "AES_256", "--generate", "--key-out", kout,
                "-o", bout]
        r = kt(*(["--json"] if json_mode else []), *args)
        assert r.returncode == 0 and r.stderr == b"", r
        key = open(kout, "rb").read()[12:]
        assert len(key) == 32
        assert key.hex().encode() not in r.stdout.lower(), r.stdout
        if json_mode:
            obj = json.loads(r.stdout)
            assert "key" not in obj and obj["key_len"] == 32, obj
        else:
            assert r.stdout == b"alg: CALG_AES_256\nkey_len: 32\n", r.stdout
        got = json.loads(kt("--json", "unwrap", "rsa2048", "-i", bout).stdout)["key"]
        assert got == key.hex(), (got, key.hex())
    # Without --key-out the key must be shown: it exists nowhere else.
    obj = json.loads(kt("--json", "wrap", "--to-key", "rsa2048", "--alg", "AES_128",
                        "--generate").stdout)
    assert len(obj["key"]) == 32, obj


# --- 8: natural messages ----------------------------------------------------------------------------

def test_natural_messages():
    msg = json_error(kt("--json", "wrap", "--to-key", "rsa2048", "--alg", "AES_256", "--key",
                        "00" * 31), 1, "KEY_LENGTH", 15)
    assert msg == "CALG_AES_256 keys are 32 bytes, not 31", msg
    msg = json_error(kt("--json", "wrap", "--to-key", "rsa2048", "--alg", "RC4", "--key",
                        "00" * 4), 1, "KEY_LENGTH", 15)
    assert msg == "CALG_RC4 keys are 5 to 16 bytes, not 4", msg
    # The README's bench with an unknown key: the status once.
    r = kt("bench", "--op", "unwrap", "--key", "nosuch", "-n", "1")
    line = r.stderr.decode()
    assert r.returncode == 1 and line.count("\n") == 1 and line.count("UNKNOWN_KEY") == 1, line
    assert line.startswith("keytrans: UNKNOWN_KEY: preparing the unwrap bench: "), line
    msg = json_error(kt("--json", "bench", "--op", "unwrap", "--key", "nosuch", "-n", "1"),
                     1, "UNKNOWN_KEY", 6)
    assert "UNKNOWN_KEY" not in msg, msg
    # Singular counts.
    r = kt("bench", "--op", "pubkey", "--key", "rsa2048", "-n", "4")
    assert r.returncode == 0 and r.stdout.startswith(b"pubkey: 1 connection x 1 in flight"), r
    log = D.log_text()
    assert re.search(r"ready: 4 keys, 1 of 1 HSM in service, 2 HSM workers", log), log[-2000:]


# --- 9: bash completion -----------------------------------------------------------------------------

def complete(*words, cword=None):
    """COMPREPLY of _keytrans for the words (the last one being completed), as a list."""
    words = [os.environ["KT_CLI"]] + list(words)
    cword = len(words) - 1 if cword is None else cword
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=%d; _keytrans; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % cword)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash",
                        os.environ["KT_BASH_COMPLETION"]] + words,
                       capture_output=True, timeout=60, cwd=TMP)
    assert r.returncode == 0 and r.stderr == b"", r
    return [w for w in r.stdout.decode().split("\n") if w]


def test_bash_completion():
    assert complete("unw") == ["unwrap"]
    assert set(complete("")) == set(commands())
    assert sorted(complete("--json", "-s", D.socket, "copp-")) == ["copp-open", "copp-sign"]
    assert complete("pubkey", "rsa2048", "--format", "") == ["blob", "pem", "der", "cng"]
    assert complete("pubkey", "rsa2048", "--format", "=", "p") == ["pem"]   # bash splits at =
    assert complete("bench", "--op", "wr") == ["wrap", "wrap-generate"]
    assert complete("bench", "--alg", "") == ["AES_128", "AES_256"]
    assert complete("wrap", "--alg", "aes_2") == ["AES_256"]          # any case, as parsed
    assert complete("keygen", "x", "--bits", "") == ["2048", "3072", "4096"]
    # Key names, from the daemon the line names.
    assert sorted(complete("-s", D.socket, "unwrap", "rsa")) == ["rsa1024", "rsa2048", "rsa4096"]
    assert complete("wrap", "--to-key", "w", "-s", D.socket, cword=3) == ["wine1024"]
    assert complete("-s", os.path.join(TMP, "nowhere.sock"), "unwrap", "rsa") == []
    # Files.
    open(os.path.join(TMP, "blob-for-completion.bin"), "wb").close()
    assert complete("unwrap", "rsa2048", "-i", "blob-for-c") == ["blob-for-completion.bin"]
    # Every command's options, as its --help lists them (and the global ones).
    for cmd in commands():
        text = kt(cmd, "--help", sock=False).stdout.decode()
        listed = set(help_options(text, "Options")) | set(help_options(text, "Global options"))
        got = set(complete(cmd, "-"))
        assert got == listed, (cmd, sorted(got ^ listed))


def main():
    global D, TMP
    with Workspace() as root:
        TMP = os.path.join(root, "files")
        os.makedirs(TMP)
        D = Daemon(root)
        try:
            run_tests([test_help_lists_commands, test_help_every_command_every_option,
                       test_keytransd_help, test_global_options_before_or_after,
                       test_enumerations_any_case, test_unreadable_input_is_a_runtime_error,
                       test_json_errors_once, test_connect_hints, test_key_out_not_printed,
                       test_natural_messages, test_bash_completion])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
