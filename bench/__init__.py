"""Benchmarks: they print figures side by side in one run; they are not pass/fail tests.

- ``python -m bench.serving``: the in-process predict (the floor) vs the cepage service vs
  ``mlflow models serve`` vs a minimal FastAPI server, under wrk load (``make bench``); and the
  cepage service with its prediction log on beside it off (``cepage-log`` vs ``cepage``).
- ``python -m bench.models``: the trainable pipelines (linear, forest) side by side.

Figures and how to read them: docs/performance.md.
"""
