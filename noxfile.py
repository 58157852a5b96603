"""Sessions of payment-chaos. ``nox -l`` lists them; options after ``--`` go to the tool."""

from __future__ import annotations

import sys

import nox
from nox.command import CommandFailed

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]


def _tool(session: nox.Session, *args: str) -> None:
    """Run ``python -m chaos`` and exit with its own code (0 pass, 1 fail, 2 usage, 3 error)."""
    try:
        session.run("python", "-m", "chaos", *args)
    except CommandFailed as exc:
        sys.exit(exc.return_code or 1)


@nox.session
def chaos(session: nox.Session) -> None:
    """Search for invariant violations: embedded PostgreSQL + fake Stripe + reference service.

    Examples: ``nox -s chaos``; ``nox -s chaos -- --bug no-dedup``;
    ``nox -s chaos -- --database-url postgresql://127.0.0.1:5432/test``;
    ``nox -s chaos -- replay chaos-failures/CASE.json``.
    """
    session.install(".")
    _tool(session, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, against real PostgreSQL (embedded unless CHAOS_TEST_DATABASE_URL is set)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff and mypy over the code."""
    session.install(".[lint]")
    session.run("ruff", "check", "chaos", "strategies", "tests", "noxfile.py")
    session.run("mypy", "--ignore-missing-imports", "chaos", "strategies")


@nox.session(default=False)
def steering(session: nox.Session) -> None:
    """Measure whether hypothesis.target steering finds race-shaped scenarios sooner.

    Pure generation, no service: ``nox -s steering -- --examples 100 --seeds 20``.
    """
    session.install(".")
    session.run("python", "tools/measure_steering.py", *session.posargs)
