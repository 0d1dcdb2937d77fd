"""The scrape endpoint of systemd/keytrans-metrics.socket and keytrans-metrics@.service, run
the way systemd runs an Accept=yes pair: systemd-socket-activate --accept --inetd listens on a
free loopback port and starts, for each connection, the service's own ExecStart= command line
(read from the unit, with this build's keytrans and this test's socket put in) with the
connection on stdin and stdout. A daemon of its own answers; a real HTTP client scrapes:
200 with strict Prometheus text whose counters follow a wrap and an unwrap; 404, 405, 400,
408; 503 once the daemon is stopped."""
import http.client
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Child, Daemon, Workspace, run_tests, wait_until  # noqa: E402
from test_stats import parse_prometheus  # noqa: E402

UNITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "systemd")
SERVICE = os.path.join(UNITS, "keytrans-metrics@.service")
SOCKET_UNIT = os.path.join(UNITS, "keytrans-metrics.socket")
PROM_TYPE = "text/plain; version=0.0.4"
READ_TIMEOUT = 10       # s: the responder's limit for a request head (client/cli/http_metrics.c)
OUTCOMES_UID, OTHER_UID = 4251, 4252    # a uid named in [daemon] stats_outcomes, and one not

D = None
PORT = None
LOG = None


def unit_settings(path):
    """{name: [values]} of a unit file (comments and section headers left out)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and line[0] not in "#;[" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def exec_start(sock):
    """The service's ExecStart= as argv, with this build's keytrans and sock put in for the
    installed paths it names."""
    svc = unit_settings(SERVICE)
    assert len(svc["ExecStart"]) == 1, svc["ExecStart"]
    argv = shlex.split(svc["ExecStart"][0])
    assert argv[0] == "/usr/bin/keytrans", argv
    assert argv[1:3] == ["-s", "/run/keytransd/keytransd.sock"], argv
    assert argv[3:] == ["stats", "--prometheus", "--http"], argv
    assert svc["StandardInput"] == ["socket"], svc.get("StandardInput")
    return [os.environ["KT_CLI"], "-s", sock] + argv[3:]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_responder(argv, log):
    """systemd-socket-activate on a free loopback port; (process, port) once it listens."""
    tool = shutil.which("systemd-socket-activate")
    assert tool, "systemd-socket-activate not found: install the Debian package systemd"
    sock = unit_settings(SOCKET_UNIT)
    assert sock["Accept"] == ["yes"] and sock["ListenStream"] == ["127.0.0.1:9464"], sock
    for _ in range(20):     # another process may take the port between free_port() and bind
        port = free_port()
        p = subprocess.Popen([tool, "--accept", "--inetd", "-l", "127.0.0.1:%d" % port] + argv,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def listening():
            if p.poll() is not None:
                return "exited"
            with open(log.name) as f:
                return ("Listening on 127.0.0.1:%d" % port) in f.read()
        if wait_until(listening, 30, "systemd-socket-activate listening") is True:
            return p, port
    raise AssertionError("no free port for systemd-socket-activate")


def get(path, method="GET", body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def read_to_end(s):
    """Everything s receives until the peer closes."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def raw(data, timeout=60):
    """Sends data as is, reads the answer to the end: (status code, head, body)."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=timeout) as s:
        if data:
            s.sendall(data)
        got = read_to_end(s)
    head, _, body = got.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert m, "no status line: %r" % got[:200]
    return int(m.group(1)), head.decode(), body


def scrape():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % PORT, timeout=60) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith(PROM_TYPE), r.headers["Content-Type"]
        body = r.read()
        assert int(r.headers["Content-Length"]) == len(body)
        return parse_prometheus(body.decode())


def requests(fams, op, status="OK"):
    return fams["keytrans_requests_total"][1].get(
        ("keytrans_requests_total", (("op", op), ("status", status))), 0)


def kt(*args, sock=None):
    r = subprocess.run([os.environ["KT_CLI"], "-s", sock or D.socket] + list(args),
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout


# --- the tests -----------------------------------------------------------------


def test_scrape_is_the_cli_output():
    fams = scrape()
    cli = parse_prometheus(kt("stats", "--prometheus").decode())
    assert set(fams) == set(cli), set(fams) ^ set(cli)
    assert fams["keytrans_hsm_up"][1] == cli["keytrans_hsm_up"][1] != {}


def wrap_and_unwrap(sock=None):
    with tempfile.TemporaryDirectory(prefix="kt-test-metrics-") as t:
        blob = os.path.join(t, "blob")
        kt("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--generate", "-o", blob, sock=sock)
        kt("unwrap", "rsa2048", "-i", blob, sock=sock)


def test_counters_follow_wrap_and_unwrap():
    before = scrape()
    wrap_and_unwrap()
    after = scrape()
    for op in ("wrap", "unwrap"):
        assert requests(after, op) == requests(before, op) + 1, (op, requests(after, op))
    accepted = "keytrans_connections_accepted_total"
    assert after[accepted][1][(accepted, ())] > before[accepted][1][(accepted, ())]


def test_head_and_query():
    st, h, body = get("/metrics", "HEAD")
    assert st == 200 and body == b"" and int(h["Content-Length"]) > 0, (st, h)
    assert h["Content-Type"].startswith(PROM_TYPE)
    assert get("/metrics?name[]=keytrans_uptime_seconds")[0] == 200
    # HTTP/1.0 needs no Host; the absolute form names the path too.
    assert raw(b"GET /metrics HTTP/1.0\r\n\r\n")[0] == 200
    assert raw(b"GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_other_paths_404():
    for path in ("/", "/metricsx", "/metrics/", "/favicon.ico", "/../metrics"):
        st, h, body = get(path)
        assert st == 404 and h["Content-Type"].startswith("text/plain"), (path, st)
        assert b"/metrics" in body


def test_other_methods_405():
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "get"):
        st, h, _ = get("/metrics", method, body=b"x=1" if method in ("POST", "PUT") else None)
        assert st == 405 and h["Allow"] == "GET, HEAD", (method, st, h)


def test_malformed_400():
    cases = [
        b"hello\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n",                               # 1.1 without Host
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",                    # no colon
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\0y\r\n\r\n",
        b"GET /met\rrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n",                       # closed before its end
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 16384 + b"\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ]
    for data in cases:
        with socket.create_connection(("127.0.0.1", PORT), timeout=60) as s:
            s.sendall(data)
            if not data.endswith(b"\r\n\r\n"):
                s.shutdown(socket.SHUT_WR)
            got = read_to_end(s)
        assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (data[:60], got[:80])


def test_read_timeout_408():
    start = time.monotonic()
    st, _, body = raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", timeout=READ_TIMEOUT * 6)
    assert st == 408 and body == b"request timeout\n", (st, body)
    assert time.monotonic() - start >= READ_TIMEOUT - 0.5
    # A connection that sends nothing is closed the same way.
    assert raw(b"", timeout=READ_TIMEOUT * 6)[0] == 408


def test_responder_alone_on_pipes():
    """The command itself: on pipes (no socket), exit 0 once it has answered; --http needs
    --prometheus (usage error, exit 2)."""
    argv = exec_start(D.socket)
    r = subprocess.run(argv, input=b"GET /metrics HTTP/1.0\r\n\r\n", capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), (r.returncode,
                                                                              r.stderr)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr
    r = subprocess.run(argv[:-2] + ["--http"], input=b"", capture_output=True, timeout=60)
    assert r.returncode == 2 and r.stdout == b"", (r.returncode, r.stdout)


def test_daemon_stopped_503():
    D.stop()
    for method in ("GET", "HEAD"):
        st, h, body = get("/metrics", method)
        assert st == 503 and h["Content-Type"].startswith("text/plain"), (method, st)
        assert body == (b"keytransd unavailable: ERR_CONNECT\n" if method == "GET" else b"")
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % PORT, timeout=60)
        raise AssertionError("no HTTPError")
    except urllib.error.HTTPError as e:
        assert e.code == 503


def scrape_as(uid, argv):
    """The endpoint's command run as uid (on pipes), as the metrics user would run it."""
    def run():
        r = subprocess.run(argv, input=b"GET /metrics HTTP/1.0\r\n\r\n", capture_output=True,
                           timeout=60)
        return r.returncode, r.stdout, r.stderr
    rc, out, err = Child(run, uid=uid, gid=uid).result()
    assert rc == 0 and out.startswith(b"HTTP/1.1 200 OK\r\n"), (uid, rc, out[:100], err)
    assert b"Sanitizer" not in err and b"runtime error" not in err, err
    return parse_prometheus(out.partition(b"\r\n\r\n")[2].decode())


def test_stats_outcomes_for_the_metrics_user():
    """[daemon] stats_outcomes: a uid named there sees the private-key operations' series
    (here unwrap's), as an admin would; another uid gets them empty. Both see wrap's."""
    if os.geteuid() != 0:
        print("SKIP test_stats_outcomes_for_the_metrics_user: needs root (other uids)")
        return
    with Workspace() as root:
        os.chmod(root, 0o755)
        d = Daemon(root, extra_daemon="socket_mode = 0666\nstats_outcomes = uid:%d"
                   % OUTCOMES_UID)
        try:
            wrap_and_unwrap(d.socket)
            argv = exec_start(d.socket)
            named, other = scrape_as(OUTCOMES_UID, argv), scrape_as(OTHER_UID, argv)
        finally:
            d.stop()
    assert requests(named, "unwrap") == 1 and requests(other, "unwrap") == 0
    assert requests(named, "wrap") == requests(other, "wrap") == 1
    count = "keytrans_request_duration_seconds_count"
    series = (count, (("op", "unwrap"),))
    assert named["keytrans_request_duration_seconds"][1][series] == 1
    assert other["keytrans_request_duration_seconds"][1][series] == 0


def test_no_sanitizer_report():
    """The responders' stderr (systemd-socket-activate's, inherited): no sanitizer report."""
    with open(LOG.name) as f:
        text = f.read()
    assert "Sanitizer" not in text and "runtime error" not in text, text[-4000:]
    assert "answered 404 Not Found" in text, text[-2000:]


def main():
    global D, PORT, LOG
    with Workspace() as root:
        D = Daemon(root)
        proc = None
        with open(os.path.join(root, "responder.log"), "w+") as LOG:
            try:
                proc, PORT = start_responder(exec_start(D.socket), LOG)
                run_tests([test_scrape_is_the_cli_output, test_counters_follow_wrap_and_unwrap,
                           test_head_and_query, test_other_paths_404, test_other_methods_405,
                           test_malformed_400, test_read_timeout_408,
                           test_responder_alone_on_pipes, test_stats_outcomes_for_the_metrics_user,
                           test_daemon_stopped_503,
                           test_no_sanitizer_report])
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
                if D.alive():
                    D.stop()


if __name__ == "__main__":
    main()
