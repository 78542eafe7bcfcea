import pytest
import torch

from conftest import one_line
from whydecoder.experiments.ch05_icl import (
    ICL_ARCHS,
    InContextRegressor,
    LinearSelfAttention,
    baselines,
    error_curve,
    gd_layer,
    gd_prediction,
    optimal_gd_lr,
    regression_tasks,
    train_linear_attention,
    train_regressor,
)


def _tasks(batch=16, n=11, dim=5, seed=0):
    x, y, w = regression_tasks(batch, n, dim, torch.Generator().manual_seed(seed))
    return x[:, : n - 1], y[:, : n - 1], x[:, n - 1], y[:, n - 1]


def test_constructed_layer_is_one_gradient_step():
    x, y, xq, _ = _tasks()
    for lr in (0.1, 0.625, 2.0):
        torch.testing.assert_close(gd_layer(5, lr)(x, y, xq), gd_prediction(x, y, xq, lr), rtol=0, atol=1e-12)


def test_gd_prediction_is_a_step_on_the_squared_loss():
    """Against autograd: the gradient of 1/(2N) sum (W x_i - y_i)^2 at W = 0."""
    x, y, xq, _ = _tasks(batch=1)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * ((x[0] @ w - y[0]) ** 2).mean()
    loss.backward()
    torch.testing.assert_close(-0.3 * w.grad @ xq[0], gd_prediction(x, y, xq, 0.3)[0])


def test_optimal_step_size_beats_its_neighbours():
    x, y, xq, yq = _tasks(batch=20000, seed=1)
    best = optimal_gd_lr(10, 5)
    err = {lr: float((gd_prediction(x, y, xq, lr) - yq).pow(2).mean()) for lr in (0.8 * best, best, 1.2 * best)}
    assert err[best] < err[0.8 * best] and err[best] < err[1.2 * best]


def test_trained_linear_attention_learns_something():
    layer, losses = train_linear_attention(3, 6, steps=150, batch=128, lr=1e-2)
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20


def test_baselines_recover_the_task_with_enough_points():
    x, y, xq, yq = _tasks(batch=8, n=12)
    preds = baselines(x, y, xq)
    torch.testing.assert_close(preds["least squares"], yq)
    assert (preds["ridge"] - yq).abs().max() < 0.2


@pytest.mark.parametrize("arch", ICL_ARCHS)
def test_regressor_runs_for_every_k_and_trains(arch):
    torch.manual_seed(0)
    model = InContextRegressor(arch, dim=3, max_points=5, d_model=16, n_layers=2, n_heads=2)
    x, y, xq, _ = _tasks(batch=4, n=6, dim=3)
    for k in range(6):
        assert model(x[:, :k], y[:, :k], xq).shape == (4,)
    losses = train_regressor(model, steps=5, batch=8)
    assert len(losses) == 5
    curve = error_curve(model, 5, 3, n_tasks=20)
    assert len(curve) == 6 and all(e >= 0 for e in curve)


def test_prefix_lm_demos_see_each_other_and_causal_do_not():
    """Changing the last demonstration changes the causal model's view of the first one
    only through the query; in the prefix-LM it changes the first demo's representation."""
    torch.manual_seed(0)
    x, y, xq, _ = _tasks(batch=1, n=5, dim=3)
    changed = y.clone()
    changed[0, -1] += 1.0
    for arch, should_change in (("decoder", False), ("prefix-lm", True)):
        model = InContextRegressor(arch, dim=3, max_points=5, d_model=16, n_layers=2, n_heads=2)
        context, query = model._tokens(x.float(), y.float(), xq.float())
        context2, _ = model._tokens(x.float(), changed.float(), xq.float())
        prefix = context.shape[1] if arch == "prefix-lm" else None
        h1 = model.core.hidden_states(inputs_embeds=model.read_in(torch.cat([context, query], 1)), prefix_len=prefix)
        h2 = model.core.hidden_states(inputs_embeds=model.read_in(torch.cat([context2, query], 1)), prefix_len=prefix)
        assert bool((h1[0, 1] - h2[0, 1]).abs().max() > 1e-6) == should_change


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: InContextRegressor("encoder", 3, 5), "unknown arch 'encoder'"),
        (lambda: InContextRegressor("encoder-decoder", 3, 5, n_layers=3), "odd n_layers=3"),
        (lambda: InContextRegressor("decoder", 3, 2)(*_tasks(2, 5, 3)[:3]), "4 demonstrations exceed max_points 2"),
        (lambda: InContextRegressor("decoder", 4, 5)(*_tasks(2, 5, 3)[:3]), "dimension 4"),
        (lambda: regression_tasks(0, 3, 2, torch.Generator()), "got 0"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_linear_attention_zero_init_predicts_zero():
    x, y, xq, _ = _tasks()
    assert (LinearSelfAttention(5)(x, y, xq) == 0).all()


def test_discrete_tasks_are_well_formed():
    from whydecoder.experiments.ch05_icl import discrete_tasks

    g = torch.Generator().manual_seed(0)
    x, y, xq, yq = discrete_tasks("shift", 50, 3, 16, g)
    shift = (y - x) % 16
    assert (shift == shift[:, :1]).all()  # one shift per task
    assert ((yq - xq) % 16 == shift[:, 0]).all()
    assert not (x == xq[:, None]).any()  # the query is new
    x, y, xq, yq = discrete_tasks("lookup", 50, 4, 16, g)
    hit = x == xq[:, None]
    assert hit.sum(1).eq(1).all() and (y[hit] == yq).all()  # the query was demonstrated
    with pytest.raises(ValueError, match="'sort'"):
        discrete_tasks("sort", 2, 2, 8, g)
    with pytest.raises(ValueError, match="k=8"):
        discrete_tasks("shift", 2, 8, 8, g)


@pytest.mark.parametrize("arch", ICL_ARCHS)
def test_few_shot_classifier_runs_and_trains(arch):
    from whydecoder.experiments.ch05_icl import FewShotClassifier, accuracy_curve, train_few_shot

    torch.manual_seed(0)
    model = FewShotClassifier(arch, n_symbols=8, max_shots=3, d_model=16, n_layers=2, n_heads=2)
    losses = train_few_shot(model, "lookup", steps=4, batch=8)
    assert len(losses) == 4
    acc = accuracy_curve(model, "lookup", n_tasks=20)
    assert len(acc) == 3 and all(0 <= a <= 1 for a in acc)
    with pytest.raises(ValueError, match="4 demonstrations exceed max_shots 3"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("model_class, kwargs", [("InContextRegressor", dict(dim=5, max_points=11)),
                                                 ("FewShotClassifier", dict(n_symbols=16, max_shots=8))])
def test_in_context_models_are_at_equal_parameters(model_class, kwargs):
    import whydecoder.experiments.ch05_icl as icl
    from whydecoder.accounting import parameter_count

    counts = {arch: parameter_count(getattr(icl, model_class)(arch, **kwargs).core.cfg, embeddings=False)
              for arch in ICL_ARCHS}
    assert counts["decoder"] == counts["prefix-lm"]
    assert abs(counts["encoder-decoder"] - counts["decoder"]) / counts["decoder"] < 0.02


def test_format_baseline():
    from whydecoder.experiments.ch05_icl import format_baseline

    assert format_baseline("shift", 8, 16) == pytest.approx(1 / 16)
    assert format_baseline("lookup", 2, 16) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="'sort'"):
        format_baseline("sort", 2, 16)


def c11_results(regression=(0.30, 0.40), shift=(0.60, 0.50), lookup=(0.60, 0.50), spread=0.01, seeds=5,
                params=(1000, 1000, 1010)):
    """Fake stored results: per task (decoder, encoder-decoder) mean scores; the prefix-LM
    scores like the decoder."""
    counts = dict(zip(("decoder", "prefix-lm", "encoder-decoder"), params))
    means = {"decoder": 0, "prefix-lm": 0, "encoder-decoder": 1}
    regression_rows, few_rows = {}, {}
    for arch, which in means.items():
        for seed in range(seeds):
            wobble = spread * (((seed + 2 * which) % 3) - 1)  # not the same for both models: a paired spread
            err = regression[which] + wobble
            regression_rows[f"{arch}/{seed}"] = {"arch": arch, "seed": seed, "errors": [1.0] + [err] * 11,
                                                 "non_embedding_parameters": counts[arch]}
            for task, acc in (("shift", shift), ("lookup", lookup)):
                few_rows[f"{task}/{arch}/{seed}"] = {"task": task, "arch": arch, "seed": seed,
                                                     "accuracy": [acc[which] + wobble * (seed % 2)] * 8,
                                                     "non_embedding_parameters": counts[arch]}
    regression_rows["least squares"] = {"arch": "least squares", "seed": None, "errors": [0.0] * 12}
    return {"settings": {"max_shots": 8, "n_symbols": 16}, "regression": regression_rows, "few_shot": few_rows}


@pytest.mark.parametrize("changes, outcome", [
    ({}, "supported"),
    ({"regression": (0.40, 0.30), "shift": (0.50, 0.60), "lookup": (0.5, 0.5)}, "refuted"),
    ({"regression": (0.40, 0.30)}, "nuanced"),
    ({"regression": (0.95, 0.95), "shift": (0.10, 0.10), "lookup": (0.3, 0.3)}, "inconclusive"),  # nothing learned
    ({"shift": (0.06, 0.06), "lookup": (0.3, 0.3)}, "supported"),  # only regression counts
    ({"regression": (0.40, 0.41), "shift": (0.06, 0.06), "lookup": (0.3, 0.3), "spread": 0.2}, "inconclusive"),
    ({"seeds": 3}, "inconclusive"),
    ({"params": (1000, 1000, 1200)}, "inconclusive"),  # not at equal parameters
])
def test_c11_rule_reaches_every_outcome(changes, outcome):
    from whydecoder.experiments.ch05_icl import RULES

    assert RULES["C11"](c11_results(**changes)).outcome == outcome


@pytest.mark.parametrize("changes, says", [
    ({}, "all three tasks learned by both the decoder and the encoder-decoder, five seeds each; all three readings "
         "clear of zero or inside the margin"),
    ({"shift": (0.06, 0.06), "lookup": (0.3, 0.3)}, "one of three tasks learned by both the decoder and the "
                                                    "encoder-decoder (regression), five seeds each; its reading clear"),
    ({"regression": (0.95, 0.95), "shift": (0.10, 0.10), "lookup": (0.3, 0.3)}, "nothing compared: none of the three "
                                                                                "tasks learned by both"),
    ({"seeds": 3}, "nothing compared: three seeds, fewer than the 5 the rule asks for"),
])
def test_c11_evidence_says_what_the_verdict_rests_on(changes, says):
    from whydecoder.experiments.ch05_icl import RULES, SETTINGS, c11_evidence
    from whydecoder.results import settings_dict

    results = c11_results(**changes)
    results |= {"settings": settings_dict(SETTINGS["full"]), "linear_attention": {"cosine": 0.999}}
    assert says in one_line(c11_evidence(results, RULES["C11"](results)).rests_on)
