"""Conditional generation at equal data, steps and seeds, the loss on the target only:
a causal decoder vs a prefix-LM that differ only in the attention mask over the input
(claim C02), and the five architectures of T5's Table 2 (claim C01). Explained in the
chapter "Encoder vs decoder at equal parameters".

Two tasks: continuing real text (the book's byte corpus: read ``context`` bytes, predict the
next ``target`` bytes) and adding two numbers (a task with one right answer, so exact
match is defined, and one whose answer depends on the whole input). Exact match is measured with teacher forcing: greedy decoding
reproduces the target exactly when, and only when, the argmax at every target position
given the true earlier tokens is the true token, so no sampling loop is needed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..accounting import forward_flops, parameter_count
from ..claims import Claim, Evidence, counted, counted_of, in_words, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import Batch, prefix_lm
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import corpus_tokens, random_chunks, unigram_baseline
from ..train import RunSizes, evaluate, exact_match, train
from ..verdicts import READ_CLEARLY, Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("conditional")
#: The page that shows it (under ``chapters/``).
PAGE = "03_encoder_vs_decoder/encoder_vs_decoder"
T5_TABLE2_PATH = RESULTS_DIR.parent / "t5_table2.csv"
ARCHS = ("decoder", "prefix-lm")
TASKS = ("continuation", "addition")
SECTIONS = ("baseline", "t5_table2") + TASKS + ("t5_variants",)
# T5's Table 2 rows (Raffel et al. 2020) as changes to one base of L layers, width d:
# name -> (arch, decoder layers, encoder layers, shared encoder/decoder weights)
T5_VARIANTS = {
    "encoder-decoder (2P, M)": ("encoder-decoder", 1.0, 1.0, False),
    "enc-dec, shared (P, M)": ("encoder-decoder", 1.0, 1.0, True),
    "enc-dec, half depth (P, M/2)": ("encoder-decoder", 0.5, 0.5, False),
    "decoder / LM (P, M)": ("decoder", 1.0, None, False),
    "prefix-LM (P, M)": ("prefix-lm", 1.0, None, False),
}
DIGITS = torch.tensor(list(b"0123456789"))


def addition_batch(batch: int, digits: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Rows ``a+b=c`` (bytes): two random ``digits``-digit numbers (leading zeros kept) and
    their sum in ``digits + 1`` digits, most significant first; and the context length
    (``2 * digits + 2``). Writing the sum's first digit needs every carry, so the answer
    depends on the whole input, read right to left.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if not isinstance(digits, int) or not 1 <= digits <= 15:
        raise ValueError(f"addition digits must be an int in [1, 15], got {digits!r}")
    a = torch.randint(10, (batch, digits), generator=generator)
    b = torch.randint(10, (batch, digits), generator=generator)
    powers = 10 ** torch.arange(digits - 1, -1, -1)
    total = (a * powers).sum(1) + (b * powers).sum(1)
    answer = torch.stack([(total // 10**k) % 10 for k in range(digits, -1, -1)], dim=1)
    plus, equals = torch.full((batch, 1), ord("+")), torch.full((batch, 1), ord("="))
    return torch.cat([DIGITS[a], plus, DIGITS[b], equals, DIGITS[answer]], dim=1), 2 * digits + 2


def task_batch(task: str, arch: str, batch: int, context: int, target: int, generator: torch.Generator,
               ids: torch.Tensor | None = None) -> Batch:
    """One batch of ``task`` wired for ``arch`` (loss on the target only). ``continuation``
    reads ``context`` corpus bytes and predicts the next ``target``; ``addition`` reads
    ``a+b=`` with ``target``-digit numbers and predicts the sum (``context`` unused).

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if arch not in ARCHS + ("encoder-decoder",):
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS + ('encoder-decoder',)}")
    if task == "continuation":
        ids = corpus_tokens("train") if ids is None else ids
        return prefix_lm(random_chunks(ids, batch, context + target, generator), arch, context)
    if task == "addition":
        rows, prefix = addition_batch(batch, target, generator)
        return prefix_lm(rows, arch, prefix)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


@dataclass(frozen=True)
class ConditionalSettings(RunSizes):
    """Sizes of one scale of the C02 experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

    context: int
    target: int
    addition_digits: int
    seeds: tuple[int, ...]
    eval_batches: int
    lr: float = 3e-3


# 4 digits: chosen with a one-seed pilot so that neither model saturates (reversing 10 or 24
# letters, or sorting 24, every model reached exact match 0.9 to 1) nor fails the gate
# (8 digits: the decoder barely beat a uniform guess among the digits)
ADDITION_FULL = 4
SETTINGS = {
    "smoke": ConditionalSettings(d_model=32, n_layers=2, n_heads=2, steps=40, batch=16, context=32, target=16,
                                 addition_digits=3, seeds=(0, 1), eval_batches=2),
    "full": ConditionalSettings(d_model=64, n_layers=4, n_heads=4, steps=800, batch=32, context=48, target=24,
                                addition_digits=ADDITION_FULL, seeds=(0, 1, 2, 3, 4), eval_batches=16),
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
    seq = (s.context + s.target) if task == "continuation" else 3 * s.addition_digits + 3
    return ModelConfig(arch=arch, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads, max_len=seq)


def _one_run(task: str, cfg: ModelConfig, seed: int, s: ConditionalSettings, corpus: dict, progress: bool) -> dict:
    length = s.target if task == "continuation" else s.addition_digits
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
    sections = {"baseline": lambda: _baselines(s, corpus),
                "t5_table2": lambda: t5_table2().to_dict(orient="records")}
    sections |= {task: (lambda task=task: [_one_run(task, _base_config(a, task, s), seed, s, corpus, progress)
                                           for a in ARCHS for seed in s.seeds])
                 for task in TASKS}
    sections["t5_variants"] = lambda: _t5_variants(s, corpus, progress)
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, experiment_command("experiments.ch03_conditional", scale, out))


def _baselines(s: ConditionalSettings, corpus: dict) -> dict:
    """What a model scores that knows only the answer format: on text, the unigram byte
    model on the held-out targets; on addition, a uniform guess among the 10 digits."""
    import math

    g = torch.Generator().manual_seed(10_000)
    targets = torch.cat([task_batch("continuation", "decoder", s.batch, s.context, s.target, g, corpus["val"]).targets
                         for _ in range(s.eval_batches)])
    return {"continuation": unigram_baseline(corpus["train"], targets[:, -s.target:])["nats_per_byte"],
            "addition": math.log(len(DIGITS))}


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


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings and rules,
    else ``None``. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))



def _mean(runs: list[dict], metric: str = "target_loss") -> float:
    return sum(r[metric] for r in runs) / len(runs)


def by_seed(runs: list[dict], key: str, value: str, metric: str = "target_loss") -> dict:
    """``{seed: metric}`` of the runs whose ``key`` is ``value`` (an arch or a T5 variant).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return {r["seed"]: float(r[metric]) for r in runs if r[key] == value}


def task_gap(results: dict, task: str):
    """The 95% t-interval of the causal decoder's target loss minus the prefix-LM's on
    ``task``, paired by seed (positive: the bidirectional prefix helps). Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    runs = results[task]
    return t_interval(paired_differences(by_seed(runs, "arch", "decoder"), by_seed(runs, "arch", "prefix-lm")))


def _conditional_seeds(results: dict) -> int:
    counts = [len(by_seed(results[t], "arch", a)) for t in TASKS for a in ARCHS]
    counts += [len(by_seed(results["t5_variants"], "variant", v)) for v in T5_VARIANTS]
    return min(counts)


def _c02_decide(results: dict, p: dict) -> Verdict:
    """C02: "a bidirectional prefix brings no gain for generation". Per task, the causal
    decoder's target loss minus the prefix-LM's, paired by seed: a *gain* when the 95%
    interval lies above zero and outside the margin (``p["margin"]`` of the decoder's loss),
    *no gain* when it lies inside the margin or below zero. No gain on every task:
    supported; a gain on every task: refuted; mixed: nuanced. Gate: on each task both models
    beat the baseline (unigram bytes for text, a uniform digit for addition) by
    ``p["gate_nats"]``; an interval that straddles the margin: inconclusive."""
    readings, numbers = {}, {}
    for task in TASKS:
        runs, base = results[task], results["baseline"][task]
        means = {a: _mean([r for r in runs if r["arch"] == a]) for a in ARCHS}
        slow = [a for a in ARCHS if not learned(means[a], base, lower_is_better=True, by=p["gate_nats"])]
        if slow:
            return Verdict("inconclusive", f"on {task}, {', '.join(slow)} did not beat the baseline ({base:.2f})",
                           {"baseline": results["baseline"]})
        gap = task_gap(results, task)
        readings[task] = compare(gap, p["margin"] * means["decoder"])
        numbers[task] = {"gap": gap.__dict__, "reading": readings[task], **means}
    unclear = [t for t, r in readings.items() if r == "unclear"]
    if unclear:
        return Verdict("inconclusive", "on " + " and ".join(unclear)
                       + (" the interval straddles" if len(unclear) == 1 else " both intervals straddle")
                       + " the margin", numbers)
    gains = [r == "higher" for r in readings.values()]
    if all(gains):
        return Verdict("refuted", "the prefix-LM generated better on every task", numbers)
    if not any(gains):
        return Verdict("supported", "the bidirectional prefix brought no gain beyond the margin on any task", numbers)
    return Verdict("nuanced", "the prefix-LM generated better on " + ", ".join(
        t for t, r in readings.items() if r == "higher") + " only", numbers)


def t5_readings(table: list[dict], most: float) -> dict:
    """C01 in T5's Table 2: for each objective, metric (GLUE, CNNDM) and baseline (the
    language model, the prefix LM), whether the encoder-decoder has an edge over the
    baseline, and whether sharing its weights (2P -> P at the same FLOPs) loses at least
    ``most`` of that edge (``"parameters"``) or less (``"not parameters"``). Defined in
    the chapter "Encoder vs decoder at equal parameters"."""
    out = {}
    for objective in ("Denoising", "LM"):
        rows = {r["architecture"]: r for r in table if r["objective"] == objective}
        for metric in ("GLUE", "CNNDM"):
            full, shared = float(rows["Encoder-decoder"][metric]), float(rows["Enc-dec, shared"][metric])
            for baseline in ("Language model", "Prefix LM"):
                edge = full - float(rows[baseline][metric])
                lost = (full - shared) / edge if edge > 0 else None
                reading = "no edge" if lost is None else "parameters" if lost >= most else "not parameters"
                out[f"T5 {objective}, {metric}, vs {baseline}"] = {"edge": edge, "share_lost": lost, "reading": reading}
    return out


def our_c01_readings(runs: list[dict], p: dict) -> dict:
    """C01 in our runs, for each baseline (the decoder, the prefix-LM): the baseline's loss
    minus the 2P encoder-decoder's (its edge) and, when that edge is clear (interval above
    the margin), whether sharing the weights loses at least ``p["most"]`` of it per seed.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    names = list(T5_VARIANTS)
    two_p, shared = by_seed(runs, "variant", names[0]), by_seed(runs, "variant", names[1])
    out = {}
    for baseline in (names[3], names[4]):
        base = by_seed(runs, "variant", baseline)
        edge = t_interval(paired_differences(base, two_p))
        entry = {"edge": edge.__dict__, "edge_reading": compare(edge, p["margin"] * _mean(
            [r for r in runs if r["variant"] == baseline]))}
        if entry["edge_reading"] == "higher":
            lost = {sd: (shared[sd] - two_p[sd]) - p["most"] * (base[sd] - two_p[sd]) for sd in two_p}
            cmp = compare(t_interval(list(lost.values())), 0.0)
            entry["reading"] = {"higher": "parameters", "lower": "not parameters"}.get(cmp, "unclear")
        else:
            entry["reading"] = "no edge"
        out[f"ours, vs {baseline}"] = entry
    return out


def _c01_decide(results: dict, p: dict) -> Verdict:
    """C01: "the encoder-decoder's edge comes mostly from twice the parameters". Read in
    T5's Table 2 (two objectives x GLUE and CNNDM x two baselines) and in our runs (two
    baselines): where the encoder-decoder has an edge, does sharing its weights (half the
    parameters, the same FLOPs) lose at least ``p["most"]`` of it? Every reading with an
    edge says yes: supported; every one says no: refuted; they disagree: nuanced. No edge
    anywhere: inconclusive. Gate: every arm a reading of ours compares (the 2P and the
    shared encoder-decoder, the decoder and the prefix-LM) beats the unigram baseline by
    ``p["gate_nats"]``; our readings that straddle zero do not vote."""
    runs, base = results["t5_variants"], results["baseline"]["continuation"]
    names = list(T5_VARIANTS)
    for name in (names[0], names[1], names[3], names[4]):
        if not learned(_mean([r for r in runs if r["variant"] == name]), base, lower_is_better=True,
                       by=p["gate_nats"]):
            return Verdict("inconclusive", f"{name} did not beat the unigram baseline ({base:.2f})", {})
    readings = t5_readings(results["t5_table2"], p["most"]) | our_c01_readings(runs, p)
    votes = [r["reading"] for r in readings.values() if r["reading"] in ("parameters", "not parameters")]
    if not votes:
        return Verdict("inconclusive", "the encoder-decoder had no edge to explain", readings)
    if all(v == "parameters" for v in votes):
        return Verdict("supported", "wherever the encoder-decoder leads, sharing its weights loses most of the lead",
                       readings)
    if all(v == "not parameters" for v in votes):
        return Verdict("refuted", "wherever the encoder-decoder leads, sharing its weights keeps most of the lead",
                       readings)
    agree = sum(v == "parameters" for v in votes)
    return Verdict("nuanced", f"the readings disagree: sharing loses most of the lead in {agree} of {len(votes)} "
                   "comparisons with a lead (it depends on the baseline and the metric)", readings)


def _conditional_scope(results: dict) -> str:
    """The scope C02 and C01 share: what was run, from the results' settings."""
    settings = results["settings"]
    return (f"width {settings['d_model']}, {settings['n_layers']} layers, {settings['steps']} steps of "
            f"{settings['batch']} examples, {len(settings['seeds'])} seeds, the same weights, data and steps")


def _learned_arms(results: dict, runs: list[dict], key: str, names, baseline: float, rule: Rule) -> list[str]:
    """Which of ``names`` (arms: the runs' ``key``) beat ``baseline`` by the rule's gate."""
    return [n for n in names if learned(_mean([r for r in runs if r[key] == n]), baseline, lower_is_better=True,
                                        by=rule.parameters["gate_nats"])]


def _c02_rests_on(results: dict, verdict: Verdict) -> str:
    """What C02's verdict rests on, counted: the tasks both arms learned (the gate), the
    seeds, and how many of their readings were clear of zero or inside the margin."""
    rule = RULES["C02"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    both = [t for t in TASKS if len(_learned_arms(results, results[t], "arch", ARCHS, results["baseline"][t], rule))
            == len(ARCHS)]
    head = (f"{counted_of(len(both), len(TASKS), 'task')} learned by the decoder and the prefix-LM"
            + (f" ({', '.join(both)})" if 0 < len(both) < len(TASKS) else "")
            + f", {counted(rule.seeds(results), 'seed')} each")
    if len(both) < len(TASKS):
        return f"nothing compared: {head}"
    clear = [t for t in TASKS if verdict.numbers[t]["reading"] != "unclear"]
    return (f"{head}; {counted_of(len(clear), len(TASKS), 'reading')} {READ_CLEARLY}"
            + (f" ({', '.join(clear)})" if 0 < len(clear) < len(TASKS) else ""))


def c02_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C02's evidence and scope in words: per task, the paired gap decoder minus prefix-LM
    (:func:`task_gap`). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    text = "; ".join(f"{t}: decoder − prefix-LM {task_gap(results, t)} nats/byte" for t in TASKS) + "."
    return Evidence(text, _conditional_scope(results), rests_on=_c02_rests_on(results, verdict))


def _c01_rests_on(results: dict, verdict: Verdict) -> str:
    """What C01's verdict rests on, counted: our arms past the gate, and how many
    comparisons (T5's Table 2, ours) had a lead to explain and so voted."""
    rule = RULES["C01"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    names = list(T5_VARIANTS)
    ours = (names[0], names[1], names[3], names[4])
    passed = _learned_arms(results, results["t5_variants"], "variant", ours, results["baseline"]["continuation"], rule)
    gate = f"{counted_of(len(passed), len(ours), 'arm')} of ours past the unigram gate"
    if len(passed) < len(ours):
        return f"nothing compared: {gate}"
    readings = {name: v["reading"] for name, v in verdict.numbers.items()}
    t5 = [r for name, r in readings.items() if name.startswith("T5 ")]
    mine = [r for name, r in readings.items() if not name.startswith("T5 ")]

    def votes(found):
        return sum(r in ("parameters", "not parameters") for r in found)

    return (f"{counted_of(votes(t5) + votes(mine), len(readings), 'comparison')} had a lead to explain and voted: "
            f"{in_words(votes(t5))} of T5's {in_words(len(t5))} (published single scores, no seeds), "
            f"{in_words(votes(mine)) if votes(mine) else 'none'} of our {in_words(len(mine))} (no lead; {gate}, "
            f"{counted(rule.seeds(results), 'seed')} each)")


def c01_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C01's evidence and scope in words: in how many of the comparisons with a lead
    sharing the weights loses most of it (the verdict's readings). Defined in the chapter
    "Encoder vs decoder at equal parameters"."""
    votes = [v["reading"] for v in verdict.numbers.values() if v["reading"] in ("parameters", "not parameters")]
    text = (f"Sharing the weights (2P -> P, same FLOPs) loses most of the lead in {votes.count('parameters')} of "
            f"{len(votes)} comparisons with a lead (T5 Table 2: 2 objectives x GLUE, CNNDM x LM, prefix LM; ours: "
            "continuation, vs decoder and prefix-LM).")
    return Evidence(text, _conditional_scope(results), rests_on=_c01_rests_on(results, verdict))


RULES = {
    "C02": Rule("C02", "a causal decoder generates as well as a prefix-LM with the same weights, data and steps",
                {"min_seeds": 5, "margin": 0.03, "gate_nats": 0.5}, _c02_decide, seeds=_conditional_seeds),
    "C01": Rule("C01", "where an encoder-decoder beats a decoder-only model, halving its parameters by sharing "
                "weights (same FLOPs) loses most of that lead",
                {"min_seeds": 5, "margin": 0.01, "most": 0.5, "gate_nats": 0.5}, _c01_decide,
                seeds=_conditional_seeds),
}


CLAIMS = (
    Claim("C02", "Making the input attention bidirectional (prefix-LM / UniLM) brings no gain for generation",
          "03_encoder_vs_decoder", stored_results(sys.modules[__name__]), RULES["C02"], c02_evidence),
    Claim("C01", "Encoder-decoder's edge comes mostly from having twice the parameters", "03_encoder_vs_decoder",
          stored_results(sys.modules[__name__]), RULES["C01"], c01_evidence),
)


if __name__ == "__main__":
    experiment_main("experiments.ch03_conditional", run, RESULTS_DIR)
