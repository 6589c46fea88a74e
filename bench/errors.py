"""The benchmarks' one error type."""

from __future__ import annotations


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why in one sentence."""
