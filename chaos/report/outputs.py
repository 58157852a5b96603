"""Writing the run's files: checked before anything is sent, written at the
end whatever the verdict (CI wants its artifacts most when a run failed)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.errors import InfrastructureError, UsageError
from chaos.report.junit import junit
from chaos.report.timeline import timeline


def check_writable(path: Path | None, option: str) -> None:
    """Refuse an output path that cannot be written (UsageError, exit 2, nothing sent)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory: give a file path")
    parent = path.parent
    if not parent.exists():      # a typo is likelier than a wish for a new tree of folders
        raise UsageError(f"{option} {path}: the directory {parent} does not exist: create "
                         "it first, or choose another path")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: {parent} is not a writable directory: "
                         "choose another path")


def write(path: Path, text: str, what: str) -> None:
    """Write one output; a failure is one line naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InfrastructureError(f"cannot write the {what} to {path} ({exc.strerror}): "
                                  "choose another path") from None


def write_outputs(data: Mapping[str, Any], *, report: Path | None = None,
                  junit_path: Path | None = None, html_path: Path | None = None) -> None:
    """The JSON report, JUnit XML and HTML timeline of ``data``, each where asked."""
    if report is not None:
        write(report, json.dumps(data, indent=2) + "\n", "JSON report")
    if junit_path is not None:
        write(junit_path, junit(data), "JUnit report")
    if html_path is not None:
        write(html_path, timeline(data), "HTML timeline")
