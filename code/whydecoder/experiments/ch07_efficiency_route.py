"""The efficiency route (C21): attention in tiles, and LoRA and QLoRA against full finetuning.

- *Attention in tiles* (:mod:`whydecoder.tiled_attention`): the largest difference from
  naive attention in float32, and the peak memory of one causal attention call against
  the sequence length for the naive form, the tiled form and PyTorch's fused kernel.
- *Finetuning*: SmolLM2-135M (our model, its GGUF weights) finetuned on the book's corpus
  (CPython's reference topics, its own tokenizer) three ways from the same weights, on the
  same batches for the same steps (:mod:`whydecoder.finetune`): every weight, LoRA, QLoRA,
  each at its own learning rate, chosen from a small grid on a validation split that the
  verdict never reads (section ``grid``). Measured per seed: held-out loss and time per
  step; per method, in a fresh process:
  trainable parameters, the bytes the model occupies and the peak resident memory of
  finetuning. Claim C21 is decided by :data:`RULES`.

Smoke scale: the same code on a tiny untrained decoder of ours (bytes). Explained in the
chapter "The routes after the plain decoder".
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import finetune, memory
from ..claims import Claim, Evidence, counted, counted_of, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer, sequence_loss
from ..paths import results_dir
from ..results import judged_settings, load_result, normalized, per_seed_sections, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_text, random_chunks
from ..tiled_attention import METHODS as ATTENTION_METHODS
from ..tiled_attention import naive_attention, peak_memory_bytes, tiled_attention
from ..verdicts import Rule, Verdict, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("efficiency_route")
#: The page that shows it (under ``chapters/``).
PAGE = "07_four_routes/four_routes"
METHODS = finetune.METHODS
SECTIONS = ("attention", "before", "grid") + METHODS + ("memory",)


@dataclass(frozen=True)
class EfficiencyRouteSettings:
    """One scale of the efficiency-route experiment: attention ``lengths`` (``heads`` heads
    of ``head_dim``, tiles of ``block``); finetuning of ``model`` (``"smollm2"`` or
    ``"tiny"``) on ``batch`` rows of ``seq_len`` tokens for ``steps`` steps per seed, AdamW
    at ``lr_full`` for every weight and ``lr_adapter`` for the adapters (rank ``rank``,
    scale ``alpha / rank``), held-out loss on ``val_batches`` fixed batches, peak memory
    over ``memory_steps`` steps. Each method finetunes at the rate of ``grid_rates`` that
    gives it the lowest validation loss after ``steps`` steps with seed ``grid_seed``
    (:func:`chosen_rates`); ``lr_memory`` is the rate of the memory measurement, which
    does not depend on it. Defined in the chapter "The routes after the plain decoder"."""

    model: str
    lengths: tuple[int, ...]
    heads: int
    head_dim: int
    block: int
    seq_len: int
    batch: int
    steps: int
    seeds: tuple[int, ...]
    grid_rates: tuple[float, ...]
    grid_seed: int
    lr_memory: float
    rank: int
    alpha: int
    val_batches: int
    memory_steps: int

    def __post_init__(self):
        if self.model not in ("smollm2", "tiny"):
            raise ValueError(f"model must be 'smollm2' or 'tiny', got {self.model!r}")
        rates = self.grid_rates
        if (not isinstance(rates, tuple) or not rates
                or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0 for r in rates)):
            raise ValueError(f"grid_rates must be a non-empty tuple of positive learning rates, got {rates!r}")
        if len(set(rates)) != len(rates):
            raise ValueError(f"grid_rates has a rate twice: {rates!r}")
        if self.grid_seed in self.seeds:
            raise ValueError(f"grid_seed {self.grid_seed} is one of the comparison's seeds {self.seeds}: the grid's "
                             "batches and adapters must not be the ones the verdict reads")


SETTINGS = {
    "smoke": EfficiencyRouteSettings(model="tiny", lengths=(128, 256), heads=2, head_dim=16, block=32, seq_len=32,
                                     batch=2, steps=3, seeds=(0, 1), grid_rates=(1e-3, 1e-2), grid_seed=99,
                                     lr_memory=1e-3, rank=4, alpha=8, val_batches=1, memory_steps=1),
    "full": EfficiencyRouteSettings(model="smollm2", lengths=(512, 1024, 2048, 4096, 8192), heads=4, head_dim=64,
                                    block=64, seq_len=128, batch=2, steps=30, seeds=(0, 1, 2, 3, 4),
                                    grid_rates=(3e-5, 1e-4, 3e-4, 1e-3, 3e-3), grid_seed=99, lr_memory=1e-4, rank=8,
                                    alpha=16, val_batches=4, memory_steps=3),
}


def _scale_of(s: EfficiencyRouteSettings) -> str:
    return next(name for name, value in SETTINGS.items() if value == s)


# ---------------------------------------------------------------- attention in tiles


@torch.no_grad()
def attention_section(s: EfficiencyRouteSettings) -> list[dict]:
    """Per length: the largest absolute difference of the tiled form and of the fused
    kernel from naive attention (float32, causal, one seeded draw), and each method's peak
    memory (:func:`whydecoder.tiled_attention.peak_memory_bytes`). Defined in the chapter
    "The routes after the plain decoder"."""
    rows = []
    for length in s.lengths:
        g = torch.Generator().manual_seed(length)
        q, k, v = (torch.randn(1, s.heads, length, s.head_dim, generator=g) for _ in range(3))
        naive = naive_attention(q, k, v, causal=True)
        tiled = tiled_attention(q, k, v, causal=True, block_q=s.block, block_k=s.block)
        fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        del q, k, v
        rows.append({"length": length, "tiled_error": float((tiled - naive).abs().max()),
                     "sdpa_error": float((fused - naive).abs().max()),
                     "peak_bytes": {m: peak_memory_bytes(m, length, s.head_dim, s.heads, s.block)
                                    for m in ATTENTION_METHODS}})
    return rows


# ---------------------------------------------------------------- finetuning


def _tiny_config() -> ModelConfig:
    return ModelConfig(arch="decoder", vocab_size=ByteTokenizer().vocab_size, max_len=64, d_model=64, n_heads=4,
                       n_layers=2, position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu",
                       bias=False)


def load_base(s: EfficiencyRouteSettings) -> Transformer:
    """A fresh copy of the pretrained model (SmolLM2-135M read from its GGUF; or, at smoke
    scale, a tiny decoder of ours with seeded random weights). Defined in the chapter "The
    routes after the plain decoder"."""
    if s.model == "smollm2":
        from ..llama_gguf import load_llama_gguf

        return load_llama_gguf(max_len=s.seq_len)
    torch.manual_seed(0)
    return Transformer(_tiny_config()).eval()


#: Where the corpus's text is cut: train up to the first, validation (the grid's) to the second, held-out after.
SPLITS = (0.85, 0.9)


@functools.lru_cache(maxsize=2)
def corpus_ids(model: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The corpus as token ids for ``model`` (SmolLM2's tokenizer, or bytes), split
    85/5/10 by text (:data:`SPLITS`) into train, validation (the learning-rate grid reads
    it) and held-out (the verdict reads it) parts. Defined in the chapter "The routes
    after the plain decoder"."""
    text = corpus_text()
    cuts = [int(len(text) * f) for f in SPLITS]
    if model == "smollm2":
        from ..llama_gguf import load_tokenizer

        tokenizer = load_tokenizer()
        encode = lambda part: tokenizer(part, add_special_tokens=False)["input_ids"]  # noqa: E731
    else:
        encode = ByteTokenizer().encode
    parts = (text[:cuts[0]], text[cuts[0]:cuts[1]], text[cuts[1]:])
    return tuple(torch.tensor(encode(part), dtype=torch.long) for part in parts)


def _batches(ids: torch.Tensor, s: EfficiencyRouteSettings, n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [random_chunks(ids, s.batch, s.seq_len + 1, g) for _ in range(n)]


def _loss(model, rows: torch.Tensor) -> torch.Tensor:
    return sequence_loss(model(rows[:, :-1]), rows[:, 1:])


@torch.no_grad()
def held_out_loss(model, s: EfficiencyRouteSettings, split: str = "held-out") -> float:
    """Mean next-token loss (nats per token) on the fixed batches of ``split``
    (``"held-out"``, which the verdict reads, or ``"validation"``, which the grid reads).
    Defined in the chapter "The routes after the plain decoder"."""
    parts = {"validation": 1, "held-out": 2}
    if split not in parts:
        raise ValueError(f"split must be one of {tuple(parts)}, got {split!r}")
    model.eval()
    rows = _batches(corpus_ids(s.model)[parts[split]], s, s.val_batches, seed=4321)
    return sum(float(_loss(model, r)) for r in rows) / len(rows)


def before_finetuning(s: EfficiencyRouteSettings) -> dict:
    """The pretrained model, loaded once: its held-out loss and parameter count. Defined in
    the chapter "The routes after the plain decoder"."""
    model = load_base(s)
    return {"val_loss": held_out_loss(model, s), "parameters": sum(p.numel() for p in model.parameters())}


def finetune_steps(model, s: EfficiencyRouteSettings, seed: int, steps: int, lr: float) -> dict:
    """``steps`` AdamW steps at rate ``lr`` (no weight decay, constant rate) on seeded
    training batches; the losses and seconds per step. Defined in the chapter "The routes
    after the plain decoder"."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses, seconds = [], []
    for rows in _batches(corpus_ids(s.model)[0], s, steps, seed):
        t0 = time.perf_counter()
        loss = _loss(model, rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - t0)
        losses.append(loss.item())
    model.eval()
    return {"losses": losses, "seconds": seconds, "optimizer_bytes": sum(
        t.numel() * t.element_size() for state in opt.state.values() for t in state.values() if torch.is_tensor(t))}


def one_finetune(method: str, seed: int, s: EfficiencyRouteSettings, lr: float, split: str = "held-out") -> dict:
    """Finetune a fresh copy of the base model by ``method`` at rate ``lr`` with ``seed``
    (the adapters' initialisation and the batches); the loss on ``split`` after. Defined in
    the chapter "The routes after the plain decoder"."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive learning rate, got {lr!r}")
    torch.manual_seed(seed)
    model = finetune.prepare(load_base(s), method, s.rank, s.alpha)
    trained = finetune_steps(model, s, seed, s.steps, lr)
    return {"method": method, "seed": seed, "lr": lr, "trainable": finetune.trainable_parameters(model),
            "val_loss": held_out_loss(model, s, split), "train_losses": trained["losses"],
            "step_seconds": statistics.median(trained["seconds"][1:] or trained["seconds"])}


def grid_section(s: EfficiencyRouteSettings) -> dict[str, dict[str, float]]:
    """``{method: {rate: validation loss}}``: every method finetuned at every rate of
    ``s.grid_rates`` with seed ``s.grid_seed`` (not a seed the verdict reads), scored on
    the validation split (a rate whose loss is not finite is stored as ``None``).
    Defined in the chapter "The routes after the plain decoder"."""
    out = {}
    for method in METHODS:
        out[method] = {}
        for lr in s.grid_rates:
            loss = one_finetune(method, s.grid_seed, s, lr, split="validation")["val_loss"]
            out[method][f"{lr:g}"] = loss if np.isfinite(loss) else None
    return out


def chosen_rates(grid: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each method's rate: the one with the lowest validation loss in ``grid`` (the
    :func:`grid_section` of a run). Defined in the chapter "The routes after the plain decoder"."""
    if not isinstance(grid, dict) or set(grid) != set(METHODS):
        raise ValueError(f"grid must map every method {METHODS} to its rates' losses, got {grid!r}"[:300])
    chosen = {}
    for method, losses in grid.items():
        finite = {float(lr): loss for lr, loss in losses.items() if loss is not None and np.isfinite(loss)}
        if not finite:
            raise ValueError(f"{method}: no rate of the grid gave a finite validation loss ({losses})")
        chosen[method] = min(finite, key=finite.get)
    return chosen


def memory_child(scale: str, method: str) -> dict:
    """Run in a fresh process: the memory of finetuning by ``method`` above the process's
    own start (torch and the corpus loaded): ``model_bytes`` once the model is built and
    prepared, ``peak_bytes`` the peak over ``memory_steps`` steps. Defined in the chapter
    "The routes after the plain decoder"."""
    import bitsandbytes  # noqa: F401  (the libraries' own import is not the method's memory)
    import peft  # noqa: F401

    torch.set_num_threads(1)
    s = SETTINGS[scale]
    corpus_ids(s.model)
    start = memory.resident_bytes()
    torch.manual_seed(0)
    model = finetune.prepare(load_base(s), method, s.rank, s.alpha)
    built = memory.resident_bytes()
    memory.reset_peak()
    trained = finetune_steps(model, s, 0, s.memory_steps, s.lr_memory)
    return {"method": method, "model_bytes": built - start, "peak_bytes": memory.peak_bytes() - start,
            "weight_bytes": finetune.weight_bytes(model), "optimizer_bytes": trained["optimizer_bytes"],
            "trainable": finetune.trainable_parameters(model)}


def memory_section(s: EfficiencyRouteSettings) -> dict:
    """:func:`memory_child` for each method, each in a fresh ``python -c`` process (the
    peak of a process only grows). Defined in the chapter "The routes after the plain decoder"."""
    env = memory.measuring_env()
    out = {}
    for method in METHODS:
        code = ("import json; from whydecoder.experiments.ch07_efficiency_route import memory_child; "
                f"print(json.dumps(memory_child({_scale_of(s)!r}, {method!r})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=1800,
                              env=env)
        out[method] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Both halves at ``scale``; with ``out``, store section by section. Defined in the
    chapter "The routes after the plain decoder"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    settings = judged_settings(s, RULES)
    grid = _GridOnce(s, out, settings)
    sections = {"attention": lambda: attention_section(s), "before": lambda: before_finetuning(s), "grid": grid}
    sections |= per_seed_sections(METHODS, s.seeds,
                                  lambda method, seed: one_finetune(method, seed, s, chosen_rates(grid())[method]))
    sections["memory"] = lambda: memory_section(s)
    assert tuple(sections) == SECTIONS
    return run_sections(sections, settings, out, experiment_command("experiments.ch07_efficiency_route", scale, out))


class _GridOnce:
    """The ``grid`` section, computed at most once per run: the methods' sections read the
    rates it chose, and a resumed run reads the grid it stored instead of running it again."""

    def __init__(self, s: EfficiencyRouteSettings, out, settings: dict):
        self.s, self.out, self.settings, self.value = s, out, settings, None

    def __call__(self) -> dict:
        if self.value is None and self.out is not None:
            stored = load_result(self.out)
            results = normalized(stored) if stored else {}
            if results.get("settings") == json.loads(json.dumps(self.settings)) and "grid" in results:
                self.value = results["grid"]
        if self.value is None:
            self.value = grid_section(self.s)
        return self.value


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete under the current settings and rules, else ``None``.
    Defined in the chapter "The routes after the plain decoder"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def losses_by_seed(results: dict, method: str) -> dict[int, float]:
    """``{seed: held-out loss}`` after finetuning by ``method``. Defined in the chapter
    "The routes after the plain decoder"."""
    return {r["seed"]: r["val_loss"] for r in results[method]}


def _c21_seeds(results: dict) -> int:
    return min(len(results[m]) for m in METHODS)


def non_inferiority(interval, margin: float) -> str:
    """Read a paired interval of losses (method minus reference) as the claim's "little or
    no cost": ``"no cost"`` when its upper end lies below ``margin``, ``"cost"`` when its
    lower end lies above it, ``"unclear"`` otherwise. Defined in the chapter "The routes
    after the plain decoder"."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise ValueError(f"margin must be a number >= 0, got {margin!r}")
    return "no cost" if interval.high < margin else "cost" if interval.low > margin else "unclear"


def _c21_decide(results: dict, p: dict) -> Verdict:
    """C21: does the efficiency route make training and inference much cheaper at little
    or no cost in quality?

    *Attention in tiles*: exact when the tiled form is within ``p["exact_tolerance"]`` of
    naive attention at every length, and cheaper when naive attention's peak memory at the
    longest length is at least ``p["memory_ratio"]`` times the tiled form's.

    *Adapters*: every method finetunes at its own rate, chosen on the validation split
    (:func:`chosen_rates`). Gate, every arm: full finetuning, LoRA and QLoRA must each lower
    the held-out loss by ``p["loss_gate"]`` nats per token from the pretrained model's
    (mean over seeds), else nothing was learned to compare: full finetuning failing makes
    the adapter half inconclusive; an adapter method failing is left out of the comparison
    and named (a win over a model that learned nothing is not a comparison). For a gated
    LoRA or QLoRA: cheaper when the peak memory of finetuning is at least
    ``p["memory_saving"]`` below full finetuning's; its quality cost is read as
    non-inferiority (:func:`non_inferiority`) on the paired difference of held-out loss
    (method minus full, by seed) against ``p["loss_margin"]``. A method *delivers* when it
    is cheaper at no cost, *fails* when it is not cheaper or costs more than the margin,
    and is *unclear* otherwise. Time per step is measured and shown, not decided on.

    Supported when attention in tiles is exact and cheaper and both adapter methods pass
    their gates and deliver; refuted when neither half delivers (tiles not exact or not
    cheaper, and every gated adapter method fails); inconclusive when no adapter method
    passes its gate, or when an unclear reading leaves supported or refuted open; nuanced
    otherwise, the reason naming each part.
    """
    rows = results["attention"]
    worst = max(r["tiled_error"] for r in rows)
    longest = max(rows, key=lambda r: r["length"])
    ratio = longest["peak_bytes"]["naive"] / max(1, longest["peak_bytes"]["tiled"])
    tiles_ok = worst <= p["exact_tolerance"] and ratio >= p["memory_ratio"]
    full = losses_by_seed(results, "full")
    before = results["before"]["val_loss"]
    full_mean = sum(full.values()) / len(full)
    numbers = {"tiled_error": worst, "memory_ratio": ratio, "tiles_ok": tiles_ok, "before": before,
               "full_mean": full_mean}
    if not learned(full_mean, before, lower_is_better=True, by=p["loss_gate"]):
        return Verdict("inconclusive", f"full finetuning moved the held-out loss from {before:.3f} to {full_mean:.3f}, "
                       f"less than the gate {p['loss_gate']}: nothing learned to compare", numbers)
    memory = results["memory"]
    readings, parts, failed = {}, [], []
    for method in ("lora", "qlora"):
        losses = losses_by_seed(results, method)
        mean = sum(losses.values()) / len(losses)
        if not learned(mean, before, lower_is_better=True, by=p["loss_gate"]):
            failed.append(f"{method} ({mean:.3f})")
            continue
        diff = t_interval(paired_differences(losses, full))
        quality = non_inferiority(diff, p["loss_margin"])
        saving = 1 - memory[method]["peak_bytes"] / memory["full"]["peak_bytes"]
        cheaper = saving >= p["memory_saving"]
        status = ("fails" if not cheaper or quality == "cost" else "delivers" if quality == "no cost" else "unclear")
        readings[method] = {"quality": quality, "saving": saving, "cheaper": cheaper, "status": status,
                            "difference": diff.__dict__}
        cost = {"no cost": "no cost", "cost": "a cost"}.get(quality, "a cost unclear")
        parts.append(f"{method}: {saving:.0%} less peak memory than full finetuning, {cost} in held-out loss "
                     f"({status})")  # the loss difference with its interval is in the evidence
    numbers["readings"], numbers["not_learned"] = readings, failed
    reason = (f"tiled attention exact (largest error {worst:.0e}) with x{ratio:.0f} less peak memory at "
              f"{longest['length']} tokens; "
              + "; ".join(parts + [f"{f}: did not learn (held-out loss not {p['loss_gate']} below {before:.3f}), "
                                   "left out" for f in failed]))
    if not readings:
        return Verdict("inconclusive", reason + ": no adapter method learned, so there is nothing to compare", numbers)
    statuses = [r["status"] for r in readings.values()]
    may_support = tiles_ok and not failed and all(x in ("delivers", "unclear") for x in statuses)
    may_refute = not tiles_ok and all(x in ("fails", "unclear") for x in statuses)
    if may_support and all(x == "delivers" for x in statuses):
        return Verdict("supported", reason, numbers)
    if may_refute and all(x == "fails" for x in statuses):
        return Verdict("refuted", reason, numbers)
    if may_support or may_refute:
        return Verdict("inconclusive", reason + f": an unclear reading leaves it {'supported' if may_support else 'refuted'}"
                       " or not", numbers)
    return Verdict("nuanced", reason, numbers)


RULES = {"C21": Rule(
    "C21", "attention in tiles equals naive attention at a fraction of its memory, and LoRA and QLoRA, each at its "
    "own learning rate and each shown to learn, finetune with clearly less memory than full finetuning with a "
    "held-out loss at most a margin above it (non-inferiority)",
    {"min_seeds": 5, "exact_tolerance": 1e-4, "memory_ratio": 4.0, "loss_gate": 0.02, "loss_margin": 0.05,
     "memory_saving": 0.25},
    _c21_decide, seeds=_c21_seeds)}


def _c21_rests_on(results: dict, verdict: Verdict) -> str:
    """What C21's verdict rests on, counted: the lengths attention in tiles was checked
    at (no training), the finetuning methods past the learning gate, the seeds, and how
    many of the adapter readings were clear."""
    rule = RULES["C21"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    n = verdict.numbers
    tiles = f"tiles checked at {counted(len(results['attention']), 'length')} (no training)"
    run = f"{counted(len(METHODS), 'finetuning method')}, {counted(rule.seeds(results), 'seed')} each"
    if "readings" not in n:
        return f"{tiles}; {run}, full finetuning not past the learning gate: the adapters not compared"
    gated = ["full", *n["readings"]]
    statuses = [r["status"] for r in n["readings"].values()]
    clear = sum(x != "unclear" for x in statuses)
    return (f"{tiles}; {run}, {counted_of(len(gated), len(METHODS), 'method')} past the learning gate; "
            + (f"{counted_of(clear, len(statuses), 'adapter reading')} clear" if statuses else "no adapter compared"))


def c21_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C21's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The routes after the plain decoder"."""
    rule = RULES["C21"]
    n21, se = rule.readings(results), results["settings"]
    rates = chosen_rates(results["grid"])
    differences = "; ".join(
        f"{m} {r['difference']['mean']:+.3f} [{r['difference']['low']:+.3f}, {r['difference']['high']:+.3f}]"
        for m, r in (n21.get("readings") or {}).items())
    text = (f"{verdict.reason}. "
            + (f"Held-out loss minus full finetuning's (nats/token): {differences}. " if differences else "")
            + f"Largest tiling error {n21['tiled_error']:.1e}. Learning rates chosen on a validation split: "
            + ", ".join(f"{m} {rates[m]:g}" for m in METHODS)
            + f" (grid {', '.join(f'{r:g}' for r in se['grid_rates'])}). Held-out loss before finetuning "
            f"{results['before']['val_loss']:.3f}, after full "
            f"finetuning {n21['full_mean']:.3f} nats/token (mean of {len(se['seeds'])} seeds); seconds per step "
            + ", ".join(f"{m} {np.median([r['step_seconds'] for r in results[m]]):.2f}" for m in METHODS)
            + ". Intervals: 95% t over seeds, paired.")
    scope = (f"Attention: float32, {se['heads']} heads of {se['head_dim']}, lengths {se['lengths'][0]}-"
             f"{se['lengths'][-1]}, one CPU thread. Finetuning: SmolLM2-135M, {se['steps']} steps of {se['batch']} x "
             f"{se['seq_len']} tokens of CPython's documentation, rank-8 adapters on the seven linear layers of every "
             "block, peak resident memory on CPU. The base weights are SmolLM2's 4-bit file (Q4_1), dequantized: "
             "QLoRA rounds them a second time, to NF4 levels that do not line up with Q4_1's, so part of its cost in "
             "loss is that second rounding, which a base stored in sixteen bits would not pay.")
    return Evidence(text, scope, rests_on=_c21_rests_on(results, verdict))


CLAIMS = (Claim("C21", "The efficiency route (FlashAttention, LoRA, QLoRA) makes training and inference much cheaper "
                "at little or no cost in quality", "07_four_routes", stored_results(sys.modules[__name__]),
                RULES["C21"], c21_evidence),)


if __name__ == "__main__":
    experiment_main("experiments.ch07_efficiency_route", run, RESULTS_DIR)
