import pytest
import torch

import whydecoder as wd
from conftest import one_line, small_config
from whydecoder.accounting import parameter_count
from whydecoder.experiments.ch06_efficiency import (
    RULES,
    SETTINGS,
    cache_memory_table,
    decode_step_costs,
    dialogue_costs,
    growth_exponents,
    published_configs,
    reuse_across_turns,
    run,
    stale_prefix_gap,
    timings,
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
    assert set(first) == {"settings", "reuse", "decode_steps", "dialogue"}
    second = run("smoke", out, progress=False)  # everything stored: nothing recomputed
    assert second["decode_steps"] == first["decode_steps"]
    monkeypatch.setitem(SETTINGS, "smoke", tiny.__class__(**{**tiny.__dict__, "turns": 3}))
    with pytest.raises(ValueError, match="other settings"):
        run("smoke", out, progress=False)


def test_timings_warm_up_before_timing():
    calls = []
    times = timings(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and len(times) == 5 and all(t >= 0 for t in times)


def test_dialogue_models_have_equal_parameters():
    for s in SETTINGS.values():
        counts = {arch: parameter_count(s.config(arch), embeddings=False) for arch in ("decoder", "prefix-lm",
                                                                                      "encoder-decoder")}
        assert counts["decoder"] == counts["prefix-lm"]
        assert abs(counts["encoder-decoder"] - counts["decoder"]) / counts["decoder"] < 0.02


def test_reuse_across_turns_finds_a_wrong_reply_and_a_stale_prefix():
    torch.manual_seed(0)
    model = wd.Transformer(small_config("decoder", max_len=64)).eval()
    _, history = dialogue_costs(model, 3, 5, 4, seed=1, return_history=True)
    replies = [(t * 9 + 5, (t + 1) * 9) for t in range(3)]
    good = reuse_across_turns(model, history, 9, replies)
    assert good["greedy_match"] and good["max_logit_gap"] < 1e-5
    wrong = history.clone()
    wrong[0, 6] = (wrong[0, 6] + 1) % 40  # a reply token the model would not have chosen
    assert not reuse_across_turns(model, wrong, 9, replies)["greedy_match"]
    prefix = wd.Transformer(small_config("prefix-lm", max_len=64)).eval()
    assert stale_prefix_gap(prefix, history[:, :9], history[:, 9:14]) > 1e-3
    with pytest.raises(ValueError, match="not arch 'prefix-lm'"):
        reuse_across_turns(prefix, history, 9, replies)
    with pytest.raises(ValueError, match="turn_len must be a positive int, got 0"):
        reuse_across_turns(model, history, 0, replies)
    with pytest.raises(ValueError, match="measures a prefix-LM, not arch 'decoder'"):
        stale_prefix_gap(model, history[:, :9], history[:, 9:14])


def test_growth_exponents_read_the_power_of_the_context():
    rows = [{"context": t, "timings_cached": [t * 1e-3, 1.1 * t * 1e-3], "timings_uncached": [t * t * 1e-6] * 2}
            for t in (8, 16, 32)]
    assert growth_exponents(rows, "timings_cached") == pytest.approx([1.0, 1.0])
    assert growth_exponents(rows, "timings_uncached") == pytest.approx([2.0, 2.0])


def c13_results(exponent=0.2, noise=0.01, uncached=1.0, gap=0.0, match=True, stale=0.1, growth=(1.2, 5.0, 4.0),
                repeats=5, params=(100, 100, 101), d_model=20):
    steps = []
    for t in (64, 128, 256, 512):
        cached = [t ** (exponent + noise * ((i % 3) - 1)) * 1e-3 for i in range(repeats)]
        steps.append({"context": t, "flops_cached": 1000 + 10 * t, "timings_cached": cached,
                      "timings_uncached": [t ** (uncached + 0.01 * (i % 2)) * 1e-3 for i in range(repeats)]})
    dialogue = {arch: {"non_embedding_parameters": n, "turns": [{"flops": 100}, {"flops": 100 * g}]}
                for arch, n, g in zip(("decoder", "prefix-lm", "encoder-decoder"), params, growth)}
    reuse = [{"seed": s, "max_logit_gap": gap, "greedy_match": match, "prefix_stale_gap": stale} for s in range(3)]
    # the exponents are fitted at or past 6d: with d_model 20, the contexts 128 to 512
    return {"reuse": reuse, "decode_steps": steps, "dialogue": dialogue, "settings": {"d_model": d_model}}


@pytest.mark.parametrize("changes, outcome", [
    ({}, "supported"),
    ({"gap": 1e-2}, "nuanced"),  # the cache did not reproduce recomputation
    ({"match": False}, "nuanced"),
    ({"stale": 0.0}, "nuanced"),  # a prefix-LM could reuse its cache after all
    ({"growth": (3.0, 5.0, 4.0)}, "nuanced"),  # the decoder's turns grow too
    ({"exponent": 1.6, "uncached": 2.0}, "nuanced"),  # a cached step grows faster than linearly
    ({"exponent": 1.6, "uncached": 2.0, "growth": (3.0, 1.0, 1.0)}, "refuted"),
    ({"exponent": 1.0, "noise": 0.6, "uncached": 1.05}, "inconclusive"),  # too noisy to tell
    ({"repeats": 3}, "inconclusive"),
    ({"params": (100, 100, 130)}, "inconclusive"),  # not at equal parameters
    ({"d_model": 30}, "inconclusive"),  # two contexts past 6d = 180: the timing half is not tested
])
def test_c13_rule_reaches_every_outcome(changes, outcome):
    assert RULES["C13"](c13_results(**changes)).outcome == outcome


@pytest.mark.parametrize("changes, says", [
    ({}, "no training: three random models at equal parameters, three dialogues checked exactly, four contexts "
         "(64 to 512 tokens) timed five times each, three past 6d; both halves held"),
    ({"gap": 1e-2}, "; one of two halves held"),
    ({"exponent": 1.6, "uncached": 2.0, "growth": (3.0, 1.0, 1.0)}, "; neither half held"),
    ({"exponent": 1.0, "noise": 0.6, "uncached": 1.05}, "; timing half unclear, nothing decided"),
    ({"d_model": 30}, "; timing half untested (two contexts past 6d)"),
])
def test_c13_evidence_says_what_the_verdict_rests_on(changes, says):
    from whydecoder.experiments.ch06_efficiency import c13_evidence
    from whydecoder.results import settings_dict

    results = c13_results(**changes)
    results["settings"] = settings_dict(SETTINGS["full"]) | results["settings"]
    assert says in one_line(c13_evidence(results, RULES["C13"](results)).rests_on)
