"""``payment-chaos merge``: N shards' reports (and corpora) become one run's.

    payment-chaos merge shard-1.json shard-2.json [--cases DIR]... [--report OUT]
                        [--junit PATH] [--html PATH] [--corpus DIR]

The reports are those of ``run --shard I/N`` (merged by
:func:`chaos.report.merge.merge_reports`) or of ``load --shard I/N``
(:func:`chaos.load.merge.merge_summaries`), never both at once. The merged
corpus holds every case the shards saved: each finding's ``case`` (found as
the report names it, next to the report, or by name in a ``--cases``
folder: a CI job's downloaded artifact) and every case of the ``--cases``
folders. Case files are named by their content (invariant, target,
scenario), so two shards' cases of one failure are one file; a case already
in ``--corpus`` is kept as it is.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import UsageError
from chaos.report.corpus import corpus_files, load_case
from chaos.report.merge import NotMergeable, merge_reports
from chaos.report.outputs import check_writable, write_outputs


@dataclass(frozen=True)
class MergeOptions:
    """What a merge does: the command line's ``merge`` options, as data."""

    reports: tuple[Path, ...]
    report: Path = Path("chaos-report.json")
    junit: Path | None = None
    html: Path | None = None
    corpus: Path = Path("chaos-failures")
    #: The shards' corpus folders (their ``--corpus``), where the cases are found.
    cases: tuple[Path, ...] = ()
    #: How the user runs the tool, for the replay commands the report prints.
    invocation: str = "python -m chaos"


def merge(options: MergeOptions) -> dict[str, Any]:
    """Read, merge and write (see the module docstring); the merged data. A report that
    cannot be read or merged is a UsageError before anything is written."""
    for path, option in ((options.report, "--report"), (options.junit, "--junit"),
                         (options.html, "--html")):
        check_writable(path, option)
    missing = [str(p) for p in options.cases if not p.is_dir()]
    if missing:
        raise UsageError(f"--cases {missing[0]} is not a folder: give a shard's --corpus folder")
    datas = [_read(path) for path in options.reports]
    names = [str(path) for path in options.reports]
    kinds = {d.get("kind", "run") for d in datas}
    if len(kinds) > 1:
        raise UsageError("these are a run's reports and a load run's summaries: merge "
                         "each kind on its own")
    try:
        if kinds == {"load"}:
            from chaos.load.merge import merge_summaries

            if options.junit or options.html or options.cases:
                raise UsageError("--junit, --html and --cases are for run reports; load "
                                 "summaries merge into one summary: drop them")

            merged = merge_summaries(datas, names)
            write_outputs(merged, report=options.report)
            return merged
        merged = merge_reports(datas, names)
    except NotMergeable as exc:
        raise UsageError(str(exc)) from None
    _merge_corpus(merged, options)
    write_outputs(merged, report=options.report, junit_path=options.junit,
                  html_path=options.html)
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}): give the shards' JSON "
                         "reports") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path} is not JSON: give the shards' JSON reports") from None
    if not isinstance(data, dict) or "verdict" not in data:
        raise UsageError(f"{path} is not a report of payment-chaos run or load: give the "
                         "shards' --report (or load's --summary) files")
    return data


def _merge_corpus(merged: dict[str, Any], options: MergeOptions) -> None:
    """Copy every shard's cases into ``options.corpus``; point the findings at them."""
    copied: dict[str, Path] = {}
    for source in corpus_files(options.cases):
        copied.setdefault(source.name, _copy(source, options.corpus))
    origins = {str(m["report"]): Path(str(m["report"])).parent for m in merged["merged"]}
    for finding in merged["failures"]:
        case = finding.get("case")
        if not isinstance(case, str) or not case:
            continue
        name = Path(case).name
        if name not in copied:
            found = _find(Path(case), [*origins.values(), *options.cases])
            if found is None:
                continue      # not on disk here: the finding keeps the path it had
            copied[name] = _copy(found, options.corpus)
        finding["case"] = str(copied[name])
        finding["replay"] = replay_line(options.invocation, copied[name])


def _find(case: Path, folders: Sequence[Path]) -> Path | None:
    for where in (case, *(folder / case for folder in folders),
                  *(folder / case.name for folder in folders)):
        if where.is_file():
            return where
    return None


def _copy(source: Path, corpus: Path) -> Path:
    """``source`` into ``corpus`` under its name, unless a readable case is there already."""
    target = corpus / source.name
    if target.exists():
        try:
            load_case(target)
            return target
        except ValueError:
            pass
    corpus.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def replay_line(invocation: str, case: Path) -> str:
    """The line that replays ``case`` (as ``chaos.lifecycle.replay_command`` writes it)."""
    return f"{invocation} replay {shlex.quote(str(case))}"

