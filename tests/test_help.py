"""The help a user starts from: the top-level help leads to the run's options."""

from __future__ import annotations

import pytest

from chaos import cli


def test_the_top_level_help_points_to_the_run_options(capsys, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CHAOS_INVOCATION", "nox -s chaos --")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Without a command it runs `run`" in out
    assert "\n  nox -s chaos -- run --help\n" in out
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "--examples" in capsys.readouterr().out   # and there the options are
