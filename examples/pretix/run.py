"""``nox -s pretix``: real pretix, set up from PyPI, driven by the tool through
``examples/pretix/chaos.toml`` alone, and everything removed afterwards.

Steps, each timed and printed: pretix's own venv (``build/pretix-venv``, made
once: ``pip install pretix==PRETIX gunicorn``), a database of its own on the
PostgreSQL server (``--database-url``, else ``$DATABASE_URL``, else the tool's
embedded server) with pretix's migrations and the shop (``shop.py setup``),
pretix under gunicorn on loopback (``shop.py serve``), then ``python -m chaos``
with the config and any further arguments (default ``--examples 100``; a
failure's case goes to ``build/pretix/failures``, and ``replay CASE`` replays it
against a fresh pretix); the tool starts its fake Stripe on the port pretix's
Stripe client was pointed at.
Afterwards pretix is stopped and its database dropped; the exit code is the
tool's (0 pass, 1 invariant failure, 2 usage, 3 infrastructure); the
timings also go to ``pretix-timings.json`` beside the tool's report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from chaos.database import check_database_url, embedded_server, redact_url
from chaos.errors import ChaosError, InfrastructureError
from chaos.services import stop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: The newest pretix that installs here on Python 3.11 (2026-12-03).
PRETIX = "pretix==2026.8.0"
#: pretix answers its first request once Django has loaded: seconds to wait for it.
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pretix_venv(venv: Path) -> Path:
    """pretix's own venv, made once; its python."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "gunicorn").exists():
        for step in ([sys.executable, "-m", "venv", str(venv)],
                     [str(python), "-m", "pip", "install", "-q", PRETIX, "gunicorn"]):
            if subprocess.run(step).returncode != 0:
                raise InfrastructureError(f"{' '.join(step[-4:])} failed: see its output "
                                          f"above (PyPI reachable? remove {venv} to retry)")
    return python


@contextlib.contextmanager
def database_server(url: str | None) -> Iterator[str]:
    """The server pretix's database goes on: the one given, else an embedded one."""
    if url:
        check_database_url(url)
        yield url
    else:
        with embedded_server() as embedded:
            yield embedded


def with_database(server_url: str, name: str) -> str:
    """``server_url`` naming database ``name`` instead (a socket URL keeps its ``?host=``)."""
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def shop(python: Path, step: str, database_url: str, *extra: str,
         log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """``shop.py step`` with pretix's python; with ``log``, in a process group of its
    own (the server: :func:`chaos.services.stop` ends gunicorn and its worker)."""
    return subprocess.Popen([str(python), str(HERE / "shop.py"), step,
                             "--database-url", database_url, *extra], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT if log else None,
                            stdin=subprocess.DEVNULL if log else None,
                            start_new_session=log is not None)


def wait_for_pretix(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll pretix's webhook door until it answers (any status) or the deadline passes."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfrastructureError(f"pretix stopped while starting (exit "
                                      f"{process.returncode}): see {log}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2, trust_env=False)
            return
        time.sleep(0.2)
    raise InfrastructureError(f"pretix did not answer at {url} within {START_SECONDS:g} s: "
                              f"see {log}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s pretix --", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL server for pretix's database (default: $DATABASE_URL, "
                        "else an embedded throwaway server)")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "pretix-venv")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "pretix",
                        help="pretix's data folder and log, the tool's report")
    args, tool_args = parser.parse_known_args(argv)
    if tool_args[:1] != ["replay"] and not any(
            a == "--examples" or a.startswith("--examples=") for a in tool_args):
        tool_args = ["--examples", "100", *tool_args]
    args.out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    if args.database_url:
        try:
            check_database_url(args.database_url)   # before pip: a typo costs no install
        except ChaosError as exc:
            print(f"nox -s pretix: {exc}", file=sys.stderr)
            return exc.exit_code
    started = time.monotonic()
    try:
        python = pretix_venv(args.venv)
        times["pretix venv"] = time.monotonic() - started
        print(f"pretix venv: {times['pretix venv']:.1f} s ({args.venv})", flush=True)
        with database_server(args.database_url) as server:
            return run(python, server, args.out, tool_args, times)
    except ChaosError as exc:
        print(f"nox -s pretix: {exc}", file=sys.stderr)
        return exc.exit_code


def run(python: Path, server: str, out: Path, tool_args: list[str],
        times: dict[str, float]) -> int:
    database = with_database(server, f"pretix_chaos_{secrets.token_hex(4)}")
    pretix_port, stripe_port = free_port(), free_port()
    log = out / "pretix.log"
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    common = ("--data-dir", str(out / "data"), "--port", str(pretix_port),
              "--stripe-api-base", stripe_base)
    began = time.monotonic()
    setup = shop(python, "setup", database, *common)  # drops what it made if it fails
    if setup.wait() != 0:
        print(f"nox -s pretix: pretix's set-up failed (exit {setup.returncode}) on "
              f"{redact_url(database)}: see the line above", file=sys.stderr)
        return 3
    try:
        times["pretix set-up (database, migrations, shop)"] = time.monotonic() - began
        began = time.monotonic()
        with open(log, "wb") as log_f:
            server_process = shop(python, "serve", database, *common, log=log_f)
        try:
            base = f"http://127.0.0.1:{pretix_port}"
            wait_for_pretix(base + "/chaos/tickets/stripe/webhook/", server_process, log)
            times["pretix start"] = time.monotonic() - began
            began = time.monotonic()
            target = ["--config", str(HERE / "chaos.toml"), "--set",
                      f'target.base_url="{base}"', "--set", f"stripe.port={stripe_port}"]
            if tool_args[:1] == ["replay"]:   # the line a failure prints: replay its case
                command = ["replay", *tool_args[1:], *target]
            else:
                command = [*target, "--report", str(out / "chaos-report.json"),
                           "--corpus", str(out / "failures"), *tool_args]
            tool = subprocess.run(
                [sys.executable, "-m", "chaos", *command],
                cwd=ROOT, env={**os.environ, "PRETIX_CHAOS_DATABASE_URL": database,
                               "CHAOS_INVOCATION": "nox -s pretix --"})
            times["chaos run"] = time.monotonic() - began
        finally:
            stop(server_process, timeout=10.0)
        shop(python, "summary", database, *common).wait()
    finally:
        drop = shop(python, "drop", database, *common)
        drop.wait()
    print("pretix timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
          flush=True)
    (out / "pretix-timings.json").write_text(json.dumps(
        {"seconds": {k: round(v, 1) for k, v in times.items()}, "pretix": PRETIX,
         "exit_code": tool.returncode}, indent=2) + "\n")
    return tool.returncode


if __name__ == "__main__":
    sys.exit(main())
