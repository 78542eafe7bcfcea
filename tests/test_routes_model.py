"""The architecture route's model options: retention against its recurrence, the mixture
of experts against a token-by-token reference, their caches, parameter counts and errors."""

import pytest
import torch

from whydecoder.accounting import count_parameters, parameter_count
from whydecoder.config import ModelConfig
from whydecoder.experts import MoE, aux_loss, moe_reference
from whydecoder.model import Transformer
from whydecoder.retention import head_decays, retention_chunk, retention_recurrent
from whydecoder.serving import random_cache


def qkv(t=10, b=2, h=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, t, d, generator=g, dtype=torch.float64) for _ in range(3)]


def test_decays_follow_retnet():
    assert torch.allclose(head_decays(3), torch.tensor([1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128], dtype=torch.float64))
    with pytest.raises(ValueError, match="n_heads must be a positive int"):
        head_decays(0)


def test_parallel_form_equals_the_recurrence():
    q, k, v = qkv()
    gamma = head_decays(3)
    ref, ref_state = retention_recurrent(q, k, v, gamma)
    out, state = retention_chunk(q, k, v, gamma)
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(state, ref_state, atol=1e-12)


@pytest.mark.parametrize("cut", [1, 4, 9])
def test_chunks_carry_the_state(cut):
    q, k, v = qkv()
    gamma = head_decays(3)
    ref, ref_state = retention_recurrent(q, k, v, gamma)
    first, s1 = retention_chunk(q[..., :cut, :], k[..., :cut, :], v[..., :cut, :], gamma)
    second, s2 = retention_chunk(q[..., cut:, :], k[..., cut:, :], v[..., cut:, :], gamma, s1)
    assert torch.allclose(torch.cat([first, second], dim=2), ref, atol=1e-12)
    assert torch.allclose(s2, ref_state, atol=1e-12)


def test_a_decay_forgets_far_tokens():
    """With gamma = 1/2, a value written t steps back reaches the output scaled by 2^-t."""
    q, k, v = (torch.ones(1, 1, 6, 1, dtype=torch.float64) for _ in range(3))
    v = torch.zeros_like(v)
    v[..., 0, 0] = 1.0  # only the first position writes
    out, _ = retention_chunk(q, k, v, torch.tensor([0.5], dtype=torch.float64))
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([0.5 ** t for t in range(6)], dtype=torch.float64))


def config(**kw):
    return ModelConfig(d_model=32, n_heads=4, n_layers=2, position="rope", max_len=64, **kw)


@pytest.mark.parametrize("kw", [{}, {"mixer": "retention"}, {"n_experts": 4, "d_ff": 64},
                                {"n_experts": 3, "expert_top_k": 1, "mixer": "retention"}])
def test_cached_decoding_gives_the_full_pass_and_counts_match(kw):
    cfg = config(**kw)
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    x = torch.randint(0, 256, (2, 20))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache()
        steps = [model(x[:, :12], cache=cache)] + [model(x[:, i:i + 1], cache=cache) for i in range(12, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert cache.length == 20
    assert count_parameters(model) == parameter_count(cfg)


def test_retention_state_does_not_grow_and_attention_cache_does():
    for mixer, grows in (("attention", True), ("retention", False)):
        model = Transformer(config(mixer=mixer)).eval()
        sizes = [random_cache(model, 1, n).nbytes() for n in (8, 32)]
        assert (sizes[1] == 4 * sizes[0]) if grows else (sizes[1] == sizes[0])
        cache = random_cache(model, 1, 8)
        assert cache.length == 8


def test_a_retention_cache_forks_but_cannot_be_cut_back():
    model = Transformer(config(mixer="retention")).eval()
    x = torch.randint(0, 256, (1, 10))
    cache = model.new_cache()
    with torch.no_grad():
        model(x, cache=cache)
        fork = cache.fork()
        model(x[:, :1], cache=fork)
    assert cache.length == 10 and fork.length == 11
    cache.crop(10)  # keeping everything is fine
    with pytest.raises(ValueError, match="recurrent state cannot be cut back"):
        cache.crop(5)


def test_moe_matches_its_reference_and_balance_loss_is_one_when_uniform():
    cfg = config(n_experts=4, d_ff=48)
    torch.manual_seed(0)
    model = Transformer(cfg)
    moe = model.decoder.blocks[0].mlp
    assert isinstance(moe, MoE)
    h = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.allclose(moe(h), moe_reference(moe, h), atol=1e-6)
        moe.router.weight.zero_()  # every expert equally likely: two of them take every token
        moe(h)
    assert sorted(moe.load.tolist()) == [0.0, 0.0, 0.5, 0.5]
    assert torch.isclose(moe.aux_loss, torch.tensor(1.0))  # E * sum(f * 1/E) = 1
    model(torch.randint(0, 256, (1, 6)))
    assert aux_loss(model).item() > 0 and aux_loss(Transformer(config())).item() == 0


def test_active_parameters_count_only_the_chosen_experts():
    dense = config()
    moe = config(n_experts=4, expert_top_k=2, d_ff=64)  # 2 of 4 experts of width 2d
    mlp = lambda f: 2 * 32 * f + f + 32  # noqa: E731  (up and down, with biases)
    per_layer = {"router": 32 * 4, "expert": mlp(64), "dense": mlp(128)}
    rest = parameter_count(dense, embeddings=False) - 2 * per_layer["dense"]
    assert parameter_count(moe, embeddings=False, active=True) == rest + 2 * (per_layer["router"] + 2 * per_layer["expert"])
    assert parameter_count(moe, embeddings=False) == rest + 2 * (per_layer["router"] + 4 * per_layer["expert"])
    assert count_parameters(Transformer(moe)) == parameter_count(moe)
    assert parameter_count(config(mixer="retention")) == parameter_count(dense)


@pytest.mark.parametrize("kw, match", [
    ({"mixer": "rnn"}, "unknown mixer"),
    ({"n_experts": 0}, "n_experts must be a positive int"),
    ({"n_experts": 2, "expert_top_k": 3}, "expert_top_k=3 exceeds n_experts=2"),
    ({"expert_top_k": 0}, "expert_top_k must be a positive int"),
    ({"mixer": "retention", "n_kv_heads": 2}, "no grouped key/value heads"),
])
def test_bad_options_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        config(**kw)
    with pytest.raises(ValueError, match="needs arch 'decoder'"):
        ModelConfig(arch="encoder", mixer="retention")
