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
    d = Daemon(root, TOKEN, start=False, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    d.start()
    got = messages_until(s, "READY=1")
    assert any("STATUS=serving 4 keys" in m for m in got), got
    # READY comes only once the HSM login is done and the socket listens.
    assert Conn(d.socket).call("info").status == 0
    # Pings at half the period: several within a second.
    start = time.time()
    pings = 0
    while time.time() - start < 1.0:
        if "WATCHDOG=1" in s.recv(4096).decode():
            pings += 1
    assert pings >= 3, pings
    d.proc.send_signal(signal.SIGTERM)
    messages_until(s, "STOPPING=1")
    assert d.proc.wait(30) == 0
    d.proc = None
    s.close()


def test_no_watchdog_without_request():
    root = new_root("nowatchdog")
    s, path = notify_socket(root)
    d = Daemon(root, TOKEN, start=False, env={"NOTIFY_SOCKET": path})
    d.start()
    messages_until(s, "READY=1")
    s.settimeout(1.0)
    try:
        msg = s.recv(4096).decode()
        raise AssertionError("unexpected notification %r" % msg)
    except socket.timeout:
        pass
    d.stop()
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


def main():
    global TOKEN, ROOT
    with Workspace() as root:
        ROOT = root
        TOKEN = Token(os.path.join(root, "hsm"))
        run_tests([test_ready_watchdog_stopping, test_no_watchdog_without_request,
                   test_socket_activation, test_pin_from_credentials])


if __name__ == "__main__":
    main()
