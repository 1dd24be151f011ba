"""Child processes that never outlive edgeslm: the emulator and the PlatformIO build.

Each child starts in a process group of its own (so a terminal's Ctrl-C reaches only edgeslm,
which then stops the child itself) and asks Linux to kill it when edgeslm dies, however it dies
(PR_SET_PDEATHSIG; SIGKILL cannot be caught, but this still fires):

    spawn(argv)             one process (QEMU): a small shim sets the death signal, then execs it,
                            so the Popen's pid is the program's own
    spawn(argv, tree=True)  a process tree (PlatformIO -> SCons -> gcc): a small guard leads the
                            group, runs the program, and kills the whole group when edgeslm dies
    stop(proc)              SIGTERM to the whole group, SIGKILL after a grace period; waits
    run(argv)               spawn(tree=True) + wait, its output captured, stopped on every exit path

The death signal is tied to the thread that started the child: start children from the main
thread (the CLI and the tests do).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

# argv: parent pid, "one" | "tree", program argv...
_GUARD = r"""
import ctypes, os, signal, subprocess, sys, time
parent, mode, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL if mode == "one" else signal.SIGTERM)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != parent:          # edgeslm died before the death signal was set
    os._exit(1)
if mode == "one":
    os.execvp(argv[0], argv)

def stop_group(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
        time.sleep(1.0)
    finally:
        os.killpg(0, signal.SIGKILL)

for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, stop_group)
try:
    child = subprocess.Popen(argv)
except OSError as e:
    sys.stderr.write("cannot start %s: %s\n" % (argv[0], e))
    os._exit(127)
code = child.wait()
os._exit(code if code >= 0 else 128 - code)
"""


def spawn(argv: list[str], tree: bool = False, **popen_kwargs) -> subprocess.Popen:
    """Start `argv` in a new process group that dies with this process (see the module doc)."""
    cmd = [sys.executable, "-S", "-c", _GUARD, str(os.getpid()), "tree" if tree else "one", *argv]
    return subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)


def stop(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """Stop the child's whole process group: SIGTERM, then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass                          # the group is gone
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGKILL or not _group_alive(proc.pid):
                return
        except subprocess.TimeoutExpired:
            continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def run(argv: list[str], env: dict | None = None, timeout: float | None = None) -> tuple[int, str]:
    """Run a process tree to its end: (exit code, stdout and stderr as text). Its output goes to a
    temporary file (removed afterwards), not a pipe, so it never blocks on a reader that went away.
    Whatever interrupts the wait (Ctrl-C, a signal, a timeout) stops the whole tree first."""
    with tempfile.TemporaryFile() as out:
        proc = spawn(argv, tree=True, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     env=env)
        try:
            code = proc.wait(timeout=timeout)
        except BaseException:
            stop(proc)
            raise
        stop(proc, grace=0.5)             # stragglers a build left in its group
        out.seek(0)
        return code, out.read().decode(errors="replace")
