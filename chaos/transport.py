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
        stream = await open_stream(host, port, connect_timeout)
        return Connection(stream, request, prepared)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        read_timeout = request.extensions.get("timeout", {}).get("read") or DEFAULT_READ_TIMEOUT
        connection = await self.open(request)
        try:
            return await connection.exchange(read_timeout=read_timeout)
        finally:
            await connection.aclose()


def reason(exc: OSError) -> str:
    """The first underlying reason ("Connection refused"), not trio's summary."""
    inner = getattr(exc.__cause__, "exceptions", None) or [exc]
    first = inner[0]
    if isinstance(first, OSError) and first.errno:
        return os.strerror(first.errno)
    return exc.strerror or str(exc)


async def open_stream(host: str, port: int, timeout: float) -> trio.SocketStream:
    """A TCP connection to ``host:port`` within ``timeout`` seconds; httpx's connect
    errors (timeout, refused, ...) otherwise, with the reason in words."""
    try:
        with trio.fail_after(timeout):
            return await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
    except OSError as exc:
        raise httpx.ConnectError(f"connect to {host}:{port}: {reason(exc)}") from None


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
