"""The regression suite: every case in ``tests/regressions/`` is replayed
against the service it names and must show what the case expects (for a
deliberate reference bug: the tool still catches it, and the correct service
passes the same scenario; for a real bug: it stays fixed).

New cases land there from ``nox -s chaos`` (``--corpus``, default
``tests/regressions``); commit them to keep them forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_tool

pytestmark = pytest.mark.e2e   # whole chaos runs, in processes

CORPUS = Path(__file__).parent / "regressions"
CASES = sorted(CORPUS.glob("*.json"))


def test_the_corpus_is_not_empty():
    assert CASES, f"no cases in {CORPUS}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_a_saved_case_replays_as_it_expects(case: Path, server_url: str, tmp_path: Path):
    result = run_tool("replay", "--expect", str(case), "--database-url", server_url,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASSED {case}" in result.stdout
