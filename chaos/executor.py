"""The interpreter: fires waves of calls at the target and records a history.

Each wave's requests are built first, then every task waits behind one
start barrier and they go together, at most ``concurrency`` in flight. A
wave ends when all its requests have answered or timed out; the next wave
starts after. Every request is bounded by ``request_timeout`` and every
wave by the example deadline the caller sets with a trio cancel scope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from chaos.history import History, Op, Outcome

_EXCERPT = 300


@dataclass
class Call:
    """One request to fire: what it is, and how to build it when its wave comes.

    ``build`` runs just before the wave's barrier, so it can use answers of
    earlier waves (abstract references resolved at run time). ``on_answer``
    sees every 2xx answer and may record what later calls need.
    """

    kind: str
    door: str
    build: Callable[[], httpx.Request]
    wave: int | None = None
    step: int | None = None
    ref: dict[str, Any] = field(default_factory=dict)
    on_answer: Callable[[httpx.Response], None] | None = None


async def fire_wave(calls: Sequence[Call], *, http: httpx.AsyncClient,
                    limiter: trio.CapacityLimiter, history: History,
                    request_timeout: float) -> None:
    """Fire ``calls`` together behind a start barrier; record each in ``history``."""
    requests = [call.build() for call in calls]
    go = trio.Event()

    async def fire(call: Call, request: httpx.Request, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await go.wait()
        async with limiter:
            await _send(call, request, http=http, history=history,
                        request_timeout=request_timeout)

    async with trio.open_nursery() as nursery:
        for call, request in zip(calls, requests, strict=True):
            await nursery.start(fire, call, request)
        go.set()


async def _send(call: Call, request: httpx.Request, *, http: httpx.AsyncClient,
                history: History, request_timeout: float) -> None:
    start = trio.current_time()
    status: int | None = None
    body = ""
    error: str | None = None
    response: httpx.Response | None = None
    try:
        with trio.fail_after(request_timeout):
            response = await http.send(request)
    except trio.TooSlowError:
        outcome, error = Outcome.INFO, f"no answer within {request_timeout:g} s"
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        outcome, error = Outcome.FAIL, f"not delivered: {exc}"
    except httpx.HTTPError as exc:
        outcome, error = Outcome.INFO, f"{type(exc).__name__}: {exc}"
    else:
        status = response.status_code
        body = response.text[:_EXCERPT]
        outcome = Outcome.OK if 200 <= status < 300 else Outcome.FAIL
    end = trio.current_time()
    history.append(Op(
        index=history.next_index(), kind=call.kind, door=call.door,
        method=request.method, path=request.url.path, wave=call.wave, step=call.step,
        start=start, end=end, status=status, outcome=outcome, body=body, error=error,
        ref=dict(call.ref),
    ))
    if response is not None and outcome is Outcome.OK and call.on_answer is not None:
        call.on_answer(response)
