"""Which architecture and pretraining objective generalise best zero-shot, before and after
multitask finetuning (claims C09 and C10)? A small version of the grid of Wang et al.
(2022). Explained in the chapter "Encoder vs decoder at equal parameters".

Six cells: {causal decoder (CD), non-causal decoder (ND, a prefix-LM), encoder-decoder
(ED)} pretrained with an autoregressive objective (full LM for CD, prefix LM for ND and ED)
or with span corruption (the "MLM" of Wang et al.). Pretraining text is the book's corpus
mixed with *task documents*: lines such as ``Reverse abcde -> edcba``, for eight simple
word tasks, as they might occur in web text. Four tasks are later used for a multitask
finetune (prompt -> answer, loss on the answer); the other four are held out and only ever
prompted. The finetune replays pretraining batches for half of its steps (at this scale
a finetune on four tasks alone makes the models forget the others). Every model is scored
on the held-out tasks, prompted the same way, after pretraining ("zero-shot") and after
the finetune: the loss of the right answer in nats
per byte and exact match (the greedy answer is entirely right, computed with teacher
forcing). A control spends the finetune's steps on more pretraining instead, from the same
pretrained weights, so that what the finetune adds can be told from what more steps add.
The encoder-decoder has an encoder and a decoder as deep as the decoders (about twice their
parameters at about the same FLOPs per example, as in Wang et al. and T5). Claims C09 and
C10 are decided by :data:`RULES`.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..claims import Claim, Evidence, counted, counted_of, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import Batch, full_lm, prefix_lm, span_corruption
from ..paths import results_dir
from ..results import judged_settings, per_seed_sections, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_tokens
from ..train import RunSizes, TrainConfig, evaluate, exact_match, train
from ..verdicts import Interval, Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("zeroshot")
#: The page that shows it (under ``chapters/``).
PAGE = "03_encoder_vs_decoder/zero_shot"
TOK = ByteTokenizer()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# task -> (instruction, answer from word)
TASKS = {
    "copy": ("Repeat", lambda w: w),
    "upper": ("Uppercase", str.upper),
    "first": ("First letter of", lambda w: w[0]),
    "sort": ("Sort the letters of", lambda w: "".join(sorted(w))),
    "reverse": ("Reverse", lambda w: w[::-1]),
    "shift": ("Shift by one", lambda w: "".join(LETTERS[(LETTERS.index(c) + 1) % 26] for c in w)),
    "last": ("Last letter of", lambda w: w[-1]),
    "double": ("Double each letter of", lambda w: "".join(c + c for c in w)),
}
FINETUNE_TASKS = ("copy", "upper", "first", "sort")
HELD_OUT_TASKS = ("reverse", "shift", "last", "double")
# Wang et al.'s grid: cell -> (arch, pretraining objective)
CELLS = {
    "CD:FLM": ("decoder", "full-lm"),
    "ND:PLM": ("prefix-lm", "prefix-lm"),
    "ED:PLM": ("encoder-decoder", "prefix-lm"),
    "CD:MLM": ("decoder", "span-corruption"),
    "ND:MLM": ("prefix-lm", "span-corruption"),
    "ED:MLM": ("encoder-decoder", "span-corruption"),
}
SECTIONS = tuple(CELLS)  # one stored section per cell, so a long run resumes
#: What a run is scored after: pretraining, the multitask finetune, and the control (the
#: finetune's steps spent on more pretraining, from the same pretrained weights).
STAGES = ("pretrained", "finetuned", "control")


def instance(task: str, word: str) -> tuple[str, str]:
    """The prompt and the answer of one task instance, e.g. ``("Reverse abc ->", " cba\\n")``.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASKS)}")
    if not word or any(c not in LETTERS for c in word):
        raise ValueError(f"word must be non-empty lowercase ASCII letters, got {word!r}")
    instruction, answer = TASKS[task]
    return f"{instruction} {word} ->", f" {answer(word)}\n"


def random_word(generator: torch.Generator, length: int) -> str:
    """A random lowercase word. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return "".join(LETTERS[i] for i in torch.randint(26, (length,), generator=generator).tolist())


def task_document(length: int, generator: torch.Generator, tasks=tuple(TASKS)) -> list[int]:
    """``length`` bytes of random instances of ``tasks`` (words of 3 to 6 letters), one per
    line. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    text = ""
    while len(text) < length:
        task = tasks[int(torch.randint(len(tasks), (1,), generator=generator))]
        prompt, answer = instance(task, random_word(generator, int(torch.randint(3, 7, (1,), generator=generator))))
        text += prompt + answer
    return TOK.encode(text)[:length]


def pretraining_rows(corpus: torch.Tensor, batch: int, length: int, task_share: float,
                     generator: torch.Generator) -> torch.Tensor:
    """``batch`` rows of ``length`` bytes: a task document with probability ``task_share``,
    else a random window of the corpus. Defined in the chapter "Encoder vs decoder at equal
    parameters"."""
    if not 0 <= task_share <= 1:
        raise ValueError(f"task_share must be in [0, 1], got {task_share}")
    rows = []
    for _ in range(batch):
        if float(torch.rand(1, generator=generator)) < task_share:
            rows.append(torch.tensor(task_document(length, generator)))
        else:
            start = int(torch.randint(len(corpus) - length + 1, (1,), generator=generator))
            rows.append(corpus[start : start + length])
    return torch.stack(rows)


def pretraining_batch(cell: str, rows: torch.Tensor, generator: torch.Generator) -> Batch:
    """``rows`` wired for one cell of the grid: full LM, prefix LM split at a random point
    in the middle half, or span corruption. Defined in the chapter "Encoder vs decoder at
    equal parameters"."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {tuple(CELLS)}")
    arch, objective = CELLS[cell]
    if objective == "full-lm":
        return full_lm(rows, arch)
    if objective == "prefix-lm":
        n = rows.shape[1]
        return prefix_lm(rows, arch, int(torch.randint(n // 4, 3 * n // 4 + 1, (1,), generator=generator)))
    return span_corruption(rows, arch, generator)


def prompted_batch(task: str, arch: str, n: int, word_length: int, generator: torch.Generator) -> Batch:
    """``n`` instances of ``task`` with words of ``word_length`` letters, wired as prompt ->
    answer for ``arch`` (loss on the answer only). Defined in the chapter "Encoder vs decoder
    at equal parameters"."""
    pairs = [instance(task, random_word(generator, word_length)) for _ in range(n)]
    rows = torch.tensor([TOK.encode(p + a) for p, a in pairs])
    return prefix_lm(rows, arch, len(pairs[0][0]))


@dataclass(frozen=True)
class ZeroShotSettings(RunSizes):
    """Sizes of one scale of the C09/C10 experiment. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""

    finetune_steps: int
    length: int
    task_share: float
    seeds: tuple[int, ...]
    eval_examples: int
    word_length: int = 5
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    finetune_replay: float = 0.5


SETTINGS = {
    "smoke": ZeroShotSettings(d_model=32, n_layers=2, n_heads=2, steps=24, finetune_steps=16, batch=16, length=48,
                              task_share=0.8, seeds=(0, 1), eval_examples=16),
    "full": ZeroShotSettings(d_model=64, n_layers=4, n_heads=4, steps=1600, finetune_steps=300, batch=32, length=64,
                             task_share=0.8, seeds=(0, 1, 2, 3, 4), eval_examples=128),
}


def cell_config(cell: str, s: ZeroShotSettings) -> ModelConfig:
    """The model of one cell (room for span corruption's sentinels in ``max_len``).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    arch, _ = CELLS[cell]
    return ModelConfig(arch=arch, vocab_size=TOK.vocab_size, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
                       max_len=s.length + 16)


def score_tasks(model: Transformer, tasks, s: ZeroShotSettings) -> dict[str, dict[str, float]]:
    """Answer loss (nats per byte) and exact match on fixed prompted batches of each task.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    out = {}
    for k, task in enumerate(tasks):
        g = torch.Generator().manual_seed(20_000 + k)  # the same examples for every model
        batch = prompted_batch(task, model.cfg.arch, s.eval_examples, s.word_length, g)
        out[task] = {"loss": evaluate(model, [batch]), "exact_match": exact_match(model, [batch])}
    return out


def _one_run(cell: str, seed: int, s: ZeroShotSettings, corpus: torch.Tensor, progress: bool) -> dict:
    arch, _ = CELLS[cell]
    torch.manual_seed(seed)
    model = Transformer(cell_config(cell, s))

    def pretraining(g):
        return pretraining_batch(cell, pretraining_rows(corpus, s.batch, s.length, s.task_share, g), g)

    pre = train(model, pretraining, s.train_config(seed, progress))
    scores = {"pretrained": score_tasks(model, TASKS, s)}
    more = TrainConfig(steps=s.finetune_steps, lr=s.finetune_lr, warmup=max(1, s.finetune_steps // 10), seed=seed,
                       progress=progress)
    control = copy.deepcopy(model)  # the same weights, the finetune's steps spent on pretraining batches
    train(control, pretraining, more)
    scores["control"] = score_tasks(control, TASKS, s)

    def finetune_batch(g):  # a prompted batch of one finetuning task, or (replay) a pretraining batch
        if float(torch.rand(1, generator=g)) < s.finetune_replay:
            return pretraining(g)
        task = FINETUNE_TASKS[int(torch.randint(len(FINETUNE_TASKS), (1,), generator=g))]
        return prompted_batch(task, arch, s.batch, int(torch.randint(3, 7, (1,), generator=g)), g)

    ft = train(model, finetune_batch, more)
    scores["finetuned"] = score_tasks(model, TASKS, s)
    return {"cell": cell, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "pretrain_losses": pre.losses, "finetune_losses": ft.losses, **scores}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Pretrain, score, finetune and score again every cell for every seed at ``scale``;
    with ``out``, store after each cell and resume. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    corpus = corpus_tokens("train")
    sections = per_seed_sections(CELLS, s.seeds, lambda cell, seed: _one_run(cell, seed, s, corpus, progress))
    return run_sections(sections, judged_settings(s, RULES), out, experiment_command("experiments.ch03_zeroshot", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete under the current settings and rules, else ``None``.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def format_baseline(task: str, word_length: int) -> float:
    """Answer loss (nats per byte) of a model that knows only the answer's format: its
    length, the space before it and the newline after it, and that each letter is one of
    26, guessed uniformly. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    prompt, answer = instance(task, "a" * word_length)
    letters = sum(c in LETTERS for c in answer)
    return letters * math.log(26) / len(answer)


def held_out_baseline(word_length: int) -> float:
    """:func:`format_baseline` averaged over the held-out tasks (the gate of C09 and C10).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return sum(format_baseline(t, word_length) for t in HELD_OUT_TASKS) / len(HELD_OUT_TASKS)


def held_out_score(run: dict, stage: str, metric: str = "loss") -> float:
    """Mean of ``metric`` over the held-out tasks at ``stage``. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return sum(run[stage][t][metric] for t in HELD_OUT_TASKS) / len(HELD_OUT_TASKS)


def per_seed(results: dict, cell: str, stage: str, metric: str = "loss") -> dict[int, float]:
    """``{seed: held-out score}`` of one cell at ``stage``. Defined in the chapter "Encoder
    vs decoder at equal parameters"."""
    return {r["seed"]: held_out_score(r, stage, metric) for r in results[cell]}


def cell_gap(results: dict, a: str, b: str, stage: str, stage_b: str | None = None) -> Interval:
    """Held-out answer loss of cell ``a`` at ``stage`` minus cell ``b`` at ``stage_b``
    (default the same stage), paired by seed, with its 95% t-interval (negative: ``a`` is
    better). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return t_interval(paired_differences(per_seed(results, a, stage), per_seed(results, b, stage_b or stage)))


def ranking(results: dict, stage: str) -> list[str]:
    """Cells from best to worst by mean held-out answer loss at ``stage``. Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    mean = {cell: sum(held_out_score(r, stage) for r in results[cell]) / len(results[cell]) for cell in CELLS}
    return sorted(CELLS, key=mean.get)


def _mean(results: dict, cell: str, stage: str) -> float:
    values = per_seed(results, cell, stage)
    return sum(values.values()) / len(values)


def _seeds(results: dict) -> int:
    return min(len(results[cell]) for cell in CELLS)


def _reading(gap: Interval, margin: float) -> str:
    """``a`` minus ``b`` in loss: lower is better for ``a``."""
    return {"lower": "better", "higher": "worse"}.get(compare(gap, margin), compare(gap, margin))


def _c09_decide(results: dict, p: dict) -> Verdict:
    """C09: after pretraining only, CD:FLM against every other cell on the held-out tasks.

    Gate: CD:FLM's mean held-out answer loss beats :func:`held_out_baseline` (a model that
    knows only the answer format) by ``p["gate_nats"]``; else inconclusive. Then, per other
    cell, the paired interval of CD:FLM minus that cell, read against a margin of
    ``p["margin"]`` times the other cell's mean loss: CD:FLM better, worse, equivalent or
    unclear. Supported when CD:FLM is better than every other cell; refuted when some cell
    is better than it; inconclusive when a reading is unclear; nuanced otherwise (tied
    with some).
    """
    baseline = held_out_baseline(results["settings"]["word_length"])
    numbers = {"baseline": baseline, "CD:FLM": _mean(results, "CD:FLM", "pretrained")}
    if not learned(numbers["CD:FLM"], baseline, lower_is_better=True, by=p["gate_nats"]):
        return Verdict("inconclusive", f"CD:FLM did not learn the held-out tasks (loss {numbers['CD:FLM']:.2f} against "
                       f"{baseline:.2f} for the answer format alone)", numbers)
    readings = {}
    for other in CELLS:
        if other != "CD:FLM":
            gap = cell_gap(results, "CD:FLM", other, "pretrained")
            readings[other] = _reading(gap, p["margin"] * _mean(results, other, "pretrained"))
            numbers[other] = {"gap": gap.__dict__, "reading": readings[other]}
    numbers["readings"] = readings
    if "worse" in readings.values():
        return Verdict("refuted", f"{[c for c, r in readings.items() if r == 'worse']} generalised better zero-shot "
                       "than CD:FLM", numbers)
    if "unclear" in readings.values():
        return Verdict("inconclusive", "an interval straddles its margin: more seeds are needed to tell", numbers)
    if set(readings.values()) == {"better"}:
        learners = [c for c in readings if learned(_mean(results, c, "pretrained"), baseline, lower_is_better=True,
                                                   by=p["gate_nats"])]
        which = (f"of which only {', '.join(learners)} also beat the answer-format baseline" if learners
                 else "none of which beat the answer-format baseline")
        return Verdict("supported", f"CD:FLM had the lowest held-out loss zero-shot, below every other cell's ({which}; "
                       "a lead over a cell that learned nothing counts for little)", numbers)
    return Verdict("nuanced", f"CD:FLM is tied with {[c for c, r in readings.items() if r == 'equivalent']}", numbers)


def _c10_decide(results: dict, p: dict) -> Verdict:
    """C10, for each encoder-decoder cell (ED:PLM and ED:MLM, both fixed in advance).

    Gate: after the finetune the cell beats :func:`held_out_baseline` by ``p["gate_nats"]``
    (it learned the held-out tasks); a cell that did not is no evidence, and when none
    did the verdict is inconclusive. For a cell that passes, paired by seed:

    - *needs the finetune*: its held-out loss after the finetune minus after the control
      (the same steps spent on more pretraining) is lower beyond ``p["margin"]`` (times the
      control's loss);
    - *the ranking flips*: after the finetune it is better than CD:FLM after its own
      finetune, beyond the same margin.

    Supported when some passing cell needs the finetune and flips; refuted when no passing
    cell gains from the finetune beyond the control and CD:FLM stays ahead of all of them;
    inconclusive when a reading is unclear; nuanced otherwise (for example a gain but no
    flip).
    """
    baseline = held_out_baseline(results["settings"]["word_length"])
    numbers = {"baseline": baseline, "passing": []}
    gains, flips = {}, {}
    for cell in ("ED:PLM", "ED:MLM"):
        mean = _mean(results, cell, "finetuned")
        gain = cell_gap(results, cell, cell, "finetuned", "control")
        flip = cell_gap(results, cell, "CD:FLM", "finetuned")
        gains[cell] = _reading(gain, p["margin"] * _mean(results, cell, "control"))
        flips[cell] = _reading(flip, p["margin"] * _mean(results, "CD:FLM", "finetuned"))
        numbers[cell] = {"finetuned": mean, "finetune_minus_control": gain.__dict__, "gain": gains[cell],
                         "minus_CD:FLM": flip.__dict__, "flip": flips[cell]}
        if learned(mean, baseline, lower_is_better=True, by=p["gate_nats"]):
            numbers["passing"].append(cell)
    passing = numbers["passing"]
    if not passing:
        return Verdict("inconclusive", f"no encoder-decoder learned the held-out tasks, even after the finetune "
                       f"(baseline {baseline:.2f} nats/byte)", numbers)
    if any(gains[c] == "better" and flips[c] == "better" for c in passing):
        return Verdict("supported", "an encoder-decoder gained from the finetune beyond more pretraining and overtook "
                       "CD:FLM", numbers)
    if any("unclear" in (gains[c], flips[c]) for c in passing):
        return Verdict("inconclusive", "an interval straddles its margin: more seeds are needed to tell", numbers)
    if all(gains[c] != "better" and flips[c] == "worse" for c in passing):
        return Verdict("refuted", "the finetune did no more for the encoder-decoder than more pretraining, and CD:FLM "
                       "stayed ahead", numbers)
    return Verdict("nuanced", "; ".join(f"{c}: finetune {gains[c]} than the control, {flips[c]} than CD:FLM"
                                        for c in passing), numbers)


def _zeroshot_scope(results: dict) -> str:
    """The scope C09 and C10 share: what was run, from the results' settings."""
    zs = results["settings"]
    return (f"Width {zs['d_model']}, {zs['n_layers']} layers (the encoder-decoder as deep in each stack, about twice "
            f"the parameters), {zs['steps']} pretraining steps and {zs['finetune_steps']} of finetune or control, "
            f"{len(zs['seeds'])} seeds; eight prompted word tasks in the pretraining text, four held out of the "
            "finetune; answer loss in nats per byte.")


def _interval_text(d: dict) -> str:
    """A stored interval as text: mean [low, high]."""
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def c09_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C09's evidence and scope in words: after pretraining, CD:FLM's held-out loss against
    the format-only baseline, and its paired gap to each other cell. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    n09 = RULES["C09"].readings(results)
    others = [c for c in CELLS if c != "CD:FLM"]
    text = (f"After pretraining, CD:FLM's held-out loss is {n09['CD:FLM']:.3f} against {n09['baseline']:.3f} for "
            "the answer format alone. CD:FLM minus each other cell, nats per byte: "
            + "; ".join(f"{c} {_interval_text(n09[c]['gap'])} ({n09[c]['reading']})" for c in others if c in n09)
            + ".")
    others = [c for c in CELLS if c != "CD:FLM"]
    past = [c for c in others if learned(_mean(results, c, "pretrained"), n09["baseline"], lower_is_better=True,
                                         by=RULES["C09"].parameters["gate_nats"])]
    rests = (f"CD:FLM {'past' if 'readings' in n09 else 'short of'} the format gate, and of the other cells only "
             f"{', '.join(past) or 'none'}; the rest lost to a format-only guesser, so 'best' rests on "
             f"{counted(len(past), 'comparison')} between cells that learned; {counted(_seeds(results), 'seed')} each")
    return Evidence(text, _zeroshot_scope(results), rests_on=rests)


def c10_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C10's evidence and scope in words: for each encoder-decoder cell, its loss after the
    finetune, the finetune's gain over the control and its gap to CD:FLM, and which cells
    passed the gate. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    n10 = RULES["C10"].readings(results)
    text = ("; ".join(f"{c}: after the finetune {n10[c]['finetuned']:.3f}, finetune minus control "
                      f"{_interval_text(n10[c]['finetune_minus_control'])} ({n10[c]['gain']}), minus CD:FLM "
                      f"{_interval_text(n10[c]['minus_CD:FLM'])} ({n10[c]['flip']})" for c in ("ED:PLM", "ED:MLM"))
            + f". Passed the gate (baseline {n10['baseline']:.3f}): {', '.join(n10['passing']) or 'neither'}.")
    rests = (f"{counted_of(len(n10['passing']), 2, 'encoder-decoder')} beat the format-only baseline "
             f"({n10['baseline']:.2f}) after the finetune; {counted(_seeds(results), 'seed')} each")
    return Evidence(text, _zeroshot_scope(results), rests_on=rests)


RULES = {
    "C09": Rule("C09", "after self-supervised pretraining only, the causal decoder with next-token prediction (CD:FLM) "
                "has the lowest held-out answer loss of the six cells", {"min_seeds": 5, "margin": 0.05,
                                                                          "gate_nats": 0.25},
                _c09_decide, seeds=_seeds),
    "C10": Rule("C10", "the multitask finetune helps an encoder-decoder beyond the same steps of more pretraining, "
                "and after it the encoder-decoder overtakes CD:FLM", {"min_seeds": 5, "margin": 0.05,
                                                                       "gate_nats": 0.25},
                _c10_decide, seeds=_seeds),
}


CLAIMS = (
    Claim("C09", "Decoder-only with next-token prediction generalizes best zero-shot after self-supervised "
          "pretraining", "03_encoder_vs_decoder/zero_shot", stored_results(sys.modules[__name__]), RULES["C09"], c09_evidence),
    Claim("C10", "Encoder-decoder needs multitask finetuning to shine; after it the ranking can flip",
          "03_encoder_vs_decoder/zero_shot", stored_results(sys.modules[__name__]), RULES["C10"], c10_evidence),
)


if __name__ == "__main__":
    experiment_main("experiments.ch03_zeroshot", run, RESULTS_DIR)
