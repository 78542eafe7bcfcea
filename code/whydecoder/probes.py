"""Probes that read a model's structure off its gradients and symmetries.

Explained in the chapter "Four architectures, one block".
"""

from __future__ import annotations

import numbers

import torch

from .model import Transformer


def dependency_matrix(model: Transformer, n: int, source_len: int | None = None, seed: int = 0) -> torch.Tensor:
    """``D[i, j] = || d h_i / d x_j ||``: how much output position ``i`` depends on input
    embedding ``j``, from the exact Jacobian of a random input.

    For a prefix-LM the first ``source_len`` positions are the prefix; for an
    encoder-decoder the first ``source_len`` positions are the source (outputs: the
    encoder's) and the rest the target (outputs: the decoder's), so the result lines up
    with :func:`whydecoder.masks.visibility`. Defined in the chapter "Four architectures, one block".
    """
    if not hasattr(model, "cfg"):
        raise TypeError(f"model must be a whydecoder Transformer, got {type(model).__name__}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n (the sequence length) must be an int >= 1, got {n!r}")
    arch = model.cfg.arch
    if arch in ("prefix-lm", "encoder-decoder") and not (source_len is not None and 0 < source_len < n):
        raise ValueError(f"arch {arch!r} needs 0 < source_len < n, got source_len={source_len}, n={n}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, model.cfg.d_model, generator=g)
    model.eval()

    def forward(emb: torch.Tensor) -> torch.Tensor:
        if arch == "encoder-decoder":
            memory = model.encoder(emb[:, :source_len])
            target = model.decoder(emb[:, source_len:], None, True, context=memory)
            return torch.cat([memory, target], dim=1)
        prefix = source_len if arch == "prefix-lm" else None
        return model.hidden_states(inputs_embeds=emb, prefix_len=prefix)

    # vectorized: every row of the Jacobian in one batched backward pass (the same numbers)
    jac = torch.autograd.functional.jacobian(forward, x, vectorize=True)  # (1, n, d, 1, n, d)
    return jac[0, :, :, 0].pow(2).sum(dim=(1, 3)).sqrt()


@torch.no_grad()
def permutation_gap(model: Transformer, tokens: torch.Tensor, perm: torch.Tensor, **kwargs) -> float:
    """``max | f(x[perm]) - f(x)[perm] |`` over the logits: zero exactly when the model is
    permutation-equivariant on this input. Defined in the chapter "Four architectures, one block".
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise ValueError(f"tokens must be a (batch, length) tensor, got {type(tokens).__name__} "
                         f"of shape {tuple(getattr(tokens, 'shape', ()))}")
    perm = torch.as_tensor(perm)
    if perm.dim() != 1 or perm.is_floating_point() or perm.dtype == torch.bool:
        raise ValueError(f"perm must be a 1-D sequence of integer positions, got {perm.dtype} of shape {tuple(perm.shape)}")
    if sorted(perm.tolist()) != list(range(tokens.shape[1])):
        raise ValueError(f"perm {perm.tolist()} is not a permutation of range({tokens.shape[1]})")
    model.eval()
    return (model(tokens[:, perm], **kwargs) - model(tokens, **kwargs)[:, perm]).abs().max().item()
