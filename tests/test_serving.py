"""Serving a decoder (whydecoder.serving) and the real-cache measurements (ch06_real_cache)."""

import dataclasses

import pytest
import torch

from whydecoder.accounting import kv_cache_bytes
from whydecoder.config import ModelConfig
from whydecoder.experiments import ch06_real_cache as rc
from whydecoder.model import Transformer
from whydecoder.serving import chat, common_prefix, copy_bandwidth, expand_kv_heads, greedy_continue, random_cache


@pytest.fixture(scope="module")
def gqa():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="decoder", vocab_size=40, max_len=128, d_model=24, n_heads=6, n_kv_heads=2, n_layers=2,
                      position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu", bias=False)
    return Transformer(cfg).eval()


def test_expanded_heads_compute_the_same_function_with_three_times_the_cache(gqa):
    wide = expand_kv_heads(gqa)
    assert wide.cfg.kv_heads == wide.cfg.n_heads == 6
    ids = torch.randint(0, 40, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(gqa(ids), wide(ids), atol=1e-5)
        small, big = gqa.new_cache(), wide.new_cache()
        gqa(ids, cache=small)
        wide(ids, cache=big)
    assert big.nbytes() == 3 * small.nbytes() == 3 * kv_cache_bytes(gqa.cfg, 30, batch=2)
    with pytest.raises(ValueError, match="already has one key/value head"):
        expand_kv_heads(wide)


def test_grouped_attention_through_sdpa_equals_the_explicit_expansion(gqa):
    ids = torch.randint(0, 40, (1, 20), generator=torch.Generator().manual_seed(2))
    attns = [m for m in gqa.modules() if hasattr(m, "keep_weights")]
    with torch.no_grad():
        fused = gqa(ids)
        for m in attns:
            m.keep_weights = True
        explicit = gqa(ids)
        for m in attns:
            m.keep_weights, m.weights = False, None
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_a_random_cache_has_the_shape_a_step_reads(gqa):
    cache = random_cache(gqa, 3, 17)
    assert cache.length == 17 and cache.nbytes() == kv_cache_bytes(gqa.cfg, 17, batch=3)
    with torch.no_grad():
        assert gqa(torch.zeros(3, 1, dtype=torch.long), cache=cache).shape == (3, 1, 40)
    for bad in (0, 128, True):
        with pytest.raises(ValueError):
            random_cache(gqa, 1, bad)


def test_crop_and_fork_keep_the_cache_consistent(gqa):
    ids = torch.randint(0, 40, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cache = gqa.new_cache()
        gqa(ids, cache=cache)
        cache.crop(8)
        again = gqa(ids[:, 8:], cache=cache)
    assert torch.allclose(again, gqa(ids)[:, 8:], atol=1e-5)
    with pytest.raises(ValueError, match="length"):
        cache.crop(13)


def test_greedy_continue_is_greedy_decoding(gqa):
    from whydecoder.generate import generate

    prompt = [1, 2, 3, 4]
    reply, chose = greedy_continue(gqa, gqa.new_cache(), prompt, 6)
    assert torch.tensor(prompt + reply).tolist() == generate(gqa, torch.tensor([prompt]), 6)[0].tolist()
    assert len(chose) == 6
    reply, _ = greedy_continue(gqa, gqa.new_cache(), prompt, 6, stop={reply[0]})
    assert len(reply) == 1
    with pytest.raises(ValueError):
        greedy_continue(gqa, gqa.new_cache(), [], 3)


def test_a_chat_reuses_its_cache_and_recovers_from_retokenisation(gqa):
    def template(messages):  # renders a reply's first token differently from how it was generated
        out = []
        for m in messages:
            content = m["content"] if m["role"] == "user" else [33] + m["content"][1:]
            out += [30 if m["role"] == "user" else 31] + content + [32]
        return out + [31]

    result = chat(gqa, template, lambda ids: list(ids), [[1, 2, 3], [4, 5], [6, 7, 8]], max_new=5)
    turns = result["turns"]
    assert [t["refed_tokens"] for t in turns] == [0, 4, 4]  # all but the unfed last token of each reply
    assert [t["fed_tokens"] < t["history_tokens"] for t in turns] == [False, True, True]
    assert [t["checked"] for t in turns] == [False, False, True]
    assert turns[-1]["greedy_match"] and turns[-1]["max_logit_gap"] < 1e-4

    plain = chat(gqa, lambda ms: sum(([30 if m["role"] == "user" else 31] + list(m["content"]) + [32] for m in ms), [])
                 + [31], lambda ids: list(ids), [[1, 2, 3], [4, 5]], max_new=5)
    assert [t["refed_tokens"] for t in plain["turns"]] == [0, 0]
    assert all(t["checked"] and t["greedy_match"] and t["max_logit_gap"] < 1e-4 for t in plain["turns"])
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and common_prefix([], [1]) == 0


def test_copy_bandwidth_is_a_positive_rate():
    assert copy_bandwidth(megabytes=8, repeats=3) > 1e6


def test_smoke_run_measures_every_section():
    results = rc.run("smoke", progress=False)
    s = rc.SETTINGS["smoke"]
    assert all(r["grouped_measured"] == r["grouped_formula"] and r["expanded_measured"] == 3 * r["grouped_measured"]
               for r in results["bytes"]["rows"])
    assert [r["context"] for r in results["decode"]] == list(s.lengths)
    assert len(results["chat"]["turns"]) == len(rc.USER_TURNS)
    ratios = rc.expanded_over_grouped(results)
    assert set(ratios) == {(b, t) for b in s.batches for t in s.batch_contexts} and all(v > 0 for v in ratios.values())
    row = results["batched"]["rows"][0]
    assert 0 < rc.bandwidth_bound(row, results["batched"]["copy_bandwidth"]) < row["seconds_per_step"] * 100


@pytest.mark.parametrize("change, match", [({"model": "gpt2"}, "model"), ({"lengths": ()}, "lengths"),
                                           ({"batches": (0,)}, "batches"), ({"repeats": 0}, "repeats")])
def test_settings_refuse_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(rc.SETTINGS["smoke"], **change)
