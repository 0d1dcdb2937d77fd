"""p11-kit remoting: a SoftHSM token exported by `p11-kit server` on a Unix
socket, used through the client module p11-kit-client.so.

The server (`p11-kit server -f -n ROOT/p11kit/server.sock --provider libsofthsm2.so
pkcs11:token=kt-mod`) forks one p11-kit-remote per connection, and that child
keeps serving its client after the server is gone; so the server is started in
a session of its own and the whole process group is killed to stop it. The
token is a SoftHsmEnv in ROOT/softhsm (its SOFTHSM2_CONF is given to the server
only). Clients find the server through P11_KIT_SERVER_ADDRESS (in env()); each
C_GetFunctionList of p11-kit-client.so gives a new, uninitialised module
instance with a connection of its own.

Fault: stop_service() kills the server's process group (its children serving
open connections included); start_service() starts it again on the same path
(a socket file left behind by a SIGKILL is removed first) and waits until it
accepts connections.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hsmenv import HsmEnv, self_test, SoftHsmEnv, exited, stop_group  # noqa: E402


class P11KitEnv(HsmEnv):
    name = "p11kit"
    module = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
    provider = SoftHsmEnv.module
    can_import = True       # C_CreateObject of an RSA private key through the client works

    def __init__(self, root):
        super().__init__(root)
        self.root = os.path.abspath(root)
        self.inner = SoftHsmEnv(os.path.join(self.root, "softhsm"))
        self.token, self.pin, self.so_pin = self.inner.token, self.inner.pin, self.inner.so_pin
        self.dir = os.path.join(self.root, "p11kit")
        self.socket = os.path.join(self.dir, "server.sock")
        self.server_log = os.path.join(self.dir, "server.log")
        if len(self.socket.encode()) > 107:
            raise ValueError("p11kit env: socket path too long: %s" % self.socket)
        self.server = None
        self._set_up = False
        self._closed = False

    def env(self):
        e = dict(os.environ, P11_KIT_SERVER_ADDRESS="unix:path=" + self.socket)
        e.pop("SOFTHSM2_CONF", None)    # the clients reach SoftHSM through the server only
        return e

    def setup(self):
        if self._set_up:
            return self
        if self._closed:
            raise RuntimeError("p11kit env: closed")
        try:
            self.inner.setup()
            self.keys = dict(self.inner.keys)
            os.makedirs(self.dir, exist_ok=True)
            self.start_service()
            out = self.run("pkcs11-tool", "--module", self.module, "-L").stdout.decode()
            if "token label        : %s" % self.token not in out:
                raise RuntimeError("p11kit env: token not seen through the client: %s" % out)
        except BaseException:
            self.close()
            raise
        self._set_up = True
        return self

    def start_service(self):
        if self.server is not None:
            if not exited(self.server):
                return
            self.stop_service()          # it died by itself: reap it and its children
        if os.path.lexists(self.socket):
            if _accepts(self.socket):
                raise RuntimeError("p11kit env: something else serves %s" % self.socket)
            os.unlink(self.socket)       # left by a SIGKILL
        log = open(self.server_log, "ab")
        self.server = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL",
             "p11-kit", "server", "-f", "-n", self.socket, "--provider", self.provider,
             "pkcs11:token=" + self.token],
            env=self.inner.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while not _accepts(self.socket):
            if exited(self.server):
                self.stop_service()
                raise RuntimeError("p11kit env: p11-kit server exited; see %s" % self.server_log)
            if time.monotonic() > deadline:
                self.stop_service()
                raise RuntimeError("p11kit env: p11-kit server never accepted on %s"
                                   % self.socket)
            time.sleep(0.02)

    def stop_service(self):
        p, self.server = self.server, None
        if p is not None:
            stop_group(p, 1.0)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.stop_service()
        self.inner.close()
        for d in (self.dir, self.inner.root):
            shutil.rmtree(d, ignore_errors=True)


def _accepts(path):
    """Connect and hang up (the server forks a p11-kit-remote that then sees EOF)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    self_test(P11KitEnv)
