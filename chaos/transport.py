"""The httpx transport seam: trio streams and h11, one connection per request.

httpx's own pool serialises exactly the concurrency this tool exists to
create (measured: 50 requests fired behind a barrier arrived 10 to 12 at a
time). Here every request gets a fresh TCP connection, so 50 fired means 50
arriving.

The seam has two steps so the executor can split them around a wave's
start barrier: :meth:`LoopbackTransport.open` connects and serialises the
request (slow, done before the barrier); :meth:`Connection.exchange` sends
the prepared bytes and reads the answer (done after it). That leaves one
``send`` call per request between the barrier and the wire.
``handle_async_request`` does both, for plain httpx use.

Lower-level errors map onto httpx's exception tree; whether any byte of
the request left this process decides between ``ConnectError`` /
``ConnectTimeout`` (it certainly never arrived) and the read/write errors
(it may have).
"""

from __future__ import annotations

import os

import h11
import httptools
import httpx
import trio

_READ_SIZE = 65536
_MAX_BODY = 8 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0


class Connection:
    """One open TCP connection carrying one prepared request."""

    def __init__(self, stream: trio.SocketStream, request: httpx.Request,
                 prepared: tuple[h11.Connection, bytes]) -> None:
        self.stream = stream
        self.request = request
        self._h11, self._data = prepared
        #: ``trio.current_time()`` when the first request bytes were handed to the kernel.
        self.sent_at: float | None = None
        #: Why :meth:`send_now` could not send a single byte (the connection is unusable).
        self.refused: OSError | None = None

    def send_now(self) -> None:
        """Hand the prepared bytes to the kernel at once, without yielding to trio.

        The executor calls this for every connection of a wave in one tight
        loop right after the barrier: one ``write`` per request, nothing in
        between. Whatever the kernel does not take now (nothing, with a
        small request) goes out in :meth:`exchange`.
        """
        now = trio.current_time()
        try:
            n = os.write(self.stream.socket.fileno(), self._data)
        except BlockingIOError:
            return
        except OSError as exc:
            self.refused = exc
            return
        if n:
            self.sent_at = now
            self._data = self._data[n:]

    async def exchange(self, *, read_timeout: float = DEFAULT_READ_TIMEOUT) -> httpx.Response:
        """Send the request (what :meth:`send_now` left of it) and read the whole answer."""
        if self._data:
            try:
                if self.sent_at is None:
                    self.sent_at = trio.current_time()
                await self.stream.send_all(self._data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise httpx.WriteError(f"sending to {self.request.url.host}: {exc}") from None
            self._data = b""
        return await self._read(read_timeout)

    async def _read(self, read_timeout: float) -> httpx.Response:
        conn = self._h11
        status = 0
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(f"malformed response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    with trio.fail_after(read_timeout):
                        chunk = await self.stream.receive_some(_READ_SIZE)
                except trio.TooSlowError:
                    raise httpx.ReadTimeout(f"no answer within {read_timeout:g} s") from None
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise httpx.ReadError(f"connection lost: {exc}") from None
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = list(event.headers)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > _MAX_BODY:
                    raise httpx.RemoteProtocolError(f"response body over {_MAX_BODY} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("connection closed before a complete response")
        return httpx.Response(status, headers=response_headers, content=b"".join(chunks),
                              request=self.request, extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class LoopbackTransport(httpx.AsyncBaseTransport):
    """``handle_async_request`` over trio + h11, a fresh connection each time."""

    async def open(self, request: httpx.Request, *,
                   connect_timeout: float | None = None) -> Connection:
        """Connect to the request's host and serialise the request, ready to send."""
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// on loopback is supported, not {request.url}")
        if connect_timeout is None:
            connect_timeout = request.extensions.get("timeout", {}).get("connect") \
                or DEFAULT_CONNECT_TIMEOUT
        host = request.url.host
        port = request.url.port or 80
        prepared = await _serialise(request)
        try:
            with trio.fail_after(connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {host}:{port}: {_reason(exc)}") from None
        return Connection(stream, request, prepared)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        read_timeout = request.extensions.get("timeout", {}).get("read") or DEFAULT_READ_TIMEOUT
        connection = await self.open(request)
        try:
            return await connection.exchange(read_timeout=read_timeout)
        finally:
            await connection.aclose()


def _reason(exc: OSError) -> str:
    """The first underlying reason ("Connection refused"), not trio's summary."""
    inner = getattr(exc.__cause__, "exceptions", None) or [exc]
    first = inner[0]
    if isinstance(first, OSError) and first.errno:
        return os.strerror(first.errno)
    return exc.strerror or str(exc)


async def _serialise(request: httpx.Request) -> tuple[h11.Connection, bytes]:
    conn = h11.Connection(our_role=h11.CLIENT)
    body = await request.aread()
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"connection"]
    headers.append((b"connection", b"close"))
    if not any(k.lower() == b"host" for k, _ in headers):
        headers.insert(0, (b"host", request.url.netloc))
    data = conn.send(h11.Request(method=request.method, target=request.url.raw_path,
                                 headers=headers))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    return conn, data


class _Answer:
    """httptools' callbacks: collects one response."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        # asked here: once the message is complete, httptools has forgotten (it says False)
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > _MAX_BODY:
            raise httpx.RemoteProtocolError(f"response body over {_MAX_BODY} bytes")
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class KeepAlive:
    """One HTTP/1.1 connection reused request after request: the load path.

    A race wave wants a fresh connection per request (above); sustained load
    wants what browsers and k6 do, one connection kept open per virtual user,
    so the cost of connecting is paid once instead of per request. Requests
    go one at a time (no pipelining). The connection is (re)opened when there
    is none, when the server said it will close, or when it sat idle longer
    than ``idle_seconds`` (servers close idle ones: uvicorn after 5 s).

    Here the client's own CPU per request is the figure (measured against
    k6), so the request head is written directly (httpx has already
    normalised the headers) and the answer is parsed by httptools, the C
    parser uvicorn uses: against h11 that halves the transport's CPU.

    :meth:`exchange` returns ``(sent_at, response)``; failures raise httpx's
    errors as :class:`LoopbackTransport` does (``ConnectError``: never sent).
    """

    def __init__(self, *, idle_seconds: float = 4.0) -> None:
        self.idle_seconds = idle_seconds
        self._stream: trio.SocketStream | None = None
        self._where: tuple[str, int] | None = None
        self._last_used = 0.0
        #: Connections opened so far (1 for a VU that never lost its connection).
        self.opened = 0

    async def _connect(self, host: str, port: int, timeout: float) -> None:
        await self.aclose()
        try:
            with trio.fail_after(timeout):
                self._stream = await trio.open_tcp_stream(host, port)
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {host}:{port}: {_reason(exc)}") from None
        self._where = (host, port)
        self.opened += 1

    async def exchange(self, request: httpx.Request, *,
                       timeout: float = DEFAULT_READ_TIMEOUT) -> tuple[float, httpx.Response]:
        """Send ``request`` on the kept connection and read the whole answer."""
        sent_at, status, headers, body = await self.exchange_raw(request, timeout=timeout)
        return sent_at, httpx.Response(status, headers=headers, content=body, request=request,
                                       extensions={"http_version": b"HTTP/1.1"})

    async def exchange_raw(self, request: httpx.Request, *, timeout: float = DEFAULT_READ_TIMEOUT
                           ) -> tuple[float, int, list[tuple[bytes, bytes]], bytes]:
        """:meth:`exchange` without building an httpx.Response: ``(sent_at, status,
        headers, body)``, for answers nobody parses (a tenth of a load request's CPU)."""
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// on loopback is supported, not {request.url}")
        where = (request.url.host, request.url.port or 80)
        if (self._stream is None or self._where != where
                or trio.current_time() - self._last_used > self.idle_seconds):
            await self._connect(*where, timeout)
        assert self._stream is not None
        stream = self._stream
        lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
        lines += [k + b": " + v for k, v in request.headers.raw if k.lower() != b"connection"]
        data = b"\r\n".join(lines) + b"\r\n\r\n" + request.content
        sent_at = trio.current_time()
        try:
            try:
                await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise httpx.WriteError(f"sending to {request.url.host}: {exc}") from None
            answer, parser = await self._read(stream, timeout)
        except BaseException:
            await self.aclose()
            raise
        self._last_used = trio.current_time()
        if not answer.keep_alive:
            await self.aclose()
        return sent_at, parser.get_status_code(), answer.headers, b"".join(answer.chunks)

    @staticmethod
    async def _read(stream: trio.SocketStream,
                    timeout: float) -> tuple[_Answer, httptools.HttpResponseParser]:
        answer = _Answer()
        parser = answer.parser = httptools.HttpResponseParser(answer)
        with trio.move_on_after(timeout) as scope:
            while not answer.complete:
                try:
                    chunk = await stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise httpx.ReadError(f"connection lost: {exc}") from None
                if not chunk:
                    raise httpx.RemoteProtocolError("connection closed before a complete response")
                try:
                    parser.feed_data(chunk)
                except httptools.HttpParserError as exc:
                    raise httpx.RemoteProtocolError(f"malformed response: {exc}") from None
        if scope.cancelled_caught:
            raise httpx.ReadTimeout(f"no answer within {timeout:g} s")
        return answer, parser

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()
