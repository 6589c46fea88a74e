"""Background clients for the reliability tests: predictions (and some feedback) until stopped.

Each outcome is recorded with its start time, latency, status and the model version that answered,
so a test can count failures and see when answers switched to a new model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import requests

FEEDBACK_EVERY = 5


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (monotonic), how long it took, what came back."""

    path: str
    started: float
    elapsed: float
    status: int | None  # None: no HTTP answer (connection refused or reset, timeout)
    version: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def ended(self) -> float:
        return self.started + self.elapsed


class Load:
    """``clients`` threads, each with its own kept-alive session, sending until the block ends."""

    def __init__(
        self,
        url: str,
        record: Mapping[str, float],
        *,
        clients: int = 4,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        pause: float = 0.0,
    ) -> None:
        self.url = url
        self.body = {"records": [dict(record)]}
        self.clients = clients
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.pause = pause
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in list(self.outcomes) if not o.ok and o.started >= since]

    def successes(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in list(self.outcomes) if o.ok and o.started >= since]

    def _client(self) -> None:
        session = requests.Session()
        count = 0
        while not self._stop.is_set():
            count += 1
            ids = self._send(session, "/predict", self.body)
            if ids and count % FEEDBACK_EVERY == 0:
                self._send(session, "/feedback", {"prediction_id": ids[0], "label": ids[1]})
            if self.pause:
                time.sleep(self.pause)
        session.close()

    def _send(self, session: requests.Session, path: str, body: object) -> tuple[str, str] | None:
        started = time.monotonic()
        try:
            response = session.post(
                f"{self.url}{path}", json=body, headers=self.headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            self.outcomes.append(
                Outcome(path, started, time.monotonic() - started, None, None, type(exc).__name__)
            )
            session.close()  # a broken kept-alive connection: start afresh
            return None
        elapsed = time.monotonic() - started
        version, answer = None, None
        if response.status_code == 200 and path == "/predict":
            payload = response.json()
            version = str(payload["model"]["version"])
            first = payload["predictions"][0]
            answer = (str(first["id"]), str(first["label"]))
        elif response.status_code == 200:
            version = str(response.json()["model_version"])
        error = "" if response.status_code == 200 else response.text[:200]
        self.outcomes.append(Outcome(path, started, elapsed, response.status_code, version, error))
        return answer


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Wait until ``predicate()`` is true; the seconds it took. Fails after ``timeout`` s."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not after {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - began
