"""payment-chaos in pytest: the ``fake_stripe`` fixture, the chaos search and single
scenarios as tests, and ``--chaos-replay DIR``.

Registered through the ``pytest11`` entry point, so installing payment-chaos
makes it available in every pytest run; it is off unless used. Importing this
module imports pytest and the standard library only: the fake Stripe starts
the first time a test asks for ``fake_stripe``, and case files are read only
under ``--chaos-replay``.

- ``fake_stripe`` (:class:`chaos.testing.FakeStripeSession`): a running fake
  Stripe on loopback, shared by the whole test session (one process, started
  as a chaos run starts it) and seen by each test through a view of its own:
  its events and calls begin with the test, its faults are cleared after it.
  ``fake_stripe_server`` is the session-wide object, for session fixtures
  that start the service under test once.
- ``chaos_config``: the target of the chaos fixtures below, a
  :class:`chaos.config.Config`: by default the file ``--chaos-config PATH`` or the
  ``chaos_config`` ini key names; a project whose service starts in a fixture
  overrides it (``load_config(path, overrides=[f"target.base_url={url}"])``, or
  ``target_config(Target(...), ...)``).
- ``chaos_search`` (a function): ``chaos_search(examples=30, seed=1)`` runs the chaos
  search against ``chaos_config``'s target, with ``fake_stripe_server`` as its fake
  Stripe (point the service under test at it), and fails the test with the report's
  summary when an invariant broke (:func:`chaos.testing.search`).
- ``chaos_target`` (:class:`chaos.testing.ChaosTarget`, session-wide): runs one
  scenario at a time, for ``@given(strategies.scenarios(...))`` tests:
  ``chaos_target.execute(scenario)`` returns the observation and violations,
  ``chaos_target.check(scenario)`` fails when an invariant broke.
- ``--chaos-replay DIR`` (repeatable): every case (``*.json``) in DIR is
  collected as a test of its own, named after its file, so CI shows one test
  per case and ``-k`` selects them. Each replays its case as
  ``python -m chaos replay --expect CASE`` does (in a child process of its
  own: the services it starts and the embedded PostgreSQL end with it) and
  fails with the replay's text. ``--chaos-replay-runs N`` (default 3) runs
  each case's scenario N times; ``--chaos-replay-timeout S`` (default 300)
  bounds one case. The database is the replay's: embedded, or
  ``DATABASE_URL`` from the environment (never on a command line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chaos.config import Config
    from chaos.report import Report
    from chaos.testing import ChaosTarget, FakeStripeSession

#: ``python -m chaos replay`` exit codes (chaos.errors), kept here so the plugin
#: imports nothing of the tool until a case runs.
_EXIT_PASS, _EXIT_FAIL, _EXIT_USAGE, _EXIT_INFRA = 0, 1, 2, 3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payment-chaos", "payment-chaos: replay saved cases")
    group.addoption("--chaos-replay", action="append", default=[], metavar="DIR", type=Path,
                    help="collect every case (*.json) in DIR as a test of its own that "
                         "replays it (python -m chaos replay --expect CASE); repeatable")
    group.addoption("--chaos-replay-runs", type=int, default=3, metavar="N",
                    help="runs of each case's scenario (default 3)")
    group.addoption("--chaos-replay-timeout", type=float, default=300.0, metavar="S",
                    help="seconds one case's replay may take (default 300)")
    group.addoption("--chaos-config", default=None, metavar="PATH",
                    help="the config (chaos.toml or pyproject.toml) of the chaos_config "
                         "fixture (default: the chaos_config ini key)")
    parser.addini("chaos_config", "the config of the chaos_config fixture (a chaos.toml or "
                  "pyproject.toml path, relative to the rootdir)", default="")


def pytest_configure(config: pytest.Config) -> None:
    folders: list[Path] = config.getoption("chaos_replay") or []
    for folder in folders:
        if not folder.is_dir():
            raise pytest.UsageError(f"--chaos-replay {folder}: no such folder; pass the folder "
                                    "a chaos run saved its cases to (default chaos-failures/)")
        if not any(folder.glob("*.json")):
            raise pytest.UsageError(f"--chaos-replay {folder}: no case files (*.json) in it; "
                                    "pass a folder of cases a chaos run saved")
    runs = config.getoption("chaos_replay_runs")
    if folders and not 1 <= runs <= 1000:
        raise pytest.UsageError(f"--chaos-replay-runs {runs}: use 1..1000")
    timeout = config.getoption("chaos_replay_timeout")
    if folders and not timeout > 0:
        raise pytest.UsageError(f"--chaos-replay-timeout {timeout:g}: use a number of seconds "
                                "above 0")


@pytest.hookimpl(tryfirst=True)   # before -k and -m deselect: the cases are selectable
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for folder in config.getoption("chaos_replay") or []:
        for path in sorted(Path(folder).glob("*.json")):
            case = CaseFile.from_parent(session, path=path.resolve())
            found = list(case.collect())
            # reported as collected, so pytest's count ("collected N items") includes them
            result: list[pytest.Item | pytest.Collector] = [*found]
            session.ihook.pytest_collectreport(report=pytest.CollectReport(
                case.nodeid, "passed", None, result))
            items.extend(found)


class CaseFile(pytest.File):
    """One saved case: a single test, named after the file (its stem)."""

    def collect(self) -> Iterable[pytest.Item]:
        return [CaseReplay.from_parent(self, name=self.path.stem)]


class ReplayFailed(Exception):
    """The replay's verdict was not a pass; the message is its text."""


class CaseReplay(pytest.Item):
    """Replays its case as ``python -m chaos replay --expect CASE`` and passes on exit 0."""

    def runtest(self) -> None:
        runs = self.config.getoption("chaos_replay_runs")
        timeout = self.config.getoption("chaos_replay_timeout")
        command = [sys.executable, "-m", "chaos", "replay", "--expect", str(self.path),
                   "--runs", str(runs)]
        env = {**os.environ, "CHAOS_INVOCATION": f"{Path(sys.executable).name} -m chaos"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise ReplayFailed(f"the replay of {self.path.name} did not end within {timeout:g} s "
                               "(raise --chaos-replay-timeout, or lower --chaos-replay-runs)") \
                from None
        except BaseException:      # Ctrl-C: the replay and its services go with the test run
            _stop(process)
            raise
        code = process.returncode
        text = out.decode(errors="replace").strip()
        said = (_last_line(err.decode(errors="replace")) or text or "no output") \
            .removeprefix("payment-chaos: error: ")
        if code == _EXIT_PASS:
            return
        if code == _EXIT_FAIL:
            raise ReplayFailed(text or said)
        if code == _EXIT_USAGE:
            raise ReplayFailed(f"the case cannot be replayed: {said}")
        if code == _EXIT_INFRA:
            raise ReplayFailed(f"the replay could not run (the database, the fake Stripe or the "
                               f"target failed): {said}")
        raise ReplayFailed(f"the replay ended with exit code {code}: {said}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ReplayFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"chaos replay {self.path.name}"


#: Seconds a stopped replay gets to stop its services and drop its schema (SIGTERM makes
#: it unwind; its clean-up takes about 1 s) before SIGKILL.
_STOP_SECONDS = 60.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    from chaos.services import stop

    stop(process, timeout=_STOP_SECONDS)
    process.communicate()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def fake_stripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripeSession]:
    """The fake Stripe of the whole test session (started on first use, stopped at the
    end): for session fixtures that configure a service once. Tests use ``fake_stripe``."""
    from chaos.testing import fake_stripe_running

    with fake_stripe_running(tmp_path_factory.mktemp("fake-stripe")) as fake:
        yield fake


@pytest.fixture
def fake_stripe(fake_stripe_server: FakeStripeSession) -> Iterator[FakeStripeSession]:
    """A running fake Stripe on loopback, as this test sees it: ``api_base``, ``api_key``
    (``sk_test_``), ``webhook_secret`` (``whsec_``); ``pay``, ``refund``, ``dispute``,
    ``fail``, ``expire``; ``events()``, ``calls()`` since the test began; ``arm`` faults
    (cleared after the test); ``deliver`` events to a webhook URL, signed."""
    with fake_stripe_server.scoped() as view:
        yield view


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> Config:
    """The target of ``chaos_search`` and ``chaos_target``: the config ``--chaos-config
    PATH`` (or the ``chaos_config`` ini key) names. Override this fixture to build it in
    Python, or with the URL of a service a fixture started."""
    from chaos.config import load
    from chaos.errors import ChaosError

    path = pytestconfig.getoption("chaos_config") or pytestconfig.getini("chaos_config")
    if not path:
        pytest.fail("the chaos fixtures need a target: pass --chaos-config PATH, set the "
                    "chaos_config ini key, or define a chaos_config fixture returning "
                    "chaos.load_config(...) or chaos.target_config(...)", pytrace=False)
    where = Path(path)
    if not where.is_absolute() and not pytestconfig.getoption("chaos_config"):
        where = pytestconfig.rootpath / where
    try:
        return load(where)
    except ChaosError as exc:
        error = f"payment-chaos: {exc}"
    pytest.fail(error, pytrace=False)   # outside the except: no "during handling" chain


@pytest.fixture(scope="session")
def chaos_target(chaos_config: Config,
                 fake_stripe_server: FakeStripeSession) -> Iterator[ChaosTarget]:
    """``chaos_config``'s target, ready to run single scenarios at ``fake_stripe_server``
    (``execute(scenario)``, ``check(scenario)``); stopped at the end of the session."""
    from chaos.errors import ChaosError
    from chaos.testing import running_target

    try:
        with running_target(chaos_config, stripe=fake_stripe_server) as target:
            yield target
            return
    except ChaosError as exc:   # the target cannot be used: one line that names the fix
        error = f"payment-chaos: {exc}"
    pytest.fail(error, pytrace=False)


@pytest.fixture
def chaos_search(chaos_config: Config, fake_stripe_server: FakeStripeSession,
                 tmp_path: Path) -> Callable[..., Report]:
    """``chaos_search(**options)``: the chaos search against ``chaos_config``'s target at
    ``fake_stripe_server``; fails the test with the report's summary when an invariant
    broke. ``options`` are ``chaos.RunOptions`` fields; the JSON report is written to the
    test's ``tmp_path``, the cases of findings to ``corpus`` (default chaos-failures/)."""
    from chaos.errors import ChaosError
    from chaos.testing import search

    def run_search(**options: Any) -> Report:
        options.setdefault("report", tmp_path / "chaos-report.json")
        try:
            return search(chaos_config, stripe=fake_stripe_server, **options)
        except ChaosError as exc:
            error = f"payment-chaos: {exc}"
        except AssertionError as failed:   # the report's summary is the whole story
            error = str(failed)
        pytest.fail(error, pytrace=False)

    return run_search
