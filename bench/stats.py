"""Percentiles of latency samples."""

from __future__ import annotations

from collections.abc import Sequence
import math


def percentile(samples: Sequence[float], pct: float) -> float:
    """Return the ``pct`` percentile (nearest rank) of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Return p50, p99, mean and max in milliseconds, and the sample count."""
    return {
        "p50_ms": percentile(samples_s, 50) * 1000,
        "p99_ms": percentile(samples_s, 99) * 1000,
        "mean_ms": sum(samples_s) / len(samples_s) * 1000,
        "max_ms": max(samples_s) * 1000,
        "n": len(samples_s),
    }
