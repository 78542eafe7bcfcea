"""The rank of real attention: SmolLM2-135M's causal heads beside all-MiniLM-L6-v2's
bidirectional heads, on the same text, per layer and head, at sequence lengths of 1, 2, 4
and 8 times each model's head size; a second line of evidence for C03 and C04, judged on
the yardstick of :mod:`whydecoder.experiments.ch04_lowrank` (numerically low-rank: float32
numerical rank below :data:`~whydecoder.rank.LOW_RANK_FRACTION` of n).

It decides no claim: the rules of C03 and C04 judge the controlled experiments; this shows
whether trained models someone else made look the same. Besides the rank it records the
share of attention each head puts on the first token (an "attention sink", Xiao et al.
2024), which is what makes many causal heads numerically rank-deficient: a causal matrix is
triangular, its eigenvalues are its diagonal, and a head that looks at the first token
leaves that diagonal tiny.

Smoke scale: a small random decoder with SmolLM2's options and MiniLM, at short lengths.
Run the full scale with ``python -m whydecoder.experiments.ch04_real_rank --scale full``
(stored in ``data/real_rank/``).

Explained in the chapter "The low-rank argument, tested", section "Real trained models".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..paths import results_dir
from ..rank import attention_maps, is_low_rank, matrix_stats
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import corpus_text

RESULTS_DIR = results_dir("real_rank")
#: The page that shows it (under ``chapters/``).
PAGE = "04_low_rank/low_rank"
SECTIONS = ("decoder", "encoder")
#: The claims this second line of evidence informs (it decides none).
INFORMS = ("C03", "C04")
RULES: dict = {}


@dataclass(frozen=True)
class RealRankSettings:
    """One scale: the decoder (``"smollm2"``, or ``"tiny"``: a random decoder with its
    options) and the lengths as multiples of each model's head size.
    Defined in the chapter "The low-rank argument, tested"."""

    decoder: str
    ratios: tuple[int, ...]

    def __post_init__(self):
        if self.decoder not in ("smollm2", "tiny"):
            raise ValueError(f"decoder must be 'smollm2' or 'tiny', got {self.decoder!r}")
        if not self.ratios or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in self.ratios):
            raise ValueError(f"ratios must be positive ints, got {self.ratios!r}")


SETTINGS = {"smoke": RealRankSettings(decoder="tiny", ratios=(1, 2)),
            "full": RealRankSettings(decoder="smollm2", ratios=(1, 2, 4, 8))}


def held_out_text() -> str:
    """The text both models read: the last tenth of the corpus (the validation split of
    the small models). Defined in the chapter "The low-rank argument, tested"."""
    text = corpus_text()
    return text[int(len(text) * 0.9):]


def head_rows(maps: list[torch.Tensor], model: str, mask: str, d_head: int) -> list[dict]:
    """One row per layer and head: :func:`matrix_stats` plus the mean attention on the
    first token. Defined in the chapter "The low-rank argument, tested"."""
    rows = []
    for layer, layer_maps in enumerate(maps):
        for head, p in enumerate(layer_maps):
            p = p.float()
            rows.append({"model": model, "mask": mask, "layer": layer, "head": head, "d": d_head,
                         "n_over_d": p.shape[0] / d_head, "first_token": float(p[:, 0].mean()), **matrix_stats(p)})
    return rows


def _decoder_section(s: RealRankSettings, progress: bool) -> list[dict]:
    text = held_out_text()
    if s.decoder == "smollm2":
        from ..llama_gguf import load_smollm2

        model, _, encode = load_smollm2(max_len=max(s.ratios) * 64)
        ids, name = encode(text), "SmolLM2-135M"
    else:
        torch.manual_seed(0)
        cfg = ModelConfig(arch="decoder", vocab_size=256, max_len=64, d_model=32, n_heads=4, n_kv_heads=2, n_layers=2,
                          position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu", bias=False)
        model, name, ids = Transformer(cfg).eval(), "random decoder", list(text.encode())
    d = model.cfg.head_dim
    rows = []
    for ratio in tqdm(s.ratios, desc="decoder", disable=not progress, leave=False):
        rows += head_rows(attention_maps(model, torch.tensor([ids[:ratio * d]])), name, "causal", d)
    return rows


def _encoder_section(s: RealRankSettings, progress: bool) -> list[dict]:
    from ..hf import load_minilm

    minilm, tokenizer = load_minilm()
    ids = tokenizer.encode(held_out_text()).ids
    d = minilm.config.hidden_size // minilm.config.num_attention_heads
    rows = []
    for ratio in tqdm(s.ratios, desc="encoder", disable=not progress, leave=False):
        with torch.no_grad():
            maps = minilm(torch.tensor([ids[:ratio * d]]), output_attentions=True).attentions
        rows += head_rows([m[0] for m in maps], "all-MiniLM-L6-v2", "bidirectional", d)
    return rows


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Measure at ``scale``; with ``out``, store after each section and skip sections
    already stored. Defined in the chapter "The low-rank argument, tested"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch04_real_rank", scale, out)
    sections = {"decoder": lambda: _decoder_section(s, progress), "encoder": lambda: _encoder_section(s, progress)}
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings, else
    ``None``. Defined in the chapter "The low-rank argument, tested"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def low_rank_shares(results: dict) -> dict[tuple[str, float], float]:
    """``{(model, n/d): share of its heads numerically low-rank}`` on the book's yardstick.
    Defined in the chapter "The low-rank argument, tested"."""
    rows = results["decoder"] + results["encoder"]
    keys = sorted({(r["model"], r["n_over_d"]) for r in rows})
    return {key: sum(is_low_rank(r) for r in rows if (r["model"], r["n_over_d"]) == key)
            / sum(1 for r in rows if (r["model"], r["n_over_d"]) == key) for key in keys}


if __name__ == "__main__":
    experiment_main("experiments.ch04_real_rank", run, RESULTS_DIR)
