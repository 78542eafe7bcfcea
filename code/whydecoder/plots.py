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


#: What each architecture's diagram writes at its output: the loss it trains with.
WIRING_OUTPUTS = {
    "decoder": "next token at every position",
    "prefix-lm": "next token, target positions only",
    "encoder-decoder": "next target token",
    "encoder": "the masked tokens",
}


def _stack(ax, x, y, width, height, colour, title, mask, note=""):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.02,rounding_size=0.06",
                                facecolor=colour, alpha=0.18, edgecolor=colour, linewidth=1.5))
    ax.text(x + width / 2, y + height - 0.09, title, ha="center", va="top", fontsize=10, weight="bold")
    size = min(width * 0.55, height * 0.42)
    inset = ax.inset_axes((x + (width - size) / 2, y + 0.12, size, size), transform=ax.transData)
    inset.imshow(mask, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_color(colour)
    if note:
        ax.text(x + width / 2, y + 0.12 + size + 0.06, note, ha="center", va="bottom", fontsize=10)


def _tokens(ax, x0, width, y, labels, colour):
    step = width / len(labels)
    for i, label in enumerate(labels):
        ax.text(x0 + step * (i + 0.5), y, label, ha="center", va="center", fontsize=10,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour, "linewidth": 1})


def wiring_diagram(n_layers: int = 2):
    """How the four architectures are wired: which stack reads which tokens through which
    attention mask (drawn small inside each stack: a dark cell means the row's position
    reads the column's), what the encoder-decoder's decoder reads of its encoder (the
    last layer, through cross-attention in every decoder block) and what each is trained
    to predict. ``n_layers`` is the depth written on each stack. Returns the figure.

    Defined in the chapter "Four architectures, one block"."""
    from matplotlib.patches import FancyArrowPatch

    from .masks import visibility
    from .palette import ARCHITECTURE_COLOURS, ARCHITECTURE_NAMES

    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    n, p = 5, 3
    source, target = ["x1", "x2", "x3"], ["y1", "y2"]
    fig, axes = plt.subplots(2, 2, figsize=(8, 8.4))
    axes = axes.ravel()
    blocks = f"× {n_layers} blocks"

    def arrow(ax, start, end, colour, style="-|>", **kw):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour, linewidth=1.3,
                                     **kw))

    for ax, arch in zip(axes, ("decoder", "prefix-lm", "encoder-decoder", "encoder")):
        colour = ARCHITECTURE_COLOURS[arch]
        ax.set_xlim(0, 3)
        ax.set_ylim(0, 4.2)
        ax.axis("off")
        ax.set_title(ARCHITECTURE_NAMES[arch], fontsize=12, color=colour, weight="bold")
        if arch == "encoder-decoder":
            _tokens(ax, 0.05, 1.3, 0.25, source, colour)
            _tokens(ax, 1.65, 1.3, 0.25, target, colour)
            _stack(ax, 0.05, 0.6, 1.3, 2.6, colour, f"encoder\n{blocks}", visibility("encoder", p).float(),
                   "bidirectional")
            _stack(ax, 1.65, 0.6, 1.3, 2.6, colour, f"decoder\n{blocks}", visibility("decoder", n - p).float(),
                   "causal")
            arrow(ax, (0.7, 3.22), (1.63, 2.2), colour, connectionstyle="arc3,rad=-0.3")
            ax.text(0.75, 3.45, "cross-attention:\nlast layer → every\ndecoder block", ha="center", fontsize=9,
                    color=colour)
            arrow(ax, (2.3, 3.22), (2.3, 3.72), colour)
            ax.text(2.3, 3.85, WIRING_OUTPUTS[arch], ha="center", va="bottom", fontsize=10)
            continue
        labels = source + target if arch != "encoder" else ["x1", "[M]", "x3", "[M]", "x5"]
        _tokens(ax, 0.2, 2.6, 0.25, labels, colour)
        split = p if arch == "prefix-lm" else None
        note = {"decoder": "causal", "prefix-lm": "prefix bidirectional,\ntarget causal",
                "encoder": "bidirectional"}[arch]
        _stack(ax, 0.2, 0.6, 2.6, 2.6, colour, f"one stack\n{blocks}", visibility(arch, n, split).float(), note)
        arrow(ax, (1.5, 3.22), (1.5, 3.72), colour)
        ax.text(1.5, 3.85, WIRING_OUTPUTS[arch], ha="center", va="bottom", fontsize=10)
    fig.tight_layout()
    return fig
