"""Language models without positional encoding (NoPE): the learned half of claim C08.
Explained in the chapter "Encoder vs decoder at equal parameters".

Five models on the same byte corpus, the same steps, batches and seeds: causal LMs with no
positions, learned absolute positions and rotary positions, and masked LMs (BERT's
objective) with the same three choices. Every sequence starts with ``<bos>``.
For each model we measure

- the validation loss (nats per byte; a masked LM's loss is on its masked positions, so
  it is compared only with the other masked LMs);
- a linear probe per layer that predicts a token's absolute position from its hidden
  state (ridge regression, fitted on some sequences, scored as R^2 on others);
- the prefix-shuffle test: shuffle the first half of each sequence (``<bos>`` stays) and
  measure how much the loss on the second half rises. A model that ignores the order of
  what it read shows no rise.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..claims import Claim, Evidence, counted, counted_of, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import Batch, full_lm, masked_lm
from ..paths import results_dir
from ..probes import permutation_gap
from ..results import judged_settings, per_seed_sections, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import corpus_tokens, random_chunks, unigram_baseline, with_bos
from ..train import RunSizes, evaluate, train
from ..verdicts import READ_CLEARLY, Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("nope")
#: The page that shows it (under ``chapters/``).
PAGE = "03_encoder_vs_decoder/positions"
# name -> (arch, position)
VARIANTS = {
    "causal, none": ("decoder", "none"),
    "causal, learned": ("decoder", "learned"),
    "causal, rope": ("decoder", "rope"),
    "masked, none": ("encoder", "none"),
    "masked, learned": ("encoder", "learned"),
    "masked, rope": ("encoder", "rope"),
}
SECTIONS = ("baseline",) + tuple(VARIANTS)  # one stored section per variant, so a long run resumes


@dataclass(frozen=True)
class NopeSettings(RunSizes):
    """Sizes of one scale of the NoPE experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

    length: int
    seeds: tuple[int, ...]
    eval_batches: int
    probe_sequences: int
    lr: float = 3e-3


SETTINGS = {
    "smoke": NopeSettings(d_model=32, n_layers=2, n_heads=2, steps=40, batch=16, length=32, seeds=(0, 1),
                          eval_batches=2, probe_sequences=32),
    "full": NopeSettings(d_model=64, n_layers=4, n_heads=4, steps=800, batch=32, length=64, seeds=(0, 1, 2, 3, 4),
                         eval_batches=16, probe_sequences=256),
}


def lm_batch(arch: str, rows: torch.Tensor, generator: torch.Generator, score_from: int = 0) -> Batch:
    """The batch a model of ``arch`` trains on from ``rows`` (``<bos>`` first): next-token
    prediction for ``decoder``, BERT's masked LM for ``encoder``. With ``score_from`` > 0
    only tokens at positions ``>= score_from`` count (for a masked LM: only those are
    masked). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if not 0 <= score_from < rows.shape[1] - 1:
        raise ValueError(f"score_from {score_from} must be in [0, {rows.shape[1] - 1}) for rows of length {rows.shape[1]}")
    if arch == "decoder":
        batch = full_lm(rows)
        batch.loss_mask[:, : max(0, score_from - 1)] = False  # target t is the token at position t + 1
        return batch
    if arch == "encoder":
        if score_from == 0:
            return masked_lm(rows, generator)
        tail = masked_lm(rows[:, score_from:], generator)
        head = rows[:, :score_from]
        return Batch(torch.cat([head, tail.tokens], 1), rows.clone(),
                     torch.cat([torch.zeros_like(head, dtype=torch.bool), tail.loss_mask], 1))
    raise ValueError(f"unknown arch {arch!r}; expected 'decoder' or 'encoder'")


@torch.no_grad()
def layer_states(model: Transformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Hidden states ``(B, T, d)`` entering the first block (embedding plus any absolute
    positions) and leaving every block, read with forward hooks.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if model.cfg.arch not in ("encoder", "decoder"):
        raise ValueError(f"layer_states supports 'encoder' and 'decoder', not {model.cfg.arch!r}")
    states: list[torch.Tensor] = []
    blocks = model.decoder.blocks
    hooks = [blocks[0].register_forward_pre_hook(lambda m, args: states.append(args[0].detach()))]
    hooks += [b.register_forward_hook(lambda m, args, out: states.append(out.detach())) for b in blocks]
    try:
        model.eval()
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return states


def position_probe_r2(train_states: torch.Tensor, test_states: torch.Tensor, ridge: float = 1e-3) -> float:
    """R^2 of a linear (ridge) regression from hidden state to absolute position, fitted on
    ``train_states`` ``(B, T, d)`` and scored on ``test_states``. 1 is a perfect read-out,
    0 no better than predicting the mean position; below 0 is worse than that.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if train_states.dim() != 3 or test_states.shape[1:] != train_states.shape[1:]:
        raise ValueError(f"states must be (B, T, d) with equal T and d, got {tuple(train_states.shape)} "
                         f"and {tuple(test_states.shape)}")
    if train_states.shape[1] < 2 or not len(train_states) or not len(test_states):
        raise ValueError(f"the probe needs at least one sequence on each side and T >= 2 positions, got "
                         f"{tuple(train_states.shape)} and {tuple(test_states.shape)}")
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if not (bool(torch.isfinite(train_states).all()) and bool(torch.isfinite(test_states).all())):
        raise ValueError("the hidden states hold NaN or infinite values")

    def flat(states):
        b, t, d = states.shape
        return states.reshape(b * t, d).double(), torch.arange(t, dtype=torch.float64).repeat(b)

    x, y = flat(train_states)
    mean, scale = x.mean(0), x.std(0) + 1e-8
    x = (x - mean) / scale
    w = torch.linalg.solve(x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype), x.T @ (y - y.mean()))
    xt, yt = flat(test_states)
    pred = ((xt - mean) / scale) @ w + y.mean()
    return float(1 - ((yt - pred) ** 2).sum() / ((yt - yt.mean()) ** 2).sum())


def shuffle_first_half(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each row with positions ``1 .. T/2 - 1`` permuted at random (``<bos>`` and the
    second half stay). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    half = rows.shape[1] // 2
    out = rows.clone()
    for row in out:
        row[1:half] = row[1:half][torch.randperm(half - 1, generator=generator)]
    return out


def _measure(model: Transformer, s: NopeSettings, corpus: torch.Tensor) -> dict:
    arch = model.cfg.arch
    g = torch.Generator().manual_seed(10_000)  # the same held-out rows and masks for every model
    rows = [with_bos(random_chunks(corpus, s.batch, s.length - 1, g)) for _ in range(s.eval_batches)]
    val = [lm_batch(arch, r, torch.Generator().manual_seed(i)) for i, r in enumerate(rows)]
    half = s.length // 2
    second = [lm_batch(arch, r, torch.Generator().manual_seed(i), score_from=half) for i, r in enumerate(rows)]
    shuffled = []  # the same scored tokens (and masks), the first half read in another order
    for r, b in zip(rows, second):
        mixed = shuffle_first_half(r, g)
        if arch == "encoder":
            tokens = b.tokens.clone()
            tokens[:, :half] = mixed[:, :half]
            shuffled.append(Batch(tokens, b.targets, b.loss_mask))
        else:
            shuffled.append(Batch(mixed[:, :-1], mixed[:, 1:], b.loss_mask))
    probe_rows = with_bos(random_chunks(corpus, 2 * s.probe_sequences, s.length - 1, g))
    states = layer_states(model, probe_rows)
    n = s.probe_sequences
    perm = torch.randperm(s.length, generator=g)
    return {
        "val_loss": evaluate(model, val),
        "second_half_loss": evaluate(model, second),
        "shuffled_loss": evaluate(model, shuffled),
        "probe_r2": [position_probe_r2(h[:n], h[n:]) for h in states],
        "permutation_gap": permutation_gap(model, probe_rows[:4], perm),
    }


def _one_run(name: str, seed: int, s: NopeSettings, corpus: dict, progress: bool) -> dict:
    arch, position = VARIANTS[name]
    cfg = ModelConfig(arch=arch, position=position, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
                      max_len=s.length)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: lm_batch(arch, with_bos(random_chunks(corpus["train"], s.batch, s.length - 1, g)), g),
                   s.train_config(seed, progress))
    return {"variant": name, "arch": arch, "position": position, "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()), "train_losses": result.losses,
            **_measure(model, s, corpus["val"])}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train every variant for every seed at ``scale`` and measure it; with ``out``, store
    the results. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    corpus = {split: corpus_tokens(split) for split in ("train", "val")}
    sections = {"baseline": lambda: unigram_baseline(corpus["train"], corpus["val"])}
    sections |= per_seed_sections(VARIANTS, s.seeds, lambda name, seed: _one_run(name, seed, s, corpus, progress))
    return run_sections(sections, judged_settings(s, RULES), out, experiment_command("experiments.ch03_nope", scale, out))



def all_runs(results: dict) -> list[dict]:
    """Every run of a result payload's ``results``, variant by variant. Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    return [r for name in VARIANTS for r in results[name]]


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete, else ``None``. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def summary(runs: list[dict]) -> dict[str, dict]:
    """Per variant: mean and standard deviation over seeds of the validation loss, the
    shuffle rise (shuffled minus unshuffled second-half loss), the best probe R^2 over
    layers and the probe R^2 at the input of the first block, and the largest permutation
    gap. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    out = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == name]

        def stats(values):
            t = torch.tensor(values, dtype=torch.float64)
            return float(t.mean()), float(t.std(unbiased=True)) if len(t) > 1 else float("nan")

        out[name] = {
            "val_loss": stats([r["val_loss"] for r in rs]),
            "shuffle_rise": stats([r["shuffled_loss"] - r["second_half_loss"] for r in rs]),
            "best_probe_r2": stats([max(r["probe_r2"][1:]) for r in rs]),
            "input_probe_r2": stats([r["probe_r2"][0] for r in rs]),
            "probe_r2_by_layer": torch.tensor([r["probe_r2"] for r in rs]).mean(0).tolist(),
            "permutation_gap": max(r["permutation_gap"] for r in rs),
        }
    return out


def per_seed(results: dict, variant: str, value) -> dict:
    """``{seed: value(run)}`` for one variant's runs. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    return {r["seed"]: float(value(r)) for r in results[variant]}


def _loss(run: dict) -> float:
    return run["val_loss"]


def _c08_seeds(results: dict) -> int:
    return min(len(results[name]) for name in VARIANTS)


def _c08_decide(results: dict, p: dict) -> Verdict:
    """C08, learned half. Gate: every model with positions beats the unigram baseline by
    ``p["gate_nats"]``. Then, paired by seed with 95% t-intervals:

    - the masked LM without positions must stay blind (permutation gap and shuffle rise
      below ``p["blind_tolerance"]`` for every seed) and be worse than the better masked LM
      with positions by more than ``p["margin"]`` (relative to that model's loss);
    - the causal NoPE LM must learn position: mean probe R^2 above ``p["probe_reads"]``
      at some layer, below ``p["probe_input"]`` at the input, and a shuffle rise above 0;
    - its loss against the better causal LM with positions decides: inside the margin or
      lower: supported; higher: nuanced (the mechanism holds, the model is worse).

    Refuted when the causal NoPE LM learns no position or the masked one is not blind or
    does not fail; inconclusive when the gate fails or an interval cannot tell.
    """
    unigram = results["baseline"]["nats_per_byte"]
    positional = [v for v in VARIANTS if not v.endswith("none")]
    mean = {v: sum(per_seed(results, v, _loss).values()) / len(results[v]) for v in VARIANTS}
    untrained = [v for v in positional if not learned(mean[v], unigram, lower_is_better=True, by=p["gate_nats"])]
    if untrained:
        return Verdict("inconclusive", f"{', '.join(untrained)} did not beat the unigram baseline "
                       f"({unigram:.2f} nats/byte) by {p['gate_nats']}", {"unigram": unigram})
    best_causal = min(("causal, learned", "causal, rope"), key=mean.get)
    best_masked = min(("masked, learned", "masked, rope"), key=mean.get)

    def gap(a, b):
        return t_interval(paired_differences(per_seed(results, a, _loss), per_seed(results, b, _loss)))

    masked_gap, causal_gap = gap("masked, none", best_masked), gap("causal, none", best_causal)
    masked_cmp = compare(masked_gap, p["margin"] * mean[best_masked])
    causal_cmp = compare(causal_gap, p["margin"] * mean["causal, none"])
    rises = t_interval(per_seed(results, "causal, none", lambda r: r["shuffled_loss"] - r["second_half_loss"]).values())
    probe = sum(max(r["probe_r2"][1:]) for r in results["causal, none"]) / len(results["causal, none"])
    probe_input = sum(r["probe_r2"][0] for r in results["causal, none"]) / len(results["causal, none"])
    blind = all(r["permutation_gap"] < p["blind_tolerance"]
                and abs(r["shuffled_loss"] - r["second_half_loss"]) < p["blind_tolerance"] for r in results["masked, none"])
    learns = probe > p["probe_reads"] and probe_input < p["probe_input"] and compare(rises, 0.0) == "higher"
    numbers = {"masked_gap": masked_gap.__dict__, "causal_gap": causal_gap.__dict__, "shuffle_rise": rises.__dict__,
               "probe_r2": probe, "input_probe_r2": probe_input, "blind": blind, "best_causal": best_causal,
               "best_masked": best_masked, "masked_reading": masked_cmp, "causal_reading": causal_cmp,
               "unigram": unigram}
    if masked_cmp == "unclear" or (learns and causal_cmp == "unclear"):
        return Verdict("inconclusive", "an interval straddles its margin: more seeds are needed to tell", numbers)
    if not learns:
        return Verdict("refuted", "the causal LM without positions did not learn where its tokens are", numbers)
    if not (blind and masked_cmp == "higher"):
        return Verdict("refuted", "the masked LM without positions was not blind, or not worse than with them", numbers)
    if causal_cmp in ("equivalent", "lower"):
        return Verdict("supported", "the causal LM learned position and matched the models given positions", numbers)
    return Verdict("nuanced", "the causal LM learned position but stayed worse than with positions", numbers)


def _interval_text(d: dict, unit: str = " nats/byte") -> str:
    """A stored interval as text: mean [low, high]."""
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]{unit}"


def _c08_rests_on(results: dict, verdict: Verdict) -> str:
    """What C08's learned half rests on, counted: the models and seeds, the models with
    positions past the unigram gate, and the readings the rule then took."""
    rule = RULES["C08"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    positional = [v for v in VARIANTS if not v.endswith("none")]
    unigram = results["baseline"]["nats_per_byte"]
    passed = [v for v in positional if learned(sum(per_seed(results, v, _loss).values()) / len(results[v]), unigram,
                                               lower_is_better=True, by=rule.parameters["gate_nats"])]
    run = f"{counted(len(VARIANTS), 'model')}, {counted(rule.seeds(results), 'seed')} each"
    gate = f"{counted_of(len(passed), len(positional), 'model')} with positions past the unigram gate"
    if len(passed) < len(positional):
        return f"nothing compared: {gate}; {run}"
    n = verdict.numbers
    clear = sum(n[k] != "unclear" for k in ("masked_reading", "causal_reading"))
    return f"{run}; {gate}; {counted_of(clear, 2, 'paired gap')} {READ_CLEARLY}, plus a probe and a shuffle test"


def c08_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C08's evidence and scope in words: the exact half (chapter 1) and the learned half's
    paired gaps, probe and shuffle rise (the verdict's numbers; its reason when the rule
    stopped before them). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    ns, v08 = results["settings"], verdict.numbers
    if "causal_gap" in v08:
        text = (
            "Exact half (chapter 1): bidirectional NoPE models are exactly permutation-equivariant, causal ones are "
            "not. Trained, paired by seed (95% intervals): the masked LM without positions minus the "
            f"{v08['best_masked']} one {_interval_text(v08['masked_gap'])}; the causal NoPE LM minus the "
            f"{v08['best_causal']} one {_interval_text(v08['causal_gap'])}; probe R2 {v08['probe_r2']:.2f} (input "
            f"{v08['input_probe_r2']:.2f}); shuffle rise {_interval_text(v08['shuffle_rise'])}.")
    else:
        text = verdict.reason
    scope = (f"width {ns['d_model']}, {ns['n_layers']} layers, {ns['steps']} steps of {ns['batch']} x {ns['length']} "
             f"bytes, {len(ns['seeds'])} seeds, the book's byte corpus")
    return Evidence(text, scope, rests_on=_c08_rests_on(results, verdict))


RULES = {"C08": Rule(
    "C08", "a causal LM learns position without positional encoding and works about as well; a masked LM cannot",
    {"min_seeds": 5, "margin": 0.05, "gate_nats": 0.5, "probe_reads": 0.5, "probe_input": 0.2,
     "blind_tolerance": 1e-4},
    _c08_decide, seeds=_c08_seeds)}


CLAIMS = (Claim("C08", "The causal mask carries position: a decoder can work without positional encoding; a "
                "bidirectional model cannot", "03_encoder_vs_decoder/positions", stored_results(sys.modules[__name__]),
                RULES["C08"], c08_evidence),)


if __name__ == "__main__":
    experiment_main("experiments.ch03_nope", run, RESULTS_DIR)
