"""Attention computed in tiles with an online softmax: the idea of FlashAttention (Dao et
al. 2022), in plain PyTorch so that it can be read.

Naive attention builds the whole ``(T, T)`` matrix of scores, then softmaxes each row. The
tiled form walks over blocks of keys and keeps, for every query, only a running maximum
``m``, a running normaliser ``l`` and a running output ``o``. When a new block of scores
``s`` arrives:

    m' = max(m, max_j s_j)
    l' = exp(m - m') l + sum_j exp(s_j - m')
    o' = exp(m - m') o + sum_j exp(s_j - m') v_j

and at the end the output is ``o / l``: the same numbers as the softmax of the full row,
with memory for one ``(block_q, block_k)`` tile of scores instead of ``(T, T)``. (The fused
kernels also save time by keeping tiles in fast on-chip memory; that part is the
hardware's, not the algebra's, and is not what this module shows.)

Explained in the chapter on the routes after the plain decoder (efficiency route).
"""

from __future__ import annotations

import math

import torch


def _check_qkv(q, k, v, causal) -> None:
    """Refuse inputs that do not fit, and those that leave a query no key to read (its
    softmax would be over nothing: NaN)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor (..., T, d), got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if q.shape[:-2] != k.shape[:-2] or k.shape != v.shape or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit together")
    tq, tk = q.shape[-2], k.shape[-2]
    if tq and not tk:
        raise ValueError(f"k and v hold no key for the {tq} queries to read")
    if causal and tk < tq:
        raise ValueError(f"causal attention with fewer keys ({tk}) than queries ({tq}): the first {tq - tk} queries "
                         f"would read no key (query i reads keys j <= i + Tk - Tq)")


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Softmax attention through the full matrix of scores; ``q`` ``(..., Tq, d)``, ``k``
    and ``v`` ``(..., Tk, d)``. With ``causal``, query ``i`` reads keys ``j <= i + Tk - Tq``
    (so ``Tk >= Tq``). The reference the tiled form is checked against. Defined in the chapter on the routes."""
    _check_qkv(q, k, v, causal)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    block_q: int = 64, block_k: int = 64) -> torch.Tensor:
    """The same attention as :func:`naive_attention`, computed one ``(block_q, block_k)``
    tile of scores at a time with an online softmax, never holding the full matrix.
    Defined in the chapter on the routes."""
    for name, value in (("block_q", block_q), ("block_k", block_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_qkv(q, k, v, causal)
    tq, tk, scale = q.shape[-2], k.shape[-2], 1 / math.sqrt(q.shape[-1])
    offset = tk - tq  # causal: query i sits at absolute position i + offset
    out = torch.empty_like(q)
    for qs in range(0, tq, block_q):
        qb = q[..., qs:qs + block_q, :] * scale
        rows = torch.arange(qs, qs + qb.shape[-2], device=q.device)[:, None] + offset
        m = torch.full(qb.shape[:-1], float("-inf"), dtype=q.dtype, device=q.device)
        norm = torch.zeros_like(m)
        o = torch.zeros_like(qb)
        last = tk if not causal else min(tk, qs + qb.shape[-2] + offset)
        for ks in range(0, last, block_k):
            s = qb @ k[..., ks:ks + block_k, :].transpose(-2, -1)
            if causal:
                cols = torch.arange(ks, ks + s.shape[-1], device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1))
            safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # rows with nothing yet
            p = torch.exp(s - safe[..., None])
            correction = torch.exp(m - safe)
            norm = correction * norm + p.sum(dim=-1)
            o = correction[..., None] * o + p @ v[..., ks:ks + block_k, :]
            m = m_new
        out[..., qs:qs + qb.shape[-2], :] = o / norm[..., None]
    return out


def score_bytes(tq: int, tk: int, heads: int = 1, batch: int = 1, bytes_per_value: int = 4,
                block_q: int | None = None, block_k: int | None = None) -> int:
    """Bytes of the scores an attention call holds at once: the full ``(Tq, Tk)`` matrix per
    head, or one ``(block_q, block_k)`` tile when both blocks are given. Defined in the
    chapter on the routes."""
    for name, value in (("tq", tq), ("tk", tk), ("heads", heads), ("batch", batch), ("bytes_per_value", bytes_per_value),
                        ("block_q", block_q), ("block_k", block_k)):
        low = 0 if name in ("tq", "tk") else 1
        if (value is not None or name not in ("block_q", "block_k")) and (
                isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if block_q is not None and block_k is not None:
        tq, tk = min(tq, block_q), min(tk, block_k)
    return tq * tk * heads * batch * bytes_per_value


METHODS = ("naive", "tiled", "sdpa")


_PEAK_CHILD = """
import sys, torch
from whydecoder.memory import peak_bytes
from whydecoder.tiled_attention import naive_attention, tiled_attention
method, length, d, heads, block = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, heads, length, d, generator=g) for _ in range(3))
calls = {"naive": lambda: naive_attention(q, k, v, causal=True),
         "tiled": lambda: tiled_attention(q, k, v, causal=True, block_q=block, block_k=block),
         "sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)}
before = peak_bytes()
calls[method]()
print(peak_bytes() - before)
"""


def peak_memory_bytes(method: str, length: int, d: int = 64, heads: int = 4, block: int = 64) -> int:
    """How much a causal attention call over ``length`` positions raises the peak resident
    memory of a fresh Python process (its inputs already allocated), by ``method``:
    ``"naive"``, ``"tiled"`` or ``"sdpa"`` (PyTorch's fused kernel). A fresh process per
    measurement, because the peak of a process only grows. Defined in the chapter on the routes."""
    import subprocess
    import sys

    from .memory import measuring_env

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    for name, value in (("length", length), ("d", d), ("heads", heads), ("block", block)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD, method, str(length), str(d), str(heads), str(block)],
                         capture_output=True, text=True, check=True, timeout=600, env=measuring_env())
    return int(out.stdout.split()[-1])
