"""C02 machinery: the reversal task, the wiring of both architectures, exact match, verdict."""

import pytest
import torch

from whydecoder.config import ModelConfig
from whydecoder.experiments import ch03_conditional as c
from whydecoder.model import Transformer


def test_reversal_rows_are_letters_separator_reversed():
    rows, prefix = c.reversal_batch(5, 7, torch.Generator().manual_seed(0))
    assert rows.shape == (5, 15) and prefix == 8
    assert (rows[:, 7] == ord("|")).all()
    assert torch.equal(rows[:, 8:], rows[:, :7].flip(1))
    assert ((rows[:, :7] >= ord("a")) & (rows[:, :7] <= ord("z"))).all()
    with pytest.raises(ValueError, match="reversal length must be >= 1, got 0"):
        c.reversal_batch(2, 0, torch.Generator())


@pytest.mark.parametrize("task", c.TASKS)
def test_both_archs_see_identical_data_and_differ_only_in_the_prefix(task):
    dec = c.task_batch(task, "decoder", 4, 12, 6, torch.Generator().manual_seed(3))
    pre = c.task_batch(task, "prefix-lm", 4, 12, 6, torch.Generator().manual_seed(3))
    assert torch.equal(dec.tokens, pre.tokens) and torch.equal(dec.targets, pre.targets)
    assert torch.equal(dec.loss_mask, pre.loss_mask)
    assert dec.prefix_len is None and pre.prefix_len is not None
    assert int(dec.loss_mask[0].sum()) == 6  # loss on the target only


def test_bad_task_or_arch_is_named():
    g = torch.Generator()
    with pytest.raises(ValueError, match="unknown task 'copy'"):
        c.task_batch("copy", "decoder", 2, 8, 4, g)
    with pytest.raises(ValueError, match="unknown arch 'encoder'"):
        c.task_batch("reversal", "encoder", 2, 8, 4, g)


class _Oracle(torch.nn.Module):
    """Returns logits that put all mass on given tokens."""

    def __init__(self, answers):
        super().__init__()
        self.answers = answers

    def forward(self, tokens, **kw):
        return torch.nn.functional.one_hot(self.answers, 260).float()


def test_exact_match_counts_whole_targets():
    batch = c.task_batch("reversal", "decoder", 8, 0, 5, torch.Generator().manual_seed(1))
    assert c.exact_match(_Oracle(batch.targets.clone()), [batch]) == 1.0
    wrong = batch.targets.clone()
    wrong[2, -1] += 1  # one wrong target byte in one example
    wrong[5, 0] += 1  # a wrong byte outside the target does not count
    assert c.exact_match(_Oracle(wrong), [batch]) == 7 / 8


def test_teacher_forced_exact_match_equals_greedy_decoding():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="decoder", d_model=32, n_layers=1, n_heads=2, max_len=16)).eval()
    batch = c.task_batch("reversal", "decoder", 1, 0, 3, torch.Generator().manual_seed(2))
    context = batch.tokens[:, :4]  # 3 letters and the separator
    with torch.no_grad():
        seq = context
        for _ in range(3):  # greedy decoding, one byte at a time
            seq = torch.cat([seq, model(seq)[:, -1:].argmax(-1)], dim=1)
    greedy_right = torch.equal(seq[:, 4:], batch.targets[:, -3:])
    # force the model's own greedy output to be the "target": exact match must then be 1
    forced = c.task_batch("reversal", "decoder", 1, 0, 3, torch.Generator().manual_seed(2))
    forced.tokens[:, 4:], forced.targets[:, -3:] = seq[:, 4:-1], seq[:, 4:]
    assert c.exact_match(model, [forced]) == 1.0
    assert c.exact_match(model, [batch]) == float(greedy_right)


def test_same_parameter_count_for_both_archs():
    counts = {a: sum(p.numel() for p in Transformer(ModelConfig(arch=a, d_model=32, n_layers=2)).parameters()) for a in c.ARCHS}
    assert counts["decoder"] == counts["prefix-lm"]


def _runs(decoder_losses, prefix_losses):
    return ([{"arch": "decoder", "seed": s, "target_loss": v} for s, v in enumerate(decoder_losses)]
            + [{"arch": "prefix-lm", "seed": s, "target_loss": v} for s, v in enumerate(prefix_losses)])


def test_paired_gaps_and_verdict():
    clear_gain = c.paired_gaps(_runs([2.0, 2.1, 2.05], [1.8, 1.9, 1.84]))
    assert clear_gain["gaps"] == pytest.approx([0.2, 0.2, 0.21])
    noise = c.paired_gaps(_runs([2.0, 2.1, 2.05], [2.01, 2.08, 2.06]))
    assert c.c02_verdict({"a": clear_gain, "b": clear_gain}) == "refuted"
    assert c.c02_verdict({"a": noise, "b": noise}) == "supported"
    assert c.c02_verdict({"a": clear_gain, "b": noise}) == "nuanced"
    with pytest.raises(ValueError, match="no tasks"):
        c.c02_verdict({})


def test_t5_variants_have_the_table_2_shapes():
    s = c.SETTINGS["full"]
    cfgs = {n: c.variant_config(n, s, 72) for n in c.T5_VARIANTS}
    two_p, shared, half, dec, pre = cfgs.values()
    assert (two_p.n_layers, two_p.encoder_layers, two_p.share_encoder_decoder) == (4, 4, False)
    assert shared.share_encoder_decoder and (half.n_layers, half.encoder_layers) == (2, 2)
    assert dec.arch == "decoder" and pre.arch == "prefix-lm" and dec.n_layers == 4
    with pytest.raises(ValueError, match="unknown T5 variant 'big'"):
        c.variant_config("big", s, 72)


def test_t5_variants_parameters_and_flops_follow_the_table():
    from whydecoder.accounting import forward_flops, parameter_count

    s = c.SETTINGS["full"]
    cfgs = {n: c.variant_config(n, s, 72) for n in c.T5_VARIANTS}
    p = {n: parameter_count(cfg, embeddings=False) for n, cfg in cfgs.items()}
    names = list(c.T5_VARIANTS)
    # 2P: two stacks (plus cross-attention); shared: one stack's weights plus cross-attention
    assert 2 * p[names[3]] < p[names[0]] < 2.5 * p[names[3]]
    assert p[names[3]] < p[names[1]] < 1.5 * p[names[3]] and p[names[3]] < p[names[2]] < 1.5 * p[names[3]]
    assert p[names[3]] == p[names[4]]
    f = {n: forward_flops(cfg, 24 if cfg.arch == "encoder-decoder" else 71, source_len=48 if cfg.arch == "encoder-decoder" else 0)
         for n, cfg in cfgs.items()}
    # M for all but the half-depth encoder-decoder, which costs about M/2
    assert f[names[0]] == f[names[1]]
    assert 0.4 < f[names[2]] / f[names[0]] < 0.6
    assert 0.8 < f[names[3]] / f[names[0]] < 1.25


def _variant_runs(losses: dict) -> list[dict]:
    return [{"variant": n, "seed": sd, "target_loss": v} for n, vals in losses.items() for sd, v in enumerate(vals)]


def test_c01_evidence_measures_edge_and_sharing_cost():
    names = list(c.T5_VARIANTS)
    base = {names[2]: [2.0, 2.0, 2.0], names[4]: [2.0, 2.0, 2.0]}
    params_matter = {names[0]: [1.80, 1.81, 1.79], names[1]: [1.98, 1.99, 1.985], names[3]: [2.0, 2.01, 2.0], **base}
    no_edge = {names[0]: [2.0, 2.02, 1.99], names[1]: [2.0, 2.0, 2.0], names[3]: [2.01, 2.0, 2.0], **base}
    ev = c.c01_evidence(_variant_runs(params_matter))
    assert ev["edge_significant"] and ev["sharing_hurts"]
    assert ev["edge"] == pytest.approx(0.2033, abs=1e-3) and ev["share_lost_by_sharing"] == pytest.approx(0.902, abs=1e-2)
    ev = c.c01_evidence(_variant_runs(no_edge))
    assert not ev["edge_significant"] and ev["share_lost_by_sharing"] is None


def test_c01_verdict_combines_t5_and_ours():
    no_edge_no_cost = {"share_lost_by_sharing": None, "sharing_hurts": False}
    edge_lost = {"share_lost_by_sharing": 0.9, "sharing_hurts": True}
    assert c.c01_verdict(no_edge_no_cost, {"Denoising": 0.05, "LM": -0.01}) == "refuted"
    assert c.c01_verdict(edge_lost, {"Denoising": 0.8, "LM": 0.7}) == "supported"
    assert c.c01_verdict(edge_lost, {"Denoising": 0.05, "LM": -0.01}) == "nuanced"


def test_t5_share_lost_from_the_table():
    lost = c.t5_share_lost(c.t5_table2())
    assert lost["Denoising"] == pytest.approx((83.28 - 82.81) / (83.28 - 74.70))
    assert lost["LM"] == pytest.approx((79.56 - 79.60) / (79.56 - 73.78))


def test_t5_table2_data():
    t5 = c.t5_table2()
    row = t5[(t5["architecture"] == "Enc-dec, shared") & (t5["objective"] == "LM")].iloc[0]
    assert (row["params"], row["cost"], row["GLUE"]) == ("P", "M", 79.60)
    assert t5.loc[t5["objective"] == "Denoising", "GLUE"].idxmax() == 0  # encoder-decoder 2P best
