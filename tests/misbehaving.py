"""A tiny HTTP server that misbehaves on purpose, in its own process, to play
a broken target: ``python -m tests.misbehaving MODE [N]``.

- ``hang``: reads every request and never answers;
- ``hang-webhooks``: like ``crash`` (below) at its checkout door, but never
  answers a request at any other path (a webhook door that hangs);
- ``500``: answers 500 to everything;
- ``crash``: answers 200 to the first N requests, then the process dies
  (``os._exit``) while holding the next one, as a crashed service does.
  Given the fake Stripe's URL, its checkout door opens a real Checkout
  Session there (so buyers can pay) and answers ``{url, sessionId}``; it
  stores nothing, so every payment it acknowledges is lost.

It prints ``listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def open_session(stripe_url: str, payload: dict) -> bytes:
    """A Checkout Session at the fake Stripe for the seed's checkout payload."""
    line = payload["tickets"][0]
    body = json.dumps({"amount_total": line["price"] * line["quantity"],
                       "metadata": {"event_id": payload["eventId"]}}).encode()
    request = urllib.request.Request(f"{stripe_url}/_chaos/checkout/sessions", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        session = json.load(answer)
    return json.dumps({"url": session["url"], "sessionId": session["id"]}).encode()


def main(mode: str, n: int, stripe_url: str | None = None) -> None:
    answered = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self) -> None:
            nonlocal answered
            length = int(self.headers.get("content-length") or 0)
            sent = self.rfile.read(length)
            checkout = self.path.endswith("create-checkout-session")
            if mode == "hang" or (mode == "hang-webhooks" and not checkout):
                threading.Event().wait()
            if mode == "crash":
                with lock:
                    answered += 1
                    if answered > n:
                        os._exit(1)
            status = 500 if mode == "500" else 200
            body = b'{"error": "boom"}' if status == 500 else b'{"received": true}'
            if status == 200 and stripe_url and checkout:
                body = open_session(stripe_url, json.loads(sent))
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # listen backlog: the default 5 drops concurrent connects

    server = Server(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0,
         sys.argv[3] if len(sys.argv) > 3 else None)
