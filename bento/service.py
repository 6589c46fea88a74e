"""The cepage model service: typed prediction API, metadata, feedback, Prometheus metrics.

Run from the checkout with ``bentoml serve bento.service:Classifier`` (BENTOML_HOME pointing at the
store ``cepage package`` filled), or build and containerize it from ``bentofile.yaml``.

This module is the wiring: routes, the served model and its metrics. What each step does lives
beside it (``predictor``, ``served``, ``problems``, ``reload``, ``guard``, ``openapi``).
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from bento import listeners
from bento.batching import Batcher, BatchProfile, QueueFullError, decide
from bento.explain import NotExplainableError
from bento.guard import ConfiguredRequestGuard
from bento.loader import ModelLoadError, latest_tag, load_bundle
from bento.metrics import create_metrics
from bento.openapi import ConfiguredOpenApiFixup, publish
from bento.prediction_ids import AlreadyUsedError, InvalidPredictionIdError, PredictionIds, UsedIds
from bento.predictor import Inputs, ModelBundle, Predictor, RowPrediction, UnscorableError
from bento.problems import (
    duplicate_feedback,
    not_explainable,
    problems_error,
    unknown_label,
    unknown_prediction,
    unscorable,
)
from bento.production_log import (
    FeedbackRow,
    PredictionRow,
    ProductionLog,
    caller_identity,
    keep_arrow_unloaded,
)
from bento.reload import StoreWatcher
from bento.schemas import (
    Explanation,
    FeedbackRequest,
    FeedbackResponse,
    Metadata,
    ModelRef,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from bento.served import Served, freeze_heap, prepare, refreeze_heap
from bento.settings import (
    GUARDED_PATHS,
    KEYED_READ_PATHS,
    LATENCY_BUCKETS,
    load_settings,
    model_name,
    service_config,
    workers,
)
from bento.shadow import Shadow, ShadowJob, create_shadow_metrics
from contracts.model_card import render_markdown
from contracts.names import challenger_store_name

logger = logging.getLogger("cepage.service")

MARKDOWN = "text/markdown; charset=utf-8"
CARD_FORMATS = ("markdown", "json")

# `bentoml serve` imports this module in its arbiter before it creates the workers' socket: the one
# point where cepage can give each worker a listening socket of its own (bento/listeners.py).
listeners.install()

# GET routes: BentoML's @bentoml.api methods are POST-only, so GET /metadata is a FastAPI
# class view mounted beside them (it receives the service instance as `self`).
http = FastAPI(title="cepage", docs_url=None, redoc_url=None, openapi_url="/metadata/openapi.json")


@bentoml.service(
    name="cepage",
    workers=workers(),
    traffic={"timeout": 30},
    metrics={
        "enabled": True,
        "namespace": "bentoml_service",
        "duration": {"buckets": list(LATENCY_BUCKETS)},
    },
    **service_config(),
)
@bentoml.asgi_app(http, path="/")
class Classifier:
    """Serves the newest model of the BentoML store (in a Bento: the one it was built with)."""

    # Declares the dependency so `bentoml build` packs the model into the Bento.
    model_ref = bentoml.models.BentoModel(f"{model_name()}:latest")

    @bentoml.on_deployment
    def check_settings() -> None:
        """Refuse to start, before any worker, when a setting is wrong (an unreadable
        CEPAGE_API_KEY_FILE must not become a service answering 500 or running open, a
        prediction log directory that cannot be made must not lose every row)."""
        location = load_settings().production_log.location
        if location is not None and not location.is_s3:
            try:
                os.makedirs(location.path, exist_ok=True)
            except OSError as exc:
                raise ValueError(
                    f"CEPAGE_PREDICTION_LOG={location} cannot be created: {exc.strerror}"
                ) from None

    def __init__(self) -> None:
        self.settings = load_settings()
        self.metrics = create_metrics()
        log = self.settings.production_log
        self.production_log = (
            ProductionLog(log, self.metrics.log_rows).start() if log.location else None
        )
        if log.location:
            logger.info(
                "Keeping predictions and feedback in %s (sample %s)", log.location, log.sample
            )
        else:
            keep_arrow_unloaded()  # before the model imports scikit-learn, and so pandas
        self.caller = caller_identity(self.settings.api_key)
        self._scoring: ThreadPoolExecutor | None = None  # the batched models' thread
        self._install(load_bundle(latest_tag(self.settings.model_name)))
        key = self.settings.feedback_key or f"cepage-local:{self.settings.model_name}"
        if self.settings.feedback_key is None:
            logger.warning("CEPAGE_FEEDBACK_KEY is unset: prediction ids can be forged.")
        self.ids = PredictionIds(key.encode(), self.settings.feedback_max_age_seconds)
        self.used_ids = UsedIds(self.settings.feedback_max_age_seconds)
        self.watcher = StoreWatcher(
            self.settings.model_name,
            self.settings.reload_seconds,
            current=lambda: self.predictor.bundle.info.bento_model,
            install=self._reload,
        )
        self.shadow: Shadow | None = None
        self.shadow_watcher: StoreWatcher | None = None
        if self.settings.shadow:
            self._start_shadow()
        freeze_heap()
        if self.settings.reload_seconds > 0:
            self.watcher.start()
            if self.shadow_watcher is not None:
                self.shadow_watcher.start()

    def _start_shadow(self) -> None:
        """The packaged @challenger answering beside the champion (bento/shadow.py). With none in
        the store, or one that cannot be loaded, the champion serves alone (a warning says why)
        and, with reloads on, the first challenger packaged later is picked up."""
        name = challenger_store_name(self.settings.model_name)
        self._shadow_metrics = create_shadow_metrics()
        self._challenger_tag = ""
        try:
            self._install_challenger(load_bundle(latest_tag(name)))
        except ModelLoadError as exc:
            logger.warning("CEPAGE_SHADOW is on, but no challenger is shadowed: %s", exc)
        self.shadow_watcher = StoreWatcher(
            name,
            self.settings.reload_seconds,
            current=lambda: self._challenger_tag,
            install=self._install_challenger,
            missing=self._drop_challenger,
        )

    def _install_challenger(self, bundle: ModelBundle) -> None:
        self._challenger_tag = bundle.info.bento_model  # seen: not loaded again
        if bundle.info.version == self.predictor.bundle.info.version:
            logger.info("The packaged challenger is the champion (version %s): not shadowed.",
                        bundle.info.version)  # fmt: skip
            return
        if self.shadow is None:
            self.shadow = Shadow(
                Predictor(bundle),
                self._shadow_metrics,
                queue_requests=self.settings.shadow_queue,
                log=self.production_log,
            ).start()
        else:
            self.shadow.install(Predictor(bundle))

    def _drop_challenger(self) -> None:
        """The packaged challenger is gone (promoted, or none any more): stop shadowing it."""
        if self.shadow is not None:
            logger.info("No challenger packaged any more: the shadow stops.")
            shadow, self.shadow = self.shadow, None
            shadow.close()
        self._challenger_tag = ""

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        """One hook, in order (BentoML runs several in name order, not in the order written):
        the watchers, then the shadow (what is still queued for the challenger is dropped;
        shutdown never waits for it), then the production log, which the shadow writes to and
        which writes what it holds (SIGTERM and SIGINT reach here through uvicorn's graceful
        shutdown, after the requests in flight are answered)."""
        self.watcher.stop()
        if self.shadow_watcher is not None:
            self.shadow_watcher.stop()
        if self.shadow is not None:
            self.shadow.close()
        if self.production_log is not None:
            self.production_log.close()
        if self._scoring is not None:
            self._scoring.shutdown(wait=False)

    @property
    def predictor(self) -> Predictor:
        return self.served.predictor

    def _install(self, bundle: ModelBundle) -> None:
        """Swap the served model atomically; requests in flight keep the one they started with."""
        old: Served | None = getattr(self, "served", None)
        self.served = prepare(bundle, self.metrics, self._batcher)
        publish(bundle.schema, self.settings.max_records)
        info = bundle.info
        self.metrics.model_info.labels(info.name, info.version, info.bento_model).set(1)
        if old is not None:
            prev = old.predictor.bundle.info
            self.metrics.model_info.labels(prev.name, prev.version, prev.bento_model).set(0)
        logger.info("Serving %s (MLflow version %s)", info.bento_model, info.version)
        if self.production_log is not None:
            unknown = sorted(self.settings.production_log.exclude - set(self.predictor.features))
            if unknown:
                logger.warning(
                    "CEPAGE_PREDICTION_LOG_EXCLUDE names %s, which %s does not have: check "
                    "the spelling (an excluded feature must be named exactly).",
                    unknown,
                    info.bento_model,
                )

    def _batcher(self, predictor: Predictor) -> Batcher | None:
        """The model's batcher when CEPAGE_BATCHING and its packaging measurement say so."""
        profile = BatchProfile.from_json(predictor.bundle.batch_profile)
        batched = decide(self.settings.batching, profile)
        measured = (
            "not measured (packaged before cepage measured it)"
            if profile is None
            else f"1 row {profile.one_ms:.2f} ms, {profile.rows} rows {profile.batch_ms:.2f} ms"
        )
        logger.info(
            "Batching %s (CEPAGE_BATCHING=%s; %s)",
            "on" if batched else "off",
            self.settings.batching,
            measured,
        )
        if not batched:
            return None
        if self._scoring is None:
            self._scoring = ThreadPoolExecutor(1, thread_name_prefix="cepage-scoring")
        return Batcher(
            predictor, self._scoring, self.settings.max_records, self.metrics.batch_rows.observe
        )

    def _reload(self, bundle: ModelBundle) -> None:
        self._install(bundle)
        self.metrics.reloads.inc()
        refreeze_heap()

    # async: the work is ~0.4 ms of CPU, cheaper on the event loop than a hop to a thread.
    @bentoml.api(route="/predict")
    async def predict(self, request: PredictRequest, /) -> PredictResponse:
        """Score records: label, class probabilities, features out of range or unseen, id."""
        served = self.served
        predictor = served.predictor
        problems = predictor.check(request.records, self.settings.max_records)
        if problems:
            raise problems_error("PredictRequest", problems)
        inputs = predictor.inputs(request.records)
        try:
            rows = await served.score(inputs)
        except UnscorableError as exc:
            raise problems_error("PredictRequest", unscorable(exc.rows)) from None
        except QueueFullError as exc:
            # BentoML passes a Response through as is; its own 503 would say "unexpected error"
            # and log a traceback per refused request, right when the worker has no time to spare.
            return cast(PredictResponse, _busy(str(exc)))
        explanations = self._explain(served, inputs, rows) if request.explain else None
        served.count_bins(inputs)
        info = predictor.bundle.info
        predictions = []
        for index, row in enumerate(rows):
            predictions.append(
                Prediction(
                    id=self.ids.issue(info.version, row.label),
                    label=row.label,
                    probabilities=row.probabilities,
                    out_of_range=row.out_of_range,
                    explanation=None if explanations is None else explanations[index],
                )
            )
            self.metrics.predictions.labels(info.version, row.label).inc()
            self.metrics.confidence.labels(info.version).observe(row.probabilities[row.label])
            for feature in row.out_of_range:
                self.metrics.out_of_range.labels(feature).inc()
        if self.production_log is not None:
            now = time.time()
            features, kinds = predictor.features, predictor.kinds
            self.production_log.add_predictions(
                [
                    PredictionRow(
                        features,
                        kinds,
                        answer.id,
                        now,
                        info.name,
                        info.version,
                        answer.label,
                        answer.probabilities,
                        answer.out_of_range,
                        record,
                    )
                    for answer, record in zip(predictions, request.records, strict=True)
                ]
            )
        shadow = self.shadow  # once: a reload may drop it meanwhile
        if shadow is not None:
            shadow.submit(
                ShadowJob(
                    request.records,
                    info.version,
                    [answer.label for answer in predictions],
                    [answer.id for answer in predictions],
                    time.time(),
                )
            )
        return PredictResponse(
            model=ModelRef(name=info.name, version=info.version), predictions=predictions
        )

    @staticmethod
    def _explain(served: Served, inputs: Inputs, rows: list[RowPrediction]) -> list[Explanation]:
        """Each row's explanation of its predicted class (before anything is counted, so a
        refused request leaves no trace in the metrics)."""
        classes = served.predictor.classes
        try:
            found = served.explainer.explain(
                inputs.model_input, [classes.index(row.label) for row in rows]
            )
        except NotExplainableError as exc:
            raise problems_error("PredictRequest", not_explainable(str(exc))) from None
        # Scored rows have finite probabilities, but a term of a far-out value can still
        # overflow on its own: JSON has no infinity, so such a row is refused by name.
        overflowing = [i for i, e in enumerate(found) if not e.is_finite()]
        if overflowing:
            raise problems_error("PredictRequest", unscorable(overflowing))
        return [
            Explanation(
                score_kind=e.score_kind,
                score=e.score,
                base=e.base,
                contributions=e.contributions,
            )
            for e in found
        ]

    @bentoml.api(route="/feedback")
    async def feedback(self, request: FeedbackRequest, /) -> FeedbackResponse:
        """Record the true label of an earlier prediction (counted in cepage_feedback_total).

        Once per prediction id and worker: a second feedback for the same id is refused.
        """
        try:
            issued = self.ids.verify(request.prediction_id)
        except InvalidPredictionIdError as exc:
            raise problems_error("FeedbackRequest", unknown_prediction(str(exc))) from None
        classes = self.predictor.classes
        if request.label not in classes:
            raise problems_error("FeedbackRequest", unknown_label(request.label, classes))
        # Last, so a refused feedback (a typo in the label) does not use the id up.
        try:
            self.used_ids.claim(request.prediction_id, issued)
        except AlreadyUsedError as exc:
            raise problems_error("FeedbackRequest", duplicate_feedback(str(exc))) from None
        correct = request.label == issued.label
        shadow = self.shadow
        if shadow is not None:
            shadow.feedback(request.prediction_id, request.label)
        outcome = "correct" if correct else "incorrect"
        self.metrics.feedback.labels(issued.model_version, outcome).inc()
        if self.production_log is not None:
            self.production_log.add_feedback(
                FeedbackRow(
                    request.prediction_id,
                    time.time(),
                    request.label,
                    issued.label,
                    issued.model_version,
                    self.caller,
                )
            )
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

    @http.get(
        "/model-card",
        response_class=Response,
        responses={
            200: {
                "description": "The served version's model card: Markdown, or its JSON document",
                "content": {
                    MARKDOWN: {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            400: {
                "description": "format is not markdown or json",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            404: {
                "description": "The served model was packaged before model cards existed",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    )
    async def model_card(
        self,
        request: Request,
        format: str | None = Query(
            default=None,
            json_schema_extra={"enum": list(CARD_FORMATS)},
            description="markdown or json; without it, the Accept header decides (Markdown "
            "unless it asks for application/json only)",
        ),
    ) -> Response:
        """What the served version is: data, features, metrics, the gate's decision, intended
        use (made by `cepage package` from MLflow's records; docs/api.md)."""
        if format is not None and format not in CARD_FORMATS:
            # Checked here, not by FastAPI (its 422 has another shape): a 400 naming the field,
            # as every other refused input of the service.
            return JSONResponse(
                {
                    "error": "1 validation error for model-card",
                    "detail": [
                        {
                            "type": "enum",
                            "loc": ["query", "format"],
                            "msg": f"Input should be one of {list(CARD_FORMATS)}",
                        }
                    ],
                },
                status_code=400,
            )
        bundle = self.predictor.bundle
        if bundle.card is None:
            return JSONResponse(
                {
                    "error": f"Model {bundle.info.bento_model} has no model card: it was "
                    "packaged before cards existed; run `cepage package` again."
                },
                status_code=404,
            )
        accept = request.headers.get("accept", "")
        if format == "json" or (
            format is None and "application/json" in accept and "text/markdown" not in accept
        ):
            return JSONResponse(bundle.card)
        return Response(render_markdown(bundle.card), media_type=MARKDOWN)


BUSY_RETRY_AFTER_S = 1


def _busy(reason: str) -> JSONResponse:
    """503 with Retry-After: a batched model's queue is full (bento/batching.py QUEUE_BATCHES),
    so the request is refused at once rather than queued until the request timeout."""
    return JSONResponse(
        {"error": f"The model is busy ({reason}); retry in {BUSY_RETRY_AFTER_S} s."},
        status_code=503,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


# `@bentoml.service` returns a Service object; its stubs still describe the decorated class.
# Each middleware reads its settings when a worker builds the app, not at import.
cast(Any, Classifier).add_asgi_middleware(
    ConfiguredRequestGuard, paths=GUARDED_PATHS, read_paths=KEYED_READ_PATHS
)
cast(Any, Classifier).add_asgi_middleware(ConfiguredOpenApiFixup, paths=GUARDED_PATHS)
