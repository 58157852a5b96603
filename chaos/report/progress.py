"""The live progress line while a run goes: examples done, requests sent,
failures so far. Drawn in place on a terminal; silent when the output is
not a terminal (CI logs, pipes, files), so captured output stays clean.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

_CLEAR = "\r\x1b[2K"


class Progress:
    """Counts what each example did and redraws one line at most every ``interval`` s.

    ``example(result)`` takes an ``ExampleResult`` (anything with ``history.ops``
    and ``violations``); ``phase(name)`` says what the run is doing; ``close()``
    clears the line before the summary is printed.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None,
                 interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.examples = 0
        self.requests = 0
        self.failing_examples = 0
        self.broken: list[str] = []
        self.current_phase = ""
        self._drawn_at: float | None = None

    def phase(self, name: str) -> None:
        self.current_phase = name
        self.draw(force=True)

    def example(self, result: Any) -> None:
        self.examples += 1
        self.requests += sum(1 for op in result.history.ops if getattr(op, "door", "") == "target")
        if result.violations:
            self.failing_examples += 1
            for v in result.violations:
                if v.invariant not in self.broken:
                    self.broken.append(v.invariant)
        self.draw()

    def line(self) -> str:
        failures = f"failures {self.failing_examples}"
        if self.broken:
            failures += f" ({', '.join(self.broken)})"
        phase = f"{self.current_phase} · " if self.current_phase else ""
        # Every run counts (load wave, retries, confirmations): the summary's "examples"
        # counts the search's alone.
        return (f"  {phase}{self.clock() - self.started:.1f} s · examples run {self.examples} · "
                f"requests {self.requests} · {failures}")

    def draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        self.stream.write(_CLEAR + self.line()[: _width(self.stream) - 1])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.stream.write(_CLEAR)
            self.stream.flush()
        self._drawn_at = None


def _width(stream: TextIO) -> int:
    """Columns of the terminal, so the line never wraps (a wrapped line cannot be redrawn)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
