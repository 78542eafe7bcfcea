"""Pretraining objectives: each turns a batch of text chunks into model inputs, targets
and a loss mask, wired for a given architecture.

- full language modelling (predict every next token; the GPT objective),
- prefix language modelling (condition on a prefix, predict the rest; loss on the target),
- masked language modelling (BERT's 15% with 80/10/10 corruption),
- masked language modelling at a random rate per sequence (the masked-diffusion objective
  that lets a bidirectional model generate by unmasking),
- span corruption (T5's: spans replaced by sentinels, the target spells them out).

Explained in the chapter on encoders vs decoders (pretraining objectives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .model import Transformer, sequence_loss
from .text import N_SENTINELS, ByteTokenizer

OBJECTIVES = ("full-lm", "prefix-lm", "masked-lm", "random-rate-masked-lm", "span-corruption")
#: The share of tokens BERT's masked LM picks to predict (Devlin et al. 2019).
BERT_MASK_RATE = 0.15


@dataclass
class Batch:
    """What one training step consumes. ``tokens`` feed the main (decoder) stack;
    ``source`` feeds the encoder of an encoder-decoder; ``prefix_len`` is the bidirectional
    prefix of a prefix-LM (one length per example).

    Defined in the chapter on encoders vs decoders.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor
    prefix_len: torch.Tensor | None = None
    source: torch.Tensor | None = None

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(*(move(getattr(self, f)) for f in ("tokens", "targets", "loss_mask", "prefix_len", "source")))

    def model_inputs(self) -> dict:
        kw = {}
        if self.prefix_len is not None:
            kw["prefix_len"] = self.prefix_len
        if self.source is not None:
            kw["source"] = self.source
        return kw

    @property
    def n_target_tokens(self) -> int:
        return int(self.loss_mask.sum())


def batch_loss(model: Transformer, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model`` on the target positions of ``batch``.

    Defined in the chapter on encoders vs decoders.
    """
    return sequence_loss(model(batch.tokens, **batch.model_inputs()), batch.targets, batch.loss_mask)


def _check_arch(objective: str, arch: str, allowed: tuple[str, ...]) -> None:
    if arch not in allowed:
        raise ValueError(f"objective {objective!r} does not apply to arch {arch!r}; use one of {allowed}")


def _check_chunks(chunks: torch.Tensor) -> None:
    if not isinstance(chunks, torch.Tensor):
        raise ValueError(f"chunks must be a (batch, length) tensor of token ids, got {type(chunks).__name__}")
    if chunks.dim() != 2 or chunks.shape[1] < 2:
        raise ValueError(f"chunks must be (batch, length >= 2), got shape {tuple(chunks.shape)}")
    if chunks.is_floating_point() or chunks.is_complex() or chunks.dtype == torch.bool:
        raise ValueError(f"chunks must hold integer token ids, got dtype {chunks.dtype}")


def _conditional(arch: str, context: torch.Tensor, target: torch.Tensor, tok: ByteTokenizer) -> Batch:
    """Wire "predict ``target`` given ``context``" for an architecture (loss on target only)."""
    b, c = context.shape
    if arch == "encoder-decoder":
        bos = torch.full((b, 1), tok.bos, dtype=target.dtype, device=target.device)
        dec_in = torch.cat([bos, target[:, :-1]], dim=1)
        return Batch(dec_in, target, torch.ones_like(target, dtype=torch.bool), source=context)
    seq = torch.cat([context, target], dim=1)
    tokens, targets = seq[:, :-1], seq[:, 1:]
    loss_mask = torch.zeros_like(targets, dtype=torch.bool)
    loss_mask[:, c - 1 :] = True
    prefix = torch.full((b,), c, dtype=torch.long, device=seq.device) if arch == "prefix-lm" else None
    return Batch(tokens, targets, loss_mask, prefix_len=prefix)


def full_lm(chunks: torch.Tensor, arch: str = "decoder") -> Batch:
    """Next-token prediction at every position (a prefix-LM then has an empty prefix).

    Defined in the chapter on encoders vs decoders.
    """
    _check_arch("full-lm", arch, ("decoder", "prefix-lm"))
    _check_chunks(chunks)
    tokens, targets = chunks[:, :-1], chunks[:, 1:]
    prefix = torch.zeros(len(chunks), dtype=torch.long, device=chunks.device) if arch == "prefix-lm" else None
    return Batch(tokens, targets, torch.ones_like(targets, dtype=torch.bool), prefix_len=prefix)


def prefix_lm(chunks: torch.Tensor, arch: str, prefix_len: int, tok: ByteTokenizer = ByteTokenizer()) -> Batch:
    """Split each chunk at ``prefix_len``: the model reads the prefix, is scored on the rest.

    A causal decoder reads the prefix causally, a prefix-LM bidirectionally, an
    encoder-decoder with its encoder. Defined in the chapter on encoders vs decoders.
    """
    _check_arch("prefix-lm", arch, ("decoder", "prefix-lm", "encoder-decoder"))
    _check_chunks(chunks)
    if isinstance(prefix_len, bool) or not isinstance(prefix_len, int) or not 1 <= prefix_len < chunks.shape[1]:
        raise ValueError(f"prefix_len {prefix_len} must leave a non-empty prefix and target in length {chunks.shape[1]}")
    return _conditional(arch, chunks[:, :prefix_len], chunks[:, prefix_len:], tok)


def masked_lm(chunks: torch.Tensor, generator: torch.Generator, rate: float = BERT_MASK_RATE, tok: ByteTokenizer = ByteTokenizer()) -> Batch:
    """BERT's masked LM: pick ``rate`` of the positions; of those 80% become ``<mask>``,
    10% a random byte, 10% stay; predict the original token at the picked positions.

    Defined in the chapter on encoders vs decoders.
    """
    _check_chunks(chunks)
    if not 0 < rate < 1:
        raise ValueError(f"masking rate must be in (0, 1), got {rate}")
    picked = torch.rand(chunks.shape, generator=generator) < rate
    picked[:, 0] |= ~picked.any(dim=1)  # at least one target per row
    roll = torch.rand(chunks.shape, generator=generator)
    tokens = chunks.clone()
    tokens[picked & (roll < 0.8)] = tok.mask
    random_ids = torch.randint(0, tok.n_bytes, chunks.shape, generator=generator)
    swap = picked & (roll >= 0.8) & (roll < 0.9)
    tokens[swap] = random_ids[swap]
    return Batch(tokens, chunks.clone(), picked)


def random_rate_masked_lm(chunks: torch.Tensor, generator: torch.Generator, tok: ByteTokenizer = ByteTokenizer()) -> Batch:
    """Masked LM at a masking rate drawn uniformly from (0, 1) for each sequence, every
    picked token replaced by ``<mask>``; predict the originals. Trained this way, a
    bidirectional model has seen every fraction of masked tokens, including the almost
    fully masked inputs that generation by unmasking starts from (the objective of masked
    diffusion language models such as LLaDA, without their 1/rate loss weighting).

    Defined in the chapter on encoders vs decoders.
    """
    _check_chunks(chunks)
    rate = torch.rand(len(chunks), 1, generator=generator)
    picked = torch.rand(chunks.shape, generator=generator) < rate
    picked[:, 0] |= ~picked.any(dim=1)  # at least one target per row
    return Batch(chunks.masked_fill(picked, tok.mask), chunks.clone(), picked)


def _random_partition(total: int, parts: int, generator: torch.Generator) -> list[int]:
    """Split ``total`` into ``parts`` positive integers, uniformly at random."""
    cuts = (torch.randperm(total - 1, generator=generator)[: parts - 1] + 1).sort().values.tolist()
    bounds = [0, *cuts, total]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]


def span_corruption(
    chunks: torch.Tensor, arch: str, generator: torch.Generator, rate: float = 0.15, mean_span: float = 3.0,
    tok: ByteTokenizer = ByteTokenizer(),
) -> Batch:
    """T5's span corruption with a fixed number of noise tokens and spans per sequence
    (so every example has the same input and target length).

    Input: the text with each corrupted span replaced by a sentinel. Target: each sentinel
    followed by the span it hides, then a closing sentinel. Defined in the chapter on
    encoders vs decoders.
    """
    _check_arch("span-corruption", arch, ("decoder", "prefix-lm", "encoder-decoder"))
    _check_chunks(chunks)
    for name, value, high in (("rate", rate, 1), ("mean_span", mean_span, math.inf)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < high:
            raise ValueError(f"{name} must be a number in (0, {high}), got {value!r}")
    length = chunks.shape[1]
    n_noise = max(1, round(length * rate))
    n_spans = max(1, round(n_noise / mean_span))
    if n_spans + 1 > N_SENTINELS:
        raise ValueError(f"{n_spans} spans need more than the {N_SENTINELS} sentinels; lower rate or raise mean_span")
    if length - n_noise < n_spans:
        raise ValueError(f"rate {rate} leaves too few kept tokens in length {length}")
    inputs, targets = [], []
    for row in chunks:
        noise = _random_partition(n_noise, n_spans, generator)
        keep = _random_partition(length - n_noise, n_spans, generator)
        inp, tgt, pos = [], [], 0
        for k in range(n_spans):
            inp += row[pos : pos + keep[k]].tolist() + [tok.sentinel(k)]
            pos += keep[k]
            tgt += [tok.sentinel(k)] + row[pos : pos + noise[k]].tolist()
            pos += noise[k]
        tgt.append(tok.sentinel(n_spans))
        inputs.append(inp)
        targets.append(tgt)
    as_tensor = lambda rows: torch.tensor(rows, dtype=chunks.dtype, device=chunks.device)  # noqa: E731
    return _conditional(arch, as_tensor(inputs), as_tensor(targets), tok)
