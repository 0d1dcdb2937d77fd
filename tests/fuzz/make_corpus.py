#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets (scripts/fuzz calls it).

    make_corpus.py TOP OUT

TOP is the source tree, OUT the corpus folder (one sub-folder per target).
Everything comes from tests/vectors, tests/data and conf/: SIMPLEBLOBs and
COPP signatures (and, through `openssl pkeyutl` with the vector private keys,
the raw RSA results an HSM would return for them), the key files, the sample
configuration, and request/response frames encoded per docs/protocol.md.
Seed names are stable, so re-running overwrites rather than adds.
"""
import base64
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

TOP, OUT = sys.argv[1], sys.argv[2]
VEC = os.path.join(TOP, 'tests', 'vectors')
DATA = os.path.join(TOP, 'tests', 'data')

# docs/protocol.md
OP = dict(info=1, keys=2, pubkey=3, unwrap=4, wrap=5, copp_sign=6, copp_open=7, stats=8,
          opm_sign=11, opm_open=12, session_mac=13, session_verify=14, session_close=15)
T = dict(NAME=1, BLOB=2, PADDING=3, ALG_ID=4, SESSION_KEY=5, PUBLIC_KEY=6, FORMAT=7,
         KEY_BITS=8, RANDOM=9, AES_KEY=10, STATUS_SEQ=11, COMMAND_SEQ=12, SIGNATURE=13,
         MESSAGE=14, VERSION=15, TOKEN_LABEL=16, KEY_COUNT=17, WORKER_COUNT=18, UPTIME=19,
         KEY_ENTRY=20, LABEL=21, ID=22, BITS=23, EXPONENT=24, FLAGS=25, NOTICE=26, MECHANISM=27,
         HSM_ENTRY=28, STATE=29, IN_FLIGHT=30, FAULTS=31, LAST_ERROR=32, OP_ENTRY=33, OP=34,
         STATUS_COUNTS=35, LATENCY_BOUNDS=36, LATENCY_BUCKETS=37, LATENCY_SUM=38,
         CONNECTIONS=39, ACCEPTED=40, REFUSED=41, POOL_ENTRY=42, QUEUED=43,
         SESSION=47, DATA=48, OMAC=49, KIND=51)
KEYS = ['rsa1024', 'rsa2048', 'rsa4096']     # the fuzzers' key table, in this order
ALGS = [0x6602, 0x6801, 0x6601, 0x6609, 0x6603, 0x660e, 0x660f, 0x6610]   # common/alg.c order


def f(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack('>HH', T[tag], len(value)) + value


def u8(tag, v):
    return f(tag, bytes([v]))


def u32(tag, v):
    return f(tag, struct.pack('>I', v))


def u64(tag, v):
    return f(tag, struct.pack('>Q', v))


def frame(op, body, status=0, ident=1):
    return struct.pack('>IBBHI', 8 + len(body), 1, op, status, ident) + body


def read(path):
    with open(path, 'rb') as fp:
        return fp.read()


written = {}


def seed(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as fp:
        fp.write(data)
    written[target] = written.get(target, 0) + 1


def raw_rsa(key, c):
    """The raw RSA private operation (what the HSM does with CKM_RSA_X_509)."""
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(c)
        tmp.flush()
        return subprocess.run(['openssl', 'pkeyutl', '-decrypt', '-inkey',
                               os.path.join(VEC, 'keys', key + '.pem'), '-pkeyopt',
                               'rsa_padding_mode:none', '-in', tmp.name],
                              check=True, capture_output=True).stdout


def lines(name):
    with open(os.path.join(VEC, name)) as fp:
        for line in fp:
            if line.strip() and not line.startswith('#'):
                yield line.split()


def unhex(s):
    return b'' if s == '-' else bytes.fromhex(s)


simpleblobs = [(k, pad, int(alg, 16), unhex(key), unhex(blob))
               for k, pad, alg, key, blob in lines('simpleblob.txt')]
negatives = [(name, cls, unhex(blob)) for name, cls, blob in lines('negative.txt')]
copps = [(k, unhex(r), unhex(a), int(s), int(c), unhex(sig))
         for k, r, a, s, c, sig in lines('copp.txt')]
opms = [(k, unhex(r), unhex(a), int(s), int(c), unhex(sig))
        for k, r, a, s, c, sig in lines('opm.txt')]
pubfiles = {}
for k in KEYS + ['wine1024']:
    for ext in ('pub.blob', 'pub.pem', 'priv.blob'):
        pubfiles[k + '.' + ext] = read(os.path.join(VEC, 'keys', k + '.' + ext))
datafiles = {n: read(os.path.join(DATA, n)) for n in sorted(os.listdir(DATA))
             if os.path.isfile(os.path.join(DATA, n)) and n != 'README.md'}

# ---- fuzz_simpleblob: [mode + 3 * key] then the mode's bytes ----
for i, (k, pad, alg, key, blob) in enumerate(simpleblobs):
    seed('fuzz_simpleblob', 'parse-%d' % i, b'\x00' + blob)
    if k in KEYS:
        em = raw_rsa(k, blob[12:][::-1])
        lo_hi = bytes([len(key), len(key)])
        seed('fuzz_simpleblob', 'raw-%d' % i, bytes([1 + 3 * KEYS.index(k)]) + lo_hi + em)
for name, cls, blob in negatives:
    seed('fuzz_simpleblob', 'neg-' + name, b'\x00' + blob)
    if cls == 'decrypt':
        em = raw_rsa('rsa2048', blob[12:][::-1])
        seed('fuzz_simpleblob', 'negraw-' + name, bytes([1 + 3 * 1, 16, 16]) + em)
for ki in range(len(KEYS)):
    for ai, alg in enumerate(ALGS):
        for pad in (0, 1):
            hdr = bytes([ai, pad, 16, 0, 7, 0])
            seed('fuzz_simpleblob', 'build-%d-%d-%d' % (ki, ai, pad),
                 bytes([2 + 3 * ki]) + hdr + hashlib.sha256(bytes([ki, ai, pad])).digest())

# ---- fuzz_publickeyblob, fuzz_keyfile ----
for n, data in pubfiles.items():
    if n.endswith('.blob'):
        seed('fuzz_publickeyblob', n, data)
    if not n.endswith('priv.blob'):
        seed('fuzz_keyfile', n, data)
for n, data in datafiles.items():
    seed('fuzz_keyfile', n, data)
# A certificate for a P-256 key (must be refused: not RSA). -preserve_dates and a
# PKCS#1 v1.5 signature keep it the same from run to run.
ec_cert = subprocess.run(['openssl', 'x509', '-in', os.path.join(DATA, 'rsa2048.crt.pem'), '-signkey',
                          os.path.join(VEC, 'keys', 'rsa2048.pem'), '-force_pubkey',
                          os.path.join(DATA, 'ec256.pub.pem'), '-preserve_dates', '-outform', 'DER'],
                         check=True, capture_output=True).stdout
seed('fuzz_keyfile', 'ec256.crt.der', ec_cert)
# The PKCS#1 RSAPublicKey in DER, which no file holds as such.
rsapub = datafiles['rsa2048.rsapub.pem'].decode().split('-----')[2]
seed('fuzz_keyfile', 'rsa2048.rsapub.der', base64.b64decode(rsapub))
# ---- fuzz_privkey: every vector private key as PKCS#8 PEM and as PRIVATEKEYBLOB ----
for name in KEYS:
    for suffix in ('.pem', '.priv.blob'):
        with open(os.path.join(VEC, 'keys', name + suffix), 'rb') as fp:
            seed('fuzz_privkey', name + suffix, fp.read())
# ---- fuzz_cngblob: the blobs Wine's CNG exported for rsa2048 (public, private, full) ----
for kind in ('pub', 'priv', 'full'):
    seed('fuzz_cngblob', 'rsa2048.cng.%s.blob' % kind,
         read(os.path.join(VEC, 'keys', 'rsa2048.cng.%s.blob' % kind)))
seed('fuzz_keyfile', 'rsa2048.cng.pub.blob', read(os.path.join(VEC, 'keys', 'rsa2048.cng.pub.blob')))
seed('fuzz_privkey', 'rsa2048.cng.full.blob', read(os.path.join(VEC, 'keys', 'rsa2048.cng.full.blob')))
seed('fuzz_publickeyblob', 'rsa2048.sign.blob',
     pubfiles['rsa2048.pub.blob'][:4] + b'\x00\x24\x00\x00' + pubfiles['rsa2048.pub.blob'][8:])

# ---- fuzz_coppcert: the COPP XML certificate chains of tests/data/copp ----
COPP_XML = os.path.join(DATA, 'copp')
for n in sorted(os.listdir(COPP_XML)):
    if n.endswith('.xml'):
        seed('fuzz_coppcert', n, read(os.path.join(COPP_XML, n)))

# ---- fuzz_copp: a signature, or the raw RSA result of one ----
for i, (k, r, a, s, c, sig) in enumerate(copps):
    seed('fuzz_copp', 'sig-%d' % i, sig)
    seed('fuzz_copp', 'em-%d' % i, raw_rsa(k, sig[::-1]))

# ---- requests: fuzz_request gets [op | peer << 5] + body, fuzz_frame the whole frame ----
requests = [('info', 'info', b''), ('keys', 'keys', b'')]
for k in KEYS:
    for fmt in (0, 1, 2):
        requests.append(('pubkey-%s-%d' % (k, fmt), 'pubkey', f('NAME', k) + u8('FORMAT', fmt)))
for i, (k, pad, alg, key, blob) in enumerate(simpleblobs):
    if k in KEYS and i % 3 == 0:
        body = f('NAME', k) + f('BLOB', blob) + u8('PADDING', 1 if pad == 'oaep' else 0)
        if i % 2:
            body += u32('FLAGS', 1)
        requests.append(('unwrap-%d' % i, 'unwrap', body))
for name, cls, blob in negatives:
    requests.append(('unwrap-' + name, 'unwrap', f('NAME', 'rsa2048') + f('BLOB', blob)))
requests += [
    ('wrap-name', 'wrap', f('NAME', 'rsa2048') + u32('ALG_ID', 0x660e) + f('SESSION_KEY', bytes(range(16)))),
    ('wrap-gen-rc4', 'wrap', f('NAME', 'rsa1024') + u32('ALG_ID', 0x6801) + u32('KEY_BITS', 40)),
    ('wrap-oaep', 'wrap', f('NAME', 'rsa4096') + u32('ALG_ID', 0x6610) + u8('PADDING', 1)),
]
for n in ('rsa2048.pub.blob', 'rsa2048.pub.pem', 'rsa1024.pub.pem'):
    requests.append(('wrap-pub-' + n, 'wrap', f('PUBLIC_KEY', pubfiles[n]) + u32('ALG_ID', 0x660e)))
for n in ('rsa2048.crt.der', 'rsa2048.pub.der'):
    requests.append(('wrap-pub-' + n, 'wrap', f('PUBLIC_KEY', datafiles[n]) + u32('ALG_ID', 0x6603)))
for i, (k, r, a, s, c, sig) in enumerate(copps):
    requests.append(('copp-sign-%d' % i, 'copp_sign', f('NAME', k) + f('RANDOM', r) + f('AES_KEY', a) +
                     u32('STATUS_SEQ', s) + u32('COMMAND_SEQ', c)))
    requests.append(('copp-open-%d' % i, 'copp_open', f('NAME', k) + f('SIGNATURE', sig) + f('RANDOM', r)))
requests.append(('copp-sign-pub', 'copp_sign', f('PUBLIC_KEY', pubfiles['rsa2048.pub.pem']) + f('RANDOM', bytes(16))))
for i, (k, r, a, s, c, sig) in enumerate(opms[:3]):
    requests.append(('opm-sign-%d' % i, 'opm_sign', f('NAME', k) + f('RANDOM', r) + f('AES_KEY', a) +
                     u32('STATUS_SEQ', s) + u32('COMMAND_SEQ', c)))
    requests.append(('opm-open-%d' % i, 'opm_open', f('NAME', k) + f('SIGNATURE', sig) + f('RANDOM', r) +
                     u32('FLAGS', 2 * (i & 1))))
handle = bytes([0, 0, 0, 1]) + bytes(range(12))
status_msg = bytes(32) + struct.pack('<II', 7, 0)
requests += [
    ('session-mac', 'session_mac', f('SESSION', handle) + f('DATA', status_msg)),
    ('session-verify-status', 'session_verify', f('SESSION', handle) + f('DATA', status_msg) +
     f('OMAC', bytes(16)) + u8('KIND', 1)),
    ('session-verify-copp-status', 'session_verify', f('SESSION', handle) + f('DATA', status_msg) +
     u8('KIND', 1)),
    ('session-close', 'session_close', f('SESSION', handle)),
]
requests.append(('bad-dup', 'pubkey', f('NAME', 'rsa2048') + f('NAME', 'rsa2048')))
requests.append(('bad-unknown-key', 'pubkey', f('NAME', 'nosuchkey')))
for name, op, body in requests:
    for peer in (0, 2) if not name.startswith('unwrap-') or name.endswith('0') else (0, 1, 2, 3):
        seed('fuzz_request', '%s-p%d' % (name, peer), bytes([OP[op] | peer << 5]) + body)
    seed('fuzz_frame', 'req-' + name, frame(OP[op], body, ident=7))

# ---- responses: fuzz_response gets [op | variant << 4] + frame, fuzz_frame the frame ----
def entry(name, bits, label=None, ident=None):
    body = f('NAME', name) + (f('LABEL', label) if label else b'') + (f('ID', ident) if ident else b'')
    return f('KEY_ENTRY', body + u32('BITS', bits) + u64('EXPONENT', 65537) + f('MECHANISM', 'raw'))


def stats_body():
    """A stats answer as the daemon writes it (common/metrics.h: 19 bounds, 20 buckets)."""
    bounds = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
              200000, 500000, 1000000, 2000000, 5000000, 10000000]
    body = (u64('UPTIME', 42) + u32('CONNECTIONS', 1) + u64('ACCEPTED', 7) + u64('REFUSED', 1) +
            f('LATENCY_BOUNDS', struct.pack('>19I', *bounds)))
    for op in range(9):
        counts = struct.pack('>HQHQ', 0, 3, 14, 1) if op == 4 else b''
        buckets = [0] * 20
        buckets[0], buckets[7] = (3, 1) if op == 4 else (0, 0)
        body += f('OP_ENTRY', u8('OP', op) + f('STATUS_COUNTS', counts) +
                  f('LATENCY_BUCKETS', struct.pack('>20Q', *buckets)) + u64('LATENCY_SUM', 2500000))
    for name in ('hsm', 'public'):
        body += f('POOL_ENTRY', f('NAME', name) + u32('WORKER_COUNT', 2) + u32('QUEUED', 0) +
                  u32('IN_FLIGHT', 1))
    return body + f('HSM_ENTRY', f('NAME', 'hsm') + f('TOKEN_LABEL', 'keytrans') + f('STATE', 'up') +
                    u32('IN_FLIGHT', 0) + u64('FAULTS', 0))


aes_blob = next(b for k, p, a, key, b in simpleblobs if a == 0x660e and k == 'rsa2048')
rc4_blob = next(b for k, p, a, key, b in simpleblobs if a == 0x6801 and k == 'rsa2048')
copp_sig = copps[0][5]
params = f('RANDOM', bytes(range(16))) + f('AES_KEY', bytes(range(16, 32))) + \
    u32('STATUS_SEQ', 1) + u32('COMMAND_SEQ', 2)
responses = [
    ('info', 1, 0, f('VERSION', '0.1.0') + f('TOKEN_LABEL', 'keytrans') + u32('KEY_COUNT', 3) +
     u32('WORKER_COUNT', 2) + u64('UPTIME', 42)),
    ('keys', 2, 0, entry('rsa1024', 1024, 'kx1', b'\x01') + entry('rsa2048', 2048) +
     entry('rsa4096', 4096, 'big')),
    ('keys-none', 2, 0, b''),
    ('pubkey-blob', 3, 0, f('PUBLIC_KEY', pubfiles['rsa2048.pub.blob'])),
    ('pubkey-pem', 3, 1, f('PUBLIC_KEY', pubfiles['rsa2048.pub.pem'])),
    ('pubkey-der', 3, 2, f('PUBLIC_KEY', datafiles['rsa2048.pub.der'])),
    ('pubkey-item', 3, 4, f('PUBLIC_KEY', pubfiles['rsa2048.pub.blob'])),
    ('unwrap-aes', 4, 0, u32('ALG_ID', 0x660e) + f('SESSION_KEY', bytes(16))),
    ('unwrap-rc4', 4, 0, u32('ALG_ID', 0x6801) + f('SESSION_KEY', bytes(5))),
    ('wrap-gen', 5, 0, u32('ALG_ID', 0x660e) + f('BLOB', aes_blob) + f('SESSION_KEY', bytes(16))),
    ('wrap-given', 5, 1, u32('ALG_ID', 0x660e) + f('BLOB', aes_blob)),
    ('wrap-rc4-40', 5, 6, u32('ALG_ID', 0x6801) + f('BLOB', rc4_blob) + f('SESSION_KEY', bytes(5))),
    ('copp-open', 7, 0, params),
    ('copp-open-expect', 7, 1, params),
    ('stats', 8, 0, stats_body()),
]
for v in range(8):
    responses.append(('copp-sign-%d' % v, 6, v, f('SIGNATURE', copp_sig) + params))
    responses.append(('opm-sign-%d' % v, 11, v, f('SIGNATURE', opms[0][5]) + params))
sealed = f('SESSION', handle) + f('RANDOM', bytes(range(16))) + u32('STATUS_SEQ', 1) + u32('COMMAND_SEQ', 2)
responses += [
    ('opm-open', 12, 0, params),
    ('opm-open-expect', 12, 1, params),
    ('opm-open-sealed', 12, 3, sealed),
    ('copp-open-sealed', 7, 2, sealed),
    ('session-mac', 13, 0, f('OMAC', bytes(16))),
    ('session-verify', 14, 1, u32('STATUS_SEQ', 8) + u32('COMMAND_SEQ', 0)),
]
for op in list(range(1, 9)) + [11, 12, 13, 14]:
    responses.append(('error-%d' % op, op, 0, f('MESSAGE', 'no key named "x"')))
for name, op, variant, body in responses:
    status = 6 if name.startswith('error') else 0
    fr = frame(op, body, status)
    seed('fuzz_response', name, bytes([op | variant << 4]) + fr)
    seed('fuzz_frame', 'resp-' + name, fr)
# A stream: answers to the pending items (ids 1..9), the synchronous INFO (id 10) and the
# abandoned item (id 11), out of order.
stream = (frame(7, params, ident=4) + frame(1, responses[0][3], ident=10) +
          frame(13, f('OMAC', bytes(16)), ident=8) + frame(12, params, ident=7) +
          frame(4, responses[7][3], ident=1) + frame(5, u32('ALG_ID', 0x660e) + f('BLOB', aes_blob), ident=2) +
          frame(3, f('PUBLIC_KEY', pubfiles['rsa2048.pub.blob']), ident=5) +
          frame(6, f('MESSAGE', 'denied'), status=23, ident=3) +
          frame(4, responses[8][3], ident=11))
seed('fuzz_response', 'stream', b'\x00' + stream)
seed('fuzz_response', 'stream-cut', b'\x00' + stream[:-7])
seed('fuzz_frame', 'bad-short-len', struct.pack('>IBBHI', 4, 1, 1, 0, 1))
seed('fuzz_frame', 'bad-big-len', struct.pack('>IBBHI', 70000, 1, 1, 0, 1))

# ---- fuzz_config ----
seed('fuzz_config', 'keytransd.conf', read(os.path.join(TOP, 'conf', 'keytransd.conf')))
HSM = '[hsm]\nmodule = softhsm2.so\ntoken = keytrans\npin_file = pin\n'
configs = {
    'minimal': HSM,
    'relative': '[daemon]\nsocket = run/kt.sock\nsocket_mode = 0600\nworkers = 4\n' + HSM +
                '[key a]\nlabel = kx1\n[key b.c-d_e]\nid = 0102ff\n',
    'acl': '[daemon]\nallow_public_ops = uid:1000 gid:100 *\nmax_connections = 100\n'
           'max_connections_per_uid = 10\nmax_inflight = 8\nrequest_timeout = 5\nidle_timeout = 60\n'
           'job_memory = 1024\njob_memory_per_uid = 64\n' + HSM +
           '[key k]\nlabel = k\nid = 01\nrsa_mechanism = pkcs\nallow_unwrap = uid:0 gid:0\n'
           'allow_wrap = *\nallow_copp_open = uid:1\nallow_pubkey = *\n',
    'bom-indent': '\ufeff  ; comment\n' + HSM.replace('\n', '\n\t') + '# other comment\n[key x]\n  label = y\n',
    'dup-key': HSM + '[key a]\nlabel = 1\n[key a]\nlabel = 2\n',
    'dup-setting': HSM + '[key a]\nlabel = 1\nlabel = 2\n',
    'unknown-section': HSM + '[nope]\nx = 1\n',
    'outside': 'module = x\n' + HSM,
    'no-label': HSM + '[key a]\n',
    'bad-id': HSM + '[key a]\nid = 0g\n',
    'long-line': HSM + '[key a]\nlabel = ' + 'x' * 300 + '\n',
    'syntax': HSM + 'just words\n',
    'empty-section': '[daemon]\n[hsm]\n[key z]\nid=00\n',
    'limits-bad': '[daemon]\njob_memory = 256\njob_memory_per_uid = 512\n' + HSM,
}
for name, text in configs.items():
    seed('fuzz_config', name, text.encode())

for t in sorted(written):
    print('%s: %d seeds' % (t, written[t]))
