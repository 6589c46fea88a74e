"""A stand-in HTTP server on 127.0.0.1 that records every request it gets and answers from a table.

It plays an address a visitor would like the UI to reach (their own server, an internal service):
the tests check that the UI sends it nothing, or nothing but what its deployment configured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# path -> (status, content type, body, extra headers)
Answer = tuple[int, str, str, dict[str, str]]

SECRET_PAGE = "internal-admin-page: db password hunter2, run 0123456789abcdef"
"""A body no message shown to a visitor may repeat."""


@dataclass
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class StandIn:
    url: str
    answers: dict[str, Answer]
    seen: list[Seen] = field(default_factory=list)


@contextmanager
def stand_in(answers: dict[str, Answer] | None = None) -> Iterator[StandIn]:
    """A running stand-in; a path not in ``answers`` gets a 404 of :data:`SECRET_PAGE`."""
    state = StandIn(url="", answers=dict(answers or {}))

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, media, body, extra = state.answers.get(
                self.path, (404, "text/plain", SECRET_PAGE, {})
            )
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
