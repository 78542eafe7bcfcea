"""Measurements of inference cost: per-token decoding with and without the KV cache, and
multi-turn dialogue for decoder-only, prefix-LM and encoder-decoder models at equal
parameters; claim C13, decided by :data:`RULES`.

Sections: ``reuse`` (does one cache serve a whole dialogue exactly, and does a
bidirectional prefix's cache go stale?), ``decode_steps`` (the cost of one more token
against the context length, timed ``repeats`` times after ``warmup`` calls) and
``dialogue`` (a multi-turn dialogue served the way each architecture must).

Every measured time sits next to the analytic FLOPs of :mod:`whydecoder.accounting`
(themselves checked against PyTorch's FLOP counter in the tests). Run the full scale with
``python -m whydecoder.experiments.ch06_efficiency --scale full``; it stores its results in
``data/efficiency/`` with their provenance, and resumes a section at a time.

Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..accounting import (
    EQUAL_PARAMETERS_TOLERANCE,
    forward_flops,
    kv_cache_bytes,
    matched_encoder_decoder,
    parameter_count,
)
from ..claims import Claim, Evidence, counted, counted_of, in_words, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer
from ..timing import timings
from ..verdicts import Rule, Verdict, compare, t_interval

RESULTS_DIR = results_dir("efficiency")
#: The page that shows it (under ``chapters/``).
PAGE = "06_efficiency/efficiency"
SECTIONS = ("reuse", "decode_steps", "dialogue")
DIALOGUE_ARCHS = ("decoder", "prefix-lm", "encoder-decoder")


@dataclass(frozen=True)
class EfficiencySettings:
    """Sizes of one scale of the efficiency experiments.

    Defined in the chapter "Efficiency: the KV cache".
    """

    d_model: int
    n_heads: int
    n_layers: int
    max_len: int
    lengths: tuple[int, ...]
    repeats: int
    turns: int
    user_len: int
    reply_len: int
    seeds: tuple[int, ...] = (0, 1, 2)
    warmup: int = 2
    vocab_size: int = 276

    def __post_init__(self):
        for name in ("repeats", "warmup", "turns"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")

    def config(self, arch: str) -> ModelConfig:
        """The model of an architecture at this scale, all three at equal non-embedding
        parameters: the prefix-LM is the decoder with another mask, and the encoder-decoder
        is :func:`whydecoder.accounting.matched_encoder_decoder` of it (half the layers in
        each stack, the MLP narrowed to pay for the cross-attention)."""
        decoder = ModelConfig(arch="decoder", vocab_size=self.vocab_size, max_len=self.max_len, d_model=self.d_model,
                              n_heads=self.n_heads, n_layers=self.n_layers)
        if arch == "encoder-decoder":
            return matched_encoder_decoder(decoder)
        return decoder.replace(arch=arch)


SETTINGS = {
    "smoke": EfficiencySettings(d_model=32, n_heads=4, n_layers=2, max_len=512, lengths=(16, 64, 192, 256, 384, 511),
                                repeats=5, turns=6, user_len=12, reply_len=12, seeds=(0, 1), warmup=1),
    "full": EfficiencySettings(d_model=512, n_heads=8, n_layers=8, max_len=8192,
                               lengths=(64, 128, 256, 512, 1024, 2047, 3072, 4096, 6144, 8191), repeats=7, turns=12,
                               user_len=64, reply_len=64,
                               seeds=(0, 1, 2), warmup=2),
}


def settings_for(scale: str | None = None) -> EfficiencySettings:
    """The settings of ``scale`` (default: ``$WHYDEC_SCALE``, else smoke).

    Defined in the chapter "Efficiency: the KV cache".
    """
    return SETTINGS[current_scale(scale)]


@torch.no_grad()
def decode_step_costs(model: Transformer, lengths, repeats: int = 3, seed: int = 0, progress: bool = False,
                      warmup: int = 1) -> list[dict]:
    """Cost of producing one more token after a context of ``T`` tokens, for each ``T`` in
    ``lengths``: with the cache (one position through the model, attending to ``T`` cached
    keys) and without (the whole ``T + 1`` positions recomputed). Each is timed ``repeats``
    times after ``warmup`` untimed calls; rows hold every timing and their median.

    Decoder-only models only. Defined in the chapter "Efficiency: the KV cache".
    """
    if model.cfg.arch != "decoder":
        raise ValueError(f"decode_step_costs measures decoder-only models, not arch {model.cfg.arch!r}")
    bad = [t for t in lengths if not 1 <= t < model.cfg.max_len]
    if bad:
        raise ValueError(f"context length {bad[0]} is outside [1, max_len - 1 = {model.cfg.max_len - 1}]")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in tqdm(lengths, desc="decode step", disable=not progress, leave=False):
        tokens = torch.randint(0, model.cfg.vocab_size, (1, t + 1), generator=g)
        caches = []
        for _ in range(repeats + warmup):  # one cache per call: a step appends to it
            cache = model.new_cache()
            model(tokens[:, :t], cache=cache)
            caches.append(cache)
        cached = timings(lambda: model(tokens[:, t:], cache=caches.pop()), repeats, warmup)  # noqa: B023 (called now)
        uncached = timings(lambda: model(tokens), repeats, warmup)  # noqa: B023 (called now)
        rows.append({
            "context": t,
            "seconds_cached": statistics.median(cached),
            "seconds_uncached": statistics.median(uncached),
            "timings_cached": cached,
            "timings_uncached": uncached,
            "flops_cached": forward_flops(model.cfg, 1, t),
            "flops_uncached": forward_flops(model.cfg, t + 1, 0),
        })
    return rows


@torch.no_grad()
def reuse_across_turns(model: Transformer, history: torch.Tensor, turn_len: int, replies: list[tuple[int, int]]) -> dict:
    """Is one cache, fed a dialogue turn by turn, the same as recomputing everything?

    ``history`` ``(1, T)`` is a dialogue served by :func:`dialogue_costs` with one cache,
    ``turn_len`` the tokens per turn and ``replies`` the ``(start, end)`` positions of the
    model's replies. Returns the largest logit difference between feeding the history turn
    by turn into one cache and one uncached pass over all of it, and whether every reply
    token is the greedy choice of the uncached pass (the dialogue wrote what a
    recomputation would have). Decoder-only. Defined in the chapter "Efficiency: the KV cache".
    """
    if model.cfg.arch != "decoder":
        raise ValueError(f"only a decoder-only model keeps its cache across turns, not arch {model.cfg.arch!r}")
    if isinstance(turn_len, bool) or not isinstance(turn_len, int) or turn_len < 1:
        raise ValueError(f"turn_len must be a positive int, got {turn_len!r}")
    model.eval()
    full = model(history)[0]
    cache = model.new_cache()
    chunks = [model(history[:, i:i + turn_len], cache=cache)[0] for i in range(0, history.shape[1], turn_len)]
    greedy = full.argmax(-1)
    match = all(torch.equal(greedy[a - 1:b - 1], history[0, a:b]) for a, b in replies)
    return {"max_logit_gap": float((torch.cat(chunks) - full).abs().max()), "greedy_match": match}


@torch.no_grad()
def stale_prefix_gap(model: Transformer, first: torch.Tensor, second: torch.Tensor) -> float:
    """The largest logit error at the last position when a prefix-LM reuses the cache of
    turn ``first`` for turn ``second`` (appending it as if causal) instead of re-encoding
    ``first + second`` as its prefix. Defined in the chapter "Efficiency: the KV cache"."""
    if model.cfg.arch != "prefix-lm":
        raise ValueError(f"stale_prefix_gap measures a prefix-LM, not arch {model.cfg.arch!r}")
    model.eval()
    cache = model.new_cache()
    model(first, prefix_len=first.shape[1], cache=cache)
    stale = model(second, prefix_len=first.shape[1], cache=cache)[:, -1]
    history = torch.cat([first, second], dim=1)
    fresh = model(history, prefix_len=history.shape[1])[:, -1]
    return float((stale - fresh).abs().max())


@torch.no_grad()
def dialogue_costs(model: Transformer, turns: int, user_len: int, reply_len: int, seed: int = 0,
                   progress: bool = False, return_history: bool = False):
    """Serve a dialogue of ``turns`` turns (a user message of ``user_len`` tokens, then a
    greedy reply of ``reply_len`` tokens) the way each architecture must:

    - decoder-only: one KV cache for the whole dialogue; each turn feeds only the new tokens;
    - prefix-LM: the history is a bidirectional prefix, so every turn re-encodes it all,
      then decodes the reply with a cache that lives for that turn only;
    - encoder-decoder: the encoder re-reads the whole history every turn; the decoder
      writes the reply with its own cache.

    User messages are random tokens below ``min(256, vocab_size)`` drawn from a generator
    seeded with ``seed``. Returns one row per turn: history length, analytic FLOPs and
    measured seconds (and the final ``(1, length)`` token history if ``return_history``).
    Defined in the chapter "Efficiency: the KV cache".
    """
    arch, cfg = model.cfg.arch, model.cfg
    if arch not in DIALOGUE_ARCHS:
        raise ValueError(f"arch {arch!r} cannot serve a dialogue; expected one of {DIALOGUE_ARCHS}")
    for name, value in (("turns", turns), ("user_len", user_len), ("reply_len", reply_len)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    needed = turns * (user_len + reply_len) + 1
    if needed > cfg.max_len:
        raise ValueError(f"a dialogue of {turns} turns needs {needed} positions, more than max_len {cfg.max_len}")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    n_user_ids = min(256, cfg.vocab_size)
    start = ByteTokenizer().bos if cfg.vocab_size > ByteTokenizer().bos else 0  # decoder start (enc-dec)
    history = torch.zeros(1, 0, dtype=torch.long)
    cache = model.new_cache() if arch == "decoder" else None
    pending = history  # decoder: tokens generated but not yet fed to the cache
    rows = []
    for turn in tqdm(range(turns), desc=f"dialogue {arch}", disable=not progress, leave=False):
        user = torch.randint(0, n_user_ids, (1, user_len), generator=g)
        history = torch.cat([history, user], dim=1)
        flops, t0 = 0, time.perf_counter()
        if arch == "decoder":
            new = torch.cat([pending, user], dim=1)
            flops += forward_flops(cfg, new.shape[1], cache.length)
            logits = model(new, cache=cache)[:, -1]
            reply = [logits.argmax(-1, keepdim=True)]
            for _ in range(reply_len - 1):
                flops += forward_flops(cfg, 1, cache.length)
                reply.append(model(reply[-1], cache=cache)[:, -1].argmax(-1, keepdim=True))
            pending = reply[-1]
        elif arch == "prefix-lm":
            turn_cache = model.new_cache()
            flops += forward_flops(cfg, history.shape[1], 0)
            logits = model(history, prefix_len=history.shape[1], cache=turn_cache)[:, -1]
            reply = [logits.argmax(-1, keepdim=True)]
            for _ in range(reply_len - 1):
                flops += forward_flops(cfg, 1, turn_cache.length)
                step = model(reply[-1], prefix_len=history.shape[1], cache=turn_cache)
                reply.append(step[:, -1].argmax(-1, keepdim=True))
        else:
            turn_cache = model.new_cache()
            bos = torch.full((1, 1), start, dtype=torch.long)
            src = history.shape[1]
            flops += forward_flops(cfg, 1, 0, src, encode=True)
            reply = [model(bos, source=history, cache=turn_cache)[:, -1].argmax(-1, keepdim=True)]
            for _ in range(reply_len - 1):
                flops += forward_flops(cfg, 1, turn_cache.length, src, encode=False)
                reply.append(model(reply[-1], cache=turn_cache)[:, -1].argmax(-1, keepdim=True))
        seconds = time.perf_counter() - t0
        history = torch.cat([history, *reply], dim=1)
        rows.append({"turn": turn + 1, "history": history.shape[1], "flops": flops, "seconds": seconds})
    return (rows, history) if return_history else rows


def published_configs(path: str | Path | None = None) -> dict[str, ModelConfig]:
    """The attention shapes of a few published decoder-only models (``data/model_configs.csv``,
    each row with its source), as configs for the KV-cache formula.

    Defined in the chapter "Efficiency: the KV cache".
    """
    import csv

    path = Path(path) if path is not None else RESULTS_DIR.parent / "model_configs.csv"
    configs = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["source"].strip():
                raise ValueError(f"{path}: model {row['name']!r} has no source")
            configs[row["name"]] = ModelConfig(
                arch="decoder", d_model=int(row["d_model"]), n_layers=int(row["n_layers"]),
                n_heads=int(row["n_heads"]), n_kv_heads=int(row["n_kv_heads"]), d_head=int(row["head_dim"]),
            )
    return configs


def cache_memory_table(configs: dict[str, ModelConfig], context: int, bytes_per_value: int = 2) -> list[dict]:
    """KV-cache bytes per token and for ``context`` tokens, for named model configurations.

    Defined in the chapter "Efficiency: the KV cache".
    """
    rows = []
    for name, cfg in configs.items():
        per_token = kv_cache_bytes(cfg, 1, bytes_per_value=bytes_per_value)
        rows.append({
            "model": name, "layers": cfg.n_layers, "heads": cfg.n_heads, "kv heads": cfg.kv_heads,
            "head dim": cfg.head_dim, "KiB per token": per_token / 2**10,
            f"GiB at {context} tokens": kv_cache_bytes(cfg, context, bytes_per_value=bytes_per_value) / 2**30,
        })
    return rows


def reuse_checks(s: EfficiencySettings, progress: bool = False) -> list[dict]:
    """For each seed (a fresh random model): the decoder's dialogue fed turn by turn into
    one cache against recomputation (:func:`reuse_across_turns`), and the prefix-LM's stale
    cache (:func:`stale_prefix_gap`). Defined in the chapter "Efficiency: the KV cache"."""
    rows = []
    turn = s.user_len + s.reply_len
    replies = [(t * turn + s.user_len, (t + 1) * turn) for t in range(s.turns)]
    for seed in tqdm(s.seeds, desc="reuse", disable=not progress, leave=False):
        torch.manual_seed(seed)
        decoder = Transformer(s.config("decoder"))
        _, history = dialogue_costs(decoder, s.turns, s.user_len, s.reply_len, seed, return_history=True)
        torch.manual_seed(seed)
        prefix = Transformer(s.config("prefix-lm"))
        g = torch.Generator().manual_seed(seed)
        first, second = (torch.randint(0, 256, (1, n), generator=g) for n in (turn, s.user_len))
        rows.append({"seed": seed, **reuse_across_turns(decoder, history, turn, replies),
                     "prefix_stale_gap": stale_prefix_gap(prefix, first, second)})
    return rows


def timed_dialogue(model: Transformer, s: EfficiencySettings, seed: int = 0, progress: bool = False) -> list[dict]:
    """:func:`dialogue_costs` served ``s.warmup + s.repeats`` times: per turn its FLOPs,
    history length, every timed run's seconds and their median.
    Defined in the chapter "Efficiency: the KV cache"."""
    for _ in range(s.warmup):
        dialogue_costs(model, s.turns, s.user_len, s.reply_len, seed)
    runs = [dialogue_costs(model, s.turns, s.user_len, s.reply_len, seed, progress) for _ in range(s.repeats)]
    return [{**turn[0], "seconds": statistics.median(r["seconds"] for r in turn), "timings": [r["seconds"] for r in turn]}
            for turn in zip(*runs)]


def run(scale: str | None = None, out: str | Path | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Run every measurement of the chapter at ``scale``; with ``out``, store the results
    there (atomically, with provenance) after each section and skip sections already stored.

    Defined in the chapter "Efficiency: the KV cache".
    """
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch06_efficiency", scale, out)

    def decode():
        torch.manual_seed(seed)
        return decode_step_costs(Transformer(s.config("decoder")), s.lengths, s.repeats, seed, progress, s.warmup)

    def dialogue():
        out_rows = {}
        for arch in DIALOGUE_ARCHS:
            torch.manual_seed(seed)
            model = Transformer(s.config(arch))
            out_rows[arch] = {"parameters": parameter_count(model.cfg),
                              "non_embedding_parameters": parameter_count(model.cfg, embeddings=False),
                              "turns": timed_dialogue(model, s, seed, progress)}
        return out_rows

    sections = {"reuse": lambda: reuse_checks(s, progress), "decode_steps": decode, "dialogue": dialogue}
    return run_sections(sections, judged_settings(s, RULES), out, command)



def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete (every section, the current full settings and
    rules), else ``None``. Defined in the chapter "Efficiency: the KV cache"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def growth_exponents(rows: list[dict], key: str) -> list[float]:
    """Per timed repeat, the least-squares slope of log(seconds) against log(context) over
    the decode-step rows: 1 is linear growth, 0 none. ``key`` is ``"timings_cached"`` or
    ``"timings_uncached"``. Defined in the chapter "Efficiency: the KV cache"."""
    x = [math.log(r["context"]) for r in rows]
    mx = sum(x) / len(x)
    slopes = []
    for i in range(min(len(r[key]) for r in rows)):
        y = [math.log(r[key][i]) for r in rows]
        my = sum(y) / len(y)
        slopes.append(sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x))
    return slopes


def past_crossover(results: dict, crossover: float | None = None) -> list[dict]:
    """The timed decode steps at contexts of at least ``crossover`` times the width (default
    the C13 rule's, 6: where the attention term outweighs a step's fixed cost), the ones
    C13's timing half reads. Defined in the chapter "Efficiency: the KV cache"."""
    crossover = RULES["C13"].parameters["crossover"] if crossover is None else crossover
    return [r for r in results["decode_steps"] if r["context"] >= crossover * results["settings"]["d_model"]]


def turn_growth(results: dict) -> dict[str, float]:
    """Per architecture, the FLOPs of the dialogue's last turn over its first.
    Defined in the chapter "Efficiency: the KV cache"."""
    return {arch: d["turns"][-1]["flops"] / d["turns"][0]["flops"] for arch, d in results["dialogue"].items()}


def _c13_decide(results: dict, p: dict) -> Verdict:
    """C13, in its two halves.

    Gate: the three dialogue models have non-embedding parameters within
    ``p["equal_parameters"]`` of the decoder's, and every timing has ``p["min_repeats"]``
    repeats; else inconclusive.

    1. *Reuse across turns* holds when, for every seed, the decoder's dialogue fed turn by
       turn into one cache matches recomputation (logits within ``p["logit_tolerance"]``,
       every reply token the greedy choice), the prefix-LM's reused cache is wrong (error
       above the tolerance), the decoder's last turn costs at most ``p["flat_growth"]``
       times its first in FLOPs, and both re-encoding architectures at least
       ``p["regrow"]`` times. Else it fails.
    2. *Per-token cost O(T) with the cache*: the cached step's FLOPs are affine in T
       (exact), and over the repeats the growth exponent of its measured time (slope of
       log time on log T), fitted over the contexts at or past ``p["crossover"]`` times the
       width (``6d``: where the attention term outweighs a step's fixed cost; below it the
       exponent describes that fixed cost and cannot fail), has a 95% interval below
       ``1 + p["slope_margin"]``, while the uncached step's exponent is higher (paired by
       repeat). A cached exponent above the bound, or an uncached one lower, fails; an
       interval that straddles is unclear; fewer than ``p["min_past_crossover"]`` contexts
       past the crossover leave the half untested.

    Supported when both hold, refuted when both fail, nuanced when one does; inconclusive
    when half 2 is unclear or untested.
    """
    dialogue, steps = results["dialogue"], results["decode_steps"]
    reference = dialogue["decoder"]["non_embedding_parameters"]
    off = {a: abs(d["non_embedding_parameters"] - reference) / reference for a, d in dialogue.items()}
    if max(off.values()) > p["equal_parameters"]:
        return Verdict("inconclusive", f"the dialogue models are not at equal parameters ({max(off.values()):.1%} apart)")
    repeats = min(len(r[k]) for r in steps for k in ("timings_cached", "timings_uncached"))
    if repeats < p["min_repeats"]:
        return Verdict("inconclusive", f"{repeats} timings per step, fewer than the {p['min_repeats']} the rule asks for")
    reuse = results["reuse"]
    exact = all(r["max_logit_gap"] <= p["logit_tolerance"] and r["greedy_match"] for r in reuse)
    stale = all(r["prefix_stale_gap"] > p["logit_tolerance"] for r in reuse)
    growth = turn_growth(results)
    regrows = min(growth["prefix-lm"], growth["encoder-decoder"])
    reuses = exact and stale and growth["decoder"] <= p["flat_growth"] and regrows >= p["regrow"]

    flops = [(r["context"], r["flops_cached"]) for r in steps]
    per_token = [(f1 - f0) / (t1 - t0) for (t0, f0), (t1, f1) in zip(flops, flops[1:])]
    affine = max(per_token) - min(per_token) <= 1e-9 * max(per_token) and per_token[0] > 0
    crossover = p["crossover"] * results["settings"]["d_model"]
    past = past_crossover(results, p["crossover"])
    if len(past) < p["min_past_crossover"]:
        return Verdict("inconclusive", f"{len(past)} timed contexts at or past {crossover:,.0f} tokens "
                       f"({p['crossover']:g}d), fewer than the {p['min_past_crossover']} the rule asks for: the "
                       "per-token cost was not timed where the context outweighs a step's fixed cost",
                       {"reuse_holds": reuses, "past_crossover": len(past), "parameters_apart": max(off.values())})
    cached = t_interval(growth_exponents(past, "timings_cached"))
    faster = t_interval([u - c for u, c in zip(growth_exponents(past, "timings_uncached"),
                                               growth_exponents(past, "timings_cached"))])
    bound = 1 + p["slope_margin"]
    at_most_linear = True if cached.high <= bound else False if cached.low > bound else None
    cache_helps = {"higher": True, "lower": False}.get(compare(faster, 0.0))
    linear = None if None in (at_most_linear, cache_helps) else (affine and at_most_linear and cache_helps)
    numbers = {"reuse_exact": exact, "prefix_stale": stale, "turn_growth": growth, "flops_affine": affine,
               "cached_exponent": cached.__dict__, "uncached_minus_cached_exponent": faster.__dict__,
               "parameters_apart": max(off.values()), "reuse_holds": reuses, "linear_holds": linear,
               "past_crossover": len(past)}
    if linear is None:
        return Verdict("inconclusive", "the measured growth of the per-token time is too noisy to tell", numbers)
    if reuses and linear:
        return Verdict("supported", "one cache serves the whole dialogue exactly, and a cached step's cost grows "
                       "at most linearly with the context", numbers)
    if not reuses and not linear:
        return Verdict("refuted", "neither the reuse across turns nor the linear per-token cost held", numbers)
    failed = "the reuse across turns" if not reuses else "the linear per-token cost"
    return Verdict("nuanced", f"one half of the claim holds; {failed} did not", numbers)


RULES = {"C13": Rule(
    "C13", "a decoder's one KV cache serves every turn of a dialogue exactly while a bidirectional history must be "
    "re-encoded, and with the cache the cost of one more token grows at most linearly with the context",
    {"min_repeats": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE, "logit_tolerance": 1e-4, "flat_growth": 1.5,
     "regrow": 2.0, "slope_margin": 0.1, "crossover": 6.0, "min_past_crossover": 3},
    _c13_decide)}


def _c13_rests_on(results: dict, verdict: Verdict) -> str:
    """What C13's verdict rests on, counted: no training (random models at equal
    parameters), the dialogues checked exactly, the contexts and repeats timed, and how
    many of the two halves held."""
    rule = RULES["C13"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    steps, n = results["decode_steps"], verdict.numbers
    if "reuse_holds" not in n:  # a gate failed: the models' parameters, or the number of timings
        return f"nothing compared: {verdict.reason}"
    repeats = min(len(r[k]) for r in steps for k in ("timings_cached", "timings_uncached"))
    run = (f"no training: {counted(len(results['dialogue']), 'random model')} at equal parameters, "
           f"{counted(len(results['reuse']), 'dialogue')} checked exactly, {counted(len(steps), 'context')} "
           f"({min(r['context'] for r in steps)} to {max(r['context'] for r in steps)} tokens) timed "
           f"{counted(repeats, 'time')} each")
    at = f"{rule.parameters['crossover']:g}d"
    if "linear_holds" not in n:
        return f"{run}; timing half untested ({counted(n['past_crossover'], 'context')} past {at})"
    run += f", {in_words(n['past_crossover'])} past {at}"
    if n["linear_holds"] is None:
        return f"{run}; timing half unclear, nothing decided"
    held = sum(bool(n[k]) for k in ("reuse_holds", "linear_holds"))
    return f"{run}; {counted_of(held, 2, 'half', 'halves')} held"


def c13_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C13's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "Efficiency: the KV cache"."""
    shown, n13 = results["settings"], verdict.numbers
    reuse, growth = results["reuse"], turn_growth(results)
    crossover = RULES["C13"].parameters["crossover"]
    timed = ""
    if "cached_exponent" in n13:
        cached, faster = n13["cached_exponent"], n13["uncached_minus_cached_exponent"]
        timed = (f"; past the crossover, a cached step's time grows with the context at an exponent of "
                 f"{cached['mean']:.2f} [{cached['low']:.2f}, {cached['high']:.2f}], the uncached step's exponent is "
                 f"higher by {faster['mean']:.2f} [{faster['low']:.2f}, {faster['high']:.2f}]")
    text = (f"One cache over a {shown['turns']}-turn dialogue matches recomputation (largest logit gap "
            f"{max(r['max_logit_gap'] for r in reuse):.1e}, every reply token the greedy choice; a reused prefix-LM "
            f"cache errs by {min(r['prefix_stale_gap'] for r in reuse):.3f} or more); per-turn FLOPs grow "
            f"{growth['decoder']:.2f}x for the decoder, {growth['prefix-lm']:.1f}x and "
            f"{growth['encoder-decoder']:.1f}x for the prefix-LM and encoder-decoder{timed}.")
    scope = (f"Random models of width {shown['d_model']}, {shown['n_layers']} layers, equal non-embedding "
             f"parameters (within {n13['parameters_apart']:.3%}); contexts {shown['lengths'][0]}-"
             f"{shown['lengths'][-1]}; times the median of {shown['repeats']} after {shown['warmup']} warm-up calls, "
             f"one CPU thread. The growth exponents are fitted over the contexts at or past "
             f"{crossover * shown['d_model']:,.0f} tokens ({crossover:g}d), where the attention term outweighs a "
             "step's fixed cost.")
    return Evidence(text, scope, rests_on=_c13_rests_on(results, verdict))


CLAIMS = (Claim("C13", "Decoder-only reuses the KV cache (also across dialogue turns); per-token decode cost is O(T)",
                "06_efficiency", stored_results(sys.modules[__name__]), RULES["C13"], c13_evidence,
                revised="the timing half's fit past the 6d crossover was added on review, after an earlier run's "
                "exponents had been seen; it makes the test stricter, and the old fit over all contexts also passes"),)


if __name__ == "__main__":
    experiment_main("experiments.ch06_efficiency", run, RESULTS_DIR)
