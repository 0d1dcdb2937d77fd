"""keytrans -o / --key-out: where the CLI writes its results. A secret (unwrap's key blob,
wrap's --key-out, copp-sign's signature) goes only where nothing, or a private regular file
of the caller's, stands: never into a file another user made in a sticky folder (/tmp), nor
through a symbolic link, nor where group or others may read. Public results follow no
symbolic link. Needs root: other users are forked children (uid 4242)."""
import glob
import json
import os
import stat
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import KEYS, Daemon, Workspace, as_user, run_tests, vectors  # noqa: E402

OTHER = 4242                # the other user: makes traps, or is the caller
AES_128 = 0x660e
KEY = bytes(range(16))
D = None                    # the daemon: root may use every key, OTHER may unwrap rsa1024
ROOT = None                 # the test's folder, 0755 so that OTHER reaches into it
STICKY = None               # ROOT/sticky, mode 1777 like /tmp
BLOBS = {}                  # key name -> a SIMPLEBLOB of KEY, file path
_counter = [0]


def keyblob(alg, key):
    """PLAINTEXTKEYBLOB: 08 02 0000 | alg LE32 | len LE32 | key."""
    return bytes([8, 2, 0, 0]) + struct.pack("<II", alg, len(key)) + key


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fresh(stem, folder=None):
    _counter[0] += 1
    return os.path.join(folder or STICKY, "%s-%d" % (stem, _counter[0]))


def kt(*args, uid=None, umask=-1):
    """The CLI as root, or as uid (its own group, no others)."""
    user = {} if uid is None else dict(user=uid, group=uid, extra_groups=[])
    r = subprocess.run([os.environ["KT_CLI"], "-s", D.socket] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, umask=umask,
                       **user)
    assert b"Sanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr.decode()
    return r


def refused(*args, why, uid=None, absent=None):
    """Exit 1, one line "keytrans: OUTPUT: refusing ...: <why>"; and the same with --json.
    Nothing is left at absent (an output the refusal stopped, as wrap's -o)."""
    r = kt(*args, uid=uid)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert r.stdout == b"", r.stdout
    line = r.stderr.decode()
    assert line.startswith("keytrans: OUTPUT: refusing to write") and line.count("\n") == 1, line
    assert why in line, (why, line)
    r = kt("--json", *args, uid=uid)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    obj = json.loads(r.stdout)
    assert obj["error"] == "OUTPUT" and why in obj["message"], obj
    assert absent is None or not os.path.lexists(absent), absent


def make_file(path, data, mode):
    """Run as the other user: its file, mode exactly as given (the umask does not apply)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.fchmod(fd, mode)
    os.close(fd)


def make_link(path, target):
    os.symlink(target, path)


def root_file(data, mode=0o600):
    """A file of root's outside the sticky folder: what a planted link aims at."""
    path = fresh("precious", ROOT)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def untouched(path, data, uid, mode):
    st = os.lstat(path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, mode), (path, st)
    assert read(path) == data, (path, read(path))


def no_leftovers():
    """No temporary file of keytrans's is left in any folder of the test."""
    left = glob.glob(os.path.join(ROOT, "**", ".keytrans-*"), recursive=True)
    assert left == [], left


def private_result(path, want, uid=0):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == uid, (path, st)
    assert stat.S_IMODE(st.st_mode) == 0o600, (path, oct(st.st_mode))
    assert read(path) == want, (path, read(path).hex())


def check_traps(args_for, what, also=None):
    """args_for(path): the CLI's arguments with the secret going to path. Every trap is
    refused and left as it was (and no file is left at also); yields the paths written then:
    absent, and a file of the caller's."""
    # Another user's file, readable by all (the reported attack), or only by that user.
    for mode in (0o666, 0o600):
        trap = fresh("victim.key")
        as_user(make_file, trap, b"", mode, uid=OTHER, gid=OTHER)
        refused(*args_for(trap), why="belongs to uid %d" % OTHER, absent=also)
        untouched(trap, b"", OTHER, mode)
    # A link another user planted towards a file of root's, and one of root's own.
    target = root_file(b"precious")
    trap = fresh("link.key")
    as_user(make_link, trap, target, uid=OTHER, gid=OTHER)
    refused(*args_for(trap), why="symbolic link", absent=also)
    untouched(target, b"precious", 0, 0o600)
    own_link = fresh("own-link.key", ROOT)
    os.symlink(target, own_link)
    refused(*args_for(own_link), why="symbolic link", absent=also)
    untouched(target, b"precious", 0, 0o600)
    # A dangling link: following it would create the file where the link points.
    trap = fresh("dangling.key")
    as_user(make_link, trap, os.path.join(ROOT, "made-by-link"), uid=OTHER, gid=OTHER)
    refused(*args_for(trap), why="symbolic link", absent=also)
    assert not os.path.lexists(os.path.join(ROOT, "made-by-link"))
    # The caller's own file that group or others may read; a folder.
    mine = root_file(b"old", 0o644)
    refused(*args_for(mine), why="mode 0644", absent=also)
    untouched(mine, b"old", 0, 0o644)
    folder = fresh("folder")
    os.mkdir(folder, 0o700)
    refused(*args_for(folder), why="not a regular file", absent=also)
    assert os.listdir(folder) == []
    no_leftovers()
    # Absent: created 0600 whatever the umask; the caller's 0600 file: replaced, still 0600.
    for path in (fresh(what), root_file(b"a much longer old content " * 20)):
        r = kt(*args_for(path), umask=0)
        assert r.returncode == 0, (what, r.returncode, r.stdout, r.stderr)
        yield path, r
    no_leftovers()


def test_unwrap_secret():
    def args(path):
        return ("unwrap", "rsa2048", "-i", BLOBS["rsa2048"], "-o", path)

    for path, _ in check_traps(args, "session.key"):
        private_result(path, keyblob(AES_128, KEY))


def test_wrap_key_out_secret():
    """--key-out as unwrap's -o; a refused --key-out leaves no -o file behind either."""
    blob_out = fresh("blob", ROOT)

    def args(path):
        return ("wrap", "--to-key", "rsa2048", "--alg", "AES_128", "--generate",
                "--key-out", path, "-o", blob_out)

    written = 0
    for path, r in check_traps(args, "generated.key", also=blob_out):
        # The key goes to --key-out only, not also to stdout.
        assert r.stdout == b"alg: CALG_AES_128\nkey_len: 16\n", r.stdout
        key = read(path)[12:]
        private_result(path, keyblob(AES_128, key))
        r = kt("--json", "unwrap", "rsa2048", "-i", blob_out)
        assert json.loads(r.stdout)["key"] == key.hex(), r.stdout
        os.unlink(blob_out)
        written += 1
    assert written == 2


def test_copp_sign_secret():
    """The signature carries the AES key for whoever may open it: a secret too."""
    rnd = os.urandom(16)

    def args(path):
        return ("copp-sign", "--to-key", "rsa2048", "--random", rnd.hex(), "--aes-key",
                "ab" * 16, "-o", path)

    for path, _ in check_traps(args, "sig.bin"):
        assert len(read(path)) == 256 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        r = kt("--json", "copp-open", "rsa2048", "-i", path, "--expect-random", rnd.hex())
        assert json.loads(r.stdout)["aes_key"] == "ab" * 16, r.stdout


def test_failed_request_leaves_targets():
    """A refused request writes nothing: no file appears, an existing one stays."""
    absent = fresh("absent.key")
    r = kt("unwrap", "nosuch", "-i", BLOBS["rsa2048"], "-o", absent)
    assert r.returncode == 1 and b"UNKNOWN_KEY" in r.stderr, r.stderr
    assert not os.path.lexists(absent)
    mine = root_file(b"keep me")
    r = kt("unwrap", "nosuch", "-i", BLOBS["rsa2048"], "-o", mine)
    assert r.returncode == 1 and b"UNKNOWN_KEY" in r.stderr, r.stderr
    untouched(mine, b"keep me", 0, 0o600)
    no_leftovers()


def test_other_caller():
    """The rules hold for any caller: uid 4242 may not replace root's file, only its own."""
    theirs = root_file(b"root's")
    refused("unwrap", "rsa1024", "-i", BLOBS["rsa1024"], "-o", theirs, why="belongs to uid 0",
            uid=OTHER)
    untouched(theirs, b"root's", 0, 0o600)
    in_sticky = fresh("root.key")
    with open(in_sticky, "wb") as f:
        f.write(b"root's")
    os.chmod(in_sticky, 0o600)
    refused("unwrap", "rsa1024", "-i", BLOBS["rsa1024"], "-o", in_sticky,
            why="belongs to uid 0", uid=OTHER)
    untouched(in_sticky, b"root's", 0, 0o600)
    own = fresh("own.key")
    as_user(make_file, own, b"old old old old old old old old", 0o600, uid=OTHER, gid=OTHER)
    for path in (own, fresh("new.key")):
        r = kt("unwrap", "rsa1024", "-i", BLOBS["rsa1024"], "-o", path, uid=OTHER)
        assert r.returncode == 0, (r.stdout, r.stderr)
        private_result(path, keyblob(AES_128, KEY), uid=OTHER)
    no_leftovers()


def test_public_output_follows_no_link():
    """pubkey and wrap's blob: an existing file is overwritten as before, a link is refused."""
    want = read(vectors("keys", "rsa1024.pub.blob"))
    target = root_file(b"precious")
    trap = fresh("pub.link")
    as_user(make_link, trap, target, uid=OTHER, gid=OTHER)
    refused("pubkey", "rsa1024", "-o", trap, why="symbolic link")
    refused("wrap", "--to-key", "rsa1024", "--alg", "AES_128", "--key", KEY.hex(), "-o", trap,
            why="symbolic link")
    untouched(target, b"precious", 0, 0o600)
    mine = root_file(b"old contents " * 100, 0o644)
    r = kt("pubkey", "rsa1024", "-o", mine)
    assert r.returncode == 0 and read(mine) == want, r.stderr
    fresh_pub = fresh("pub.blob")
    r = kt("pubkey", "rsa1024", "-o", fresh_pub)
    assert r.returncode == 0 and read(fresh_pub) == want, r.stderr


def make_blobs():
    for name in ("rsa1024", "rsa2048"):
        path = os.path.join(ROOT, name + ".blob")
        r = kt("wrap", "--to-key", name, "--alg", "AES_128", "--key", KEY.hex(), "-o", path)
        assert r.returncode == 0, r.stderr
        os.chmod(path, 0o644)
        BLOBS[name] = path


def main():
    global D, ROOT, STICKY
    if os.geteuid() != 0:
        print("SKIP: needs root (other users are forked children)")
        sys.exit(77)
    with Workspace() as root:
        ROOT = root
        os.chmod(ROOT, 0o755)
        STICKY = os.path.join(ROOT, "sticky")
        os.mkdir(STICKY)
        os.chmod(STICKY, 0o1777)
        keys = dict(KEYS, rsa1024=KEYS["rsa1024"] + ("allow_unwrap = uid:%d" % OTHER,))
        D = Daemon(ROOT, keys=keys, extra_daemon="socket_mode = 0666")
        try:
            make_blobs()
            run_tests([test_unwrap_secret, test_wrap_key_out_secret, test_copp_sign_secret,
                       test_failed_request_leaves_targets, test_other_caller,
                       test_public_output_follows_no_link])
        finally:
            if D.alive():
                D.stop()


if __name__ == "__main__":
    main()
