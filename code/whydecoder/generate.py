"""Greedy and sampled generation, with and without the KV cache.

- decoder-only: the prompt is prefilled once, then one token at a time.
- prefix-LM: the prompt is the bidirectional prefix, encoded once; new tokens are causal.
- encoder-decoder: the source is encoded once; the decoder caches self- and cross-attention.

Without the cache every step recomputes the whole sequence; the two must give the same
tokens. Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

import math

import torch

from .model import Transformer


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")


@torch.no_grad()
def generate(
    model: Transformer, prompt: torch.Tensor, max_new_tokens: int, *, source: torch.Tensor | None = None,
    use_cache: bool = True, temperature: float = 0.0, top_k: int | None = None,
    generator: torch.Generator | None = None, return_logits: bool = False,
):
    """Append ``max_new_tokens`` tokens to ``prompt`` ``(B, T)``; returns ``(B, T + new)``
    (and the ``(B, new, vocab)`` logits that chose them if ``return_logits``).

    ``temperature=0`` is greedy. For a prefix-LM the prompt is the prefix; for an
    encoder-decoder ``source`` goes to the encoder and ``prompt`` starts the decoder (e.g.
    a ``<bos>`` column). Defined in the chapter "Efficiency: the KV cache".
    """
    arch = model.cfg.arch
    if arch == "encoder":
        raise ValueError("arch 'encoder' cannot generate left to right (it has no causal mask); see iterative unmasking")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    _check_temperature(temperature)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or not 1 <= top_k <= model.cfg.vocab_size):
        raise ValueError(f"top_k {top_k!r} is not an int in [1, {model.cfg.vocab_size}] (or None)")
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must be a (batch, length >= 1) tensor, got "
                         f"{tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt).__name__}")
    total = prompt.shape[1] + max_new_tokens
    if total > model.cfg.max_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds the model's max_len {model.cfg.max_len}")
    if arch == "encoder-decoder" and source is None:
        raise ValueError("arch 'encoder-decoder' needs source tokens")
    if arch != "encoder-decoder" and source is not None:
        raise ValueError(f"source only applies to arch 'encoder-decoder', not {arch!r} (it has no encoder to read "
                         "it): put the source in the prompt")
    kw = {"source": source} if arch == "encoder-decoder" else {}
    if arch == "prefix-lm":
        kw["prefix_len"] = prompt.shape[1]

    tokens, steps = prompt, []
    cache = model.new_cache() if use_cache else None
    new = prompt
    for _ in range(max_new_tokens):
        if use_cache:
            logits = model(new, cache=cache, **kw)[:, -1]
            if arch == "encoder-decoder":
                kw = {}  # the cross-attention keys/values are cached now
        else:
            logits = model(tokens, **kw)[:, -1]
        new = _pick(logits, temperature, top_k, generator)
        tokens = torch.cat([tokens, new], dim=1)
        steps.append(logits)
    if return_logits:
        empty = prompt.new_zeros((prompt.shape[0], 0, model.cfg.vocab_size), dtype=torch.float32)
        return tokens, torch.stack(steps, dim=1) if steps else empty
    return tokens


@torch.no_grad()
def unmask_generate(
    model: Transformer, prompt: torch.Tensor, max_new_tokens: int, *, mask_id: int, allowed: int | None = None,
    temperature: float = 0.0, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generation from a bidirectional (masked-LM) model by iterative unmasking: append
    ``max_new_tokens`` ``<mask>`` tokens (id ``mask_id``) to ``prompt`` ``(B, T)``, then
    ``max_new_tokens`` times run the whole sequence, find in each row the still-masked
    position whose prediction is most confident, and fill it (greedy at
    ``temperature=0``, else sampled). Only ids below ``allowed`` (default: all but
    ``mask_id``) may be filled in. Every step is a full forward pass: there is no cache.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if model.cfg.arch != "encoder":
        raise ValueError(f"unmask_generate needs a bidirectional 'encoder', got arch {model.cfg.arch!r}; use generate()")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    _check_temperature(temperature)
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must be a (batch, length >= 1) tensor, got "
                         f"{tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt).__name__}")
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not 0 <= mask_id < model.cfg.vocab_size:
        raise ValueError(f"mask_id must be a token id in [0, {model.cfg.vocab_size}), got {mask_id!r}")
    if (prompt == mask_id).any():
        raise ValueError(f"mask_id {mask_id} occurs in the prompt: it must be an id the prompt never uses "
                         "(a real byte would be overwritten as if it were masked)")
    if allowed is not None and (isinstance(allowed, bool)
                                or not (isinstance(allowed, int) and 0 < allowed <= model.cfg.vocab_size)):
        raise ValueError(f"allowed must be an int in [1, {model.cfg.vocab_size}], got {allowed!r}")
    if allowed is not None and mask_id < allowed:
        raise ValueError(f"mask_id {mask_id} is below allowed={allowed}: the model could write the mask itself")
    if prompt.shape[1] + max_new_tokens > model.cfg.max_len:
        raise ValueError(f"prompt + max_new_tokens = {prompt.shape[1] + max_new_tokens} exceeds the model's "
                         f"max_len {model.cfg.max_len}")
    model.eval()
    tokens = torch.cat([prompt, prompt.new_full((len(prompt), max_new_tokens), mask_id)], dim=1)
    rows = torch.arange(len(prompt))
    for _ in range(max_new_tokens):
        logits = model(tokens).float()
        if allowed is not None:
            logits[..., allowed:] = float("-inf")
        logits[..., mask_id] = float("-inf")
        confidence = logits.log_softmax(-1).amax(-1).masked_fill(tokens != mask_id, float("-inf"))
        where = confidence.argmax(dim=1)  # the most confident masked position of each row
        tokens[rows, where] = _pick(logits[rows, where], temperature, None, generator)[:, 0]
    return tokens
