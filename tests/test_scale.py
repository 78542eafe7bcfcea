"""The scale sweep (C12, C16, C18): budgets, the measures, the power-law fit, the rules
driven to every outcome, and the sweep engine (local workers and submitit's local executor)."""

import json

import numpy as np
import pytest
import torch

from whydecoder import sweep
from whydecoder.experiments import ch08_scale as sc
from whydecoder.model import Transformer

SMOKE = sc.SETTINGS["smoke"]
FULL = sc.SETTINGS["full"]


def test_every_size_is_at_equal_parameters_and_spans_thirty_fold():
    b = sc.budgets(FULL)
    for size, counts in b.items():
        assert max(abs(n - counts["decoder"]) / counts["decoder"] for n in counts.values()) < 0.02, size
    n = [sc.parameters(z, FULL) for z, _, _ in FULL.sizes]
    assert n == sorted(n) and n[-1] / n[0] >= 30
    bytes_per_parameter = [sc.rows_per_step(z, FULL) * FULL.length * FULL.steps / sc.parameters(z, FULL)
                           for z, _, _ in FULL.sizes]
    assert all(abs(r / FULL.bytes_per_parameter - 1) < 0.25 for r in bytes_per_parameter)
    with pytest.raises(ValueError, match="unknown arch 'rnn'"):
        sc.model_config("rnn", "d8", FULL)
    with pytest.raises(ValueError, match="unknown size 'd99'"):
        sc.model_config("decoder", "d99", FULL)


def test_the_encoder_decoder_pays_less_per_generated_token_and_the_masked_lm_more():
    for z, _, _ in FULL.sizes:
        dec = sc.flops_per_generated_token("decoder", z, FULL)
        assert sc.flops_per_generated_token("encoder-decoder", z, FULL) < dec
        assert sc.flops_per_generated_token("encoder", z, FULL) > 10 * dec


def test_each_architecture_predicts_the_next_byte_from_the_context_alone():
    torch.manual_seed(0)
    context = torch.randint(97, 123, (3, 10))
    for arch in sc.ARCHS:
        model = Transformer(sc.model_config(arch, "d8", SMOKE)).eval()
        logits = sc.next_byte_logits(model, arch, context)
        assert logits.shape == (3, sc.TOKENIZER.vocab_size)
        if arch in ("decoder", "prefix-lm"):  # what follows the context cannot leak in
            longer = torch.cat([context, torch.randint(97, 123, (3, 5))], dim=1)
            whole = model(longer) if arch == "decoder" else model(longer, prefix_len=torch.full((3,), 10))
            assert torch.allclose(whole[:, 9], logits, atol=1e-5)


def test_shuffled_words_keep_the_bytes_and_change_the_order():
    import random

    window = list(b"the cat sat on the mat today")
    shuffled = sc.shuffle_words(window, random.Random(0))
    assert sorted(shuffled) == sorted(window) and shuffled != window and len(shuffled) == len(window)
    with pytest.raises(ValueError, match="cannot be reordered"):
        sc.shuffle_words(list(b"word"), random.Random(0))


def test_the_probe_reads_a_separable_label_and_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([1, 0] * 100)
    groups = torch.arange(200) // 2
    separable = torch.randn(200, 4, generator=g) + 3 * labels[:, None]
    assert sc.probe_accuracy(separable, labels, groups) > 0.95
    assert 0.3 < sc.probe_accuracy(torch.randn(200, 4, generator=g), labels, groups) < 0.7


def test_fill_in_scores_candidates_for_the_decoder_and_reads_the_mask_for_the_encoder():
    rows = torch.randint(97, 123, (2, 12))
    candidates = torch.arange(97, 123)
    for arch in ("decoder", "encoder"):
        model = Transformer(sc.model_config(arch, "d8", SMOKE)).eval()
        assert 0.0 <= sc.fill_in_accuracy(model, arch, rows, candidates) <= 1.0
    assert sc.fill_in_accuracy(Transformer(sc.model_config("prefix-lm", "d8", SMOKE)), "prefix-lm", rows, candidates) is None


def test_the_power_law_fit_recovers_its_parameters_and_refuses_too_few_points():
    n = [1e3, 2e3, 5e3, 1e4, 3e4]
    loss = [1.5 + 2.0 * (x / 1e3) ** -0.4 for x in n]
    a, alpha, floor = sc.fit_power_law(n, loss)
    assert abs(alpha - 0.4) < 1e-3 and abs(floor - 1.5) < 1e-3 and abs(a - 2.0) < 1e-3
    with pytest.raises(ValueError, match="at least 3"):
        sc.fit_power_law(n[:2], loss[:2])


# ---------------------------------------------------------------- synthetic sweeps for the rules

N = {"s1": 1000, "s2": 2000, "s3": 4000, "s4": 8000, "s5": 16000, "s6": 32000}


def fake(loss, probe=None, fill=None, seeds=5, own=None, baseline=3.3, flops=None):
    """A sweep whose next-byte loss is ``loss(arch, n, seed)``; the probe and fill-in
    accuracies likewise; FLOPs per token proportional to N (the encoder-decoder's half)."""
    probe = probe or (lambda a, n, k: 0.6)
    fill = fill or (lambda a, n, k: 0.5)
    flops = flops or {"decoder": 1.0, "prefix-lm": 1.0, "encoder-decoder": 0.5, "encoder": 30.0}
    results = {"settings": {"sizes": [[z, 8, 2] for z in N]}, "baseline": {"nats_per_byte": baseline}}
    for z, n in N.items():
        for a in sc.ARCHS:
            for k in range(seeds):
                value = loss(a, n, k)
                results[f"{a}:{z}:{k}"] = {
                    "arch": a, "size": z, "seed": k, "parameters": n, "train_flops": 6 * 40 * n * n,
                    "flops_per_token": flops[a] * 2 * n, "own_loss": own(a, n, k) if own else value,
                    "next_byte": {"mean": value}, "word_order": probe(a, n, k),
                    "fill_in": fill(a, n, k) if a in ("decoder", "encoder") else None}
    return results


def law(alpha=0.3, floor=1.0, a=2.0):
    return lambda n: floor + a * (n / 1000) ** -alpha


def noise(k, scale=0.003):
    return scale * ((k * 7919) % 5 - 2)


def lead(per_decade):
    """Masked LM worse than the decoder by ``per_decade`` nats more per decade."""
    def loss(a, n, k):
        base = law()(n) + noise(k)
        return base + (0.1 + per_decade * np.log10(n / 1000) if a == "encoder" else 0.05 * (a != "decoder"))
    return loss


def grows(per_decade):
    return lambda a, n, k: (0.6 + per_decade * np.log10(n / 1000) if a == "decoder" else 0.6) + noise(k, 0.001)


def test_c12_reaches_every_outcome():
    rule = sc.RULES["C12"]
    assert rule(fake(lead(0.1), grows(0.1), grows(0.1))).outcome == "supported"
    assert rule(fake(lead(-0.1), grows(0.0), grows(-0.1))).outcome == "refuted"
    assert rule(fake(lead(0.1), grows(-0.1), grows(0.0))).outcome == "nuanced"
    def wild(a, n, k):  # seeds that disagree: no slope can be told
        return 0.6 + 0.3 * float(np.random.default_rng([sum(a.encode()), int(n), k]).standard_normal())

    assert rule(fake(lead(0.1), wild, wild)).outcome == "inconclusive"
    unlearned = fake(lead(0.1), grows(0.1), grows(0.1), own=lambda a, n, k: 3.25)
    assert "neither the decoder nor the masked LM (encoder) beat the unigram" in rule(unlearned).reason  # no list
    assert rule(fake(lead(0.1), seeds=3)).outcome == "inconclusive"


def per_arch(laws):
    return lambda a, n, k: laws[a](n) + noise(k)


def test_c16_reaches_every_outcome():
    import dataclasses

    full = sc.RULES["C16"]  # the same rule with fewer bootstrap replicates, to keep the test fast
    rule = dataclasses.replace(full, parameters=full.parameters | {"replicates": 60})
    same = {a: law() for a in sc.ARCHS}
    assert rule(fake(per_arch(same))).outcome == "nuanced"
    bent = dict(same, encoder=lambda n: law()(n) - (0.3 if n == 32000 else 0.0))
    assert rule(fake(per_arch(bent))).outcome == "supported"
    broken = dict(same, decoder=lambda n: law()(n) + (0.3 if n == 32000 else 0.0))
    assert rule(fake(per_arch(broken))).outcome == "refuted"
    noisy = lambda a, n, k: law()(n) + noise(k, 0.2)  # noqa: E731
    assert rule(fake(noisy)).outcome == "inconclusive"
    assert "nothing learned" in rule(fake(per_arch(same), baseline=2.0)).reason


def test_c18_reaches_every_outcome():
    rule = sc.RULES["C18"]
    better = {"decoder": 0.0, "prefix-lm": 0.1, "encoder-decoder": 0.2, "encoder": 0.3}

    def offset(d):
        return lambda a, n, k: law()(n) + d[a] + noise(k)

    assert rule(fake(offset(better))).outcome == "supported"
    worse = {"decoder": 0.3, "prefix-lm": 0.0, "encoder-decoder": 0.1, "encoder": 0.0}
    assert rule(fake(offset(worse))).outcome == "refuted"
    # best at equal parameters, but a wider encoder-decoder (cheap per token) wins at equal FLOPs
    cheap = fake(offset({"decoder": 0.0, "prefix-lm": 0.1, "encoder-decoder": 0.02, "encoder": 0.3}),
                 flops={"decoder": 1.0, "prefix-lm": 1.0, "encoder-decoder": 0.25, "encoder": 30.0})
    assert rule(cheap).outcome == "nuanced"
    tied = {a: 0.0 for a in sc.ARCHS}
    same_cost = {"decoder": 1.0, "prefix-lm": 1.0, "encoder-decoder": 1.0, "encoder": 30.0}
    assert rule(fake(offset(tied), flops=same_cost)).outcome == "inconclusive"
    assert "does not beat the unigram" in rule(fake(offset(better), baseline=1.2)).reason


def test_the_head_to_head_refuses_to_extrapolate_the_masked_lm():
    h = sc.head_to_head(fake(lambda a, n, k: law()(n) + noise(k)), 0.02)
    assert h["flops"]["encoder"] is None and h["flops"]["encoder-decoder"] is not None
    assert h["reference"] == "s5"  # the encoder-decoder's largest costs half: it reaches the decoder's s5


# ---------------------------------------------------------------- the sweep engine


class Toy:
    __name__ = "toy"
    SECTIONS = ("a", "b", "c", "d", "e")

    @staticmethod
    def section_cost(name, scale):
        return {"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}[name]


def test_plan_balances_the_groups_and_keeps_the_order():
    groups = sweep.plan(Toy, "smoke", 2)
    assert sorted(sum(groups, [])) == list(Toy.SECTIONS)
    loads = [sum(Toy.section_cost(n, "smoke") for n in g) for g in groups]
    assert max(loads) - min(loads) <= 1
    assert all(g == sorted(g) for g in groups)
    assert sweep.plan(Toy, "smoke", 4, done=["a", "b"], only=["a", "c"]) == [["c"]]
    with pytest.raises(ValueError, match="not sections"):
        sweep.plan(Toy, "smoke", 2, only=["z"])
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        sweep.plan(Toy, "smoke", 0)


def test_a_partial_sweep_runs_in_submitit_and_resumes(tmp_path):
    folder, out = tmp_path / "parts", tmp_path / "joined.json"
    first = ["baseline", "decoder:d8:0"]
    folder.mkdir()
    sweep.run_part("ch08_scale", "smoke", first, str(folder / "part-000.json"))  # an earlier job, in this process
    sweep.sweep("ch08_scale", "smoke", 2, "submitit-local", folder, out, only=first + ["encoder:d8:0"], progress=False)
    assert len(list(folder.glob("part-*.json"))) == 2  # the two done were not planned again: one new job
    stored = json.loads(out.read_text())["results"]
    assert set(stored) == {"settings", *first, "encoder:d8:0"}
    assert stored["decoder:d8:0"]["next_byte"]["mean"] > 0 and stored["encoder:d8:0"]["next_byte"]["mean"] > 0
    with pytest.raises(ValueError, match="unknown executor"):
        sweep.sweep("ch08_scale", "smoke", 2, "ray", folder, out)
    with pytest.raises(ValueError, match="no experiment module"):
        sweep.sweep("ch99_nothing", "smoke", 2, "local", folder, out)

