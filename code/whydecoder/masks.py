"""Attention masks: the one thing that separates the four architectures.

Convention used everywhere in the package: a mask is a boolean tensor whose entry
``[i, j]`` is ``True`` when query position ``i`` may attend to key position ``j``.

Explained in the chapter "Four architectures, one block" (``chapters/01_four_architectures``).
"""

from __future__ import annotations

import torch

MASK_KINDS = ("bidirectional", "causal", "prefix")


def _check_length(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def attention_mask(kind: str, n: int, prefix_len: int | None = None, device=None) -> torch.Tensor:
    """Return the ``(n, n)`` self-attention mask of one architecture.

    - ``"bidirectional"`` (encoder-only, the encoder of an encoder-decoder): all True.
    - ``"causal"`` (decoder-only): lower triangle, ``j <= i``.
    - ``"prefix"`` (prefix-LM, the non-causal decoder of UniLM): the first ``prefix_len``
      positions see each other bidirectionally; every later position is causal.

    Defined in the chapter "Four architectures, one block".
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    _check_length("n", n)
    if kind == "prefix":
        if prefix_len is None:
            raise ValueError("mask kind 'prefix' needs prefix_len")
        _check_length("prefix_len", prefix_len)
        if prefix_len > n:
            raise ValueError(f"prefix_len {prefix_len} is longer than the sequence length {n}")
    elif prefix_len is not None:
        raise ValueError(f"prefix_len={prefix_len} only applies to mask kind 'prefix', not {kind!r}")

    if kind == "bidirectional":
        return torch.ones(n, n, dtype=torch.bool, device=device)
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    if kind == "causal":
        return causal
    causal[:prefix_len, :prefix_len] = True
    return causal


def prefix_masks(prefix_lens: torch.Tensor, n: int) -> torch.Tensor:
    """Batched prefix-LM masks, ``(batch, 1, n, n)``, one prefix length per example.

    Defined in the chapter "Four architectures, one block".
    """
    _check_length("n", n)
    if isinstance(prefix_lens, (str, bytes)):
        raise TypeError(f"prefix_lens must be integer lengths, one per example, got {prefix_lens!r}")
    prefix_lens = torch.as_tensor(prefix_lens)
    if prefix_lens.is_floating_point() or prefix_lens.is_complex() or prefix_lens.dtype == torch.bool:
        raise ValueError(f"prefix_lens must hold integers, got a tensor of {prefix_lens.dtype}")
    if prefix_lens.dim() != 1:
        raise ValueError(f"prefix_lens must be 1-D (one per example), got shape {tuple(prefix_lens.shape)}")
    bad = (prefix_lens < 0) | (prefix_lens > n)
    if bad.any():
        raise ValueError(f"prefix length {int(prefix_lens[bad][0])} is outside the sequence [0, {n}]")
    pos = torch.arange(n, device=prefix_lens.device)
    causal = pos[None, :] <= pos[:, None]  # (n, n)
    in_prefix = pos[None, :] < prefix_lens[:, None]  # (batch, n): key j is in the prefix
    both = in_prefix[:, :, None] & in_prefix[:, None, :]  # query and key both in the prefix
    return (causal[None] | both)[:, None]


def decode_mask(kind: str, n_new: int, n_past: int, prefix_len: int | None = None, device=None) -> torch.Tensor:
    """The ``(n_new, n_past + n_new)`` rows of the full mask for queries appended after a cache.

    Row ``i`` belongs to absolute position ``n_past + i``. Used by cached generation.

    Defined in the chapter "Efficiency: the KV cache".
    """
    _check_length("n_new", n_new)
    _check_length("n_past", n_past)
    full = attention_mask(kind, n_past + n_new, prefix_len=prefix_len, device=device)
    return full[n_past:]


def visibility(arch: str, n: int, source_len: int | None = None, device=None) -> torch.Tensor:
    """Which input position each output position can depend on, ``(n, n)``, for an architecture.

    For ``encoder-decoder`` the first ``source_len`` positions are the source (read by the
    encoder) and the rest the target: the source sees the source; the target sees the whole
    source (through cross-attention) and earlier targets. On this view the encoder-decoder
    has the prefix-LM's pattern; what differs is the wiring (separate weights, and the
    target reads only the encoder's last layer). ``prefix-lm`` uses ``source_len`` as its
    prefix length.

    Defined in the chapter "Four architectures, one block".
    """
    from .config import ARCHS

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if arch in ("prefix-lm", "encoder-decoder"):
        if source_len is None:
            raise ValueError(f"arch {arch!r} needs source_len (the prefix / source length)")
        _check_length("source_len", source_len)
        _check_length("n", n)
        if source_len > n:
            raise ValueError(f"source_len {source_len} is longer than the sequence length n={n}")
        return attention_mask("prefix", n, prefix_len=source_len, device=device)
    if source_len is not None:
        raise ValueError(f"source_len only applies to 'prefix-lm' and 'encoder-decoder', not {arch!r}")
    return attention_mask("bidirectional" if arch == "encoder" else "causal", n, device=device)
