"""Configuration reload (SIGHUP): keys added and removed, new rules, a bad file
refused with the running configuration kept, restart-only settings reported,
and connections and requests in flight carried through every reload.
"""
import os
import re
import signal
import subprocess
import threading
import time

import harness
from harness import Daemon, Workspace, as_user, hsm_back_within, run_tests, wait_until

import keytrans

VECTORS = {}
for v in harness.read_vector_lines("simpleblob.txt"):
    if v[1] == "pkcs1":
        VECTORS.setdefault(v[0], (bytes.fromhex(v[4]), bytes.fromhex(v[3])))

TWO = {"rsa2048": ("rsa2048", "02"), "rsa1024": ("rsa1024", "01")}


def write_config(d, keys, extra_daemon="", workers=2, extra_key=None):
    """Rewrites d's file as Daemon writes it (same [hsm]), with other keys and lines."""
    lines = ["[daemon]", "socket = kt.sock", "socket_mode = 0666", "workers = %d" % workers,
             extra_daemon, "[hsm]", "module = " + harness.SOFTHSM_MODULE,
             "token = " + d.token.label, "pin_file = pin"]
    for name, (label, kid) in keys.items():
        lines += ["[key %s]" % name, "label = " + label, "id = " + kid]
        if extra_key and name in extra_key:
            lines.append(extra_key[name])
    with open(d.config + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(d.config + ".tmp", d.config)


def reload(d, outcome="configuration reloaded", within=30):
    """SIGHUP, then waits for the log line saying how it ended; returns that line."""
    done = ("configuration reloaded", "reload refused")
    before = sum(d.log_text().count(x) for x in done)
    os.kill(d.pid(), signal.SIGHUP)
    deadline = time.time() + within
    while time.time() < deadline:
        text = d.log_text()
        if sum(text.count(x) for x in done) > before:
            line = [ln for ln in text.splitlines() if any(x in ln for x in done)][-1]
            assert outcome in line, line
            return line
        time.sleep(0.02)
    raise AssertionError("no reload outcome in the log:\n" + d.log_text()[-3000:])


def names(c):
    return sorted(k.name for k in c.keys())


def unwrap_ok(c, name):
    blob, key = VECTORS[name]
    assert c.unwrap(name, blob).key == key


def status_of(fn, *args):
    try:
        fn(*args)
        return "OK"
    except keytrans.KeytransError as e:
        return e.name


def start(ws, keys=TWO, **kw):
    os.chmod(ws, 0o755)     # other users' children reach the socket in it
    d = Daemon(ws, keys=keys, extra_daemon="socket_mode = 0666", **kw)
    return d, keytrans.Connection(d.socket)


def test_keys_added_and_removed_on_an_open_connection():
    with Workspace() as ws:
        d, c = start(ws)
        assert names(c) == ["rsa1024", "rsa2048"]
        write_config(d, {"rsa2048": ("rsa2048", "02"), "rsa4096": ("rsa4096", "03")})
        line = reload(d)
        assert "added: rsa4096; removed: rsa1024" in line, line
        # The same connection goes on, under the new key list.
        assert names(c) == ["rsa2048", "rsa4096"]
        unwrap_ok(c, "rsa2048")
        unwrap_ok(c, "rsa4096")
        assert status_of(unwrap_ok, c, "rsa1024") == "UNKNOWN_KEY"
        assert c.info().key_count == 2
        c.close()
        d.stop()


def test_key_put_into_the_token_after_start_is_served_after_reload():
    with Workspace() as ws:
        d, c = start(ws)
        pem = os.path.join(ws, "new.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", pem], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d.token.util("--import", pem, "--token", d.token.label, "--label", "fresh",
                     "--id", "77", "--pin", d.token.pin)
        write_config(d, dict(TWO, fresh=("fresh", "77")))
        reload(d)
        w = c.wrap("CALG_AES_256", to_key="fresh")
        assert c.unwrap("fresh", w.blob).key == w.key
        got = c.pubkey("fresh", "pem")
        want = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout"], check=True,
                              capture_output=True).stdout
        assert got.strip() == want.strip()
        unwrap_ok(c, "rsa1024")
        c.close()
        d.stop()


def unwrap_as_peer(sock, name, blob):
    with keytrans.Connection(sock) as c:
        try:
            return "OK", c.unwrap(name, blob).key
        except keytrans.KeytransError as e:
            return e.name, e.message


def test_new_rules_apply_to_the_next_request():
    with Workspace() as ws:
        d, c = start(ws)
        blob, key = VECTORS["rsa2048"]
        st, msg = as_user(unwrap_as_peer, d.socket, "rsa2048", blob, uid=4242, gid=4242)[1]
        assert st == "DENIED", (st, msg)
        write_config(d, TWO, extra_key={"rsa2048": "allow_unwrap = uid:4242"})
        line = reload(d)
        assert "(rules)" in line and "added: none; removed: none" in line, line
        assert as_user(unwrap_as_peer, d.socket, "rsa2048", blob, uid=4242, gid=4242)[1] == \
            ("OK", key)
        # And back: the rule removed, the peer is refused again.
        write_config(d, TWO)
        reload(d)
        st, _ = as_user(unwrap_as_peer, d.socket, "rsa2048", blob, uid=4242, gid=4242)[1]
        assert st == "DENIED", st
        unwrap_ok(c, "rsa2048")
        c.close()
        d.stop()


def test_bad_file_is_refused_and_the_old_one_stays():
    with Workspace() as ws:
        d, c = start(ws)
        with open(d.config, "a") as f:
            f.write("[key broken]\nlabel = x\nno_such_setting = 1\n")
        line = reload(d, "reload refused")
        assert 'keytransd.conf:18: unknown key "no_such_setting"' in line, line
        assert "the running configuration stays in force" in line, line
        assert names(c) == ["rsa1024", "rsa2048"]
        unwrap_ok(c, "rsa2048")
        # A file that parses but names a key the token lacks: refused, the HSM back as it was.
        write_config(d, dict(TWO, ghost=("ghost", "99")))
        line = reload(d, "reload refused")
        assert "ghost" in line, line
        assert names(c) == ["rsa1024", "rsa2048"]
        unwrap_ok(c, "rsa2048")
        unwrap_ok(c, "rsa1024")
        assert c.info().hsms[0].state == "up", c.info()
        # A missing file as well.
        os.rename(d.config, d.config + ".away")
        reload(d, "reload refused")
        os.rename(d.config + ".away", d.config)
        unwrap_ok(c, "rsa1024")
        c.close()
        d.stop()


def test_restart_only_settings_are_reported_and_kept():
    with Workspace() as ws:
        d, c = start(ws)
        write_config(d, TWO, workers=1, extra_daemon="max_connections = 77")
        reload(d)
        text = d.log_text()
        assert "workers" in text and "takes a restart; kept as running" in text, text[-2000:]
        assert c.info().worker_count == 2
        c.close()
        d.stop()


def hammer(sock, stop, counts, errors):
    """Unwraps with rsa2048 (in every configuration) on one connection until stop."""
    blob, key = VECTORS["rsa2048"]
    with keytrans.Connection(sock) as c:
        while not stop.is_set():
            try:
                assert c.unwrap("rsa2048", blob).key == key
                counts.append(1)
            except (keytrans.KeytransError, AssertionError) as e:
                errors.append(repr(e))


def test_requests_in_flight_see_no_failure_across_reloads():
    with Workspace() as ws:
        d, c = start(ws)
        stop, counts, errors = threading.Event(), [], []
        threads = [threading.Thread(target=hammer, args=(d.socket, stop, counts, errors))
                   for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                keys = dict(TWO) if i % 2 else {"rsa2048": ("rsa2048", "02"),
                                                "rsa4096": ("rsa4096", "03")}
                write_config(d, keys)
                reload(d)
                # Unwraps go on after it: those that came during the rebuild waited for it
                # (at most hsm_call_timeout), the next ones find the HSM back.
                after = len(counts)
                wait_until(lambda: len(counts) >= after + 4 or errors, hsm_back_within(),
                           "unwraps completing after reload %d" % i)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert errors == [], errors[:5]
        c.close()
        d.stop()


def drop_key(d, name):
    """Removes [key name] from d's file, keeping everything else (its [hsm] included)."""
    text = open(d.config).read()
    text = re.sub(r"\[key %s\]\n(?:[^\[].*\n)*" % re.escape(name), "", text)
    with open(d.config + ".tmp", "w") as f:
        f.write(text)
    os.rename(d.config + ".tmp", d.config)


def test_reload_while_the_hsm_is_out_of_service():
    from test_reliability import Faulty
    with Workspace() as ws:
        f = Faulty(ws, extra_daemon="hsm_retry_max = 1")
        try:
            with f.conn() as c:
                assert "rsa1024" in names(c)
            f.rules("* rv=CKR_DEVICE_REMOVED\n")
            assert f.unwrap()[0] == "HSM_UNAVAILABLE"
            # Rules alone need no HSM: applied at once.
            with open(f.d.config, "a") as cf:
                cf.write("allow_pubkey = *\n")      # lands in the last [key] section
            assert "(rules)" in reload(f.d)
            # A new key list cannot be checked against an HSM: refused, old keys kept.
            drop_key(f.d, "rsa1024")
            line = reload(f.d, "reload refused")
            assert "no HSM in service" in line, line
            f.rules("")
            f.wait_ok()
            with f.conn() as c:
                assert "rsa1024" in names(c)
            line = reload(f.d)
            assert "removed: rsa1024" in line, line
            with f.conn() as c:
                assert "rsa1024" not in names(c)
            assert f.unwrap()[0] == "OK"
        finally:
            f.d.stop()


if __name__ == "__main__":
    run_tests([test_keys_added_and_removed_on_an_open_connection,
               test_key_put_into_the_token_after_start_is_served_after_reload,
               test_new_rules_apply_to_the_next_request,
               test_bad_file_is_refused_and_the_old_one_stays,
               test_restart_only_settings_are_reported_and_kept,
               test_requests_in_flight_see_no_failure_across_reloads,
               test_reload_while_the_hsm_is_out_of_service])
