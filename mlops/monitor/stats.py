"""The drift statistics: a live window against the reference taken at training.

    psi            population stability index of two count vectors (class predictions)
    jensen_shannon Jensen-Shannon distance of the same (0: same, 1: disjoint; base 2)
    ks_binned      Kolmogorov-Smirnov distance of live values against a reference
                   histogram, both binned on the reference's edges, and the critical value
    embedding_shift  n * |mean of the standardised live embeddings|^2 / dims: about 1 when
                   the live embeddings come from the reference distribution, growing with
                   a shift of the centroid (the linear-kernel maximum mean discrepancy,
                   scaled by its expectation under no drift)

Binning the live values on the reference's edges makes the KS distance a little smaller
than on raw values (ties within a bin), which errs towards no alarm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_FLOOR = 1e-4  # empty bins: PSI and JS take logs of proportions


def proportions(counts: Sequence[float]) -> np.ndarray:
    values = np.asarray(counts, np.float64)
    total = values.sum()
    if total <= 0:
        raise ValueError("no counts")
    return np.maximum(values / total, _FLOOR)


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index; < 0.1 stable, 0.1-0.25 moderate, > 0.25 large."""
    p, q = proportions(reference), proportions(live)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: Sequence[float], live: Sequence[float]) -> float:
    """Jensen-Shannon distance (the square root of the divergence, base 2): 0..1."""
    p, q = proportions(reference), proportions(live)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(math.sqrt(max(divergence, 0.0)))


def ks_binned(
    reference_counts: Sequence[float], edges: Sequence[float], live: Sequence[float],
    alpha: float = 0.01,
) -> tuple[float, float]:  # fmt: skip
    """(KS distance, critical value at alpha) of live values against a histogram."""
    edges_array = np.asarray(edges, np.float64)
    clipped = np.clip(np.asarray(live, np.float64), edges_array[0], edges_array[-1])
    live_counts, _ = np.histogram(clipped, bins=edges_array)
    ref = np.asarray(reference_counts, np.float64)
    n, m = float(len(clipped)), float(ref.sum())
    if n == 0 or m == 0:
        raise ValueError("no values")
    distance = float(np.max(np.abs(np.cumsum(live_counts) / n - np.cumsum(ref) / m)))
    critical = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
    return distance, critical


def embedding_shift(
    reference_mean: Sequence[float], reference_std: Sequence[float], live: np.ndarray
) -> float:
    """n |mean((x - mu) / sigma)|^2 / d over the live vectors x (N x d): about 1 with no
    drift (each standardised mean has variance 1/n), larger as the centroid moves."""
    vectors = np.asarray(live, np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError("expected N x D live embeddings")
    mu = np.asarray(reference_mean, np.float64)
    sigma = np.maximum(np.asarray(reference_std, np.float64), 1e-6)
    if vectors.shape[1] != len(mu):
        raise ValueError(f"live embeddings have {vectors.shape[1]} dimensions, the "
                         f"reference {len(mu)}")  # fmt: skip
    standardised_mean = ((vectors - mu) / sigma).mean(0)
    return float(len(vectors) * np.sum(standardised_mean**2) / len(mu))
