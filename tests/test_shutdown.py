"""Every way a run ends, ends the same way: nothing left running, nothing left on
disk or on the server, the signal's exit code, one line saying why, and a report
that keeps what was found so far.

Scenario: a user (or CI) runs ``python -m chaos`` or ``nox -s chaos`` and stops
it with Ctrl-C (SIGINT to the process group, as a terminal sends it), SIGTERM
(CI cancellation, ``timeout``) or SIGHUP (a closed terminal), at the start,
during the load wave, mid-search and mid-shrink. Each phase is reached by
polling the run's JSON log, never by sleeping.

What must hold: exit 128 + signal; the last line of stderr says so, no
traceback; no process carrying this test's marker in its environment (the
fake Stripe, the reference service, the embedded PostgreSQL); the run's
temporary folder empty; its schema dropped; the report neither "pass" nor
empty-handed when failures were seen.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.database import Database

ROOT = Path(__file__).resolve().parent.parent

#: A run's log event -> whether the phase the test wants has been reached.
Reached = Callable[[list[dict[str, Any]]], bool]


def _started(events: list[dict[str, Any]]) -> bool:
    return any(e.get("event") == "run.start" for e in events)


def _load_wave(events: list[dict[str, Any]]) -> bool:
    return any(e.get("event") == "target.ready" for e in events)


def _searching(events: list[dict[str, Any]]) -> bool:
    return sum(e.get("event") == "example" for e in events) >= 4


def _shrinking(events: list[dict[str, Any]]) -> bool:
    """Two examples after the search's first failing one (example 1 is the load wave)."""
    examples = [e for e in events if e.get("event") == "example"]
    failing = [i for i, e in enumerate(examples) if e.get("broken") and e.get("n", 0) > 1]
    return bool(failing) and len(examples) >= failing[0] + 3


PHASES: dict[str, tuple[Reached, tuple[str, ...]]] = {
    "start": (_started, ()),
    "load-wave": (_load_wave, ()),
    "search": (_searching, ()),
    "shrink": (_shrinking, ("--bug", "no-dedup", "--no-playbook")),
}


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            pass                    # the line being written
    return events


def _wait_for_phase(process: subprocess.Popen[str], log: Path, reached: Reached,
                    deadline: float) -> None:
    """Poll the run's JSON log until ``reached``; fail the test if the run ends or
    ``deadline`` seconds pass first."""
    until = time.monotonic() + deadline
    while not reached(_events(log)):
        if process.poll() is not None or time.monotonic() > until:
            out, err = process.communicate(timeout=30)
            pytest.fail(f"the phase was never reached (exit {process.returncode}): "
                        f"{err[-2000:]}{out[-1000:]}")
        time.sleep(0.01)


def _marked(marker: str) -> list[str]:
    """Processes whose environment carries ``marker`` (whatever the tool started)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if marker.encode() in environ:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                             .decode(errors="replace")[:120])
        except OSError:
            continue
    return found


class Stopped:
    """A run started, stopped by a signal at a phase, and what it left."""

    def __init__(self, tmp_path: Path, *, temp: Path, argv: list[str], reached: Reached,
                 sig: int, group: bool, database_url: str | None,
                 deadline: float = 120.0) -> None:
        self.marker = f"chaos-shutdown-test-{uuid.uuid4().hex}"
        self.temp = temp
        self.report_path = tmp_path / "r.json"
        log = tmp_path / "log.jsonl"
        env = {**os.environ, "CHAOS_SHUTDOWN_MARK": self.marker, "TMPDIR": str(self.temp)}
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        args = [*argv, "--report", str(self.report_path), "--log-json", str(log),
                "--corpus", str(tmp_path / "corpus"), "--seed", "1", "--examples", "400"]
        process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _wait_for_phase(process, log, reached, deadline)
            self.events_at_signal = _events(log)
            if group:
                os.killpg(process.pid, sig)   # as a terminal delivers Ctrl-C
            else:
                os.kill(process.pid, sig)
            self.stdout, self.stderr = process.communicate(timeout=60)
            self.code = process.returncode
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        self.left_running = self._poll(lambda: _marked(self.marker))
        self.left_on_disk = sorted(p.name for p in self.temp.iterdir()
                                   if not p.name.startswith("runtime-"))  # the wheel's lock dir
        self.report: dict[str, Any] = json.loads(self.report_path.read_text()) \
            if self.report_path.exists() else {}

    @staticmethod
    def _poll(probe: Callable[[], list[str]], seconds: float = 10.0) -> list[str]:
        """What ``probe`` still finds after up to ``seconds`` (the kernel reaps quickly)."""
        until = time.monotonic() + seconds
        found = probe()
        while found and time.monotonic() < until:
            time.sleep(0.05)
            found = probe()
        return found


def _schema_exists(url: str, schema: str) -> bool:
    db = Database(url)
    try:
        return bool(db.fetch("select 1 from information_schema.schemata where schema_name = $1",
                             schema))
    finally:
        db.close()


def _check(run: Stopped, sig: int, phase: str, database_url: str | None) -> None:
    name = signal.Signals(sig).name
    said = run.stdout + run.stderr      # nox passes the tool's stderr on through its stdout
    assert run.code == 128 + sig, (run.code, said[-3000:])
    lines = [ln for ln in said.splitlines() if ln.startswith("payment-chaos: ")]
    assert lines and lines[-1].startswith(f"payment-chaos: interrupted by {name}"), said[-3000:]
    assert "Traceback" not in said
    assert run.left_running == [], run.left_running
    assert run.left_on_disk == [], run.left_on_disk
    report = run.report
    assert report, "no report was written"
    assert report["verdict"] != "pass"
    assert report["stopped"] == name
    assert name in report["error"]
    schema = report.get("database", {}).get("schema")
    if database_url and schema:
        assert not _schema_exists(database_url, schema), f"schema {schema} left on the server"
    searched = sum(e.get("event") == "example" and e.get("n", 0) > 1
                   for e in run.events_at_signal)
    assert report["examples"] >= searched  # what ran before the signal is counted
    if phase in ("start", "load-wave"):
        assert report["examples"] == 0
    if phase == "shrink":
        assert report["verdict"] == "fail"
        assert report["failures"], "the failures seen before the signal were dropped"
        invariants = {f["invariant"] for f in report["failures"]}
        # every invariant an example broke before the signal is in the report
        broken = {name for e in run.events_at_signal if e.get("event") == "example"
                  for name in e.get("broken") or ()}
        assert broken and broken <= invariants, (broken, invariants)
        for failure in report["failures"]:
            if failure["phase"] != "load":
                assert (failure["note"] or "").startswith("not confirmed: interrupted by "
                                                          + name), failure["note"]


@pytest.mark.e2e
@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_python_m_chaos_stops_cleanly(tmp_path: Path, short_temp: Path, sig: int, phase: str) -> None:
    """``python -m chaos`` stopped by each signal in each phase leaves nothing behind."""
    database_url = os.environ.get("CHAOS_TEST_DATABASE_URL")
    reached, extra = PHASES[phase]
    run = Stopped(tmp_path, temp=short_temp, argv=[sys.executable, "-m", "chaos", *extra], reached=reached,
                  sig=sig, group=sig == signal.SIGINT, database_url=database_url)
    _check(run, sig, phase, database_url)


@pytest.mark.e2e
@pytest.mark.parametrize("phase", ["start", "search"])
def test_embedded_postgres_stopped_and_removed_on_sigterm(tmp_path: Path, short_temp: Path,
                                                          phase: str) -> None:
    """Without a database URL the embedded PostgreSQL is stopped and its data folder
    removed when SIGTERM lands while it starts, or mid-search."""
    run = Stopped(tmp_path, temp=short_temp, argv=[sys.executable, "-m", "chaos"], reached=PHASES[phase][0],
                  sig=signal.SIGTERM, group=False, database_url=None)
    _check(run, signal.SIGTERM, phase, None)


def _nox() -> str:
    nox = shutil.which("nox", path=str(Path(sys.executable).parent))
    if nox is None:
        pytest.skip("nox is not installed in this environment (pip install nox)")
    return nox


@pytest.mark.e2e
@pytest.mark.parametrize(("sig", "phase"), [(signal.SIGINT, "shrink"),
                                            (signal.SIGTERM, "search")],
                         ids=["ctrl-c-mid-shrink", "sigterm-mid-search"])
def test_nox_session_stops_cleanly(tmp_path: Path, short_temp: Path, sig: int, phase: str) -> None:
    """``nox -s chaos``, stopped as a terminal (Ctrl-C to the whole job) or CI (SIGTERM to
    the job) stops it: nox waits for the tool, which cleans up, and exits with its code."""
    database_url = os.environ.get("CHAOS_TEST_DATABASE_URL")
    reached, extra = PHASES[phase]
    argv = [_nox(), "-f", str(ROOT / "noxfile.py"), "--envdir", str(ROOT / ".nox"),
            "-s", "chaos", "--", *extra]
    run = Stopped(tmp_path, temp=short_temp, argv=argv, reached=reached, sig=sig, group=True,
                  database_url=database_url, deadline=600)
    _check(run, sig, phase, database_url)


@pytest.mark.e2e
def test_database_stopped_mid_run_is_exit_3_in_one_line(tmp_path: Path, short_temp: Path) -> None:
    """The embedded PostgreSQL shut down (fast shutdown, as ``pg_ctl stop`` does) while the
    search runs: exit 3, one line that names the database, no traceback, nothing left."""
    marker = f"chaos-shutdown-test-{uuid.uuid4().hex}"
    log = tmp_path / "log.jsonl"
    env = {**os.environ, "CHAOS_SHUTDOWN_MARK": marker, "TMPDIR": str(short_temp)}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "--seed", "1", "--examples", "400",
         "--report", str(tmp_path / "r.json"), "--log-json", str(log),
         "--corpus", str(tmp_path / "corpus")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        until = time.monotonic() + 120
        while not _searching(_events(log)):
            assert process.poll() is None and time.monotonic() < until, "never searched"
            time.sleep(0.01)
        [pid_file] = short_temp.glob("chaos-pg-*/data/postmaster.pid")
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert process.returncode == 3, (process.returncode, err[-3000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("payment-chaos: error: ") and "database" in lines[0], lines[0]
    assert "Traceback" not in out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "error" and "database" in report["error"]
    assert Stopped._poll(lambda: _marked(marker)) == []
    assert sorted(p.name for p in short_temp.iterdir() if not p.name.startswith("runtime-")) == []


@pytest.mark.e2e
@pytest.mark.parametrize(("service", "said"), [
    ("fake-stripe", "the fake Stripe API "),  # did not answer, or failed a set-up call
    ("reference", "the target at http://127.0.0.1:"),
])
def test_a_service_killed_mid_run_is_exit_3_in_one_line(tmp_path: Path, short_temp: Path, service: str,
                                                        said: str) -> None:
    """The fake Stripe or the target (the reference service) dies mid-search (SIGKILL):
    exit 3, one line naming it, the report says so, the other parts are stopped."""
    marker = f"chaos-shutdown-test-{uuid.uuid4().hex}"
    log = tmp_path / "log.jsonl"
    env = {**os.environ, "CHAOS_SHUTDOWN_MARK": marker, "TMPDIR": str(short_temp)}
    env.pop("DATABASE_URL", None)                # the embedded server: no other run's load
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "--seed", "1", "--examples", "400",
         "--report", str(tmp_path / "r.json"), "--log-json", str(log),
         "--corpus", str(tmp_path / "corpus")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        until = time.monotonic() + 120
        while not _searching(_events(log)):
            assert process.poll() is None and time.monotonic() < until, "never searched"
            time.sleep(0.01)
        killed = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes() and \
                        f"chaos\0{service}\0".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(pid)
            except OSError:
                continue
        assert len(killed) == 1, killed
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert process.returncode == 3, (process.returncode, err[-3000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("payment-chaos: error: "), err[-3000:]
    assert said in lines[0] and "Traceback" not in out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "error" and said in report["error"]
    assert Stopped._poll(lambda: _marked(marker)) == []
    assert sorted(p.name for p in short_temp.iterdir() if not p.name.startswith("runtime-")) == []


def test_a_signal_whose_raise_a_finalizer_dropped_stops_the_next_example() -> None:
    """Python runs a signal handler wherever the main thread is, in a ``__del__`` or a gc
    callback too, where what it raises is printed and dropped (a fresh-clone CI: SIGHUP
    in trio's ``Nursery.__del__``, SIGINT in Hypothesis' gc callback; the next example's
    trio run, cancelled by the recorded signal, handed back None and the tool crashed
    with a TypeError). The recorded signal is raised by the next example instead, and
    the dropped raise prints no traceback."""
    code = ("import os, signal\n"
            "from chaos import shutdown\n"
            "from chaos.run import _stoppable\n"
            "class Finalized:\n"
            "    def __del__(self):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        sum(range(100000))   # the handler runs in here; its raise is dropped\n"
            "import trio\n"
            "async def example():\n"
            "    await trio.sleep(0)\n"
            "    return ('history', True, [])\n"
            "with shutdown.handled():\n"
            "    Finalized()\n"
            "    print('recorded', shutdown.received() is not None)\n"
            "    try:\n"
            "        print('returned', _stoppable(example))\n"
            "    except shutdown.Interrupted as exc:\n"
            "        print('raised', exc.name)\n"
            "    class Broken:\n"
            "        def __del__(self):\n"
            "            raise ValueError('any other error in a finalizer')\n"
            "    Broken()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    # what a finalizer raises otherwise is printed as before
    assert done.stderr.count("Traceback") == 1 and "ValueError: any other error" in done.stderr \
        and "Interrupted" not in done.stderr, done.stderr
    assert done.stdout.split("\n")[:2] == ["recorded True", "raised SIGINT"], \
        done.stdout + done.stderr


def test_the_temporary_folder_is_found_before_a_signal_can_strike(tmp_path: Path) -> None:
    """Python finds its temporary folder on first use by creating and removing a probe
    file in it; a signal between the two left the probe behind (CI, SIGHUP at start).
    Once signals are handled the folder is already known: no probe can be interrupted."""
    code = ("import tempfile\n"
            "from chaos.shutdown import handled\n"
            "assert tempfile.tempdir is None, tempfile.tempdir\n"
            "with handled():\n"
            "    print(tempfile.tempdir)\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize(("phase", "group"), [("start", False), ("search", False),
                                              ("search", True)],
                         ids=["start", "search", "search-whole-group"])
def test_sigkill_leaves_nothing_behind(tmp_path: Path, short_temp: Path, phase: str, group: bool) -> None:
    """SIGKILL cannot be caught: the tool's own clean-up never runs. Its watchdog
    (``chaos/watchdog.py``) sees the tool gone and stops the fake Stripe, the reference
    service and the embedded PostgreSQL (mid-start, or running), and removes the
    temporary folders, within seconds; also when the tool's whole process group is killed."""
    run = Stopped(tmp_path, temp=short_temp, argv=[sys.executable, "-m", "chaos"], reached=PHASES[phase][0],
                  sig=signal.SIGKILL, group=group, database_url=None)
    assert run.code == -signal.SIGKILL, (run.code, run.stderr[-3000:])
    assert run.left_running == [], run.left_running
    assert run.left_on_disk == [], run.left_on_disk


def _alive(pid: str) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


_GUARDING = """
import os, signal, subprocess, sys, tempfile
from chaos.watchdog import guard, release
kept = subprocess.Popen(["sleep", "60"], start_new_session=True)
gone = subprocess.Popen(["sleep", "60"], start_new_session=True)
folder = tempfile.mkdtemp(prefix="guarded-")
for pid in (kept.pid, gone.pid):
    guard("group", pid)
guard("folder", folder)
release("group", kept.pid)
print(kept.pid, gone.pid, folder, flush=True)
sys.stdin.read()
"""


@pytest.mark.e2e
def test_the_watchdog_stops_what_is_guarded_and_spares_what_is_released(tmp_path: Path) -> None:
    """A process guarded by the watchdog is stopped, a guarded folder removed, when the
    process that guarded them is SIGKILLed; a released one is left alone (its number
    could belong to another process by then)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    tool = subprocess.Popen([sys.executable, "-c", _GUARDING], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    kept = 0
    try:
        assert tool.stdout is not None
        kept_pid, gone_pid, folder = tool.stdout.readline().split()
        kept = int(kept_pid)
        assert Path(folder).is_dir()
        tool.kill()
        tool.wait(10)
        assert Stopped._poll(lambda: [gone_pid] if _alive(gone_pid) else []) == []
        assert Stopped._poll(lambda: [folder] if Path(folder).exists() else []) == []
        assert _alive(kept_pid)                       # released: left alone
    finally:
        if tool.poll() is None:
            tool.kill()
        if kept:
            os.kill(kept, signal.SIGKILL)


def _replay_starting(temp: Path) -> Callable[[list[dict[str, Any]]], bool]:
    """The replay is starting its services: the embedded PostgreSQL's folder exists."""
    return lambda events: any(temp.glob("chaos-pg-*"))


def _replaying(events: list[dict[str, Any]]) -> bool:
    return sum(e.get("event") == "replay.run" for e in events) >= 2


@pytest.mark.e2e
@pytest.mark.parametrize("phase", ["start", "replaying"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupted_replay_stops_cleanly(tmp_path: Path, short_temp: Path, sig: int, phase: str) -> None:
    """``python -m chaos replay CASE`` stopped by each signal while it starts its services
    or between runs of the case: exit 128 + signal, one line saying so and nothing else,
    no process or temporary folder left."""
    marker = f"chaos-shutdown-test-{uuid.uuid4().hex}"
    log = tmp_path / "log.jsonl"
    case = tmp_path / "case.json"
    shutil.copy(ROOT / "tests" / "regressions" / "one-ticket-set-per-payment-59fd4a999e.json",
                case)
    env = {**os.environ, "CHAOS_SHUTDOWN_MARK": marker, "TMPDIR": str(short_temp)}
    env.pop("DATABASE_URL", None)
    reached = _replay_starting(short_temp) if phase == "start" else _replaying
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "replay", str(case), "--runs", "200",
         "--log-json", str(log)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        _wait_for_phase(process, log, reached, 120.0)
        if sig == signal.SIGINT:
            os.killpg(process.pid, sig)          # as a terminal delivers Ctrl-C
        else:
            os.kill(process.pid, sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    name = signal.Signals(sig).name
    assert process.returncode == 128 + sig, (process.returncode, err[-3000:])
    assert out == "", out[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"payment-chaos: interrupted by {name}"), \
        err[-3000:]
    assert Stopped._poll(lambda: _marked(marker)) == []
    assert sorted(p.name for p in short_temp.iterdir() if not p.name.startswith("runtime-")) == []
