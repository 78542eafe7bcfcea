"""Statistics over seeds: the mean of paired differences and its standard error.

Explained in "How to read this book" (seeds and spread).
"""

from __future__ import annotations

import torch


def mean_and_se(diffs) -> tuple[float, float]:
    """Mean of paired differences over seeds and its standard error (NaN for one seed).

    Defined in "How to read this book".
    """
    diffs = torch.as_tensor(diffs, dtype=torch.float64)
    if diffs.dim() != 1 or len(diffs) == 0:
        raise ValueError(f"need a 1-D, non-empty set of differences, got shape {tuple(diffs.shape)}")
    se = float(diffs.std(unbiased=True) / len(diffs) ** 0.5) if len(diffs) > 1 else float("nan")
    return float(diffs.mean()), se
