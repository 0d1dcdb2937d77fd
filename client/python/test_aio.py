"""The asyncio client (keytrans.aio) against a keytransd serving the vector keys (harness.py)
and against fake daemons (tests/conformance/fake_daemon.py), as test_keytrans.py tests the
blocking one: every operation, many requests in flight on one connection with each answer
checked, an error of every family, timeouts and late answers, malformed answers.

Run by meson (test 'python-client-aio'), with the environment of test 'python-client'."""
import asyncio
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keytrans  # noqa: E402
import keytrans.aio as aio  # noqa: E402
import test_keytrans as tk  # noqa: E402  (its helpers, vectors and fake scenarios)
from fake_daemon import SCENARIOS, FakeDaemon, fake_key, field, full_backlog, reply  # noqa: E402
from harness import Daemon, Workspace, as_user, read_vector_lines, run_tests  # noqa: E402
from keytrans import KeytransError, Op  # noqa: E402

D = None
ROOT = None
FAKES = {}
EXTRA_FAKES = {     # statuses no shared scenario answers
    "not_supported": lambda r: reply(r, field(14, "C_GenerateKeyPair: not here"), status=26),
    "bad_frame": lambda r: reply(r, field(14, "bad header"), status=1, op=0),
    "session_limit": lambda r: reply(r, field(14, "uid 0 has 64 sessions open"), status=30),
}


def run(coro_fn, *args):
    """Runs coro_fn(*args) in a fresh event loop; fails on any error the loop reports
    (a task's or a future's exception nobody retrieved)."""
    problems = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: problems.append(ctx))
        return await coro_fn(*args)

    result = asyncio.run(main())
    assert not problems, problems
    return result


async def araises(code, aw, message=None):
    """Awaiting aw must raise the KeytransError of that code, of its family class."""
    want = getattr(keytrans, code) if isinstance(code, str) else code
    try:
        r = await aw
    except KeytransError as e:
        assert e.code == want, "got %r, expected %s" % (e, code)
        assert type(e) is keytrans.error_class(want), (type(e), code)
        if message is not None:
            assert re.search(message, e.message), (e.message, message)
        return e
    raise AssertionError("no error (expected %s), got %r" % (code, r))


def test_connect_and_operations():
    async def t():
        async with await aio.connect(D.socket) as c:
            assert c.connected and c.timeout == keytrans.DEFAULT_TIMEOUT
            i = await c.info()
            assert isinstance(i, keytrans.Info) and i.version == keytrans.__version__
            assert i.key_count == 5 and i.token_label == D.token.label
            keys = {k.name: k for k in await c.keys()}
            assert sorted(keys) == ["pkcs2048", "rsa1024", "rsa2048", "rsa4096", "wine1024"]
            for name in ("rsa1024", "rsa2048"):
                assert await c.pubkey(name) == tk.pub(name)
                assert (await c.pubkey(name, "pem")).split() == tk.pub(name, "pem").split()
            st = await c.stats()
            assert isinstance(st, keytrans.Stats) and st.connections >= 1
            w = await c.wrap("AES_256", to_key="rsa2048", oaep=True)
            assert isinstance(w, keytrans.Wrapped) and len(w.key) == 32
            assert await c.unwrap("rsa2048", w.blob, oaep=True, strict=True) == (0x6610, w.key)
            assert "redacted" in repr(w) and w.key.hex() not in repr(w)
            s = await c.copp_sign(tk.RND, to_pub=tk.copp_xml("leaf2048.xml"), status_seq=3)
            o = await c.copp_open("rsa2048", s.signature, tk.RND, strict=True)
            assert o[1:] == s[1:] and o.signature is None and "redacted" in repr(o)
            # OPM and a sealed session, the AES key known from the unsealed open.
            s = await c.opm_sign(tk.RND, to_key="rsa2048", status_seq=9)
            o = await c.opm_open("rsa2048", s.signature, tk.RND)
            sl = await c.opm_open("rsa2048", s.signature, tk.RND, seal=True)
            assert o[1:] == s[1:] and sl[1:] == (tk.RND, 9, s.command_seq)
            tags = await asyncio.gather(*(c.session_mac(sl.session, bytes([i]) * i)
                                          for i in range(20)))
            assert tags == [tk.aes_cmac(o.aes_key, bytes([i]) * i) for i in range(20)]
            tag = tk.aes_cmac(o.aes_key, tk.opm_status(9))
            assert await c.session_verify(sl.session, tk.opm_status(9), tag, "status") == \
                (10, s.command_seq)
            await araises("BAD_SEQUENCE", c.session_verify(sl.session, tk.opm_status(9), tag,
                                                           "status"))
            await c.session_close(sl.session)
            await araises("UNKNOWN_SESSION", c.session_close(sl.session))
            assert (await c.stats()).sessions == 0
        assert not c.connected
        await araises("ERR_IO", c.info(), message="^not connected to the daemon$")
        await c.connect(D.socket)
        assert (await c.info()).key_count == 5
        await c.close()
        saved = os.environ.get("KEYTRANS_SOCKET")
        os.environ["KEYTRANS_SOCKET"] = D.socket
        try:
            c = await aio.connect(timeout=None)
            assert c.timeout is None and (await c.info()).key_count == 5
            await c.close()
        finally:
            if saved is None:
                del os.environ["KEYTRANS_SOCKET"]
            else:
                os.environ["KEYTRANS_SOCKET"] = saved
    run(t)


def test_many_requests_on_one_connection():
    """Every vector line four times, wraps and their unwraps, all awaited at once on one
    connection: each answer is the one of its own request."""
    lines = read_vector_lines("simpleblob.txt")

    async def t():
        async with await aio.connect(D.socket, timeout=120) as c:
            calls = [c.unwrap(name, tk.unhex(blob), oaep=tk.PAD[pad], strict=bool(n % 2))
                     for n, (name, pad, alg, key, blob) in enumerate(lines * 4)]
            want = [(int(alg, 16), tk.unhex(key)) for name, pad, alg, key, blob in lines * 4]
            tasks = [asyncio.ensure_future(x) for x in calls]
            await asyncio.sleep(0)
            assert c.in_flight == len(tasks), c.in_flight     # all sent, none answered yet
            assert await asyncio.gather(*tasks) == want
            assert c.in_flight == 0
            algs = sorted(tk.ALGS)
            try:
                wraps = await asyncio.gather(*(
                    c.wrap(algs[n % len(algs)], to_key=("rsa1024", "rsa2048")[n % 2],
                           oaep=n % 3 == 0) for n in range(300)))
            except keytrans.Timeout:
                # Whose requests are these: still in the daemon, or never read by it?
                with keytrans.connect(D.socket) as kt:
                    print("in flight here: %d; the daemon's pools: %s" % (
                        c.in_flight, kt.stats().pools), file=sys.stderr)
                raise
            back = await asyncio.gather(*(
                c.unwrap(("rsa1024", "rsa2048")[n % 2], w.blob, oaep=n % 3 == 0)
                for n, w in enumerate(wraps)))
            assert [b.key for b in back] == [w.key for w in wraps]
            assert [b.alg_id for b in back] == [algs[n % len(algs)] for n in range(300)]
            assert len({w.key for w in wraps}) == 300
            # Answers and errors mixed, in any order: each call gets its own.
            got = await asyncio.gather(c.info(), c.unwrap("nosuch", b"\x01"), c.keys(),
                                       c.unwrap("rsa2048", tk.ZERO_BLOB, strict=True),
                                       c.pubkey("rsa4096"), return_exceptions=True)
            assert got[0].key_count == 5 and len(got[2]) == 5 and got[4] == tk.pub("rsa4096")
            assert type(got[1]) is keytrans.UnknownKey and type(got[3]) is keytrans.UnwrapFailed
    run(t)


def test_pipelined_against_fakes():
    async def t():
        # Answers to requests that arrived together come last first.
        async with await aio.connect(FAKES["reverse"]) as c:
            blobs = [bytes([i]) for i in range(1, 61)]
            got = await asyncio.gather(*(c.unwrap("x", b) for b in blobs))
            assert [g.key for g in got] == [fake_key(b) for b in blobs]
        # The first request is answered only when a second one arrives: a client that
        # waited for the first answer before sending the second would time out.
        async with await aio.connect(FAKES["late"], timeout=5) as c:
            first, second = await asyncio.gather(c.unwrap("x", b"\x01"), c.info())
            assert first.key == fake_key(b"\x01") and second.version == "fake"
        async with await aio.connect(FAKES["mixed_bad"]) as c:
            got = await asyncio.gather(*(c.unwrap("a", bytes([i])) for i in (1, 2, 3, 4)),
                                       return_exceptions=True)
            assert isinstance(got[0], keytrans.SessionKey)
            assert isinstance(got[3], keytrans.SessionKey)
            assert type(got[1]) is keytrans.ProtocolError and "0x1234" in got[1].message
            assert type(got[2]) is keytrans.UnwrapFailed
            assert c.connected
    run(t)


def test_an_error_of_every_family():
    """Each family's class, raised by a real daemon where it can make the status, else by
    a fake daemon; all instances of KeytransError as well."""
    async def t():
        seen = set()

        async def check(code, aw, family, message=None):
            e = await araises(code, aw, message)
            assert isinstance(e, family) and isinstance(e, KeytransError), (e, family)
            seen.add(family)

        async with await aio.connect(D.socket) as c:
            to = {"to_key": "rsa2048"}
            await asyncio.gather(
                check("UNKNOWN_KEY", c.unwrap("nosuch", b"\x01"), keytrans.UnknownKey,
                      'no key named "nosuch"'),
                check("BLOB_LENGTH", c.unwrap("rsa4096", tk.ZERO_BLOB), keytrans.BadBlob),
                check("BLOB_RANGE", c.copp_open("rsa2048", b"\xff" * 256), keytrans.BadBlob),
                check("UNWRAP_FAILED", c.unwrap("rsa2048", tk.ZERO_BLOB, strict=True),
                      keytrans.UnwrapFailed, "does not decrypt"),
                check("RANDOM_MISMATCH", c.copp_open("rsa2048", bytes(256), tk.RND),
                      keytrans.UnwrapFailed),
                check("BAD_PUBLIC_KEY", c.wrap("AES_128", to_pub=b"not a key"), keytrans.BadKey),
                check("KEY_SIZE", c.copp_sign(tk.RND, to_key="rsa1024"), keytrans.BadKey),
                check("KEY_LENGTH", c.wrap("AES_128", key=bytes(15), **to), keytrans.BadRequest),
                check("BAD_REQUEST", c.wrap("AES_128", bits=128, **to), keytrans.BadRequest,
                      "KEY_BITS"),
                check("ERR_ARG", c.unwrap("", tk.ZERO_BLOB), keytrans.InvalidArgument,
                      "^key name must be 1 to 64 bytes$"),
                check("ERR_ARG", c.wrap("AES_128"), keytrans.InvalidArgument, "exactly one"),
                check("UNKNOWN_SESSION", c.session_mac(bytes(16), b""), keytrans.UnknownSession))
            sig = (await c.opm_sign(tk.RND, **to)).signature
            sl = await c.opm_open("rsa2048", sig, seal=True)
            await check("OMAC_MISMATCH", c.session_verify(sl.session, b"x", bytes(16)),
                        keytrans.VerifyFailed)
            await c.session_close(sl.session)
            assert (await c.info()).key_count == 5      # the connection is still fine
            e = await araises("ERR_ARG", c.unwrap("rsa2048", None), message="bytes")
            assert isinstance(e, ValueError)
        for scenario, code, family in (
                ("hsm_error", "HSM_ERROR", keytrans.HsmUnavailable),
                ("hsm_unavailable", "HSM_UNAVAILABLE", keytrans.HsmUnavailable),
                ("busy_no_message", "BUSY", keytrans.Busy),
                ("shutting_down", "SHUTTING_DOWN", keytrans.Busy),
                ("timeout_status", "TIMEOUT", keytrans.Busy),
                ("internal_empty_message", "INTERNAL", keytrans.InternalError),
                ("utf8_message", "DENIED", keytrans.Denied),
                ("not_supported", "NOT_SUPPORTED", keytrans.NotSupported),
                ("session_limit", "SESSION_LIMIT", keytrans.SessionLimit),
                ("version2", "ERR_PROTOCOL", keytrans.ProtocolError),
                ("bad_frame", "BAD_FRAME", keytrans.ProtocolError),
                ("closing", "ERR_IO", keytrans.ConnectionLost)):
            async with await aio.connect(FAKES[scenario], timeout=5) as c:
                await check(code, c.info(), family)
        missing = os.path.join(ROOT, "missing.sock")
        await check("ERR_CONNECT", aio.connect(missing), keytrans.ConnectError,
                    "^%s: No such file or directory$" % missing)
        await check("ERR_CONNECT", aio.connect(os.path.join(ROOT, "x" * 120)),
                    keytrans.ConnectError, "socket path too long$")
        async with await aio.connect(FAKES["silent"], timeout=0.2) as c:
            await check("ERR_TIMEOUT", c.info(), keytrans.Timeout,
                        "^no answer from the daemon within 200 ms$")
        assert seen == set(keytrans.FAMILIES) - {keytrans.OutOfMemory}, \
            set(keytrans.FAMILIES) - seen
    run(t)


def test_denied_as_another_user():
    if os.geteuid() != 0:
        print("  (skipped: needs root to play another user)")
        return

    def other(path):
        async def t():
            async with await aio.connect(path) as c:
                try:
                    await c.unwrap("rsa2048", tk.ZERO_BLOB)
                except keytrans.Denied as e:
                    return (type(e).__name__, e.code, isinstance(e, KeytransError))
                return "no error"
        return run(t)

    _, out = as_user(other, D.socket, uid=tk.OTHER_UID, gid=tk.OTHER_UID)
    assert out == ("Denied", keytrans.DENIED, True), out


def test_timeouts_and_late_answers():
    async def t():
        # A call that timed out leaves the connection usable; its late answer is dropped.
        async with await aio.connect(FAKES["late"], timeout=0.15) as c:
            start = time.monotonic()
            e = await araises("ERR_TIMEOUT", c.unwrap("x", b"\x01"))
            assert isinstance(e, TimeoutError) and 0.1 < time.monotonic() - start < 5
            assert c.connected
            assert (await c.unwrap("x", b"\x02")).key == fake_key(b"\x02")
            assert (await c.info()).version == "fake"
        # A cancelled call as well.
        async with await aio.connect(FAKES["late"], timeout=5) as c:
            task = asyncio.ensure_future(c.unwrap("x", b"\x01"))
            await asyncio.sleep(0.05)
            task.cancel()
            try:
                await task
                raise AssertionError("not cancelled")
            except asyncio.CancelledError:
                pass
            assert c.connected and c.in_flight == 0
            assert (await c.unwrap("x", b"\x03")).key == fake_key(b"\x03")
        # Closing fails what is in flight.
        c = await aio.connect(FAKES["silent"], timeout=5)
        task = asyncio.ensure_future(c.info())
        await asyncio.sleep(0.05)
        await c.close()
        await araises("ERR_IO", task, message="^connection closed$")
        # A full listen backlog: connect() times out.
        backlog, held = full_backlog(os.path.join(ROOT, "backlog.sock"))
        try:
            e = await araises("ERR_TIMEOUT", aio.connect(backlog.path, timeout=0.2),
                              message="Resource temporarily unavailable$")
            assert isinstance(e, TimeoutError)
        finally:
            for s in held:
                s.close()
            backlog.close()
        # Connected again and sent once more: closed again, so ERR_IO.
        async with await aio.connect(FAKES["closing"]) as c:
            await araises("ERR_IO", c.info(), message="^the daemon closed the connection$")
            assert not c.connected
            c.reconnect = False
            await araises("ERR_IO", c.info(), message="^not connected to the daemon$")
    run(t)


def test_malformed_answers():
    """test_keytrans.py's cases, through the asyncio client."""
    async def t():
        for scenario, call, code, message in tk.PROTOCOL_ERRORS:
            async with await aio.connect(FAKES[scenario], timeout=5) as c:
                e = await araises(code, tk.CALLS[call](c), message=message)
                closes = scenario in ("version2", "wrong_id", "too_large", "too_small")
                assert c.connected != closes, (scenario, c.connected)
                if c.connected and e.code != keytrans.ERR_PROTOCOL:
                    await araises(code, tk.CALLS[call](c))
        # Each request answered twice: the second answer to the first request ends the
        # connection, failing the second request.
        async with await aio.connect(FAKES["twice"]) as c:
            first, second = await asyncio.gather(c.info(), c.info(), return_exceptions=True)
            assert first.version == "fake", first
            assert type(second) is keytrans.ProtocolError, second
            assert re.search("to unknown request id 1$", second.message), second
    run(t)


def test_batch():
    async def t():
        async with await aio.connect(D.socket) as c:
            r = await c.batch([
                Op("unwrap", "rsa2048", tk.ZERO_BLOB),
                Op("unwrap", "rsa2048", tk.ZERO_BLOB, strict=True),
                Op("unwrap", "", b"\x01"),
                Op("wrap", "AES_128", to_key="rsa2048"),
                ("pubkey", "rsa4096"),
                Op("nonsense"),
                "not an op",
            ], depth=2)
            assert r.error is None
            names = [x.name if isinstance(x, KeytransError) else "OK" for x in r]
            assert names == ["OK", "UNWRAP_FAILED", "ERR_ARG", "OK", "OK", "ERR_ARG", "ERR_ARG"]
            assert r[0] == await c.unwrap("rsa2048", tk.ZERO_BLOB)
            assert (await c.unwrap("rsa2048", r[3].blob)).key == r[3].key
            assert r[4] == tk.pub("rsa4096") and await c.batch([]) == []
            await araises("ERR_ARG", c.batch([], -1))
        async with await aio.connect(FAKES["silent"], timeout=0.15) as c:
            r = await c.batch([Op("info")] * 4, depth=2)
            assert [x.name for x in r] == ["ERR_TIMEOUT"] * 4
            assert r.error.code == keytrans.ERR_TIMEOUT
        c = aio.Connection()
        r = await c.batch([("info",), ("keys",)])
        assert [x.code for x in r] == [keytrans.ERR_IO] * 2 and r.error.code == keytrans.ERR_IO
    run(t)


def main():
    global D, ROOT
    with Workspace() as root:
        os.chmod(root, 0o755)       # another user's child reaches the socket
        ROOT = root
        D = Daemon(root, keys=tk.KEYS_HERE, extra_daemon="socket_mode = 0666")
        fakes = []
        try:
            for name, handler in list(SCENARIOS.items()) + list(EXTRA_FAKES.items()):
                path = os.path.join(root, "f-%s.sock" % name)
                fakes.append(FakeDaemon(path, handler))
                FAKES[name] = path
            tk.D, tk.ROOT, tk.FAKES = D, ROOT, FAKES
            run_tests([test_connect_and_operations, test_many_requests_on_one_connection,
                       test_pipelined_against_fakes, test_an_error_of_every_family,
                       test_denied_as_another_user, test_timeouts_and_late_answers,
                       test_malformed_answers, test_batch])
        finally:
            for f in fakes:
                f.close()
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
