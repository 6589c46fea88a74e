"""A load generator for the rehearsal: predictions sent through the entry point the whole time.

A few clients, each on its own keep-alive HTTPS connection (as a browser or an API client keeps
one), send ``POST /predict`` at a steady pace to the load balancer's 443 on 127.0.0.1, and every
answer is recorded: its time, status or error, and latency. Any answer but a 200 with a
prediction is a failure; a client whose connection breaks counts that request as failed and opens
a new one, as a real client would see it. The pace stays under the proxy's rate limit for one
client address (every request comes from this machine's one address: 600 a minute by default),
so a 429 is a finding, not the generator's doing.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.rehearsal.web import PinnedConnection


@dataclass(frozen=True)
class Outcome:
    at: float
    """Seconds since the load started."""
    status: int
    """The HTTP status, 0 when no answer came (the error says why)."""
    error: str
    latency: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    duration: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        latencies = sorted(o.latency for o in self.outcomes if o.ok) or [0.0]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return (
            f"{len(self.outcomes)} requests in {self.duration:.0f} s, "
            f"{len(self.failures)} failed, p99 {p99 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms"
        )

    def failures_text(self, limit: int = 20) -> str:
        return "\n".join(
            f"  t={o.at:7.2f}s status={o.status} {o.error}" for o in self.failures[:limit]
        )


class Load:
    """``clients`` threads sending ``record`` every ``interval`` seconds each, until stopped."""

    def __init__(
        self,
        site: str,
        port: int,
        ca_pem: str,
        record: dict[str, Any],
        clients: int = 4,
        interval: float = 0.5,
    ) -> None:
        self._site, self._port, self._interval = site, port, interval
        self._context = ssl.create_default_context(cadata=ca_pem)
        self._body = json.dumps({"records": [record]}).encode()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._report = Report()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]
        self._started = 0.0

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Report:
        if not self._stop.is_set():
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=60)
            self._report.duration = time.monotonic() - self._started
        return self._report

    @property
    def started(self) -> float:
        """When the load started (time.monotonic())."""
        return self._started

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self._report.outcomes)

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._report.outcomes.append(outcome)

    def _client(self, index: int) -> None:
        # Spread the clients over the interval, as independent users would be.
        self._stop.wait(self._interval * index / max(1, len(self._threads)))
        connection: PinnedConnection | None = None
        while not self._stop.is_set():
            began = time.monotonic()
            current = connection or PinnedConnection(
                self._site, ("127.0.0.1", self._port), self._context
            )
            connection = current
            status, error = 0, ""
            try:
                current.request(
                    "POST", "/predict", body=self._body,
                    headers={"Host": self._site, "Content-Type": "application/json"},
                )  # fmt: skip
                response = current.getresponse()
                status, payload = response.status, response.read()
                if status == 200 and not json.loads(payload).get("predictions"):
                    error = "a 200 without predictions"
                elif status != 200:
                    error = payload[:200].decode(errors="replace")
                if response.will_close:
                    current.close()
                    connection = None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                current.close()
                connection = None
            took = time.monotonic() - began
            self._record(Outcome(began - self._started, status, error, took))
            self._stop.wait(max(0.0, self._interval - took))
        if connection is not None:
            connection.close()
