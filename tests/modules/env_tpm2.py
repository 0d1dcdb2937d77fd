"""tpm2-pkcs11 on a software TPM, reached through a private tpm2-abrmd.

Everything lives under root:
  state/      swtpm's TPM state (NVChip): kept across stop/start_service
  store/      tpm2-pkcs11's sqlite store (TPM2_PKCS11_STORE)
  tmp/        TMPDIR of the tools
  dbus.conf, dbus.sock   a private D-Bus session bus for tpm2-abrmd and its clients
  *.log       what swtpm, tpm2-abrmd and dbus-daemon said

Processes (each in its own session/process group, killed by group on close):
  dbus-daemon  --config-file=root/dbus.conf (unix socket under root, no activation)
  swtpm socket --tpm2 on 127.0.0.1:P (commands) and 127.0.0.1:P+1 (control);
               P is picked free at start, retried on collision, kept on restart
               while it is free
  tpm2-abrmd   --session --dbus-name=com.intel.tss2.Tabrmd.kt<pid>x<n>: the
               resource manager. Without it every client leaves its objects
               loaded and the TPM is out of object memory (TPM_RC 0x902) after
               two or three keys.

Clients (keytransd, tpm2_ptool, pkcs11-tool, tpm2-tools) reach the TPM with
TPM2_PKCS11_TCTI / TPM2TOOLS_TCTI = tabrmd:bus_name=NAME,bus_type=session
and DBUS_SESSION_BUS_ADDRESS: use env(). Needs the package libtss2-tcti-tabrmd0
(the tabrmd TCTI; tpm2-abrmd alone does not bring it).

Beyond the HsmEnv interface:
  flush_contexts(which="stl")  tpm2_flushcontext -s/-t/-l through the env's TCTI
  stop_swtpm_only()            the TPM goes away, tpm2-abrmd stays
  start_service()              starts whatever is not running, waits until usable
"""
import atexit
import itertools
import os
import select
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hsmenv import HsmEnv, stop_group  # noqa: E402

TCTI_TABRMD_LIBS = ("/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0",
                    "/usr/lib/libtss2-tcti-tabrmd.so.0")
_seq = itertools.count(1)

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class ServiceError(RuntimeError):
    pass


def _free_port_pair():
    """A port P with P and P+1 free on 127.0.0.1 right now (swtpm binds them later,
    so a collision is still possible: the caller retries)."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
            return p
    raise ServiceError("no free pair of loopback ports")


def _port_bindable(p):
    for q in (p, p + 1):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                return False
    return True


def _connects(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Tpm2Env(HsmEnv):
    name = "tpm2"
    module = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
    can_import = False          # C_CreateObject of an RSA private key: not supported
    KEY_SPECS = (("k1", "01"), ("k2", "02"), ("k3", "03"))
    start_timeout = 30.0        # seconds for each service to answer

    def __init__(self, root):
        super().__init__(os.path.abspath(root))
        r = self.root
        self.state_dir = os.path.join(r, "state")
        self.store_dir = os.path.join(r, "store")
        self.tmp_dir = os.path.join(r, "tmp")
        self.dbus_conf = os.path.join(r, "dbus.conf")
        self.dbus_sock = os.path.join(r, "dbus.sock")
        if len(self.dbus_sock) > 100:
            raise ServiceError("root path too long for a unix socket: %s" % r)
        self.bus_name = "com.intel.tss2.Tabrmd.kt%dx%d" % (os.getpid(), next(_seq))
        self.tcti = "tabrmd:bus_name=%s,bus_type=session" % self.bus_name
        self.port = None        # swtpm command port; control is port + 1
        self.procs = {}         # "dbus" | "swtpm" | "abrmd" -> Popen
        self.setup_seconds = None
        self._closed = False
        atexit.register(self.close)

    # ---- interface -------------------------------------------------------------

    def env(self):
        return dict(os.environ,
                    DBUS_SESSION_BUS_ADDRESS="unix:path=" + self.dbus_sock,
                    TPM2_PKCS11_STORE=self.store_dir,
                    TPM2_PKCS11_TCTI=self.tcti,
                    TPM2TOOLS_TCTI=self.tcti,
                    TMPDIR=self.tmp_dir,
                    PYTHONDONTWRITEBYTECODE="1")

    def setup(self):
        t0 = time.monotonic()
        if not any(os.path.exists(p) for p in TCTI_TABRMD_LIBS):
            raise ServiceError("the tabrmd TCTI is missing: apt-get install libtss2-tcti-tabrmd0")
        for d in (self.state_dir, self.store_dir, self.tmp_dir):
            os.makedirs(d, exist_ok=True)
        self._start_dbus()
        self._start_swtpm()
        self._start_abrmd()
        self.run("tpm2_ptool", "init", "--path", self.store_dir)
        self.run("tpm2_ptool", "addtoken", "--pid=1", "--label=" + self.token,
                 "--sopin", self.so_pin, "--userpin", self.pin, "--path", self.store_dir)
        for label, kid in self.KEY_SPECS:
            raw = bytes.fromhex(kid)
            # tpm2_ptool takes the id as text and stores its UTF-8 bytes as CKA_ID
            if not all(0 < b < 0x80 for b in raw):
                raise ServiceError("id %s cannot be given to tpm2_ptool" % kid)
            self.run("tpm2_ptool", "addkey", "--algorithm=rsa2048", "--label=" + self.token,
                     "--key-label=" + label, "--id=" + raw.decode(), "--userpin", self.pin,
                     "--path", self.store_dir)
            self.keys[label] = (label, kid, None)
        self.setup_seconds = time.monotonic() - t0
        return self

    def stop_service(self):
        """The fault: tpm2-abrmd and swtpm stop (abrmd first; it cannot work
        without the TPM anyway)."""
        self._stop("abrmd")
        self._stop("swtpm")

    def stop_swtpm_only(self):
        """Only the TPM goes away; tpm2-abrmd keeps its D-Bus name and its
        clients' connections, and answers them with TCTI errors."""
        self._stop("swtpm")

    def start_service(self):
        """Start whatever of swtpm and tpm2-abrmd is not running (same TPM state,
        same ports when possible), then wait until the TPM answers through abrmd."""
        if not self._alive("dbus"):
            self._stop("dbus")
            self._start_dbus()
        if not self._alive("swtpm"):
            self._start_swtpm(keep_port=True)
        if self._alive("abrmd") and not self._wait_tpm_through_abrmd(10.0, quiet=True):
            self._stop("abrmd")     # it lost the TPM for good
        if not self._alive("abrmd"):
            self._start_abrmd()

    def close(self):
        if self._closed:
            return
        self._closed = True
        for what in ("abrmd", "swtpm", "dbus"):
            self._stop(what)
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    # ---- extras ----------------------------------------------------------------

    def flush_contexts(self, which="stl"):
        """tpm2_flushcontext from outside, through the env's TCTI: -s (loaded
        sessions), -t (transient objects), -l (saved sessions). Returns
        {flag: (exit status, output)}."""
        out = {}
        for flag in which:
            p = self.run("tpm2_flushcontext", "-" + flag, check=False, timeout=30)
            out[flag] = (p.returncode, p.stdout.decode(errors="replace").strip())
        return out

    def tpm_handles(self):
        """{capability: output} of tpm2_getcap for the handle lists, as this client sees them."""
        res = {}
        for cap in ("handles-transient", "handles-loaded-session", "handles-saved-session",
                    "handles-persistent"):
            p = self.run("tpm2_getcap", cap, check=False, timeout=30)
            res[cap] = p.stdout.decode(errors="replace").strip()
        return res

    def log(self, what):
        try:
            with open(os.path.join(self.root, what + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pids(self):
        return {k: p.pid for k, p in self.procs.items() if p.poll() is None}

    # ---- services --------------------------------------------------------------

    def _alive(self, what):
        p = self.procs.get(what)
        return p is not None and p.poll() is None

    def _spawn(self, what, argv, stdout=None):
        logf = open(os.path.join(self.root, what + ".log"), "ab")
        try:
            p = subprocess.Popen(argv, env=self.env(), stdin=subprocess.DEVNULL,
                                 stdout=stdout if stdout is not None else logf, stderr=logf,
                                 start_new_session=True, cwd=self.root)
        finally:
            logf.close()
        self.procs[what] = p
        return p

    def _stop(self, what, timeout=5.0):
        p = self.procs.pop(what, None)
        if p is None:
            return
        stop_group(p, timeout)      # its own group: start_new_session
        for f in (p.stdout, p.stderr):
            if f:
                f.close()

    def _start_dbus(self):
        with open(self.dbus_conf, "w") as f:
            f.write(DBUS_CONF % self.dbus_sock)
        if os.path.exists(self.dbus_sock):
            os.unlink(self.dbus_sock)
        p = self._spawn("dbus", ["dbus-daemon", "--config-file=" + self.dbus_conf, "--nofork",
                                 "--nopidfile", "--print-address=1"], stdout=subprocess.PIPE)
        # it prints its address once it listens
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"unix:path=" + self.dbus_sock.encode()) or p.poll() is not None:
            raise ServiceError("dbus-daemon did not start: %r\n%s" % (line, self.log("dbus")))

    def _start_swtpm(self, keep_port=False, tries=20):
        last = ""
        for attempt in range(tries):
            if keep_port and self.port and attempt < 10:
                port = self.port
                if not _port_bindable(port):
                    time.sleep(0.2)
                    continue
            else:
                port = _free_port_pair()
            p = self._spawn("swtpm", [
                "swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + self.state_dir,
                "--server", "type=tcp,port=%d,bindaddr=127.0.0.1" % port,
                "--ctrl", "type=tcp,port=%d,bindaddr=127.0.0.1" % (port + 1),
                "--flags", "not-need-init,startup-clear",
                "--log", "file=%s,level=1" % os.path.join(self.root, "swtpm-tpm.log")])
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and p.poll() is None:
                if _connects(port + 1) and _connects(port):
                    break
                time.sleep(0.05)
            time.sleep(0.05)
            if p.poll() is None and _connects(port + 1):
                self.port = port
                return
            last = self.log("swtpm") + self.log("swtpm-tpm")
            self._stop("swtpm")     # bind failed (a collision) or too slow: other ports
        raise ServiceError("swtpm did not start:\n" + last[-2000:])

    def _wait_tpm_through_abrmd(self, timeout, quiet=False):
        deadline = time.monotonic() + timeout
        out = b""
        while time.monotonic() < deadline:
            if "abrmd" in self.procs and not self._alive("abrmd"):
                break
            p = subprocess.run(["tpm2_getcap", "properties-fixed"], env=self.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            if p.returncode == 0:
                return True
            out = p.stdout
            time.sleep(0.1)
        if quiet:
            return False
        raise ServiceError("tpm2-abrmd not usable within %.0fs: %s\n%s" % (
            timeout, out.decode(errors="replace")[-1000:], self.log("abrmd")[-2000:]))

    def _start_abrmd(self):
        self._spawn("abrmd", ["tpm2-abrmd", "--session", "--allow-root",
                              "--dbus-name=" + self.bus_name,
                              "--tcti=swtpm:host=127.0.0.1,port=%d" % self.port])
        self._wait_tpm_through_abrmd(self.start_timeout)


if __name__ == "__main__":
    import tempfile
    base = tempfile.mkdtemp(prefix="kt-tpm2-")
    env = Tpm2Env(os.path.join(base, "env"))
    try:
        env.setup()
        print("setup: %.1fs, port %d, bus %s, pids %s" % (env.setup_seconds, env.port,
                                                          env.bus_name, env.pids()))
        objs = env.run("pkcs11-tool", "--module", env.module, "-O", "--login", "--pin", env.pin)
        text = objs.stdout.decode()
        print(text)
        for label, kid, _ in env.keys.values():
            assert "label:      %s\n  ID:         %s" % (label, kid) in text, (label, kid)
        assert text.count("Private Key Object; RSA") == 3
        print("flush_contexts:", env.flush_contexts())
        t = time.monotonic()
        env.stop_service()
        assert not env._alive("swtpm") and not env._alive("abrmd")
        env.start_service()
        print("stop/start_service: %.1fs" % (time.monotonic() - t))
        t = time.monotonic()
        env.stop_swtpm_only()
        time.sleep(0.5)
        print("abrmd alive after swtpm stopped:", env._alive("abrmd"))
        old_abrmd = env.procs.get("abrmd")
        env.start_service()
        print("stop_swtpm_only/start_service: %.1fs, abrmd %s" % (
            time.monotonic() - t,
            "kept" if env.procs.get("abrmd") is old_abrmd else "restarted"))
        objs = env.run("pkcs11-tool", "--module", env.module, "-O", "--login", "--pin", env.pin)
        assert objs.stdout.decode().count("Private Key Object; RSA") == 3
        print("keys still there after restarts: ok")
    finally:
        pids = list(env.pids().values())
        env.close()
        env.close()
        shutil.rmtree(base, ignore_errors=True)
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().split()[2] == "Z", pid
    assert not os.path.exists(base)
    print("closed: no process, no files")
