"""C08's learned half: batches, hidden-state read-out, the position probe, the shuffle test
and the verdict logic."""

import dataclasses

import pytest
import torch

from conftest import one_line
from whydecoder.config import ModelConfig
from whydecoder.experiments import ch03_nope as nope
from whydecoder.model import Transformer
from whydecoder.text import ByteTokenizer, with_bos

TOK = ByteTokenizer()


def rows(batch=3, length=12, seed=0):
    return with_bos(torch.randint(97, 123, (batch, length - 1), generator=torch.Generator().manual_seed(seed)))


def model(arch, position, length=12):
    torch.manual_seed(0)
    return Transformer(ModelConfig(arch=arch, position=position, d_model=32, n_heads=2, n_layers=2, max_len=length))


def test_with_bos_prepends_one_column():
    r = rows()
    assert r.shape == (3, 12) and (r[:, 0] == TOK.bos).all()
    with pytest.raises(ValueError, match="rows must be"):
        with_bos(torch.zeros(3, dtype=torch.long))


def test_lm_batch_scores_only_from_score_from():
    r = rows()
    causal = nope.lm_batch("decoder", r, torch.Generator(), score_from=6)
    assert torch.equal(causal.tokens, r[:, :-1]) and torch.equal(causal.targets, r[:, 1:])
    # target t is the token at position t + 1: positions 6.. are scored
    assert causal.loss_mask[:, :5].sum() == 0 and causal.loss_mask[:, 5:].all()
    masked = nope.lm_batch("encoder", r, torch.Generator().manual_seed(1), score_from=6)
    assert masked.loss_mask[:, :6].sum() == 0 and masked.loss_mask[:, 6:].any(dim=1).all()
    assert torch.equal(masked.tokens[:, :6], r[:, :6]) and torch.equal(masked.targets, r)
    with pytest.raises(ValueError, match="score_from 11 must be in"):
        nope.lm_batch("decoder", r, torch.Generator(), score_from=11)
    with pytest.raises(ValueError, match="unknown arch 'prefix-lm'"):
        nope.lm_batch("prefix-lm", r, torch.Generator())


def test_layer_states_are_the_block_inputs_and_outputs():
    m = model("decoder", "learned")
    r = rows()
    states = nope.layer_states(m, r)
    assert len(states) == 3
    assert torch.allclose(states[0], m.embed(r) + m.decoder.positions.table[:12])
    with torch.no_grad():
        final = m.decoder.final_norm(states[-1])
    assert torch.allclose(final, m.hidden_states(r), atol=1e-6)
    with pytest.raises(ValueError, match="'prefix-lm'"):
        nope.layer_states(Transformer(ModelConfig(arch="prefix-lm", d_model=32, n_heads=2)), r)


def test_probe_reads_a_position_feature_and_not_noise():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(40, 10, 8, generator=g)
    with_pos = noise.clone()
    with_pos[..., 3] = torch.arange(10.0)  # one feature is the position
    assert nope.position_probe_r2(with_pos[:20], with_pos[20:]) > 0.99
    assert nope.position_probe_r2(noise[:20], noise[20:]) < 0.1
    with pytest.raises(ValueError, match="states must be"):
        nope.position_probe_r2(noise[:20], noise[20:, :5])


def test_shuffle_first_half_permutes_only_positions_1_to_half():
    r = rows(batch=4, length=12)
    mixed = nope.shuffle_first_half(r, torch.Generator().manual_seed(0))
    assert torch.equal(mixed[:, 0], r[:, 0]) and torch.equal(mixed[:, 6:], r[:, 6:])
    assert torch.equal(mixed[:, 1:6].sort(1).values, r[:, 1:6].sort(1).values)
    assert not torch.equal(mixed, r)


def test_bidirectional_nope_ignores_the_shuffle_and_causal_nope_does_not():
    r = rows(batch=4, length=12)
    mixed = nope.shuffle_first_half(r, torch.Generator().manual_seed(0))
    with torch.no_grad():
        enc = model("encoder", "none")
        assert (enc(mixed)[:, 6:] - enc(r)[:, 6:]).abs().max() < 1e-5
        dec = model("decoder", "none")
        assert (dec(mixed)[:, 6:] - dec(r)[:, 6:]).abs().max() > 1e-3


def fake_results(nope_loss=1.60, nope_probe=0.9, nope_input=0.0, nope_rise=0.05, mlm_gap=0.0, mlm_rise=0.0,
                 mlm_none_loss=2.5, positional_loss=1.55, seeds=5, spread=0.01, unigram=3.25, nope_spread=0.0):
    """Stored results as the full run writes them, with a small per-seed spread."""
    def runs(name, loss, probe=0.9, inp=0.9, rise=0.05, gap=1.0, extra=0.0):
        wobble = [spread * (k - (seeds - 1) / 2) + extra * (-1) ** k for k in range(seeds)]
        return [{"variant": name, "seed": k, "val_loss": loss + w, "second_half_loss": loss + w,
                 "shuffled_loss": loss + w + rise + 0.001 * k * (rise != 0), "probe_r2": [inp, probe, probe / 2],
                 "permutation_gap": gap} for k, w in enumerate(wobble)]
    return {"baseline": {"nats_per_byte": unigram, "majority_accuracy": 0.25},
            "causal, none": runs("causal, none", nope_loss, nope_probe, nope_input, nope_rise, extra=nope_spread),
            "causal, learned": runs("causal, learned", 1.58), "causal, rope": runs("causal, rope", positional_loss),
            "masked, none": runs("masked, none", mlm_none_loss, 0.0, 0.0, mlm_rise, mlm_gap),
            "masked, learned": runs("masked, learned", 2.4), "masked, rope": runs("masked, rope", 2.0)}


@pytest.mark.parametrize("changes, verdict", [
    ({}, "supported"),
    ({"nope_loss": 1.50}, "supported"),  # better than with positions counts too
    ({"nope_loss": 1.80}, "nuanced"),  # learns position but clearly worse
    ({"nope_probe": 0.3}, "refuted"),  # the probe finds no position
    ({"nope_input": 0.5}, "refuted"),  # position already in the input: not learned
    ({"nope_rise": -0.01}, "refuted"),  # order of the prefix does not matter to it
    ({"mlm_none_loss": 2.02}, "refuted"),  # the bidirectional NoPE model does not fail
    ({"mlm_gap": 0.1}, "refuted"),  # not equivariant after training: impossible, but checked
    ({"nope_loss": 1.63, "nope_spread": 0.1}, "inconclusive"),  # the interval straddles the margin
    ({"positional_loss": 3.0, "unigram": 3.25}, "inconclusive"),  # a model with positions learned nothing
    ({"seeds": 3}, "inconclusive"),  # fewer seeds than the rule asks for
])
def test_c08_rule_reaches_every_outcome(changes, verdict):
    assert nope.RULES["C08"](fake_results(**changes)).outcome == verdict


def test_summary_aggregates_over_seeds():
    runs = [{"variant": "causal, none", "val_loss": v, "shuffled_loss": v + d, "second_half_loss": v,
             "probe_r2": [0.0, p, p / 2], "permutation_gap": 0.5} for v, d, p in ((1.0, 0.1, 0.8), (2.0, 0.3, 0.6))]
    s = nope.summary(runs)["causal, none"]
    assert s["val_loss"][0] == pytest.approx(1.5) and s["shuffle_rise"][0] == pytest.approx(0.2)
    assert s["best_probe_r2"][0] == pytest.approx(0.7) and s["input_probe_r2"][0] == 0.0
    assert s["probe_r2_by_layer"] == pytest.approx([0.0, 0.7, 0.35])


def test_smoke_run_is_complete_and_deterministic(monkeypatch):
    # half the smoke scale's steps: what is checked (equivariance, determinism) does not need them
    monkeypatch.setitem(nope.SETTINGS, "smoke", dataclasses.replace(nope.SETTINGS["smoke"], steps=20))
    a = nope.run("smoke", progress=False)
    runs = nope.all_runs(a)
    assert len(runs) == len(nope.VARIANTS) * len(nope.SETTINGS["smoke"].seeds)
    summ = nope.summary(runs)
    assert summ["masked, none"]["permutation_gap"] < 1e-4  # trained or not, still equivariant
    assert abs(summ["masked, none"]["shuffle_rise"][0]) < 1e-4
    b = nope._one_run("causal, none", 0, nope.SETTINGS["smoke"],
                      {s: nope.corpus_tokens(s) for s in ("train", "val")}, progress=False)
    assert b["val_loss"] == runs[0]["val_loss"] and b["probe_r2"] == runs[0]["probe_r2"]


@pytest.mark.parametrize("changes, says", [
    ({"nope_loss": 1.80}, "six models, five seeds each; all four models with positions past the unigram gate; both "
                          "paired gaps clear of zero or inside the margin, plus a probe and a shuffle test"),
    ({"nope_loss": 1.63, "nope_spread": 0.1}, "; one of two paired gaps clear of zero or inside the margin"),
    ({"positional_loss": 3.0}, "nothing compared: three of four models with positions past the unigram gate"),
    ({"seeds": 3}, "nothing compared: three seeds, fewer than the 5 the rule asks for"),
])
def test_c08_evidence_says_what_the_verdict_rests_on(changes, says):
    from whydecoder.results import settings_dict

    results = fake_results(**changes) | {"settings": settings_dict(nope.SETTINGS["full"])}
    assert says in one_line(nope.c08_evidence(results, nope.RULES["C08"](results)).rests_on)
