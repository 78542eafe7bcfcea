"""Figures shared by the chapters (matplotlib). Explained in the chapter that uses each."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

ARCH_TITLES = {
    "encoder": "Encoder-only\n(bidirectional)",
    "decoder": "Decoder-only\n(causal)",
    "prefix-lm": "Prefix-LM\n(non-causal decoder)",
    "encoder-decoder": "Encoder-decoder\n(source | target)",
}


def plot_pattern(ax, matrix, title: str = "", split: int | None = None, cmap: str = "Blues") -> None:
    """Draw an ``(n, n)`` mask or dependency matrix: rows are outputs (queries), columns
    inputs (keys); ``split`` draws the prefix/source boundary.

    Defined in the chapter "Four architectures, one block".
    """
    m = matrix.detach().float().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, float)
    n = m.shape[0]
    ax.imshow(m, cmap=cmap, vmin=0, vmax=max(float(m.max()), 1e-12), interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([str(i) for i in range(n)], fontsize=7)
    ax.set_yticklabels([str(i) for i in range(n)], fontsize=7)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    if split is not None:
        ax.axvline(split - 0.5, color="crimson", linewidth=1.5)
        ax.axhline(split - 0.5, color="crimson", linewidth=1.5)
    ax.set_xlabel("input (key) position", fontsize=8)
    ax.set_ylabel("output (query) position", fontsize=8)
    ax.set_title(title, fontsize=9)


def pattern_grid(patterns: dict, split: int | None = None, cmap: str = "Blues", suptitle: str = ""):
    """One panel per architecture, in the order given. Returns the figure.

    Defined in the chapter "Four architectures, one block".
    """
    fig, axes = plt.subplots(1, len(patterns), figsize=(3.1 * len(patterns), 3.4), constrained_layout=True)
    for ax, (arch, matrix) in zip(np.atleast_1d(axes), patterns.items()):
        plot_pattern(ax, matrix, ARCH_TITLES.get(arch, arch), split if arch in ("prefix-lm", "encoder-decoder") else None, cmap)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
