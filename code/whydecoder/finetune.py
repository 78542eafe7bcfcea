"""Finetuning a pretrained decoder three ways: every weight (full), low-rank adapters on
frozen weights (LoRA, Hu et al. 2021) and low-rank adapters on frozen weights stored in
4 bits (QLoRA, Dettmers et al. 2023).

LoRA leaves a linear layer's weight ``W`` frozen and learns ``W + (alpha / r) B A`` with
``A`` of shape ``(r, d_in)`` and ``B`` ``(d_out, r)``, ``B`` starting at zero: the model
starts as the pretrained one, and only ``r (d_in + d_out)`` numbers per layer train.
QLoRA stores the frozen ``W`` as 4-bit NormalFloat (NF4) codes with one scale per block of
64 weights and dequantizes it on the fly. The adapters come from ``peft``, the 4-bit layers
from ``bitsandbytes`` (its CPU path), applied to our own :class:`~whydecoder.model.Transformer`.

Explained in the chapter "The routes after the plain decoder" (efficiency route).
"""

from __future__ import annotations

import gc
import warnings

import torch
from torch import nn

#: The linear layers of a block that get adapters (and 4-bit weights): attention's four
#: projections and the MLP's three, as the QLoRA paper adapts every linear layer.
TARGETS = ("q", "k", "v", "out", "gate", "up", "down")
METHODS = ("full", "lora", "qlora")


def _check_targets(targets) -> None:
    if isinstance(targets, (str, bytes)) or not isinstance(targets, (list, tuple, set, frozenset)) or not targets \
            or not all(isinstance(t, str) for t in targets):
        raise ValueError(f"targets must be a non-empty list of layer names such as {TARGETS}, got {targets!r}")


def _check_rank_alpha(rank, alpha) -> None:
    for name, value in (("rank", rank), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


#: The block sizes bitsandbytes' 4-bit quantization takes.
BLOCKS = (32, 64, 128, 256, 512, 1024, 2048, 4096)


def quantize_4bit(model: nn.Module, targets=TARGETS, block: int = 64) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` named in ``targets`` by a ``bitsandbytes``
    4-bit NF4 layer holding the same weight (frozen), computing in float32. Returns the model.

    Defined in the chapter "The routes after the plain decoder"."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    _check_targets(targets)
    if isinstance(block, bool) or not isinstance(block, int) or block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    import bitsandbytes as bnb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bitsandbytes' notice that an optional CPU kernel package is absent
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if name in targets and type(child) is nn.Linear:
                    layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                              compute_dtype=torch.float32, quant_type="nf4")
                    layer.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False,
                                                     quant_type="nf4", blocksize=block)
                    if child.bias is not None:
                        layer.bias = nn.Parameter(child.bias.data.clone(), requires_grad=False)
                    setattr(module, name, layer.to("cpu"))  # moving to a device is what quantizes
    return model


def with_adapters(model: nn.Module, rank: int, alpha: int, targets=TARGETS) -> nn.Module:
    """``model`` with LoRA adapters of ``rank`` on every layer named in ``targets``, every
    other weight frozen (``peft``); returns our model itself, its layers wrapped in place.

    Defined in the chapter "The routes after the plain decoder"."""
    _check_rank_alpha(rank, alpha)
    _check_targets(targets)
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none")
    return get_peft_model(model, config).base_model.model


def prepare(model: nn.Module, method: str, rank: int = 8, alpha: int = 16) -> nn.Module:
    """The model ready to finetune by ``method``: ``"full"`` (every weight trains),
    ``"lora"`` or ``"qlora"`` (4-bit frozen weights, then adapters). Defined in the chapter
    "The routes after the plain decoder". Every argument is checked before the model is changed."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if method != "full":
        _check_rank_alpha(rank, alpha)
    if method == "full":
        return model
    if method == "qlora":
        quantize_4bit(model)
        gc.collect()
    return with_adapters(model, rank, alpha)


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that get gradients. Defined in the chapter "The routes after the plain decoder"."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer as stored (4-bit codes as their packed bytes,
    plus the quantization scales): what the model occupies before any training state.
    Defined in the chapter "The routes after the plain decoder"."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
        state = getattr(t, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
    return total
