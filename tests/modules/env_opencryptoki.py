"""openCryptoki 3.x with its soft token (libpkcs11_sw.so), kept off the host.

openCryptoki's paths are compiled in (/etc/opencryptoki, /var/lib/opencryptoki,
/run/pkcsslotd.socket and .pid, /run/lock/opencryptoki, /var/log/opencryptoki,
/dev/shm), and every process that loads the module needs the slot daemon
pkcsslotd during C_Initialize (after that it works without it; a process that
initialises while it is gone gets CKR_HOST_MEMORY). So the environment makes one
private mount and IPC namespace, held by a `sleep infinity`, with those folders
bind-mounted from ROOT/ock/, and runs pkcsslotd, the token tools and keytransd in
it: prefix() is `nsenter -m -i -t HOLDER`. The IPC namespace keeps pkcsslotd's
System V shared memory segment (which a SIGKILL leaves behind) off the host.

The keytransd socket and pin file should live under ROOT (a plain folder, the
same inside and outside the namespace); /run inside the namespace is ROOT/ock/run.

Token: soft token in slot 0, label kt-mod, user PIN 1234, SO PIN changed from
the default 87654321 to so_pin (PINs are 4 to 8 characters). Keys: the vector
keys imported with pkcs11-tool, private keys CKA_SENSITIVE and (set after the
import, pkcs11-tool leaves them extractable) CKA_EXTRACTABLE=FALSE, plus their
public keys.

Fault: stop_service() kills pkcsslotd (SIGTERM, then SIGKILL: it ignores
SIGTERM while a client is attached); start_service() starts it again on the
same state and waits until its socket answers.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hsmenv import HsmEnv, self_test, VECTOR_KEYS, exited, stop_group, vectors  # noqa: E402

LIBDIR = "/usr/lib/x86_64-linux-gnu/opencryptoki"

# folder under ROOT/ock -> where the namespace sees it
BINDS = [
    ("run", "/run"),                      # pkcsslotd.socket, .pid, lock/opencryptoki
    ("varlib", "/var/lib/opencryptoki"),  # swtok/ token store
    ("etc", "/etc/opencryptoki"),         # opencryptoki.conf
    ("shm", "/dev/shm"),                  # the soft token's POSIX shm
]

# Sets CKA_EXTRACTABLE=FALSE on every private key of the token and prints each
# key's label, CKA_SENSITIVE and CKA_EXTRACTABLE. argv: module pin.
MARK_NON_EXTRACTABLE = r"""
import ctypes, sys
from ctypes import byref, c_ulong, c_void_p
class A(ctypes.Structure):
    _fields_ = [("type", c_ulong), ("pValue", c_void_p), ("len", c_ulong)]
lib = ctypes.CDLL(sys.argv[1])
def ck(rv, what):
    if rv:
        sys.exit("%s: CKR 0x%x" % (what, rv))
ck(lib.C_Initialize(None), "C_Initialize")
n = c_ulong(8); slots = (c_ulong * 8)()
ck(lib.C_GetSlotList(1, slots, byref(n)), "C_GetSlotList")
h = c_ulong()
ck(lib.C_OpenSession(slots[0], 6, None, None, byref(h)), "C_OpenSession")
pin = sys.argv[2].encode()
ck(lib.C_Login(h, 1, pin, len(pin)), "C_Login")
cls = c_ulong(3)
t = (A * 1)(A(0, ctypes.cast(byref(cls), c_void_p), 8))
ck(lib.C_FindObjectsInit(h, t, 1), "C_FindObjectsInit")
objs = (c_ulong * 64)(); cnt = c_ulong()
ck(lib.C_FindObjects(h, objs, 64, byref(cnt)), "C_FindObjects")
lib.C_FindObjectsFinal(h)
for o in objs[:cnt.value]:
    false = ctypes.c_ubyte(0)
    t = (A * 1)(A(0x162, ctypes.cast(byref(false), c_void_p), 1))
    ck(lib.C_SetAttributeValue(h, o, t, 1), "C_SetAttributeValue")
    label = ctypes.create_string_buffer(64); sens = ctypes.c_ubyte(); ext = ctypes.c_ubyte()
    t = (A * 3)(A(3, ctypes.cast(label, c_void_p), 64),
                A(0x103, ctypes.cast(byref(sens), c_void_p), 1),
                A(0x162, ctypes.cast(byref(ext), c_void_p), 1))
    ck(lib.C_GetAttributeValue(h, o, t, 3), "C_GetAttributeValue")
    print("%s sensitive=%d extractable=%d" % (label.raw[:t[0].len].decode(), sens.value,
                                              ext.value))
lib.C_Logout(h); lib.C_CloseSession(h); lib.C_Finalize(None)
"""


class OpenCryptokiEnv(HsmEnv):
    name = "opencryptoki"
    module = LIBDIR + "/libopencryptoki.so.0"
    default_so_pin = "87654321"   # what C_InitToken leaves; must be changed
    so_pin = "76543210"
    can_import = True
    slot = 0

    def __init__(self, root):
        super().__init__(root)
        self.root = os.path.abspath(root)
        self.dir = os.path.join(self.root, "ock")
        self.holder = None      # Popen of the namespace holder (sleep infinity)
        self._ns = None         # its mount namespace, "mnt:[INODE]"
        self.slotd = None       # Popen of pkcsslotd -f
        self.slotd_log = os.path.join(self.dir, "pkcsslotd.log")
        self.socket = os.path.join(self.dir, "run", "pkcsslotd.socket")
        self._set_up = False
        self._closed = False

    # -- where things run -------------------------------------------------

    def prefix(self):
        if self.holder is None:
            raise RuntimeError("opencryptoki env: setup() first")
        return ["nsenter", "-m", "-i", "-t", str(self.holder.pid)]

    def env(self):
        e = dict(os.environ)
        e.pop("OPENCRYPTOKI_TRACE_LEVEL", None)
        return e

    # -- set-up -----------------------------------------------------------

    def _make_tree(self):
        d = self.dir
        if os.path.exists(d):
            shutil.rmtree(d)
        gid = _pkcs11_gid()
        for sub, mode in (("run", 0o755), ("run/lock", 0o1777),
                          ("run/lock/opencryptoki", 0o770), ("run/lock/opencryptoki/swtok", 0o770),
                          ("varlib", 0o770), ("varlib/swtok", 0o770),
                          ("varlib/swtok/TOK_OBJ", 0o770), ("etc", 0o755), ("shm", 0o1777),
                          ("log", 0o770)):
            p = os.path.join(d, sub)
            os.makedirs(p, exist_ok=True)
            os.chmod(p, mode)
            if mode == 0o770:
                os.chown(p, 0, gid)
        with open(os.path.join(d, "etc", "opencryptoki.conf"), "w") as f:
            f.write("version opencryptoki-3.1\n\nslot %d\n{\nstdll = libpkcs11_sw.so\n}\n"
                    % self.slot)

    def _start_namespace(self):
        binds = list(BINDS)
        # /var/log/opencryptoki (trace files): bind onto it if the host has it,
        # else over /var/log (a folder cannot be made there without touching the host)
        binds.append(("log", "/var/log/opencryptoki" if os.path.isdir("/var/log/opencryptoki")
                      else "/var/log"))
        script = "set -e\n"
        for sub, target in binds:
            script += "mount -n --bind %s %s\n" % (_q(os.path.join(self.dir, sub)), target)
        script += "echo ready\nexec sleep infinity\n"
        self.holder = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL",      # gone with the test that made it
             "unshare", "-m", "-i", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        said = b""
        while True:
            line = self.holder.stdout.readline()     # b"" when the script has failed
            if line.strip() == b"ready":
                break
            said += line
            if not line:
                self._kill_holder()
                raise RuntimeError("opencryptoki env: namespace set-up failed: %s"
                                   % said.decode(errors="replace"))
        self.holder.stdout.close()
        self._ns = _mntns(self.holder.pid)

    def setup(self):
        if self._set_up:
            return self
        if self._closed:
            raise RuntimeError("opencryptoki env: closed")
        self._make_tree()
        try:
            self._start_namespace()
            self.start_service()
            self.run("pkcsconf", "-I", "-c", str(self.slot), "-S", self.default_so_pin,
                     input=(self.token + "\n").encode())
            self.fresh_token_pins()
            for name, kid in VECTOR_KEYS.items():
                pem = vectors("keys", name + ".pem")
                for typ, path in (("privkey", pem), ("pubkey", vectors("keys", name + ".pub.pem"))):
                    self.run("pkcs11-tool", "--module", self.module, "--token-label", self.token,
                             "--login", "--pin", self.pin, "--write-object", path,
                             "--type", typ, "--label", name, "--id", kid,
                             *(["--sensitive", "--private"] if typ == "privkey" else []))
                self.keys[name] = (name, kid, pem)
            out = self.run(sys.executable, "-c", MARK_NON_EXTRACTABLE, self.module,
                           self.pin).stdout.decode()
            got = sorted(out.split())
            want = sorted(w for n in VECTOR_KEYS for w in (n, "sensitive=1", "extractable=0"))
            if got != want:
                raise RuntimeError("opencryptoki env: private key attributes: %r" % out)
        except BaseException:
            self.close()
            raise
        self._set_up = True
        return self

    def fresh_token_pins(self):
        """On a token just initialised (pkcsconf -I, SO PIN default_so_pin): change the
        SO PIN to so_pin (openCryptoki flags the default as to be changed, and will not
        'change' it to itself: CKR_PIN_INVALID) and set the user PIN to pin."""
        self.run("pkcsconf", "-P", "-c", str(self.slot), "-S", self.default_so_pin,
                 "-n", self.so_pin)
        self.run("pkcsconf", "-u", "-c", str(self.slot), "-S", self.so_pin, "-n", self.pin)
        flags = self.run("pkcsconf", "-t", "-c", str(self.slot)).stdout.decode()
        if "TO_BE_CHANGED" in flags or "USER_PIN_INITIALIZED" not in flags:
            raise RuntimeError("opencryptoki env: token flags after set-up: %s" % flags)
        return self.so_pin, self.pin

    # -- the service --------------------------------------------------------

    def start_service(self):
        if self.slotd is not None:
            if not exited(self.slotd):
                return
            self.stop_service()     # it died by itself: reap it
        # a pkcsslotd killed by SIGKILL leaves its socket and pid file behind
        for leftover in (self.socket, os.path.join(self.dir, "run", "pkcsslotd.pid")):
            if os.path.exists(leftover):
                os.unlink(leftover)
        log = open(self.slotd_log, "ab")
        self.slotd = subprocess.Popen([*self.prefix(), "setpriv", "--pdeathsig", "KILL",
                                       "pkcsslotd", "-f"], env=self.env(),
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while not _slotd_answers(self.socket):
            if exited(self.slotd):
                self.stop_service()
                raise RuntimeError("opencryptoki env: pkcsslotd exited; see %s"
                                   % self.slotd_log)
            if time.monotonic() > deadline:
                self.stop_service()
                raise RuntimeError("opencryptoki env: pkcsslotd socket never answered")
            time.sleep(0.02)

    def stop_service(self):
        p, self.slotd = self.slotd, None
        if p is not None:
            stop_group(p, 0.5)

    # -- tear-down ----------------------------------------------------------

    def _kill_holder(self):
        h, self.holder = self.holder, None
        if h is None:
            return
        # everything still in the namespace (keytransd, tools, a daemonised pkcsslotd);
        # only while the holder is alive: then the namespace id cannot have been reused
        ns = _mntns(h.pid)
        if ns and ns == self._ns and ns != _mntns(os.getpid()):
            for pid in _pids():
                if pid not in (h.pid, os.getpid()) and _mntns(pid) == ns:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        stop_group(h, 0)
        if h.stdout and not h.stdout.closed:
            h.stdout.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.stop_service()
        self._kill_holder()
        shutil.rmtree(self.dir, ignore_errors=True)


def _q(s):
    return "'" + s.replace("'", "'\\''") + "'"


def _pkcs11_gid():
    import grp
    try:
        return grp.getgrnam("pkcs11").gr_gid
    except KeyError:
        raise RuntimeError("opencryptoki env: no group pkcs11 (install opencryptoki)")





def _pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _mntns(pid):
    try:
        return os.readlink("/proc/%d/ns/mnt" % pid)
    except OSError:
        return None


def _slotd_answers(path):
    """pkcsslotd writes its slot table to each connection and closes it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        got = 0
        while True:
            b = s.recv(65536)
            if not b:
                return got > 0
            got += len(b)
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    def no_extractable(out):
        assert "extractable" not in out, out

    self_test(OpenCryptokiEnv, no_extractable)
