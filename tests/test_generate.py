import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder.generate import generate

CACHED_ARCHS = ("decoder", "prefix-lm", "encoder-decoder")


def _setup(arch, **overrides):
    model = wd.Transformer(small_config(arch, **overrides)).eval()
    g = torch.Generator().manual_seed(5)
    prompt = torch.randint(0, 40, (3, 4), generator=g)
    source = torch.randint(0, 40, (3, 6), generator=g) if arch == "encoder-decoder" else None
    return model, prompt, source


@pytest.mark.parametrize("arch", CACHED_ARCHS)
@pytest.mark.parametrize("overrides", [{}, {"position": "rope", "n_kv_heads": 2}, {"position": "sinusoidal", "norm": "post"}])
def test_cached_and_uncached_greedy_agree(arch, overrides):
    model, prompt, source = _setup(arch, **overrides)
    a, la = generate(model, prompt, 20, source=source, use_cache=True, return_logits=True)
    b, lb = generate(model, prompt, 20, source=source, use_cache=False, return_logits=True)
    assert torch.equal(a, b)
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", CACHED_ARCHS)
def test_cached_and_uncached_sampling_agree(arch):
    model, prompt, source = _setup(arch)
    runs = [
        generate(model, prompt, 16, source=source, use_cache=c, temperature=1.0, top_k=10,
                 generator=torch.Generator().manual_seed(9))
        for c in (True, False)
    ]
    assert torch.equal(*runs)


def test_prefix_lm_prefix_is_bidirectional_during_generation():
    """Changing the last prefix token changes the first prefix position's representation."""
    model, prompt, _ = _setup("prefix-lm")
    h1 = model.hidden_states(prompt, prefix_len=4)
    changed = prompt.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 40
    h2 = model.hidden_states(changed, prefix_len=4)
    assert (h1[:, 0] - h2[:, 0]).abs().max() > 1e-4


def test_growing_a_prefix_past_the_cache_is_refused():
    model, prompt, _ = _setup("prefix-lm")
    cache = model.new_cache()
    model(prompt, prefix_len=4, cache=cache)
    with pytest.raises(ValueError, match="prefix_len 6 reaches past the 4 cached positions"):
        model(prompt[:, :2], prefix_len=6, cache=cache)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=40), "exceeds the model's max_len 32"),
        (dict(max_new_tokens=-1), "-1"),
        (dict(max_new_tokens=3, temperature=-0.5), "-0.5"),
        (dict(max_new_tokens=3, temperature=1.0, top_k=0), "top_k 0"),
    ],
)
def test_generate_bad_input(kwargs, message):
    model, prompt, _ = _setup("decoder")
    with pytest.raises(ValueError, match=message):
        generate(model, prompt, **kwargs)


def test_encoder_cannot_generate_and_encoder_decoder_needs_source():
    enc = wd.Transformer(small_config("encoder"))
    with pytest.raises(ValueError, match="cannot generate"):
        generate(enc, torch.zeros(1, 2, dtype=torch.long), 2)
    ed = wd.Transformer(small_config("encoder-decoder"))
    with pytest.raises(ValueError, match="needs source"):
        generate(ed, torch.zeros(1, 2, dtype=torch.long), 2)
