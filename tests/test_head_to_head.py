"""The fair head-to-head: the capability test (and the old cross-attention failing it), the
budgets computed in code, the corpus, bad input refused, and its three rules driven to every
outcome on synthetic results."""

import copy
import math

import pytest
import torch

from whydecoder import head_to_head as h
from whydecoder.experiments import ch08_head_to_head as m
from whydecoder.text import corpus_tokens

FULL = h.SETTINGS["full"]


def test_the_encoder_decoder_finds_the_end_of_its_source_with_continued_positions_and_not_without():
    """The capability the old sweep lacked: with RedLLM's continued rotary positions the
    encoder-decoder names the last source byte as well as the decoder; with position-free
    cross-attention (the book's first recipe) its decoder has no direct way to tell which
    byte is last (only an encoder that learns to mark it could), and in this training it
    stays near chance."""
    decoder = h.capability("decoder", "d32", FULL, 150)["accuracy"]
    continued = h.capability("encoder-decoder", "d32", FULL, 150, cross_positions="continued")["accuracy"]
    none = h.capability("encoder-decoder", "d32", FULL, 150, cross_positions="none")["accuracy"]
    assert decoder > 0.95 and continued > 0.9 * decoder
    assert none < 0.4


def test_equal_parameters_and_the_budgets_each_run_states():
    train_bytes = 8_333_876
    for size in FULL.size_names():
        b = {a: h.budgets(a, size, FULL, train_bytes) for a in h.ARCHS}
        n = b["decoder"]["parameters"]
        assert all(abs(x["parameters"] - n) / n < 0.02 for x in b.values())
        assert len({x["bytes_read"] for x in b.values()}) == 1  # the same bytes for all four
        assert b["encoder-decoder"]["train_flops"] < 0.6 * b["decoder"]["train_flops"]  # each stack reads half
        assert b["encoder"]["supervised_targets"] < b["prefix-lm"]["supervised_targets"] < b["decoder"][
            "supervised_targets"]
        assert b["encoder"]["inference_flops_per_byte"] > b["decoder"]["inference_flops_per_byte"]  # no KV cache
        assert b["decoder"]["epochs"] <= FULL.max_epochs
    assert h.parameters(FULL.size_names()[-1], FULL) >= 500_000


def test_the_corpus_is_big_enough_and_its_splits_apart():
    train, val, test = (corpus_tokens(s, corpus="kjv-shakespeare") for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) > 5_000_000
    assert len(val) > 100_000 and len(test) > 100_000
    window = test[1000:1064].tolist()
    text = bytes(train.tolist())
    assert bytes(window) not in text


def test_the_rate_rule():
    assert h.rate_at(100, {100: 1e-3, 1000: 1e-2}, (1e-3, 1e-2)) == 1e-3
    assert h.rate_at(math.sqrt(1e5), {100: 1e-3, 1000: 1e-2}, (1e-3, 1e-2)) == pytest.approx(3.16e-3)
    assert h.rate_at(1e6, {100: 1e-3, 1000: 1e-2}, (1e-3, 1e-2)) == 1e-2  # held in the grid's range
    assert h.chosen_rates({"decoder": {"d8": {1e-3: 2.0, 3e-3: 1.9, 1e-2: math.inf}}}) == {"decoder": {"d8": 3e-3}}


@pytest.mark.parametrize("rates, message", [
    ((), "empty"), ((1e-3, 0.0), "not a positive"), ((1e-3, -1e-3), "not a positive"), ((1e-3, math.nan), "not a positive"),
    ("0.001", "sequence"), ((3e-3, 1e-3), "increasing"), ((1e-3, True), "not a positive")])
def test_a_bad_learning_rate_grid_is_refused(rates, message):
    with pytest.raises(ValueError, match=message):
        h.check_rates(rates)


def test_bad_input_is_refused_before_anything_trains():
    with pytest.raises(ValueError, match="unknown arch 'gpt'"):
        h.model_config("gpt", "d32", FULL)
    with pytest.raises(ValueError, match="unknown size 'd999'"):
        h.model_config("decoder", "d999", FULL)
    with pytest.raises(ValueError, match="more than max_epochs"):
        h.check_sizes(FULL, 1_000_000)  # the largest size would read a 1 MB text 24 times
    with pytest.raises(ValueError, match="grid_sizes"):
        h.HeadToHeadSettings(**{**FULL.__dict__, "grid_sizes": ("d56", "d32")})
    with pytest.raises(ValueError, match="heads of even size"):
        h.HeadToHeadSettings(**{**FULL.__dict__, "sizes": (("d30", 30, 2),), "grid_sizes": ("d30", "d30")})
    with pytest.raises(ValueError, match="'val' \\(the grid\\) or 'test'"):
        h.data("train")


def test_a_device_that_is_not_there_is_refused():
    from whydecoder.run_scale import check_device, using_device

    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not there"):
            with using_device("cuda"):
                pass
    from whydecoder.sweep import main

    with pytest.raises(SystemExit):
        main(["ch08_lr_grid", "--scale", "smoke", "--device", "cuda:99", "--out", "/tmp/never.json"])


# ---------------------------------------------------------------- the rules on synthetic results


def synthetic(loss: dict, probe: dict, reversal: dict | None = None, seeds=(0, 1, 2, 3, 4), noise=0.002) -> dict:
    """Results whose measures are given per architecture as a function of the size index:
    ``loss[arch](i)`` next-byte loss, ``probe[arch](i)`` accuracy, ``reversal[arch](i)``."""
    s = h.SETTINGS["full"]
    reversal = reversal or loss
    grid = {f"{a}:{z}:{r:g}": {"arch": a, "size": z, "lr": r, "own_loss": 2.0 + abs(math.log10(r) + 2.5)}
            for z in s.grid_sizes for a in h.ARCHS for r in s.grid_rates}
    results = {"settings": m.sweep_settings("full", grid),
               "baseline": {"nats_per_byte": 3.2, "majority_accuracy": 0.17, "probe_chance": 0.5},
               "controls": {a: {z: 0.55 for z in s.size_names()} for a in h.ARCHS}}
    rates = results["settings"]["learning_rates"]
    for i, size in enumerate(s.size_names()):
        for a in h.ARCHS:
            for k in s.seeds_at(size):
                jitter = noise * ((k * 7 + i * 3) % 5 - 2)
                b = h.budgets(a, size, s, 8_333_876)
                results[m.run_name(a, size, k)] = {
                    "arch": a, "size": size, "seed": k, "lr": rates[a][size], **b,
                    "continuation": {"mean": loss[a](i) + jitter}, "next_byte": {"mean": loss[a](i) + 0.5},
                    "reversal": reversal[a](i) + jitter,
                    "word_order": probe[a](i) - jitter}
    return results


def flat(value):
    return lambda i: value


def test_c18_supported_when_the_decoder_is_best_everywhere():
    loss = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.7 - 0.1 * i,
            "encoder-decoder": lambda i: 2.7 - 0.1 * i, "encoder": lambda i: 2.8 - 0.1 * i}
    probe = {"decoder": flat(0.9), "prefix-lm": flat(0.7), "encoder-decoder": flat(0.7), "encoder": flat(0.7)}
    v = m.RULES["C18"](synthetic(loss, probe))
    assert v.outcome == "supported", v.reason


def test_c18_nuanced_when_it_depends_on_the_task():
    loss = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.7 - 0.1 * i,
            "encoder-decoder": lambda i: 2.7 - 0.1 * i, "encoder": lambda i: 2.8 - 0.1 * i}
    reversal = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.2 - 0.1 * i,
                "encoder-decoder": lambda i: 2.0 - 0.1 * i, "encoder": lambda i: 2.6 - 0.1 * i}
    probe = {"decoder": flat(0.7), "prefix-lm": flat(0.75), "encoder-decoder": flat(0.75), "encoder": flat(0.9)}
    v = m.RULES["C18"](synthetic(loss, probe, reversal))
    assert v.outcome == "nuanced", v.reason


def test_c18_refuted_when_the_decoder_is_beaten_everywhere():
    loss = {"decoder": lambda i: 2.8 - 0.1 * i, "prefix-lm": lambda i: 2.5 - 0.1 * i,
            "encoder-decoder": lambda i: 2.4 - 0.1 * i, "encoder": lambda i: 2.3 - 0.1 * i}
    probe = {"decoder": flat(0.6), "prefix-lm": flat(0.8), "encoder-decoder": flat(0.8), "encoder": flat(0.9)}
    v = m.RULES["C18"](synthetic(loss, probe))
    assert v.outcome == "refuted", v.reason


def test_c18_inconclusive_when_only_the_decoder_learned_and_when_rates_are_not_the_grids():
    loss = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": flat(3.1), "encoder-decoder": flat(3.1),
            "encoder": flat(3.1)}
    probe = {"decoder": flat(0.9), "prefix-lm": flat(0.5), "encoder-decoder": flat(0.5), "encoder": flat(0.5)}
    results = synthetic(loss, probe)
    v = m.RULES["C18"](results)
    assert v.outcome == "inconclusive" and "failed its gate at every size" in v.reason  # no win over a model that learned nothing
    good = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.7 - 0.1 * i,
            "encoder-decoder": lambda i: 2.7 - 0.1 * i, "encoder": lambda i: 2.8 - 0.1 * i}
    results = synthetic(good, {a: flat(0.8) for a in h.ARCHS})
    results["decoder:d32:0"]["lr"] = 0.5
    assert "another rate than the grid's" in m.RULES["C18"](results).reason
    results = synthetic(good, {a: flat(0.8) for a in h.ARCHS})
    for k in (2, 3, 4):
        del results[f"encoder:d112:{k}"]
    assert "fewer than the 3" in m.RULES["C18"](results).reason


def test_the_probe_gate_beats_the_untrained_model_too():
    loss = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.7 - 0.1 * i,
            "encoder-decoder": lambda i: 2.7 - 0.1 * i, "encoder": lambda i: 2.8 - 0.1 * i}
    results = synthetic(loss, {a: flat(0.7) for a in h.ARCHS})
    p = m.RULES["C18"].parameters
    assert m.gated_sizes(results, p)["understanding"]["encoder"]
    results["controls"]["encoder"] = {z: 0.68 for z in FULL.size_names()}  # random features already tell most
    assert m.gated_sizes(results, p)["understanding"]["encoder"] == []


def test_c12_grows_shrinks_and_leaves_out_sizes_that_did_not_learn():
    base = {"prefix-lm": flat(2.6), "encoder-decoder": flat(2.6)}
    grows = synthetic(base | {"decoder": lambda i: 2.6 - 0.2 * i, "encoder": lambda i: 2.7 - 0.1 * i},
                      {**{a: flat(0.7) for a in h.ARCHS}, "decoder": lambda i: 0.6 + 0.05 * i,
                       "encoder": lambda i: 0.6 + 0.02 * i})
    assert m.RULES["C12"](grows).outcome == "supported"
    shrinks = synthetic(base | {"decoder": lambda i: 2.4 - 0.05 * i, "encoder": lambda i: 2.7 - 0.15 * i},
                        {**{a: flat(0.7) for a in h.ARCHS}, "decoder": lambda i: 0.8, "encoder": lambda i: 0.6 + 0.05 * i})
    assert m.RULES["C12"](shrinks).outcome == "refuted"
    # the masked LM learns nothing at the two smallest sizes: they are left out, the rest still decides
    late = synthetic(base | {"decoder": lambda i: 2.6 - 0.2 * i, "encoder": lambda i: 3.1 if i < 2 else 2.7 - 0.1 * i},
                     {**{a: flat(0.7) for a in h.ARCHS}, "decoder": lambda i: 0.6 + 0.05 * i,
                      "encoder": lambda i: 0.5 if i < 2 else 0.6 + 0.02 * i})
    v = m.RULES["C12"](late)
    assert v.outcome == "supported" and "over d56, d80, d112" in v.reason


def test_c16_predictable_missed_and_too_few_sizes():
    law = lambda i: 1.5 + 1.2 * (2.0 ** i) ** -0.5  # noqa: E731 (a clean power law in the size index)
    others = {"prefix-lm": law, "encoder-decoder": law, "encoder": law}
    probe = {a: flat(0.8) for a in h.ARCHS}
    params = dict(m.RULES["C16"].parameters, replicates=40)
    # synthetic points lie on a power law in the size index, not in N: make the decoder's exactly one in N
    results = synthetic({"decoder": law} | others, probe)
    n = [h.parameters(z, FULL) for z in FULL.size_names()]
    for name, r in results.items():
        if name.count(":") == 2:
            i = FULL.size_names().index(r["size"])
            r["continuation"]["mean"] = 1.5 + 1.2 * (n[i] / n[0]) ** -0.5 + (0.3 if r["arch"] == "encoder" and i == 4 else 0)
    v = m._c16_decide(results, params)
    assert v.outcome == "supported", v.reason
    for name, r in results.items():
        if name.count(":") == 2 and r["arch"] == "decoder" and r["size"] == "d112":
            r["continuation"]["mean"] += 0.3
    assert m._c16_decide(results, params).outcome == "refuted"
    few = copy.deepcopy(results)
    for name, r in few.items():
        if name.count(":") == 2 and r["arch"] == "decoder" and r["size"] in ("d32", "d40"):
            r["continuation"]["mean"] = 3.1
    v = m._c16_decide(few, params)
    assert v.outcome == "inconclusive" and "not counted" in v.reason


def test_the_device_reaches_the_experiments(monkeypatch):
    """The --device switch, wired on a CPU: inside using_device the experiments train where
    it says; a GPU torch does not see is refused (above)."""
    from whydecoder.run_scale import current_device, using_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with using_device("cuda"):
        assert current_device() == "cuda"
    assert current_device() == "cpu"
    with pytest.raises(ValueError, match="sees 1 GPU"):
        with using_device("cuda:1"):
            pass


# ---------------------------------------------------------------- what each verdict rests on

GOOD = {"decoder": lambda i: 2.5 - 0.1 * i, "prefix-lm": lambda i: 2.7 - 0.1 * i,
        "encoder-decoder": lambda i: 2.7 - 0.1 * i, "encoder": lambda i: 2.8 - 0.1 * i}


def test_c18_evidence_says_what_the_verdict_rests_on():
    results = synthetic(GOOD, {a: flat(0.8) for a in h.ARCHS} | {"decoder": flat(0.9)})
    claim = {c.id: c for c in m.CLAIMS}["C18"]
    verdict, evidence = claim.decide(results, [])
    assert verdict.outcome == "supported"
    assert evidence.rests_on == (
        "five sizes x four architectures, five seeds each; all 12 architecture-and-family pairs past the gate at "
        "some size; all eight cells counted, in all three task families; all eight counted cells decided (best or "
        "beaten)")
    assert "Read over the two generation families alone (described, not judged): supported" in evidence.text
    for k in (3, 4):
        del results[f"encoder:d112:{k}"]
    assert "five seeds each (three at the largest)" in claim.decide(results, [])[1].rests_on
    unlearned = synthetic(GOOD, {a: flat(0.8) for a in h.ARCHS})
    unlearned["decoder:d32:0"]["lr"] = 0.5
    assert claim.decide(unlearned, [])[1].rests_on.startswith(
        "nothing compared: decoder at d32 trained at another rate than the grid's (seeds [0])")


def test_c12_and_c16_evidence_say_what_the_verdicts_rest_on(monkeypatch):
    claims = {c.id: c for c in m.CLAIMS}
    grows = synthetic({**GOOD, "decoder": lambda i: 2.6 - 0.2 * i, "encoder": lambda i: 2.7 - 0.1 * i},
                      {**{a: flat(0.7) for a in h.ARCHS}, "decoder": lambda i: 0.6 + 0.05 * i,
                       "encoder": lambda i: 0.6 + 0.02 * i})
    assert claims["C12"].decide(grows)[1].rests_on == (
        "five sizes x four architectures, five seeds each; the decoder and the masked LM both past their gates at "
        "three sizes or more in all three task families; all three slopes clear of zero or inside the margin")
    slow = m.extrapolate  # few bootstrap replicates keep the test fast
    monkeypatch.setattr(m, "extrapolate", lambda xs, losses, replicates, seed: slow(xs, losses, 20, seed))
    rests_on = claims["C16"].decide(grows)[1].rests_on
    assert rests_on.startswith("five sizes x four architectures, five seeds each; all four architectures past the "
                               "continuation gate at four sizes or more, the largest among them; ") and \
        rests_on.endswith("predictions of the largest size clear")
