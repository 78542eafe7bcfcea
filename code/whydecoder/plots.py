"""Figures shared by the chapters (matplotlib). Explained in the chapter that uses each."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

#: Type sizes for figures that the page shrinks to its text column (a 10-inch figure shows
#: at about 7 inches): large enough that ticks and legends stay readable there.
BOOK_STYLE = {"font.size": 11, "axes.labelsize": 11, "axes.titlesize": 11, "xtick.labelsize": 10,
              "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 12}


def book_style() -> None:
    """Set matplotlib's type sizes to :data:`BOOK_STYLE` for the figures that follow.
    Defined in "How to read this book"."""
    plt.rcParams.update(BOOK_STYLE)


ARCH_TITLES = {
    "encoder": "Encoder-only\n(bidirectional)",
    "decoder": "Decoder-only\n(causal)",
    "prefix-lm": "Prefix-LM\n(non-causal decoder)",
    "encoder-decoder": "Encoder-decoder\n(source | target)",
}


def plot_pattern(ax, matrix, title: str = "", split: int | None = None, cmap: str = "Blues", log: bool = False) -> None:
    """Draw an ``(n, n)`` mask or dependency matrix: rows are outputs (queries), columns
    inputs (keys); ``split`` draws the prefix/source boundary. With ``log=True`` each row is
    shown as ``log10(value / row max)`` over four decades, and exact zeros are left white.

    Defined in the chapter "Four architectures, one block".
    """
    try:
        m = matrix.detach().float().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, float)
    except (TypeError, ValueError):
        raise ValueError(f"matrix must be an (n, n) array of numbers, got {type(matrix).__name__}") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square (n, n) array, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("matrix holds NaN or infinite values; a mask or dependency matrix is finite")
    n = m.shape[0]
    if split is not None and not (isinstance(split, (int, np.integer)) and 0 <= split <= n):
        raise ValueError(f"split must be an int in [0, {n}] (the prefix or source length), got {split!r}")
    colours = plt.get_cmap(cmap).copy()
    colours.set_bad("white")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.log10(m / m.max(axis=1, keepdims=True))
        m = np.ma.masked_invalid(np.where(np.isneginf(m), np.nan, np.clip(m, -4, 0)))
        ax.imshow(m, cmap=colours, vmin=-4, vmax=0, interpolation="nearest")
    else:
        ax.imshow(m, cmap=colours, vmin=0, vmax=max(float(m.max()), 1e-12), interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([str(i) for i in range(n)], fontsize=8)
    ax.set_yticklabels([str(i) for i in range(n)], fontsize=8)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="lightgrey", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    if split is not None:
        ax.axvline(split - 0.5, color="crimson", linewidth=1.5)
        ax.axhline(split - 0.5, color="crimson", linewidth=1.5)
    ax.set_xlabel("input position", fontsize=9)
    ax.set_ylabel("output position", fontsize=9)
    ax.set_title(title, fontsize=10)


def pattern_grid(patterns: dict, split: int | None = None, cmap: str = "Blues", log: bool = False):
    """One panel per architecture, in the order given, two per row. Returns the figure.

    Defined in the chapter "Four architectures, one block".
    """
    if not isinstance(patterns, dict) or not patterns:
        raise ValueError(f"patterns must be a non-empty dict {{architecture: matrix}}, got {type(patterns).__name__} "
                         f"{'(empty)' if isinstance(patterns, dict) else ''}".rstrip())
    rows = (len(patterns) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(7.5, 3.9 * rows), constrained_layout=True)
    axes = np.atleast_1d(axes).ravel()
    for ax, (arch, matrix) in zip(axes, patterns.items()):
        arch_split = split if arch in ("prefix-lm", "encoder-decoder") else None
        plot_pattern(ax, matrix, ARCH_TITLES.get(arch, arch), arch_split, cmap, log)
    for ax in axes[len(patterns):]:
        ax.axis("off")
    return fig
