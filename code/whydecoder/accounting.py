"""Analytic parameter counts, FLOPs and KV-cache bytes for a :class:`ModelConfig`.

Each formula is checked in the tests against a measurement: the counted parameters of a
built model, PyTorch's FLOP counter, and the bytes held by a real cache.

FLOPs count matrix multiplications only (2 per multiply-add), as Kaplan et al. 2020 do;
the attention scores are counted densely over every key a query is handed (a fused
causal kernel may skip the masked half; the formula counts what the plain computation
does). Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

from .config import ModelConfig


def _check_len(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def _check_cfg(cfg) -> None:
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")


def _check_source_len(cfg: ModelConfig, source_len: int) -> None:
    if source_len and cfg.arch != "encoder-decoder":
        raise ValueError(f"source_len={source_len} only applies to arch 'encoder-decoder': arch {cfg.arch!r} has no "
                         "encoder (count the source as part of the tokens)")
    if source_len > cfg.max_len:
        raise ValueError(f"source_len={source_len} exceeds the model's max_len {cfg.max_len}")


def _attn_params(cfg: ModelConfig) -> int:
    d, q, kv = cfg.d_model, cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    weights = d * q + 2 * d * kv + q * d
    return weights + (q + 2 * kv + d if cfg.bias else 0)


def _mlp_params(cfg: ModelConfig, active: bool = False) -> int:
    d, f, n = cfg.d_model, cfg.ff_dim, 3 if cfg.gated_mlp else 2  # the gate is a third matrix
    one = n * d * f + ((n - 1) * f + d if cfg.bias else 0)
    if not cfg.n_experts:
        return one
    # a mixture of experts: a router (d x E, no bias) and E experts, top_k of them run per token
    return d * cfg.n_experts + one * (cfg.expert_top_k if active else cfg.n_experts)


def parameter_count(cfg: ModelConfig, embeddings: bool = True, active: bool = False) -> int:
    """Number of trainable parameters of ``Transformer(cfg)``, by formula.

    ``embeddings=False`` leaves out the token and position tables (Kaplan et al.'s N).
    ``active=True`` counts a mixture of experts' ``expert_top_k`` experts only (the
    parameters one token runs through); retention has attention's four projections.
    Defined in the chapter "Efficiency: the KV cache".
    """
    _check_cfg(cfg)
    d = cfg.d_model
    norm = d if cfg.norm_layer == "rmsnorm" else 2 * d  # RMSNorm has a scale and no shift
    block = _attn_params(cfg) + _mlp_params(cfg, active) + 2 * norm
    stacks = [cfg.n_layers]
    total = cfg.n_layers * block
    if cfg.arch == "encoder-decoder":
        stacks.append(cfg.encoder_layers)
        total += cfg.n_layers * (_attn_params(cfg) + norm)  # cross-attention in every decoder block
        if not cfg.share_encoder_decoder:
            total += cfg.encoder_layers * block
    for _ in stacks:
        total += (norm if cfg.embed_norm else 0) + (norm if cfg.final_norm else 0)
        if embeddings and cfg.position == "learned":
            total += cfg.max_len * d
    if cfg.head_transform:
        total += d * d + d + 2 * d  # BERT's head: dense and a LayerNorm
    if cfg.head_bias:
        total += cfg.vocab_size
    if embeddings:
        total += cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    elif not cfg.tie_embeddings:
        total += cfg.vocab_size * d  # an untied output matrix is not an embedding
    return total


def forward_flops(cfg: ModelConfig, n_new: int, n_past: int = 0, source_len: int = 0, encode: bool = True) -> int:
    """Matmul FLOPs of one forward pass over ``n_new`` tokens after ``n_past`` cached ones.

    Encoder-decoder: with ``encode=True`` the encoder runs over ``source_len`` tokens and
    the cross-attention keys/values are projected; with ``encode=False`` (a cached decode
    step) only the decoder runs, attending to ``source_len`` cached keys. Refuses what the
    model would refuse: ``n_past + n_new`` beyond ``cfg.max_len``, a source for a model
    without an encoder, cached positions for an encoder.
    Defined in the chapter "Efficiency: the KV cache".
    """
    _check_cfg(cfg)
    for name, value in (("n_new", n_new), ("n_past", n_past), ("source_len", source_len)):
        _check_len(name, value)
    if n_past + n_new > cfg.max_len:
        raise ValueError(f"n_past + n_new = {n_past} + {n_new} = {n_past + n_new} exceeds the model's max_len "
                         f"{cfg.max_len}")
    if n_past and cfg.arch == "encoder":
        raise ValueError(f"n_past={n_past}: arch 'encoder' has no KV cache")
    _check_source_len(cfg, source_len)
    d, h, dh, hk = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.kv_heads
    proj = 2 * d * (h * dh + 2 * hk * dh) + 2 * h * dh * d  # q, k, v, out per token
    mlp = (6 if cfg.gated_mlp else 4) * d * cfg.ff_dim

    def stack(n_layers: int, n_tokens: int, n_keys: int) -> int:
        return n_layers * n_tokens * (proj + mlp + 4 * h * dh * n_keys)

    total = stack(cfg.n_layers, n_new, n_past + n_new)
    if cfg.arch == "encoder-decoder":
        total += cfg.n_layers * n_new * (2 * d * h * dh + 2 * h * dh * d + 4 * h * dh * source_len)
        if encode:
            total += stack(cfg.encoder_layers, source_len, source_len)
            total += cfg.n_layers * source_len * 4 * d * hk * dh  # cross k, v projections
    head = 2 * d * cfg.vocab_size + (2 * d * d if cfg.head_transform else 0)
    return total + n_new * head


def generation_flops(cfg: ModelConfig, prompt_len: int, new_tokens: int, use_cache: bool, source_len: int = 0) -> int:
    """Total matmul FLOPs to generate ``new_tokens`` after a ``prompt_len`` prompt, as
    :func:`whydecoder.generate.generate` does it (with the cache: one prefill then one token
    per step; without: the whole sequence every step). Defined in the chapter "Efficiency".
    """
    _check_cfg(cfg)
    _check_len("prompt_len", prompt_len)
    _check_len("new_tokens", new_tokens)
    if prompt_len < 1:
        raise ValueError(f"prompt_len must be >= 1 (generation starts from at least one token), got {prompt_len}")
    if prompt_len + new_tokens > cfg.max_len:
        raise ValueError(f"prompt_len + new_tokens = {prompt_len + new_tokens} exceeds the model's max_len "
                         f"{cfg.max_len}")
    if use_cache:
        total = forward_flops(cfg, prompt_len, 0, source_len, encode=True) if new_tokens else 0
        for step in range(1, new_tokens):
            total += forward_flops(cfg, 1, prompt_len + step - 1, source_len, encode=False)
        return total
    return sum(forward_flops(cfg, prompt_len + step, 0, source_len, encode=True) for step in range(new_tokens))


def kv_cache_bytes(cfg: ModelConfig, seq_len: int, batch: int = 1, bytes_per_value: int = 4, source_len: int = 0) -> int:
    """Bytes of the KV cache: 2 (K and V) x layers x kv_heads x head_dim x length x batch x bytes,
    plus the cross-attention keys/values over ``source_len`` for an encoder-decoder.

    Defined in the chapter "Efficiency: the KV cache".
    """
    _check_cfg(cfg)
    _check_len("seq_len", seq_len)
    _check_len("source_len", source_len)
    if source_len and cfg.arch != "encoder-decoder":
        raise ValueError(f"source_len={source_len} only applies to arch 'encoder-decoder': arch {cfg.arch!r} caches "
                         "no cross-attention")
    for name, value in (("batch", batch), ("bytes_per_value", bytes_per_value)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if cfg.arch == "encoder":
        raise ValueError("arch 'encoder' has no KV cache")
    per_position = 2 * cfg.n_layers * cfg.kv_heads * cfg.head_dim * batch * bytes_per_value
    cross = source_len if cfg.arch == "encoder-decoder" else 0
    return per_position * (seq_len + cross)


def count_parameters(model) -> int:
    """Trainable parameters of a built model, counted (shared tensors once).

    Defined in the chapter "Efficiency: the KV cache".
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: How far apart "equal parameters" may be, as a fraction of the reference model's count.
EQUAL_PARAMETERS_TOLERANCE = 0.02


def matched_mlp_width(cfg: ModelConfig, target: int, tolerance: float = EQUAL_PARAMETERS_TOLERANCE) -> ModelConfig:
    """``cfg`` with the MLP width (``d_ff``) that brings its non-embedding parameters
    closest to ``target``; a ``ValueError`` when none comes within ``tolerance`` (a
    fraction of ``target``). The count is linear in the width, so it is solved from two
    widths. Defined in the chapter "Efficiency: the KV cache"."""
    _check_cfg(cfg)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in (0, 1), got {tolerance!r}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"target must be a positive int (a parameter count), got {target!r}")
    at_one = parameter_count(cfg.replace(d_ff=1), embeddings=False)
    per_unit = parameter_count(cfg.replace(d_ff=2), embeddings=False) - at_one
    best = cfg.replace(d_ff=max(1, round(1 + (target - at_one) / per_unit)))
    off = abs(parameter_count(best, embeddings=False) - target) / target
    if off > tolerance:
        raise ValueError(f"no MLP width brings the model within {tolerance:.0%} of {target} parameters "
                         f"(closest: {off:.1%} off)")
    return best


def matched_width(cfg: ModelConfig, target: int, tolerance: float = EQUAL_PARAMETERS_TOLERANCE) -> ModelConfig:
    """``cfg`` with the model width (``d_model``, the MLP at its default four times the
    width; heads and head size kept) that brings its non-embedding parameters closest to
    ``target``; a ``ValueError`` when none comes within ``tolerance`` (a fraction of
    ``target``). Another way than :func:`matched_mlp_width` to pay for larger heads.
    Defined in the chapter "The low-rank argument, tested"."""
    _check_cfg(cfg)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in (0, 1), got {tolerance!r}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"target must be a positive int (a parameter count), got {target!r}")
    if cfg.d_head is None:
        raise ValueError("matched_width keeps the head size: give cfg an explicit d_head")
    width = min(range(1, 4 * cfg.d_model + 1),
                key=lambda d: abs(parameter_count(cfg.replace(d_model=d, d_ff=None), embeddings=False) - target))
    best = cfg.replace(d_model=width, d_ff=None)
    off = abs(parameter_count(best, embeddings=False) - target) / target
    if off > tolerance:
        raise ValueError(f"no model width brings the model within {tolerance:.0%} of {target} parameters "
                         f"(closest: {off:.1%} off)")
    return best


def matched_encoder_decoder(decoder: ModelConfig, tolerance: float = EQUAL_PARAMETERS_TOLERANCE) -> ModelConfig:
    """The encoder-decoder with the same non-embedding parameters as a decoder-only model.

    Half of ``decoder``'s layers go to each stack; the decoder stack's cross-attention then
    adds a third attention block per layer, which the MLP width gives back
    (:func:`matched_mlp_width`: for pre-LN blocks with biases about ``d_ff = 3 d`` instead
    of ``4 d``). Defined in the chapter "Efficiency: the KV cache".
    """
    _check_cfg(decoder)
    if decoder.arch not in ("decoder", "prefix-lm"):
        raise ValueError(f"matched_encoder_decoder matches a decoder-only model, not arch {decoder.arch!r}")
    if decoder.n_layers < 2 or decoder.n_layers % 2:
        raise ValueError(f"the decoder's n_layers must be even and >= 2 to split in two stacks, got {decoder.n_layers}")
    half = decoder.n_layers // 2
    split = decoder.replace(arch="encoder-decoder", n_layers=half, n_encoder_layers=half)
    return matched_mlp_width(split, parameter_count(decoder, embeddings=False), tolerance)
