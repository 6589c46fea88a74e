"""A minimal FastAPI server for the same model: the hand-rolled alternative to the cepage service.

Same request shape as cepage (``{"records": [{feature: value, ...}]}`` to ``POST /predict``),
answers label + probabilities per record; the model comes from the BentoML store, loaded by the
service's own loader, so the two servers run the same estimator on the same arrays. No prediction
ids, no custom metrics, no body guard: that is the point of the comparison.

Run: ``BENTOML_HOME=... uvicorn --factory bench.fastapi_app:create_app --host 127.0.0.1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from bento.predictor import Predictor


class Records(BaseModel):
    """Rows to score."""

    records: list[dict[str, float]] = Field(min_length=1, max_length=1000)


class Answer(BaseModel):
    """The answer for one record."""

    label: str
    probabilities: dict[str, float]


class Answers(BaseModel):
    """The answers, in the order of the records."""

    predictions: list[Answer]


def _load_predictor() -> Predictor:
    from bento.loader import latest_tag, load_bundle
    from bento.settings import model_name

    return Predictor(load_bundle(latest_tag(model_name())))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.predictor = _load_predictor()
    yield


def create_app() -> FastAPI:
    """The app; the model is loaded at startup (uvicorn's lifespan), not at import."""
    app = FastAPI(title="bench-fastapi", lifespan=_lifespan)

    @app.post("/predict")
    def predict(body: Records, request: Request) -> Answers:
        predictor: Predictor = request.app.state.predictor
        problems = predictor.check(body.records, limit=1000)
        if problems:
            raise HTTPException(422, [p.message for p in problems])
        rows = predictor.predict(body.records)
        return Answers(
            predictions=[Answer(label=r.label, probabilities=r.probabilities) for r in rows]
        )

    return app
