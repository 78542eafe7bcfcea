"""C02 machinery: the reversal task, the wiring of both architectures, exact match, verdict."""

import pytest
import torch

from whydecoder import conditional as c
from whydecoder.config import ModelConfig
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
