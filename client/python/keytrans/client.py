"""The blocking client: Connection, one connection to keytransd for one thread at a time,
pipelined batch() included (client/lib: batch.c, receive.c, transport.c, pending.c)."""
import math
import os
import select
import socket
import struct
import time
from typing import (Any, Callable, Dict, Iterable, List, Literal, Optional, Set, Type, TypeVar,
                    Union, overload)
from types import TracebackType

from . import status as st
from .answers import Decoder, decode_answer, refusal_message
from .errors import KeytransError
from .requests import (LOCAL_REFUSALS, BatchResults, Request, build, req_copp_open,
                       req_copp_sign, req_import, req_info, req_keygen, req_keys, req_opm_open,
                       req_opm_sign, req_pubkey, req_session_close, req_session_mac,
                       req_session_verify, req_stats, req_unwrap, req_wrap)
from .checks import arg_error
from .results import Copp, Info, Key, NewKey, Sealed, SessionKey, SessionSeq, Stats, Wrapped
from .wire import FRAME_MAX, HEADER, OPS, VERSION, frame_length_error, request_frame

R = TypeVar("R")

DEFAULT_SOCKET = "/run/keytransd/keytransd.sock"
DEFAULT_TIMEOUT = 30.0          # seconds, for each call (batch: for each wait)
DEFAULT_DEPTH = 32              # requests in flight in batch()

_WAITING, _DONE, _ABANDONED = range(3)


def socket_path(path: Optional[str]) -> str:
    """path, else $KEYTRANS_SOCKET, else DEFAULT_SOCKET."""
    if path:
        return path
    return os.environ.get("KEYTRANS_SOCKET") or DEFAULT_SOCKET


def batch_depth(depth: Optional[int]) -> int:
    """batch()'s requests in flight: None or 0 is DEFAULT_DEPTH; else a positive integer."""
    if depth is None or depth == 0:
        return DEFAULT_DEPTH
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise arg_error("depth must be a positive integer")
    return depth


def timeout_ms(seconds: Optional[float]) -> int:
    """A time limit in whole milliseconds; 0 for none (None or <= 0 seconds)."""
    if seconds is None or seconds <= 0:
        return 0
    return max(1, int(round(seconds * 1000)))


class TimeLimited:
    """The time limit for each call that both connections keep (0 ms: none)."""

    _timeout_ms: int = 0

    @property
    def timeout(self) -> Optional[float]:
        return None if self._timeout_ms == 0 else self._timeout_ms / 1000.0

    @timeout.setter
    def timeout(self, seconds: Optional[float]) -> None:
        self._timeout_ms = timeout_ms(seconds)


def open_socket(p: str, ms: int) -> socket.socket:
    """A non-blocking socket connected to p, as libkeytrans connects: a blocking connect()
    bounded by SO_SNDTIMEO (ms, 0: none). ERR_CONNECT, or ERR_TIMEOUT (a full backlog)."""
    raw = os.fsencode(p)
    if len(raw) >= 108:
        raise KeytransError(st.ERR_CONNECT, "%s: socket path too long" % p)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(True)         # whatever socket.setdefaulttimeout() says
    except OSError as e:
        raise KeytransError(st.ERR_CONNECT, "socket: %s" % e.strerror) from None
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                     struct.pack("@ll", ms // 1000, (ms % 1000) * 1000))
        s.connect(raw)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("@ll", 0, 0))
        s.setblocking(False)
    except OSError as e:
        s.close()
        code = st.ERR_TIMEOUT if isinstance(e, BlockingIOError) else st.ERR_CONNECT
        raise KeytransError(code, "%s: %s" % (p, e.strerror or e)) from None
    return s


class _Pending:
    __slots__ = ("id", "op", "decode", "state", "seq", "result", "error")

    def __init__(self, rid: int, op: int, decode: Decoder[Any]) -> None:
        self.id, self.op, self.decode = rid, op, decode
        self.state, self.seq = _WAITING, 0
        self.result: Any = None
        self.error: Optional[KeytransError] = None


class Connection(TimeLimited):
    """One connection to keytransd. timeout: seconds for each call (batch: for each wait);
    None or 0 waits forever. path None: $KEYTRANS_SOCKET, else DEFAULT_SOCKET."""

    def __init__(self, path: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 connect: bool = True) -> None:
        self._sock: Optional[socket.socket] = None
        self._path: Optional[str] = None    # the socket of the last connect(); None once closed
        self.reconnect = True               # as kt_set_reconnect: see _run
        self._rx = bytearray()
        self._pending: Dict[int, _Pending] = {}
        self._next_id = 1
        self._done_seq = 0
        self._timeout_ms = timeout_ms(timeout)
        if connect:
            self.connect(path)

    # -- setup --

    def set_timeout(self, seconds: Optional[float]) -> None:
        """The limit for each call, in seconds; None or 0 waits forever."""
        self.timeout = seconds

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self, path: Optional[str] = None) -> None:
        """(Re)connects, closing first; raises ERR_CONNECT, or ERR_TIMEOUT (full backlog)."""
        self.close()
        p = socket_path(path)
        self._open(p)
        self._path = p

    def _open(self, p: str) -> None:
        self._drop()
        self._sock = open_socket(p, self._timeout_ms)

    def close(self) -> None:
        """Closes the socket; requests still in flight are forgotten. No reconnecting
        after it."""
        self._path = None
        self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._fail_all(KeytransError(st.ERR_IO, "connection closed"))
        self._rx = bytearray()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, typ: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- operations --

    def info(self) -> Info:
        """Info(version, token_label, key_count, worker_count, uptime, notice, hsms)."""
        return self._run(req_info)

    def stats(self) -> Stats:
        """Stats(uptime, connections, accepted, refused, bounds_us, ops, pools, hsms,
        recipient_hits, recipient_misses, recipients, sessions, sessions_opened,
        sessions_expired): the daemon's counters since it started (anyone who may call
        info() may call it)."""
        return self._run(req_stats)

    def keys(self) -> List[Key]:
        """[Key(name, label, id, bits, exponent, mechanism, notice)] for the keys this peer
        may use."""
        return self._run(req_keys)

    def pubkey(self, name: Union[str, bytes], format: Union[str, int] = "blob") -> bytes:
        """The key's public half as bytes: "blob" (PUBLICKEYBLOB), "pem" or "der" (SPKI), or
        "cng" (BCRYPT_RSAPUBLIC_BLOB)."""
        return self._run(req_pubkey, name, format)

    def unwrap(self, name: Union[str, bytes], blob: Union[bytes, bytearray, memoryview],
               oaep: bool = False, strict: bool = False) -> SessionKey:
        """SessionKey(alg_id, key) from a SIMPLEBLOB. strict: UNWRAP_FAILED instead of
        implicit rejection (only where the outcome reaches no other party)."""
        return self._run(req_unwrap, name, blob, oaep, strict)

    def wrap(self, alg: Union[str, int], key: Optional[bytes] = None, bits: Optional[int] = None,
             to_key: Optional[Union[str, bytes]] = None, to_pub: Optional[bytes] = None,
             oaep: bool = False) -> Wrapped:
        """Wrapped(blob, key): key (or a generated one; bits for RC2/RC4) under exactly one
        of to_key (an HSM key's name) or to_pub (PUBLICKEYBLOB, PEM/DER SPKI or X.509).
        alg: an ALG_ID number, or a name as alg_id() reads it."""
        return self._run(req_wrap, alg, key, bits, to_key, to_pub, oaep)

    def copp_sign(self, random: bytes, to_key: Optional[Union[str, bytes]] = None,
                  to_pub: Optional[bytes] = None, aes_key: Optional[bytes] = None,
                  status_seq: Optional[int] = None, command_seq: Optional[int] = None) -> Copp:
        """Copp(signature, random, aes_key, status_seq, command_seq) for a COPP session to an
        RSA-2048 key; what is not given is drawn by the daemon. to_pub may also be the
        driver's XML certificate chain: its leaf's key is taken here (copp_cert_key())."""
        return self._run(req_copp_sign, random, to_key, to_pub, aes_key, status_seq,
                         command_seq)

    @overload
    def copp_open(self, name: Union[str, bytes], signature: bytes,
                  expect_random: Optional[bytes] = None, strict: bool = False,
                  seal: Literal[False] = False) -> Copp: ...

    @overload
    def copp_open(self, name: Union[str, bytes], signature: bytes,
                  expect_random: Optional[bytes] = None, strict: bool = False, *,
                  seal: Literal[True]) -> Sealed: ...

    def copp_open(self, name: Union[str, bytes], signature: bytes,
                  expect_random: Optional[bytes] = None, strict: bool = False,
                  seal: bool = False) -> Union[Copp, Sealed]:
        """Copp(None, random, aes_key, status_seq, command_seq) from a 256-byte signature;
        RANDOM_MISMATCH when expect_random (16 bytes) differs. seal: the AES key stays in
        the daemon, Sealed(session, random, status_seq, command_seq) instead (never sent
        twice: a second open would be a second session)."""
        result: Union[Copp, Sealed] = self._run(req_copp_open, name, signature, expect_random,
                                                strict, seal, retry=not seal)
        return result

    def opm_sign(self, random: bytes, to_key: Optional[Union[str, bytes]] = None,
                 to_pub: Optional[bytes] = None, aes_key: Optional[bytes] = None,
                 status_seq: Optional[int] = None, command_seq: Optional[int] = None) -> Copp:
        """Copp(signature, ...) as copp_sign(), the signature being OPM's 256-byte
        encrypted initialization parameters (RSAES-OAEP with SHA-512)."""
        return self._run(req_opm_sign, random, to_key, to_pub, aes_key, status_seq,
                         command_seq)

    @overload
    def opm_open(self, name: Union[str, bytes], signature: bytes,
                 expect_random: Optional[bytes] = None,
                 seal: Literal[False] = False) -> Copp: ...

    @overload
    def opm_open(self, name: Union[str, bytes], signature: bytes,
                 expect_random: Optional[bytes] = None, *, seal: Literal[True]) -> Sealed: ...

    def opm_open(self, name: Union[str, bytes], signature: bytes,
                 expect_random: Optional[bytes] = None,
                 seal: bool = False) -> Union[Copp, Sealed]:
        """As copp_open() for OPM's encrypted initialization parameters (an array that
        does not decode is always UNWRAP_FAILED)."""
        result: Union[Copp, Sealed] = self._run(req_opm_open, name, signature, expect_random,
                                                seal, retry=not seal)
        return result

    def session_mac(self, session: bytes, data: bytes) -> bytes:
        """The OMAC-1 (AES-CMAC, 16 bytes) of data (at most 4096 bytes) under a sealed
        session's AES key."""
        return self._run(req_session_mac, session, data)

    def session_verify(self, session: bytes, data: bytes, omac: Optional[bytes] = None,
                       kind: Optional[str] = None) -> SessionSeq:
        """SessionSeq(next_status_seq, next_command_seq) when omac is data's OMAC-1 and,
        with kind "status" or "command", data's sequence number is the session's next one
        (which then advances); else VerifyFailed (OMAC_MISMATCH, BAD_SEQUENCE), the session
        unchanged. omac None only for a COPP status request."""
        return self._run(req_session_verify, session, data, omac, kind,
                         retry=kind is None or kind == "none")

    def session_close(self, session: bytes) -> None:
        """Wipes a sealed session's AES key in the daemon; the handle is unknown after."""
        self._run(req_session_close, session, retry=False)

    def keygen(self, name: Union[str, bytes], bits: Optional[int] = None,
               exponent: Optional[int] = None) -> NewKey:
        """NewKey: an RSA key pair generated inside the HSM, never extractable, labelled name
        (bits 2048, 3072 or 4096, default 2048; exponent default 65537). [daemon] admin
        peers only. A 4096-bit key may take longer than the default timeout."""
        return self._run(req_keygen, name, bits, exponent, retry=False)

    def import_key(self, name: Union[str, bytes], key: bytes) -> NewKey:
        """NewKey: the RSA private key in key (bytes: PEM PKCS#1 or PKCS#8, unencrypted; DER
        PKCS#8 or PKCS#1; a PRIVATEKEYBLOB; or a CNG BCRYPT_RSAPRIVATE_BLOB /
        BCRYPT_RSAFULLPRIVATE_BLOB) put into the HSM as name. [daemon] admin peers only."""
        return self._run(req_import, name, key, retry=False)

    def batch(self, ops: Iterable[Any], depth: Optional[int] = DEFAULT_DEPTH) -> BatchResults:
        """Runs ops (Op objects or tuples (name, args...)) pipelined, up to depth (0: 32) in
        flight. Returns a list with one entry per op, in order: the result, or the
        KeytransError of that op (not raised). A connection failure or timeout ends the
        batch: the ops it left unfinished carry that error, also in the list's .error
        (None when the batch ran to its end)."""
        items = list(ops)
        depth = batch_depth(depth)
        results = BatchResults([None] * len(items))
        running: Dict[int, Any] = {}            # request id -> (index, entry)
        nxt = 0
        while nxt < len(items) or running:
            while nxt < len(items) and len(running) < depth:
                i = nxt
                nxt += 1
                try:
                    e = self._submit(self._deadline(), build, items[i])
                except KeytransError as err:
                    results[i] = err
                    if err.code in LOCAL_REFUSALS:
                        continue
                    return self._batch_fail(results, running, nxt, err)
                running[e.id] = (i, e)
            if not running:
                break
            try:
                e = self._wait(set(running), self._deadline())
            except KeytransError as err:
                return self._batch_fail(results, running, nxt, err)
            i, _ = running.pop(e.id)
            self._pending.pop(e.id, None)
            results[i] = e.error if e.error is not None else e.result
        return results

    # -- machinery --

    def _deadline(self) -> Optional[float]:
        return None if self._timeout_ms == 0 else time.monotonic() + self._timeout_ms / 1000.0

    def _run(self, make: Callable[..., Request[R]], *args: Any, retry: bool = True) -> R:
        """Submits one request and waits for its answer (kt_*'s run_item). As
        libkeytrans: a call on a connection the daemon closed connects again first,
        and one that failed because the connection was lost (ERR_IO) or the daemon
        is stopping (SHUTTING_DOWN) is sent once more on a new connection, within the
        same time limit, when nothing else is in flight (every operation is
        idempotent, but keygen and import, which change the token, a sealed open, which
        makes a session, session_close, and a session_verify that advances a sequence
        number: retry=False).
        reconnect = False turns both off."""
        deadline = self._deadline()      # one limit for sending, waiting and a retry
        try:
            return self._run_once(deadline, make, *args)
        except KeytransError as e:
            if not retry or not self._may_retry(e.code) or \
                    (deadline is not None and time.monotonic() >= deadline):
                raise
        assert self._path is not None       # _may_retry
        self._open(self._path)
        return self._run_once(deadline, make, *args)

    def _may_retry(self, code: int) -> bool:
        return self.reconnect and self._path is not None and not self._pending and \
            code in (st.ERR_IO, st.SHUTTING_DOWN)

    def _ensure(self) -> None:
        if self._sock is None and self.reconnect and self._path is not None and \
                not self._pending:
            self._open(self._path)

    def _run_once(self, deadline: Optional[float], make: Callable[..., Request[R]],
                  *args: Any) -> R:
        self._ensure()
        e = self._submit(deadline, make, *args)
        try:
            self._wait({e.id}, deadline)
        except KeytransError:
            self._abandon(e)
            raise
        self._pending.pop(e.id, None)
        if e.error is not None:
            raise e.error
        result: R = e.result
        return result

    def _submit(self, deadline: Optional[float], make: Callable[..., Request[Any]],
                *args: Any) -> _Pending:
        if self._sock is None:
            raise KeytransError(st.ERR_IO, "not connected to the daemon")
        op, fields, decode = make(*args)
        rid = self._next_id
        self._next_id = (self._next_id + 1) & 0xffffffff or 1     # 0 is never an id
        e = _Pending(rid, op, decode)
        self._pending[rid] = e
        try:
            self._send(request_frame(op, rid, fields), deadline)
        except KeytransError:
            self._pending.pop(rid, None)
            raise
        return e

    def _abandon(self, e: _Pending) -> None:
        """The caller gave up on e: its late answer will be dropped."""
        if self._pending.get(e.id) is not e:
            return
        if e.state == _DONE:
            del self._pending[e.id]
        else:
            e.state = _ABANDONED

    def _batch_fail(self, results: BatchResults, running: Dict[int, Any], nxt: int,
                    err: KeytransError) -> BatchResults:
        results.error = err
        for i in range(nxt, len(results)):
            results[i] = err
        for i, e in running.values():
            if e.state == _DONE:
                results[i] = e.error if e.error is not None else e.result
            else:
                results[i] = err
            self._abandon(e)
        return results

    def _fail_all(self, err: KeytransError) -> None:
        for e in self._pending.values():
            if e.state == _WAITING:
                e.error = err
        self._pending = {}

    def _fatal(self, code: int, message: str) -> KeytransError:
        err = KeytransError(code, message)
        self._fail_all(err)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._rx = bytearray()
        return err

    def _timed_out(self) -> KeytransError:
        return KeytransError(st.ERR_TIMEOUT, "no answer from the daemon within %d ms"
                             % self._timeout_ms)

    def _poll(self, sock: socket.socket, events: int, deadline: Optional[float]) -> int:
        """revents, or 0 when the deadline passed."""
        p = select.poll()
        p.register(sock, events)
        while True:
            ms = None
            if deadline is not None:
                ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            try:
                r = p.poll(ms)
            except OSError as e:
                raise self._fatal(st.ERR_IO, "poll: %s" % e.strerror) from None
            if r:
                revents: int = r[0][1]
                return revents
            if deadline is not None and time.monotonic() >= deadline:
                return 0

    def _send(self, data: bytes, deadline: Optional[float]) -> None:
        sent, view = 0, memoryview(data)
        while sent < len(data):
            sock = self._sock
            if sock is None:
                raise KeytransError(st.ERR_IO, "not connected to the daemon")
            ev = self._poll(sock, select.POLLOUT | select.POLLIN, deadline)
            if ev == 0 and sent > 0:
                raise self._fatal(st.ERR_TIMEOUT, "timed out in the middle of sending a request")
            if ev == 0:
                raise self._timed_out()
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR) and not ev & select.POLLOUT:
                self._drain()
                self._read_some(sock)
                self._drain()
            if ev & select.POLLOUT:
                try:
                    sent += sock.send(view[sent:], socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    self._salvage(sock)
                    raise self._fatal(st.ERR_IO, "send: %s" % e.strerror) from None

    def _salvage(self, sock: socket.socket) -> None:
        """After a failed send: what the daemon wrote before it closed may say why (a BUSY
        answer to a connection over its limits); processing it raises that."""
        try:
            while True:
                chunk = sock.recv(FRAME_MAX, socket.MSG_DONTWAIT)
                if not chunk:
                    break
                self._rx += chunk
        except OSError:
            pass
        self._drain()

    def _read_some(self, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(FRAME_MAX, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            raise self._fatal(st.ERR_IO, "receive: %s" % e.strerror) from None
        if not chunk:
            raise self._fatal(st.ERR_IO, "the daemon closed the connection")
        self._rx += chunk

    def _recv(self, deadline: Optional[float]) -> None:
        sock = self._sock
        if sock is None:
            raise KeytransError(st.ERR_IO, "not connected to the daemon")
        if self._poll(sock, select.POLLIN, deadline) == 0:
            raise self._timed_out()
        self._read_some(sock)

    def _next_frame(self) -> Optional[bytes]:
        """The next complete frame (bytes), or None when more bytes are needed."""
        if len(self._rx) < 4:
            return None
        n: int = struct.unpack_from(">I", self._rx, 0)[0]
        why = frame_length_error(n)
        if why is not None:
            raise self._fatal(st.ERR_PROTOCOL, why)
        if len(self._rx) - 4 < n:
            return None
        raw = bytes(self._rx[:4 + n])
        del self._rx[:4 + n]
        return raw

    def _drain(self) -> None:
        while self._sock is not None:
            raw = self._next_frame()
            if raw is None:
                return
            self._process(raw)

    def _process(self, raw: bytes) -> None:
        _, version, op, status, rid = HEADER.unpack_from(raw, 0)
        if version != VERSION:
            raise self._fatal(st.ERR_PROTOCOL, "response has protocol version %d, expected %d"
                              % (version, VERSION))
        if op == 0 and status != st.OK:
            # An answer to no request: the daemon refused the connection (BUSY over a
            # connection limit) or the stream (BAD_FRAME), and closes it.
            raise self._fatal(status, refusal_message(status, raw[12:]))
        e = self._pending.get(rid)
        if e is None or e.state == _DONE:
            raise self._fatal(st.ERR_PROTOCOL, "response (%s, status %s) to unknown request id %d"
                              % (OPS.get(op, "unknown"), st.status_name(status), rid))
        if e.state == _ABANDONED:
            del self._pending[rid]
            return
        e.state = _DONE
        self._done_seq += 1
        e.seq = self._done_seq
        try:
            e.result = decode_answer(e.op, e.decode, op, status, raw[12:])
        except KeytransError as err:
            e.error = err

    def _wait(self, ids: Set[int], deadline: Optional[float]) -> _Pending:
        """Processes frames until one of ids is answered; returns the earliest such entry."""
        while True:
            done = [self._pending[i] for i in ids
                    if i in self._pending and self._pending[i].state == _DONE]
            if done:
                return min(done, key=lambda e: e.seq)
            if self._sock is None:
                raise KeytransError(st.ERR_IO, "not connected to the daemon")
            raw = self._next_frame()
            if raw is not None:
                self._process(raw)
            else:
                self._recv(deadline)


def connect(path: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT) -> Connection:
    """A Connection to path (None: $KEYTRANS_SOCKET, else DEFAULT_SOCKET)."""
    return Connection(path, timeout)
