"""One PKCS#11 module, set up privately for a test: its service (if it has one),
a token with RSA keys, and how keytransd and the tools reach it.

Every environment keeps all of its state under its own root folder, listens on
loopback or Unix sockets only, and leaves nothing behind after close(). The
module matrix (test_modules.py) and scripts/bench --module use them alike.

Interface (each module's class in env_<name>.py implements it):
  name            "softhsm", "opencryptoki", "tpm2", "p11kit"
  module          path of the PKCS#11 library keytransd loads
  token           token label
  pin             user PIN
  can_import      1 when C_CreateObject of an RSA private key works (keytrans import)
  keys            {name: (label, id_hex, pem_or_None)}: RSA keys put in the token
                  (pem: the private key PEM when it was imported, else None)
  setup()         starts the service(s), creates the token and the keys
  stop_service()  stops the module's service (the fault); no-op if it has none
  start_service() starts it again with the same state
  env()           environment for keytransd and the tools (a dict, copy of os.environ + ...)
  prefix()        argv prefix that runs a program where the module works
                  (e.g. nsenter into a private mount namespace); [] when none
  hsm_section(pin_file)   the [hsm] section text for keytransd.conf
  close()         stops everything it started; idempotent
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import read_vector_lines as read_vectors  # noqa: E402,F401

VECTOR_KEYS = {"rsa1024": "01", "rsa2048": "02", "rsa4096": "03"}


def vectors(*parts):
    return os.path.join(os.environ["KT_VECTORS"], *parts)


def exited(p):
    """Whether p (started by us) has exited, without reaping it: while it is not
    reaped its pid, which is also its process group's id, cannot be reused."""
    if p.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_group(p, grace):
    """Stops the process group that p leads (started with start_new_session): SIGTERM,
    up to grace seconds for p to exit, then SIGKILL to all of the group that is left
    (children such as p11-kit-remote), and only then reaps p."""
    if p.returncode is None:
        if grace > 0:
            killpg(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while not exited(p) and time.monotonic() < deadline:
                time.sleep(0.01)
        killpg(p.pid, signal.SIGKILL)
    p.wait()


class HsmEnv:
    name = "?"
    module = ""
    token = "kt-mod"
    pin = "1234"
    so_pin = "87654321"
    can_import = True

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.keys = {}

    def env(self):
        return dict(os.environ)

    def prefix(self):
        return []

    def run(self, *argv, check=True, input=None, timeout=120):
        return subprocess.run([*self.prefix(), *argv], env=self.env(), check=check, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)

    def popen(self, argv, **kw):
        return subprocess.Popen([*self.prefix(), *argv], env=self.env(), **kw)

    def hsm_section(self, pin_file):
        return "[hsm]\nmodule = %s\ntoken = %s\npin_file = %s\n" % (self.module, self.token,
                                                                    pin_file)

    def stop_service(self):
        pass

    def start_service(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SoftHsmEnv(HsmEnv):
    """SoftHSM2 in-process: no service; a token folder under root."""
    name = "softhsm"
    module = "/usr/lib/softhsm/libsofthsm2.so"

    def __init__(self, root):
        super().__init__(root)
        self.conf = os.path.join(root, "softhsm2.conf")

    def env(self):
        return dict(os.environ, SOFTHSM2_CONF=self.conf)

    def setup(self):
        os.makedirs(os.path.join(self.root, "tokens"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % self.root)
        self.run("softhsm2-util", "--init-token", "--free", "--label", self.token,
                 "--so-pin", self.so_pin, "--pin", self.pin)
        for name, kid in VECTOR_KEYS.items():
            pem = vectors("keys", name + ".pem")
            self.run("softhsm2-util", "--import", pem, "--token", self.token, "--label", name,
                     "--id", kid, "--pin", self.pin)
            self.keys[name] = (name, kid, pem)
        return self


def self_test(cls, check=None):
    """Sets cls up in a temporary folder, lists its token's objects, stops and starts its
    service, and closes it: what `python3 env_NAME.py` does."""
    import tempfile
    os.environ.setdefault("KT_VECTORS", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "..", "vectors"))
    with tempfile.TemporaryDirectory(prefix="kt-%s-" % cls.name) as tmp:
        t0 = time.monotonic()
        with cls(tmp) as env:
            env.setup()
            print("setup: %.2f s" % (time.monotonic() - t0))
            tool = ["pkcs11-tool", "--module", env.module, "--token-label", env.token]
            out = env.run(*tool, "--login", "--pin", env.pin, "-O").stdout.decode()
            print(out)
            assert out.count("Private Key Object") == len(env.keys), out
            if check:
                check(out)
            env.stop_service()
            r = env.run(*tool, "-L", check=False)
            print("service stopped: pkcs11-tool -L exit %d: %s" % (r.returncode,
                                                                    r.stdout.decode().strip()))
            env.start_service()
            env.run(*tool, "-L")
            print("service started again: pkcs11-tool -L ok")
        print("closed in %.2f s total" % (time.monotonic() - t0))
