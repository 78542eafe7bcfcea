"""Conditional generation at equal data, steps and seeds, the loss on the target only:
a causal decoder vs a prefix-LM that differ only in the attention mask over the input
(claim C02), and the five architectures of T5's Table 2 (claim C01). Explained in the
chapter "Encoder vs decoder at equal parameters".

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

from ..accounting import forward_flops, parameter_count
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import Batch, prefix_lm
from ..paths import results_dir
from ..results import experiment_command, experiment_main, run_sections, settings_dict
from ..results import load_complete as load_stored
from ..scale import current_scale
from ..stats import mean_and_se
from ..text import corpus_tokens, random_chunks
from ..train import RunSizes, evaluate, train

RESULTS_DIR = results_dir("conditional")
T5_TABLE2_PATH = RESULTS_DIR.parent / "t5_table2.csv"
ARCHS = ("decoder", "prefix-lm")
TASKS = ("continuation", "reversal")
SECTIONS = TASKS + ("t5_variants",)
# T5's Table 2 rows (Raffel et al. 2020) as changes to one base of L layers, width d:
# name -> (arch, decoder layers, encoder layers, shared encoder/decoder weights)
T5_VARIANTS = {
    "encoder-decoder (2P, M)": ("encoder-decoder", 1.0, 1.0, False),
    "enc-dec, shared (P, M)": ("encoder-decoder", 1.0, 1.0, True),
    "enc-dec, half depth (P, M/2)": ("encoder-decoder", 0.5, 0.5, False),
    "decoder / LM (P, M)": ("decoder", 1.0, None, False),
    "prefix-LM (P, M)": ("prefix-lm", 1.0, None, False),
}
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
    if arch not in ARCHS + ("encoder-decoder",):
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS + ('encoder-decoder',)}")
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
class ConditionalSettings(RunSizes):
    """Sizes of one scale of the C02 experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

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


def variant_config(name: str, s: ConditionalSettings, max_len: int) -> ModelConfig:
    """The model of one of T5's Table 2 rows (:data:`T5_VARIANTS`) built on the settings'
    width and depth. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if name not in T5_VARIANTS:
        raise ValueError(f"unknown T5 variant {name!r}; expected one of {tuple(T5_VARIANTS)}")
    arch, dec, enc, shared = T5_VARIANTS[name]
    layers = max(1, round(dec * s.n_layers))
    extra = {} if enc is None else {"n_encoder_layers": max(1, round(enc * s.n_layers)), "share_encoder_decoder": shared}
    return ModelConfig(arch=arch, d_model=s.d_model, n_layers=layers, n_heads=s.n_heads, max_len=max_len, **extra)


def _base_config(arch: str, task: str, s: ConditionalSettings) -> ModelConfig:
    seq = (s.context + s.target) if task == "continuation" else 2 * s.reversal_length + 1
    return ModelConfig(arch=arch, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads, max_len=seq)


def _one_run(task: str, cfg: ModelConfig, seed: int, s: ConditionalSettings, corpus: dict, progress: bool) -> dict:
    length = s.target if task == "continuation" else s.reversal_length
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: task_batch(task, cfg.arch, s.batch, s.context, length, g, corpus["train"]),
                   s.train_config(seed, progress))
    g = torch.Generator().manual_seed(10_000)  # the same held-out batches for every run
    val = [task_batch(task, cfg.arch, s.batch, s.context, length, g, corpus["val"]) for _ in range(s.eval_batches)]
    return {"task": task, "arch": cfg.arch, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "target_loss": evaluate(model, val), "exact_match": exact_match(model, val),
            "train_losses": result.losses}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train both architectures on both tasks for every seed at ``scale``; with ``out``,
    store after each task and resume. Defined in the chapter "Encoder vs decoder at equal
    parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    corpus = {split: corpus_tokens(split) for split in ("train", "val")}
    sections = {task: (lambda task=task: [_one_run(task, _base_config(a, task, s), seed, s, corpus, progress)
                                          for a in ARCHS for seed in s.seeds])
                for task in TASKS}
    sections["t5_variants"] = lambda: _t5_variants(s, corpus, progress)
    assert tuple(sections) == SECTIONS
    return run_sections(sections, settings_dict(s), out, experiment_command("experiments.ch03_conditional", scale, out))


def _t5_variants(s: ConditionalSettings, corpus: dict, progress: bool) -> list[dict]:
    runs = []
    for name in T5_VARIANTS:
        cfg = variant_config(name, s, s.context + s.target)
        source = s.context if cfg.arch == "encoder-decoder" else 0
        n_new = s.target if cfg.arch == "encoder-decoder" else s.context + s.target - 1
        for seed in s.seeds:
            run = _one_run("continuation", cfg, seed, s, corpus, progress)
            run.update(variant=name, flops_per_example=forward_flops(cfg, n_new, source_len=source),
                       parameters_no_embeddings=parameter_count(cfg, embeddings=False))
            runs.append(run)
    return runs


def t5_table2(path: str | Path = T5_TABLE2_PATH):
    """T5's Table 2 (Raffel et al. 2020) as a pandas frame: architecture, objective,
    parameters, cost and the downstream scores. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""
    import pandas as pd

    table = pd.read_csv(path)
    if len(table) != 10 or set(table["objective"]) != {"Denoising", "LM"}:
        raise ValueError(f"{path} is not T5's Table 2 (10 rows, two objectives); got {len(table)} rows")
    return table


def c01_evidence(runs: list[dict]) -> dict:
    """Our side of claim C01, from the T5-variant runs (paired by seed): the
    encoder-decoder's edge over the decoder (``decoder − enc-dec 2P`` target loss) and
    whether it is significant (over two standard errors and 1% of the loss); the cost of
    cutting the encoder-decoder to P parameters by sharing weights at the same FLOPs
    (``shared − 2P``) and whether that is significant; and, when there is an edge, the share
    of it that sharing loses. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    names = list(T5_VARIANTS)
    by = {(r["variant"], r["seed"]): r["target_loss"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    loss = {n: torch.tensor([by[(n, sd)] for sd in seeds], dtype=torch.float64) for n in names}
    two_p, shared, decoder = loss[names[0]], loss[names[1]], loss[names[3]]

    def paired(diff):
        mean, se = mean_and_se(diff)
        return mean, se, mean > 2 * se and mean > 0.01 * float(two_p.mean())

    edge, edge_se, edge_sig = paired(decoder - two_p)
    cost, cost_se, cost_sig = paired(shared - two_p)
    return {"edge": edge, "edge_se": edge_se, "edge_significant": edge_sig,
            "sharing_cost": cost, "sharing_cost_se": cost_se, "sharing_hurts": cost_sig,
            "share_lost_by_sharing": cost / edge if edge_sig else None,
            "mean_loss": {n: float(loss[n].mean()) for n in names},
            "sd_loss": {n: float(loss[n].std(unbiased=True)) if len(seeds) > 1 else float("nan") for n in names}}


def t5_share_lost(table, metric: str = "GLUE") -> dict[str, float]:
    """For each objective of T5's Table 2, the share of the encoder-decoder's edge over the
    language model that sharing the weights (2P -> P at the same FLOPs) loses on ``metric``.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    out = {}
    for objective, rows in table.groupby("objective"):
        score = dict(zip(rows["architecture"], rows[metric]))
        edge = score["Encoder-decoder"] - score["Language model"]
        out[objective] = (score["Encoder-decoder"] - score["Enc-dec, shared"]) / edge
    return out


def c01_verdict(ours: dict, t5_lost: dict[str, float]) -> str:
    """C01 ("the encoder-decoder's edge comes mostly from twice the parameters") from both
    sources of evidence. ``supported`` if in T5's table sharing the weights loses at least
    half of the edge for every objective and our runs do not contradict it (no edge, or
    sharing loses at least half of ours); ``refuted`` if T5's sharing loses less than half
    for every objective and in our runs sharing costs nothing significant (and loses less
    than half of any edge); ``nuanced`` otherwise.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    lost = ours["share_lost_by_sharing"]
    if all(v >= 0.5 for v in t5_lost.values()) and (lost is None or lost >= 0.5):
        return "supported"
    if all(v < 0.5 for v in t5_lost.values()) and not ours["sharing_hurts"] and (lost is None or lost < 0.5):
        return "refuted"
    return "nuanced"


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section, else ``None``. Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    return load_stored(path, SECTIONS, settings_dict(SETTINGS["full"]))


def paired_gaps(runs: list[dict], metric: str = "target_loss") -> dict:
    """Per seed, causal decoder minus prefix-LM on ``metric`` (positive loss gap: the
    prefix-LM is better), with the mean and the standard error over seeds.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    by = {(r["arch"], r["seed"]): r[metric] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    gaps = torch.tensor([by[("decoder", s)] - by[("prefix-lm", s)] for s in seeds], dtype=torch.float64)
    mean, se = mean_and_se(gaps)
    return {"gaps": gaps.tolist(), "mean": mean, "se": se,
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
    experiment_main("experiments.ch03_conditional", run, RESULTS_DIR)
