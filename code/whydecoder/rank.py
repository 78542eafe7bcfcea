"""Rank, conditioning and expressiveness of attention matrices.

The tools behind the low-rank argument: exact and numerical rank, the entropy effective
rank, condition numbers and singular spectra; random and fitted attention matrices with
and without the causal mask; and the rank-collapse measure of Dong et al. (2021).

Explained in the chapter "The low-rank argument, tested".
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import torch

from .attention import Attention
from .masks import attention_mask

if TYPE_CHECKING:
    from .model import Transformer

#: The book's rank yardstick: an n x n matrix is numerically low-rank when its float32
#: numerical rank is below this fraction of n.
LOW_RANK_FRACTION = 0.9


def _count(name: str, value, low: int | None = 1) -> None:
    """Refuse a size or count that is not an int (of at least ``low``, unless ``None``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        raise ValueError(f"{name} must be an int{'' if low is None else f' >= {low}'}, got {value!r}")


def _finite(name: str, value, positive: bool = False) -> None:
    """Refuse a parameter that is not a finite real number (or, if ``positive``, not > 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value!r}")


def _as_matrix(a: torch.Tensor) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"expected a matrix as a torch.Tensor, got {type(a).__name__}")
    if a.dim() != 2:
        raise ValueError(f"expected a matrix, got shape {tuple(a.shape)}")
    return a.detach().to(torch.float64)


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix, computed in float64, descending.

    Defined in the chapter "The low-rank argument, tested".
    """
    a = _as_matrix(a)
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"the matrix of shape {tuple(a.shape)} holds NaN or infinite entries; its singular values "
                         "are undefined")
    return torch.linalg.svdvals(a)


def numerical_rank(a: torch.Tensor, rtol: float | None = None, dtype: torch.dtype | None = None) -> int:
    """Number of singular values above ``rtol * s_max``. By default ``rtol`` is
    ``max(shape) * eps`` of ``dtype`` (of ``a`` if not given): the rank a computer working
    in that precision can tell apart from a lower one.

    Defined in the chapter "The low-rank argument, tested".
    """
    s = singular_values(a)
    if rtol is None:
        if not (dtype or a.dtype).is_floating_point:
            raise ValueError(f"a has the integer dtype {a.dtype}: pass dtype= (or rtol=) to say the precision")
        rtol = max(a.shape) * torch.finfo(dtype or a.dtype).eps
    _finite("rtol", rtol)
    if rtol < 0:
        raise ValueError(f"rtol must be >= 0, got {rtol}")
    return int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0


def effective_rank(a: torch.Tensor) -> float:
    """Entropy effective rank (Roy and Vetterli 2007): ``exp(H(p))`` with ``p = s / sum(s)``.

    It is ``n`` for the ``n x n`` identity and ``1`` for a rank-one matrix.
    Defined in the chapter "The low-rank argument, tested".
    """
    s = singular_values(a)
    if s.sum() == 0:
        raise ValueError("the effective rank of a zero matrix is undefined")
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def condition_number(a: torch.Tensor) -> float:
    """``s_max / s_min`` (``inf`` for a singular matrix). Defined in the chapter "The low-rank argument, tested"."""
    s = singular_values(a)
    if s.numel() == 0:
        raise ValueError(f"the condition number of an empty matrix (shape {tuple(a.shape)}) is undefined")
    return float("inf") if s[-1] == 0 else float(s[0] / s[-1])


def attention_probabilities(q: torch.Tensor, k: torch.Tensor, causal: bool = False, scale: float = 1.0) -> torch.Tensor:
    """``softmax(scale * q k^T / sqrt(d))``, optionally causal; ``q``, ``k`` are ``(n, d)``.

    Defined in the chapter "The low-rank argument, tested".
    """
    if q.dim() != 2 or q.shape != k.shape:
        raise ValueError(f"q and k must both be (n, d), got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[1] == 0:
        raise ValueError("q and k have size d = 0: there are no logits to take the softmax of")
    _finite("scale", scale)
    scores = scale * (q @ k.T) / math.sqrt(q.shape[1])
    if causal:
        scores = scores.masked_fill(~attention_mask("causal", q.shape[0], device=q.device), float("-inf"))
    return scores.softmax(dim=-1)


def random_attention(n: int, d: int, scale: float, causal: bool, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An attention matrix from standard-normal queries and keys of size ``d``.

    ``scale`` multiplies the logits (1 gives logits of unit variance). Defined in the chapter
    "The low-rank argument, tested".
    """
    _count("n", n, low=None)
    _count("d", d, low=None)
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1, got n={n}, d={d}")
    q = torch.randn(n, d, generator=generator, dtype=dtype)
    k = torch.randn(n, d, generator=generator, dtype=dtype)
    return attention_probabilities(q, k, causal, scale)


def random_stochastic(n: int, causal: bool, generator: torch.Generator, concentration: float = 1.0) -> torch.Tensor:
    """A random row-stochastic target: each row a Dirichlet(``concentration``) draw over the
    positions it may attend to (all of them, or ``j <= i`` if ``causal``).

    Defined in the chapter "The low-rank argument, tested".
    """
    _count("n", n)
    if isinstance(concentration, numbers.Real) and concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    _finite("concentration", concentration, positive=True)
    gamma = torch._standard_gamma(torch.full((n, n), float(concentration), dtype=torch.float64), generator=generator)
    if causal:
        gamma = gamma * attention_mask("causal", n).to(gamma.dtype)
    return gamma / gamma.sum(dim=-1, keepdim=True)


def row_kl(target: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``KL(target_i || p_i)``, with ``0 log 0 = 0``.

    Defined in the chapter "The low-rank argument, tested".
    """
    if target.shape != p.shape:
        raise ValueError(f"target and p must have the same shape (rows of distributions), got {tuple(target.shape)} "
                         f"and {tuple(p.shape)}")
    ratio = torch.where(target > 0, target * (target.clamp_min(1e-300).log() - p.clamp_min(1e-300).log()), 0.0)
    return ratio.sum(dim=-1).mean()


def fit_attention(target: torch.Tensor, d_head: int, causal: bool, steps: int = 500, lr: float = 0.05,
                  seed: int = 0) -> float:
    """Fit ``softmax(A B^T)`` (``A``, ``B`` of shape ``(n, d_head)``, the causal mask applied
    if ``causal``) to a row-stochastic ``target`` by Adam on the mean row KL divergence;
    returns the final KL. This is the question of Bhojanapalli et al. (2020): which
    attention matrices can a head of size ``d_head`` produce at all?

    Defined in the chapter "The low-rank argument, tested".
    """
    n = target.shape[0]
    if target.shape != (n, n):
        raise ValueError(f"target must be square, got shape {tuple(target.shape)}")
    _count("d_head", d_head)
    _count("steps", steps, low=0)
    _finite("lr", lr, positive=True)
    if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
        raise ValueError("target must hold finite, non-negative probabilities")
    sums = target.double().sum(dim=-1)
    if n and not bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4)):
        raise ValueError(f"target must be row-stochastic (rows summing to 1); row sums range from "
                         f"{float(sums.min()):.4g} to {float(sums.max()):.4g}")
    if causal and bool((target.triu(1) > 0).any()):
        raise ValueError("a causal head cannot fit a target with weight above the diagonal")
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, d_head, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    b = (torch.randn(n, d_head, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    mask = attention_mask("causal", n) if causal else None
    opt = torch.optim.Adam([a, b], lr=lr)
    target = target.to(torch.float64)

    def loss_fn():
        scores = a @ b.T
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return row_kl(target, scores.softmax(dim=-1))

    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(loss_fn())


def rank_one_residual(x: torch.Tensor) -> float:
    """Dong et al.'s measure of rank collapse for token representations ``x`` ``(n, d)``:
    ``||x - 1 m^T|| / ||x||`` with ``m`` the mean token (the closest rank-one "all tokens
    equal" matrix in Frobenius norm). Zero means every token is the same vector.

    Defined in the chapter "The low-rank argument, tested".
    """
    x = _as_matrix(x)
    norm = x.norm()
    if norm == 0:
        raise ValueError("the residual ratio of a zero matrix is undefined")
    return float((x - x.mean(dim=0, keepdim=True)).norm() / norm)


COLLAPSE_VARIANTS = ("attention", "attention+skip", "attention+mlp", "full block")


@torch.no_grad()
def collapse_curve(variant: str, causal: bool, depth: int, n: int = 32, d: int = 64, seed: int = 0,
                   weight_scale: float = 1.0) -> list[float]:
    """The rank-one residual ratio after each of ``depth`` random layers of a network made of

    - ``"attention"``: self-attention only (one head, value and output projections);
    - ``"attention+skip"``: attention with a residual connection;
    - ``"attention+mlp"``: attention followed by an MLP, no residual;
    - ``"full block"``: pre-LayerNorm attention and MLP, each with a residual.

    Returns ``depth + 1`` ratios, the first for the input. Defined in the chapter "The
    low-rank argument, tested".
    """
    if variant not in COLLAPSE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {COLLAPSE_VARIANTS}")
    _count("depth", depth)
    _count("n", n)
    _count("d", d)
    _finite("weight_scale", weight_scale, positive=True)
    g = torch.Generator().manual_seed(seed)

    def weight(rows, cols):
        return torch.randn(rows, cols, generator=g, dtype=torch.float64) * weight_scale / math.sqrt(rows)

    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    ratios = [rank_one_residual(x)]
    layer_norm = torch.nn.functional.layer_norm
    for _ in range(depth):
        wq, wk, wv, wo = weight(d, d), weight(d, d), weight(d, d), weight(d, d)
        w1, w2 = weight(d, 4 * d), weight(4 * d, d)
        h = layer_norm(x, (d,)) if variant == "full block" else x
        attn = attention_probabilities(h @ wq, h @ wk, causal) @ (h @ wv) @ wo
        if variant == "attention":
            x = attn
        elif variant == "attention+skip":
            x = x + attn
        elif variant == "attention+mlp":
            x = torch.relu(attn @ w1) @ w2
        else:
            x = x + attn
            x = x + torch.relu(layer_norm(x, (d,)) @ w1) @ w2
        ratios.append(rank_one_residual(x))
    return ratios


def matrix_stats(p: torch.Tensor) -> dict:
    """Rank statistics of one attention matrix (numerical rank at its own precision).

    Defined in the chapter "The low-rank argument, tested".
    """
    s = singular_values(p)
    return {
        "numerical_rank": numerical_rank(p),
        "effective_rank": effective_rank(p),
        "condition": condition_number(p),
        "min_diagonal": float(p.diagonal().min()),
        "n": p.shape[0],
        "spectrum_head": (s / s[0]).tolist()[:: max(1, p.shape[0] // 32)],
    }


def attention_maps(model: Transformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention probabilities ``(heads, n, n)`` for one sequence ``(1, n)``.

    Defined in the chapter "The low-rank argument, tested".
    """
    attns = [m for m in model.modules() if isinstance(m, Attention) and not m.cross]
    for m in attns:
        m.keep_weights = True
    try:
        with torch.no_grad():
            model(tokens)
        return [m.weights[0] for m in attns]
    finally:
        for m in attns:
            m.keep_weights, m.weights = False, None


def is_low_rank(row: dict) -> bool:
    """The yardstick: numerical rank below :data:`LOW_RANK_FRACTION` of ``n``.
    Defined in the chapter "The low-rank argument, tested"."""
    return row["numerical_rank"] < LOW_RANK_FRACTION * row["n"]
