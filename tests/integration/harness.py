"""Test harness: a private SoftHSM token holding the vector keys, and a
keytransd serving it on a socket in a temporary folder.

Paths come from the environment meson sets: KT_KEYTRANSD, KT_CLI, KT_VECTORS.
"""
import atexit
import os
import pickle
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

PIN = "4321"
SO_PIN = "87654321"
TOKEN = "kt-test"
# name -> (label, id): every vector key, imported into the test token.
KEYS = {
    "rsa1024": ("rsa1024", "01"),
    "rsa2048": ("rsa2048", "02"),
    "rsa4096": ("rsa4096", "03"),
    "wine1024": ("wine1024", "04"),
}
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

# --- how long the daemon may take: what it is configured to do, never this machine's speed ---
# A wait or a time bound in a test comes from keytransd's settings and fixed periods
# (keytransd.conf(5), docs/reliability.md), with a margin: the suite also runs with every
# core kept busy by other processes (scripts/test's load step, scripts/loadgen), where a
# round trip may take many times as long as on an idle machine.
DEFAULTS = {"hsm_retry_max": 4, "hsm_call_timeout": 10, "request_timeout": 30,
            "idle_timeout": 300}    # [daemon] defaults, daemon/config.c
FIRST_BACKOFF = 0.25    # s: the first wait before an HSM is rebuilt (daemon/hsm/backend.c)
SUPERVISE_EVERY = 0.1   # s: the period of the thread that rebuilds HSMs
WATCH_EVERY = 0.25      # s: the event loop's check of hung calls; audit counts flushed as often
DRAIN_LIMIT = 10        # s: after SIGTERM, requests in flight are answered for at most this long
START_WITHIN = 30       # s: how long Daemon.start() lets keytransd take to listen


def setting(extra, name):
    """[daemon] setting name as extra_daemon text sets it (a whole number), or its default."""
    m = re.search(r"^\s*%s\s*=\s*(\d+)\s*$" % re.escape(name), extra or "", re.M)
    return int(m.group(1)) if m else DEFAULTS[name]


def hsm_back_within(extra=""):
    """The longest the daemon may take to have an HSM back in service once the cause of its
    fault is gone: its longest backoff (hsm_retry_max), the supervisor's period, and a
    rebuild, which the daemon itself calls stuck only after hsm_call_timeout."""
    return setting(extra, "hsm_retry_max") + SUPERVISE_EVERY + setting(extra, "hsm_call_timeout")


def wait_until(cond, within, what="the condition", step=0.05):
    """Polls cond() until it returns something true (returned) or within seconds pass.
    what names the condition in the failure, or is a function returning that text."""
    deadline = time.monotonic() + within
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%s: not so within %.1f s" % (what() if callable(what) else what,
                                                               within))
        time.sleep(step)


def stats_of(sock, timeout=30):
    import keytrans
    with keytrans.Connection(sock, timeout=timeout) as c:
        return c.stats()


class Latency:
    """The daemon's own latency for one operation (stats: from a request's arrival to its
    answer, so that the client's own delays on a busy machine are left out), over the
    requests answered between the snapshot taken here and slowest(). The caller must be an
    admin (root is, by default) to see the private operations."""

    def __init__(self, sock, op):
        self.sock, self.op = sock, op
        self.before = self._buckets()

    def _buckets(self):
        st = stats_of(self.sock)
        self.bounds = [b / 1e6 for b in st.bounds_us]
        return next(o.buckets for o in st.ops if o.name == self.op)

    def slowest(self):
        """(requests answered since the snapshot, upper bound in seconds of the slowest one's
        latency bucket: inf beyond the last bound, None if there was none)."""
        new = [a - b for a, b in zip(self._buckets(), self.before)]
        worst = max((i for i, k in enumerate(new) if k), default=None)
        if worst is None:
            return 0, None
        return sum(new), self.bounds[worst] if worst < len(self.bounds) else float("inf")


def sanitized():
    """True when keytransd is built with AddressSanitizer (its runtime is linked in)."""
    with open(os.environ["KT_KEYTRANSD"], "rb") as f:
        return b"__asan_init" in f.read()


def vectors(*parts):
    return os.path.join(os.environ["KT_VECTORS"], *parts)


def read_vector_lines(name):
    with open(vectors(name)) as f:
        return [line.split() for line in f if line.strip() and not line.startswith("#")]


class Token:
    """A SoftHSM token in its own folder, with the vector keys imported."""

    def __init__(self, root, label=TOKEN, pin=PIN):
        self.root = root
        self.label = label
        self.pin = pin
        os.makedirs(os.path.join(root, "tokens"), exist_ok=True)
        self.conf = os.path.join(root, "softhsm2.conf")
        self.env = softhsm_env(self.conf, os.path.join(root, "tokens"))
        self.add_token(label)

    def add_token(self, label, keys=None):
        """Another token in the same SoftHSM, holding keys (name -> (label, id); the vector
        keys by default; a name may map to (label, id, pem_path) to import another key).
        It is made in a token folder of its own, then moved into this one whole: SoftHSM's
        files are not safe to read from one process while another writes them (a daemon
        that looks at a token while softhsm2-util makes it can leave a key there without
        its label and id), and a token that appears whole is what an HSM coming online
        looks like."""
        staging = tempfile.mkdtemp(prefix="new-token-", dir=self.root)
        try:
            env = softhsm_env(os.path.join(staging, "softhsm2.conf"),
                              os.path.join(staging, "tokens"))
            run = lambda *args: softhsm_util(env, *args)    # noqa: E731
            run("--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", self.pin)
            for name, spec in (keys or KEYS).items():
                pem = spec[2] if len(spec) > 2 else vectors("keys", name + ".pem")
                run("--import", pem, "--token", label, "--label", spec[0], "--id", spec[1],
                    "--pin", self.pin)
            for d in os.listdir(os.path.join(staging, "tokens")):
                os.rename(os.path.join(staging, "tokens", d), os.path.join(self.root, "tokens", d))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def util(self, *args):
        """softhsm2-util on this SoftHSM (a token a daemon uses: only while it is idle)."""
        softhsm_util(self.env, *args)


def softhsm_env(conf, tokendir):
    """os.environ with SOFTHSM2_CONF set to conf, written for tokendir."""
    os.makedirs(tokendir, exist_ok=True)
    with open(conf, "w") as f:
        f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                % tokendir)
    return dict(os.environ, SOFTHSM2_CONF=conf)


def softhsm_util(env, *args):
    subprocess.run(["softhsm2-util", *args], env=env, check=True, stdout=subprocess.DEVNULL)


class Daemon:
    """keytransd in the foreground on a socket in root; stop() checks it exits 0.

    keys maps a key name to (label, id) or (label, id, "extra lines for its section");
    extra_daemon holds extra [daemon] lines (limits, allow_public_ops, socket_mode = ...);
    hsm_text replaces the [hsm] section (several [hsm NAME] sections, another module).
    user = (uid, gid) runs the daemon as that user (the caller makes its files accessible).
    """

    def __init__(self, root, token=None, workers=2, keys=KEYS, extra_daemon="", start=True,
                 env=None, user=None, hsm_text=None):
        self.root = root
        self.user = user
        self.token = token or Token(os.path.join(root, "hsm"))
        self.socket = os.path.join(root, "kt.sock")
        self.config = os.path.join(root, "keytransd.conf")
        self.log_path = os.path.join(root, "keytransd.log")
        with open(os.path.join(root, "pin"), "w") as f:
            f.write(self.token.pin + "\n")
        os.chmod(os.path.join(root, "pin"), 0o600)
        mode = "" if "socket_mode" in extra_daemon else "socket_mode = 0600"
        hsm = hsm_text or "\n".join(["[hsm]", "module = " + SOFTHSM_MODULE,
                                     "token = " + self.token.label, "pin_file = pin"])
        lines = ["[daemon]", "socket = kt.sock", mode, "workers = %d" % workers,
                 extra_daemon, hsm]
        for name, spec in keys.items():
            lines += ["[key %s]" % name, "label = " + spec[0]]
            if spec[1]:
                lines.append("id = " + spec[1])
            if len(spec) > 2:
                lines.append(spec[2])
        self.env = dict(self.token.env, **(env or {}))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        if start:
            self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        as_user = {} if self.user is None else dict(user=self.user[0], group=self.user[1],
                                                    extra_groups=[])
        _STARTED.append(self)
        self.proc = subprocess.Popen([os.environ["KT_KEYTRANSD"], "-f", "-c", self.config],
                                     env=self.env, stdout=self.log, stderr=self.log, **as_user)
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("keytransd exited with %d:\n%s" % (self.proc.returncode,
                                                                        self.log_text()))
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("keytransd did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        """Resident memory of the daemon, KiB (VmRSS)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def connections_held(self):
        """Client connections the daemon holds open (its accepted sockets on its socket, from
        /proc/net/unix): one a client has closed counts until the daemon has seen it go."""
        return held_connections(self.proc.pid, self.socket)

    def stop(self, timeout=30):
        """SIGTERM, then require a clean exit (status 0, no sanitizer report)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.log.close()
        self.proc = None
        text = self.log_text()
        if rc != 0 or "Sanitizer" in text or "runtime error" in text:
            raise AssertionError("keytransd exited with %d:\n%s" % (rc, text[-6000:]))
        return rc


_STARTED = []   # every Daemon of this process


@atexit.register
def kill_leftovers():
    """At exit (after the tests' own clean-up), kills the daemons still running — those of a
    test that failed before stopping them — so that a failed run leaves no process behind."""
    for d in _STARTED:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    _STARTED.clear()


def held_connections(pid, path):
    """Connections accepted on the Unix socket path that process pid holds open (root only)."""
    accepted = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            p = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000: a listening socket
            if len(p) >= 8 and p[7] == path and not int(p[3], 16) & 0x10000:
                accepted.add(p[6])
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        n += link.startswith("socket:[") and link[8:-1] in accepted
    return n


class Workspace:
    """A temporary folder removed at exit, kept with KT_KEEP=1."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="kt-test-")

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("KT_KEEP"):
            print("kept", self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# --- the wire protocol (docs/protocol.md), for tests that speak it directly ---

OPS = {"info": 1, "keys": 2, "pubkey": 3, "unwrap": 4, "wrap": 5, "copp-sign": 6, "copp-open": 7,
       "stats": 8}
T = dict(NAME=1, BLOB=2, PADDING=3, ALG_ID=4, SESSION_KEY=5, PUBLIC_KEY=6, FORMAT=7, KEY_BITS=8,
         RANDOM=9, AES_KEY=10, STATUS_SEQ=11, COMMAND_SEQ=12, SIGNATURE=13, MESSAGE=14,
         VERSION=15, TOKEN_LABEL=16, KEY_COUNT=17, WORKER_COUNT=18, UPTIME=19, KEY_ENTRY=20,
         LABEL=21, ID=22, BITS=23, EXPONENT=24, FLAGS=25, NOTICE=26, MECHANISM=27)
STATUS = dict(OK=0, BAD_FRAME=1, FRAME_TOO_LARGE=2, BAD_VERSION=3, UNKNOWN_OP=4, BAD_REQUEST=5,
              UNKNOWN_KEY=6, BLOB_TYPE=7, BLOB_VERSION=8, BLOB_RESERVED=9, BLOB_WRAP_ALG=10,
              BLOB_ALG=11, BLOB_LENGTH=12, BLOB_RANGE=13, UNWRAP_FAILED=14, KEY_LENGTH=15,
              BAD_PUBLIC_KEY=16, KEY_SIZE=17, RANDOM_MISMATCH=18, HSM_ERROR=19, BUSY=20,
              INTERNAL=21, SHUTTING_DOWN=22, DENIED=23, TIMEOUT=24, HSM_UNAVAILABLE=25,
              NOT_SUPPORTED=26)


PIECE = 32
SLICE = 16 << 20
# x86-64 AddressSanitizer's shadow (its own bookkeeping, no program bytes: 14 TiB, mostly unbacked).
ASAN_SHADOW = (0x7fff7000, 0x10007fff8000)


def pieces(secret):
    """secret in pieces of 32 bytes: a freed copy has its first 16 bytes overwritten by the
    allocator's free-list pointers, and may be partly reused."""
    return [secret[i:i + PIECE] for i in range(0, len(secret) - PIECE + 1, PIECE)]


def writable_memory(pid):
    """(mapping, bytes) for every readable and writable mapping of process pid (heap, stacks,
    anonymous and library data, the locked heap too), in slices of 16 MiB that overlap by
    31 bytes, so that a piece cut by a slice's end is whole in the next. Root only."""
    shadow = ASAN_SHADOW if sanitized() else (0, 0)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if (not fields[1].startswith("rw") or fields[-1] in ("[vvar]", "[vsyscall]") or
                    (shadow[0] <= lo and hi <= shadow[1])):
                continue
            for start in range(lo, hi, SLICE):
                try:
                    mem.seek(start)
                    data = mem.read(min(hi, start + SLICE + PIECE - 1) - start)
                except (OSError, ValueError, OverflowError):
                    break
                yield line.strip(), data


def memory_holds(pid, secrets):
    """name -> the mappings of process pid that hold a piece of secrets[name] (bytes of 32 or
    more); fails unless it could read a good part of the memory."""
    needles = {name: pieces(secret) for name, secret in secrets.items()}
    found, seen = {}, 0
    for mapping, data in writable_memory(pid):
        seen += len(data)
        for name, chunks in needles.items():
            if any(chunk in data for chunk in chunks) and mapping not in found.get(name, []):
                found.setdefault(name, []).append(mapping)
    assert seen > (1 << 20), "read only %d bytes of the memory of process %d" % (seen, pid)
    return found


def field(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">HH", T[tag], len(value)) + value


def u8(tag, v):
    return field(tag, struct.pack(">B", v))


def u32(tag, v):
    return field(tag, struct.pack(">I", v))


def frame(op, fields=b"", rid=1, version=1, status=0):
    body = struct.pack(">BBHI", version, OPS.get(op, op) if isinstance(op, str) else op,
                       status, rid) + fields
    return struct.pack(">I", len(body)) + body


def parse_fields(body):
    out, off = {}, 0
    while off < len(body):
        tag, n = struct.unpack_from(">HH", body, off)
        off += 4
        out.setdefault(tag, []).append(body[off:off + n])
        off += n
    assert off == len(body), "field overruns the frame"
    return out


class Reply:
    def __init__(self, raw):
        self.version, self.op, self.status, self.id = struct.unpack_from(">BBHI", raw, 0)
        self.fields = parse_fields(raw[8:])

    def get(self, tag):
        return self.fields.get(T[tag], [None])[0]

    def u32(self, tag):
        return struct.unpack(">I", self.get(tag))[0]

    def message(self):
        m = self.get("MESSAGE")
        return m.decode() if m else ""


class Conn:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)

    @classmethod
    def of(cls, s, timeout=30):
        """A Conn around an already connected socket."""
        c = cls.__new__(cls)
        c.s = s
        s.settimeout(timeout)
        return c

    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed after %d of %d bytes" % (len(data), n))
            data += chunk
        return data

    def recv(self):
        n = struct.unpack(">I", self.recv_exact(4))[0]
        return Reply(self.recv_exact(n))

    def call(self, op, fields=b"", rid=1):
        self.send(frame(op, fields, rid))
        r = self.recv()
        assert r.id == rid, (r.id, rid)
        return r

    def close(self):
        self.s.close()


class Child:
    """fn(*args) in a forked child running as uid/gid with the supplementary groups given
    (the test must run as root for that); result() waits for it and returns what fn
    returned (picklable), or raises with the child's traceback. pid is the child's pid,
    which the daemon sees as the peer's."""

    def __init__(self, fn, *args, uid=0, gid=0, groups=()):
        self.uid = uid
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(r)
                os.setgroups(list(groups))
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                out = ("ok", fn(*args))
            except BaseException:  # noqa: BLE001 - reported to the parent
                out = ("error", traceback.format_exc())
            try:
                with os.fdopen(w, "wb") as f:
                    f.write(pickle.dumps(out))
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)   # never back into the parent's test runner or its atexit handlers
        os.close(w)
        self.fd = r
        self.value = None

    def result(self, timeout=120):
        """The child's return value; raises if it failed or did not finish in time."""
        if self.fd is not None:
            poller = select.poll()   # not select(): the fd may be above 1023
            poller.register(self.fd, select.POLLIN)
            data, deadline = b"", time.time() + timeout
            while True:
                if not poller.poll(max(0, deadline - time.time()) * 1000):
                    os.kill(self.pid, signal.SIGKILL)
                    self.value = ("error", "did not finish in %ds" % timeout)
                    break
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.value = pickle.loads(data) if data else ("error", "died without a result")
                    break
                data += chunk
            os.close(self.fd)
            self.fd = None
            os.waitpid(self.pid, 0)
        kind, value = self.value
        if kind != "ok":
            raise AssertionError("child uid %d failed:\n%s" % (self.uid, value))
        return value


def as_user(fn, *args, uid, gid, groups=()):
    """Runs fn(*args) in a child as uid/gid; returns (child pid, fn's result)."""
    c = Child(fn, *args, uid=uid, gid=gid, groups=groups)
    return c.pid, c.result()


def run_tests(tests):
    """Runs test functions, prints a line each, exits non-zero if any failed."""
    failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            print("ok   %-40s %.2fs" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            import traceback
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    sys.exit(1 if failed else 0)
