#!/usr/bin/env python3
"""The shell blocks of README.md (```sh fences, also indented in list items), and who runs each.

A block preceded by the line

    <!-- doc-test: NAME, run by PATH -->

is run by the test PATH (a file of the tree, which names NAME), for example in the
package test's throwaway root; every other ```sh block is run by tests/docs/test_readme.py.

    readme_blocks.py README.md NAME     prints block NAME (to run it: bash -c "$(...)")
    readme_blocks.py README.md --list   one line per block: LINE NAME RUNNER
"""
import re
import sys

ANNOTATION = re.compile(r"^\s*<!--\s*doc-test:\s*([A-Za-z0-9_.-]+),\s*run by\s+(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


class Block:
    def __init__(self, line, lang, text, name=None, runner=None):
        self.line = line        # 1-based line of the opening fence
        self.lang = lang
        self.text = text
        self.name = name        # from the annotation, else None
        self.runner = runner    # the test that runs it, else None (test_readme.py does)


def blocks(path):
    """Every fenced block of the file, in order."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            # Inside a list item the block is indented like its fence.
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise SystemExit("%s:%d: a ``` block that is not closed" % (path, start + 1))
        prev = start - 1
        while prev >= 0 and lines[prev].strip() == "":
            prev -= 1
        a = ANNOTATION.match(lines[prev]) if prev >= 0 else None
        out.append(Block(start + 1, lang, "\n".join(body) + "\n",
                         a.group(1) if a else None, a.group(2) if a else None))
        i += 1
    return out


def shell_blocks(path):
    return [b for b in blocks(path) if b.lang == "sh"]


def by_name(path, name):
    found = [b for b in shell_blocks(path) if b.name == name]
    if len(found) != 1:
        raise SystemExit("%s: %d ```sh blocks named %s (want exactly one)" % (path, len(found), name))
    return found[0]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    if sys.argv[2] == "--list":
        for b in shell_blocks(sys.argv[1]):
            print(b.line, b.name or "-", b.runner or "tests/docs/test_readme.py")
    else:
        sys.stdout.write(by_name(sys.argv[1], sys.argv[2]).text)


if __name__ == "__main__":
    main()
