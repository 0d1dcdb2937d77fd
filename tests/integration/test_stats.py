"""stats (op 8) against a daemon of its own, so that every counter is known exactly:
counts by operation and status after a known run, histograms that add up, connections
accepted and refused, the CLI's text, --json and --prometheus (checked by a strict
parser of the text exposition format), and the Python client agreeing with libkeytrans."""
import json
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SOFTHSM_MODULE, TOKEN as TOKEN_LABEL, Conn, Daemon, STATUS, Workspace,
                     field, frame, run_tests, wait_until)

import keytrans

D = None
PY = None       # the Python client's connection, open throughout
RAW = None      # a raw protocol connection, open throughout
PER_UID = 6     # max_connections_per_uid of the daemon
STATS = 8


def kt(*args):
    r = subprocess.run([os.environ["KT_CLI"], "-s", D.socket] + list(args), capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def ok(*args):
    r = kt(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout[:300], r.stderr)
    return r.stdout.decode()


def settle(want=2):
    """Waits until want connections are open (by default only PY and RAW): the daemon may
    not have seen the last CLI go, nor accepted a connection just made (its accept and
    our stats request race on a busy machine)."""
    for _ in range(1000):
        if PY.stats().connections == want:
            return
        time.sleep(0.01)
    raise AssertionError("connections did not settle at %d: %d" % (want, PY.stats().connections))


def by_name(stats):
    return {o.name: o for o in stats.ops}


def statuses(o):
    return {keytrans.status_name(code): n for code, n in o.by_status.items()}


# --- a known run -------------------------------------------------------------

# What the run below must have counted: op -> {status: answers}.
EXPECTED = {
    "wrap": {"OK": 5},
    "unwrap": {"OK": 4, "UNKNOWN_KEY": 2, "BLOB_LENGTH": 1, "UNWRAP_FAILED": 3, "BAD_VERSION": 1},
    "info": {"BAD_REQUEST": 1},
    "unknown": {"UNKNOWN_OP": 1},
}


def known_run():
    blobs = [PY.wrap("AES_128", to_key="rsa2048").blob for _ in range(5)]
    for b in blobs[:4]:
        PY.unwrap("rsa2048", b)
    for name, blob, kw, want in [("nokey", blobs[0], {}, "UNKNOWN_KEY"),
                                 ("nokey", blobs[1], {}, "UNKNOWN_KEY"),
                                 ("rsa2048", blobs[0][:-1], {}, "BLOB_LENGTH"),
                                 ("rsa2048", blobs[0], {"oaep": True}, "UNWRAP_FAILED"),
                                 ("rsa2048", blobs[1], {"oaep": True}, "UNWRAP_FAILED"),
                                 ("rsa2048", blobs[2], {"oaep": True}, "UNWRAP_FAILED")]:
        try:
            PY.unwrap(name, blob, **kw)
            raise AssertionError("unwrap %s succeeded" % name)
        except keytrans.KeytransError as e:
            assert e.name == want, (e, want)
    assert RAW.call("info", field("NAME", "x")).status == STATUS["BAD_REQUEST"]
    RAW.send(frame(99, b"", rid=2))
    assert RAW.recv().status == STATUS["UNKNOWN_OP"]
    RAW.send(frame("unwrap", b"", rid=3, version=2))
    assert RAW.recv().status == STATUS["BAD_VERSION"]


def test_counts_after_a_known_run():
    known_run()
    s = PY.stats()
    ops = by_name(s)
    assert [o.op for o in s.ops] == list(range(16)), [o.op for o in s.ops]
    for o in s.ops:
        want = EXPECTED.get(o.name, {})
        assert statuses(o) == want, (o.name, statuses(o), want)
        assert o.count == sum(want.values())
        assert sum(o.buckets) == o.count and len(o.buckets) == len(s.bounds_us) + 1
        assert (o.latency_sum_ns > 0) == (o.name in ("wrap", "unwrap", "info")), o
    assert ops["stats"].count == 0      # this answer is not counted in itself
    assert s.bounds_us[0] == 10 and s.bounds_us[-1] == 10000000 and len(s.bounds_us) == 19
    # Answered without a job, the unknown op and the bad version count with no latency.
    assert ops["unknown"].buckets[0] == 1
    # Accepted: the harness's probe that the daemon listens, PY and RAW.
    assert s.connections == 2 and s.accepted == 3 and s.refused == 0, s[:4]
    assert [p.name for p in s.pools] == ["hsm", "public"]
    assert all(p.queued == 0 and p.in_flight == 0 and p.workers >= 1 for p in s.pools)
    assert s.pools[0].workers == 2
    assert [(h.name, h.state, h.faults) for h in s.hsms] == [("hsm", "up", 0)]
    # Counted once more, with OK, the next time.
    assert by_name(PY.stats())["stats"].by_status == {0: 1}


def test_json_shape_and_python_agree():
    settle()
    before = PY.stats()
    obj = json.loads(ok("--json", "stats"))
    after = PY.stats()
    assert set(obj) == {"uptime_s", "connections", "accepted", "refused", "latency_bounds_us",
                        "ops", "pools", "recipient_cache", "sessions", "hsms"}, sorted(obj)
    # No wrap to a PUBLIC_KEY here (test_recipients.py has those), no sealed session.
    assert obj["recipient_cache"] == {"entries": 0, "hits": 0, "misses": 0}
    assert obj["sessions"] == {"open": 0, "opened": 0, "expired": 0}, obj["sessions"]
    assert (after.sessions, after.sessions_opened, after.sessions_expired) == (0, 0, 0)
    assert (after.recipient_hits, after.recipient_misses, after.recipients) == (0, 0, 0)
    assert obj["latency_bounds_us"] == list(before.bounds_us)
    assert [o["code"] for o in obj["ops"]] == list(range(16))
    for o in obj["ops"]:
        assert set(o) == {"op", "code", "count", "statuses", "latency_buckets", "latency_sum_ns"}
        assert sum(o["latency_buckets"]) == o["count"] == sum(o["statuses"].values())
        if o["op"] == "stats":
            continue    # the stats calls around it count themselves
        py = by_name(after)[o["op"]]
        assert (o["count"], o["statuses"], tuple(o["latency_buckets"]), o["latency_sum_ns"]) == \
            (py.count, statuses(py), py.buckets, py.latency_sum_ns), (o, py)
    assert obj["pools"] == [p._asdict() for p in after.pools]
    assert [h["name"] for h in obj["hsms"]] == ["hsm"] and obj["hsms"][0]["state"] == "up"
    assert obj["accepted"] == before.accepted + 1 and after.accepted == before.accepted + 1
    assert obj["connections"] == 3 and obj["refused"] == 0


def test_text():
    settle()
    out = ok("stats")
    assert "connections: 3 open" in out, out
    # Statuses in the order of their codes.
    assert re.search(r"^op unwrap: 11 answered \(OK 4, BAD_VERSION 1, UNKNOWN_KEY 2, "
                     r"BLOB_LENGTH 1, UNWRAP_FAILED 3\), mean [0-9.]+ ms", out, re.M), out
    assert re.search(r"^op wrap: 5 answered \(OK 5\)", out, re.M), out
    assert re.search(r"^pool hsm: 2 workers, 0 queued, 0 in flight$", out, re.M), out
    assert re.search(r"^hsm hsm: token \S+, up, 0 in flight, 0 faults$", out, re.M), out
    assert "op keys" not in out      # nothing answered: not listed


def test_usage():
    r = kt("--json", "stats", "--prometheus")
    assert r.returncode == 2 and json.loads(r.stdout)["error"] == "USAGE", r
    r = kt("stats", "extra")
    assert r.returncode == 2


# --- Prometheus text exposition format, version 0.0.4, checked strictly -------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
HELP = re.compile(r"^# HELP (%s) (.+)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def number(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text), "bad value %r" % text
    return float(text)


def labels(text):
    return tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"', text or ""))


def parse_prometheus(text):
    """{family: (type, {(sample name, labels): value})}, refusing anything the format
    does not allow: stray lines, HELP/TYPE repeated or after samples, families split,
    samples of no declared family, duplicate series, non-cumulative histograms."""
    assert text.endswith("\n") and "\r" not in text
    families, order, current = {}, [], None
    for line in text[:-1].split("\n"):
        m = HELP.match(line) or TYPE.match(line)
        if m:
            fam = m.group(1)
            f = families.setdefault(fam, {"help": None, "type": None, "samples": {}})
            key = "help" if line.startswith("# HELP") else "type"
            assert f[key] is None, "second %s for %s" % (key, fam)
            assert not f["samples"], "%s of %s after its samples" % (key, fam)
            f[key] = m.group(2)
            if fam not in order:
                order.append(fam)
            current = fam
            continue
        assert not line.startswith("#") and line.strip() == line and line, "stray %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, lab, value = m.group(1), labels(m.group(2)), number(m.group(3))
        fam = current
        assert fam is not None, "sample of no family: %r" % line
        f = families[fam]
        assert f["type"] is not None, "sample before TYPE: %r" % line
        suffix = name[len(fam):] if name.startswith(fam) else None
        assert suffix in SUFFIXES.get(f["type"], ("",)), "%s outside family %s" % (name, fam)
        assert len({k for k, _ in lab}) == len(lab), "label repeated: %r" % line
        assert (name, lab) not in f["samples"], "duplicate series %r" % line
        f["samples"][(name, lab)] = value
    for fam, f in families.items():
        assert f["help"] and f["type"] and f["samples"], fam
        if f["type"] == "counter":
            assert fam.endswith("_total"), fam
            assert all(v >= 0 for v in f["samples"].values())
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return {fam: (f["type"], f["samples"]) for fam, f in families.items()}


def check_histogram(fam, samples):
    series = {}
    for (name, lab), v in samples.items():
        rest = tuple(kv for kv in lab if kv[0] != "le")
        s = series.setdefault(rest, {"buckets": []})
        if name == fam + "_bucket":
            le = dict(lab)["le"]
            s["buckets"].append((number(le), v))
        else:
            s[name[len(fam):]] = v
    for rest, s in series.items():
        b = s["buckets"]
        assert b and b == sorted(b) and math.isinf(b[-1][0]), (rest, b)
        assert all(x[1] <= y[1] for x, y in zip(b, b[1:])), "not cumulative %r" % (rest,)
        assert s["_count"] == b[-1][1] and s["_sum"] >= 0, (rest, s)


def test_prometheus_strict():
    text = ok("stats", "--prometheus")
    fams = parse_prometheus(text)
    py = by_name(PY.stats())
    typ, req = fams["keytrans_requests_total"]
    assert typ == "counter"
    for op, want in EXPECTED.items():
        for status, n in want.items():
            key = ("keytrans_requests_total", (("op", op), ("status", status)))
            assert req[key] == n, (key, req.get(key))
    typ, hist = fams["keytrans_request_duration_seconds"]
    assert typ == "histogram"
    for o in ("unwrap", "wrap"):
        count = hist[("keytrans_request_duration_seconds_count", (("op", o),))]
        total = hist[("keytrans_request_duration_seconds_sum", (("op", o),))]
        assert count == py[o].count and abs(total - py[o].latency_sum_ns / 1e9) < 1e-9
        first = hist[("keytrans_request_duration_seconds_bucket", (("op", o), ("le", "1e-05")))]
        assert first == py[o].buckets[0]
    assert fams["keytrans_connections"][0] == "gauge"
    assert fams["keytrans_hsm_up"][1] == {("keytrans_hsm_up", (("hsm", "hsm"),)): 1}
    depth = fams["keytrans_queue_depth"][1]
    assert set(depth) == {("keytrans_queue_depth", (("pool", "hsm"),)),
                          ("keytrans_queue_depth", (("pool", "public"),))}
    for fam in ("keytrans_connections_accepted_total", "keytrans_connections_refused_total",
                "keytrans_in_flight", "keytrans_workers", "keytrans_hsm_in_flight",
                "keytrans_hsm_faults_total", "keytrans_uptime_seconds"):
        assert fam in fams, fam
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return      # python3-prometheus-client is not installed: the strict check above stands
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "keytrans_request_duration_seconds" in names, names


def test_parser_refuses():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    parse_prometheus(good)
    for bad in [good[:-1], good + "a_total 2\n", "a_total 1\n", good.replace("1\n", "one\n"),
                good + "# TYPE a_total counter\n", good.replace('a_total 1', 'a_total{x="1} 1'),
                "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                "h_sum 1\nh_count 1\n"]:
        try:
            parse_prometheus(bad)
        except AssertionError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_refused_connections_counted():
    import socket
    settle()
    s = PY.stats()
    extra = []
    for _ in range(PER_UID - s.connections):
        extra.append(Conn(D.socket))
    settle(PER_UID)
    over = socket.socket(socket.AF_UNIX)
    over.settimeout(10)
    over.connect(D.socket)
    busy = over.recv(4096)          # one BUSY answer (op 0, id 0), then the close
    assert busy[4:12] == bytes([1, 0, 0, 20, 0, 0, 0, 0]) and b"max_connections_per_uid" in busy, busy
    assert over.recv(1) == b""
    over.close()
    # Both clients report the daemon's reason, not a protocol error.
    try:
        keytrans.connect(D.socket).info()
        raise AssertionError("a connection over the limit was served")
    except keytrans.KeytransError as e:
        assert e.code == keytrans.BUSY and "max_connections_per_uid" in e.message, (e.code, e.message)
    r = kt("info")
    assert r.returncode != 0 and b"max_connections_per_uid" in r.stderr, (r.returncode, r.stderr)
    after = PY.stats()
    assert after.refused == s.refused + 3 and after.accepted == s.accepted + len(extra)
    for c in extra:
        c.close()


def test_queue_depth_under_load():
    """While 32 unwraps are in flight on one connection (2 HSM workers), the hsm pool
    shows them queued and in flight; afterwards both are back to 0 and the unwraps are
    counted. A daemon of its own, whose HSM (tests/faultp11) holds both workers in
    C_Decrypt until released: the 30 others stay queued, however fast this machine."""
    import threading
    n, depth = 64, 32
    blob = PY.wrap("AES_128", to_key="rsa2048").blob
    with Workspace() as root:
        control = os.path.join(root, "faults")
        # hsm_call_timeout far above the hold: slow calls, not hung ones.
        d = Daemon(root, extra_daemon="hsm_call_timeout = 600",
                   env={"FAULTP11_MODULE": SOFTHSM_MODULE, "FAULTP11_CONTROL": control},
                   hsm_text="[hsm]\nmodule = %s\ntoken = %s\npin_file = pin" % (
                       os.environ["KT_FAULTP11"], TOKEN_LABEL))
        try:
            with keytrans.connect(d.socket) as py:
                before = by_name(py.stats())["unwrap"].count
                with open(control, "w") as f:
                    f.write("C_Decrypt hang\n")
                done = []
                load = keytrans.connect(d.socket)
                t = threading.Thread(target=lambda: done.append(
                    load.batch([keytrans.Op("unwrap", "rsa2048", blob)] * n, depth=depth)))
                t.start()
                try:
                    def pool():
                        return {p.name: p for p in py.stats().pools}["hsm"]
                    wait_until(lambda: (pool().in_flight, pool().queued) == (depth, depth - 2),
                               30, lambda: "%d in flight, %d queued: %s" % (depth, depth - 2,
                                                                           pool()))
                    assert pool().workers == 2, pool()
                finally:
                    os.unlink(control)      # the workers' calls return
                    t.join(60)
                load.close()
                assert all(not isinstance(r, Exception) for r in done[0]), done[0][:3]
                s = py.stats()
                p = {p.name: p for p in s.pools}["hsm"]
                assert p.queued == 0 and p.in_flight == 0, p
                assert by_name(s)["unwrap"].count == before + n
        finally:
            d.stop()


def main():
    global D, PY, RAW
    with Workspace() as root:
        D = Daemon(root, extra_daemon="max_connections_per_uid = %d" % PER_UID)
        try:
            PY = keytrans.connect(D.socket)
            RAW = Conn(D.socket)
            run_tests([test_counts_after_a_known_run, test_json_shape_and_python_agree,
                       test_text, test_usage, test_prometheus_strict, test_parser_refuses,
                       test_refused_connections_counted, test_queue_depth_under_load])
        finally:
            D.stop()


if __name__ == "__main__":
    main()
