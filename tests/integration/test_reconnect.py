"""Clients reconnect and retry: libkeytrans (through kt_driver) and the Python client.

A relay between the client and keytransd stands in for the daemon's restarts:
it can drop every open connection, or drop a connection when the next request
arrives (before the daemon sees it). A call on a dropped connection connects
again; a call whose connection is lost mid-way is sent once more, and only
once; kt_set_reconnect(0) / reconnect = False and kt_close turn both off; the
retry comes out of the call's own time limit. The last case restarts the real
daemon between two calls on one connection.
"""
import os
import socket
import subprocess
import threading
import time

import harness
from harness import Daemon, Workspace, run_tests

import keytrans

BLOB, KEY = [(bytes.fromhex(v[4]), bytes.fromhex(v[3]))
             for v in harness.read_vector_lines("simpleblob.txt")
             if v[0] == "rsa2048" and v[1] == "pkcs1"][0]


class Relay:
    """A Unix socket relaying to the daemon's. drop_all() closes every relayed
    connection; drop_next(n) closes the next n connections as soon as the client
    sends on them, before the daemon gets the bytes. accepted counts connections."""

    def __init__(self, root, target):
        self.path = os.path.join(root, "relay.sock")
        self.target = target
        self.accepted = 0
        self.to_drop = 0
        self.live = []
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.live.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        d = socket.socket(socket.AF_UNIX)
        d.connect(self.target)
        threading.Thread(target=self._pump, args=(d, c), daemon=True).start()
        self._pump(c, d, client_side=True)

    def _pump(self, src, dst, client_side=False):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if client_side:
                    with self.lock:
                        drop = self.to_drop > 0
                        self.to_drop -= drop
                    if drop:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self):
        with self.lock:
            live, self.live = self.live, []
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        time.sleep(0.05)

    def drop_next(self, n):
        with self.lock:
            self.to_drop = n

    def close(self):
        self.srv.close()


class CConn:
    """libkeytrans, through tests/integration/kt_driver (one command per line), so that
    the C library runs as it is built, sanitizers included. Calls return status names."""

    def __init__(self, path, timeout_ms=10000):
        self.p = subprocess.Popen([os.environ["KT_DRIVER"]], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.last = ""
        assert self.cmd("timeout %d" % timeout_ms) == "OK"
        assert self.cmd("connect " + path) == "OK", self.last

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        self.last = self.p.stdout.readline().strip()
        assert self.last, "kt_driver died"
        return self.last.split(" ", 1)[0]

    def err(self):
        return self.last

    def info(self):
        return self.cmd("info")

    def unwrap(self):
        st = self.cmd("unwrap rsa2048 " + BLOB.hex())
        if st == "OK":
            assert self.last.split()[1] == KEY.hex(), self.last
        return st

    def keygen(self, name):
        return self.cmd("keygen " + name)

    def set_reconnect(self, on):
        self.cmd("reconnect %d" % on)

    def close(self):
        self.cmd("close")

    def free(self):
        self.p.stdin.close()
        assert self.p.wait(30) == 0


class PyConn:
    def __init__(self, path, timeout_ms=10000):
        self.c = keytrans.Connection(path, timeout=timeout_ms / 1000)

    def _status(self, fn, *args):
        try:
            fn(*args)
            return "OK"
        except keytrans.KeytransError as e:
            self.last = e.message
            return e.name

    def info(self):
        return self._status(self.c.info)

    def unwrap(self):
        def go():
            assert self.c.unwrap("rsa2048", BLOB).key == KEY
        return self._status(go)

    def keygen(self, name):
        return self._status(self.c.keygen, name)

    def set_reconnect(self, on):
        self.c.reconnect = bool(on)

    def close(self):
        self.c.close()

    def free(self):
        self.c.close()


def with_relay(check):
    def test():
        with Workspace() as ws:
            d = Daemon(ws)
            try:
                for kind in (CConn, PyConn):
                    relay = Relay(ws, d.socket)
                    try:
                        check(relay, kind)
                    except AssertionError as e:
                        raise AssertionError("%s: %s" % (kind.__name__, e)) from e
                    finally:
                        relay.close()
                        os.unlink(relay.path)
            finally:
                d.stop()
    test.__name__ = check.__name__
    return test


@with_relay
def test_call_after_the_daemon_dropped_the_connection_reconnects(relay, kind):
    c = kind(relay.path)
    assert c.unwrap() == "OK"
    relay.drop_all()
    assert c.info() == "OK"
    assert c.unwrap() == "OK"
    assert relay.accepted == 2, relay.accepted
    c.free()


@with_relay
def test_call_lost_mid_way_is_sent_once_more(relay, kind):
    c = kind(relay.path)
    assert c.info() == "OK"
    relay.drop_next(1)
    assert c.unwrap() == "OK"
    relay.drop_next(1)
    assert c.info() == "OK"
    assert relay.accepted == 3, relay.accepted
    c.free()


@with_relay
def test_retry_happens_once_only(relay, kind):
    c = kind(relay.path)
    assert c.info() == "OK"
    relay.drop_next(2)
    assert c.unwrap() == "ERR_IO"
    assert relay.accepted == 2, relay.accepted
    assert relay.to_drop == 0, relay.to_drop
    # The next call connects again and succeeds.
    assert c.unwrap() == "OK"
    assert relay.accepted == 3, relay.accepted
    c.free()


@with_relay
def test_reconnect_off_and_close_keep_the_connection_closed(relay, kind):
    c = kind(relay.path)
    c.set_reconnect(0)
    assert c.info() == "OK"
    relay.drop_next(1)
    assert c.unwrap() == "ERR_IO"
    assert c.unwrap() == "ERR_IO"      # not connected: no new connection either
    assert relay.accepted == 1, relay.accepted
    c.set_reconnect(1)
    assert c.unwrap() == "OK"
    c.close()
    assert c.info() == "ERR_IO"
    assert relay.accepted == 2, relay.accepted
    c.free()


@with_relay
def test_keygen_is_never_sent_twice(relay, kind):
    # A lost answer does not say whether the key was made: the caller decides.
    c = kind(relay.path)
    assert c.info() == "OK"
    relay.drop_next(1)
    assert c.keygen("never-" + kind.__name__) == "ERR_IO"
    assert relay.accepted == 1, relay.accepted
    # The next call connects again as usual.
    assert c.info() == "OK" and relay.accepted == 2, relay.accepted
    c.free()


def test_daemon_restart_between_calls():
    with Workspace() as ws:
        d = Daemon(ws)
        try:
            cc, pc = CConn(d.socket), PyConn(d.socket)
            assert cc.unwrap() == "OK" and pc.unwrap() == "OK"
            d.stop()
            d.start()
            assert cc.unwrap() == "OK", cc.err()
            assert pc.unwrap() == "OK", pc.last
            cc.free()
            pc.free()
        finally:
            d.stop()


if __name__ == "__main__":
    run_tests([test_call_after_the_daemon_dropped_the_connection_reconnects,
               test_call_lost_mid_way_is_sent_once_more,
               test_retry_happens_once_only,
               test_reconnect_off_and_close_keep_the_connection_closed,
               test_keygen_is_never_sent_twice,
               test_daemon_restart_between_calls])
