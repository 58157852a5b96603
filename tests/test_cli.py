"""The tool as a user runs it: ``python -m chaos`` end to end, its report,
its exit codes and its one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from chaos.database import Database
from tests.helpers import LOCAL_SERVER, local_server_available, run_tool

pytestmark = pytest.mark.e2e   # whole chaos runs, in processes


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_the_correct_service_passes_at_50_in_flight(tmp_path: Path, server_url: str):
    result = run_tool("--examples", "100", "--seed", "3", "--database-url", server_url,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["examples"] >= 100
    assert report["failures"] == []
    assert report["concurrency"] == {**report["concurrency"], "requested": 50,
                                     "peak_in_flight": 50}
    assert report["http"]["requests"] > 100
    # no error in normal traffic; a 5xx is only allowed while Stripe faults were armed
    assert report["thresholds"]["http-error-rate"]["errors"] == 0
    assert report["http"]["failed"] <= report["http"]["under_fault"]
    assert "verdict: PASS" in result.stdout


def test_no_dedup_is_caught_and_shrunk_to_two_deliveries_of_one_event(tmp_path: Path,
                                                                      server_url: str):
    # 30 examples: the playbook plays the two deliveries first (the default 100 add
    # nothing this test reads)
    result = run_tool("--bug", "no-dedup", "--seed", "5", "--examples", "30",
                      "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["verdict"] == "fail"
    # no-dedup also breaks what double tickets break (capacity, refunds): each is reported
    [failure] = [f for f in report["failures"]
                 if f["phase"] != "load" and f["invariant"] == "one-ticket-set-per-payment"]
    assert failure["status"] == "FAILED"
    assert failure["requests"] == 2
    schedule = failure["schedule"]
    assert len(schedule["buyers"]) == 1
    steps = [step for wave in schedule["waves"] for step in wave]
    assert [(s["kind"], s["buyer"], s["event"]) for s in steps] == \
        [("deliver", 0, "checkout.session.completed")] * 2
    assert failure["replay"].startswith("python -m chaos replay ")

    # the saved case replays: it fails against the buggy service it names
    case = failure["replay"].split()[-1]
    replay = run_tool("replay", case, "--database-url", server_url, cwd=tmp_path)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "FAILED" in replay.stdout and "broke in 3 of 3 runs" in replay.stdout


def test_a_replayed_case_passes_once_the_bug_is_gone(tmp_path: Path, server_url: str):
    case = {
        "format": 1, "invariant": "one-ticket-set-per-payment",
        "target": {"kind": "reference", "bugs": []}, "seed": 0,
        "scenario": {"buyers": [{"quantity": 1}],
                     "waves": [[{"kind": "deliver", "buyer": 0},
                                {"kind": "deliver", "buyer": 0, "copy": 1}]]},
    }
    (tmp_path / "case.json").write_text(json.dumps(case))
    result = run_tool("replay", "case.json", "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout


@pytest.mark.parametrize("args, code, words", [
    (["--bug", "no-such-bug"], 2, "unknown bug 'no-such-bug': choose from"),
    (["--examples", "0"], 2, "--examples"),
    (["--concurrency", "many"], 2, "not a whole number"),
    (["--database-url", "mysql://localhost/x"], 2, "not a PostgreSQL URL"),
    (["--database-url", "postgresql://nobody:secret-pw@127.0.0.1:1/x"], 3,
     "cannot connect to the database"),
    (["replay", "does-not-exist.json"], 2, "cannot read"),
    (["--no-such-option"], 2, "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_the_right_exit_code(tmp_path: Path, args, code, words):
    line = one_line_error(run_tool(*args, cwd=tmp_path), code)
    assert words in line
    assert "secret-pw" not in line


def test_a_port_already_in_use_is_named(tmp_path: Path, server_url: str):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tool("--reference-port", str(port), "--database-url", server_url,
                          cwd=tmp_path)
    line = one_line_error(result, 2)
    assert f"port {port}" in line and "not available" in line


def test_the_report_records_an_error_verdict(tmp_path: Path):
    run_tool("--database-url", "postgresql://127.0.0.1:1/x", cwd=tmp_path)
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["verdict"] == "error"
    assert "cannot connect" in report["error"]


@pytest.mark.skipif(not local_server_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_the_machines_own_server_works_and_is_left_as_found(tmp_path: Path):
    admin = Database(LOCAL_SERVER)
    try:
        result = run_tool("--examples", "20", "--database-url", LOCAL_SERVER, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        database = json.loads((tmp_path / "chaos-report.json").read_text())["database"]
        assert database["server"] == LOCAL_SERVER and database["schema"].startswith("chaos_")
        # the run wrote only into its own schema, and dropped it
        left = admin.fetch("select nspname from pg_namespace where nspname = $1",
                           database["schema"])
        assert left == []
    finally:
        admin.close()


def test_a_bug_of_the_tool_itself_is_one_line_and_its_traceback_is_kept(monkeypatch, capsys):
    from chaos import cli

    def broken(args):
        raise RuntimeError("the sky fell")

    monkeypatch.setattr(cli, "cmd_replay", broken)
    code = cli.main(["replay", "x.json"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("payment-chaos: internal error: RuntimeError: the sky fell")
    crash = Path(err.split("traceback is in ")[1].split(",")[0])
    try:
        assert "Traceback" in crash.read_text() and "the sky fell" in crash.read_text()
    finally:
        crash.unlink()


def test_a_reader_of_stdout_that_goes_away_is_not_a_crash(monkeypatch, tmp_path, capsys):
    """``payment-chaos ... | head``: the summary meets a closed pipe. One line on stderr,
    128 + SIGPIPE, and no crash file (the mutants benchmark left one when it stopped
    reading a run's output)."""
    from chaos import cli

    def reader_gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_replay", reader_gone)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr("os.dup2", lambda *fds: None)   # keep pytest's own stdout
    code = cli.main(["replay", "x.json"])
    err = capsys.readouterr().err
    assert code == 141
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("payment-chaos: stdout was closed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env, argv0, expected", [
    ({"CHAOS_INVOCATION": "nox -s chaos --"}, "/x/python", "nox -s chaos -- replay c.json"),
    ({}, "/venv/bin/payment-chaos", "payment-chaos replay c.json"),
    ({}, "/usr/lib/python3.11/chaos/__main__.py", "python -m chaos replay c.json"),
])
def test_the_replay_line_is_the_way_the_user_ran_the_tool(monkeypatch, env, argv0, expected):
    from chaos import cli

    monkeypatch.delenv("CHAOS_INVOCATION", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", [argv0])
    from chaos.lifecycle import replay_command

    assert replay_command(cli.invocation(), Path("c.json")) == expected
