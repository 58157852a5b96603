"""The watchdog: what the tool started dies with it, even when the tool is SIGKILLed.

SIGKILL (``kill -9``, the kernel's out-of-memory killer, a CI runner's last
resort) cannot be caught: the tool's own clean-up (:mod:`chaos.shutdown`)
never runs. Its children live on: the services lead process groups of their
own (:mod:`chaos.services`), and ``pg_ctl`` detaches the embedded PostgreSQL
into a session of its own (:func:`chaos.database.embedded_server`).

So the tool starts, on first need, one small process in a session of its
own (no terminal signal reaches it) that holds the read end of a pipe whose
write end only the tool holds (descriptors are not inherited: no other child
has it). The tool tells it, one JSON line at a time, what it has started
(:func:`guard`) and what it has stopped itself (:func:`release`). When the
pipe reaches its end, the tool is gone, however it ended: the watchdog stops
what is still on its list and exits. In order, each step bounded:

1. ``group``: a child's process group: SIGTERM, up to 5 s, then SIGKILL.
2. ``postgres``: a data folder: every process whose command line names it
   (the postmaster, or an ``initdb`` / ``pg_ctl`` caught mid-start) gets a
   fast shutdown (SIGINT), up to 5 s, then SIGKILL to its group.
3. ``folder``: removed with what is in it.

What it cannot clean: a schema on a server the user named (``--database-url``)
stays until the next run's owner drops it (the watchdog holds no database
client and no secret); a child started in the instant between its ``fork``
and :func:`guard`; and everything, when the watchdog is killed too (a whole
cgroup killed at once, as a container runtime does).

The watching half runs as ``python -I chaos/watchdog.py``: the standard
library only, no import of the tool, so it starts in a few milliseconds.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

#: What the watchdog can stop or remove.
Kind = Literal["group", "postgres", "folder"]
KINDS: tuple[Kind, ...] = ("group", "postgres", "folder")

#: Seconds a process group or a PostgreSQL server gets to stop before SIGKILL.
GRACE = 5.0

_lock = threading.Lock()
_watchdog: subprocess.Popen[bytes] | None = None


def _send(sign: str, kind: Kind, value: str | int) -> None:
    global _watchdog
    with _lock:
        if _watchdog is None or _watchdog.poll() is not None:
            if sign == "-":
                return                     # nothing was guarded by a live watchdog
            _watchdog = subprocess.Popen(
                [sys.executable, "-I", str(Path(__file__).resolve())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            atexit.register(_close, _watchdog)
        assert _watchdog.stdin is not None
        try:
            _watchdog.stdin.write(json.dumps([sign, kind, str(value)]).encode() + b"\n")
            _watchdog.stdin.flush()
        except OSError:                    # it died: the next guard starts another
            pass


def guard(kind: Kind, value: str | int) -> None:
    """Have the watchdog stop or remove ``value`` should the tool die with it still there."""
    _send("+", kind, value)


def release(kind: Kind, value: str | int) -> None:
    """The tool stopped or removed ``value`` itself: the watchdog forgets it (a process
    group's number may be reused by an unrelated process)."""
    _send("-", kind, value)


def guarded_folder(prefix: str) -> str:
    """A new temporary folder (as ``tempfile.mkdtemp`` makes it), guarded *before* it is
    created: a SIGKILL between the two steps then leaves a name the watchdog finds
    nothing at, never a folder it was not told of (the first guard starts the watchdog,
    which takes a moment: the window was real)."""
    for _ in range(100):
        folder = os.path.join(tempfile.gettempdir(), prefix + secrets.token_hex(4))
        guard("folder", folder)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            release("folder", folder)
            continue
        return folder
    raise FileExistsError(f"no free name for a temporary folder {prefix}* in "
                          f"{tempfile.gettempdir()}")


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A new temporary folder, guarded while it exists, removed afterwards."""
    folder = guarded_folder(prefix)
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        release("folder", folder)


def _close(process: subprocess.Popen[bytes]) -> None:
    """At the tool's normal exit: end the pipe; the watchdog cleans what is left, if
    anything, and exits."""
    if process.stdin is not None:
        try:
            process.stdin.close()
        except OSError:
            pass
    try:
        process.wait(3 * GRACE)
    except subprocess.TimeoutExpired:
        pass


# --- the watching half: the standard library only ----------------------------------

def _processes() -> Iterator[tuple[int, int, str]]:
    """Every live process: pid, process group, command line (zombies are gone)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] == "Z":
            continue
        yield int(entry), int(fields[2]), cmdline.replace(b"\0", b" ").decode(errors="replace")


def _in_group(pgid: int) -> list[int]:
    return [pid for pid, group, _ in _processes() if group == pgid]


def _naming(folder: str) -> list[int]:
    """Processes whose command line names ``folder`` (``postgres -D folder``, ...)."""
    me = os.getpid()
    return [pid for pid, _, cmdline in _processes() if folder in cmdline and pid != me]


def _signal(pids: Iterable[int], sig: int, *, group: bool = False) -> None:
    for pid in pids:
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except OSError:
            pass


def _wait(probe: Callable[[], object], seconds: float) -> bool:
    """Whether ``probe`` turned false within ``seconds``."""
    until = time.monotonic() + seconds
    while probe():
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


def clean(held: Iterable[tuple[str, str]]) -> None:
    """Stop and remove what ``held`` names: groups, then PostgreSQL servers, then folders."""
    held = list(held)
    groups = [int(v) for k, v in held if k == "group" and v.isdigit() and int(v) > 1]
    if groups:
        _signal(groups, signal.SIGTERM, group=True)
        if not _wait(lambda: any(_in_group(g) for g in groups), GRACE):
            _signal(groups, signal.SIGKILL, group=True)
            _wait(lambda: any(_in_group(g) for g in groups), GRACE)
    for kind, value in held:
        if kind == "postgres":
            _stop_postgres(os.path.realpath(value))
    for kind, value in reversed(held):
        if kind == "folder":
            shutil.rmtree(value, ignore_errors=True)


def _stop_postgres(data: str) -> None:
    """Stop every process that names the data folder ``data``: a fast shutdown, then SIGKILL
    to its group (pg_ctl starts the postmaster in a session of its own; its backends
    share its group)."""
    _signal(_naming(data), signal.SIGINT)
    if _wait(lambda: _naming(data), GRACE):
        return
    found = _naming(data)
    _signal([pid for pid, group, _ in _processes() if pid in found and group == pid],
            signal.SIGKILL, group=True)
    _signal(found, signal.SIGKILL)
    _wait(lambda: _naming(data), GRACE)


def watch(stream: IO[bytes]) -> None:
    """Read what the tool guards and releases until its end of the pipe closes; then clean."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)   # a terminal's Ctrl-C is the tool's to handle
    held: dict[tuple[str, str], None] = {}
    for line in stream:
        try:
            sign, kind, value = json.loads(line)
        except ValueError:
            continue
        if kind not in KINDS:
            continue
        if sign == "+":
            held[(kind, value)] = None
        else:
            held.pop((kind, value), None)
    clean(held)


if __name__ == "__main__":
    watch(sys.stdin.buffer)
