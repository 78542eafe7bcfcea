"""C21: 4-bit weights, adapters, memory readings, the finetuning runs at smoke scale and
the rule driven to every outcome."""

import pytest
import torch

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
    row = er.one_finetune(method, 0, SMOKE)
    assert row["method"] == method and len(row["train_losses"]) == SMOKE.steps
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


def results(full=(2.5, 2.6, 2.55, 2.52, 2.58), lora=0.0, qlora=0.0, before=2.9, error=1e-6, ratio=10.0,
            lora_peak=0.5, qlora_peak=0.4, noise=0.002):
    def runs(method, shift):
        return [{"method": method, "seed": i, "val_loss": v + shift + (noise * (i % 2) if method != "full" else 0.0)}
                for i, v in enumerate(full)]
    return {
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
    ({"qlora": 0.2}, "nuanced"),                                      # cheaper, but a cost in loss
    ({"lora_peak": 0.9}, "nuanced"),                                   # LoRA not cheaper enough
    ({"error": 1e-2, "lora_peak": 0.9, "qlora": 0.3}, "refuted"),      # nothing delivers
    ({"lora": 0.05, "qlora": 0.05, "noise": 0.2}, "inconclusive"),     # every reading unclear
    ({"before": 2.56}, "inconclusive"),                                # full finetuning learned nothing
])
def test_c21_rule_reaches_every_outcome(kw, outcome):
    verdict = er.RULES["C21"](results(**kw))
    assert verdict.outcome == outcome, verdict.reason


def test_c21_needs_five_seeds():
    r = results()
    r["lora"] = r["lora"][:3]
    assert er.RULES["C21"](r).outcome == "inconclusive"
