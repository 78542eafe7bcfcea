"""The KV cache of a real grouped-query decoder, SmolLM2-135M (30 layers, 9 query heads
sharing 3 key/value heads); a second line of evidence for C13.

Sections:

- ``bytes``: the cache's bytes per token measured after a prefill, against the formula of
  :func:`whydecoder.accounting.kv_cache_bytes`, and for the same model with its heads
  expanded to one key/value head per query head (:func:`whydecoder.serving.expand_kv_heads`);
- ``decode``: the time of one more token with the cache and without it, against the context;
- ``chat``: a multi-turn chat in the model's own chat template, served with one cache
  (:func:`whydecoder.serving.chat`), checked against an uncached pass;
- ``batched``: per-token decode time against batch size and context, grouped against
  expanded heads: the weights are read once per step for the whole batch, while every
  sequence reads its own cache, so the cache's share of the traffic grows with batch x
  context (why Shazeer 2019 and Ainslie et al. 2023 shrank it); with this machine's copy
  bandwidth, for the bound "bytes read per step / bandwidth".

It decides no claim. Smoke scale: a small random decoder with SmolLM2's options and a byte
"chat template". Run the full scale with ``python -m whydecoder.experiments.ch06_real_cache
--scale full`` (stored in ``data/real_cache/``).

Explained in the chapter "Efficiency: the KV cache", section "A real model".
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..accounting import kv_cache_bytes, parameter_count
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..serving import chat, copy_bandwidth, expand_kv_heads, random_cache
from ..timing import timings

RESULTS_DIR = results_dir("real_cache")
#: The page that shows it (under ``chapters/``).
PAGE = "06_efficiency/efficiency"
SECTIONS = ("bytes", "decode", "chat", "batched")
INFORMS = ("C13",)
RULES: dict = {}
USER_TURNS = ("What is the capital of France?", "And what river runs through it?",
              "Name one famous museum there.", "Thank you! Summarise our chat in one sentence.")


@dataclass(frozen=True)
class RealCacheSettings:
    """One scale: the model (``"smollm2"`` or ``"tiny"``), the contexts timed, the batch
    sizes and contexts of the serving sweep, the repeats of every timing and the most
    tokens of a chat reply. Defined in the chapter "Efficiency: the KV cache"."""

    model: str
    lengths: tuple[int, ...]
    batches: tuple[int, ...]
    batch_contexts: tuple[int, ...]
    repeats: int
    warmup: int
    reply_tokens: int

    def __post_init__(self):
        if self.model not in ("smollm2", "tiny"):
            raise ValueError(f"model must be 'smollm2' or 'tiny', got {self.model!r}")
        for name in ("lengths", "batches", "batch_contexts"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be positive ints, got {values!r}")
        for name in ("repeats", "reply_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @property
    def max_len(self) -> int:
        return max(self.lengths + self.batch_contexts) + 1


SETTINGS = {
    "smoke": RealCacheSettings(model="tiny", lengths=(16, 64), batches=(1, 4), batch_contexts=(16, 64), repeats=3,
                               warmup=1, reply_tokens=6),
    "full": RealCacheSettings(model="smollm2", lengths=(256, 1024, 2048, 4096), batches=(1, 4, 8),
                              batch_contexts=(256, 1024, 2048), repeats=5, warmup=1, reply_tokens=40),
}


class Served:
    """A model with its chat template, decoder and stop tokens. Defined in the chapter
    "Efficiency: the KV cache"."""

    def __init__(self, s: RealCacheSettings):
        if s.model == "smollm2":
            from ..llama_gguf import load_smollm2

            self.model, tok, _ = load_smollm2(max_len=max(s.max_len, 2048))
            self.template = lambda messages: list(tok.apply_chat_template(messages, add_generation_prompt=True,
                                                                          tokenize=True)["input_ids"])
            self.decode = tok.decode
            self.stop = {tok.convert_tokens_to_ids("<|im_end|>")}
            self.name = "SmolLM2-135M"
        else:
            torch.manual_seed(0)
            cfg = ModelConfig(arch="decoder", vocab_size=256, max_len=512, d_model=48, n_heads=6, n_kv_heads=2,
                              n_layers=2, position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu",
                              bias=False, tie_embeddings=True)
            self.model = Transformer(cfg).eval()
            self.template = lambda messages: list("".join(f"<{m['role']}>{m['content']}\n" for m in messages).encode()
                                                  + b"<assistant>")
            self.decode = lambda ids: bytes(ids).decode("utf-8", errors="replace")
            self.stop = {ord("\n")}
            self.name = "random decoder"


    @functools.cached_property
    def expanded(self) -> Transformer:
        """The model with one key/value head per query head, built once for every section."""
        return expand_kv_heads(self.model)


@functools.lru_cache(maxsize=2)
def served(s: RealCacheSettings) -> Served:
    """The model of ``s``, loaded once per process. Defined in the chapter "Efficiency: the KV cache"."""
    return Served(s)


@torch.no_grad()
def _bytes_section(s: RealCacheSettings) -> dict:
    m, wide = served(s).model, served(s).expanded
    rows = []
    for t in s.lengths:
        ids = torch.randint(0, m.cfg.vocab_size, (1, t), generator=torch.Generator().manual_seed(t))
        row = {"context": t}
        for name, model in (("grouped", m), ("expanded", wide)):
            cache = model.new_cache()
            model.hidden_states(ids, cache=cache)
            row[f"{name}_measured"] = cache.nbytes()
            row[f"{name}_formula"] = kv_cache_bytes(model.cfg, t)
        rows.append(row)
    return {"model": served(s).name, "rows": rows, "n_layers": m.cfg.n_layers, "kv_heads": m.cfg.kv_heads,
            "n_heads": m.cfg.n_heads, "head_dim": m.cfg.head_dim, "weight_bytes": parameter_count(m.cfg) * 4}


@torch.no_grad()
def _decode_section(s: RealCacheSettings, progress: bool) -> list[dict]:
    m = served(s).model
    rows = []
    for t in tqdm(s.lengths, desc="decode", disable=not progress, leave=False):
        ids = torch.randint(0, m.cfg.vocab_size, (1, t + 1), generator=torch.Generator().manual_seed(t))
        cache = m.new_cache()
        m.hidden_states(ids[:, :t], cache=cache)

        def cached(ids=ids, t=t, cache=cache):
            m.lm_head(m.hidden_states(ids[:, t:], cache=cache.fork())[:, -1])

        def uncached(ids=ids):
            m.lm_head(m.hidden_states(ids)[:, -1])

        c, u = timings(cached, s.repeats, s.warmup), timings(uncached, s.repeats, s.warmup)
        rows.append({"context": t, "timings_cached": c, "timings_uncached": u,
                     "seconds_cached": statistics.median(c), "seconds_uncached": statistics.median(u)})
    return rows


def _chat_section(s: RealCacheSettings) -> dict:
    sv = served(s)
    return chat(sv.model, sv.template, sv.decode, list(USER_TURNS), s.reply_tokens, sv.stop)


@torch.no_grad()
def _batched_section(s: RealCacheSettings, progress: bool) -> dict:
    m, wide = served(s).model, served(s).expanded
    rows = []
    grid = [(v, b, t) for v in ("grouped", "expanded") for b in s.batches for t in s.batch_contexts]
    for variant, b, t in tqdm(grid, desc="batched", disable=not progress, leave=False):
        model = m if variant == "grouped" else wide
        cache = random_cache(model, b, t)
        step = torch.randint(0, m.cfg.vocab_size, (b, 1), generator=torch.Generator().manual_seed(b * t))

        def one_step(model=model, step=step, cache=cache):
            model.lm_head(model.hidden_states(step, cache=cache.fork()))

        times = timings(one_step, s.repeats, s.warmup)
        rows.append({"variant": variant, "batch": b, "context": t, "timings": times,
                     "seconds_per_step": statistics.median(times),
                     "seconds_per_token": statistics.median(times) / b,
                     "cache_bytes": kv_cache_bytes(model.cfg, t, batch=b),
                     "weight_bytes": parameter_count(model.cfg) * 4})
    return {"rows": rows, "copy_bandwidth": copy_bandwidth()}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Measure at ``scale``; with ``out``, store after each section and skip sections
    already stored. Defined in the chapter "Efficiency: the KV cache"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch06_real_cache", scale, out)
    sections = {"bytes": lambda: _bytes_section(s), "decode": lambda: _decode_section(s, progress),
                "chat": lambda: _chat_section(s), "batched": lambda: _batched_section(s, progress)}
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings, else
    ``None``. Defined in the chapter "Efficiency: the KV cache"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def bandwidth_bound(row: dict, bandwidth: float) -> float:
    """The least time one decoding step can take if memory traffic were all it cost: the
    weights read once and every sequence's cache read once, at ``bandwidth`` bytes moved
    per second (:func:`whydecoder.serving.copy_bandwidth`). Defined in the chapter
    "Efficiency: the KV cache"."""
    return (row["weight_bytes"] + row["cache_bytes"]) / bandwidth


def expanded_over_grouped(results: dict) -> dict[tuple[int, int], float]:
    """``{(batch, context): expanded step time / grouped step time}``.
    Defined in the chapter "Efficiency: the KV cache"."""
    rows = results["batched"]["rows"]
    grouped = {(r["batch"], r["context"]): r["seconds_per_step"] for r in rows if r["variant"] == "grouped"}
    return {k: r["seconds_per_step"] / grouped[k] for r in rows if r["variant"] == "expanded"
            for k in [(r["batch"], r["context"])]}


if __name__ == "__main__":
    experiment_main("experiments.ch06_real_cache", run, RESULTS_DIR)
