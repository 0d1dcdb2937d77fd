"""The asyncio client: the blocking client's operations, argument checks and answer checks,
with any number of requests in flight on one connection, their answers matched by request id.

    import keytrans.aio
    async with await keytrans.aio.connect() as kt:      # $KEYTRANS_SOCKET, else the default
        keys = await asyncio.gather(*(kt.unwrap("exchange1", b) for b in blobs))

Errors are the same KeytransError classes. The time limit (timeout, seconds) is for each call:
sending it and waiting for its answer. A call whose caller gives up (a timeout, or its task
cancelled) leaves the connection usable; its late answer is dropped. Like the blocking client,
a call that finds the connection closed by the daemon connects again first, and one that
failed because the connection was lost (ERR_IO) or the daemon is stopping (SHUTTING_DOWN) is
sent once more on a new connection within its time limit (not keygen, import_key, a sealed
open, session_close, and a session_verify that checks a sequence number);
reconnect = False turns both off. A Connection belongs to one event loop."""
import asyncio
import struct
from typing import (Any, Callable, Dict, Iterable, List, Literal, Optional, Set, Tuple, Type,
                    TypeVar, Union, overload)
from types import TracebackType

from . import status as st
from .answers import Decoder, decode_answer, refusal_message
from .client import (DEFAULT_DEPTH, DEFAULT_TIMEOUT, TimeLimited, batch_depth, open_socket,
                     socket_path, timeout_ms)
from .errors import KeytransError
from .requests import (LOCAL_REFUSALS, BatchResults, Request, build, req_copp_open,
                       req_copp_sign, req_import, req_info, req_keygen, req_keys, req_opm_open,
                       req_opm_sign, req_pubkey, req_session_close, req_session_mac,
                       req_session_verify, req_stats, req_unwrap, req_wrap)
from .results import Copp, Info, Key, NewKey, Sealed, SessionKey, SessionSeq, Stats, Wrapped
from .wire import HEADER, OPS, VERSION, frame_length_error, request_frame

R = TypeVar("R")
# An answered request: (True, result) or (False, the error its status or body makes). A
# failure of the connection is set as the future's exception instead.
_Outcome = Tuple[bool, Any]


class _Pending:
    __slots__ = ("op", "decode", "future")

    def __init__(self, op: int, decode: Decoder[Any], future: "asyncio.Future[_Outcome]") -> None:
        self.op, self.decode, self.future = op, decode, future


class Connection(TimeLimited):
    """One connection to keytransd for asyncio; made by connect() (or Connection() then
    await connect()). timeout: seconds for each call; None or 0 waits forever."""

    def __init__(self, timeout: Optional[float] = DEFAULT_TIMEOUT) -> None:
        self._timeout_ms = timeout_ms(timeout)
        self.reconnect = True
        self._path: Optional[str] = None
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._read_task: Optional["asyncio.Task[None]"] = None
        self._pending: Dict[int, _Pending] = {}
        self._abandoned: Set[int] = set()      # ids whose late answers are dropped
        self._next_id = 1
        self._gen = 0                          # counts connections, so stale ones are ignored
        self._write_lock: Optional[asyncio.Lock] = None
        self._open_lock: Optional[asyncio.Lock] = None

    # -- setup --

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (nor given up)."""
        return len(self._pending)

    async def connect(self, path: Optional[str] = None) -> None:
        """(Re)connects, closing first; raises ERR_CONNECT, or ERR_TIMEOUT (full backlog)."""
        await self.close()
        p = socket_path(path)
        await self._open(p)
        self._path = p

    async def _open(self, p: str) -> None:
        self._drop(KeytransError(st.ERR_IO, "connection closed"))
        loop = asyncio.get_running_loop()
        # libkeytrans' connect (bounded by the time limit), in a thread: a full backlog
        # blocks it, and the loop must not be.
        sock = await loop.run_in_executor(None, open_socket, p, self._timeout_ms)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except OSError as e:
            sock.close()
            raise KeytransError(st.ERR_CONNECT, "%s: %s" % (p, e.strerror or e)) from None
        self._gen += 1
        self._reader, self._writer = reader, writer
        self._read_task = asyncio.ensure_future(self._read_loop(reader, self._gen))

    async def close(self) -> None:
        """Closes the connection; requests in flight fail with ERR_IO. No reconnecting
        after it."""
        self._path = None
        writer = self._writer
        self._drop(KeytransError(st.ERR_IO, "connection closed"))
        if writer is not None:
            try:
                await writer.wait_closed()
            except OSError:
                pass

    def _drop(self, err: KeytransError) -> None:
        """Closes the socket, stops its reader and fails what is in flight with err."""
        if self._read_task is not None and self._read_task is not _current_task():
            self._read_task.cancel()
        self._read_task = None
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        pending, self._pending = self._pending, {}
        self._abandoned = set()
        for e in pending.values():
            if not e.future.done():
                e.future.set_exception(err)

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, typ: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()

    # -- operations (as keytrans.Connection's) --

    async def info(self) -> Info:
        """Info(version, token_label, key_count, worker_count, uptime, notice, hsms)."""
        return await self._call(req_info)

    async def stats(self) -> Stats:
        """The daemon's counters since it started (keytrans.Stats)."""
        return await self._call(req_stats)

    async def keys(self) -> List[Key]:
        """[Key(name, label, id, bits, exponent, mechanism, notice)] for the keys this peer
        may use."""
        return await self._call(req_keys)

    async def pubkey(self, name: Union[str, bytes], format: Union[str, int] = "blob") -> bytes:
        """The key's public half as bytes: "blob" (PUBLICKEYBLOB), "pem" or "der" (SPKI), or
        "cng" (BCRYPT_RSAPUBLIC_BLOB)."""
        return await self._call(req_pubkey, name, format)

    async def unwrap(self, name: Union[str, bytes], blob: Union[bytes, bytearray, memoryview],
                     oaep: bool = False, strict: bool = False) -> SessionKey:
        """SessionKey(alg_id, key) from a SIMPLEBLOB (strict: UNWRAP_FAILED instead of
        implicit rejection)."""
        return await self._call(req_unwrap, name, blob, oaep, strict)

    async def wrap(self, alg: Union[str, int], key: Optional[bytes] = None,
                   bits: Optional[int] = None, to_key: Optional[Union[str, bytes]] = None,
                   to_pub: Optional[bytes] = None, oaep: bool = False) -> Wrapped:
        """Wrapped(blob, key): key (or a generated one) under to_key or to_pub."""
        return await self._call(req_wrap, alg, key, bits, to_key, to_pub, oaep)

    async def copp_sign(self, random: bytes, to_key: Optional[Union[str, bytes]] = None,
                        to_pub: Optional[bytes] = None, aes_key: Optional[bytes] = None,
                        status_seq: Optional[int] = None,
                        command_seq: Optional[int] = None) -> Copp:
        """Copp(signature, random, aes_key, status_seq, command_seq) for a COPP session."""
        return await self._call(req_copp_sign, random, to_key, to_pub, aes_key, status_seq,
                                command_seq)

    @overload
    async def copp_open(self, name: Union[str, bytes], signature: bytes,
                        expect_random: Optional[bytes] = None, strict: bool = False,
                        seal: Literal[False] = False) -> Copp: ...

    @overload
    async def copp_open(self, name: Union[str, bytes], signature: bytes,
                        expect_random: Optional[bytes] = None, strict: bool = False, *,
                        seal: Literal[True]) -> Sealed: ...

    async def copp_open(self, name: Union[str, bytes], signature: bytes,
                        expect_random: Optional[bytes] = None, strict: bool = False,
                        seal: bool = False) -> Union[Copp, Sealed]:
        """Copp(None, random, aes_key, status_seq, command_seq) from a 256-byte signature;
        seal: Sealed(session, random, status_seq, command_seq), the AES key kept in the
        daemon."""
        result: Union[Copp, Sealed] = await self._call(
            req_copp_open, name, signature, expect_random, strict, seal, retry=not seal)
        return result

    async def opm_sign(self, random: bytes, to_key: Optional[Union[str, bytes]] = None,
                       to_pub: Optional[bytes] = None, aes_key: Optional[bytes] = None,
                       status_seq: Optional[int] = None,
                       command_seq: Optional[int] = None) -> Copp:
        """Copp(signature, ...) for an OPM session (RSAES-OAEP with SHA-512)."""
        return await self._call(req_opm_sign, random, to_key, to_pub, aes_key, status_seq,
                                command_seq)

    @overload
    async def opm_open(self, name: Union[str, bytes], signature: bytes,
                       expect_random: Optional[bytes] = None,
                       seal: Literal[False] = False) -> Copp: ...

    @overload
    async def opm_open(self, name: Union[str, bytes], signature: bytes,
                       expect_random: Optional[bytes] = None, *,
                       seal: Literal[True]) -> Sealed: ...

    async def opm_open(self, name: Union[str, bytes], signature: bytes,
                       expect_random: Optional[bytes] = None,
                       seal: bool = False) -> Union[Copp, Sealed]:
        """As copp_open() for OPM's encrypted initialization parameters."""
        result: Union[Copp, Sealed] = await self._call(
            req_opm_open, name, signature, expect_random, seal, retry=not seal)
        return result

    async def session_mac(self, session: bytes, data: bytes) -> bytes:
        """The OMAC-1 (AES-CMAC) of data under a sealed session's AES key."""
        return await self._call(req_session_mac, session, data)

    async def session_verify(self, session: bytes, data: bytes, omac: Optional[bytes] = None,
                             kind: Optional[str] = None) -> SessionSeq:
        """SessionSeq(next_status_seq, next_command_seq), or VerifyFailed (as
        keytrans.Connection.session_verify)."""
        return await self._call(req_session_verify, session, data, omac, kind,
                                retry=kind is None or kind == "none")

    async def session_close(self, session: bytes) -> None:
        """Wipes a sealed session's AES key in the daemon."""
        await self._call(req_session_close, session, retry=False)

    async def keygen(self, name: Union[str, bytes], bits: Optional[int] = None,
                     exponent: Optional[int] = None) -> NewKey:
        """NewKey: an RSA key pair generated inside the HSM ([daemon] admin peers only)."""
        return await self._call(req_keygen, name, bits, exponent, retry=False)

    async def import_key(self, name: Union[str, bytes], key: bytes) -> NewKey:
        """NewKey: an RSA private key put into the HSM ([daemon] admin peers only)."""
        return await self._call(req_import, name, key, retry=False)

    async def batch(self, ops: Iterable[Any],
                    depth: Optional[int] = DEFAULT_DEPTH) -> BatchResults:
        """Runs ops (Op objects or tuples (name, args...)), up to depth (0: 32) in flight.
        Returns one entry per op, in order: its result or its KeytransError (not raised).
        A failure of the connection or a timeout stops the batch: the ops not yet sent
        carry that error, also in the list's .error (None when the batch ran to its end)."""
        items = list(ops)
        depth = batch_depth(depth)
        results = BatchResults([None] * len(items))
        slots = asyncio.Semaphore(depth)

        async def one(i: int) -> None:
            async with slots:
                if results.error is not None:
                    results[i] = results.error
                    return
                try:
                    ok, value = await self._exchange(self._deadline(), build, items[i])
                    results[i] = value
                except KeytransError as err:
                    results[i] = err
                    if err.code not in LOCAL_REFUSALS and results.error is None:
                        results.error = err

        await asyncio.gather(*(one(i) for i in range(len(items))))
        return results

    # -- machinery --

    def _deadline(self) -> Optional[float]:
        if self._timeout_ms == 0:
            return None
        return asyncio.get_running_loop().time() + self._timeout_ms / 1000.0

    def _remaining(self, deadline: Optional[float]) -> Optional[float]:
        if deadline is None:
            return None
        return max(0.0, deadline - asyncio.get_running_loop().time())

    def _timed_out(self) -> KeytransError:
        return KeytransError(st.ERR_TIMEOUT, "no answer from the daemon within %d ms"
                             % self._timeout_ms)

    async def _call(self, make: Callable[..., Request[R]], *args: Any, retry: bool = True) -> R:
        deadline = self._deadline()      # one limit for sending, waiting and a retry
        for attempt in (0, 1):
            await self._ensure()
            gen = self._gen
            try:
                ok, value = await self._exchange(deadline, make, *args)
            except KeytransError as e:
                if attempt or not retry or not self._may_retry(e.code) or \
                        self._remaining(deadline) == 0.0:
                    raise
                await self._reopen(gen)
                continue
            if ok:
                result: R = value
                return result
            if attempt or not retry or not self._may_retry(value.code) or \
                    self._remaining(deadline) == 0.0:
                raise value
            await self._reopen(gen)
        raise AssertionError("unreachable")

    def _may_retry(self, code: int) -> bool:
        return self.reconnect and self._path is not None and \
            code in (st.ERR_IO, st.SHUTTING_DOWN)

    def _locks(self) -> Tuple[asyncio.Lock, asyncio.Lock]:
        # Made in the loop that uses them (Python 3.9's Lock binds a loop when made).
        if self._write_lock is None or self._open_lock is None:
            self._write_lock, self._open_lock = asyncio.Lock(), asyncio.Lock()
        return self._write_lock, self._open_lock

    async def _ensure(self) -> None:
        """Connects again when the daemon closed the connection (reconnect)."""
        if self._writer is None and self.reconnect and self._path is not None:
            await self._reopen(self._gen)

    async def _reopen(self, gen: int) -> None:
        """A new connection in place of connection gen, unless another call made one."""
        _, open_lock = self._locks()
        async with open_lock:
            if self._gen == gen and self._path is not None:
                await self._open(self._path)

    def _new_id(self) -> int:
        while True:
            rid = self._next_id
            self._next_id = (self._next_id + 1) & 0xffffffff or 1     # 0 is never an id
            if rid not in self._pending and rid not in self._abandoned:
                return rid

    async def _exchange(self, deadline: Optional[float], make: Callable[..., Request[Any]],
                        *args: Any) -> _Outcome:
        """Sends one request and waits for its answer: (ok, result or the answer's error).
        Raises what fails the connection, or ERR_TIMEOUT."""
        if self._writer is None:
            raise KeytransError(st.ERR_IO, "not connected to the daemon")
        op, fields, decode = make(*args)
        rid = self._new_id()
        future: "asyncio.Future[_Outcome]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(op, decode, future)
        try:
            await asyncio.wait_for(self._send(request_frame(op, rid, fields)),
                                   self._remaining(deadline))
            return await asyncio.wait_for(asyncio.shield(future), self._remaining(deadline))
        except asyncio.TimeoutError:
            raise self._timed_out() from None
        finally:
            self._abandon(rid, future)

    def _abandon(self, rid: int, future: "asyncio.Future[_Outcome]") -> None:
        """The caller is done with rid: an answer still to come will be dropped."""
        e = self._pending.get(rid)
        if e is not None and e.future is future:
            del self._pending[rid]
            self._abandoned.add(rid)
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()      # seen: the caller already has its outcome or error

    async def _send(self, frame: bytes) -> None:
        write_lock, _ = self._locks()
        async with write_lock:      # one drain() at a time (Python < 3.10 allows no more)
            writer = self._writer
            if writer is None:
                raise KeytransError(st.ERR_IO, "not connected to the daemon")
            try:
                writer.write(frame)
                await writer.drain()
            except OSError as e:
                # The reader reports why the daemon closed (a BUSY refusal), if it said.
                raise KeytransError(st.ERR_IO, "send: %s" % (e.strerror or e)) from None

    async def _read_loop(self, reader: asyncio.StreamReader, gen: int) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                n: int = struct.unpack(">I", head)[0]
                why = frame_length_error(n)
                if why is not None:
                    raise KeytransError(st.ERR_PROTOCOL, why)
                self._process(head + await reader.readexactly(n))
        except asyncio.IncompleteReadError:
            err = KeytransError(st.ERR_IO, "the daemon closed the connection")
        except KeytransError as e:
            err = e
        except OSError as e:
            err = KeytransError(st.ERR_IO, "receive: %s" % (e.strerror or e))
        if gen == self._gen:
            self._drop(err)

    def _process(self, raw: bytes) -> None:
        """One answer: its request's future gets the outcome. Raises what ends the
        connection."""
        _, version, op, status, rid = HEADER.unpack_from(raw, 0)
        if version != VERSION:
            raise KeytransError(st.ERR_PROTOCOL, "response has protocol version %d, expected %d"
                                % (version, VERSION))
        if op == 0 and status != st.OK:
            # An answer to no request: the daemon refused the connection and closes it.
            raise KeytransError(status, refusal_message(status, raw[12:]))
        if rid in self._abandoned:
            self._abandoned.discard(rid)
            return
        e = self._pending.pop(rid, None)
        if e is None:
            raise KeytransError(st.ERR_PROTOCOL, "response (%s, status %s) to unknown request "
                                "id %d" % (OPS.get(op, "unknown"), st.status_name(status), rid))
        try:
            outcome: _Outcome = (True, decode_answer(e.op, e.decode, op, status, raw[12:]))
        except KeytransError as err:
            outcome = (False, err)
        if not e.future.done():
            e.future.set_result(outcome)


def _current_task() -> "Optional[asyncio.Task[Any]]":
    try:
        return asyncio.current_task()
    except RuntimeError:        # no running loop
        return None


async def connect(path: Optional[str] = None,
                  timeout: Optional[float] = DEFAULT_TIMEOUT) -> Connection:
    """A Connection to path (None: $KEYTRANS_SOCKET, else DEFAULT_SOCKET):
    `async with await keytrans.aio.connect() as kt:`."""
    c = Connection(timeout)
    await c.connect(path)
    return c
