"""Watching a run for its reports: every example the runner makes passes
through here on its way back to the search.

A :class:`Watch` advances the progress line, logs each example and each
request (JSON log, DEBUG), and keeps the history of the latest failing run
of each scenario, so the HTML timeline can draw the shrunk failure as it
last failed (one of the confirmation runs, or the search's own run when
none failed again). The search and the runner need no hook for this.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from chaos.log import LOGGER_NAME
from chaos.report.progress import Progress

R = TypeVar("R")


class Watch:
    """Sees every example; remembers the failing histories; feeds the progress line and the log."""

    def __init__(self, progress: Progress, log: Any) -> None:
        self.progress = progress
        self.log = log
        self._failing: dict[tuple[Any, str], Any] = {}

    def run_example(self, run_example: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``run_example``, watched. The first example of a run is its load wave."""
        def run(scenario: Any) -> Any:
            if self.progress.examples == 0 and not self.progress.current_phase:
                self.progress.phase("load wave")
            result = run_example(scenario)
            self.seen(result)
            if self.progress.examples == 1:
                self.progress.phase("search")
            return result
        return run

    def seen(self, result: Any) -> None:
        self.progress.example(result)
        for invariant in {v.invariant for v in result.violations}:
            with contextlib.suppress(TypeError):   # an unhashable scenario is not remembered
                self._failing[(result.scenario, invariant)] = result.history
        if logging.getLogger(LOGGER_NAME).isEnabledFor(logging.DEBUG):
            n = self.progress.examples
            self.log.debug("example", n=n, requests=getattr(result.scenario, "requests", None),
                           broken=sorted({v.invariant for v in result.violations}),
                           schedule=result.scenario.to_data())
            for op in result.history.ops:
                self.log.debug("request", n=n, **op.to_data())

    def history(self, scenario: Any, invariant: str) -> Any | None:
        """The history of the latest run of ``scenario`` that broke ``invariant``."""
        try:
            return self._failing.get((scenario, invariant))
        except TypeError:
            return None

    def runs(self, start: Callable[..., contextlib.AbstractContextManager[R]]
             ) -> Callable[..., contextlib.AbstractContextManager[R]]:
        """``start`` (e.g. ``reference_run``) whose runner's ``run_example`` is watched."""
        @contextlib.contextmanager
        def watched(*args: Any, **kwargs: Any) -> Iterator[R]:
            with start(*args, **kwargs) as runner:
                runner.run_example = self.run_example(runner.run_example)  # type: ignore[attr-defined]
                self.log.info("target.ready", stripe_url=getattr(runner, "stripe_url", None),
                              target=_described(getattr(runner, "target", None)))
                yield runner
        return watched


def _described(target: Any) -> dict[str, Any] | None:
    """The target's fields for the log, its SQL left out (the redactor hides its secret)."""
    if target is None:
        return None
    fields = getattr(target, "__dataclass_fields__", {})
    return {name: getattr(target, name) for name in fields if not name.endswith("_sql")}
