"""mypy --strict on the package keytrans (the settings of pyproject.toml's [tool.mypy]), then
on code that uses it as an application would: right uses pass, wrong ones are caught (the
API is typed, not Any). Caches in a temporary directory. mypy of this python, else the mypy
command (Debian's package mypy, which runs on /usr/bin/python3); exit 77 (skipped) when there
is neither. Run by meson (test 'python-client-mypy')."""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

USER_CODE = '''
import asyncio
from typing import List, Optional
import keytrans
import keytrans.aio


def blocking(blob: bytes) -> bytes:
    with keytrans.connect("/run/keytransd/keytransd.sock", timeout=5) as kt:
        sk: keytrans.SessionKey = kt.unwrap("exchange1", blob, oaep=True)
        w: keytrans.Wrapped = kt.wrap("AES_256", to_key="exchange1")
        keys: List[keytrans.Key] = kt.keys()
        label: str = keys[0].label
        r: keytrans.BatchResults = kt.batch([keytrans.Op("info")])
        err: Optional[keytrans.KeytransError] = r.error
        sig: bytes = kt.opm_sign(bytes(16), to_key="exchange1").signature or b""
        sealed: keytrans.Sealed = kt.opm_open("exchange1", sig, seal=True)
        copp: keytrans.Copp = kt.copp_open("exchange1", sig, strict=True)
        seq: keytrans.SessionSeq = kt.session_verify(sealed.session, b"", kind="status")
        kt.session_close(sealed.session)
        return sk.key + w.blob + label.encode() + bytes(len(r) if err is None else 0) + \
            kt.session_mac(sealed.session, copp.aes_key) + bytes(seq.next_status_seq)


async def pipelined(blobs: List[bytes]) -> List[keytrans.SessionKey]:
    async with await keytrans.aio.connect() as kt:
        s: keytrans.Sealed = await kt.copp_open("exchange1", blobs[0], seal=True)
        await kt.session_close(s.session)
        return await asyncio.gather(*(kt.unwrap("exchange1", b) for b in blobs))


def family(e: keytrans.KeytransError) -> int:
    if isinstance(e, (keytrans.UnknownKey, keytrans.Busy)):
        return e.code
    cls: type = keytrans.error_class(e.code)
    return len(cls.__name__)
'''

# Each line is wrong: mypy must find an error on every one.
WRONG_CODE = '''
import keytrans
import keytrans.aio
n: int = keytrans.connect().unwrap("k", b"")
k: str = keytrans.SessionKey(1, b"").key
c: keytrans.Connection = keytrans.aio.Connection()
keytrans.connect().wrap("AES_128", to_key=7.5)
keytrans.aio.connect().info()
e: str = keytrans.UnknownKey(6).code
a: bytes = keytrans.connect().opm_open("k", b"", seal=True).aes_key
'''


def mypy_command():
    if importlib.util.find_spec("mypy") is not None:
        return [sys.executable, "-m", "mypy"]
    if shutil.which("mypy"):
        return [shutil.which("mypy")]
    return None


def main():
    mypy = mypy_command()
    if mypy is None:
        print("skipped: mypy is not installed (Debian package mypy)")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="kt-py-mypy-") as tmp:
        def run(*args):
            r = subprocess.run(mypy + ["--strict", "--config-file",
                                       os.path.join(HERE, "pyproject.toml"),
                                       "--cache-dir", os.path.join(tmp, "cache")] + list(args),
                               cwd=HERE, env=dict(os.environ, MYPYPATH=HERE),
                               capture_output=True, text=True, timeout=600)
            return r.returncode, r.stdout + r.stderr

        rc, out = run("-p", "keytrans")
        print(out, end="")
        assert rc == 0, "mypy --strict finds errors in the package"
        for name, code in (("user.py", USER_CODE), ("wrong.py", WRONG_CODE)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(code)
        rc, out = run(os.path.join(tmp, "user.py"))
        assert rc == 0, "code using the API as documented fails mypy:\n" + out
        rc, out = run(os.path.join(tmp, "wrong.py"))
        lines = {int(m.split(":")[1]) for m in out.splitlines() if "wrong.py:" in m and
                 ": error:" in m}
        want = set(range(4, 4 + len(WRONG_CODE.strip().splitlines()) - 2))
        assert rc == 1 and lines == want, "mypy missed wrong uses (lines %s):\n%s" % (
            sorted(want - lines), out)
    print("ok: the package, a typed user and %d wrong uses caught" % len(want))


if __name__ == "__main__":
    main()
