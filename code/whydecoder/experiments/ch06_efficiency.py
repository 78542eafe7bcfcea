"""Measurements of inference cost: per-token decoding with and without the KV cache, and
multi-turn dialogue for decoder-only, prefix-LM and encoder-decoder models.

Every measured time sits next to the analytic FLOPs of :mod:`whydecoder.accounting`
(themselves checked against PyTorch's FLOP counter in the tests). Run the full scale with
``python -m whydecoder.experiments.ch06_efficiency --scale full``; it stores its results in
``data/efficiency/`` with their provenance, and resumes a section at a time.

Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..accounting import forward_flops, kv_cache_bytes, parameter_count
from ..config import ModelConfig
from ..model import Transformer
from ..paths import results_dir
from ..results import experiment_command, experiment_main, run_sections, settings_dict
from ..results import load_complete as load_stored
from ..scale import current_scale
from ..text import ByteTokenizer

RESULTS_DIR = results_dir("efficiency")
SECTIONS = ("decode_steps", "dialogue")
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
    vocab_size: int = 276

    def config(self, arch: str) -> ModelConfig:
        """The model of an architecture at this scale. The encoder-decoder gets half the
        layers in each stack, so that all three have about the same parameters."""
        layers = dict(n_layers=self.n_layers)
        if arch == "encoder-decoder":
            layers = dict(n_layers=self.n_layers // 2, n_encoder_layers=self.n_layers // 2)
        return ModelConfig(arch=arch, vocab_size=self.vocab_size, max_len=self.max_len, d_model=self.d_model,
                           n_heads=self.n_heads, **layers)


SETTINGS = {
    "smoke": EfficiencySettings(d_model=64, n_heads=4, n_layers=2, max_len=256, lengths=(16, 32, 64, 128, 255),
                                repeats=3, turns=6, user_len=12, reply_len=12),
    "full": EfficiencySettings(d_model=512, n_heads=8, n_layers=8, max_len=2048,
                               lengths=(64, 128, 256, 512, 1024, 2047), repeats=5, turns=12, user_len=64, reply_len=64),
}


def settings_for(scale: str | None = None) -> EfficiencySettings:
    """The settings of ``scale`` (default: ``$WHYDEC_SCALE``, else smoke).

    Defined in the chapter "Efficiency: the KV cache".
    """
    return SETTINGS[current_scale(scale)]


def median_seconds(fn, repeats: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls.

    Defined in the chapter "Efficiency: the KV cache".
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def decode_step_costs(model: Transformer, lengths, repeats: int = 3, seed: int = 0, progress: bool = False) -> list[dict]:
    """Cost of producing one more token after a context of ``T`` tokens, for each ``T`` in
    ``lengths``: with the cache (one position through the model, attending to ``T`` cached
    keys) and without (the whole ``T + 1`` positions recomputed). Times are medians.

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
        for _ in range(repeats + 1):  # one cache per timed call: a step appends to it
            cache = model.new_cache()
            model(tokens[:, :t], cache=cache)
            caches.append(cache)
        model(tokens[:, t:], cache=caches.pop())  # warm-up
        cached = median_seconds(lambda: model(tokens[:, t:], cache=caches.pop()), repeats)  # noqa: B023 (called now)
        model(tokens)  # warm-up
        uncached = median_seconds(lambda: model(tokens), repeats)  # noqa: B023 (called now)
        rows.append({
            "context": t,
            "seconds_cached": cached,
            "seconds_uncached": uncached,
            "flops_cached": forward_flops(model.cfg, 1, t),
            "flops_uncached": forward_flops(model.cfg, t + 1, 0),
        })
    return rows


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
        return decode_step_costs(Transformer(s.config("decoder")), s.lengths, s.repeats, seed, progress)

    def dialogue():
        out_rows = {}
        for arch in DIALOGUE_ARCHS:
            torch.manual_seed(seed)
            model = Transformer(s.config(arch))
            out_rows[arch] = {"parameters": parameter_count(model.cfg),
                              "turns": dialogue_costs(model, s.turns, s.user_len, s.reply_len, seed, progress)}
        return out_rows

    return run_sections(dict(zip(SECTIONS, (decode, dialogue))), settings_dict(s), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete (every section, the current full settings), else
    ``None``. Defined in the chapter "Efficiency: the KV cache"."""
    return load_stored(path, SECTIONS, settings_dict(SETTINGS["full"]))


if __name__ == "__main__":
    experiment_main("experiments.ch06_efficiency", run, RESULTS_DIR)
