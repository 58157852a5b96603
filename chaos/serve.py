"""Serve an ASGI app on loopback with uvicorn: the shared launcher of the
reference service and the fake Stripe API when they run as programs."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from chaos.errors import InfrastructureError, UsageError

LOOPBACK = "127.0.0.1"


def bind(port: int, host: str = LOOPBACK) -> socket.socket:
    """A listening socket on ``host:port``; port 0 picks a free one."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: use 1..65535, or 0 for a free one")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"port {port} on {host} is not available ({exc.strerror}): "
            "choose another port, or 0 for any free one"
        ) from None
    sock.listen(4096)
    return sock


def serve(app: Any, sock: socket.socket, *, http: Any = "auto") -> None:
    """Run ``app`` on ``sock`` until SIGTERM/SIGINT; announce the URL on stdout.

    ``http`` is uvicorn's HTTP protocol: a name, or a class (the fake Stripe
    passes its own, to reach the connections under it).
    """
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            backlog=4096, timeout_keep_alive=5, http=http)
    server = uvicorn.Server(config)
    print(f"listening on http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    if not server.started:
        raise InfrastructureError(f"the server on {host}:{port} did not start (uvicorn said why above)")
