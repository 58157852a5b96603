"""Signals: every way a person or a CI runner stops a run ends the same way.

Ctrl-C (SIGINT), CI cancellation and ``timeout`` (SIGTERM) and a closed
terminal (SIGHUP) all raise :class:`Interrupted` in the main thread, once:
the run unwinds through its ``with`` blocks (children stopped, schemas
dropped, temporary folders removed), the search hands back what it found so
far, the report is written, and the process exits ``128 + signal`` (130,
143, 129). Later signals are ignored: a terminal and nox may deliver the
same Ctrl-C twice, and a second one must not cut the clean-up short.

Clean-up itself runs under :func:`deferred`: a first signal that arrives
while children are being stopped is recorded and raised only once they are,
so no half-stopped server is left behind.

``Interrupted`` is a ``KeyboardInterrupt``, so Hypothesis lets it through as
it does Ctrl-C. A trio run is not interrupted by raising (an exception thrown
into trio's scheduler breaks it): it runs under :func:`cancelling`, which
cancels it from the handler and raises once it has returned. Should one reach
trio anyway, wrapped in a ``BaseExceptionGroup``, :func:`interrupt_in` finds it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

#: The signals that stop a run cleanly, and their names for messages and reports.
SIGNALS: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM",
                           signal.SIGHUP: "SIGHUP"}


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived: unwind, keep what was found, exit ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(SIGNALS.get(signum, f"signal {signum}"))
        self.signum = signum
        self.name = SIGNALS.get(signum, f"signal {signum}")
        self.exit_code = 128 + signum


class _State:
    """What the handler knows: the first signal received, and whether to raise now."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = 0
        self.pending = False        # received while deferring, not raised yet
        self.cancels: list[Callable[[], None]] = []


_state = _State()


def received() -> Interrupted | None:
    """The interrupt of the first stop signal seen since :func:`handled` began, if any."""
    return None if _state.received is None else Interrupted(_state.received)


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state.received is not None:
        return                      # a repeat (terminal and nox both send Ctrl-C): ignored
    _state.received = signum
    if _state.deferring:
        _state.pending = True
        for cancel in list(_state.cancels):
            cancel()
    else:
        raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (once).

    Installed by the command line around a run; restored afterwards. Only the
    main thread can install signal handlers: elsewhere this does nothing.
    """
    _state.received = None
    _state.deferring = 0
    _state.pending = False
    # Python finds its temporary folder on first use by creating and removing a probe
    # file there; a signal between the two would leave the probe behind. Find it now,
    # before a signal can interrupt anything.
    tempfile.gettempdir()
    previous: dict[int, object] = {}
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, _handle)
    except ValueError:              # not the main thread: leave signals alone
        previous.clear()
    unraisable = sys.unraisablehook

    def dropped(info: Any) -> None:
        """Python runs the handler wherever the main thread is, in a ``__del__`` or a gc
        callback too, and prints what it raises there as a traceback, then drops it: the
        signal is recorded all the same and raised by the next example (chaos.run), so
        say nothing here; anything else goes to the hook as before."""
        if not isinstance(info.exc_value, Interrupted):
            unraisable(info)

    sys.unraisablehook = dropped
    try:
        yield
    finally:
        sys.unraisablehook = unraisable
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block a first stop signal is recorded, not raised: clean-up runs to
    its end (each step of it bounded). It is raised when the outermost deferred block
    ends, unless an exception is already on its way out."""
    _state.deferring += 1
    try:
        yield
    except BaseException:
        _state.deferring -= 1
        if not _state.deferring:
            _state.pending = False  # the block is unwinding anyway; received() tells it
        raise
    _state.deferring -= 1
    if not _state.deferring and _state.pending:
        _state.pending = False
        raise Interrupted(_state.received or signal.SIGINT)


@contextlib.contextmanager
def cancelling(cancel: Callable[[], None]) -> Iterator[None]:
    """A :func:`deferred` block that a stop signal ends early by calling ``cancel``
    (e.g. a trio run's ``token.run_sync_soon(scope.cancel)``: safe from a signal
    handler), rather than by raising inside code that cannot take it (trio's
    scheduler). The signal is raised when the block ends."""
    with deferred():
        _state.cancels.append(cancel)
        try:
            if _state.pending:
                cancel()
            yield
        finally:
            _state.cancels.remove(cancel)


class Teardown(contextlib.ExitStack):
    """An ``ExitStack`` whose entering and unwinding are :func:`deferred`: a signal
    that arrives while a part starts is raised once the stack knows how to stop it
    (never between the two), and what was started is stopped even when a signal
    arrives in the middle of stopping it. Start-up steps are bounded, so the delay is."""

    def enter_context(self, cm: contextlib.AbstractContextManager[T]) -> T:
        with deferred():
            return super().enter_context(cm)

    def __exit__(self, *exc_info: Any) -> bool:
        with deferred():
            return bool(super().__exit__(*exc_info))


def interrupt_in(exc: BaseException | None) -> Interrupted | None:
    """The :class:`Interrupted` in ``exc``: itself, inside an exception group (trio
    wraps what a task raised), or what caused it (a TrioInternalError)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Interrupted):
            return current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend([current.__cause__, current.__context__])
    return None
