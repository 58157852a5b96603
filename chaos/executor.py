"""The interpreter: fires waves of calls at the target and records a history.

A wave goes out in three steps:

1. Every call's request is built (abstract references resolved from the
   answers of earlier waves).
2. Up to ``concurrency`` of them open their TCP connection and serialise
   their bytes (the transport seam's ``open``), in parallel, bounded by the
   request timeout. Nothing has been sent yet.
3. The start barrier opens: one tight loop hands every prepared request
   to the kernel (one ``write`` each, no task switch in between), then the
   tasks wait for their answers. A call with an ``offset`` sleeps that long
   after the barrier and sends itself (a redelivery fired while the first
   is in flight). Calls beyond ``concurrency`` queue on a limiter, first
   come first served, and connect when a slot frees.

Every request is bounded by ``request_timeout`` (connect, send and answer),
so a wave ends when every request has answered or given up; the caller
bounds the whole example with a trio cancel scope. The executor measures
what the client achieved: the start skew of each wave (spread of send times
among the requests connected before the barrier with no offset) and the
peak number of requests in flight (sent and not yet answered).
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import trio

from chaos.errors import UsageError
from chaos.history import History, Op, Outcome, Ref, WaveRecord
from chaos.keepalive import WireRequest
from chaos.transport import Connection, LoopbackTransport

_EXCERPT = 300

#: File descriptors kept free for everything that is not a request socket.
_SPARE_DESCRIPTORS = 256


@dataclass
class Call:
    """One request to fire: what it is, and how to build it when its wave comes.

    ``build`` runs just before the wave's barrier, so it can use answers of
    earlier waves (abstract references resolved at run time); it returns None
    when what the call needs never came (the buyer's checkout failed, say),
    and the call is skipped. ``on_answer`` sees every 2xx answer and may
    record what later calls need; if it cannot read the answer (ValueError,
    KeyError, TypeError), the op is recorded as ``fail`` with a
    ``malformed answer`` error. ``offset`` is how many seconds after the
    wave's barrier the request goes out.

    ``build_wire``, where given, builds the same request as bytes for the load
    mode's kept-alive connections (:mod:`chaos.keepalive`), skipping the
    ``httpx.Request`` (a seventh of a load request's CPU); only calls without
    ``on_answer`` have one (nobody parses their answer).
    """

    kind: str
    door: str
    build: Callable[[], httpx.Request | None]
    wave: int | None = None
    step: int | None = None
    ref: Ref = field(default_factory=Ref)
    on_answer: Callable[[httpx.Response], None] | None = None
    offset: float = 0.0
    build_wire: Callable[[], WireRequest | None] | None = None


def ensure_descriptors(concurrency: int) -> None:
    """Raise this process's open-file limit so ``concurrency`` sockets fit.

    Child processes started afterwards (the tool's own services) inherit it.
    A UsageError names the fix when the hard limit is too low.
    """
    needed = concurrency * 2 + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"--concurrency {concurrency} needs about {needed} open files but the limit is "
            f"{hard}: raise it (ulimit -n {needed}) or lower --concurrency"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Executor:
    """Fires the waves of one example into one history."""

    def __init__(self, *, concurrency: int = 50, request_timeout: float = 10.0,
                 history: History | None = None, transport: LoopbackTransport | None = None,
                 preconnect: bool = True) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency!r} must be at least 1")
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.history = history if history is not None else History()
        self.transport = transport or LoopbackTransport()
        self.preconnect = preconnect
        self.in_flight = 0
        self._wave_peak = 0

    async def fire_wave(self, calls: Sequence[Call], *, wave: int | None = None) -> WaveRecord:
        """Fire ``calls`` together behind a start barrier; record each in the history."""
        built = [(call, call.build()) for call in calls]
        calls = [call for call, request in built if request is not None]
        requests = [request for _, request in built if request is not None]
        n = len(calls)
        early = min(n, self.concurrency) if self.preconnect else 0
        limiter = trio.CapacityLimiter(self.concurrency)
        all_ready = trio.Event()
        go = trio.Event()
        waiting = n
        barrier = 0.0
        connections: list[Connection | None] = [None] * n
        self._wave_peak = self.in_flight

        async def one(i: int) -> None:
            nonlocal waiting
            call, request = calls[i], requests[i]
            refused: str | None = None
            acquired = False
            try:
                if i < early:
                    await limiter.acquire()
                    acquired = True
                    connections[i], refused = await self._open(request)
                waiting -= 1
                if waiting == 0:
                    all_ready.set()
                await go.wait()
                if call.offset > 0:
                    await trio.sleep_until(barrier + call.offset)
                if not acquired:
                    await limiter.acquire()
                    acquired = True
                connection = connections[i]
                if connection is not None and connection.refused is not None:
                    # closed on us before a byte went out: nothing was delivered, connect afresh
                    await connection.aclose()
                    connection = connections[i] = None
                await self._send(call, request, connection, refused)
            finally:
                opened = connections[i]
                if opened is not None:
                    await opened.aclose()
                if acquired:
                    limiter.release()

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
            if n:
                await all_ready.wait()
            barrier = trio.current_time()
            for i, connection in enumerate(connections):
                if connection is not None and calls[i].offset == 0:
                    connection.send_now()
            go.set()
        together = [c.sent_at for i, c in enumerate(connections)
                    if c is not None and c.sent_at is not None and calls[i].offset == 0]
        record = WaveRecord(wave=wave, barrier=barrier, requests=n, preconnected=early,
                            skew=(max(together) - min(together)) if together else 0.0,
                            client_peak_in_flight=self._wave_peak)
        self.history.waves.append(record)
        self.history.client_peak_in_flight = max(self.history.client_peak_in_flight,
                                                 self._wave_peak)
        return record

    async def _open(self, request: httpx.Request) -> tuple[Connection | None, str | None]:
        """Connect ahead of the barrier; a refusal is kept to be recorded at the barrier."""
        try:
            with trio.fail_after(self.request_timeout):
                return await self.transport.open(request, connect_timeout=self.request_timeout), None
        except trio.TooSlowError:
            return None, f"no connection within {self.request_timeout:g} s"
        except httpx.HTTPError as exc:
            return None, str(exc)

    async def _send(self, call: Call, request: httpx.Request, connection: Connection | None,
                    refused: str | None) -> None:
        """Send one request (connecting first if needed) and record it."""
        attempt = trio.current_time()
        status: int | None = None
        body = ""
        error: str | None = None
        response: httpx.Response | None = None
        outcome = Outcome.INFO
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            sent_at = connection.sent_at if connection is not None else None
            self.history.append(Op(
                index=self.history.next_index(), kind=call.kind, door=call.door,
                method=request.method, path=request.url.path, wave=call.wave, step=call.step,
                start=sent_at if sent_at is not None else attempt, end=trio.current_time(),
                status=status, outcome=outcome, body=body, error=error, ref=call.ref,
                offset=call.offset, sent=sent_at is not None,
            ))

        if refused is not None:
            outcome, error = Outcome.FAIL, f"not delivered: {refused}"
            record()
            return
        try:
            with trio.fail_after(self.request_timeout):
                if connection is None:
                    connection = await self.transport.open(
                        request, connect_timeout=self.request_timeout)
                with self._counted():
                    response = await connection.exchange(read_timeout=self.request_timeout)
        except trio.TooSlowError:
            if connection is not None and connection.sent_at is not None:
                outcome, error = Outcome.INFO, f"no answer within {self.request_timeout:g} s"
            else:
                outcome = Outcome.FAIL
                error = f"not delivered: no connection within {self.request_timeout:g} s"
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            outcome, error = Outcome.FAIL, f"not delivered: {exc}"
        except httpx.HTTPError as exc:
            outcome, error = Outcome.INFO, f"{type(exc).__name__}: {exc}"
        except trio.Cancelled:
            outcome, error = Outcome.INFO, "cancelled: the example's deadline passed"
            record()
            raise
        else:
            status = response.status_code
            body = response.text[:_EXCERPT]
            outcome = Outcome.OK if 200 <= status < 300 else Outcome.FAIL
            if outcome is Outcome.OK and call.on_answer is not None:
                try:
                    call.on_answer(response)
                except (ValueError, KeyError, TypeError) as exc:
                    outcome = Outcome.FAIL
                    error = f"malformed answer: {type(exc).__name__}: {exc}"[:200]
        finally:
            if connection is not None:
                await connection.aclose()
        if not recorded:
            record()

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.in_flight += 1
        self._wave_peak = max(self._wave_peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
