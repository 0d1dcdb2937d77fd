"""keytransd under systemd's protocols, without systemd: readiness and stop notifications,
watchdog pings (NOTIFY_SOCKET), socket activation (LISTEN_FDS), the PIN as a credential."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Conn, Daemon, Token, Workspace, frame, run_tests

TOKEN = None
ROOT = None


def new_root(name):
    path = os.path.join(ROOT, name)
    os.makedirs(path)
    return path


def notify_socket(root):
    path = os.path.join(root, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    return s, path


def messages_until(s, wanted, deadline=10):
    """Datagrams from the daemon until one contains wanted; returns them all."""
    got = []
    end = time.time() + deadline
    while time.time() < end:
        msg = s.recv(4096).decode()
        got.append(msg)
        if wanted in msg:
            return got
    raise AssertionError("no %s in %r" % (wanted, got))


def test_ready_watchdog_stopping():
    root = new_root("notify")
    s, path = notify_socket(root)
    period = 0.4        # WATCHDOG_USEC
    d = Daemon(root, TOKEN, start=False,
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(period * 1e6))})
    d.start()
    try:
        got = messages_until(s, "READY=1")
        assert any("STATUS=serving 4 keys" in m for m in got), got
        # READY comes only once the HSM login is done and the socket listens.
        assert Conn(d.socket).call("info").status == 0
        # Pings at half the period, so twice a period: over 5 periods, at least one a
        # period (what systemd needs), whatever the scheduling delays on a busy machine.
        end = time.monotonic() + 5 * period
        got = []
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                got.append(s.recv(4096).decode())
            except socket.timeout:
                break
        pings = sum("WATCHDOG=1" in m for m in got)
        assert pings >= 5, (pings, got, d.log_text()[-3000:])
        d.proc.send_signal(signal.SIGTERM)
        s.settimeout(10)
        messages_until(s, "STOPPING=1")
        assert d.proc.wait(30) == 0
        d.proc = None
    finally:
        if d.alive():
            d.proc.kill()
            d.proc.wait()
        s.close()


def test_no_watchdog_without_request():
    root = new_root("nowatchdog")
    s, path = notify_socket(root)
    d = Daemon(root, TOKEN, start=False, env={"NOTIFY_SOCKET": path})
    d.start()
    try:
        messages_until(s, "READY=1")
        s.settimeout(1.0)
        try:
            msg = s.recv(4096).decode()
            raise AssertionError("unexpected notification %r:\n%s" % (msg, d.log_text()[-3000:]))
        except socket.timeout:
            pass
        d.stop()
    finally:
        if d.alive():
            d.proc.kill()
            d.proc.wait()
        s.close()


def pass_as_fd3(fd):
    """In the child: the listening socket as fd 3, kept across exec (sd_listen_fds)."""
    if fd != 3:
        os.dup2(fd, 3)
    os.set_inheritable(3, True)


def start_activated(d, listener):
    """keytransd as systemd starts it: listener's socket as fd 3, LISTEN_PID/LISTEN_FDS."""
    fd = listener.fileno()
    log = open(d.log_path, "ab")
    proc = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -f -c "$1"',
         os.environ["KT_KEYTRANSD"], d.config],
        env=d.env, stdout=log, stderr=log, close_fds=False,
        preexec_fn=lambda: pass_as_fd3(fd))
    return proc, log


def test_socket_activation():
    root = new_root("activation")
    d = Daemon(root, TOKEN, start=False)
    path = os.path.join(root, "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    # A client that connects before the daemon exists is queued by the kernel, not lost.
    early = Conn(path)
    proc, log = start_activated(d, listener)
    try:
        r = early.call("info")
        assert r.status == 0, r.message()
        assert Conn(path).call("keys").status == 0
        # The configured socket is not created: the daemon uses systemd's.
        assert not os.path.exists(d.socket)
        assert "from systemd" in open(d.log_path).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
    # The socket belongs to systemd: the daemon leaves it in place.
    assert os.path.exists(path)
    # A restart: a client that connects between the two processes is queued and served
    # by the next one, with the request it sent meanwhile.
    queued = Conn(path)
    queued.send(frame("info", rid=7))
    proc, log = start_activated(d, listener)
    try:
        r = queued.recv()
        assert r.status == 0 and r.id == 7, r.message()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
    listener.close()


def test_pin_from_credentials():
    root = new_root("creds")
    d = Daemon(root, TOKEN, start=False)
    creds = os.path.join(root, "credentials")
    os.makedirs(creds)
    os.rename(os.path.join(root, "pin"), os.path.join(creds, "pin"))
    os.chmod(os.path.join(creds, "pin"), 0o400)
    text = open(d.config).read().replace("pin_file = pin\n", "")
    with open(d.config, "w") as f:
        f.write(text)
    d.env["CREDENTIALS_DIRECTORY"] = creds
    d.start()
    assert Conn(d.socket).call("info").status == 0
    d.stop()
    # Without the credential, a clear error.
    del d.env["CREDENTIALS_DIRECTORY"]
    r = subprocess.run([os.environ["KT_KEYTRANSD"], "-f", "-c", d.config], env=d.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "LoadCredential=pin" in r.stderr, r.stderr


UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "systemd", "keytransd.service")
NOBODY = 65534


def unit_lines(key):
    """The values of key= in keytransd.service, in order."""
    with open(UNIT) as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith(key + "=")]


def unit_command(line, config):
    """An Exec*= line of the unit, run on this build and this configuration."""
    args = line.split()
    assert args[0] == "/usr/sbin/keytransd", line
    args[0] = os.environ["KT_KEYTRANSD"]
    return [config if a == "/etc/keytrans/keytransd.conf" else a for a in args]


def run_unprivileged(args, env=None):
    """As nobody when root, so that a folder of mode 000 is unreadable as it is for
    the daemon's user under systemd."""
    user = dict(user=NOBODY, group=NOBODY, extra_groups=[]) if os.geteuid() == 0 else {}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, **user)


def test_unit_check_pin():
    """ExecStartPre= checks LoadCredential='s source (the daemon sees only systemd's
    0400 copy of it), as the daemon's user: stat only, no "+" needed."""
    source = unit_lines("LoadCredential")[0].split(":", 1)[1]
    pre = unit_lines("ExecStartPre")
    assert pre[0] == "/usr/sbin/keytransd --check-pin=" + source, pre
    root = new_root("checkpin")
    os.chmod(ROOT, 0o755)
    os.chmod(root, 0o755)
    pin = os.path.join(root, "pin")
    with open(pin, "w") as f:
        f.write("1234\n")
    args = [a.replace(source, pin) for a in unit_command(pre[0], None)]
    os.chmod(pin, 0o640)
    r = run_unprivileged(args)
    assert r.returncode == 78, r
    assert "the PIN file %s must be a regular file readable by its owner only (mode 0640;" % pin \
        in r.stderr, r.stderr
    os.chmod(pin, 0o600)
    r = run_unprivileged(args)
    assert r.returncode == 0 and "PIN file OK" in r.stdout and "1234" not in r.stdout + r.stderr, r


def test_unit_reload_without_credentials():
    """systemd 252 hides the credentials from ExecReload=: the unit's reload check must
    pass for a valid configuration without reading the PIN."""
    root = new_root("reload")
    os.chmod(ROOT, 0o755)
    os.chmod(root, 0o755)
    d = Daemon(root, TOKEN, start=False)
    text = open(d.config).read().replace("pin_file = pin\n", "")
    with open(d.config, "w") as f:
        f.write(text)
    os.chmod(d.config, 0o644)
    hidden = os.path.join(root, "credentials")
    os.makedirs(hidden)
    with open(os.path.join(hidden, "pin"), "w") as f:
        f.write(TOKEN.pin)
    os.chmod(os.path.join(hidden, "pin"), 0o400)
    os.chmod(hidden, 0)
    env = dict(d.env, CREDENTIALS_DIRECTORY=hidden)
    reload = unit_lines("ExecReload")
    assert reload[-1] == "/bin/kill -HUP $MAINPID", reload
    for line in reload[:-1]:
        r = run_unprivileged(unit_command(line, d.config), env=env)
        assert r.returncode == 0 and "configuration OK" in r.stdout, (line, r)
    # What the unit ran before: -t reads the PIN, and fails so.
    r = run_unprivileged([os.environ["KT_KEYTRANSD"], "-t", "-c", d.config], env=env)
    assert r.returncode == 78 and "Permission denied" in r.stderr, r
    # A bad file still fails the reload, naming the line.
    with open(d.config, "a") as f:
        f.write("bogus line\n")
    r = run_unprivileged(unit_command(reload[0], d.config), env=env)
    assert r.returncode == 78 and "keytransd.conf:" in r.stderr, r
    os.chmod(hidden, 0o700)


def main():
    global TOKEN, ROOT
    with Workspace() as root:
        ROOT = root
        TOKEN = Token(os.path.join(root, "hsm"))
        run_tests([test_ready_watchdog_stopping, test_no_watchdog_without_request,
                   test_socket_activation, test_pin_from_credentials, test_unit_check_pin,
                   test_unit_reload_without_credentials])


if __name__ == "__main__":
    main()
