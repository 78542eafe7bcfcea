"""C09/C10 machinery: task instances, pretraining rows and wiring, prompted batches, the
grid's configurations and the verdict logic."""

import dataclasses
import math

import pytest
import torch

from whydecoder.experiments import ch03_zeroshot as z
from whydecoder.model import Transformer
from whydecoder.verdicts import OUTCOMES

TOK = z.TOK


def test_instances_are_prompt_and_answer():
    assert z.instance("reverse", "abc") == ("Reverse abc ->", " cba\n")
    assert z.instance("shift", "xyz") == ("Shift by one xyz ->", " yza\n")
    assert z.instance("double", "ab")[1] == " aabb\n"
    assert z.instance("sort", "cab")[1] == " abc\n" and z.instance("last", "cab")[1] == " b\n"
    assert set(z.FINETUNE_TASKS).isdisjoint(z.HELD_OUT_TASKS)
    assert set(z.FINETUNE_TASKS) | set(z.HELD_OUT_TASKS) == set(z.TASKS)
    with pytest.raises(ValueError, match="unknown task 'count'"):
        z.instance("count", "abc")
    with pytest.raises(ValueError, match="got 'Ab'"):
        z.instance("copy", "Ab")


def test_task_documents_are_lines_of_instances():
    doc = TOK.decode(z.task_document(400, torch.Generator().manual_seed(0)))
    lines = doc.split("\n")[:-1]  # the last line may be cut
    assert len(doc) == 400 and len(lines) > 10
    for line in lines:
        prompt, answer = line.split(" -> ")
        task = next(t for t, (instr, _) in z.TASKS.items() if prompt.startswith(instr + " ") and
                    prompt[len(instr) + 1:].isalpha() and prompt[len(instr) + 1:].islower())
        assert z.instance(task, prompt[len(z.TASKS[task][0]) + 1:]) == (prompt + " ->", " " + answer + "\n")


def test_pretraining_rows_mix_corpus_and_tasks():
    corpus = torch.tensor(list(b"plain corpus text " * 50))
    rows = z.pretraining_rows(corpus, 40, 32, 0.5, torch.Generator().manual_seed(0))
    assert rows.shape == (40, 32)
    is_task = [" ->" in TOK.decode(r) for r in rows]
    assert 5 < sum(is_task) < 35
    assert not z.pretraining_rows(corpus, 10, 32, 0.0, torch.Generator()).eq(ord(">")).any()
    with pytest.raises(ValueError, match="task_share must be in"):
        z.pretraining_rows(corpus, 2, 32, 1.5, torch.Generator())


@pytest.mark.parametrize("cell", list(z.CELLS))
def test_every_cell_trains_one_step_within_its_max_len(cell):
    s = z.SETTINGS["smoke"]
    model = Transformer(z.cell_config(cell, s))
    rows = z.pretraining_rows(torch.arange(97, 123).repeat(20), 4, s.length, 0.5, torch.Generator().manual_seed(1))
    batch = z.pretraining_batch(cell, rows, torch.Generator().manual_seed(2))
    arch, objective = z.CELLS[cell]
    assert (batch.source is not None) == (arch == "encoder-decoder")
    assert (batch.prefix_len is not None) == (arch == "prefix-lm")
    if objective == "full-lm":
        assert batch.loss_mask.all()
    else:
        assert not batch.loss_mask.all() or arch == "encoder-decoder"
    from whydecoder.objectives import batch_loss
    assert torch.isfinite(batch_loss(model, batch))
    with pytest.raises(ValueError, match="unknown cell 'ED:FLM'"):
        z.pretraining_batch("ED:FLM", rows, torch.Generator())


def test_prompted_batch_scores_the_answer_only():
    b = z.prompted_batch("reverse", "decoder", 3, 5, torch.Generator().manual_seed(0))
    prompt_len = len("Reverse abcde ->")
    assert b.tokens.shape == (3, prompt_len + 7 - 1)
    assert int(b.loss_mask[0].sum()) == 7  # " edcba\n"
    text = TOK.decode(torch.cat([b.tokens[0, :1], b.targets[0]]))
    word = text[len("Reverse "): len("Reverse ") + 5]
    assert text.endswith(" " + word[::-1] + "\n")
    ed = z.prompted_batch("reverse", "encoder-decoder", 3, 5, torch.Generator().manual_seed(0))
    assert ed.source.shape == (3, prompt_len) and ed.loss_mask.all()


def fake_results(pre, post, control=None, seeds=5, noise=0.001):
    """Held-out loss per cell after pretraining, the finetune and the control (more
    pretraining; default: as after pretraining), with a seed noise that differs by cell."""
    control = control or pre
    out = {"settings": {"word_length": 5}}
    for j, cell in enumerate(z.CELLS):
        out[cell] = [{"cell": cell, "seed": s, **{
            stage: {t: {"loss": value[cell] + noise * (((s + j) % 3) - 1) * (i + 1), "exact_match": 0.0}
                    for i, t in enumerate(z.TASKS)}
            for stage, value in (("pretrained", pre), ("finetuned", post), ("control", control))}}
            for s in range(seeds)]
    return out


BASE = {"CD:FLM": 1.0, "ND:PLM": 1.2, "ED:PLM": 1.3, "CD:MLM": 2.0, "ND:MLM": 2.1, "ED:MLM": 2.2}
FLIPPED = dict(BASE, **{"ED:MLM": 0.8})


def test_format_baseline_guesses_the_letters_only():
    assert z.format_baseline("reverse", 5) == pytest.approx(5 * math.log(26) / 7)  # " edcba\n"
    assert z.format_baseline("last", 5) == pytest.approx(math.log(26) / 3)
    assert z.held_out_baseline(5) == pytest.approx(sum(z.format_baseline(t, 5) for t in z.HELD_OUT_TASKS) / 4)


@pytest.mark.parametrize("pre, noise, outcome", [
    (BASE, 0.001, "supported"),
    (dict(BASE, **{"ND:PLM": 0.9}), 0.001, "refuted"),  # another cell is better
    (dict(BASE, **{"ND:PLM": 1.0}), 0.001, "nuanced"),  # tied at the top
    (dict(BASE, **{"ND:PLM": 1.04}), 0.05, "inconclusive"),  # too noisy to tell
    ({c: 2.5 for c in BASE}, 0.001, "inconclusive"),  # CD:FLM learned nothing
])
def test_c09_rule_reaches_every_outcome(pre, noise, outcome):
    assert z.RULES["C09"](fake_results(pre, BASE, noise=noise)).outcome == outcome


@pytest.mark.parametrize("post, control, noise, outcome", [
    (FLIPPED, None, 0.001, "supported"),  # ED:MLM gains beyond the control and overtakes CD:FLM
    (dict(BASE, **{"ED:PLM": 1.1}), None, 0.001, "nuanced"),  # a gain, no flip
    (dict(BASE, **{"ED:PLM": 1.3}), dict(BASE, **{"ED:PLM": 1.3}), 0.001, "refuted"),  # no gain, CD ahead
    (FLIPPED, dict(BASE, **{"ED:MLM": 0.8}), 0.001, "nuanced"),  # flips, but more pretraining did as well
    (dict(BASE, **{"ED:PLM": 1.02}), None, 0.05, "inconclusive"),  # too noisy to tell
    (dict(BASE, **{"ED:PLM": 2.4, "ED:MLM": 2.6}), None, 0.001, "inconclusive"),  # no ED learned the tasks
])
def test_c10_rule_reaches_every_outcome(post, control, noise, outcome):
    assert z.RULES["C10"](fake_results(BASE, post, control, noise=noise)).outcome == outcome


def test_rules_need_five_seeds_and_gaps_are_intervals():
    assert z.RULES["C09"](fake_results(BASE, BASE, seeds=3)).outcome == "inconclusive"
    r = fake_results(BASE, FLIPPED)
    assert z.ranking(r, "pretrained")[0] == "CD:FLM" and z.ranking(r, "finetuned")[0] == "ED:MLM"
    gap = z.cell_gap(r, "ED:MLM", "CD:FLM", "finetuned")
    assert gap.mean == pytest.approx(-0.2, abs=0.01) and gap.low < gap.mean < gap.high and gap.n == 5
    with pytest.raises(ValueError, match="unknown stage 'before'"):
        z.held_out_score(r["CD:FLM"][0], "before")


def test_smoke_run_scores_every_task_at_every_stage(monkeypatch):
    # half the smoke scale's steps: the test checks the machinery, and the finetune still lowers the loss
    monkeypatch.setitem(z.SETTINGS, "smoke", dataclasses.replace(z.SETTINGS["smoke"], steps=12, finetune_steps=10))
    res = z.run("smoke", progress=False)
    for cell in z.CELLS:
        assert len(res[cell]) == len(z.SETTINGS["smoke"].seeds)
        for r in res[cell]:
            assert set(r["pretrained"]) == set(r["finetuned"]) == set(r["control"]) == set(z.TASKS)
    # the multitask finetune lowers the loss on the tasks it trains on
    ft = [r["finetuned"][t]["loss"] < r["pretrained"][t]["loss"] for cell in z.CELLS for r in res[cell]
          for t in z.FINETUNE_TASKS]
    assert all(ft)
    for claim in ("C09", "C10"):  # two smoke seeds: fewer than the rules ask for
        assert z.RULES[claim](res).outcome == "inconclusive"
    settings = dict(res["settings"], seeds=[0, 1, 2, 3, 4])
    assert z._c09_decide(dict(res, settings=settings), z.RULES["C09"].parameters).outcome in OUTCOMES
