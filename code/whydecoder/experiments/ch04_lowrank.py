"""The experiments of the chapter "The low-rank argument, tested", at two scales.

Sections (each stored as soon as it is done, so an interrupted full run resumes):

- ``spectra``: rank, effective rank and conditioning of random attention matrices,
  bidirectional and causal, over head size and logit scale (claims C03, C04);
- ``fitting``: how well a single head of each size can fit random target attention
  matrices, with and without the causal mask (C04, C05);
- ``collapse``: rank collapse with depth for pure attention, with skips, with MLPs and
  for the full block, both masks (C07);
- ``heads``: small language models at fixed width, heads of size ``d / h`` against a
  fixed head size (C06);
- ``trained``: the same rank statistics for the attention of trained models: our causal
  LM, our bidirectional masked LM, and the real all-MiniLM-L6-v2 encoder.

Run the full scale with ``python -m whydecoder.experiments.ch04_lowrank --scale full``.
Explained in the chapter "The low-rank argument, tested".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..attention import Attention
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import full_lm, masked_lm
from ..paths import results_dir
from ..rank import (
    COLLAPSE_VARIANTS,
    collapse_curve,
    condition_number,
    effective_rank,
    fit_attention,
    numerical_rank,
    random_attention,
    random_stochastic,
    singular_values,
)
from ..results import experiment_command, experiment_main, run_sections, settings_dict
from ..results import load_complete as load_stored
from ..scale import current_scale
from ..text import ByteTokenizer, corpus_text, corpus_tokens, random_chunks
from ..train import TrainConfig, evaluate, train

RESULTS_DIR = results_dir("lowrank")
SECTIONS = ("spectra", "fitting", "collapse", "heads", "trained")
TOK = ByteTokenizer()


@dataclass(frozen=True)
class LowRankSettings:
    """Sizes of one scale of the low-rank experiments.

    Defined in the chapter "The low-rank argument, tested".
    """

    n: int
    head_sizes: tuple[int, ...]
    scales: tuple[float, ...]
    seeds: tuple[int, ...]
    fit_n: int
    fit_heads: tuple[int, ...]
    fit_steps: int
    collapse_depth: int
    lm_width: int
    lm_heads: tuple[int, ...]
    fixed_head: int
    lm_layers: int
    lm_seq: int
    lm_batch: int
    lm_steps: int
    attn_n: int

    def __post_init__(self):
        if self.attn_n > self.lm_seq:
            raise ValueError(f"attn_n {self.attn_n} exceeds the training length lm_seq {self.lm_seq}: "
                             "positions beyond it were never trained")



SETTINGS = {
    "smoke": LowRankSettings(n=64, head_sizes=(2, 8, 32), scales=(0.25, 1.0, 4.0), seeds=(0, 1), fit_n=8,
                             fit_heads=(1, 2, 4, 8), fit_steps=300, collapse_depth=8, lm_width=32, lm_heads=(1, 4),
                             fixed_head=16, lm_layers=1, lm_seq=32, lm_batch=8, lm_steps=20, attn_n=32),
    "full": LowRankSettings(n=256, head_sizes=(2, 4, 8, 16, 32, 64), scales=(0.25, 0.5, 1.0, 2.0, 4.0),
                            seeds=(0, 1, 2), fit_n=32, fit_heads=(1, 2, 4, 8, 16, 32), fit_steps=800,
                            collapse_depth=16, lm_width=128, lm_heads=(1, 2, 4, 8, 16), fixed_head=32, lm_layers=2,
                            lm_seq=128, lm_batch=16, lm_steps=600, attn_n=128),
}


def matrix_stats(p: torch.Tensor) -> dict:
    """Rank statistics of one attention matrix (numerical rank at its own precision).

    Defined in the chapter "The low-rank argument, tested".
    """
    s = singular_values(p)
    return {
        "numerical_rank": numerical_rank(p),
        "effective_rank": effective_rank(p),
        "condition": condition_number(p),
        "min_diagonal": float(p.diagonal().min()),
        "n": p.shape[0],
        "spectrum_head": (s / s[0]).tolist()[:: max(1, p.shape[0] // 32)],
    }


def spectra(s: LowRankSettings, progress: bool = False) -> list[dict]:
    """Random attention matrices over head size, logit scale, seed and mask.

    Defined in the chapter "The low-rank argument, tested".
    """
    rows = []
    cases = [(scale, d, seed) for scale in s.scales for d in s.head_sizes for seed in s.seeds]
    for scale, d, seed in tqdm(cases, desc="spectra", disable=not progress, leave=False):
        for causal in (False, True):
            g = torch.Generator().manual_seed(seed)
            p32 = random_attention(s.n, d, scale, causal, g)
            g = torch.Generator().manual_seed(seed)
            p64 = random_attention(s.n, d, scale, causal, g, dtype=torch.float64)
            stats = matrix_stats(p32)
            stats.update(mask="causal" if causal else "bidirectional", d=d, scale=scale, seed=seed,
                         numerical_rank_float64=numerical_rank(p64),
                         diagonal_positive_float64=bool((p64.diagonal() > 0).all()))
            rows.append(stats)
    return rows


def fitting(s: LowRankSettings, progress: bool = False) -> list[dict]:
    """Best KL reachable by one head of each size on random row-stochastic targets.

    Defined in the chapter "The low-rank argument, tested".
    """
    rows = []
    cases = [(causal, d, seed) for causal in (False, True) for d in s.fit_heads for seed in s.seeds]
    for causal, d, seed in tqdm(cases, desc="fitting", disable=not progress, leave=False):
        target = random_stochastic(s.fit_n, causal, torch.Generator().manual_seed(seed))
        kl = fit_attention(target, d, causal, steps=s.fit_steps, lr=0.05, seed=seed)
        rows.append({"mask": "causal" if causal else "bidirectional", "d_head": d, "seed": seed, "kl": kl})
    return rows


def collapse(s: LowRankSettings) -> list[dict]:
    """Rank-collapse curves for every variant and mask. Defined in the chapter "The low-rank argument, tested"."""
    return [{"variant": v, "mask": "causal" if causal else "bidirectional", "seed": seed,
             "ratios": collapse_curve(v, causal, s.collapse_depth, seed=seed)}
            for v in COLLAPSE_VARIANTS for causal in (False, True) for seed in s.seeds]


def _lm_config(s: LowRankSettings, arch: str, n_heads: int, d_head: int | None) -> ModelConfig:
    return ModelConfig(arch=arch, vocab_size=TOK.vocab_size, max_len=s.lm_seq + 1, d_model=s.lm_width,
                       n_heads=n_heads, d_head=d_head, n_layers=s.lm_layers)


def _train_lm(s: LowRankSettings, cfg: ModelConfig, seed: int, objective: str = "full-lm") -> tuple[Transformer, float]:
    """Train on the corpus; return the model and its validation loss on fixed batches."""
    data, val = corpus_tokens("train"), corpus_tokens("val")
    g = torch.Generator().manual_seed(1234)

    def make(generator, ids=data):
        chunks = random_chunks(ids, s.lm_batch, s.lm_seq + 1, generator)
        return full_lm(chunks) if objective == "full-lm" else masked_lm(chunks, generator)

    torch.manual_seed(seed)
    model = Transformer(cfg)
    train(model, make, TrainConfig(steps=s.lm_steps, lr=3e-3, warmup=max(1, s.lm_steps // 10), seed=seed,
                                   progress=False))
    val_batches = [make(g, val) for _ in range(8)]
    return model, evaluate(model, val_batches)


def heads(s: LowRankSettings, progress: bool = False) -> list[dict]:
    """Validation loss of small causal LMs at fixed width: ``h`` heads of size ``d/h``
    against ``h`` heads of a fixed size (Bhojanapalli et al. 2020).

    Defined in the chapter "The low-rank argument, tested".
    """
    rows = []
    cases = [(h, variant, seed) for h in s.lm_heads for variant in ("d/h", "fixed") for seed in s.seeds]
    for h, variant, seed in tqdm(cases, desc="heads", disable=not progress, leave=False):
        d_head = s.lm_width // h if variant == "d/h" else s.fixed_head
        cfg = _lm_config(s, "decoder", h, d_head)
        _, loss = _train_lm(s, cfg, seed)
        rows.append({"heads": h, "variant": variant, "d_head": d_head, "seed": seed, "val_loss": loss,
                     "parameters": sum(p.numel() for p in Transformer(cfg).parameters())})
    return rows


def attention_maps(model: Transformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention probabilities ``(heads, n, n)`` for one sequence ``(1, n)``.

    Defined in the chapter "The low-rank argument, tested".
    """
    attns = [m for m in model.modules() if isinstance(m, Attention) and not m.cross]
    for m in attns:
        m.keep_weights = True
    try:
        with torch.no_grad():
            model(tokens)
        return [m.weights[0] for m in attns]
    finally:
        for m in attns:
            m.keep_weights, m.weights = False, None


def trained(s: LowRankSettings, progress: bool = False) -> list[dict]:
    """Rank statistics of every head of a trained causal LM, a trained bidirectional masked
    LM (same size, same data) and the real all-MiniLM-L6-v2, on held-out text.

    Defined in the chapter "The low-rank argument, tested".
    """
    from ..hf import load_minilm

    rows = []
    text_ids = corpus_tokens("val")[: s.attn_n][None]
    for arch, objective in tqdm([("decoder", "full-lm"), ("encoder", "masked-lm")], desc="trained",
                                disable=not progress, leave=False):
        model, loss = _train_lm(s, _lm_config(s, arch, 4, None), seed=0, objective=objective)
        for layer, maps in enumerate(attention_maps(model, text_ids)):
            for head, p in enumerate(maps):
                rows.append({"model": f"our {'causal LM' if arch == 'decoder' else 'masked LM'}",
                             "layer": layer, "head": head, "val_loss": loss, **matrix_stats(p)})
    minilm, tokenizer = load_minilm()
    text = corpus_text()[int(len(corpus_text()) * 0.9):]
    ids = torch.tensor([tokenizer.encode(text).ids[: s.attn_n]])
    with torch.no_grad():
        maps = minilm(ids, output_attentions=True).attentions
    for layer, layer_maps in enumerate(maps):
        for head, p in enumerate(layer_maps[0]):
            rows.append({"model": "all-MiniLM-L6-v2", "layer": layer, "head": head, "val_loss": None,
                         **matrix_stats(p)})
    return rows


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload at ``path`` if it holds every section, else ``None`` (absent, or
    a run still in progress). Defined in the chapter "The low-rank argument, tested"."""
    return load_stored(path, SECTIONS, settings_dict(SETTINGS["full"]))


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True,
        sections: tuple[str, ...] = SECTIONS) -> dict:
    """Run the chapter's sections at ``scale``; with ``out``, store after each section
    (atomically, with provenance) and skip the sections already stored.

    Defined in the chapter "The low-rank argument, tested".
    """
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch04_lowrank", scale, out)
    steps = {"spectra": lambda: spectra(s, progress), "fitting": lambda: fitting(s, progress),
             "collapse": lambda: collapse(s), "heads": lambda: heads(s, progress),
             "trained": lambda: trained(s, progress)}
    unknown = [name for name in sections if name not in steps]
    if unknown:
        raise ValueError(f"unknown section {unknown[0]!r}; expected some of {tuple(steps)}")
    return run_sections({name: steps[name] for name in sections}, settings_dict(s), out, command)


if __name__ == "__main__":
    experiment_main("experiments.ch04_lowrank", run, RESULTS_DIR)
