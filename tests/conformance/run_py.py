"""Conformance runner, Python side: the cases of a case file (format in cases.txt) through
client/python/keytrans.py, one normalized result line per case, exactly as run_c prints
them with libkeytrans.

    run_py.py CASEFILE        (the shared connection goes to $KEYTRANS_SOCKET)
"""
import sys

import keytrans
from keytrans import KeytransError, Op

DEFAULT_TIMEOUT_MS = 30000
OUT = sys.stdout         # where the result lines go
FATAL = (keytrans.ERR_IO, keytrans.ERR_PROTOCOL, keytrans.ERR_TIMEOUT)


def die(msg):
    sys.stderr.write("run_py: %s\n" % msg)
    sys.exit(2)


class Case:
    def __init__(self, line):
        parts = line.split()
        if len(parts) < 2:
            die("line without an operation: %s" % line)
        self.id, self.op = parts[0], parts[1]
        self.kv = {}
        for tok in parts[2:]:
            if "=" not in tok:
                die("%s: bad argument %s" % (self.id, tok))
            k, v = tok.split("=", 1)
            self.kv.setdefault(k, v)

    def get(self, k, default=None):
        return self.kv.get(k, default)

    def num(self, k, default=None):
        v = self.kv.get(k)
        return default if v is None else int(v, 0)

    def bytes(self, k):
        v = self.kv.get(k)
        if v is None:
            return None
        if v.startswith("@"):
            with open(v[1:], "rb") as f:
                return f.read()
        return b"" if v == "-" else bytes.fromhex(v)


def out(s):
    OUT.write(s)
    OUT.flush()


def hexs(label, b):
    return " %s=%s" % (label, b.hex() if b else "-")


def strs(label, s):
    raw = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    return ' %s="%s"' % (label, "".join(chr(c) if 0x20 <= c < 0x7f and c not in b'"\\'
                                        else "\\x%02x" % c for c in raw))


def status_line(cid, code):
    return "%s %s" % (cid, keytrans.status_name(code))


def error_line(cid, e, with_msg=True):
    return status_line(cid, e.code) + (strs("msg", e.message) if with_msg else "")


def fmt_of(case):
    f = case.get("fmt", "blob")
    return f if f in ("blob", "pem", "der") else int(f, 0)


# --- the arguments of each operation, as keytrans.py takes them ---

def args_pubkey(c):
    return Op("pubkey", c.get("name", ""), fmt_of(c))


def args_unwrap(c):
    return Op("unwrap", c.get("name", ""), c.bytes("blob") or b"", oaep=c.num("pad", 0),
              strict=bool(c.num("strict", 0)))


def args_wrap(c):
    bits = c.num("bits", 0)
    return Op("wrap", c.num("alg", 0), key=c.bytes("key"), bits=bits or None, to_key=c.get("to"),
              to_pub=c.bytes("pub"), oaep=c.num("pad", 0))


def args_copp_sign(c):
    return Op("copp_sign", c.bytes("random"), to_key=c.get("to"), to_pub=c.bytes("pub"),
              aes_key=c.bytes("aes"), status_seq=c.num("sseq"), command_seq=c.num("cseq"))


def args_copp_open(c):
    return Op("copp_open", c.get("name", ""), c.bytes("sig"), c.bytes("expect_random"),
              strict=bool(c.num("strict", 0)))


ARGS = {"pubkey": args_pubkey, "unwrap": args_unwrap, "wrap": args_wrap,
        "copp-sign": args_copp_sign, "copp-open": args_copp_open}


# --- results, printed as run_c prints them ---

def show_info(c, i):
    return (strs("version", i.version) + strs("token", i.token_label) +
            " keys=%d workers=%d" % (i.key_count, i.worker_count) + strs("notice", i.notice) +
            "".join(" [" + strs("hsm", h.name) + strs("token", h.token_label) +
                    strs("state", h.state) + " in_flight=%d faults=%d" % (h.in_flight, h.faults) +
                    strs("last_error", h.last_error) + " ]" for h in i.hsms))


def show_keys(c, keys):
    s = " count=%d" % len(keys)
    for k in keys:
        s += (" [" + strs("name", k.name) + strs("label", k.label) + hexs("id", k.id) +
              " bits=%d exp=%d" % (k.bits, k.exponent) + strs("mech", k.mechanism) + " ]")
    return s


def show_pubkey(conn, c, p):
    return " len=%d" % len(p) + hexs("data", p)


def show_unwrap(conn, c, r):
    return " alg=0x%x" % r.alg_id + hexs("key", r.key)


def show_wrap(conn, c, w):
    generated = c.bytes("key") is None
    alg = c.num("alg", 0)
    s = " blob_len=%d" % len(w.blob) + hexs("header", w.blob[:12])
    s += " generated=%d alg=0x%x key_len=%d" % (generated, alg, len(w.key))
    if not generated:
        s += hexs("key", w.key)
    check = c.get("check")
    if check is not None:
        try:
            back = conn.unwrap(check, w.blob, oaep=c.num("pad", 0))
            s += " check=%s" % ("ok" if back == (alg, w.key) else "differs")
        except KeytransError as e:
            s += " check=%s" % e.name
    return s


def show_copp_sign(conn, c, o):
    s = " sig_len=%d" % len(o.signature) + hexs("random", o.random)
    if c.get("aes") is not None:
        s += hexs("aes", o.aes_key)
    if c.get("sseq") is not None:
        s += " sseq=%d" % o.status_seq
    if c.get("cseq") is not None:
        s += " cseq=%d" % o.command_seq
    check = c.get("check")
    if check is not None:
        try:
            back = conn.copp_open(check, o.signature, o.random)
            s += " check=%s" % ("ok" if back[1:] == o[1:] else "differs")
        except KeytransError as e:
            s += " check=%s" % e.name
    return s


def show_copp_open(conn, c, o):
    return (hexs("random", o.random) + hexs("aes", o.aes_key) +
            " sseq=%d cseq=%d" % (o.status_seq, o.command_seq))


SHOW = {"pubkey": show_pubkey, "unwrap": show_unwrap, "wrap": show_wrap,
        "copp-sign": show_copp_sign, "copp-open": show_copp_open}


def run_one(conn, c):
    """Prints the case's line; returns its status."""
    try:
        if c.op == "info":
            line = status_line(c.id, 0) + show_info(c, conn.info())
        elif c.op == "keys":
            line = status_line(c.id, 0) + show_keys(c, conn.keys())
        elif c.op in ARGS:
            op = ARGS[c.op](c)
            method = getattr(conn, op.name)
            line = status_line(c.id, 0) + SHOW[c.op](conn, c, method(*op.args, **op.kwargs))
        else:
            die("%s: unknown operation %s" % (c.id, c.op))
        code = 0
    except KeytransError as e:
        line, code = error_line(c.id, e), e.code
    out(line + "\n")
    return code


def run_batch(conn, begin, items):
    """mode=batch: no per-item messages (kt_batch keeps none); mode=submit: with them."""
    mode = begin.get("mode", "batch")
    if mode not in ("batch", "submit"):
        die("%s: unknown batch mode %s" % (begin.id, mode))
    for c in items:
        if c.op not in ARGS:
            die("%s: %s cannot be batched" % (c.id, c.op))
    results = conn.batch([ARGS[c.op](c) for c in items], begin.num("depth", 0))
    for c, r in zip(items, results):
        if isinstance(r, KeytransError):
            out(error_line(c.id, r, mode == "submit") + "\n")
        else:
            out(status_line(c.id, 0) + SHOW[c.op](conn, c, r) + "\n")
    if results.error is not None:
        out(error_line(begin.id, results.error) + "\n")
        return results.error.code
    out(status_line(begin.id, 0) + "\n")
    return 0


def run(casefile):
    """Runs every case of casefile, printing to OUT."""
    try:
        shared = keytrans.connect()
    except KeytransError as e:
        die("cannot connect: %s" % e.message)
    batch_begin, items = None, []
    with open(casefile) as f:
        lines = [line for line in f if line.strip() and not line.startswith("#")]
    for line in lines:
        c = Case(line)
        if c.op == "batch-begin":
            batch_begin, items = c, []
            continue
        if batch_begin is not None and c.op != "batch-end":
            items.append(c)
            continue
        if c.op == "alg":
            try:
                aid = "0x%x" % keytrans.alg_id(c.get("spelling", ""))
            except KeytransError:
                aid = "none"
            out("%s alg id=%s\n" % (c.id, aid))
            continue
        spec = batch_begin if batch_begin is not None else c
        own = spec.get("socket") is not None
        timeout = spec.num("timeout", DEFAULT_TIMEOUT_MS) / 1000.0
        if own:
            try:
                conn = keytrans.Connection(spec.get("socket"), timeout=timeout)
            except KeytransError as e:
                out(error_line(spec.id, e) + "\n")
                batch_begin = None
                continue
        else:
            conn = shared
            conn.timeout = timeout
        if batch_begin is not None:
            code = run_batch(conn, batch_begin, items)
            batch_begin = None
        elif c.op == "connect":
            out(status_line(c.id, 0) + "\n")
            code = 0
        else:
            repeat = c.num("repeat", 1)
            cid = c.id
            for i in range(1, repeat + 1):
                if repeat > 1:
                    c.id = "%s#%d" % (cid, i)
                code = run_one(conn, c)
            c.id = cid
        if own:
            conn.close()
        else:
            conn.timeout = DEFAULT_TIMEOUT_MS / 1000.0
            if code in FATAL:
                shared = keytrans.connect()
    shared.close()


def main():
    if len(sys.argv) != 2:
        die("usage: run_py.py CASEFILE")
    run(sys.argv[1])


if __name__ == "__main__":
    main()
