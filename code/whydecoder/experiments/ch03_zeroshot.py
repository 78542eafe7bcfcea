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
forcing). The encoder-decoder has an encoder and a decoder as deep as the decoders (about
twice their parameters at about the same FLOPs per example, as in Wang et al. and T5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ModelConfig
from ..model import Transformer
from ..objectives import Batch, full_lm, prefix_lm, span_corruption
from ..paths import results_dir
from ..results import experiment_command, experiment_main, per_seed_sections, run_sections, settings_dict
from ..results import load_complete as load_stored
from ..scale import current_scale
from ..stats import mean_and_se
from ..text import ByteTokenizer, corpus_tokens
from ..train import RunSizes, TrainConfig, evaluate, train
from .ch03_conditional import exact_match

RESULTS_DIR = results_dir("zeroshot")
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
STAGES = ("pretrained", "finetuned")


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
    "smoke": ZeroShotSettings(d_model=32, n_layers=2, n_heads=2, steps=40, finetune_steps=20, batch=16, length=48,
                              task_share=0.8, seeds=(0, 1), eval_examples=16),
    "full": ZeroShotSettings(d_model=64, n_layers=4, n_heads=4, steps=1600, finetune_steps=300, batch=32, length=64,
                             task_share=0.8, seeds=(0, 1, 2), eval_examples=128),
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

    def finetune_batch(g):  # a prompted batch of one finetuning task, or (replay) a pretraining batch
        if float(torch.rand(1, generator=g)) < s.finetune_replay:
            return pretraining(g)
        task = FINETUNE_TASKS[int(torch.randint(len(FINETUNE_TASKS), (1,), generator=g))]
        return prompted_batch(task, arch, s.batch, int(torch.randint(3, 7, (1,), generator=g)), g)

    ft = train(model, finetune_batch, TrainConfig(steps=s.finetune_steps, lr=s.finetune_lr,
                                                  warmup=max(1, s.finetune_steps // 10), seed=seed, progress=progress))
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
    return run_sections(sections, settings_dict(s), out, experiment_command("experiments.ch03_zeroshot", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete, else ``None``. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    return load_stored(path, SECTIONS, settings_dict(SETTINGS["full"]))


def held_out_score(run: dict, stage: str, metric: str = "loss") -> float:
    """Mean of ``metric`` over the held-out tasks at ``stage``. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return sum(run[stage][t][metric] for t in HELD_OUT_TASKS) / len(HELD_OUT_TASKS)


def _seed_gaps(results: dict, a: str, b: str, stage: str) -> dict[int, float]:
    """Held-out answer loss of cell ``a`` minus cell ``b`` at ``stage``, seed by seed."""
    la = {r["seed"]: held_out_score(r, stage) for r in results[a]}
    lb = {r["seed"]: held_out_score(r, stage) for r in results[b]}
    return {sd: la[sd] - lb[sd] for sd in sorted(la)}


def cell_gap(results: dict, a: str, b: str, stage: str) -> tuple[float, float]:
    """Held-out answer loss of cell ``a`` minus cell ``b`` at ``stage`` (negative: ``a`` is
    better), mean over seeds (paired) and its standard error. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    return mean_and_se(list(_seed_gaps(results, a, b, stage).values()))


def gap_closed_by_finetune(results: dict, a: str, b: str = "CD:FLM") -> tuple[float, float]:
    """How much of cell ``a``'s held-out loss gap to cell ``b`` the multitask finetune
    closes: ``(a - b) after pretraining - (a - b) after finetuning``, per seed (positive:
    ``a`` gained more), with its standard error. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""
    before, after = (_seed_gaps(results, a, b, stage) for stage in STAGES)
    return mean_and_se([before[sd] - after[sd] for sd in before])


def ranking(results: dict, stage: str) -> list[str]:
    """Cells from best to worst by mean held-out answer loss at ``stage``. Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    mean = {cell: sum(held_out_score(r, stage) for r in results[cell]) / len(results[cell]) for cell in CELLS}
    return sorted(CELLS, key=mean.get)


def _versus(results: dict, a: str, b: str, stage: str) -> int:
    """+1 if ``a`` is better than ``b`` by more than two standard errors, -1 if worse, else 0."""
    gap, se = cell_gap(results, a, b, stage)
    return 1 if gap < -2 * se else -1 if gap > 2 * se else 0


def c09_verdict(results: dict) -> str:
    """C09 (the causal decoder with full LM generalises best zero-shot after pretraining):
    ``supported`` if CD:FLM beats every other cell by more than two standard errors,
    ``refuted`` if some cell beats it so, ``nuanced`` otherwise (tied at the top).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    versus = [_versus(results, "CD:FLM", other, "pretrained") for other in CELLS if other != "CD:FLM"]
    return "supported" if all(v == 1 for v in versus) else "refuted" if any(v == -1 for v in versus) else "nuanced"


def c10_verdict(results: dict) -> str:
    """C10 (the encoder-decoder needs multitask finetuning to shine; after it the ranking
    can flip), judged on the better encoder-decoder cell after finetuning against CD:FLM:
    ``supported`` if it was behind CD:FLM after pretraining and is ahead after finetuning
    (each by more than two standard errors); ``refuted`` if it is still behind after
    finetuning and the finetune did not close its gap by more than two standard errors
    either; ``nuanced`` otherwise (for example the finetune narrows the gap but no flip).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    best_ed = next(c for c in ranking(results, "finetuned") if c.startswith("ED"))
    before, after = (_versus(results, best_ed, "CD:FLM", stage) for stage in STAGES)
    if before == -1 and after == 1:
        return "supported"
    closed, se = gap_closed_by_finetune(results, best_ed)
    return "refuted" if after == -1 and not closed > 2 * se else "nuanced"


if __name__ == "__main__":
    experiment_main("experiments.ch03_zeroshot", run, RESULTS_DIR)
