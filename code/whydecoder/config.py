"""The model configuration: one dataclass for all four architectures.

Explained in the chapter "Four architectures, one block".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ARCHS = ("encoder", "decoder", "prefix-lm", "encoder-decoder")
POSITIONS = ("learned", "sinusoidal", "rope", "none")
#: How an encoder-decoder's decoder knows where the source bytes are: ``"none"`` (its
#: cross-attention sees the encoder's outputs as a set, the book's first recipe) or
#: ``"continued"`` (RedLLM's: rotary positions run on from the source into the target, and
#: cross-attention rotates queries and keys at those positions).
CROSS_POSITIONS = ("none", "continued")
NORMS = ("pre", "post")
NORM_LAYERS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
MIXERS = ("attention", "retention")

# The self-attention mask each architecture uses (the encoder-decoder's decoder is causal,
# its encoder bidirectional).
ARCH_MASK = {"encoder": "bidirectional", "decoder": "causal", "prefix-lm": "prefix", "encoder-decoder": "causal"}


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a :class:`whydecoder.model.Transformer`.

    ``arch`` picks the wiring: ``"encoder"`` (bidirectional, masked-LM head),
    ``"decoder"`` (causal LM), ``"prefix-lm"`` (non-causal decoder: bidirectional over a
    prefix, causal after it) or ``"encoder-decoder"`` (bidirectional encoder, causal
    decoder with cross-attention). ``n_layers`` is the depth of the (decoder) stack,
    ``n_encoder_layers`` the encoder's (defaults to ``n_layers``); ``share_encoder_decoder``
    makes decoder layer ``i`` reuse the self-attention and MLP weights of encoder layer ``i``
    (T5's "shared" variant; the cross-attention stays separate). ``cross_positions``
    (:data:`CROSS_POSITIONS`): with ``"continued"`` (needs ``position="rope"``) the
    decoder's positions continue after the source's, and cross-attention is rotary too, so
    the decoder can tell which source byte is last (Zhang et al. 2025, RedLLM).

    ``d_head`` defaults to ``d_model // n_heads``; set it to decouple the head size from the
    width (Bhojanapalli et al. 2020). ``n_kv_heads`` < ``n_heads`` gives grouped-query
    attention. ``norm``/``activation``/``embed_norm``/``final_norm``/``head_transform``/
    ``norm_eps`` exist so that GPT-2 (pre-LN) and BERT (post-LN) load exactly;
    ``norm_layer="rmsnorm"``, ``gated_mlp`` (a SiLU-gated MLP with ``activation="silu"``),
    ``rope_base`` and ``bias=False`` so that the Llama family (SmolLM2) does.

    The architecture route (chapter "The routes after the plain decoder"): ``mixer=
    "retention"`` swaps self-attention for RetNet-style retention (decoder only;
    :mod:`whydecoder.retention`), and ``n_experts`` makes every MLP a mixture of that many
    experts of width ``d_ff``, ``expert_top_k`` of them per token (:mod:`whydecoder.experts`).

    Defined in the chapter "Four architectures, one block".
    """

    arch: str = "decoder"
    vocab_size: int = 260
    max_len: int = 128
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_encoder_layers: int | None = None
    d_head: int | None = None
    n_kv_heads: int | None = None
    d_ff: int | None = None
    position: str = "learned"
    rope_base: float = 10000.0
    norm: str = "pre"
    norm_eps: float = 1e-5
    norm_layer: str = "layernorm"
    activation: str = "gelu"
    gated_mlp: bool = False
    bias: bool = True
    embed_norm: bool = False
    final_norm: bool = True
    head_transform: bool = False
    head_bias: bool = False
    tie_embeddings: bool = True
    share_encoder_decoder: bool = False
    cross_positions: str = "none"
    mixer: str = "attention"
    n_experts: int | None = None
    expert_top_k: int = 2

    def __post_init__(self):
        def check_choice(name, value, choices):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")

        check_choice("arch", self.arch, ARCHS)
        check_choice("position", self.position, POSITIONS)
        check_choice("norm", self.norm, NORMS)
        check_choice("norm_layer", self.norm_layer, NORM_LAYERS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("mixer", self.mixer, MIXERS)
        check_choice("cross_positions", self.cross_positions, CROSS_POSITIONS)
        if self.cross_positions != "none" and (self.arch != "encoder-decoder" or self.position != "rope"):
            raise ValueError(f"cross_positions {self.cross_positions!r} needs arch 'encoder-decoder' and position "
                             f"'rope', got arch {self.arch!r} and position {self.position!r}")
        for name in ("vocab_size", "max_len", "d_model", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("n_encoder_layers", "d_head", "n_kv_heads", "d_ff", "n_experts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        for name in ("rope_base", "norm_eps"):  # NaN, zero or negative values gave NaN or garbage logits
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.position == "rope" and self.rope_base <= 1:
            raise ValueError(f"rope_base must be > 1 for RoPE frequencies to fall with the dimension, got {self.rope_base!r}")
        for name in ("bias", "embed_norm", "final_norm", "head_transform", "head_bias", "tie_embeddings",
                     "share_encoder_decoder", "gated_mlp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.expert_top_k, bool) or not isinstance(self.expert_top_k, int) or self.expert_top_k < 1:
            raise ValueError(f"expert_top_k must be a positive int, got {self.expert_top_k!r}")
        if self.n_experts is not None and self.expert_top_k > self.n_experts:
            raise ValueError(f"expert_top_k={self.expert_top_k} exceeds n_experts={self.n_experts}")
        if self.mixer == "retention" and self.arch != "decoder":
            raise ValueError(f"mixer 'retention' is causal by construction: it needs arch 'decoder', not {self.arch!r}")
        if self.mixer == "retention" and self.n_kv_heads not in (None, self.n_heads):
            raise ValueError(f"mixer 'retention' has no grouped key/value heads; got n_kv_heads={self.n_kv_heads}")
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "pick another n_heads or set d_head explicitly"
            )
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.kv_heads}")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head size, got d_head={self.head_dim}")
        if self.arch != "encoder-decoder" and (self.n_encoder_layers is not None or self.share_encoder_decoder):
            raise ValueError(f"n_encoder_layers/share_encoder_decoder only apply to 'encoder-decoder', not {self.arch!r}")
        if self.share_encoder_decoder and self.encoder_layers != self.n_layers:
            raise ValueError(
                f"share_encoder_decoder needs equal depths, got n_encoder_layers={self.encoder_layers} "
                f"and n_layers={self.n_layers}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def ff_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def encoder_layers(self) -> int:
        return self.n_encoder_layers if self.n_encoder_layers is not None else self.n_layers

    @property
    def self_mask(self) -> str:
        """The mask kind of the main stack's self-attention."""
        return ARCH_MASK[self.arch]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
