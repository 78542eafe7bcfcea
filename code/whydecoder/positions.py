"""Position information: learned absolute, sinusoidal, rotary (RoPE) or none (NoPE).

Explained in the chapter "Four architectures, one block" (and, for NoPE, the chapter on
encoders vs decoders).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_sizes(**sizes) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine table of Vaswani et al. 2017, ``(max_len, d_model)``.

    Defined in the chapter "Four architectures, one block".
    """
    _check_sizes(max_len=max_len, d_model=d_model)
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table.float()


class AbsolutePositions(nn.Module):
    """Adds a position vector to each token embedding (learned or sinusoidal).

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, kind: str, max_len: int, d_model: int):
        super().__init__()
        if kind not in ("learned", "sinusoidal"):
            raise ValueError(f"kind must be 'learned' or 'sinusoidal', got {kind!r}")
        _check_sizes(max_len=max_len, d_model=d_model)
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        return x + self.table[start : start + x.shape[1]]


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021), rotate-half form, applied to q and k.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, head_dim: int, max_len: int, base: float):
        super().__init__()
        _check_sizes(head_dim=head_dim, max_len=max_len)
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {head_dim}")
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base) or base <= 1:
            raise ValueError(f"base must be a finite number > 1, got {base!r}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv_freq[None]
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Rotate ``x`` of shape ``(batch, heads, T, head_dim)`` for positions ``start..start+T-1``."""
        t = x.shape[-2]
        cos, sin = self.cos[start : start + t], self.sin[start : start + t]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin
