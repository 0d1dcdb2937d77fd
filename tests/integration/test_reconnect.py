"""Clients reconnect and retry: libkeytrans (through ctypes) and the Python client.

A relay between the client and keytransd stands in for the daemon's restarts:
it can drop every open connection, or drop a connection when the next request
arrives (before the daemon sees it). A call on a dropped connection connects
again; a call whose connection is lost mid-way is sent once more, and only
once; kt_set_reconnect(0) / reconnect = False and kt_close turn both off; the
retry comes out of the call's own time limit. The last case restarts the real
daemon between two calls on one connection.
"""
import ctypes
import os
import socket
import threading
import time

import harness
from harness import Daemon, Workspace, run_tests

import keytrans

LIB = ctypes.CDLL(os.environ["KT_LIBKEYTRANS"])
LIB.kt_conn_new.restype = ctypes.c_void_p
for name in ("kt_connect", "kt_info", "kt_unwrap"):
    getattr(LIB, name).restype = ctypes.c_int
LIB.kt_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
LIB.kt_info.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
LIB.kt_unwrap.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                          ctypes.c_int, ctypes.c_void_p]
LIB.kt_set_reconnect.argtypes = [ctypes.c_void_p, ctypes.c_int]
LIB.kt_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
LIB.kt_close.argtypes = [ctypes.c_void_p]
LIB.kt_conn_free.argtypes = [ctypes.c_void_p]
LIB.kt_errmsg.argtypes = [ctypes.c_void_p]
LIB.kt_errmsg.restype = ctypes.c_char_p
LIB.kt_status_name.restype = ctypes.c_char_p

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
    """libkeytrans through ctypes: status names back, as the Python client raises."""

    def __init__(self, path, timeout_ms=10000):
        self.c = LIB.kt_conn_new()
        LIB.kt_set_timeout(self.c, timeout_ms)
        st = LIB.kt_connect(self.c, path.encode())
        assert st == 0, self.err()

    def err(self):
        return LIB.kt_errmsg(self.c).decode()

    def info(self):
        out = ctypes.create_string_buffer(1 << 16)
        st = LIB.kt_info(self.c, out)
        return LIB.kt_status_name(st).decode()

    def unwrap(self):
        out = ctypes.create_string_buffer(4096)
        st = LIB.kt_unwrap(self.c, b"rsa2048", BLOB, len(BLOB), 0, out)
        if st == 0:
            # struct kt_session_key: alg_id (u32), key_len (size_t), key bytes.
            key_len = ctypes.c_size_t.from_buffer(out, 8).value
            assert out.raw[16:16 + key_len] == KEY
        return LIB.kt_status_name(st).decode()

    def set_reconnect(self, on):
        LIB.kt_set_reconnect(self.c, on)

    def close(self):
        LIB.kt_close(self.c)

    def free(self):
        LIB.kt_conn_free(self.c)


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
               test_daemon_restart_between_calls])
