"""The loopback rule and secrecy hold for the reference run's database too.

Scenario: a user passes ``--database-url`` (or ``DATABASE_URL``) to ``run``,
``replay`` or ``reference``. A server off loopback is refused before anything
connects (exit 2, one line); the URL's password never appears on a command
line (``ps`` shows those to every user of the machine).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from chaos.errors import UsageError
from chaos.run import reference_run
from chaos.safety import check_database_host
from tests.helpers import run_tool

OFF_LOOPBACK = "postgresql://chaos:pw-not-here@10.20.30.40:5432/shop"


@pytest.mark.parametrize("url", [OFF_LOOPBACK, "postgresql://db.example.com/x",
                                 "postgres://[2001:db8::1]:5432/x"])
def test_database_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="not on loopback"):
        check_database_host(url, what="--database-url")


@pytest.mark.parametrize("url", ["postgresql://127.0.0.1:5432/test", "postgresql://localhost/x",
                                 "postgresql:///x?host=/run/postgresql",
                                 "postgresql://u:p@[::1]:5432/x"])
def test_database_on_loopback_is_accepted(url: str) -> None:
    assert check_database_host(url, what="--database-url") == url


def test_database_allowed_by_name_is_accepted() -> None:
    assert check_database_host(OFF_LOOPBACK, what="x", allow_hosts=["10.20.30.40"])


@pytest.mark.e2e
@pytest.mark.parametrize("command", [["run"], ["replay", "tests/regressions"]])
def test_run_and_replay_refuse_a_database_off_loopback(command: list[str], tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    args = [*command, "--database-url", OFF_LOOPBACK]
    if command == ["run"]:
        args += ["--report", str(tmp_path / "r.json")]
    else:
        args[1] = str(root / args[1])
    done = run_tool(*args, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "10.20.30.40 is not on loopback" in done.stderr
    assert "pw-not-here" not in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []       # nothing started, nothing written


@pytest.mark.e2e
def test_reference_refuses_a_database_off_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": OFF_LOOPBACK, "CHAOS_WEBHOOK_SECRET": "whsec_test"}
    import subprocess

    done = subprocess.run([sys.executable, "-m", "chaos", "reference", "--port", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "not on loopback" in done.stderr and "pw-not-here" not in done.stderr


@pytest.mark.e2e
def test_no_database_password_on_a_command_line(server_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference child gets the database URL through its environment: with a
    password in the URL (ignored by a trust-auth server), no command line shows it."""
    parts = urlsplit(server_url)
    if parts.password or not parts.hostname:
        pytest.skip("needs a URL without a password, on a TCP host")
    password = f"pw-{uuid.uuid4().hex[:12]}"
    user = parts.username or os.environ.get("PGUSER") or "postgres"
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    url = urlunsplit(parts._replace(netloc=netloc))
    marker = f"chaos-cmdline-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("CHAOS_CMDLINE_MARK", marker)
    with reference_run(database_url=url) as runner:
        assert runner.target.base_url.startswith("http://127.0.0.1:")
        children = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    children.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
        assert any(b"reference" in c for c in children), children
        assert not any(password.encode() in c for c in children)
