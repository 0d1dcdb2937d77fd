"""The Python client as a pip package, offline and in temporary directories only:

1. `pip wheel --no-deps --no-build-isolation` of a copy of client/python (the host's
   setuptools and wheel, no index) builds a wheel holding every file of the package,
   py.typed included, with the version of keytrans/_version.py;
2. a fresh venv (no system site-packages) gets it with `pip install --no-index`, and its
   python imports keytrans and keytrans.aio from the venv, py.typed beside them;
3. when Debian's wheels of setuptools and wheel are there (/usr/share/python-wheels:
   python3-setuptools-whl, python3-wheel-whl), `pip install <the copy>` in another venv
   builds it as pip normally does, in an isolated build environment, from those wheels.

Also checks that client/python/meson.build installs exactly the package's files.
Run by meson (test 'python-client-packaging')."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_WHEELS = "/usr/share/python-wheels"
CHECK = r"""
import os, sys, keytrans, keytrans.aio
pkg = os.path.dirname(keytrans.__file__)
assert pkg.startswith(sys.prefix + os.sep), (pkg, sys.prefix)
assert sys.prefix != sys.base_prefix, "not a venv"
assert not any(p.endswith("dist-packages") for p in sys.path), sys.path
assert os.path.isfile(os.path.join(pkg, "py.typed")), os.listdir(pkg)
assert keytrans.aio.__file__.startswith(pkg)
from importlib.metadata import version
print(keytrans.__version__, version("keytrans"), pkg)
"""


def package_files():
    return sorted(f for f in os.listdir(os.path.join(HERE, "keytrans"))
                  if f.endswith(".py") or f == "py.typed")


def version():
    text = open(os.path.join(HERE, "keytrans", "_version.py")).read()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def builder():
    """A python with pip, setuptools and wheel (this one, else Debian's /usr/bin/python3:
    meson may have found another python3 first, a pyenv one say), or None."""
    probe = "import setuptools, wheel, pip, venv, ensurepip"
    for exe in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(exe) and subprocess.run([exe, "-c", probe],
                                                  capture_output=True).returncode == 0:
            return exe
    return None


def sh(env, *cmd, cwd):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                     r.stderr))
    return r.stdout


def main():
    files = package_files()
    with open(os.path.join(HERE, "meson.build")) as f:
        listed = sorted(re.findall(r"'keytrans/([^']+)'", f.read()))
    assert listed == files, ("meson.build installs", listed, "the package has", files)
    assert "py.typed" in files and "aio.py" in files

    python = builder()
    if python is None:
        print("skipped: no python3 with pip, setuptools, wheel and venv (Debian: python3-pip "
              "python3-setuptools python3-wheel python3-venv)")
        sys.exit(77)
    print("building with %s" % python)
    tmp = tempfile.mkdtemp(prefix="kt-py-pkg-")
    try:
        # Nothing outside tmp: pip's cache and configuration, the build's files.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
        env.update(HOME=os.path.join(tmp, "home"), XDG_CACHE_HOME=os.path.join(tmp, "cache"),
                   XDG_CONFIG_HOME=os.path.join(tmp, "config"), PIP_NO_INDEX="1",
                   PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
        os.mkdir(env["HOME"])
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        for f in ("pyproject.toml", "README.md"):
            shutil.copy(os.path.join(HERE, f), src)
        shutil.copytree(os.path.join(HERE, "keytrans"), os.path.join(src, "keytrans"),
                        ignore=shutil.ignore_patterns("__pycache__"))

        dist = os.path.join(tmp, "dist")
        sh(env, python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--no-index", "-w", dist, src, cwd=tmp)
        wheels = os.listdir(dist)
        assert wheels == ["keytrans-%s-py3-none-any.whl" % version()], wheels
        wheel = os.path.join(dist, wheels[0])
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            meta = z.read("keytrans-%s.dist-info/METADATA" % version()).decode()
        assert sorted(n[len("keytrans/"):] for n in names if n.startswith("keytrans/")) == files
        assert not [n for n in names if "test_" in n], names
        assert "Version: %s\n" % version() in meta and "Requires-Python: >=3.9" in meta, meta
        print("wheel: %s (%d files)" % (wheels[0], len(names)))

        venv = os.path.join(tmp, "venv")
        sh(env, python, "-m", "venv", venv, cwd=tmp)
        vpy = os.path.join(venv, "bin", "python")
        sh(env, vpy, "-m", "pip", "install", "--no-index", "--no-deps", wheel, cwd=tmp)
        out = sh(env, vpy, "-c", CHECK, cwd=tmp).split()
        assert out[:2] == [version(), version()] and out[2].startswith(venv), out
        print("venv from the wheel: keytrans %s in %s" % (out[0], out[2]))

        have = os.listdir(DEBIAN_WHEELS) if os.path.isdir(DEBIAN_WHEELS) else []
        if not any(w.startswith("setuptools-") for w in have) or \
                not any(w.startswith("wheel-") for w in have):
            print("pip install of the source tree: not tried (needs python3-setuptools-whl "
                  "and python3-wheel-whl in %s)" % DEBIAN_WHEELS)
            return
        venv2 = os.path.join(tmp, "venv2")
        sh(env, python, "-m", "venv", venv2, cwd=tmp)
        vpy2 = os.path.join(venv2, "bin", "python")
        # Build isolation gets setuptools and wheel from Debian's wheels, as from an index.
        sh(env, vpy2, "-m", "pip", "install", "--no-index", "--find-links", DEBIAN_WHEELS, src,
           cwd=tmp)
        out = sh(env, vpy2, "-c", CHECK, cwd=tmp).split()
        assert out[:2] == [version(), version()] and out[2].startswith(venv2), out
        print("venv from pip install of the source tree: keytrans %s in %s" % (out[0], out[2]))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
    print("ok")
