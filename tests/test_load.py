"""``payment-chaos load`` end to end: 50 VUs of real buyer journeys against the
reference service, the summary a load tester expects, and the database
invariants that status codes alone cannot see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # whole load runs, in processes

#: Short runs keep CI time down; the README measures the 60 s run.
SHORT = ("--vus", "50", "--duration", "12s", "--check-every", "4s", "--seed", "1")


def load(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    result = run_tool("load", *args, cwd=tmp_path, timeout=180)
    assert "Traceback" not in result.stderr
    summary = tmp_path / "chaos-load.json"
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return result.returncode, result.stdout + result.stderr, data


def test_the_correct_service_passes_50_users_with_percentiles_checks_and_thresholds(
        tmp_path: Path, server_url: str):
    code, out, data = load(tmp_path, *SHORT, "--database-url", server_url)
    assert code == 0, out
    assert data["verdict"] == "pass"
    assert data["concurrency"]["peak_vus"] == 50
    assert data["concurrency"]["client_peak_in_flight"] >= 50
    # kept-alive: two connections per VU, plus one per raced copy, not one per request
    assert data["concurrency"]["connections"] < data["http"]["all"]["requests"] / 2
    endpoints = data["http"]["endpoints"]
    assert {"checkout", "webhook"} <= set(endpoints)
    for figures in endpoints.values():
        assert figures["requests"] > 0
        assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p95_ms"] \
            <= figures["p99_ms"] <= figures["max_ms"]
    steps = {s["step"] for s in data["http"]["steps"]}
    assert {"checkout", "deliver", "redeliver", "race", "forged", "stripe.pay"} <= steps
    assert {c["name"] for c in data["checks"]} >= {"webhook answered 2xx",
                                                   "forged delivery refused with 4xx"}
    assert all(c["ratio"] == 1 for c in data["checks"]), data["checks"]
    assert [t["threshold"] for t in data["thresholds"]] == ["http-error-rate < 1%",
                                                           "http-p95 < 5s"]
    assert all(t["verdict"] == "pass" for t in data["thresholds"])
    assert all(i["verdict"] == "pass" for i in data["invariants"].values())
    assert data["checked"]["intervals"] >= 3   # during the run, and at the end
    assert data["checked"]["buyers"] == data["journeys"] > 50
    assert data["histograms"]["series"]
    assert 0 < data["client_cpu"]["per_1000_requests"] < 10   # seconds per 1,000 requests
    for words in ("endpoint", "p95", "webhook", "checks", "invariants", "thresholds",
                  "PASS  http-p95 < 5s", "verdict: PASS"):
        assert words in out


@pytest.mark.parametrize("bug, invariant, mix", [
    ("no-dedup", "one-ticket-set-per-payment", "duplicates=0.5"),
    ("oversell", "no-oversold-ticket-type", "sellout=0.5,capacity=5"),
])
def test_a_bug_under_load_breaks_its_invariant_and_exits_1(tmp_path: Path, server_url: str,
                                                           bug, invariant, mix):
    code, out, data = load(tmp_path, *SHORT, "--mix", mix, "--bug", bug,
                           "--database-url", server_url)
    assert code == 1, out
    assert data["verdict"] == "fail"
    broken = data["invariants"][invariant]
    assert broken["verdict"] == "fail" and broken["violations"] >= 1
    assert broken["first"]["rows"]
    assert f"FAIL  {invariant}" in out
    assert "verdict: FAIL" in out


def test_a_broken_threshold_exits_1_on_the_embedded_database(tmp_path: Path):
    code, out, data = load(tmp_path, "--vus", "5", "--duration", "3s", "--no-default-thresholds",
                           "--threshold", "http-p50{endpoint=webhook} < 0.001ms",
                           "--threshold", "http-requests{step=checkout} > 0")
    assert code == 1, out
    verdicts = {t["threshold"]: t["verdict"] for t in data["thresholds"]}
    assert verdicts == {"http-p50{endpoint=webhook} < 0.001ms": "fail",
                        "http-requests{step=checkout} > 0": "pass"}
    assert all(i["verdict"] == "pass" for i in data["invariants"].values())
    assert data["database"]["server"] == "embedded"


@pytest.mark.parametrize("args, words", [
    (["--stages", "10s:50", "--duration", "5s"], "--stages sets the VUs and the duration"),
    (["--stages", "10s"], "not DURATION:VUS"),
    (["--duration", "soon"], "write e.g. 30s"),
    (["--mix", "typos=1"], "KEY one of duplicates"),
    (["--threshold", "p95 < 1s"], "unknown metric 'p95'"),
    (["--rate", "-1"], "--rate -1 is outside"),
    (["--vus", "0"], "--vus 0 is outside"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_started(tmp_path: Path, args, words):
    result = run_tool("load", *args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert words in line
    assert not (tmp_path / "chaos-load.json").exists()


def test_an_arrival_rate_starts_journeys_on_time_and_counts_the_dropped(tmp_path: Path,
                                                                      server_url: str):
    code, out, data = load(tmp_path, "--rate", "5", "--duration", "4s", "--vus", "3",
                           "--database-url", server_url)
    assert code == 0, out
    assert data["profile"]["rate"] == 5
    assert data["journeys"] + data["dropped_journeys"] == 20   # 5 a second for 4 s
    assert data["journeys"] >= 10
    assert data["concurrency"]["peak_vus"] <= 3
    assert "journeys/s" in out


def test_help_names_the_shapes_the_mix_and_the_default_thresholds(tmp_path: Path):
    result = run_tool("load", "--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    for words in ("--stages", "--rate", "--mix", "--workers", "http-error-rate < 1%",
                  "http-p95 < 5s"):
        assert words in result.stdout


def test_an_unreachable_database_is_exit_3_with_an_error_summary(tmp_path: Path):
    code, out, data = load(tmp_path, "--duration", "2s", "--database-url",
                           "postgresql://nobody:secret-pw@127.0.0.1:1/x")
    assert code == 3, out
    assert "cannot connect to the database" in out
    assert "secret-pw" not in out
    assert data["verdict"] == "error"


def test_workers_share_the_vus_and_their_results_merge(tmp_path: Path, server_url: str):
    code, out, data = load(tmp_path, "--vus", "10", "--duration", "4s", "--workers", "2",
                           "--seed", "2", "--database-url", server_url)
    assert code == 0, out
    assert data["concurrency"]["workers"] == 2
    assert data["concurrency"]["peak_vus"] == 10          # 5 + 5
    assert data["checked"]["intervals"] >= 2              # each worker checks its own buyers
    assert data["checked"]["buyers"] == data["journeys"]
    steps = sum(s["requests"] for s in data["http"]["steps"] if s["endpoint"] != "stripe")
    assert steps == data["http"]["all"]["requests"] > 0   # merged histograms add up
    assert "over 2 worker(s)" in out


def test_a_configured_target_is_loaded_and_checked_through_its_config(
        tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch):
    from tests.test_config_runs import CONFIG, reference_service

    with reference_service(server_url, tmp_path, monkeypatch, bugs=("no-dedup",)) as started:
        code, out, data = load(tmp_path, "--config", CONFIG, *started.overrides(),
                               "--vus", "10", "--duration", "5s", "--mix", "duplicates=1",
                               "--seed", "3")
    assert code == 1, out
    assert data["target"]["kind"] == "config"
    assert data["invariants"]["one-ticket-set-per-payment"]["verdict"] == "fail"
    assert not any(secret in out or secret in json.dumps(data) for secret in started.secrets)
