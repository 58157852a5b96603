"""The regression corpus: every confirmed failure as a readable JSON case.

A case names the scenario (the shrunk schedule, as data and as steps), the
target it broke (``{"kind": "reference", "bugs": [...]}``), the invariant, the
seed of the run that found it, and what a replay must show, as a list of
*expectations*. Each expectation says against which bugs of the reference
service to run the scenario and whether the invariant must break or every
invariant must hold:

- A case found with a deliberate bug switched on is a test of the *tool*:
  against that bug the invariant must still break (the tool still catches
  it), and against the correct service the same scenario must hold (so the
  catch is the bug's doing, not a false alarm).
- A case found against a service with no deliberate bug is a real bug: the
  scenario must hold. CI fails while the bug is there and stays green once
  it is fixed, for good.

``python -m chaos replay FILE`` re-runs a case against the target it names
and fails while the invariant still breaks; ``python -m chaos replay --expect
FILE`` checks the expectations instead (the regression suite). Hypothesis'
own example database is only a cache and is never the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.log import redactor
from strategies import Scenario

#: Format 2 adds ``expect``; format 1 (the skeleton's) still loads.
CASE_FORMAT = 2
BREAKS = "breaks"
HOLDS = "holds"


@dataclass(frozen=True)
class Expectation:
    """One replay check: run against the reference service with ``bugs``
    switched on; ``breaks``: ``invariant`` breaks in at least one run;
    ``holds``: no invariant breaks in any run."""

    bugs: tuple[str, ...]
    outcome: str
    invariant: str | None
    why: str

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"bugs": list(self.bugs), "outcome": self.outcome}
        if self.invariant is not None:
            data["invariant"] = self.invariant
        data["why"] = self.why
        return data

    def met(self, broken_runs: int, runs: int) -> bool:
        return broken_runs > 0 if self.outcome == BREAKS else broken_runs == 0

    def against(self) -> str:
        return f"with {', '.join(self.bugs)}" if self.bugs else "without bugs"


@dataclass(frozen=True)
class Case:
    """A saved failure, parsed: what :func:`load_case` returns."""

    path: Path
    invariant: str
    target: dict[str, Any]
    seed: int | None
    scenario: Scenario
    expect: tuple[Expectation, ...]
    found: dict[str, Any]


def expectations(invariant: str, target: Mapping[str, Any]) -> list[Expectation]:
    """What replaying a case found against ``target`` must show (see the module docstring)."""
    bugs = tuple(sorted(str(b) for b in target.get("bugs") or []))
    if bugs:
        return [
            Expectation(bugs, BREAKS, invariant,
                        f"the tool must still catch {', '.join(bugs)} with this scenario"),
            Expectation((), HOLDS, None,
                        "the correct service must pass the same scenario"),
        ]
    return [Expectation((), HOLDS, None,
                        f"the {invariant} failure this case found must stay fixed")]


def case_data(*, invariant: str, target: Mapping[str, Any], seed: int | None,
              scenario: Scenario, found: Mapping[str, Any]) -> dict[str, Any]:
    """A case as JSON-ready data, fields in reading order."""
    case: dict[str, Any] = redactor.value({
        "format": CASE_FORMAT,
        "invariant": invariant,
        "target": dict(target),
        "seed": seed,
        "expect": [e.to_data() for e in expectations(invariant, target)],
        "found": dict(found),
        "steps": scenario.render(),
        "scenario": scenario.to_data(),
    })
    return case


def case_name(invariant: str, target: Mapping[str, Any], scenario: Scenario) -> str:
    """``<invariant>-<digest>.json``: the same failure always gets the same name."""
    digest = hashlib.sha256(json.dumps([invariant, dict(target), scenario.to_data()],
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{invariant}-{digest}.json"


def save_case(*, invariant: str, target: Mapping[str, Any], seed: int | None,
              scenario: Scenario, found: Mapping[str, Any], directory: Path) -> tuple[Path, bool]:
    """Write the case into ``directory``; return its path and whether it is new.

    A case already in the corpus (same invariant, target and scenario) is kept
    as it is, so re-finding a known failure does not churn committed files.
    """
    path = directory / case_name(invariant, target, scenario)
    if path.exists():
        try:
            load_case(path)
            return path, False
        except ValueError:
            pass  # unreadable: replace it with a good one
    directory.mkdir(parents=True, exist_ok=True)
    data = case_data(invariant=invariant, target=_config_relative_to(directory, target),
                     seed=seed, scenario=scenario, found=found)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path, True


def _config_relative_to(directory: Path, target: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with its config path (a config run's) written relative to the case's
    directory, so the case replays from any working directory (and the corpus moves
    with the repository)."""
    stored = dict(target)
    config = stored.get("config")
    if isinstance(config, str) and config and not os.path.isabs(config):
        stored["config"] = os.path.relpath(Path(config).resolve(), directory.resolve())
    return stored


def _config_resolved(path: Path, target: dict[str, Any]) -> dict[str, Any]:
    """``target`` with a relative config path resolved against the case file's directory;
    a case written before paths were stored that way keeps its path (relative to the
    directory it was recorded in) when nothing is found next to the case."""
    config = target.get("config")
    if isinstance(config, str) and config and not os.path.isabs(config):
        beside = path.parent / config
        if beside.exists():
            return {**target, "config": str(beside)}
    return target


def load_case(path: Path) -> Case:
    """A case file, parsed; ValueError names the problem and the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") not in (1, CASE_FORMAT):
        raise ValueError(f"{path} is not a chaos case file (format {CASE_FORMAT})")
    invariant = data.get("invariant")
    target = data.get("target")
    if not isinstance(invariant, str) or not isinstance(target, dict):
        raise ValueError(f"{path}: a case needs \"invariant\" (text) and \"target\" (object)")
    try:
        scenario = Scenario.from_data(data["scenario"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: scenario: {exc}") from None
    if "expect" in data:
        expect = tuple(_expectation(path, e) for e in _list(path, data["expect"]))
    else:
        expect = tuple(expectations(invariant, target))
    seed, found = data.get("seed"), data.get("found")
    target = _config_resolved(path, target)
    return Case(path=path, invariant=invariant, target=target,
                seed=seed if isinstance(seed, int) else None, scenario=scenario, expect=expect,
                found=found if isinstance(found, dict) else {})


def _list(path: Path, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{path}: \"expect\" must be a non-empty list")
    return value


def _expectation(path: Path, data: Any) -> Expectation:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: each expectation must be an object")
    outcome = data.get("outcome")
    if outcome not in (BREAKS, HOLDS):
        raise ValueError(f"{path}: expectation outcome {outcome!r} must be "
                         f"{BREAKS!r} or {HOLDS!r}")
    bugs = data.get("bugs", [])
    if not isinstance(bugs, list) or not all(isinstance(b, str) for b in bugs):
        raise ValueError(f"{path}: expectation \"bugs\" must be a list of bug names")
    invariant = data.get("invariant")
    if outcome == BREAKS and not isinstance(invariant, str):
        raise ValueError(f"{path}: a {BREAKS!r} expectation must name its \"invariant\"")
    return Expectation(tuple(sorted(bugs)), outcome, invariant, str(data.get("why", "")))


def corpus_files(paths: Iterable[Path]) -> list[Path]:
    """The case files named by ``paths``: files as given, directories searched for ``*.json``."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return found
