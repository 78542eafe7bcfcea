"""Naive Bayes-based Context Extension (NBCE, Su 2023): reading a context longer than the
model's window by running each window-sized chunk of it with the question, then pooling
the chunks' next-token distributions.

If the chunks ``S_1 .. S_n`` were independent given the answer ``T``, Bayes' rule gives

    log p(T | S_1 .. S_n) = sum_k log p(T | S_k) - (n - 1) log p(T) + const.

Su replaces the sum by a pooled chunk distribution and the ``n - 1`` by a tunable
``beta``: ``(1 + beta) * pool_k log p(T | S_k) - beta * log p(T)``, where ``p(T)`` is the
model with the question and no context. The pooling his reference code uses is the
*minimum-entropy* chunk (the one most sure of its next token) after a top-p truncation of
every distribution (0.95); the first version of the post averaged the chunks. Both are
here, applied one generated token at a time, as in his code.

Explained in the chapter "In-context learning", section "Reading past the window".
"""

from __future__ import annotations

import math
import numbers

import torch

from .attention import KVCache
from .model import Transformer

POOLINGS = ("min_entropy", "average")


def top_p_filter(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``
    (at least one) and set the rest to ``-inf``, along the last dimension, as
    ``transformers``' ``TopPLogitsWarper`` does. Defined in the chapter "In-context learning"."""
    if isinstance(top_p, bool) or not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if top_p == 1:
        return logprobs
    order = logprobs.sort(dim=-1, descending=True)
    mass_before = order.values.exp().cumsum(-1) - order.values.exp()  # probability of the tokens ranked above
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order.indices, drop_sorted)
    return logprobs.masked_fill(drop, float("-inf"))


def entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the distributions along the last dimension (``-inf`` entries,
    as top-p leaves them, count as probability zero). Defined in the chapter "In-context learning"."""
    p = logprobs.exp()
    return -(p * logprobs.clamp(min=-100)).sum(-1)


def nbce_pool(chunk_logprobs: torch.Tensor, uncond_logprobs: torch.Tensor, beta: float,
              pooling: str = "min_entropy", top_p: float | None = 0.95) -> torch.Tensor:
    """NBCE's next-token log-probabilities ``(V,)`` from the chunks' ``(n, V)`` and the
    context-free ``(V,)`` ones.

    ``pooling="min_entropy"`` takes the chunk of least entropy after a ``top_p`` truncation
    (Su's reference code); ``"average"`` averages the chunks' untruncated log-probabilities
    (the post's first form). Either is combined as ``(1 + beta) * pooled - beta * uncond``;
    where the context-free distribution gives a token no mass (outside its nucleus) the
    pooled value is kept, as in the reference code. Log-probabilities with a NaN or ``+inf``,
    and a distribution that gives every token ``-inf`` (no mass anywhere), are refused.
    Defined in the chapter "In-context learning".
    """
    for name, x in (("chunk_logprobs", chunk_logprobs), ("uncond_logprobs", uncond_logprobs)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if chunk_logprobs.dim() != 2 or uncond_logprobs.shape != chunk_logprobs.shape[1:] or 0 in chunk_logprobs.shape:
        raise ValueError(f"expected chunk log-probs (n, V) and context-free ones (V,), n and V >= 1, got "
                         f"{tuple(chunk_logprobs.shape)} and {tuple(uncond_logprobs.shape)}")
    for name, x in (("chunk_logprobs", chunk_logprobs), ("uncond_logprobs", uncond_logprobs.unsqueeze(0))):
        bad = x.isnan() | (x == math.inf)
        if bad.any():
            row = int(bad.any(-1).nonzero()[0])
            where = f"chunk {row}" if name == "chunk_logprobs" else "the context-free distribution"
            raise ValueError(f"{name} holds NaN or +inf (in {where}): not log-probabilities")
        empty = (x == -math.inf).all(-1)
        if empty.any():
            where = f"chunk {int(empty.nonzero()[0])}" if name == "chunk_logprobs" else "the context-free distribution"
            raise ValueError(f"{name}: {where} gives every token -inf (no probability mass anywhere)")
    if isinstance(beta, bool) or not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
    if top_p is not None and (isinstance(top_p, bool) or not (isinstance(top_p, (int, float)) and 0 < top_p <= 1)):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")
    chunks = chunk_logprobs.log_softmax(-1)
    uncond = uncond_logprobs.log_softmax(-1)
    if pooling == "min_entropy":
        if top_p is not None:
            chunks, uncond = top_p_filter(chunks, top_p), top_p_filter(uncond, top_p)
        pooled = chunks[entropy(chunks).argmin()]
    else:
        pooled = chunks.mean(0)
    merged = (1 + beta) * pooled - beta * uncond
    merged = torch.where(uncond > -100, merged, pooled)
    return merged.log_softmax(-1)


def _token_list(name: str, value, min_len: int = 0) -> list[int]:
    """``value`` as a list of token ids; refuses text, a tensor or a list of other things."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of token ids, got {type(value).__name__}")
    if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in value):
        raise ValueError(f"{name} must hold integer token ids, got {list(value)[:5]!r}...")
    if len(value) < min_len:
        raise ValueError(f"{name} must hold at least {min_len} token(s), got {len(value)}")
    return list(value)


@torch.no_grad()
def prefill(model: Transformer, context: list[int]) -> KVCache:
    """A decoder's cache after reading ``context`` (no logits computed: at long contexts
    the head over every position would cost more memory than the model). Defined in the
    chapter "In-context learning"."""
    if model.cfg.arch != "decoder":
        raise ValueError(f"NBCE runs a decoder-only model, not arch {model.cfg.arch!r}")
    context = _token_list("context", context)
    cache = model.new_cache()
    if context:
        model.hidden_states(torch.tensor([context]), cache=cache)
    return cache


@torch.no_grad()
def answer_logprobs(model: Transformer, cache: KVCache | None, question: list[int], answer: list[int]) -> torch.Tensor:
    """Teacher-forced next-token log-probabilities ``(len(answer), V)`` at the positions
    that predict each answer token, after the cached context (``None``: no context) and
    the ``question``. The cache itself is left as it was. Defined in the chapter "In-context learning"."""
    question, answer = _token_list("question", question), _token_list("answer", answer)
    if not question or not answer:
        raise ValueError("question and answer must both hold at least one token")
    if cache is not None and not isinstance(cache, KVCache):
        raise ValueError(f"cache must be a KVCache (from prefill) or None, got {type(cache).__name__}")
    cache = model.new_cache() if cache is None else cache.fork()
    h = model.hidden_states(torch.tensor([question + answer[:-1]]), cache=cache)
    return model.lm_head(h[0, -len(answer):]).float().log_softmax(-1)


def exact_match(logprobs: torch.Tensor, answer: list[int]) -> bool:
    """Is every answer token the most likely one (greedy decoding writes the answer)?
    Under teacher forcing this is the same as greedy decoding while it stays right.
    Defined in the chapter "In-context learning"."""
    answer = _token_list("answer", answer, min_len=1)
    if not isinstance(logprobs, torch.Tensor) or logprobs.dim() != 2 or logprobs.shape[0] != len(answer):
        raise ValueError(f"logprobs must be (len(answer), V) = ({len(answer)}, V), one row per answer token; got "
                         f"{tuple(getattr(logprobs, 'shape', ())) or type(logprobs).__name__}")
    return bool((logprobs.argmax(-1) == torch.tensor(answer)).all())


__all__ = ["POOLINGS", "answer_logprobs", "entropy", "exact_match", "nbce_pool", "prefill", "top_p_filter"]
