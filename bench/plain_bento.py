"""A plain BentoML service for the same model: the framework alone, as BentoML's examples write one.

The benchmark's baseline for what cepage's own features cost on top of BentoML (issue 19): a
`@bentoml.service` class that loads the model in ``__init__`` and one sync ``@bentoml.api`` taking
the records (BentoML runs it in its thread pool, as in its examples). BentoML's defaults
everywhere: one shared listening socket, its middlewares, no custom metrics, no prediction ids,
no body guard. Same request and answer shape as cepage (``{"records": [...]}`` to ``/predict``)
and the same loader and Predictor, so both run the same estimator on the same arrays.

Run: ``BENTOML_HOME=... bentoml serve bench.plain_bento:Plain --host 127.0.0.1``.
"""

from __future__ import annotations

from typing import Any

import bentoml

from bento.predictor import Predictor


@bentoml.service(name="plain", workers=1)
class Plain:
    def __init__(self) -> None:
        from bento.loader import latest_tag, load_bundle
        from bento.settings import model_name

        self.predictor = Predictor(load_bundle(latest_tag(model_name())))

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> dict[str, Any]:
        problems = self.predictor.check(records, limit=1000)
        if problems:
            raise bentoml.exceptions.InvalidArgument("; ".join(p.message for p in problems))
        rows = self.predictor.predict(records)
        return {"predictions": [{"label": r.label, "probabilities": r.probabilities} for r in rows]}
