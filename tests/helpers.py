"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from chaos.history import CheckoutRef, DeliveryRef, Ref

ROOT = Path(__file__).resolve().parent.parent
LISTENING = "listening on "

LOCAL_SERVER = "postgresql://127.0.0.1:5432/test"


def local_server_available() -> bool:
    """Is the machine's own PostgreSQL (127.0.0.1:5432, database test) there?"""
    from chaos.database import Database

    try:
        Database(LOCAL_SERVER).close()
    except Exception:
        return False
    return True


def run_tool(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m chaos ARGS`` as a user runs it; bounded in time."""
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def example_shop(module: str, *, server_url: str, schema: str, stripe_api_base: str,
                 workdir: Path, env: Mapping[str, str], timeout: float = 30.0) -> Iterator[str]:
    """``python -m MODULE`` (one of the tests' example shops) in its own process, with
    ``env`` added to the environment; yields its URL once ``/healthz`` answers 200, and
    stops it however the block ends."""
    import httpx

    from chaos.services import stop

    name = module.rpartition(".")[2]
    out, err = workdir / f"{name}-{schema}.out", workdir / f"{name}-{schema}.log"
    with open(out, "wb") as out_f, open(err, "wb") as err_f:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", "--database-url", server_url,
             "--schema", schema, "--stripe-api-base", stripe_api_base],
            stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            said = out.read_text()
            if LISTENING in said:
                url = said.split(LISTENING, 1)[1].split()[0]
            elif process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{module} did not start: {err.read_text()[-500:]}")
            else:
                time.sleep(0.05)
        assert httpx.get(url + "/healthz", timeout=5, trust_env=False).status_code == 200
        yield url
    finally:
        stop(process)


def ref_of(kind: str, **fields: Any) -> Ref:
    """The typed reference a request of ``kind`` carries, as the client builds it."""
    typed: type[Ref] = DeliveryRef if kind == "deliver" else CheckoutRef if kind == "checkout" \
        else Ref
    return typed(**fields)
