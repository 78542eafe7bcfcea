"""Each formula against a measurement: counted parameters, PyTorch's FLOP counter, cache bytes."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import whydecoder as wd
from conftest import arch_inputs, small_config
from whydecoder.accounting import count_parameters, forward_flops, generation_flops, kv_cache_bytes, parameter_count
from whydecoder.generate import generate

VARIANTS = [
    {},
    {"n_kv_heads": 2},
    {"d_head": 12, "d_ff": 50},
    {"position": "rope", "bias": False, "tie_embeddings": False},
    {"position": "none", "norm": "post", "embed_norm": True, "final_norm": False, "head_transform": True, "head_bias": True},
    # the Llama family (SmolLM2): RMSNorm, a SiLU-gated MLP, grouped keys/values, RoPE, no biases
    {"position": "rope", "rope_base": 100000.0, "norm_layer": "rmsnorm", "activation": "silu", "gated_mlp": True,
     "n_kv_heads": 2, "bias": False},
    {"norm_layer": "rmsnorm", "gated_mlp": True, "embed_norm": True, "head_transform": True},
]
ED_VARIANTS = [{"share_encoder_decoder": True}, {"n_encoder_layers": 3}]


def _explicit(model):
    """Use the explicit attention path: PyTorch's FLOP counter does not see the fused CPU kernel."""
    for module in model.modules():
        if isinstance(module, wd.attention.Attention):
            module.keep_weights = True
    return model


def _cases():
    for arch in wd.ARCHS:
        for v in VARIANTS + (ED_VARIANTS if arch == "encoder-decoder" else []):
            yield arch, v


@pytest.mark.parametrize("arch, variant", list(_cases()))
def test_parameter_count_formula(arch, variant):
    cfg = small_config(arch, **variant)
    assert parameter_count(cfg) == count_parameters(wd.Transformer(cfg))


def test_non_embedding_count_excludes_tables():
    cfg = small_config("decoder")
    assert parameter_count(cfg) - parameter_count(cfg, embeddings=False) == cfg.vocab_size * 32 + cfg.max_len * 32


@pytest.mark.parametrize("arch, variant", list(_cases()))
def test_forward_flops_formula(arch, variant):
    cfg = small_config(arch, **variant)
    model = _explicit(wd.Transformer(cfg))
    tokens, kw = arch_inputs(arch, batch=1)
    with FlopCounterMode(display=False) as counter:
        model(tokens, **kw)
    source_len = kw["source"].shape[1] if "source" in kw else 0
    assert counter.get_total_flops() == forward_flops(cfg, tokens.shape[1], 0, source_len)


@pytest.mark.parametrize("arch", ["decoder", "prefix-lm", "encoder-decoder"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_flops_formula(arch, use_cache):
    cfg = small_config(arch)
    model = _explicit(wd.Transformer(cfg).eval())
    prompt = torch.randint(0, 40, (1, 5))
    source = torch.randint(0, 40, (1, 7)) if arch == "encoder-decoder" else None
    with FlopCounterMode(display=False) as counter:
        generate(model, prompt, 6, source=source, use_cache=use_cache)
    expected = generation_flops(cfg, 5, 6, use_cache, source_len=0 if source is None else 7)
    assert counter.get_total_flops() == expected


@pytest.mark.parametrize("arch, variant", [("decoder", {}), ("decoder", {"n_kv_heads": 1}), ("prefix-lm", {"d_head": 6}), ("encoder-decoder", {})])
def test_kv_cache_bytes_formula(arch, variant):
    cfg = small_config(arch, **variant)
    model = wd.Transformer(cfg).eval()
    tokens, kw = arch_inputs(arch, batch=3, length=11)
    cache = model.new_cache()
    with torch.no_grad():
        model(tokens, cache=cache, **kw)
    source_len = kw["source"].shape[1] if "source" in kw else 0
    assert cache.nbytes() == kv_cache_bytes(cfg, 11, batch=3, bytes_per_value=4, source_len=source_len)


def test_uncached_generation_costs_grow_faster():
    cfg = small_config("decoder")
    ratio_short = generation_flops(cfg, 1, 8, False) / generation_flops(cfg, 1, 8, True)
    ratio_long = generation_flops(cfg, 1, 30, False) / generation_flops(cfg, 1, 30, True)
    assert ratio_long > ratio_short > 1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: forward_flops(c, -1), "n_new must be an int >= 0, got -1"),
        (lambda c: kv_cache_bytes(c, 2.5), "2.5"),
        (lambda c: generation_flops(c, 3, -2, True), "-2"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(small_config("decoder"))


def test_encoder_has_no_cache_bytes():
    with pytest.raises(ValueError, match="no KV cache"):
        kv_cache_bytes(small_config("encoder"), 4)


@pytest.mark.parametrize("d_model, n_layers", [(64, 4), (512, 8), (32, 2)])
def test_matched_encoder_decoder_has_the_decoders_parameters(d_model, n_layers):
    from whydecoder.accounting import matched_encoder_decoder

    decoder = wd.ModelConfig(arch="decoder", d_model=d_model, n_layers=n_layers, n_heads=4)
    matched = matched_encoder_decoder(decoder)
    assert matched.arch == "encoder-decoder" and matched.n_layers == matched.encoder_layers == n_layers // 2
    built = wd.Transformer(matched)
    target = parameter_count(decoder, embeddings=False)
    assert abs(parameter_count(matched, embeddings=False) - target) / target < 0.02
    assert count_parameters(built) == parameter_count(matched)
    assert matched.ff_dim < decoder.ff_dim  # the cross-attention is paid for by a narrower MLP


def test_matched_encoder_decoder_bad_input():
    from whydecoder.accounting import matched_encoder_decoder

    with pytest.raises(ValueError, match="not arch 'encoder'"):
        matched_encoder_decoder(wd.ModelConfig(arch="encoder"))
    with pytest.raises(ValueError, match="must be even and >= 2 to split in two stacks, got 3"):
        matched_encoder_decoder(wd.ModelConfig(arch="decoder", n_layers=3))
    with pytest.raises(ValueError, match="tolerance must be a fraction"):
        matched_encoder_decoder(wd.ModelConfig(arch="decoder", n_layers=2), tolerance=0)
