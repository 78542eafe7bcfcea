"""C21: 4-bit weights, adapters, memory readings, the finetuning runs at smoke scale and
the rule driven to every outcome."""

import pytest
import torch

from conftest import one_line
from whydecoder import finetune, memory
from whydecoder.experiments import ch07_efficiency_route as er

SMOKE = er.SETTINGS["smoke"]


def tiny():
    return er.load_base(SMOKE)


def test_4bit_weights_are_smaller_and_close():
    model = tiny()
    x = torch.randint(0, 256, (1, 16))
    with torch.no_grad():
        ref = model(x)
        before = finetune.weight_bytes(model)
        finetune.quantize_4bit(model)
        out = model(x)
    layer = model.decoder.blocks[0].attn.q
    assert type(layer).__name__ == "Linear4bit" and not layer.weight.requires_grad
    assert finetune.weight_bytes(model) < before / 2
    assert (out - ref).norm() / ref.norm() < 0.2  # NF4 is lossy, not broken


def test_adapters_start_as_the_base_model_and_train_only_themselves():
    model = tiny()
    x = torch.randint(0, 256, (1, 16))
    with torch.no_grad():
        ref = model(x)
    adapted = finetune.prepare(model, "lora", rank=4, alpha=8)
    with torch.no_grad():
        assert torch.allclose(adapted(x), ref, atol=1e-6)  # B starts at zero
    cfg = er._tiny_config()
    d, f = cfg.d_model, cfg.ff_dim
    per_layer = 4 * 4 * (d + d) + 4 * (2 * (d + f) + (f + d))  # q, k, v, out; gate, up, down
    assert finetune.trainable_parameters(adapted) == cfg.n_layers * per_layer
    assert all(("lora_" in n) == p.requires_grad for n, p in adapted.named_parameters())


def test_prepare_and_adapters_refuse_bad_input():
    with pytest.raises(ValueError, match="unknown method 'prefix'"):
        finetune.prepare(tiny(), "prefix")
    with pytest.raises(ValueError, match="rank must be a positive int"):
        finetune.with_adapters(tiny(), 0, 8)


def test_the_peak_reading_resets_and_grows():
    memory.reset_peak()
    low = memory.peak_bytes()
    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
    assert memory.peak_bytes() >= low + 60 * 1024 * 1024
    del block
    assert memory.resident_bytes() > 0


@pytest.mark.parametrize("method", er.METHODS)
def test_one_finetune_at_smoke_scale(method):
    row = er.one_finetune(method, 0, SMOKE, lr=1e-3)
    assert row["method"] == method and len(row["train_losses"]) == SMOKE.steps and row["lr"] == 1e-3
    assert row["val_loss"] > 0 and row["step_seconds"] > 0
    assert (row["trainable"] < 20000) == (method != "full")


def test_memory_is_measured_above_the_libraries():
    row = er.memory_child("smoke", "qlora")
    assert row["trainable"] > 0 and 0 < row["weight_bytes"] < 1_000_000
    assert row["model_bytes"] < 50 * 1024 * 1024  # the tiny model, not peft's and transformers' imports
    assert row["peak_bytes"] >= row["model_bytes"]


def test_attention_section_is_exact_at_smoke_scale(monkeypatch):
    # the peak readings are tested in test_tiled_attention (a fresh process each): a stand-in keeps this test fast
    monkeypatch.setattr(er, "peak_memory_bytes", lambda m, t, d, h, b: {"naive": 4 * h * t * t, "tiled": 10, "sdpa": 5}[m])
    rows = er.attention_section(SMOKE)
    assert [r["length"] for r in rows] == list(SMOKE.lengths)
    assert all(r["tiled_error"] < 1e-5 and r["sdpa_error"] < 1e-5 for r in rows)
    assert rows[-1]["peak_bytes"]["naive"] > rows[-1]["peak_bytes"]["sdpa"]


def test_the_splits_are_disjoint_and_the_grid_reads_validation():
    train, val, held_out = er.corpus_ids("tiny")
    assert len(train) > 10 * len(val) and len(held_out) > len(val) > 0
    model = er.load_base(SMOKE)
    assert er.held_out_loss(model, SMOKE, "validation") != er.held_out_loss(model, SMOKE)
    with pytest.raises(ValueError, match="split must be one of"):
        er.held_out_loss(model, SMOKE, "test")


def test_grid_and_chosen_rates():
    grid = er.grid_section(SMOKE)
    assert set(grid) == set(er.METHODS) and all(set(g) == {f"{r:g}" for r in SMOKE.grid_rates} for g in grid.values())
    chosen = er.chosen_rates(grid)
    assert all(grid[m][f"{chosen[m]:g}"] == min(grid[m].values()) for m in er.METHODS)
    assert er.chosen_rates({"full": {"1e-05": 2.0, "0.001": None}, "lora": {"0.001": 1.0, "0.01": 0.5},
                            "qlora": {"0.001": 1.0, "0.01": float("nan")}}) == {"full": 1e-5, "lora": 0.01, "qlora": 0.001}


@pytest.mark.parametrize("change, match", [
    ({"grid_rates": ()}, "grid_rates must be a non-empty tuple"),
    ({"grid_rates": (1e-3, -1e-3)}, "positive learning rates"),
    ({"grid_rates": (1e-3, 1e-3)}, "a rate twice"),
    ({"grid_seed": 0}, "grid_seed 0 is one of the comparison's seeds"),
])
def test_settings_refuse_bad_grids(change, match):
    import dataclasses

    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMOKE, **change)


def test_chosen_rates_and_one_finetune_refuse_bad_input():
    with pytest.raises(ValueError, match="grid must map every method"):
        er.chosen_rates({"full": {"0.001": 1.0}})
    with pytest.raises(ValueError, match="lora: no rate of the grid gave a finite"):
        er.chosen_rates({"full": {"0.001": 1.0}, "lora": {"0.001": None}, "qlora": {"0.001": 1.0}})
    with pytest.raises(ValueError, match="lr must be a positive learning rate"):
        er.one_finetune("full", 0, SMOKE, lr=0)
    with pytest.raises(ValueError, match="method must be one of"):
        er.one_finetune("adapter", 0, SMOKE, lr=1e-3)


def test_a_resumed_run_reads_the_stored_grid(tmp_path):
    from whydecoder.results import judged_settings, save_result

    settings = judged_settings(SMOKE, er.RULES)
    stored = {m: {"0.001": 2.0, "0.01": 1.0} for m in er.METHODS}
    out = tmp_path / "route.json"
    save_result(out, {"settings": settings, "grid": stored}, command="test")
    assert er._GridOnce(SMOKE, out, settings)() == stored  # read, not run again


def results(full=(2.5, 2.6, 2.55, 2.52, 2.58), lora=0.0, qlora=0.0, before=2.9, error=1e-6, ratio=10.0,
            lora_peak=0.5, qlora_peak=0.4, noise=0.002):
    def runs(method, shift):
        return [{"method": method, "seed": i, "val_loss": v + shift + (noise * (i % 2) if method != "full" else 0.0)}
                for i, v in enumerate(full)]
    return {
        "grid": {m: {"0.001": 1.0} for m in er.METHODS},
        "attention": [{"length": 512, "tiled_error": error, "sdpa_error": 1e-7, "peak_bytes": {"naive": 100, "tiled": 50,
                                                                                               "sdpa": 10}},
                      {"length": 4096, "tiled_error": error, "sdpa_error": 1e-7,
                       "peak_bytes": {"naive": int(ratio * 1000), "tiled": 1000, "sdpa": 500}}],
        "before": {"val_loss": before},
        "full": runs("full", 0.0), "lora": runs("lora", lora), "qlora": runs("qlora", qlora),
        "memory": {"full": {"peak_bytes": 1000}, "lora": {"peak_bytes": int(1000 * lora_peak)},
                   "qlora": {"peak_bytes": int(1000 * qlora_peak)}},
    }


@pytest.mark.parametrize("kw, outcome", [
    ({}, "supported"),
    ({"lora": -0.1}, "supported"),                                     # better than full finetuning: no cost
    ({"qlora": 0.03}, "supported"),                                    # a little higher, inside the margin
    ({"qlora": 0.2}, "nuanced"),                                      # cheaper, but a cost in loss
    ({"lora_peak": 0.9}, "nuanced"),                                   # LoRA not cheaper enough
    ({"error": 1e-2, "lora_peak": 0.9, "qlora": 0.3}, "refuted"),      # nothing delivers
    ({"lora": 0.05, "qlora": 0.05, "noise": 0.2}, "inconclusive"),     # every reading unclear: supported still open
    ({"error": 1e-2, "lora": 0.05, "qlora": 0.05, "noise": 0.2}, "inconclusive"),  # tiles fail; refuted still open
    ({"error": 1e-2, "qlora": 0.3}, "nuanced"),                        # tiles fail, LoRA delivers
    ({"before": 2.56}, "inconclusive"),                                # full finetuning learned nothing
    ({"qlora": 0.38}, "nuanced"),                                      # QLoRA learned nothing: left out, named
    ({"lora": 0.38, "qlora": 0.38}, "inconclusive"),                   # no adapter learned: nothing to compare
])
def test_c21_rule_reaches_every_outcome(kw, outcome):
    verdict = er.RULES["C21"](results(**kw))
    assert verdict.outcome == outcome, verdict.reason


def test_non_inferiority_reads_against_the_margin():
    from whydecoder.verdicts import t_interval

    assert er.non_inferiority(t_interval([0.01, 0.02, 0.03]), 0.05) == "no cost"
    assert er.non_inferiority(t_interval([0.08, 0.09, 0.1]), 0.05) == "cost"
    assert er.non_inferiority(t_interval([0.036, 0.053, 0.069]), 0.05) == "unclear"
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        er.non_inferiority(t_interval([0.0, 0.1]), -1)


def test_c21_names_an_arm_that_did_not_learn():
    verdict = er.RULES["C21"](results(qlora=0.38))
    assert "qlora (2.931): did not learn" in verdict.reason and "qlora" not in verdict.numbers["readings"]


def test_c21_needs_five_seeds():
    r = results()
    r["lora"] = r["lora"][:3]
    assert er.RULES["C21"](r).outcome == "inconclusive"


@pytest.mark.parametrize("kw, says", [
    ({}, "tiles checked at two lengths (no training); three finetuning methods, five seeds each, all three methods "
         "past the learning gate; both adapter readings clear"),
    ({"qlora": 0.38}, "two of three methods past the learning gate; the one adapter reading clear"),
    ({"lora": 0.05, "qlora": 0.05, "noise": 0.2}, "; neither adapter reading clear"),
    ({"before": 2.56}, "full finetuning not past the learning gate: the adapters not compared"),
])
def test_c21_evidence_says_what_the_verdict_rests_on(kw, says):
    from whydecoder.results import settings_dict

    r = results(**kw) | {"settings": settings_dict(er.SETTINGS["full"])}
    for method in er.METHODS:
        r[method] = [dict(row, step_seconds=1.0) for row in r[method]]
    assert says in one_line(er.c21_evidence(r, er.RULES["C21"](r)).rests_on)
