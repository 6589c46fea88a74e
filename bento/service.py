"""The cepage model service: typed prediction API, metadata, feedback, Prometheus metrics.

Run from the checkout with ``bentoml serve bento.service:Classifier`` (BENTOML_HOME pointing at the
store ``cepage package`` filled), or build and containerize it from ``bentofile.yaml``.
"""

import gc
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, cast

import bentoml
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from bento.drift import ReferenceBins
from bento.guard import RequestGuard
from bento.loader import latest_tag, load_bundle
from bento.metrics import ServiceMetrics, create_metrics
from bento.openapi import OpenApiFixup
from bento.prediction_ids import InvalidPredictionIdError, PredictionIds
from bento.predictor import InputProblem, ModelBundle, Predictor, UnscorableError
from bento.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    Metadata,
    ModelRef,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from bento.settings import DEFAULT_MODEL_NAME, LATENCY_BUCKETS, load_settings, workers

logger = logging.getLogger("cepage.service")

# GET routes: BentoML's @bentoml.api methods are POST-only, so GET /metadata is a FastAPI
# class view mounted beside them (it receives the service instance as `self`).
http = FastAPI(title="cepage", docs_url=None, redoc_url=None, openapi_url="/metadata/openapi.json")


@dataclass(frozen=True)
class Served:
    """One model with everything a request needs, swapped as a whole on reload."""

    predictor: Predictor
    reference: ReferenceBins
    bin_counters: list[list[Any]]  # [feature][bin] -> labelled counter, resolved once


def prepare(bundle: ModelBundle, metrics: ServiceMetrics) -> Served:
    """Wrap a bundle and create its series at zero.

    A counter that first appears with a non-zero value loses those increments to rate() and
    increase(); and the drift bins must exist empty for PSI to see them.
    """
    reference = ReferenceBins(bundle.schema)
    predictor = Predictor(bundle)
    version = bundle.info.version
    for label in predictor.classes:
        metrics.predictions.labels(version, label)
    for outcome in ("correct", "incorrect"):
        metrics.feedback.labels(version, outcome)
    for feature in predictor.features:
        metrics.out_of_range.labels(feature)
    metrics.confidence.labels(version)
    counters = []
    for feature, fractions in zip(reference.features, reference.fractions, strict=True):
        row = []
        for index, fraction in enumerate(fractions):
            metrics.reference_ratio.labels(version, feature, str(index)).set(fraction)
            row.append(metrics.feature_bins.labels(version, feature, str(index)))
        counters.append(row)
    return Served(predictor, reference, counters)


def _freeze_heap() -> None:
    """Move everything loaded so far out of the garbage collector's reach.

    With bentoml, scikit-learn and scipy imported a worker holds ~300k objects, and every full
    collection paused it for 150-250 ms: that was the p99 (docs/performance.md).
    """
    gc.collect()
    gc.freeze()


def unscorable(rows: list[int]) -> list[InputProblem]:
    """A 400 per record whose values overflow the model (finite, but far beyond any scale)."""
    return [
        InputProblem(
            ("records", row),
            "unscorable",
            "The model cannot score this record: its values are so far outside the training "
            "range (GET /metadata) that the model's arithmetic overflows",
        )
        for row in rows
    ]


def _problems_error(title: str, problems: list[InputProblem]) -> ValidationError:
    """Our own input checks, raised the way BentoML answers pydantic's: a 400 naming the field."""
    details = [
        InitErrorDetails(type=PydanticCustomError(p.kind, p.message), loc=p.loc, input=None)
        for p in problems
    ]
    return ValidationError.from_exception_data(title, details)


@bentoml.service(
    name="cepage",
    workers=workers(),
    traffic={"timeout": 30},
    metrics={
        "enabled": True,
        "namespace": "bentoml_service",
        "duration": {"buckets": list(LATENCY_BUCKETS)},
    },
)
@bentoml.asgi_app(http, path="/")
class Classifier:
    """Serves the newest model of the BentoML store (in a Bento: the one it was built with)."""

    # Declares the dependency so `bentoml build` packs the model into the Bento.
    model_ref = bentoml.models.BentoModel(
        f"{os.environ.get('CEPAGE_MODEL_NAME', DEFAULT_MODEL_NAME)}:latest"
    )

    def __init__(self) -> None:
        self.settings = load_settings()
        self.metrics = create_metrics()
        self._install(load_bundle(latest_tag(self.settings.model_name)))
        key = self.settings.feedback_key or f"cepage-local:{self.settings.model_name}"
        if self.settings.feedback_key is None:
            logger.warning("CEPAGE_FEEDBACK_KEY is unset: prediction ids can be forged.")
        self.ids = PredictionIds(key.encode(), self.settings.feedback_max_age_seconds)
        self._stop = threading.Event()
        _freeze_heap()
        if self.settings.reload_seconds > 0:
            threading.Thread(target=self._watch_store, name="model-reload", daemon=True).start()

    @bentoml.on_shutdown
    def _stop_watching(self) -> None:
        self._stop.set()

    @property
    def predictor(self) -> Predictor:
        return self.served.predictor

    def _install(self, bundle: ModelBundle) -> None:
        """Swap the served model atomically; requests in flight keep the one they started with."""
        old: Served | None = getattr(self, "served", None)
        self.served = prepare(bundle, self.metrics)
        info = bundle.info
        self.metrics.model_info.labels(info.name, info.version, info.bento_model).set(1)
        if old is not None:
            prev = old.predictor.bundle.info
            self.metrics.model_info.labels(prev.name, prev.version, prev.bento_model).set(0)
        logger.info("Serving %s (MLflow version %s)", info.bento_model, info.version)

    def _watch_store(self) -> None:
        """Pick up a newer model from the store (the local stack's retrain) without a restart.

        A model that fails to load is refused once (logged) and not retried until another one
        is packaged: the current model keeps serving meanwhile.
        """
        refused: str | None = None
        while not self._stop.wait(self.settings.reload_seconds):
            tag = None
            try:
                tag = latest_tag(self.settings.model_name)
                if tag not in (self.predictor.bundle.info.bento_model, refused):
                    self._install(load_bundle(tag))
                    self.metrics.reloads.inc()
                    gc.unfreeze()  # let the old model go, once, then freeze the new heap
                    _freeze_heap()
            except Exception:  # keep serving the current model; say why in the log
                refused = tag
                logger.exception("Model reload failed; still serving the current model")

    # async: the work is ~0.4 ms of CPU, cheaper on the event loop than a hop to a thread.
    @bentoml.api(route="/predict")
    async def predict(self, request: PredictRequest, /) -> PredictResponse:
        """Score records: label, class probabilities, out-of-range features, prediction id."""
        served = self.served
        predictor = served.predictor
        problems = predictor.check(request.records, self.settings.max_records)
        if problems:
            raise _problems_error("PredictRequest", problems)
        matrix = predictor.matrix(request.records)
        try:
            rows = predictor.predict_matrix(matrix)
        except UnscorableError as exc:
            raise _problems_error("PredictRequest", unscorable(exc.rows)) from None
        self._count_bins(served, matrix)
        info = predictor.bundle.info
        predictions = []
        for row in rows:
            predictions.append(
                Prediction(
                    id=self.ids.issue(info.version, row.label),
                    label=row.label,
                    probabilities=row.probabilities,
                    out_of_range=row.out_of_range,
                )
            )
            self.metrics.predictions.labels(info.version, row.label).inc()
            self.metrics.confidence.labels(info.version).observe(row.probabilities[row.label])
            for feature in row.out_of_range:
                self.metrics.out_of_range.labels(feature).inc()
        return PredictResponse(
            model=ModelRef(name=info.name, version=info.version), predictions=predictions
        )

    @staticmethod
    def _count_bins(served: Served, matrix: Any) -> None:
        for counters, counts in zip(
            served.bin_counters, served.reference.counts(matrix), strict=True
        ):
            for index in counts.nonzero()[0]:
                counters[index].inc(int(counts[index]))

    @bentoml.api(route="/feedback")
    async def feedback(self, request: FeedbackRequest, /) -> FeedbackResponse:
        """Record the true label of an earlier prediction (counted in cepage_feedback_total)."""
        try:
            issued = self.ids.verify(request.prediction_id)
        except InvalidPredictionIdError as exc:
            raise _problems_error(
                "FeedbackRequest",
                [InputProblem(("prediction_id",), "unknown_prediction", f"Prediction id {exc}")],
            ) from None
        classes = self.predictor.classes
        if request.label not in classes:
            raise _problems_error(
                "FeedbackRequest",
                [
                    InputProblem(
                        ("label",),
                        "unknown_label",
                        f"Unknown class {request.label!r}; expected one of {classes}",
                    )
                ],
            )
        correct = request.label == issued.label
        outcome = "correct" if correct else "incorrect"
        self.metrics.feedback.labels(issued.model_version, outcome).inc()
        return FeedbackResponse(
            prediction_id=request.prediction_id,
            label=request.label,
            predicted=issued.label,
            correct=correct,
            model_version=issued.model_version,
        )

    @http.get("/metadata", response_model=Metadata)
    async def metadata(self) -> Metadata:
        """The served model, its training metrics and feature schema."""
        bundle = self.predictor.bundle
        info = bundle.info
        return Metadata(
            name=info.name,
            version=info.version,
            bento_model=info.bento_model,
            run_id=info.run_id,
            created_at=info.created_at,
            metrics=info.metrics,
            max_records=self.settings.max_records,
            feature_schema=bundle.schema,
        )


# `@bentoml.service` returns a Service object; its stubs still describe the decorated class.
_guarded = load_settings()
_GUARDED_PATHS = ("/predict", "/feedback")
cast(Any, Classifier).add_asgi_middleware(
    RequestGuard,
    paths=_GUARDED_PATHS,
    max_body_bytes=_guarded.max_body_bytes,
    api_key=_guarded.api_key,
)
cast(Any, Classifier).add_asgi_middleware(
    OpenApiFixup, paths=_GUARDED_PATHS, api_key=_guarded.api_key is not None
)
