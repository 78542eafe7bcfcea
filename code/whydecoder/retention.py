"""Retention: a recurrent token mixer in the style of RetNet (Sun et al. 2023).

Softmax attention keeps every past key and value: its cache, and the cost of one more
token, grow with the context. Retention drops the softmax. Each head keeps one ``(d_h, d_h)``
state that decays by a fixed factor ``gamma`` per step and absorbs the new key-value outer
product::

    S_t = gamma * S_{t-1} + k_t^T v_t        o_t = q_t S_t

so a decode step costs the same at any context length. The same outputs come from a
parallel form for training, ``(Q K^T * D) V`` with ``D[t, m] = gamma^(t - m)`` for
``m <= t`` (else 0), and from a chunk form that starts from a carried state; the tests
check all three against :func:`retention_recurrent`, the recurrence written as a loop.

As in RetNet: one decay per head, ``gamma_h = 1 - 2^(-5 - h)`` (heads remember over about
32 to a few thousand steps), rotary positions on ``q`` and ``k``, keys scaled by
``d_h^-1/2``, and a normalisation of each head's output (RetNet's GroupNorm; here without
its learned scale); the query, key and value projections start at ``1 / sqrt(d)``
(:meth:`Retention.reset_projections`). Left out, to keep the parameter count equal to attention's: RetNet's
output gate. Explained in the chapter "The routes after the plain decoder".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .positions import Rotary


def head_decays(n_heads: int) -> torch.Tensor:
    """RetNet's decay per head, ``1 - 2^(-5 - h)`` for ``h = 0 .. n_heads - 1`` (float64).

    Defined in the chapter "The routes after the plain decoder".
    """
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    return 1 - 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float64))


def _check_retention_inputs(q, k, v, gamma, state) -> None:
    """Refuse inputs on which the recurrent and chunk forms would fail inside torch or disagree."""
    for name, x in (("q", q), ("k", k), ("v", v), ("gamma", gamma)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got "
                             f"{getattr(x, 'dtype', type(x).__name__)}")
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} must be (B, h, T, d) with "
                         "the same B, h and T (and q and k the same d)")
    if gamma.shape != (q.shape[1],):
        raise ValueError(f"gamma must hold one decay per head, shape ({q.shape[1]},), got {tuple(gamma.shape)}")
    if not bool(((gamma >= 0) & (gamma <= 1)).all()):
        raise ValueError(f"gamma must hold decays in [0, 1], got {gamma.tolist()}")
    expected = (q.shape[0], q.shape[1], q.shape[3], v.shape[3])
    if state is not None and (not isinstance(state, torch.Tensor) or tuple(state.shape) != expected
                              or state.dtype != q.dtype):
        raise ValueError(f"state must be a {q.dtype} tensor of shape {expected} (B, h, d, d_v), got "
                         f"{getattr(state, 'dtype', type(state).__name__)} {tuple(getattr(state, 'shape', ()))}")


def retention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor,
                        state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: the recurrence one step at a time. ``q, k, v`` are ``(B, h, T, d)``,
    ``gamma`` ``(h,)`` in ``[0, 1]``; returns the outputs ``(B, h, T, d)`` and the last
    state ``(B, h, d, d)``.

    Defined in the chapter "The routes after the plain decoder".
    """
    _check_retention_inputs(q, k, v, gamma, state)
    b, h, t, d = q.shape
    s = torch.zeros(b, h, d, v.shape[-1], dtype=q.dtype) if state is None else state
    g = gamma.to(q.dtype)[None, :, None, None]
    out = []
    for i in range(t):
        s = g * s + k[:, :, i, :, None] * v[:, :, i, None, :]
        out.append((q[:, :, i, None, :] @ s).squeeze(-2))
    if not out:  # no new position: no output, the state as it was
        return q.new_zeros(b, h, 0, v.shape[-1]), s
    return torch.stack(out, dim=2), s


def retention_chunk(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor,
                    state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same outputs and last state as :func:`retention_recurrent`, computed in parallel
    over the ``T`` new positions: ``(Q K^T * D) V`` inside the chunk, plus the carried
    state decayed to each position, ``gamma^(t+1) q_t S_0``; the new state is
    ``gamma^T S_0 + sum_m gamma^(T-1-m) k_m^T v_m``. With ``state=None`` this is the
    parallel (training) form. A decay of 0 keeps only the current position, as the
    recurrence does (``0^0 = 1``). Defined in the chapter "The routes after the plain decoder".
    """
    _check_retention_inputs(q, k, v, gamma, state)
    return _retention_chunk(q, k, v, gamma, state, zero_decay=bool((gamma == 0).any()))


def _power_with_zero(log_g: torch.Tensor, n) -> torch.Tensor:
    """``gamma^n`` as ``exp(n log gamma)``, with ``gamma^0 = 1`` also for a decay of 0 (where
    ``0 * log 0`` is NaN)."""
    return torch.where(torch.as_tensor(n) == 0, 1.0, torch.exp(log_g * n))


def _retention_chunk(q, k, v, gamma, state=None, zero_decay: bool = False):
    """:func:`retention_chunk` without the input checks (the model's forward pass, whose
    decays are above 0); ``zero_decay`` handles a decay of 0."""
    power = _power_with_zero if zero_decay else (lambda log_g, n: torch.exp(log_g * n))
    t = q.shape[-2]
    log_g = torch.log(gamma.to(torch.float64))[:, None]  # (h, 1)
    pos = torch.arange(t, dtype=torch.float64)
    gap = pos[:, None] - pos[None, :]
    decay = torch.where(gap >= 0, power(log_g[..., None], gap.clamp(min=0)), 0.0).to(q.dtype)  # (h, T, T)
    out = ((q @ k.transpose(-2, -1)) * decay) @ v
    to_end = power(log_g, t - 1 - pos).to(q.dtype)  # (h, T): gamma^(T-1-m)
    new_state = (k * to_end[..., None]).transpose(-2, -1) @ v
    if state is not None:
        from_start = torch.exp(log_g * (pos + 1)).to(q.dtype)  # (h, T): gamma^(t+1)
        out = out + (q * from_start[..., None]) @ state
        new_state = new_state + power(log_g, t).to(q.dtype)[..., None] * state
    return out, new_state


class Retention(nn.Module):
    """Multi-scale retention in place of self-attention (decoder only): the same ``q``,
    ``k``, ``v`` and output projections as :class:`~whydecoder.attention.Attention`, one
    fixed decay per head, a constant-size state in the cache instead of keys and values.

    Defined in the chapter "The routes after the plain decoder".
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, h, dh = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.n_heads, self.head_dim = h, dh
        self.q = nn.Linear(d, h * dh, bias=cfg.bias)
        self.k = nn.Linear(d, h * dh, bias=cfg.bias)
        self.v = nn.Linear(d, h * dh, bias=cfg.bias)
        self.out = nn.Linear(h * dh, d, bias=cfg.bias)
        self.rotary = Rotary(dh, cfg.max_len, cfg.rope_base) if cfg.position == "rope" else None
        self.register_buffer("gamma", head_decays(h), persistent=False)

    def reset_projections(self) -> None:
        """Query, key and value weights from normal(0, 1/d): with GPT-2's 0.02 the product
        ``q k^T v`` of three small projections starts near 1e-7, below the per-head norm's
        epsilon, and the norm would scale its epsilon instead of the signal."""
        for layer in (self.q, self.k, self.v):
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask=None, is_causal=False, start=0, context=None, cache=None):
        """``x`` is ``(B, T, d)`` at positions ``start ..``; causal by construction (the
        mask arguments of attention are not used). With ``cache`` the state carries over."""
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        k = k / math.sqrt(self.head_dim)
        state = None if cache is None else cache.state
        y, new_state = _retention_chunk(q, k, v, self.gamma, state)
        if cache is not None:
            cache.state, cache.seen = new_state, cache.seen + x.shape[1]
        y = F.rms_norm(y, (self.head_dim,))  # RetNet's per-head GroupNorm, without its scale
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
