"""What a model file may hold, one rule for every reader: the gate, `cepage promote --force`,
packaging and the service (train/artifacts.py and bento/loader.py load skops files through
:func:`trusting_skops`).

Besides the types a load passes (``contracts.names.TRUSTED_MODEL_TYPES``), skops trusts every
estimator scikit-learn has. It lists them with ``sklearn.utils.all_estimators()`` when
``skops.io`` is first imported, and that walk imports every scikit-learn module and its test
helpers (pytest too, where it is installed): ~200 ms of a worker's start and 11-13 MiB of its
memory. A model cepage serves is one of its own pipelines, so the list of their estimators
(``TRUSTED_ESTIMATORS``) is both cheaper and stricter.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

from contracts.names import TRUSTED_ESTIMATORS

_LOCK = threading.Lock()  # the first import swaps a scikit-learn function for a moment


def trusting_skops() -> ModuleType:
    """``skops.io``, whose default trusted estimators are exactly ``TRUSTED_ESTIMATORS``.

    Imported here first, skops never walks scikit-learn. Imported before (MLflow logs the model
    with skops in the process of `cepage retrain`), its list is narrowed in place: skops reads
    that list object each time it audits a file, so the rule is the same either way.
    """
    with _LOCK:
        if "skops.io._trusted_types" not in sys.modules:
            import sklearn.utils

            real = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = _trusted_estimators
            try:
                importlib.import_module("skops.io")
            finally:
                sklearn.utils.all_estimators = real
        defaults = importlib.import_module("skops.io._trusted_types")
        defaults.SKLEARN_ESTIMATOR_TYPE_NAMES[:] = list(TRUSTED_ESTIMATORS)
    return importlib.import_module("skops.io")


def _trusted_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    """What ``sklearn.utils.all_estimators`` returns, for ``TRUSTED_ESTIMATORS`` only."""
    found = []
    for dotted in TRUSTED_ESTIMATORS:
        module, _, name = dotted.rpartition(".")
        found.append((name, getattr(importlib.import_module(module), name)))
    return found
