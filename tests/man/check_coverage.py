"""The man pages against the sources: every command, option, setting, function
and status that the code has must be mentioned in its page.

    check_coverage.py SOURCE_ROOT PAGE...   (the built pages, docs/man)

What is looked for, and where (a source whose layout changes so that nothing
is found fails too, rather than passing silently):
  keytrans.1        the commands and options of client/cli/*.c, bench's --op names
  keytransd.8       the getopt letters and long options of daemon/main.c
  keytransd.conf.5  the sections and settings of daemon/config.c and daemon/acl.c
  libkeytrans.3     the functions, constants and statuses of client/keytrans.h and
                    common/keytrans_status.h (and each function's man link in
                    docs/man/meson.build)
"""
import glob
import os
import re
import sys


def read(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as f:
        return f.read()


def strip_c_comments(text):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def page_text(path):
    """The roff source with the font changes and escapes scdoc writes undone."""
    t = read(path)
    t = re.sub(r"\\f[BIRP]|\\&|\\%", "", t)
    t = t.replace("\\(aq", "'").replace("\\-", "-").replace("\\e", "\\")
    return t


def mentioned(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def cli_words(root):
    cli = os.path.join(root, "client", "cli")
    main = strip_c_comments(read(cli, "main.c"))
    commands = re.findall(r'\{\s*"([a-z][a-z0-9-]*)",\s*cmd_\w+\s*\}', main)
    options = set()
    for path in glob.glob(os.path.join(cli, "*.c")):
        options.update(re.findall(r'"(--?[A-Za-z][A-Za-z0-9-]*)"', strip_c_comments(read(path))))
    bench_ops = re.findall(r'\[B_\w+\]\s*=\s*"([a-z-]+)"', read(cli, "bench_ops.c"))
    return {"command": commands, "option": sorted(options), "bench --op": bench_ops}


def daemon_words(root):
    main = strip_c_comments(read(root, "daemon", "main.c"))
    m = re.search(r'getopt(?:_long)?\(\s*argc,\s*argv,\s*"([^"]+)"', main)
    letters = m.group(1).replace(":", "") if m else ""
    longs = re.findall(r'\{\s*"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', main)
    return {"option": ["-" + ch for ch in letters] + ["--" + name for name in longs]}


def config_words(root):
    config = strip_c_comments(read(root, "daemon", "config.c"))
    acl = strip_c_comments(read(root, "daemon", "acl.c"))
    settings = set(re.findall(r'strcmp\(\s*name,\s*"([a-z_]+)"\s*\)', config))
    settings.update(re.findall(r'\{\s*"([a-z_]+)",\s*offsetof', config))
    settings.update(re.findall(r'"(allow_[a-z_]+)"', acl))
    sections = ["[%s]" % s for s in re.findall(r'strcmp\(\s*section,\s*"([a-z]+)"\s*\)', config)]
    sections += ["[%s " % s for s in re.findall(r'strncmp\(\s*section,\s*"([a-z]+) "', config)]
    return {"setting": sorted(settings), "section": sections}


def library_words(root):
    header = strip_c_comments(read(root, "client", "keytrans.h"))
    status = strip_c_comments(read(root, "common", "keytrans_status.h"))
    functions = sorted(set(re.findall(r"\b(kt_\w+)\s*\(", header)))
    constants = set(re.findall(r"#define\s+(KT_[A-Z0-9_]+)\b", header))
    for body in re.findall(r"enum\s+kt_\w+\s*\{([^}]*)\}", header):
        constants.update(re.findall(r"\b(KT_[A-Z0-9_]+)\b", body))
    statuses = ["KT_" + s for s in re.findall(r"X\(\s*([A-Z0-9_]+),\s*-?\d+", status)]
    return {"function": functions, "constant": sorted(constants), "status": statuses}


def main():
    root, pages = sys.argv[1], sys.argv[2:]
    wanted = {
        "keytrans.1": cli_words(root),
        "keytransd.8": daemon_words(root),
        "keytransd.conf.5": config_words(root),
        "libkeytrans.3": library_words(root),
    }
    problems = []
    seen = set()
    for path in pages:
        name = os.path.basename(path)
        if name not in wanted:
            problems.append("%s: no rule for this page in %s" % (name, __file__))
            continue
        seen.add(name)
        text = page_text(path)
        for kind, words in wanted[name].items():
            if not words:
                problems.append("%s: found no %s in the sources: update %s" % (name, kind, __file__))
            missing = [w for w in words if (w not in text if w.startswith("[") else not mentioned(text, w))]
            for w in missing:
                problems.append("%s does not mention the %s %s" % (name, kind, w))
            if words and not missing:
                print("ok: %s mentions all %d %s names" % (name, len(words), kind))
    for name in sorted(set(wanted) - seen):
        problems.append("%s was not given" % name)
    links = read(root, "docs", "man", "meson.build")
    for fn in wanted["libkeytrans.3"]["function"]:
        if "'%s'" % fn not in links:
            problems.append("docs/man/meson.build has no man link %s.3 -> libkeytrans.3" % fn)
    for p in problems:
        print("FAIL: " + p)
    if problems:
        print("%d problem(s): document them in docs/man/*.scd" % len(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
