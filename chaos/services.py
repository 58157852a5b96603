"""Start and stop the tool's own services (fake Stripe, reference service).

Each runs in its own process, as in production: ``python -m chaos NAME
--port 0 ...``. The child binds the port itself and prints
``listening on http://127.0.0.1:PORT``, so there is no race for a free port.
Start-up is bounded; a child that dies early is reported with the last line
it wrote.

Each child leads its own process group, in a session of its own: a Ctrl-C at
the terminal (or nox's) reaches the tool alone, and the tool stops its
children in order (the reference service before the fake Stripe it calls),
each group with SIGTERM, a bounded wait, then SIGKILL. A secret the child
needs travels in its environment, never on its command line (``ps`` shows
that to every user of the machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from chaos.errors import EXIT_USAGE, InfrastructureError, UsageError
from chaos.shutdown import deferred
from chaos.watchdog import guard, release

LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


@contextlib.contextmanager
def running(name: str, args: Sequence[str], *, workdir: Path, port: int = 0,
            env: dict[str, str] | None = None, startup_timeout: float = 30.0,
            health_path: str = "/_chaos/health") -> Iterator[Service]:
    """Run ``python -m chaos NAME ARGS --port PORT``; yield it once it answers its health path.

    A child that exits with code 2 refused its arguments (a port in use, say):
    that is the user's to fix, so it is a UsageError, not an infrastructure one.
    """
    out = workdir / f"{name}.out"
    log = workdir / f"{name}.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        # deferred: a signal must not land between the start of the child and this
        # frame knowing it (the child would be orphaned); it is raised right after
        with deferred(), open(out, "wb") as out_f, open(log, "wb") as log_f:
            process = subprocess.Popen(
                [sys.executable, "-m", "chaos", name, "--port", str(port), *args],
                stdout=out_f, stderr=log_f, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
            guard("group", process.pid)   # stopped even if the tool is SIGKILLed
        url = _wait_listening(name, process, out, log, startup_timeout)
        _wait_healthy(name, url + health_path, process, log, startup_timeout)
        yield Service(name=name, url=url, process=process, log=log)
    finally:
        if process is not None:
            stop(process)
            release("group", process.pid)


def _wait_listening(name: str, process: subprocess.Popen[bytes], out: Path, log: Path,
                    timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTENING.search(out.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            said = _last_line(log) or _last_line(out) or "no output"
            if process.returncode == EXIT_USAGE:
                raise UsageError(f"the {name} service refused to start: "
                                 f"{said.removeprefix('payment-chaos: error: ')}")
            raise InfrastructureError(
                f"the {name} service exited with code {process.returncode} before listening: "
                f"{said}"
            )
        time.sleep(0.02)
    raise InfrastructureError(f"the {name} service did not start within {timeout:g} s (log: {log})")


def _wait_healthy(name: str, url: str, process: subprocess.Popen[bytes], log: Path,
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfrastructureError(
                f"the {name} service exited with code {process.returncode}: "
                f"{_last_line(log) or 'no output'}"
            )
        try:
            response = httpx.get(url, timeout=2.0, trust_env=False)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise InfrastructureError(f"the {name} service did not become healthy within "
                              f"{timeout:g} s ({last}; log: {log})")


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop the child's process group: SIGTERM, ``timeout`` seconds to exit, then
    SIGKILL. Whatever it started in its group goes with it."""
    with deferred():
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            try:
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, sig)   # the child leads its own group
                else:
                    process.send_signal(sig)      # a child started in the caller's group
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
