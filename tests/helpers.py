"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
