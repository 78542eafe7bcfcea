"""C20: planted facts, recall, budgets, decode costs, the smoke run and the rule driven to
every outcome."""

import pytest
import torch

from conftest import one_line
from whydecoder.experiments import ch07_architecture as ar
from whydecoder.model import Transformer
from whydecoder.text import with_bos

SMOKE = ar.SETTINGS["smoke"]


def test_planted_facts_hold_marker_query_and_answer():
    g = torch.Generator().manual_seed(0)
    rows = with_bos(torch.randint(97, 123, (6, 40), generator=g))
    gaps = torch.tensor([1, 5, 10, 20, 30, 38])
    planted, query = ar.plant_facts(rows, gaps, g)
    for i, gap in enumerate(gaps.tolist()):
        q = int(query[i])
        assert planted[i, q] == ar.TOKENIZER.sep and planted[i, q + 1] == planted[i, q - gap]
        assert int(planted[i, q - gap]) in ar.MARKERS
        assert (planted[i] != rows[i]).sum() <= 3
    with pytest.raises(ValueError, match="gaps must be one per row in \\[1, 38\\]"):
        ar.plant_facts(rows, torch.full((6,), 39), g)


def test_budgets_are_equal_where_the_variants_say():
    b = ar.budgets(ar.SETTINGS["full"])
    dense = b["dense"]["total"]
    assert abs(b["moe_active"]["active"] - dense) / dense < 0.02 and b["moe_active"]["total"] > 1.5 * dense
    assert abs(b["moe_total"]["total"] - dense) / dense < 0.02 and b["moe_total"]["active"] < 0.8 * dense
    assert b["retention"]["total"] == dense
    with pytest.raises(ValueError, match="unknown variant 'rwkv'"):
        ar.variant_config("rwkv", SMOKE)


def test_recall_reads_the_logit_at_the_query():
    g = torch.Generator().manual_seed(1)
    rows, query = ar.plant_facts(with_bos(torch.randint(97, 123, (4, 20), generator=g)), torch.full((4,), 5), g)

    class Oracle(torch.nn.Module):  # puts all its mass on the true next token
        def forward(self, tokens):
            logits = torch.zeros(*tokens.shape, 300)
            logits[:, :-1].scatter_(2, tokens[:, 1:, None], 1.0)
            logits[torch.arange(4), query, rows[torch.arange(4), query + 1]] = 1.0
            return logits

        def eval(self):
            return self

    assert ar.recall_accuracy(Oracle(), rows, query) == 1.0


def test_the_training_loss_adds_recall_and_balance():
    model = Transformer(ar.variant_config("moe_active", SMOKE))
    g = torch.Generator().manual_seed(0)
    from whydecoder.objectives import batch_loss, full_lm
    batch = full_lm(ar.training_rows(torch.randint(97, 123, (500,), generator=g), SMOKE, g))
    plain = batch_loss(model, batch)
    assert ar.training_loss(0.0, 0.0)(model, batch).item() == pytest.approx(plain.item(), rel=1e-6)
    assert ar.training_loss(1.0, 0.01)(model, batch).item() > plain.item()


def test_decode_costs_show_the_growing_cache():
    rows = ar.decode_costs(SMOKE)
    growth = ar.cost_growth({"decode": rows})
    assert growth["retention"]["bytes_ratio"] == 1.0
    assert growth["dense"]["bytes_ratio"] == SMOKE.time_contexts[-1] / SMOKE.time_contexts[0]


@pytest.fixture(scope="module")
def smoke_results():
    return ar.run("smoke", progress=False)


def test_smoke_run_measures_every_variant(smoke_results):
    for variant in ar.VARIANTS:
        runs = smoke_results[variant]
        assert [r["seed"] for r in runs] == list(SMOKE.seeds)
        assert all(set(r["recall"]) == {str(g) for g in SMOKE.eval_gaps} for r in runs)
        assert (runs[0]["expert_load"] is not None) == variant.startswith("moe")
    assert ar.RULES["C20"](smoke_results).outcome == "inconclusive"  # two seeds


def results(moe=-0.1, retention_loss=0.0, retention_far=0.0, dense_near=1.0, dense_time=4.0, retention_time=1.0,
            dense_loss=1.5, noise=0.005, moe_total=0.0):
    seeds = range(5)

    def runs(variant, shift, far_shift=0.0, total=200000, active=200000):
        k = int(variant != "dense")  # the dense decoder's seeds wobble the other way: paired differences spread
        return [{"variant": variant, "seed": s, "parameters": total, "active_parameters": active,
                 "val_loss": dense_loss + shift + noise * ((s + k) % 2),
                 "recall": {"16": dense_near, "224": min(1.0, max(0.0, 0.9 + far_shift + 2 * noise * ((s + k) % 2)))}}
                for s in seeds]

    decode = [{"variant": v, "context": c, "cache_bytes": c * 10 if v != "retention" else 100,
               "seconds": (1.0 if c == 512 else (retention_time if v == "retention" else dense_time)) * 1e-3}
              for v in ar.VARIANTS for c in (512, 32768)]
    return {"baseline": {"nats_per_byte": 3.2}, "dense": runs("dense", 0.0),
            "moe_active": runs("moe_active", moe, total=330000), "moe_total": runs("moe_total", moe_total,
                                                                                    active=135000),
            "retention": runs("retention", retention_loss, retention_far), "decode": decode}


@pytest.mark.parametrize("kw, outcome", [
    ({}, "supported"),
    ({"retention_far": -0.5}, "nuanced"),                        # flat cost, lost far recall
    ({"moe": 0.0, "retention_far": -0.5}, "refuted"),            # experts buy nothing, recall lost
    ({"moe": 0.0, "retention_time": 3.0}, "refuted"),            # experts buy nothing, retention not flat
    ({"moe": -0.015, "noise": 0.05, "dense_time": 1.2}, "inconclusive"),  # every part unclear
    ({"dense_loss": 3.0}, "inconclusive"),                       # learned nothing
])
def test_c20_rule_reaches_every_outcome(kw, outcome):
    verdict = ar.RULES["C20"](results(**kw))
    assert verdict.outcome == outcome, verdict.reason


def test_c20_refuses_unequal_budgets():
    r = results()
    for row in r["retention"]:
        row["parameters"] = 300000
    assert "not at equal budgets" in ar.RULES["C20"](r).reason


@pytest.mark.parametrize("kw, says", [
    ({"retention_far": -0.5}, "four variants, five seeds each, at equal budgets; the dense decoder passed its loss and "
                              "recall gates; both parts clear: experts' loss lower, retention flat, at a cost"),
    ({"dense_near": 0.0}, "passed its loss gate, not its recall gate (recall not judged); one of two parts clear"),
    ({"moe": -0.015, "noise": 0.05, "dense_time": 1.2}, "; neither part clear"),
    ({"dense_loss": 3.0}, "nothing compared: the dense decoder did not pass the unigram gate"),
])
def test_c20_evidence_says_what_the_verdict_rests_on(kw, says):
    from whydecoder.results import settings_dict

    r = results(**kw) | {"settings": settings_dict(ar.SETTINGS["full"])}
    assert says in one_line(ar.c20_evidence(r, ar.RULES["C20"](r)).rests_on)
