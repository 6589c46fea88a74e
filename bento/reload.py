"""Hot reload: pick up a newer model from the BentoML store without a restart.

The local stack's ``cepage retrain`` packages a new model into the store the running service
reads; an image carries one model and leaves this off (``CEPAGE_MODEL_RELOAD_SECONDS=0``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bento.loader import ModelLoadError, latest_tag, load_bundle
from bento.predictor import ModelBundle

logger = logging.getLogger("cepage.service")


class StoreWatcher:
    """Every ``interval`` s, loads the newest model of ``model_name`` if it is not ``current()``
    and hands it to ``install``.

    A model that fails to load is refused once (logged) and not retried until another one is
    packaged: the current model keeps serving meanwhile.
    """

    def __init__(
        self,
        model_name: str,
        interval: float,
        current: Callable[[], str],
        install: Callable[[ModelBundle], None],
        missing: Callable[[], None] | None = None,
    ) -> None:
        """``missing``: called when the store has no such model (instead of logging a failure
        every look): the shadow's challenger comes and goes, the champion does not."""
        self._model_name = model_name
        self._interval = interval
        self._current = current
        self._install = install
        self._missing = missing
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="model-reload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def check_once(self, refused: str | None = None) -> str | None:
        """One look at the store; returns the tag refused this time (else ``refused``)."""
        tag = None
        try:
            try:
                tag = latest_tag(self._model_name)
            except ModelLoadError:
                if self._missing is None:
                    raise
                self._missing()
                return refused
            if tag not in (self._current(), refused):
                self._install(load_bundle(tag))
        except Exception:  # keep serving the current model; say why in the log
            logger.exception("Model reload failed; still serving the current model")
            return tag
        return refused

    def _run(self) -> None:
        refused: str | None = None
        while not self._stop.wait(self._interval):
            refused = self.check_once(refused)
