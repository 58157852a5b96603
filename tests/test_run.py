"""The run as a user starts it, for what the executor, checker and search add:
the whole-run deadline, the report's concurrency figures, per-invariant
verdicts with their evidence, and the thresholds."""

from __future__ import annotations

import json
import time
from pathlib import Path

from chaos.invariants import INVARIANTS
from tests.helpers import run_tool


def test_max_seconds_stops_a_long_search_cleanly_and_reports_it(tmp_path: Path, server_url: str):
    started = time.monotonic()
    result = run_tool("--examples", "1000000", "--max-seconds", "8", "--profile", "ci",
                      "--database-url", server_url, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["stopped"] == "max-seconds" and report["verdict"] == "pass"
    assert report["profile"] == "ci" and report["seed"] is None  # derandomized
    assert 0 < report["examples"] < 1_000_000
    assert "stopped early: --max-seconds reached" in result.stdout
    assert elapsed < 8 + 30  # the deadline, plus stopping the services it started
    print(f"--max-seconds 8: {report['examples']} examples, tool time {report['seconds']} s, "
          f"wall {elapsed:.1f} s")


def test_the_report_carries_verdicts_evidence_concurrency_and_thresholds(tmp_path: Path,
                                                                          server_url: str):
    result = run_tool("--bug", "no-dedup", "--seed", "5", "--confirm-runs", "3",
                      "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["invariants"] == {name: "fail" if name == "one-ticket-set-per-payment" else "pass"
                                    for name in INVARIANTS}
    [evidence] = report["evidence"]["one-ticket-set-per-payment"][:1]
    assert evidence["rows"][0]["tickets"] == 2 and evidence["rows"][0]["orders"] == 2
    [failure] = [f for f in report["failures"] if f["phase"] == "search"]
    assert failure["status"] == "FAILED" and failure["reproduced"] == "3/3"
    concurrency = report["concurrency"]
    assert concurrency["requested"] == 50
    assert concurrency["peak_in_flight"] == 50 and concurrency["client_peak_in_flight"] == 50
    assert concurrency["start_skew_ms"] >= concurrency["start_skew_p50_ms"] >= 0
    assert {name: t["verdict"] for name, t in report["thresholds"].items()} == \
        {"http-error-rate": "pass", "http-p95": "pass"}
    print(f"no-dedup: concurrency {concurrency}, http {report['http']}")


def test_a_threshold_that_breaks_fails_the_run(tmp_path: Path, server_url: str):
    result = run_tool("--examples", "3", "--max-p95", "0.0001", "--database-url", server_url,
                      cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((tmp_path / "chaos-report.json").read_text())
    assert report["verdict"] == "fail" and report["failures"] == []
    assert report["thresholds"]["http-p95"]["verdict"] == "fail"
    assert report["thresholds"]["http-p95"]["limit_ms"] == 0.1
    assert "http-p95                         FAIL" in result.stdout


def test_a_deadline_that_leaves_no_time_for_an_example_is_a_usage_error(tmp_path: Path,
                                                                       server_url: str):
    result = run_tool("--max-seconds", "0.01", "--database-url", server_url, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ran out before the first example" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
