"""The load scenario of ``make loadtest`` and ``make soak`` (locust).

Each simulated user reads ``GET /metadata`` once, then, with a short think time, sends a mix close
to what the UI and batch clients send: mostly single-record predictions, some batches, and
feedback on earlier predictions. Records are drawn uniformly within each feature's training range,
so the drift panels see plausible traffic. ``CEPAGE_API_KEY`` is sent when set.
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import HttpUser, between, task

BATCH_SIZES = (10, 50)
FEEDBACK_BACKLOG = 100


class ApiUser(HttpUser):
    """A client of the model API (single predictions 7 : batches 2 : feedback 1)."""

    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        key = os.environ.get("CEPAGE_API_KEY")
        if key:
            self.client.headers["Authorization"] = f"Bearer {key}"
        metadata: dict[str, Any] = self.client.get("/metadata", name="metadata").json()
        schema = metadata["feature_schema"]
        self.ranges = [(f["name"], f["min"], f["max"]) for f in schema["features"]]
        self.classes: list[str] = list(schema["classes"])
        self.issued: list[str] = []

    def record(self) -> dict[str, float]:
        return {name: round(random.uniform(low, high), 3) for name, low, high in self.ranges}

    def _predict(self, count: int, name: str) -> None:
        body = {"records": [self.record() for _ in range(count)]}
        with self.client.post("/predict", json=body, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")
                return
            predictions = answer.json()["predictions"]
            if len(predictions) != count:
                answer.failure(f"{len(predictions)} predictions for {count} records")
                return
            self.issued = (self.issued + [predictions[0]["id"]])[-FEEDBACK_BACKLOG:]

    @task(7)
    def predict_one(self) -> None:
        self._predict(1, "predict (1 record)")

    @task(2)
    def predict_batch(self) -> None:
        self._predict(random.randint(*BATCH_SIZES), "predict (batch of 10-50)")

    @task(1)
    def feedback(self) -> None:
        if not self.issued:
            return
        body = {"prediction_id": self.issued.pop(), "label": random.choice(self.classes)}
        self.client.post("/feedback", json=body, name="feedback")
