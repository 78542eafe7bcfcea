"""Scale (C12, C16) and the head-to-head of the conclusion (C18): one sweep of the four
architectures over model sizes.

Four models at every size, each with its own pretraining objective, trained on the same
bytes for the same steps: the causal ``decoder`` (next byte at every position), the
``prefix-lm`` and the ``encoder-decoder`` (read a prefix of random length, predict the rest:
the objectives Wang et al. 2022 pair with them) and the ``encoder`` (BERT's masked LM).
At each size the four have the same non-embedding parameters (the encoder-decoder splits the
layers in two stacks and narrows its MLP to pay for the cross-attention; checked in code).
Tokens grow with parameters: ``bytes_per_parameter`` bytes of text per non-embedding
parameter, read in a fixed number of steps (the batch grows with the model).

Measured on the same held-out items for every model:

- *next-byte loss*: after a context of ``c`` bytes, the cross-entropy of byte ``c + 1``,
  each architecture reading the context as it can (the decoder causally, the prefix-LM as
  its prefix, the encoder-decoder in its encoder, the masked LM with a ``<mask>`` in the
  next position);
- *word order*: a linear probe (logistic regression) on mean-pooled features, telling a
  window of text from the same window with its words shuffled (a bag of bytes is at chance);
- *fill in the blank*: one byte hidden in the middle of a window; the masked LM predicts it,
  the decoder scores every candidate byte by the likelihood of the whole window.

The first attempt at claims C12, C16 and C18: its :data:`RULES` were fixed before its
full run and still read its stored results, but the fair head-to-head
(:mod:`whydecoder.experiments.ch08_head_to_head`), which repairs what failed here, decides
those claims. Explained in the chapter "Scale".
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..accounting import (
    EQUAL_PARAMETERS_TOLERANCE,
    forward_flops,
    generation_flops,
    matched_encoder_decoder,
    parameter_count,
)
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..head_to_head import (  # noqa: F401 (the chapter's names)
    next_byte_logits,
    next_byte_loss,
    pooled_features,
    probe_accuracy,
    shuffle_words,
    training_batch,
    word_order_pairs,
)
from ..model import Transformer
from ..paths import results_dir
from ..power_law import extrapolate, fit_power_law, power_law, predictability  # noqa: F401 (the chapter's names)
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_tokens, random_chunks, unigram_baseline
from ..train import TrainConfig, evaluate, train, warmed_up
from ..verdicts import Interval, Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("scale")
#: The page that shows it (under ``chapters/``).
PAGE = "08_scale/scale"
ARCHS = ("decoder", "prefix-lm", "encoder-decoder", "encoder")
LABELS = {"decoder": "decoder", "prefix-lm": "prefix-LM", "encoder-decoder": "encoder-decoder",
          "encoder": "masked LM (encoder)"}
OBJECTIVES = {"decoder": "full-lm", "prefix-lm": "prefix-lm", "encoder-decoder": "prefix-lm", "encoder": "masked-lm"}
TOKENIZER = ByteTokenizer()


@dataclass(frozen=True)
class ScaleSettings:
    """Sizes of one scale of the sweep. ``sizes``: ``(name, width, layers)`` from smallest
    to largest. Defined in the chapter "Scale"."""

    sizes: tuple[tuple[str, int, int], ...]
    n_heads: int
    length: int
    steps: int
    bytes_per_parameter: float
    lr: float
    seeds: tuple[int, ...]
    cuts: tuple[int, ...]
    eval_rows: int
    probe_windows: int
    fill_rows: int
    prompt: int
    generated: int

    def train_config(self, seed: int, progress: bool = True) -> TrainConfig:
        """AdamW at ``lr`` for ``steps`` steps, 5% of them warmup."""
        return warmed_up(self.steps, self.lr, seed, progress)


SETTINGS = {
    "smoke": ScaleSettings(sizes=(("d8", 8, 2), ("d12", 12, 2), ("d16", 16, 2), ("d20", 20, 2)), n_heads=2,
                           length=32, steps=8, bytes_per_parameter=1.0, lr=3e-3, seeds=(0, 1), cuts=(8, 31),
                           eval_rows=32, probe_windows=48, fill_rows=4, prompt=8, generated=8),
    "full": ScaleSettings(sizes=(("d8", 8, 2), ("d12", 12, 2), ("d16", 16, 4), ("d24", 24, 4), ("d32", 32, 4),
                                 ("d40", 40, 4)), n_heads=2, length=64, steps=250, bytes_per_parameter=40.0, lr=3e-3,
                          seeds=(0, 1, 2, 3, 4), cuts=(8, 32, 63), eval_rows=512, probe_windows=600, fill_rows=64,
                          prompt=32, generated=32),
}


def model_config(arch: str, size: str, s: ScaleSettings) -> ModelConfig:
    """The model of ``arch`` at size ``size`` (rotary positions for all four).

    Defined in the chapter "Scale"."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    sizes = {name: (d, layers) for name, d, layers in s.sizes}
    if size not in sizes:
        raise ValueError(f"unknown size {size!r}; expected one of {tuple(sizes)}")
    d, layers = sizes[size]
    decoder = ModelConfig(arch="decoder", vocab_size=TOKENIZER.vocab_size, d_model=d, n_heads=s.n_heads,
                          n_layers=layers, position="rope", max_len=s.length + 1)
    if arch == "encoder-decoder":
        return matched_encoder_decoder(decoder)
    return decoder.replace(arch=arch)


def parameters(size: str, s: ScaleSettings) -> int:
    """The decoder's non-embedding parameters at ``size``: the sweep's N. Defined in the
    chapter "Scale"."""
    return parameter_count(model_config("decoder", size, s), embeddings=False)


def rows_per_step(size: str, s: ScaleSettings) -> int:
    """Rows of ``length`` bytes per step, so that ``steps`` steps read about
    ``bytes_per_parameter`` bytes per parameter (at least two rows). Defined in the chapter
    "Scale"."""
    return max(2, round(s.bytes_per_parameter * parameters(size, s) / (s.steps * s.length)))


def budgets(s: ScaleSettings) -> dict[str, dict[str, int]]:
    """``{size: {arch: non-embedding parameters}}`` by formula. Defined in the chapter "Scale"."""
    return {size: {a: parameter_count(model_config(a, size, s), embeddings=False) for a in ARCHS}
            for size, _, _ in s.sizes}


def training_flops(arch: str, size: str, s: ScaleSettings) -> int:
    """Matmul FLOPs of the whole training run: three forward passes' worth per step
    (forward and backward), the prefix of the encoder-decoder at its mean length.
    Defined in the chapter "Scale"."""
    cfg = model_config(arch, size, s)
    half = s.length // 2
    one = (forward_flops(cfg, s.length - half + 1, source_len=half) if arch == "encoder-decoder"
           else forward_flops(cfg, s.length))
    return 3 * one * rows_per_step(size, s) * s.steps


def flops_per_generated_token(arch: str, size: str, s: ScaleSettings) -> float:
    """Inference matmul FLOPs per generated byte: ``generated`` bytes after a ``prompt``
    of bytes, prefill included; with a KV cache for the three that have one (the
    encoder-decoder's prompt in its encoder), the masked LM re-reading the whole sequence
    for every new byte. Defined in the chapter "Scale"."""
    cfg = model_config(arch, size, s)
    if arch == "encoder-decoder":
        total = generation_flops(cfg, 1, s.generated, use_cache=True, source_len=s.prompt)
    else:
        total = generation_flops(cfg, s.prompt + (arch == "encoder"), s.generated, use_cache=arch != "encoder")
    return total / s.generated


def evaluation_sets(val: torch.Tensor, train_ids: torch.Tensor, s: ScaleSettings, seed: int = 4321) -> dict:
    """The held-out items every model is scored on: windows per cut for the next byte,
    (window, label) pairs for the word-order probe, windows with a blank for the fill-in,
    and the candidate bytes (those the training text holds). Defined in the chapter "Scale"."""
    g = torch.Generator().manual_seed(seed)
    cuts = {c: random_chunks(val, s.eval_rows, c + 1, g) for c in s.cuts}
    probe = word_order_pairs(val, s.probe_windows, s.length, seed)
    fill = random_chunks(val, s.fill_rows, s.length, g)
    return {"cuts": cuts, "probe": probe, "fill": fill, "candidates": torch.unique(train_ids)}


@torch.no_grad()
def fill_in_accuracy(model: Transformer, arch: str, rows: torch.Tensor, candidates: torch.Tensor) -> float | None:
    """Share of windows whose middle byte the model names among ``candidates``: the masked
    LM from a ``<mask>`` there, the decoder by the likelihood of the whole window with each
    candidate in place (the usual way to score a blank with a left-to-right model). ``None``
    for the two prefix architectures (not measured). Defined in the chapter "Scale"."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if not isinstance(rows, torch.Tensor) or rows.dim() != 2 or not len(rows) or rows.shape[1] < 2:
        raise ValueError(f"rows must be a non-empty (windows, length >= 2) tensor, got shape "
                         f"{tuple(getattr(rows, 'shape', ()))}")
    if not isinstance(candidates, torch.Tensor) or candidates.dim() != 1 or not len(candidates):
        raise ValueError(f"candidates must be a non-empty 1-D tensor of token ids, got shape "
                         f"{tuple(getattr(candidates, 'shape', ()))}")
    model.eval()
    at = rows.shape[1] // 2
    truth = rows[:, at]
    if arch == "encoder":
        logits = model(rows.masked_fill(torch.arange(rows.shape[1]) == at, TOKENIZER.mask))[:, at]
        guess = candidates[logits[:, candidates].argmax(-1)]
        return float((guess == truth).double().mean())
    if arch != "decoder":
        return None
    right = 0
    for row in rows:
        filled = row.repeat(len(candidates), 1)
        filled[:, at] = candidates
        logp = model(filled[:, :-1]).float().log_softmax(-1)
        scores = logp[:, at - 1:].gather(2, filled[:, at:, None]).squeeze(2).sum(1)
        right += int(candidates[scores.argmax()] == row[at])
    return right / len(rows)


def _own_loss(model: Transformer, arch: str, val: torch.Tensor, s: ScaleSettings, rows: int) -> float:
    g = torch.Generator().manual_seed(99)
    return evaluate(model, [training_batch(arch, val, rows, s, g) for _ in range(4)])


def one_run(arch: str, size: str, seed: int, s: ScaleSettings, data: dict, progress: bool = True) -> dict:
    """Train one model and measure it. Defined in the chapter "Scale"."""
    cfg = model_config(arch, size, s)
    rows = rows_per_step(size, s)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: training_batch(arch, data["train"], rows, s, g), s.train_config(seed, progress))
    sets = data["sets"]
    return {"arch": arch, "size": size, "seed": seed, "parameters": parameter_count(cfg, embeddings=False),
            "rows": rows, "bytes_read": rows * s.length * s.steps, "train_flops": training_flops(arch, size, s),
            "flops_per_token": flops_per_generated_token(arch, size, s),
            "train_losses": result.losses[:: max(1, len(result.losses) // 25)], "tokens_per_s": result.tokens_per_s,
            "own_loss": _own_loss(model, arch, data["val"], s, min(rows, 64)),
            "next_byte": next_byte_loss(model, arch, sets["cuts"]),
            "word_order": probe_accuracy(pooled_features(model, arch, sets["probe"]["rows"]),
                                         sets["probe"]["labels"], sets["probe"]["groups"]),
            "fill_in": fill_in_accuracy(model, arch, sets["fill"], sets["candidates"])}


def run_name(arch: str, size: str, seed: int) -> str:
    """The stored section of one run. Defined in the chapter "Scale"."""
    return f"{arch}:{size}:{seed}"


def section_names(s: ScaleSettings) -> tuple[str, ...]:
    """Every section of the sweep at settings ``s``. Defined in the chapter "Scale"."""
    return ("baseline",) + tuple(run_name(a, size, seed) for size, _, _ in s.sizes for a in ARCHS for seed in s.seeds)


SECTIONS = section_names(SETTINGS["full"])


def section_cost(name: str, scale: str | None = None) -> float:
    """A section's expected running time, in bytes read (the sweep starts the longest
    first). Defined in the chapter "Scale"."""
    s = SETTINGS[current_scale(scale)]
    if name == "baseline":
        return 0.0
    arch, size, _ = name.split(":")
    return float(rows_per_step(size, s) * s.length * s.steps)


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train every architecture at every size for every seed at ``scale``; with ``out``,
    store run by run. Defined in the chapter "Scale"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    data = {split: corpus_tokens(split) for split in ("train", "val")}
    data["sets"] = evaluation_sets(data["val"], data["train"], s)
    sections = {"baseline": lambda: unigram_baseline(data["train"], data["val"])}
    for size, _, _ in s.sizes:
        for arch in ARCHS:
            for seed in s.seeds:
                sections[run_name(arch, size, seed)] = (
                    lambda a=arch, z=size, k=seed: one_run(a, z, k, s, data, progress))
    assert tuple(sections) == section_names(s)
    return run_sections(sections, judged_settings(s, RULES), out, experiment_command("experiments.ch08_scale", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete under the current settings and rules, else ``None``.
    Defined in the chapter "Scale"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


# ---------------------------------------------------------------- reading the sweep


def runs(results: dict, arch: str) -> dict[str, dict[int, dict]]:
    """``{size: {seed: run}}`` of one architecture, sizes from smallest to largest.
    Defined in the chapter "Scale"."""
    sizes = [size for size, _, _ in _sizes(results)]
    out: dict[str, dict[int, dict]] = {size: {} for size in sizes}
    for name, value in results.items():
        if name.count(":") == 2 and value["arch"] == arch:
            out[value["size"]][value["seed"]] = value
    return out


def _sizes(results: dict):
    return [tuple(x) for x in results["settings"]["sizes"]]


def measure(results: dict, arch: str, read) -> dict[str, dict[int, float]]:
    """``{size: {seed: read(run)}}``. Defined in the chapter "Scale"."""
    return {size: {seed: read(r) for seed, r in by_seed.items()} for size, by_seed in runs(results, arch).items()}


def sizes_n(results: dict, arch: str = "decoder") -> dict[str, float]:
    """``{size: non-embedding parameters}`` of one architecture. Defined in the chapter "Scale"."""
    return {size: next(iter(by_seed.values()))["parameters"] for size, by_seed in runs(results, arch).items()}


def mean(values) -> float:
    """The mean of ``values``. Defined in the chapter "Scale"."""
    values = list(values)
    return sum(values) / len(values)


def extrapolation(results: dict, arch: str, axis: str = "parameters", replicates: int = 500, seed: int = 0) -> dict:
    """Fit the power law to every size but the largest (the mean over seeds of the
    next-byte loss against ``axis``: ``"parameters"`` or ``"compute"``, training FLOPs),
    predict the largest, and bootstrap (:func:`whydecoder.power_law.extrapolate`).
    Defined in the chapter "Scale"."""
    if axis not in ("parameters", "compute"):
        raise ValueError(f"axis must be 'parameters' or 'compute', got {axis!r}")
    loss = measure(results, arch, lambda r: r["next_byte"]["mean"])
    x_of = measure(results, arch, lambda r: r["parameters"] if axis == "parameters" else r["train_flops"])
    sizes = list(loss)
    xs = [mean(x_of[z].values()) for z in sizes]
    losses = [loss[z] for z in sizes]
    # the bootstrap refits 500 times (seconds); a page asks for the same fit more than once
    key = json.dumps([xs, [list(v.items()) for v in losses], replicates, seed])  # order matters to the bootstrap
    if key not in _FITS:
        _FITS[key] = extrapolate(xs, losses, replicates, seed)
    return {"axis": axis} | copy.deepcopy(_FITS[key])


_FITS: dict[str, dict] = {}  # extrapolation's fits, by their inputs


def gap_slope(results: dict, read, first: str = "decoder", second: str = "encoder") -> Interval:
    """The growth of a gap with size: per seed, the least-squares slope of
    ``read(first) - read(second)`` against log10 of the parameters over the sizes; the
    mean over seeds with its t-interval (per decade of parameters). Defined in the chapter
    "Scale"."""
    a, b = measure(results, first, read), measure(results, second, read)
    logn = {z: math.log10(n) for z, n in sizes_n(results).items()}
    seeds = sorted(set.intersection(*(set(v) for v in a.values()), *(set(v) for v in b.values())))
    if len(seeds) < 2:
        raise ValueError(f"a slope interval needs at least 2 seeds at every size, got {seeds}")
    slopes = []
    for seed in seeds:
        x = np.array([logn[z] for z in a])
        y = np.array([a[z][seed] - b[z][seed] for z in a])
        slopes.append(float(np.polyfit(x, y, 1)[0]))
    return t_interval(slopes)


def _learned_everywhere(results: dict, arch: str, baseline: float, by: float, key: str) -> bool:
    smallest = measure(results, arch, lambda r: r[key]["mean"] if key == "next_byte" else r[key])
    first = next(iter(smallest.values()))
    return learned(mean(first.values()), baseline, lower_is_better=True, by=by)


def _equal_budgets(results: dict, tolerance: float) -> dict[str, float]:
    """The largest relative distance of any architecture's parameters from the decoder's, per size."""
    dec = sizes_n(results, "decoder")
    return {z: max(abs(sizes_n(results, a)[z] - n) / n for a in ARCHS) for z, n in dec.items()}


def _seeds(results: dict) -> int:
    return min(len(by_seed) for a in ARCHS for by_seed in runs(results, a).values())


C12_MEASURES = {"next-byte loss": (lambda r: -r["next_byte"]["mean"], "loss_margin"),
                "word order": (lambda r: r["word_order"], "accuracy_margin"),
                "fill in the blank": (lambda r: r["fill_in"], "accuracy_margin")}


def _c12_decide(results: dict, p: dict) -> Verdict:
    """C12: does next-token prediction's lead over masked-LM pretraining grow with size?

    Gate (else inconclusive): the parameters equal within ``p["equal_parameters"]`` at
    every size, and at the smallest size the decoder's and the masked LM's held-out loss on
    their own objectives beat the unigram baseline by ``p["loss_gate"]``. Then, for each of
    three measures both can do (:data:`C12_MEASURES`, each oriented so that a positive gap
    favours the decoder: next-byte loss, the word-order probe, fill in the blank), the
    per-seed slope of the gap against log10 of the parameters, read with :func:`compare`
    against the measure's margin per decade: "higher" grows, "lower" shrinks, "equivalent"
    flat. Inconclusive when two or more slopes are unclear; supported when the gap grows
    on at least two and shrinks on none; refuted when it grows on none and is flat or
    shrinks on at least two; nuanced otherwise.
    """
    apart = _equal_budgets(results, p["equal_parameters"])
    numbers = {"apart": apart}
    if max(apart.values()) > p["equal_parameters"]:
        return Verdict("inconclusive", f"the architectures are not at equal parameters ({apart})", numbers)
    baseline = results["baseline"]["nats_per_byte"]
    ok = {a: _learned_everywhere(results, a, baseline, p["loss_gate"], "own_loss") for a in ("decoder", "encoder")}
    numbers |= {"learned": ok, "baseline": baseline}
    if not all(ok.values()):
        failed = [LABELS[a] for a in ok if not ok[a]]
        who = f"neither the {failed[0]} nor the {failed[1]} beat" if len(failed) == 2 else f"the {failed[0]} did not beat"
        return Verdict("inconclusive", f"at the smallest size {who} the unigram baseline {baseline:.3f} by "
                       f"{p['loss_gate']}: nothing learned to compare", numbers)
    readings, slopes = {}, {}
    for name, (read, margin) in C12_MEASURES.items():
        slope = gap_slope(results, read)
        slopes[name] = slope.__dict__
        readings[name] = {"higher": "grows", "lower": "shrinks", "equivalent": "flat", "unclear": "unclear"}[
            compare(slope, p[margin])]
    numbers |= {"slopes": slopes, "readings": readings}
    count = {k: sum(v == k for v in readings.values()) for k in ("grows", "shrinks", "flat", "unclear")}
    parts = "; ".join(f"{name}: {readings[name]} ({Interval(**slopes[name])} per decade)" for name in C12_MEASURES)
    reason = f"the decoder's lead over the masked LM against log10 parameters: {parts}"
    if count["unclear"] >= 2:
        return Verdict("inconclusive", reason, numbers)
    if count["grows"] >= 2 and count["shrinks"] == 0:
        return Verdict("supported", reason, numbers)
    if count["grows"] == 0 and count["shrinks"] + count["flat"] >= 2:
        return Verdict("refuted", reason, numbers)
    return Verdict("nuanced", reason, numbers)


def _c16_decide(results: dict, p: dict) -> Verdict:
    """C16: was the decoder's scaling predictable, and more so than the others'?

    Gate (else inconclusive): at the smallest size the decoder's next-byte loss beats the
    unigram baseline by ``p["loss_gate"]``. For each architecture, :func:`extrapolation`
    (the power law fitted to all sizes but the largest, ``p["replicates"]`` bootstrap
    replicates) and :func:`predictability` with ``p["tolerance"]`` nats per byte. The
    decoder's prediction missed: refuted; unclear: inconclusive; predictable: supported
    when some other architecture's prediction missed, nuanced when none did (the decoder's
    scaling was predictable, but a power law is then no reason to prefer it).
    """
    baseline = results["baseline"]["nats_per_byte"]
    numbers: dict = {"baseline": baseline}
    if not _learned_everywhere(results, "decoder", baseline, p["loss_gate"], "next_byte"):
        return Verdict("inconclusive", f"the smallest decoder's next-byte loss does not beat the unigram baseline "
                       f"{baseline:.3f} by {p['loss_gate']}: nothing learned to extrapolate", numbers)
    fits = {a: extrapolation(results, a, "parameters", p["replicates"], p["bootstrap_seed"]) for a in ARCHS}
    reading = {a: predictability(fits[a], p["tolerance"]) for a in ARCHS}
    numbers |= {"fits": fits, "readings": reading}

    def said(a):
        f = fits[a]
        if not f["converged"]:
            return f"{LABELS[a]}: the fit did not converge"
        lo, hi = f["error_interval"]
        return f"{LABELS[a]}: alpha {f['alpha']:.2f}, error {f['error']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({reading[a]})"

    reason = ("extrapolating to the largest size, nats/byte within " f"{p['tolerance']}: " +
              "; ".join(said(a) for a in ARCHS))
    if reading["decoder"] == "missed":
        return Verdict("refuted", reason, numbers)
    if reading["decoder"] == "unclear":
        return Verdict("inconclusive", reason, numbers)
    if any(reading[a] == "missed" for a in ARCHS if a != "decoder"):
        return Verdict("supported", reason, numbers)
    return Verdict("nuanced", reason, numbers)


def at_equal_flops(results: dict, arch: str, reference: str) -> dict[int, float] | None:
    """``{seed: next-byte loss}`` of ``arch`` at the inference FLOPs per generated token of
    the decoder at size ``reference``, interpolated per seed linearly in log FLOPs between
    the two sizes of ``arch`` that bracket it; ``None`` when no two do (no extrapolation).
    Defined in the chapter "Scale"."""
    target = math.log(mean(measure(results, "decoder", lambda r: r["flops_per_token"])[reference].values()))
    flops = {z: math.log(mean(v.values())) for z, v in measure(results, arch, lambda r: r["flops_per_token"]).items()}
    loss = measure(results, arch, lambda r: r["next_byte"]["mean"])
    sizes = list(flops)
    for lo, hi in zip(sizes, sizes[1:]):
        if flops[lo] <= target <= flops[hi]:
            w = (target - flops[lo]) / (flops[hi] - flops[lo]) if flops[hi] > flops[lo] else 0.0
            seeds = set(loss[lo]) & set(loss[hi])
            return {k: (1 - w) * loss[lo][k] + w * loss[hi][k] for k in sorted(seeds)}
    return None


def flops_reference(results: dict) -> str:
    """The largest decoder size whose FLOPs per generated token every architecture with a
    KV cache reaches within its own sizes (the equal-inference-cost point of the
    head-to-head). Defined in the chapter "Scale"."""
    sizes = list(sizes_n(results))
    for size in reversed(sizes):
        if all(at_equal_flops(results, a, size) is not None for a in ("prefix-lm", "encoder-decoder")):
            return size
    return sizes[0]


def head_to_head(results: dict, margin: float) -> dict:
    """Every other architecture's next-byte loss minus the decoder's, paired by seed: at
    equal parameters (the largest size) and at the decoder's inference FLOPs per generated
    token (:func:`flops_reference`); each read with :func:`compare`. Defined in the chapter
    "Scale"."""
    loss = {a: measure(results, a, lambda r: r["next_byte"]["mean"]) for a in ARCHS}
    largest = list(loss["decoder"])[-1]
    reference = flops_reference(results)
    out = {"largest": largest, "reference": reference, "parameters": {}, "flops": {}}
    for a in ARCHS[1:]:
        diff = t_interval(paired_differences(loss[a][largest], loss["decoder"][largest]))
        out["parameters"][a] = diff.__dict__ | {"reading": compare(diff, margin)}
        matched = at_equal_flops(results, a, reference)
        if matched is None:
            out["flops"][a] = None
            continue
        diff = t_interval(paired_differences(matched, {k: loss["decoder"][reference][k] for k in matched}))
        out["flops"][a] = diff.__dict__ | {"reading": compare(diff, margin)}
    return out


def _setting(comparisons: dict) -> str:
    readings = [c["reading"] for c in comparisons.values() if c is not None]
    if not readings:
        return "unclear"
    if all(r == "higher" for r in readings):
        return "best"
    if any(r == "lower" for r in readings):
        return "beaten"
    return "tied or unclear"


def _c18_decide(results: dict, p: dict) -> Verdict:
    """C18, the head-to-head: at equal parameters and at equal inference FLOPs per
    generated token, is the decoder the best of the four on held-out next-byte loss?

    Gate (else inconclusive): parameters equal within ``p["equal_parameters"]`` at every
    size, and at the largest size every architecture's next-byte loss (the decoder's and
    each other's: every arm is gated) beats the unigram baseline by ``p["loss_gate"]``.
    :func:`head_to_head` with margin ``p["loss_margin"]``; per setting,
    "best" when every other architecture's loss is higher than the decoder's, "beaten" when
    any is lower, "tied or unclear" otherwise (the masked LM, which has no KV cache, takes
    part at equal FLOPs only if its sizes reach the reference cost). Supported when the
    decoder is best in both settings; refuted when it is beaten in both; inconclusive when
    neither setting is decided (tied or unclear in both); nuanced otherwise.
    """
    apart = _equal_budgets(results, p["equal_parameters"])
    numbers: dict = {"apart": apart}
    if max(apart.values()) > p["equal_parameters"]:
        return Verdict("inconclusive", f"the architectures are not at equal parameters ({apart})", numbers)
    baseline = results["baseline"]["nats_per_byte"]
    loss = measure(results, "decoder", lambda r: r["next_byte"]["mean"])
    largest = mean(list(loss.values())[-1].values())
    numbers["baseline"] = baseline
    if not learned(largest, baseline, lower_is_better=True, by=p["loss_gate"]):
        return Verdict("inconclusive", f"the largest decoder's next-byte loss {largest:.3f} does not beat the unigram "
                       f"baseline {baseline:.3f} by {p['loss_gate']}", numbers)
    h = head_to_head(results, p["loss_margin"])
    at = {"parameters": _setting(h["parameters"]), "flops": _setting(h["flops"])}
    numbers |= {"head_to_head": h, "settings": at}

    def said(setting):
        return ", ".join(f"{LABELS[a]} {Interval(**{k: c[k] for k in ('mean', 'low', 'high', 'n', 'level')})}"
                         if c is not None else f"{LABELS[a]} out of range" for a, c in h[setting].items())

    reason = (f"other minus decoder, next-byte nats: at equal parameters ({h['largest']}) {said('parameters')}: "
              f"{at['parameters']}; at the decoder's inference FLOPs per token at {h['reference']}: {said('flops')}: "
              f"{at['flops']}")
    others = {a: mean(list(measure(results, a, lambda r: r["next_byte"]["mean"]).values())[-1].values())
              for a in ARCHS[1:]}
    failed = [a for a, v in others.items() if not learned(v, baseline, lower_is_better=True, by=p["loss_gate"])]
    numbers["failed_gate"] = failed
    if failed:  # every arm is gated: a win over a model that learned nothing is a failed experiment
        return Verdict("inconclusive", "; ".join(f"the {LABELS[a]} did not learn: its next-byte loss at the largest "
                                                 f"size, {others[a]:.3f}, is not {p['loss_gate']} below the unigram "
                                                 f"baseline {baseline:.3f}" for a in failed)
                       + f", so the head-to-head is a failed experiment, not a comparison (against the others: "
                       f"{reason})", numbers)
    if at["parameters"] == at["flops"] == "best":
        return Verdict("supported", reason, numbers)
    if at["parameters"] == at["flops"] == "beaten":
        return Verdict("refuted", reason, numbers)
    if at["parameters"] in ("tied or unclear", "unclear") and at["flops"] in ("tied or unclear", "unclear"):
        return Verdict("inconclusive", reason, numbers)
    return Verdict("nuanced", reason, numbers)


RULES = {
    "C12": Rule("C12", "next-token prediction's lead over masked-LM pretraining grows with model size (higher ceiling)",
                {"min_seeds": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE, "loss_gate": 0.1,
                 "loss_margin": 0.02, "accuracy_margin": 0.02}, _c12_decide, seeds=_seeds),
    "C16": Rule("C16", "the decoder's loss follows a power law in parameters that predicts the largest size, "
                "unlike the other architectures'",
                {"min_seeds": 5, "loss_gate": 0.1, "tolerance": 0.05, "replicates": 500, "bootstrap_seed": 0},
                _c16_decide, seeds=_seeds),
    "C18": Rule("C18", "at equal parameters and at equal inference FLOPs per generated token the decoder has the "
                "lowest held-out next-byte loss of the four architectures",
                {"min_seeds": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE, "loss_gate": 0.3,
                 "loss_margin": 0.02}, _c18_decide, seeds=_seeds),
}



#: Superseded (:data:`whydecoder.experiments.SUPERSEDED`): the fair head-to-head
#: (``ch08_head_to_head``) decides these claims now; the page shows what these rules read.
CLAIMS: tuple = ()
INFORMS = ("C12", "C16", "C18")

if __name__ == "__main__":
    experiment_main("experiments.ch08_scale", run, RESULTS_DIR)
