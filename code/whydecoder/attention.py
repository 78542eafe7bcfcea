"""Multi-head attention with an explicit mask and a key/value cache.

The same module serves every architecture: what changes is the mask it is handed and
whether keys/values come from the sequence itself or from the encoder (cross-attention).

Explained in the chapter "Four architectures, one block"; the cache in "Efficiency".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .positions import Rotary


class LayerCache:
    """Cached keys and values of one layer: self-attention (grows) and cross-attention (fixed).

    Defined in the chapter "Efficiency: the KV cache".
    """

    def __init__(self):
        self.k = self.v = None
        self.cross_k = self.cross_v = None
        self.state: torch.Tensor | None = None  # retention's fixed-size state, instead of k and v
        self.seen = 0  # positions absorbed into ``state``

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def tensors(self):
        return [t for t in (self.k, self.v, self.cross_k, self.cross_v, self.state) if t is not None]


class KVCache:
    """The key/value cache of a whole stack: one :class:`LayerCache` per layer.

    ``length`` is the number of positions already cached; new tokens are appended after it.
    ``prefix_len`` is the prefix a prefix-LM filled it under (set by the model), and
    ``model_config`` the config of the model that made it (set by ``new_cache``).

    Defined in the chapter "Efficiency: the KV cache".
    """

    def __init__(self, n_layers: int):
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.layers = [LayerCache() for _ in range(n_layers)]
        # prefix-LM: the prefix the cache was filled under (one length per example when they differ)
        self.prefix_len: int | tuple[int, ...] | None = None
        self.model_config = None  # the config of the model that made it (``Transformer.new_cache``)

    @property
    def length(self) -> int:
        first = self.layers[0]
        return first.seen if first.k is None else first.k.shape[2]

    @property
    def has_cross(self) -> bool:
        return self.layers[0].cross_k is not None

    def fork(self) -> "KVCache":
        """A cache that shares this one's tensors and grows on its own: appending makes new
        tensors (``torch.cat``), so one prefilled context serves many continuations."""
        copy = KVCache(len(self.layers))
        copy.prefix_len, copy.model_config = self.prefix_len, self.model_config
        for mine, theirs in zip(copy.layers, self.layers):
            mine.k, mine.v, mine.cross_k, mine.cross_v = theirs.k, theirs.v, theirs.cross_k, theirs.cross_v
            mine.state, mine.seen = theirs.state, theirs.seen
        return copy

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` cached positions (self-attention; cross-attention
        keys and values stay). A prefix-LM cache cannot be cut inside its prefix (the prefix
        positions saw each other), only to 0, which empties it."""
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= self.length:
            raise ValueError(f"length must be an int in [0, {self.length}], got {length!r}")
        if self.layers[0].state is not None and length != self.length:
            raise ValueError("a recurrent state cannot be cut back: it holds every position at once; re-run the prefix")
        prefix = max(self.prefix_len) if isinstance(self.prefix_len, tuple) else self.prefix_len
        if prefix is not None and 0 < length < prefix:
            raise ValueError(f"cannot crop to length {length}: the cache was filled with prefix_len {self.prefix_len}, "
                             "whose positions saw each other; crop to at least the prefix, or to 0 and re-encode")
        for layer in self.layers:
            if layer.k is not None:
                layer.k, layer.v = (layer.k[:, :, :length], layer.v[:, :, :length]) if length else (None, None)
        if length == 0:
            self.prefix_len = None

    def nbytes(self) -> int:
        """Bytes held by all cached tensors (measured, for checking the formula)."""
        return sum(t.numel() * t.element_size() for layer in self.layers for t in layer.tensors())


def attend(q, k, v, mask=None, is_causal=False, keep_weights=False):
    """Scaled dot-product attention; ``q`` is ``(B, h, Tq, dh)``, ``k``/``v`` ``(B, h_kv, Tk, dh)``.

    ``mask`` is boolean (True = may attend), broadcastable to ``(B, h, Tq, Tk)``. Returns the
    output and, when ``keep_weights`` is set, the attention probabilities (else ``None``).

    Defined in the chapter "Four architectures, one block".
    """
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] or \
            q.shape[-1] != k.shape[-1] or q.shape[1] % max(k.shape[1], 1):
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit together: expected "
                         "(B, h, Tq, dh) and (B, h_kv, Tk, dh) with h a multiple of h_kv")
    grouped = k.shape[1] != q.shape[1]  # grouped-query attention: each kv head serves a group of q heads
    if not keep_weights:  # the fused kernel reads each kv head once for its whole group
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=grouped), None
    if grouped:
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    if is_causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


class Attention(nn.Module):
    """Multi-head (optionally grouped-query) attention.

    Set ``keep_weights = True`` to compute the attention matrix explicitly and keep it in
    ``self.weights`` (the rank chapter reads it); otherwise PyTorch's fused kernel runs.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, cfg: ModelConfig, cross: bool = False):
        super().__init__()
        d, h, hk, dh = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim, self.cross = h, hk, dh, cross
        self.q = nn.Linear(d, h * dh, bias=cfg.bias)
        self.k = nn.Linear(d, hk * dh, bias=cfg.bias)
        self.v = nn.Linear(d, hk * dh, bias=cfg.bias)
        self.out = nn.Linear(h * dh, d, bias=cfg.bias)
        rotary = cfg.position == "rope" and (not cross or cfg.cross_positions == "continued")
        self.rotary = Rotary(dh, cfg.max_len, cfg.rope_base) if rotary else None
        self.keep_weights = False
        self.weights: torch.Tensor | None = None

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)

    def forward(self, x, mask=None, is_causal=False, start=0, context=None, cache: LayerCache | None = None):
        """``x`` is ``(B, T, d)``; ``start`` is the absolute position of ``x[:, 0]`` (for an
        encoder-decoder with continued positions, it counts the source's positions first).

        Self-attention: keys/values come from ``x`` (appended to ``cache`` if given).
        Cross-attention: from ``context`` (the encoder output), computed once per cache.
        """
        q = self._heads(self.q(x), self.n_heads)
        if self.cross:
            if cache is not None and cache.cross_k is not None:
                k, v = cache.cross_k, cache.cross_v
            else:
                k, v = self._heads(self.k(context), self.n_kv_heads), self._heads(self.v(context), self.n_kv_heads)
                if self.rotary is not None:  # continued positions: the source at 0..S-1
                    k = self.rotary(k, 0)
                if cache is not None:
                    cache.cross_k, cache.cross_v = k, v
            if self.rotary is not None:  # ... and the target after it (``start`` counts the source)
                q = self.rotary(q, start)
        else:
            k, v = self._heads(self.k(x), self.n_kv_heads), self._heads(self.v(x), self.n_kv_heads)
            if self.rotary is not None:
                q, k = self.rotary(q, start), self.rotary(k, start)
            if cache is not None:
                k, v = cache.append(k, v)
        y, weights = attend(q, k, v, mask=mask, is_causal=is_causal, keep_weights=self.keep_weights)
        self.weights = weights
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
