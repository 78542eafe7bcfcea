"""One transformer, four architectures.

Encoder-only, decoder-only, prefix-LM and encoder-decoder are built here from the same
:class:`Block`; they differ only in the self-attention mask (see :mod:`whydecoder.masks`)
and in whether a second, bidirectional stack feeds the first through cross-attention.

Explained in the chapter "Four architectures, one block".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, KVCache
from .config import ModelConfig
from .experts import MoE
from .masks import attention_mask, prefix_masks
from .positions import AbsolutePositions
from .retention import Retention

_ACTIVATIONS = {"gelu": lambda: nn.GELU(), "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": lambda: nn.ReLU(),
                "silu": lambda: nn.SiLU()}


def make_norm(cfg: ModelConfig) -> nn.Module:
    """The normalisation layer ``cfg`` asks for: LayerNorm (GPT-2, BERT) or RMSNorm (Llama).

    Defined in the chapter "Four architectures, one block".
    """
    if cfg.norm_layer == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases. Retention's query, key
    and value projections then start at ``1 / sqrt(d)`` (see :class:`Retention`)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, Retention):  # applied after its children: this overrides their 0.02
        module.reset_projections()


class MLP(nn.Module):
    """The position-wise feed-forward sublayer: up-project, activation, down-project.

    With ``cfg.gated_mlp`` (Llama's SwiGLU with ``activation="silu"``) a second projection
    gates the first: ``down(act(gate(x)) * up(x))``.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias) if cfg.gated_mlp else None
        self.up = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.act = _ACTIVATIONS[cfg.activation]()
        self.down = nn.Linear(cfg.ff_dim, cfg.d_model, bias=cfg.bias)

    def forward(self, x):
        if self.gate is not None:
            return self.down(self.act(self.gate(x)) * self.up(x))
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    """Self-attention, optional cross-attention, MLP; each with a residual and a norm.

    ``norm="pre"`` (GPT-2): ``x + f(norm(x))``; ``norm="post"`` (BERT, the original
    Transformer): ``norm(x + f(x))``. ``shared`` reuses another block's self-attention, MLP
    and norms (the encoder-decoder "shared" variant). ``cfg.mixer`` and ``cfg.n_experts``
    swap in retention for self-attention and a mixture of experts for the MLP.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, cfg: ModelConfig, cross: bool = False, shared: "Block | None" = None):
        super().__init__()
        self.pre = cfg.norm == "pre"
        if shared is None:
            self.attn = Retention(cfg) if cfg.mixer == "retention" else Attention(cfg)
            self.mlp = MoE(cfg, lambda: MLP(cfg)) if cfg.n_experts else MLP(cfg)
            self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        else:
            self.attn, self.mlp, self.norm1, self.norm2 = shared.attn, shared.mlp, shared.norm1, shared.norm2
        if cross:
            self.cross_attn = Attention(cfg, cross=True)
            self.norm_cross = make_norm(cfg)
        else:
            self.cross_attn = None

    def _residual(self, x, norm, f):
        return x + f(norm(x)) if self.pre else norm(x + f(x))

    def forward(self, x, mask=None, is_causal=False, start=0, context=None, cache=None):
        x = self._residual(x, self.norm1, lambda h: self.attn(h, mask, is_causal, start, cache=cache))
        if self.cross_attn is not None:
            x = self._residual(x, self.norm_cross, lambda h: self.cross_attn(h, start=start, context=context,
                                                                            cache=cache))
        return self._residual(x, self.norm2, self.mlp)


class Stack(nn.Module):
    """Positions, a list of blocks and the final norm: an encoder or a decoder.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, cfg: ModelConfig, n_layers: int, cross: bool = False, shared: "Stack | None" = None):
        super().__init__()
        self.positions = AbsolutePositions(cfg.position, cfg.max_len, cfg.d_model) if cfg.position in ("learned", "sinusoidal") else None
        self.embed_norm = make_norm(cfg) if cfg.embed_norm else None
        self.blocks = nn.ModuleList(
            Block(cfg, cross=cross, shared=None if shared is None else shared.blocks[i]) for i in range(n_layers)
        )
        self.final_norm = make_norm(cfg) if cfg.final_norm else None

    def forward(self, x, mask=None, is_causal=False, start=0, context=None, cache: KVCache | None = None):
        if self.positions is not None:
            x = self.positions(x, start)
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, is_causal, start, context, None if cache is None else cache.layers[i])
        return x if self.final_norm is None else self.final_norm(x)


class Transformer(nn.Module):
    """The model family: ``cfg.arch`` in ``encoder``, ``decoder``, ``prefix-lm``, ``encoder-decoder``.

    ``model(tokens)`` returns logits ``(B, T, vocab)``. Extra inputs by architecture:

    - ``prefix-lm``: ``prefix_len`` (an int, or one length per example as a 1-D tensor):
      the first ``prefix_len`` positions attend to each other bidirectionally.
    - ``encoder-decoder``: ``source`` tokens ``(B, S)`` for the encoder; ``tokens`` feed the
      decoder.
    - ``cache``: a :class:`~whydecoder.attention.KVCache` from :meth:`new_cache`; ``tokens``
      are then the new positions after those already cached (not for ``encoder``). Another
      model's cache is refused; a prefix-LM's cache remembers the ``prefix_len`` it was
      filled under and refuses to be continued under another.

    Defined in the chapter "Four architectures, one block".
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.arch == "encoder-decoder":
            self.encoder = Stack(cfg, cfg.encoder_layers)
            self.decoder = Stack(cfg, cfg.n_layers, cross=True, shared=self.encoder if cfg.share_encoder_decoder else None)
        else:
            self.encoder = None
            self.decoder = Stack(cfg, cfg.n_layers)
        if cfg.head_transform:  # BERT's masked-LM head: dense, activation, LayerNorm
            self.head_transform = nn.Sequential(
                nn.Linear(cfg.d_model, cfg.d_model), _ACTIVATIONS[cfg.activation](), nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
            )
        else:
            self.head_transform = None
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.head_bias)
        self.apply(_init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    # ------------------------------------------------------------------ checks
    def _check_tokens(self, tokens: torch.Tensor, name: str, start: int = 0) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            raise ValueError(f"{name} must be a (batch, length) tensor, got {getattr(tokens, 'shape', type(tokens))}")
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
        if tokens.numel():
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= self.cfg.vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(f"token id {bad} in {name} is outside the vocabulary [0, {self.cfg.vocab_size})")
        if tokens.device != self.embed.weight.device:
            raise ValueError(f"{name} are on {tokens.device} but the model is on {self.embed.weight.device}")
        end = start + tokens.shape[1]
        if end > self.cfg.max_len:
            raise ValueError(f"sequence of length {end} in {name} exceeds the model's max_len {self.cfg.max_len}")

    def _check_embeds(self, embeds, name: str, start: int = 0) -> None:
        if not isinstance(embeds, torch.Tensor) or embeds.dim() != 3 or embeds.shape[-1] != self.cfg.d_model:
            raise ValueError(f"{name} must be a (batch, length, {self.cfg.d_model}) tensor, got "
                             f"{tuple(getattr(embeds, 'shape', ())) or type(embeds).__name__}")
        if not embeds.is_floating_point():
            raise ValueError(f"{name} must hold floating-point vectors, got dtype {embeds.dtype}")
        if start + embeds.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence of length {start + embeds.shape[1]} in {name} exceeds the model's max_len "
                             f"{self.cfg.max_len}")

    def _check_cache(self, cache, batch: int, device) -> None:
        """Refuse a cache this model cannot continue: not a cache, another model's (another
        config, depth, mixer or head layout), or one holding another batch or device."""
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache from model.new_cache(), got {type(cache).__name__}")
        owner = cache.model_config
        if owner is not None and owner is not self.cfg and owner != self.cfg:
            diff = {k: (v, getattr(self.cfg, k)) for k, v in owner.to_dict().items() if getattr(self.cfg, k) != v}
            raise ValueError(f"the cache was made by another model (cache's config vs this model's: {diff})")
        if len(cache.layers) != len(self.decoder.blocks):
            raise ValueError(f"the cache has {len(cache.layers)} layers but the model {len(self.decoder.blocks)}: "
                             "it belongs to another model")
        first = cache.layers[0]
        retention = self.cfg.mixer == "retention"
        if (first.k if retention else first.state) is not None:
            raise ValueError(f"the cache holds {'keys and values' if retention else 'a recurrent state'}, but this "
                             f"model's mixer is {self.cfg.mixer!r}: it belongs to another model")
        held = first.state if retention else first.k
        if held is None:
            return
        if held.shape[0] != batch:
            raise ValueError(f"the cache holds a batch of {held.shape[0]} but the new tokens have batch {batch}")
        heads, width = (self.cfg.n_heads, self.cfg.head_dim) if retention else (self.cfg.kv_heads, self.cfg.head_dim)
        if held.shape[1] != heads or held.shape[-1] != width:
            raise ValueError(f"the cache's tensors {tuple(held.shape)} do not fit this model ({heads} heads of "
                             f"{width}): it belongs to another model")
        if held.device != device:
            raise ValueError(f"the cache is on {held.device} but the input is on {device}")

    def _remember_prefix(self, cache: KVCache, prefix_len, n_past: int) -> None:
        """Record the prefix a prefix-LM cache is filled under; refuse continuing it under another."""
        if torch.is_tensor(prefix_len):
            values = prefix_len.reshape(-1).tolist()
            prefix = values[0] if len(set(values)) == 1 else tuple(values)
        else:
            prefix = prefix_len
        if n_past == 0 or cache.prefix_len is None:
            cache.prefix_len = prefix
        elif prefix != cache.prefix_len:
            raise ValueError(
                f"the cache was filled with prefix_len {cache.prefix_len}, not prefix_len {prefix}: its positions "
                f"were computed under the other prefix (a stale cache); pass prefix_len={cache.prefix_len} or "
                "re-encode from scratch"
            )

    def new_cache(self) -> KVCache:
        """An empty KV cache for this model. Defined in the chapter "Efficiency: the KV cache"."""
        if self.cfg.arch == "encoder":
            raise ValueError("arch 'encoder' has no KV cache: every position attends to every other")
        cache = KVCache(len(self.decoder.blocks))
        cache.model_config = self.cfg
        return cache

    # ------------------------------------------------------------------ masks
    def _self_mask(self, n_new: int, n_past: int, prefix_len, device):
        """``(mask, is_causal)`` for ``n_new`` positions after ``n_past`` cached ones."""
        kind = self.cfg.self_mask  # "bidirectional", "causal" or "prefix" (from arch)
        if kind == "bidirectional":
            return None, False  # encoder: every position reads every position
        if kind == "causal" and n_past == 0:
            return None, True  # decoder: the fused kernel builds the triangle
        if kind == "causal" and n_new == 1:
            return None, False  # one new position reads every cached one and itself
        if kind == "prefix" and torch.is_tensor(prefix_len) and prefix_len.dim() > 0:
            return self._batched_prefix_mask(prefix_len, n_new, n_past, device), False
        prefix = self._checked_prefix(prefix_len, n_past) if kind == "prefix" else None
        full = attention_mask(kind, n_past + n_new, prefix, device)
        return full[n_past:], False  # the rows of the new positions

    @staticmethod
    def _batched_prefix_mask(prefix_len: torch.Tensor, n_new: int, n_past: int, device):
        if prefix_len.is_floating_point() or prefix_len.is_complex() or prefix_len.dtype == torch.bool:
            raise ValueError(f"prefix_len must hold integers, got a tensor of {prefix_len.dtype}")
        if n_past:
            raise ValueError("a per-example prefix_len tensor cannot be used with a cache; pass an int")
        return prefix_masks(prefix_len.to(device), n_new)

    @staticmethod
    def _checked_prefix(prefix_len, n_past: int) -> int:
        if prefix_len is None:
            raise ValueError("arch 'prefix-lm' needs prefix_len")
        if torch.is_tensor(prefix_len):
            if prefix_len.is_floating_point() or prefix_len.dtype == torch.bool:
                raise ValueError(f"prefix_len must be an integer, got a tensor of {prefix_len.dtype}")
            prefix_len = int(prefix_len)
        if isinstance(prefix_len, bool) or not isinstance(prefix_len, int) or prefix_len < 0:
            raise ValueError(f"prefix_len must be an integer >= 0, got {prefix_len!r}")
        if n_past and prefix_len > n_past:
            raise ValueError(
                f"prefix_len {prefix_len} reaches past the {n_past} cached positions: the cached prefix "
                "positions would have to see the new ones (a stale cache); re-encode from scratch"
            )
        return prefix_len

    # ------------------------------------------------------------------ forward
    def encode(self, source: torch.Tensor | None = None, source_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Run the encoder stack of an encoder-decoder on tokens or embeddings; ``(B, S, d)``."""
        if self.encoder is None:
            raise ValueError(f"arch {self.cfg.arch!r} has no separate encoder")
        if source_embeds is None:
            self._check_tokens(source, "source")
            source_embeds = self.embed(source)
        else:
            self._check_embeds(source_embeds, "source_embeds")
        return self.encoder(source_embeds)

    def hidden_states(self, tokens=None, *, prefix_len=None, source=None, cache=None, inputs_embeds=None,
                      source_embeds=None):
        """The main stack's output ``(B, T, d)`` before the head; see the class docstring."""
        if cache is not None and self.cfg.arch == "encoder":
            raise ValueError("arch 'encoder' has no KV cache")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache from model.new_cache(), got {type(cache).__name__}")
        n_past = 0 if cache is None else cache.length
        if inputs_embeds is None:
            self._check_tokens(tokens, "tokens", start=n_past)
            x = self.embed(tokens)
        else:
            self._check_embeds(inputs_embeds, "inputs_embeds", start=n_past)
            x = inputs_embeds
        if cache is not None:
            self._check_cache(cache, x.shape[0], x.device)
        if prefix_len is not None and self.cfg.arch != "prefix-lm":
            raise ValueError(f"prefix_len only applies to arch 'prefix-lm', not {self.cfg.arch!r}")
        if torch.is_tensor(prefix_len) and prefix_len.dim() == 1 and prefix_len.shape[0] != x.shape[0]:
            raise ValueError(f"prefix_len holds {prefix_len.shape[0]} lengths but tokens have batch {x.shape[0]}")
        if (source is not None or source_embeds is not None) and self.cfg.arch != "encoder-decoder":
            raise ValueError(f"source only applies to arch 'encoder-decoder', not {self.cfg.arch!r}")
        context = None
        if self.cfg.arch == "encoder-decoder" and cache is not None and cache.has_cross and (
                source is not None or source_embeds is not None):
            raise ValueError("the cache already holds the encoded source (cross-attention keys and values): pass "
                             "source with the first call only, or start a new cache for another source")
        if self.cfg.arch == "encoder-decoder" and not (cache is not None and cache.has_cross):
            if source is None and source_embeds is None:
                raise ValueError("arch 'encoder-decoder' needs source tokens")
            given = source if source is not None else source_embeds
            if not isinstance(given, torch.Tensor) or given.dim() < 2:
                name = "source" if source is not None else "source_embeds"
                raise ValueError(f"{name} must be a (batch, length) tensor of token ids (or (batch, length, d) "
                                 f"embeddings), got {getattr(given, 'shape', type(given).__name__)}")
            if given.shape[0] != x.shape[0]:
                raise ValueError(f"source has batch {given.shape[0]} but tokens have batch {x.shape[0]}")
            context = self.encode(source, source_embeds)
        offset = self._source_positions(context, cache)
        if offset and offset + n_past + x.shape[1] > self.cfg.max_len:
            raise ValueError(f"source ({offset}) and target ({n_past} cached + {x.shape[1]} new) positions run on "
                             f"past the model's max_len {self.cfg.max_len} (cross_positions 'continued')")
        mask, is_causal = self._self_mask(x.shape[1], n_past, prefix_len, x.device)
        if cache is not None and self.cfg.arch == "prefix-lm":
            self._remember_prefix(cache, prefix_len, n_past)
        return self.decoder(x, mask, is_causal, start=offset + n_past, context=context, cache=cache)

    def _source_positions(self, context, cache) -> int:
        """Where the target's positions start: after the source's with continued positions
        (the source's length, from the encoder's output or the cached cross-attention keys),
        else at 0."""
        if self.cfg.cross_positions != "continued":
            return 0
        if context is not None:
            return context.shape[1]
        return cache.layers[0].cross_k.shape[2]

    def forward(self, tokens=None, *, prefix_len=None, source=None, cache=None, inputs_embeds=None):
        h = self.hidden_states(tokens, prefix_len=prefix_len, source=source, cache=cache, inputs_embeds=inputs_embeds)
        if self.head_transform is not None:
            h = self.head_transform(h)
        return self.lm_head(h)


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the positions where ``loss_mask`` is True (all if ``None``);
    targets of ``-100`` (PyTorch's ignore index) are left out of the mean.

    Defined in the chapter "Four architectures, one block".
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits (batch, length, vocab) {tuple(logits.shape)} and targets (batch, length) "
                         f"{tuple(targets.shape)} do not match")
    if loss_mask is not None and loss_mask.shape != targets.shape:
        raise ValueError(f"loss_mask {tuple(loss_mask.shape)} does not match targets {tuple(targets.shape)}")
    bad = (targets >= logits.shape[-1]) | ((targets < 0) & (targets != -100))
    if bad.any():
        raise ValueError(f"target id {int(targets[bad][0])} is outside the vocabulary [0, {logits.shape[-1]}) "
                         "and is not the ignore index -100")
    losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none", ignore_index=-100)
    weights = (targets.flatten() != -100).to(losses.dtype)
    if loss_mask is not None:
        weights = weights * loss_mask.flatten().to(losses.dtype)
    if weights.sum() == 0:
        raise ValueError("loss_mask and the targets select no position")
    return (losses * weights).sum() / weights.sum()
