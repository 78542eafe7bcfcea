import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder.experiments.ch06_efficiency import (
    SETTINGS,
    cache_memory_table,
    decode_step_costs,
    dialogue_costs,
    published_configs,
    run,
)
from whydecoder.generate import generate


def test_decode_step_costs_flops_grow_linearly_with_cache_and_faster_without():
    model = wd.Transformer(small_config("decoder"))
    rows = decode_step_costs(model, [4, 8, 16], repeats=1)
    cached = [r["flops_cached"] for r in rows]
    # with the cache, one more context token adds the same attention cost each time
    assert cached[1] - cached[0] == (cached[2] - cached[1]) / 2 > 0
    assert all(r["flops_uncached"] > 4 * r["flops_cached"] for r in rows)
    assert all(r["seconds_cached"] > 0 and r["seconds_uncached"] > 0 for r in rows)


def test_dialogue_costs_per_architecture():
    torch.manual_seed(0)
    costs = {arch: dialogue_costs(wd.Transformer(small_config(arch, max_len=64)), 4, 5, 3)
             for arch in ("decoder", "prefix-lm", "encoder-decoder")}
    for rows in costs.values():
        assert [r["history"] for r in rows] == [8, 16, 24, 32]
    dec = [r["flops"] for r in costs["decoder"]]
    pre = [r["flops"] for r in costs["prefix-lm"]]
    assert pre[-1] > 3 * pre[0]  # the prefix-LM re-encodes a growing history
    assert dec[-1] < 1.5 * dec[0]  # the decoder only feeds the new tokens
    assert sum(dec) < sum(pre)


@pytest.mark.parametrize("arch", ["decoder", "prefix-lm", "encoder-decoder"])
def test_cached_dialogue_equals_recomputing_every_reply_from_scratch(arch):
    """Each architecture's dialogue, served with its caches, writes the same replies as
    greedy decoding without any cache over the full history."""
    torch.manual_seed(0)
    model = wd.Transformer(small_config(arch, max_len=64)).eval()
    _, served = dialogue_costs(model, 3, 5, 4, seed=7, return_history=True)
    g = torch.Generator().manual_seed(7)
    history = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(3):
        history = torch.cat([history, torch.randint(0, 40, (1, 5), generator=g)], dim=1)
        if arch == "encoder-decoder":
            reply = generate(model, torch.zeros(1, 1, dtype=torch.long), 4, source=history, use_cache=False)[:, 1:]
        else:
            reply = generate(model, history, 4, use_cache=False)[:, history.shape[1]:]
        history = torch.cat([history, reply], dim=1)
    assert torch.equal(served, history)


def test_dialogue_and_decode_bad_input():
    with pytest.raises(ValueError, match="arch 'encoder' cannot serve"):
        dialogue_costs(wd.Transformer(small_config("encoder")), 2, 2, 2)
    with pytest.raises(ValueError, match="needs 41 positions, more than max_len 32"):
        dialogue_costs(wd.Transformer(small_config("decoder")), 4, 5, 5)
    with pytest.raises(ValueError, match="turns must be a positive int, got 0"):
        dialogue_costs(wd.Transformer(small_config("decoder")), 0, 5, 5)
    with pytest.raises(ValueError, match="context length 32"):
        decode_step_costs(wd.Transformer(small_config("decoder")), [4, 32])
    with pytest.raises(ValueError, match="not arch 'prefix-lm'"):
        decode_step_costs(wd.Transformer(small_config("prefix-lm")), [4])


def test_published_configs_kv_bytes():
    configs = published_configs()
    table = {r["model"]: r for r in cache_memory_table(configs, 4096)}
    assert table["Llama 2 7B"]["KiB per token"] == 512  # 2 x 32 layers x 32 heads x 128 x 2 bytes
    assert table["Llama 2 70B"]["KiB per token"] == 320  # 8 kv heads instead of 64
    assert table["Llama 3 8B"]["GiB at 4096 tokens"] == 0.5


def test_run_stores_and_resumes(tmp_path, monkeypatch):
    tiny = SETTINGS["smoke"].__class__(d_model=16, n_heads=2, n_layers=2, max_len=40, lengths=(4, 8), repeats=1,
                                       turns=2, user_len=3, reply_len=3, vocab_size=276)
    monkeypatch.setitem(SETTINGS, "smoke", tiny)
    out = tmp_path / "eff.json"
    first = run("smoke", out, progress=False)
    assert set(first) == {"settings", "decode_steps", "dialogue"}
    second = run("smoke", out, progress=False)  # everything stored: nothing recomputed
    assert second["decode_steps"] == first["decode_steps"]
    monkeypatch.setitem(SETTINGS, "smoke", tiny.__class__(**{**tiny.__dict__, "turns": 3}))
    with pytest.raises(ValueError, match="other settings"):
        run("smoke", out, progress=False)
