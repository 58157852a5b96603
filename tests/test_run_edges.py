"""Edges of a run a user hits before any traffic: an output folder that does not
exist, a case replayed from another directory, an install without dependencies.
Each is one line and the documented exit code, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.report.corpus import load_case, save_case
from strategies import playbook
from tests.helpers import run_tool

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
@pytest.mark.parametrize("option", ["--report", "--junit", "--html", "--log-json"])
def test_output_in_a_missing_directory_is_a_usage_error(option: str, tmp_path: Path) -> None:
    wanted = tmp_path / "no" / "such" / "dir" / "out.file"
    done = run_tool(option, str(wanted), "--report", str(tmp_path / "r.json"), cwd=tmp_path,
                    timeout=60) if option != "--report" else \
        run_tool(option, str(wanted), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert f"{tmp_path / 'no' / 'such' / 'dir'} does not exist" in done.stderr
    assert not (tmp_path / "no").exists()       # no tree created
    assert not (tmp_path / "r.json").exists()


def test_a_config_case_replays_from_any_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The config path a case names is stored relative to the case, and resolved
    against it: the case finds its config from whatever directory it is replayed."""
    project = tmp_path / "project"
    (project / "shop").mkdir(parents=True)
    (project / "shop" / "chaos.toml").write_text("# the shop's config\n")
    monkeypatch.chdir(project)
    _, scenario = playbook()[0]
    path, new = save_case(invariant="no-lost-payment",
                          target={"kind": "config", "name": "shop", "config": "shop/chaos.toml"},
                          seed=1, scenario=scenario, found={"status": "FAILED"},
                          directory=Path("tests/regressions"))
    assert new
    assert '"config": "../../shop/chaos.toml"' in path.read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    case = load_case(project / path)
    assert Path(case.target["config"]).resolve() == (project / "shop" / "chaos.toml").resolve()


def test_an_old_case_keeps_a_path_relative_to_where_it_was_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, scenario = playbook()[0]
    path, _ = save_case(invariant="no-lost-payment",
                        target={"kind": "config", "name": "shop", "config": "/abs/chaos.toml"},
                        seed=1, scenario=scenario, found={}, directory=tmp_path)
    text = path.read_text().replace('"/abs/chaos.toml"', '"shop/chaos.toml"')
    path.write_text(text)                      # as written before paths were relative
    assert load_case(path).target["config"] == "shop/chaos.toml"


@pytest.mark.e2e
def test_without_the_tools_dependencies_it_is_one_line(tmp_path: Path) -> None:
    """``python -S`` leaves site-packages out: structlog, trio, ... are missing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-S", "-m", "chaos", "--examples", "3"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("payment-chaos: error: the module ") and "is missing" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
