#!/usr/bin/env python3
"""README.md as a reader runs it: every ```sh block is run, by this test or by the test its
annotation names (readme_blocks.py), and fails the test if it fails.

    test_readme.py SOURCE_ROOT BUILD_DIR

In a temporary folder T that stands for the top of the tree (T/scripts is the tree's scripts/,
T/build this build directory), as the README's commands expect:
  - the first block: `scripts/run` is run as written, and serves on .keytrans/keytransd.sock
    while the blocks below run; `scripts/test` is the suite this test is part of (only checked
    to be there). What scripts/run prints must be the README's "Trying it" commands;
  - every other unannotated block, in order, with bash -e -o pipefail, cwd T, on a terminal
    whose PIN prompts are answered (answer_prompts.py). The token tools (softhsm2-util,
    pkcs11-tool) get a token "keytrans" of their own (SOFTHSM2_CONF), not the daemon's, and in
    T the files the README's examples read: key.pem, key.der, pinfile;
  - every annotated block: its test exists and names the block (or has its first command).
scripts/run's daemon is stopped with SIGTERM at the end and must exit 0. The host is not
changed: scripts/run's token and configuration are made under T, which is removed; should
scripts/deps want to install packages, it is stopped (an apt-get on PATH that refuses) and
the test is skipped.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import readme_blocks  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
START_WITHIN = 180      # s: scripts/run checks packages, builds (nothing to do) and makes a key
SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check_annotations(src, blocks):
    names = set()
    for b in blocks:
        if b.runner is None:
            continue
        if b.name in names:
            fail("README.md:%d: a second block named %s" % (b.line, b.name))
        names.add(b.name)
        path = os.path.join(src, b.runner)
        if not os.path.isfile(path):
            fail("README.md:%d: block %s: %s, which runs it, does not exist" % (b.line, b.name, b.runner))
        # It names the block (it runs the README's text), or runs its first command itself.
        text = open(path).read()
        first = next(x.strip() for x in b.text.splitlines() if x.strip() and not x.startswith("#"))
        if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(b.name), text) and \
                re.sub(r"\s+#.*", "", first) not in text:
            fail("README.md:%d: block %s: %s does not name it" % (b.line, b.name, b.runner))
        print("ok   README.md:%d: block %s is run by %s" % (b.line, b.name, b.runner))


def check_top_block(src, block):
    lines = [re.sub(r"\s*#.*", "", x).strip() for x in block.text.splitlines()]
    if [x for x in lines if x] != ["scripts/run", "scripts/test"]:
        fail("README.md:%d: the first block is not `scripts/run` then `scripts/test`: %r"
             % (block.line, block.text))
    for script in ("run", "test"):
        if not os.access(os.path.join(src, "scripts", script), os.X_OK):
            fail("scripts/%s is not an executable file" % script)


def make_top(src, build, t):
    """T: the tree's scripts, this build, an apt-get that refuses (nothing installed by a test)."""
    os.symlink(os.path.join(src, "scripts"), os.path.join(t, "scripts"))
    os.symlink(os.path.abspath(build), os.path.join(t, "build"))
    guard = os.path.join(t, ".guard")
    os.mkdir(guard)
    for tool in ("apt-get", "sudo"):
        with open(os.path.join(guard, tool), "w") as f:
            f.write("#!/bin/sh\necho 'README test: scripts/deps would install packages: "
                    "run scripts/deps first' >&2\nexit 1\n")
        os.chmod(os.path.join(guard, tool), 0o755)
    return guard


def start_scripts_run(t, guard):
    log = open(os.path.join(t, "scripts-run.log"), "w+")
    env = dict(os.environ, PATH=guard + ":" + os.environ["PATH"])
    for v in ("SOFTHSM2_CONF", "KEYTRANS_SOCKET", "CREDENTIALS_DIRECTORY"):
        env.pop(v, None)
    # Literally what the README says, from the top of the (stand-in) tree.
    p = subprocess.Popen(["scripts/run"], cwd=t, env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    cli = os.path.join(t, "build", "client", "keytrans")
    sock = os.path.join(t, ".keytrans", "keytransd.sock")
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        if p.poll() is not None:
            log.seek(0)
            out = log.read()
            if "scripts/deps would install packages" in out:
                print(out)
                print("SKIP: packages are missing (scripts/deps installs them)")
                sys.exit(SKIP)
            fail("scripts/run exited with %d:\n%s" % (p.returncode, out))
        if os.path.exists(sock) and subprocess.run([cli, "-s", sock, "info"], capture_output=True,
                                                   timeout=60).returncode == 0:
            return p, log
        time.sleep(0.2)
    p.kill()
    fail("scripts/run's daemon did not answer on %s within %d s" % (sock, START_WITHIN))


def check_printed_commands(t, log, trying):
    """README: "scripts/run prints these": each command it prints is in the block."""
    log.seek(0)
    k = "%s/build/client/keytrans -s %s/.keytrans/keytransd.sock" % (t, t)
    printed = [x.strip() for x in log.read().splitlines() if x.startswith("  ")]
    if not printed:
        fail("scripts/run printed no commands")
    readme = [re.sub(r"\s+#.*", "", x).strip() for x in trying.text.splitlines()]
    for cmd in printed:
        short = cmd.replace(k, "$k").replace(t + "/.keytrans/", ".keytrans/")
        if short not in readme:
            fail("scripts/run prints `%s`, which README.md:%d does not have" % (short, trying.line))
    print("ok   the %d commands scripts/run prints are in README.md:%d" % (len(printed), trying.line))


def tools_token(t, pin):
    """A token "keytrans" for the token tools' block, and the files its examples read."""
    hsm = os.path.join(t, "tools-hsm")
    os.makedirs(os.path.join(hsm, "tokens"))
    conf = os.path.join(hsm, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % hsm)
    env = dict(os.environ, SOFTHSM2_CONF=conf, KT_SO_PIN=pin + "so", KT_PIN=pin)
    p11 = ["pkcs11-tool", "--module", MODULE]
    for args in (["--init-token", "--label", "keytrans", "--so-pin", "env:KT_SO_PIN"],
                 ["--token-label", "keytrans", "--login", "--login-type", "so", "--so-pin",
                  "env:KT_SO_PIN", "--init-pin", "--new-pin", "env:KT_PIN"]):
        subprocess.run(p11 + args, env=env, check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", os.path.join(t, "key.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-outform", "DER", "-out", os.path.join(t, "key.der")], check=True,
                   capture_output=True)
    fd = os.open(os.path.join(t, "pinfile"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (pin + "\n").encode())
    os.close(fd)
    return env


def run_block(t, block, env):
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, os.path.join(here, "answer_prompts.py"), "bash", "-e",
                        "-o", "pipefail", "-c", block.text], cwd=t, env=env, capture_output=True,
                       stdin=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        fail("README.md:%d: the block exited with %d:\n%s\n--- its output:\n%s%s"
             % (block.line, r.returncode, block.text, out, r.stderr.decode(errors="replace")))
    print("ok   README.md:%d: ran %d line(s)" % (block.line, len(block.text.splitlines())))
    return out


def token_objects(env):
    r = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", "keytrans", "--login",
                        "--pin", "env:KT_PIN", "--list-objects", "--type", "privkey"], env=env,
                       capture_output=True, check=True)
    return re.findall(r"label:\s*(\S+)", r.stdout.decode())


def main():
    src, build = sys.argv[1], sys.argv[2]
    blocks = readme_blocks.shell_blocks(os.path.join(src, "README.md"))
    if not blocks:
        fail("README.md has no ```sh block")
    check_annotations(src, blocks)
    check_top_block(src, blocks[0])
    mine = [b for b in blocks[1:] if b.runner is None]
    t = tempfile.mkdtemp(prefix="kt-readme.")
    p = None
    try:
        guard = make_top(src, build, t)
        p, log = start_scripts_run(t, guard)
        print("ok   README.md:%d: scripts/run serves on .keytrans/keytransd.sock" % blocks[0].line)
        trying = [b for b in mine if "-s .keytrans/keytransd.sock" in b.text]
        if not trying:
            fail("README.md has no block using scripts/run's socket")
        check_printed_commands(t, log, trying[0])
        env = tools_token(t, open(os.path.join(t, ".keytrans", "pin")).read().strip())
        before = token_objects(env)
        for b in mine:
            out = run_block(t, b, env)
            if "--json unwrap" in b.text and "-s .keytrans/keytransd.sock" in b.text:
                if not re.search(r'"alg":\s*"CALG_AES_256"', out):
                    fail("README.md:%d: no CALG_AES_256 key unwrapped:\n%s" % (b.line, out))
        after = token_objects(env)
        print("ok   the token tools' token held %s, now %s" % (before, after))
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        if rc != 0:
            log.seek(0)
            fail("scripts/run's keytransd exited with %d after SIGTERM:\n%s" % (rc, log.read()))
        print("ok   scripts/run's keytransd stopped on SIGTERM, exit 0")
        p = None
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(t, ignore_errors=True)
    print("README.md: %d blocks run here, %d by the tests their annotations name, 1 is scripts/run"
          % (len(mine), len([b for b in blocks if b.runner])))


if __name__ == "__main__":
    main()
