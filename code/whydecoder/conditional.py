"""Conditional generation with a causal decoder vs a prefix-LM that differ only in the
attention mask over the input (claim C02): the same model, data, seeds and steps; the loss
on the target only. Explained in the chapter "Encoder vs decoder at equal parameters".

Two tasks: continuing real text (the book's byte corpus: read ``context`` bytes, predict the
next ``target`` bytes) and reversing a random letter string (a task with one right answer,
so exact match is defined). Exact match is measured with teacher forcing: greedy decoding
reproduces the target exactly when, and only when, the argmax at every target position
given the true earlier tokens is the true token, so no sampling loop is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .model import Transformer
from .objectives import Batch, prefix_lm
from .results import experiment_main, load_complete as load_stored, run_sections, settings_dict
from .scale import current_scale
from .text import ByteTokenizer, corpus_tokens, random_chunks
from .train import TrainConfig, evaluate, train

RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "conditional"
ARCHS = ("decoder", "prefix-lm")
TASKS = ("continuation", "reversal")
LETTERS = torch.tensor(list(b"abcdefghijklmnopqrstuvwxyz"))
SEPARATOR = ord("|")


def reversal_batch(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Rows ``letters | reversed letters`` (bytes) and the context length (``length + 1``).

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if length < 1:
        raise ValueError(f"reversal length must be >= 1, got {length}")
    letters = LETTERS[torch.randint(len(LETTERS), (batch, length), generator=generator)]
    sep = torch.full((batch, 1), SEPARATOR, dtype=letters.dtype)
    return torch.cat([letters, sep, letters.flip(1)], dim=1), length + 1


def task_batch(task: str, arch: str, batch: int, context: int, target: int, generator: torch.Generator,
               ids: torch.Tensor | None = None) -> Batch:
    """One batch of ``task`` wired for ``arch`` (loss on the target only). ``continuation``
    reads ``context`` corpus bytes and predicts the next ``target``; ``reversal`` reads
    ``target`` letters and a separator and predicts them reversed (``context`` unused).

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if task == "continuation":
        ids = corpus_tokens("train") if ids is None else ids
        return prefix_lm(random_chunks(ids, batch, context + target, generator), arch, context)
    if task == "reversal":
        rows, prefix = reversal_batch(batch, target, generator)
        return prefix_lm(rows, arch, prefix)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


@torch.no_grad()
def exact_match(model: Transformer, batches: list[Batch]) -> float:
    """Fraction of examples whose whole target is the argmax at every target position
    (teacher forcing), i.e. whose greedy decoding would be exactly right.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    model.eval()
    hits = total = 0
    for b in batches:
        pred = model(b.tokens, **b.model_inputs()).argmax(-1)
        ok = ((pred == b.targets) | ~b.loss_mask).all(dim=1)
        hits += int(ok.sum())
        total += len(ok)
    return hits / total


@dataclass(frozen=True)
class ConditionalSettings:
    """Sizes of one scale of the C02 experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

    d_model: int
    n_layers: int
    n_heads: int
    steps: int
    batch: int
    context: int
    target: int
    reversal_length: int
    seeds: tuple[int, ...]
    eval_batches: int
    lr: float = 3e-3


SETTINGS = {
    "smoke": ConditionalSettings(d_model=32, n_layers=2, n_heads=2, steps=40, batch=16, context=32, target=16,
                                 reversal_length=6, seeds=(0, 1), eval_batches=2),
    "full": ConditionalSettings(d_model=64, n_layers=4, n_heads=4, steps=800, batch=32, context=48, target=24,
                                reversal_length=10, seeds=(0, 1, 2), eval_batches=16),
}


def _one_run(task: str, arch: str, seed: int, s: ConditionalSettings, progress: bool) -> dict:
    length = s.target if task == "continuation" else s.reversal_length
    seq = (s.context + s.target) if task == "continuation" else 2 * s.reversal_length + 1
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(arch=arch, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads, max_len=seq))
    train_ids = corpus_tokens("train")
    result = train(model, lambda g: task_batch(task, arch, s.batch, s.context, length, g, train_ids),
                   TrainConfig(steps=s.steps, lr=s.lr, warmup=max(1, s.steps // 20), seed=seed, progress=progress))
    g = torch.Generator().manual_seed(10_000)  # the same held-out batches for every run
    val_ids = corpus_tokens("val")
    val = [task_batch(task, arch, s.batch, s.context, length, g, val_ids) for _ in range(s.eval_batches)]
    return {"task": task, "arch": arch, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "target_loss": evaluate(model, val), "exact_match": exact_match(model, val),
            "train_losses": result.losses}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train both architectures on both tasks for every seed at ``scale``; with ``out``,
    store after each task and resume. Defined in the chapter "Encoder vs decoder at equal
    parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = f"python -m whydecoder.conditional --scale {scale}" + (f" --out {out}" if out else "")
    sections = {task: (lambda task=task: [_one_run(task, a, seed, s, progress) for a in ARCHS for seed in s.seeds])
                for task in TASKS}
    return run_sections(sections, settings_dict(s), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every task, else ``None``. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    return load_stored(path, TASKS)


def paired_gaps(runs: list[dict], metric: str = "target_loss") -> dict:
    """Per seed, causal decoder minus prefix-LM on ``metric`` (positive loss gap: the
    prefix-LM is better), with the mean and the standard error over seeds.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    by = {(r["arch"], r["seed"]): r[metric] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    gaps = torch.tensor([by[("decoder", s)] - by[("prefix-lm", s)] for s in seeds], dtype=torch.float64)
    se = float(gaps.std(unbiased=True) / len(gaps) ** 0.5) if len(gaps) > 1 else float("nan")
    return {"gaps": gaps.tolist(), "mean": float(gaps.mean()), "se": se,
            "decoder": float(torch.tensor([by[("decoder", s)] for s in seeds]).mean()),
            "prefix-lm": float(torch.tensor([by[("prefix-lm", s)] for s in seeds]).mean())}


def c02_verdict(gaps_by_task: dict[str, dict], min_relative: float = 0.01) -> str:
    """C02 says the bidirectional prefix brings no gain. A task shows a gain when the
    prefix-LM's target loss is lower by more than two standard errors and by more than
    ``min_relative`` of the loss. ``supported`` if no task shows a gain, ``refuted`` if
    every task does, ``nuanced`` otherwise. Defined in the chapter "Encoder vs decoder at
    equal parameters"."""
    gains = [g["mean"] > 2 * g["se"] and g["mean"] > min_relative * g["decoder"] for g in gaps_by_task.values()]
    if not gains:
        raise ValueError("no tasks to judge")
    return "refuted" if all(gains) else "supported" if not any(gains) else "nuanced"


if __name__ == "__main__":
    experiment_main("conditional", run, RESULTS_DIR)
