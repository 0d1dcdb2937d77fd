#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal and types the PINs it asks for, as a user would.

    answer_prompts.py COMMAND...

softhsm2-util, pkcs11-tool and `read -s` ask on the terminal; the README's blocks leave the
PINs out of their command lines on purpose, so a test that runs them has to answer. A prompt
is the output's last line, ending in ":" (and spaces), naming a PIN: "SO PIN" gets $KT_SO_PIN,
any other $KT_PIN (environment variables: no PIN on a command line); apt's "[Y/n]" gets "y". The command's output is
copied to stdout; the exit status is the command's, 124 if it has not ended after
$KT_PROMPT_TIMEOUT seconds (default 300; a question nobody answers ends so).
"""
import os
import pty
import re
import select
import sys
import termios
import time

PROMPT = re.compile(rb"([^\n]*(?::|\[Y/n\]))[ \t]*\Z")


def answer_for(prompt):
    if prompt.endswith(b"[Y/n]"):
        return "y"
    if re.search(rb"SO PIN", prompt, re.I):
        return os.environ["KT_SO_PIN"]
    if re.search(rb"PIN", prompt, re.I):
        return os.environ["KT_PIN"]
    return None


def echo_off(fd, within=5.0):
    """Waits (at most within seconds) until the program has turned the terminal's echo off, as
    PIN prompts do: getpass() flushes what was typed before that (TCSAFLUSH), so a PIN typed
    too early is lost and the program waits for ever."""
    end = time.monotonic() + within
    while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.05)    # the flush comes with the change of mode; let it be done


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    deadline = time.monotonic() + float(os.environ.get("KT_PROMPT_TIMEOUT", "300"))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("answer_prompts.py: still running after the timeout", file=sys.stderr)
            return 124
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:         # EIO: the terminal's last holder has gone
            data = b""
        if not data:
            break
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        pending = (pending + data)[-512:]
        m = PROMPT.search(pending)
        if m:
            reply = answer_for(m.group(1))
            if reply is not None:
                if b"PIN" in m.group(1).upper():
                    echo_off(fd)
                os.write(fd, reply.encode() + b"\n")
                pending = b""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
