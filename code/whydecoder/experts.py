"""A mixture-of-experts MLP: top-k routing with a load-balancing loss.

A router scores ``n_experts`` MLPs for each token; only the ``top_k`` best run, and their
outputs are summed with weights from a softmax over the chosen scores (Mixtral, Jiang et
al. 2024; the idea from Shazeer et al. 2017). Parameters grow with the number of experts;
the compute per token grows only with ``top_k``: *total* and *active* parameters part.

Left alone, a router sends most tokens to a few experts. Switch Transformer's auxiliary
loss (Fedus et al. 2022) pushes towards balance: ``n_experts * sum_e f_e * P_e``, with
``f_e`` the share of routed slots that went to expert ``e`` and ``P_e`` its mean router
probability; it is 1 when both are uniform. Explained in the chapter "The routes after
the plain decoder".
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .config import ModelConfig


class MoE(nn.Module):
    """``n_experts`` copies of the MLP ``make_expert()`` and a linear router; each token
    goes to its ``top_k`` experts. After a forward pass ``aux_loss`` holds the
    load-balancing loss of that pass (0 for a pass over no token). Defined in the chapter "The routes after the plain decoder".
    """

    def __init__(self, cfg: ModelConfig, make_expert: Callable[[], nn.Module]):
        super().__init__()
        self.n_experts, self.top_k = cfg.n_experts, cfg.expert_top_k
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(make_expert() for _ in range(cfg.n_experts))
        self.aux_loss: torch.Tensor | None = None
        self.load: torch.Tensor | None = None  # share of routed slots per expert, last pass

    def route(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router probabilities ``(N, E)``, the chosen experts ``(N, k)`` and their weights."""
        logits = self.router(flat)
        chosen_logits, chosen = logits.topk(self.top_k, dim=-1)
        return logits.softmax(dim=-1), chosen, chosen_logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.router.in_features:
            raise ValueError(f"x must be (..., {self.router.in_features}), got shape {tuple(x.shape)}")
        flat = x.reshape(-1, x.shape[-1])
        if not flat.shape[0]:  # no token: nothing routed, nothing to balance
            self.load = flat.new_zeros(self.n_experts)
            self.aux_loss = self.router(flat).sum()  # 0, on the router's graph like a loss of tokens
            return torch.zeros_like(x)
        probs, chosen, weights = self.route(flat)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, weights[rows, slot, None] * expert(flat[rows]))
        share = torch.bincount(chosen.flatten(), minlength=self.n_experts).to(flat.dtype) / chosen.numel()
        self.load = share.detach()
        self.aux_loss = self.n_experts * (share * probs.mean(dim=0)).sum()
        return out.view_as(x)


def moe_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The same layer token by token, every expert run densely and the unchosen ones
    weighted zero: the reference the tests hold :class:`MoE` to.

    Defined in the chapter "The routes after the plain decoder".
    """
    flat = x.reshape(-1, x.shape[-1])
    if not flat.shape[0]:
        return torch.zeros_like(x)
    out = []
    for token in flat:
        logits = moe.router(token)
        top = logits.topk(moe.top_k).indices
        weight = torch.zeros_like(logits)
        weight[top] = logits[top].softmax(dim=-1)
        out.append(sum(weight[e] * expert(token) for e, expert in enumerate(moe.experts)))
    return torch.stack(out).view_as(x)


def aux_loss(model: nn.Module) -> torch.Tensor:
    """The sum of the load-balancing losses of every :class:`MoE` layer in ``model`` after
    its last forward pass (0 when it has none). Defined in the chapter "The routes after
    the plain decoder"."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoE) and m.aux_loss is not None]
    return torch.stack(losses).sum() if losses else torch.zeros(())
