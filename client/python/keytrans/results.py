"""What the operations return: named tuples (unpackable, comparable to plain tuples).

The ones holding secret key bytes (SessionKey.key, Wrapped.key, Copp.aes_key) leave them out of
repr() and str(): logging a result shows the algorithm and the lengths, never the key."""
from typing import Dict, NamedTuple, Optional, Tuple

from .algs import alg_name


def _redacted(b: bytes) -> str:
    return "<redacted %d bytes>" % len(b)


def _length(b: Optional[bytes]) -> str:
    return "None" if b is None else "<%d bytes>" % len(b)


class Hsm(NamedTuple):
    """One HSM in info() and stats(): state 'up' or 'down'; last_error '' when none."""
    name: str
    token_label: str
    state: str
    in_flight: int
    faults: int
    last_error: str


class Info(NamedTuple):
    """info(): key_count counts the keys this peer may use; notice is '' or a warning; hsms
    the daemon's HSMs (at most 16)."""
    version: str
    token_label: str
    key_count: int
    worker_count: int
    uptime: int
    notice: str
    hsms: Tuple[Hsm, ...] = ()


class Key(NamedTuple):
    """One key of keys(): label '' and id b'' when the token object has none; notice '' or
    how the private key can leave the HSM."""
    name: str
    label: str
    id: bytes
    bits: int
    exponent: int
    mechanism: str
    notice: str = ""


class SessionKey(NamedTuple):
    """unwrap(): the session key and its ALG_ID. repr() does not show the key."""
    alg_id: int
    key: bytes

    def __repr__(self) -> str:
        return "SessionKey(alg_id=0x%x (%s), key=%s)" % (
            self.alg_id, alg_name(self.alg_id) or "unknown", _redacted(self.key))


class Wrapped(NamedTuple):
    """wrap(): the SIMPLEBLOB and the session key (given or generated). repr() does not show
    the key."""
    blob: bytes
    key: bytes

    def __repr__(self) -> str:
        return "Wrapped(blob=%s, key=%s)" % (_length(self.blob), _redacted(self.key))


class Copp(NamedTuple):
    """COPP session start values; signature is None for copp_open(). repr() does not show
    the AES key."""
    signature: Optional[bytes]
    random: bytes
    aes_key: bytes
    status_seq: int
    command_seq: int

    def __repr__(self) -> str:
        return "Copp(signature=%s, random=%s, aes_key=%s, status_seq=%d, command_seq=%d)" % (
            _length(self.signature), _length(self.random), _redacted(self.aes_key),
            self.status_seq, self.command_seq)


class Sealed(NamedTuple):
    """copp_open() and opm_open() with seal=True: the session handle (16 bytes, for
    session_mac(), session_verify() and session_close()) instead of the AES key, which stays
    in the daemon."""
    session: bytes
    random: bytes
    status_seq: int
    command_seq: int


class SessionSeq(NamedTuple):
    """session_verify(): the sequence numbers the session expects next."""
    next_status_seq: int
    next_command_seq: int


class OpStats(NamedTuple):
    """One operation in stats(): op its code (0: unknown codes), by_status {status code:
    answers}, buckets the answers per latency bucket (not cumulative; one more than
    bounds_us, the last above the last bound)."""
    op: int
    name: str
    count: int      # type: ignore[assignment]  # a field named as tuple.count, since 0.1.0
    by_status: Dict[int, int]
    buckets: Tuple[int, ...]
    latency_sum_ns: int


class Pool(NamedTuple):
    """A worker pool in stats(): jobs waiting for a worker, and handed to it unanswered."""
    name: str
    workers: int
    queued: int
    in_flight: int


class Stats(NamedTuple):
    """stats(): connections open now, accepted and refused since the start; bounds_us the
    latency buckets' upper bounds (microseconds); ops the OpStats of each operation; pools the
    worker pools; hsms as in info(); recipient_hits and recipient_misses the PUBLIC_KEY
    recipients found in the daemon's cache and decoded, recipients the cache's entries now
    (all three None from a daemon that does not send them); sessions the sealed sessions open
    now, sessions_opened and sessions_expired since the start (None likewise)."""
    uptime: int
    connections: int
    accepted: int
    refused: int
    bounds_us: Tuple[int, ...]
    ops: Tuple[OpStats, ...]
    pools: Tuple[Pool, ...]
    hsms: Tuple[Hsm, ...]
    recipient_hits: Optional[int] = None
    recipient_misses: Optional[int] = None
    recipients: Optional[int] = None
    sessions: Optional[int] = None
    sessions_opened: Optional[int] = None
    sessions_expired: Optional[int] = None


class NewKey(NamedTuple):
    """keygen() and import_key(): the new key's CKA_LABEL and CKA_ID (what its [key NAME]
    section needs) and its public key, DER SubjectPublicKeyInfo. No private key bytes."""
    name: str
    label: str
    id: bytes
    bits: int
    exponent: int
    public_key: bytes
