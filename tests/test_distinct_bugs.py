"""Every distinct bug in one run: with four catalogue bugs switched on, one run
of the tool reports each as its own FAILED bug, saved on its own; a bug given
with ``--known`` is reported as known while the search still finds the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_tool

#: bug -> the invariant that must catch it and atoms of its smallest story
FOUR = {
    "no-dedup": ("one-ticket-set-per-payment", "2x deliver checkout.session.completed"),
    "oversell": ("no-oversold-ticket-type", "2x checkout"),
    "order-dependent": ("refund-voids-tickets", "deliver charge.refunded"),
    "unpaid-fulfilled": ("no-tickets-without-payment", "buyer async-failed"),
}


def bugs_args() -> list[str]:
    return [arg for bug in FOUR for arg in ("--bug", bug)]


class Run:
    def __init__(self, folder: Path, stdout: str) -> None:
        self.folder, self.stdout = folder, stdout
        self.failures = json.loads((folder / "report.json").read_text())["failures"]


@pytest.fixture(scope="module")
def four_bugs(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> Run:
    """One run with the four bugs on (its cases are the next test's known bugs too)."""
    folder = tmp_path_factory.mktemp("four-bugs")
    result = run_tool(*bugs_args(), "--seed", "1", "--database-url", server_url,
                      "--report", "report.json", "--corpus", "corpus", cwd=folder, timeout=600)
    assert result.returncode == 1, result.stderr
    return Run(folder, result.stdout)


@pytest.mark.e2e
def test_four_bugs_are_four_failed_bugs_in_one_run(four_bugs: Run):
    failures = four_bugs.failures
    for bug, (invariant, story) in FOUR.items():
        mine = [f for f in failures if f["invariant"] == invariant and story in f["shape"]
                and f["status"] == "FAILED"]
        assert mine, f"{bug}: no FAILED {invariant} with {story!r} in {failures}"
        assert mine[0]["case"] and Path(four_bugs.folder, mine[0]["case"]).exists()
        assert int(mine[0]["reproduced"].split("/")[0]) > 0
        assert f"FAILED {invariant}" in four_bugs.stdout
    assert len({f["case"] for f in failures}) == len(failures)   # each saved on its own


@pytest.mark.e2e
def test_a_known_bug_is_reported_as_known_and_the_others_are_still_found(
        four_bugs: Run, server_url: str):
    # the smallest one-ticket-set bug the four-bug run saved is the known one
    saved = sorted((f["requests"], f["case"]) for f in four_bugs.failures
                   if f["invariant"] == "one-ticket-set-per-payment" and f["case"])
    assert saved, four_bugs.stdout
    case = str(four_bugs.folder / saved[0][1])
    tmp_path = four_bugs.folder / "again"
    tmp_path.mkdir()
    again = run_tool("--bug", "no-dedup", "--bug", "unpaid-fulfilled", "--seed", "1",
                     "--examples", "10",     # the playbook tells both stories
                     "--known", case, "--database-url", server_url, "--report", "again.json",
                     "--corpus", "again", cwd=tmp_path, timeout=600)
    assert again.returncode == 1, again.stderr
    failures = json.loads((tmp_path / "again.json").read_text())["failures"]
    known = [f for f in failures if f["known"]]
    assert [f["known"] for f in known] == [case]
    assert known[0]["case"] == case                        # not saved a second time
    assert "FAILED (known) one-ticket-set-per-payment" in again.stdout
    assert any(f["invariant"] == "no-tickets-without-payment" and not f["known"]
               for f in failures)


@pytest.mark.e2e
def test_a_known_case_that_is_not_a_case_is_a_usage_error(tmp_path: Path):
    (tmp_path / "notes.json").write_text("{}")
    for known, says in (("notes.json", "not a chaos case file"), ("nowhere.json", "no such file")):
        result = run_tool("--known", known, "--examples", "1", cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.stderr
