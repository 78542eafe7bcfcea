"""The experiments of the chapter "The low-rank argument, tested", at two scales.

Sections (each stored as soon as it is done, so an interrupted full run resumes):

- ``baseline``: the unigram byte model's loss on the validation text (the gate of C06);
- ``spectra``: rank, effective rank and conditioning of random attention matrices,
  bidirectional and causal, over head size and logit scale (claims C03, C04);
- ``fitting``: how well a single head of each size can fit random target attention
  matrices, with and without the causal mask (C04, C05);
- ``collapse``: rank collapse with depth for pure attention, with skips, with MLPs and
  for the full block, both masks (C07);
- ``heads``: small language models at fixed width and equal parameters, ``h`` heads of
  size ``d / h``, and at the most heads a fixed head size paid for by a narrower MLP (C06);
- ``trained``: the same rank statistics for the attention of trained models: our causal
  LM, our bidirectional masked LM, and the real all-MiniLM-L6-v2 encoder;
- ``collapse_trained``: rank collapse through the six trained layers of all-MiniLM-L6-v2,
  with its trained attention and MLPs recombined like the random variants (C07).

Claims C03-C07 are decided by :data:`RULES`, all on one yardstick: a matrix is
numerically low-rank when its float32 numerical rank is below :data:`LOW_RANK_FRACTION`
of its size.

Run the full scale with ``python -m whydecoder.experiments.ch04_lowrank --scale full``.
Explained in the chapter "The low-rank argument, tested".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..accounting import EQUAL_PARAMETERS_TOLERANCE, matched_mlp_width, parameter_count
from ..claims import Claim, Evidence, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..objectives import full_lm, masked_lm
from ..paths import results_dir
from ..rank import (
    COLLAPSE_VARIANTS,
    LOW_RANK_FRACTION,
    attention_maps,
    collapse_curve,
    fit_attention,
    is_low_rank,
    matrix_stats,
    numerical_rank,
    random_attention,
    random_stochastic,
    rank_one_residual,
)
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_text, corpus_tokens, random_chunks, unigram_baseline
from ..train import TrainConfig, evaluate, train
from ..verdicts import Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("lowrank")
#: The page that shows it (under ``chapters/``).
PAGE = "04_low_rank/low_rank"
SECTIONS = ("baseline", "spectra", "fitting", "collapse", "heads", "trained", "collapse_trained")
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
        if self.fixed_head <= self.lm_width // max(self.lm_heads):
            raise ValueError(f"fixed_head {self.fixed_head} must exceed the head size d/h = "
                             f"{self.lm_width // max(self.lm_heads)} at the most heads, or the two arms are the same")
        if self.attn_n > self.lm_seq:
            raise ValueError(f"attn_n {self.attn_n} exceeds the training length lm_seq {self.lm_seq}: "
                             "positions beyond it were never trained")



SETTINGS = {
    "smoke": LowRankSettings(n=64, head_sizes=(2, 8, 32), scales=(0.25, 1.0, 4.0), seeds=(0, 1), fit_n=8,
                             fit_heads=(1, 2, 4, 8), fit_steps=300, collapse_depth=8, lm_width=32, lm_heads=(1, 4),
                             fixed_head=16, lm_layers=1, lm_seq=32, lm_batch=8, lm_steps=20, attn_n=32),
    "full": LowRankSettings(n=256, head_sizes=(2, 4, 8, 16, 32, 64), scales=(0.25, 0.5, 1.0, 2.0, 4.0),
                            seeds=(0, 1, 2, 3, 4), fit_n=32, fit_heads=(1, 2, 4, 8, 16, 32), fit_steps=800,
                            collapse_depth=16, lm_width=128, lm_heads=(1, 8), fixed_head=32, lm_layers=2,
                            lm_seq=128, lm_batch=16, lm_steps=800, attn_n=128),
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


def _train_lm(s: LowRankSettings, cfg: ModelConfig, seed: int, objective: str = "full-lm") -> tuple[Transformer, float, list]:
    """Train on the corpus; return the model, its validation loss on fixed batches and its
    training curve (the mean loss of each of 50 equal stretches of steps)."""
    data, val = corpus_tokens("train"), corpus_tokens("val")
    g = torch.Generator().manual_seed(1234)

    def make(generator, ids=data):
        chunks = random_chunks(ids, s.lm_batch, s.lm_seq + 1, generator)
        return full_lm(chunks) if objective == "full-lm" else masked_lm(chunks, generator)

    torch.manual_seed(seed)
    model = Transformer(cfg)
    losses = train(model, make, TrainConfig(steps=s.lm_steps, lr=3e-3, warmup=max(1, s.lm_steps // 10), seed=seed,
                                            progress=False)).losses
    val_batches = [make(g, val) for _ in range(8)]
    stretch = max(1, len(losses) // 50)
    curve = [sum(losses[i:i + stretch]) / len(losses[i:i + stretch]) for i in range(0, len(losses), stretch)]
    return model, evaluate(model, val_batches), curve


def head_arms(s: LowRankSettings) -> dict[str, ModelConfig]:
    """The C06 arms, all at the parameters of the standard layer: ``h`` heads of size
    ``d/h`` for each ``h`` in ``s.lm_heads`` (names like ``"8 x 16"``), and at the most
    heads the fixed head size ``s.fixed_head`` (``"8 x 32, fixed"``), its larger attention
    paid for by a narrower MLP (:func:`whydecoder.accounting.matched_mlp_width`).

    Defined in the chapter "The low-rank argument, tested".
    """
    arms = {f"{h} x {s.lm_width // h}": _lm_config(s, "decoder", h, s.lm_width // h) for h in s.lm_heads}
    most = max(s.lm_heads)
    target = parameter_count(_lm_config(s, "decoder", most, s.lm_width // most), embeddings=False)
    arms[f"{most} x {s.fixed_head}, fixed"] = matched_mlp_width(_lm_config(s, "decoder", most, s.fixed_head), target)
    return arms


def heads(s: LowRankSettings, progress: bool = False) -> list[dict]:
    """Validation loss and training curve of small causal LMs at fixed width and equal
    parameters, one per arm of :func:`head_arms` and seed (Bhojanapalli et al. 2020).

    Defined in the chapter "The low-rank argument, tested".
    """
    rows = []
    cases = [(arm, cfg, seed) for arm, cfg in head_arms(s).items() for seed in s.seeds]
    for arm, cfg, seed in tqdm(cases, desc="heads", disable=not progress, leave=False):
        _, loss, curve = _train_lm(s, cfg, seed)
        rows.append({"arm": arm, "heads": cfg.n_heads, "d_head": cfg.head_dim, "d_ff": cfg.ff_dim,
                     "fixed": arm.endswith("fixed"), "seed": seed, "val_loss": loss, "curve": curve,
                     "parameters": parameter_count(cfg, embeddings=False)})
    return rows


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
        model, loss, _ = _train_lm(s, _lm_config(s, arch, 4, None), seed=0, objective=objective)
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


@torch.no_grad()
def trained_collapse(bert, hidden: torch.Tensor) -> dict[str, list[float]]:
    """Rank collapse through the trained layers of a ``transformers`` BERT encoder, its
    attention and MLP weights recombined like :data:`whydecoder.rank.COLLAPSE_VARIANTS`:
    attention alone (no residual, no LayerNorm), attention with its residual, attention
    followed by the trained MLP (no residual), and the full trained layer. ``hidden``
    ``(n, d)`` enters the first layer (the embeddings of a text). Returns the rank-one
    residual ratio before and after each layer, per variant.

    Defined in the chapter "The low-rank argument, tested".
    """
    heads = bert.config.num_attention_heads
    layers = bert.encoder.layer

    def attention(layer, x):
        sa = layer.attention.self
        n, d = x.shape
        q, k, v = (m(x).reshape(n, heads, d // heads).transpose(0, 1) for m in (sa.query, sa.key, sa.value))
        p = torch.softmax(q @ k.transpose(1, 2) / (d // heads) ** 0.5, dim=-1)
        return layer.attention.output.dense((p @ v).transpose(0, 1).reshape(n, d))

    def mlp(layer, x):
        return layer.output.dense(layer.intermediate(x))

    curves = {}
    for variant in COLLAPSE_VARIANTS:
        x = hidden.float()
        ratios = [rank_one_residual(x)]
        for layer in layers:
            if variant == "attention":
                x = attention(layer, x)
            elif variant == "attention+skip":
                x = x + attention(layer, x)
            elif variant == "attention+mlp":
                x = mlp(layer, attention(layer, x))
            else:
                out = layer(x[None])
                x = (out[0] if isinstance(out, tuple) else out)[0]  # transformers versions differ here
            ratios.append(rank_one_residual(x))
        curves[variant] = ratios
    return curves


def collapse_on_minilm(s: LowRankSettings) -> dict:
    """:func:`trained_collapse` for all-MiniLM-L6-v2 on ``s.attn_n`` tokens of held-out
    text. Defined in the chapter "The low-rank argument, tested"."""
    from ..hf import load_minilm

    minilm, tokenizer = load_minilm()
    text = corpus_text()[int(len(corpus_text()) * 0.9):]
    ids = torch.tensor([tokenizer.encode(text).ids[: s.attn_n]])
    with torch.no_grad():
        hidden = minilm.embeddings(input_ids=ids)[0]
    return {"model": "all-MiniLM-L6-v2", "tokens": ids.shape[1], "ratios": trained_collapse(minilm, hidden)}



def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload at ``path`` if it holds every section under the current settings
    and rules, else ``None`` (absent, or a run still in progress). Defined in the chapter
    "The low-rank argument, tested"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True,
        sections: tuple[str, ...] = SECTIONS) -> dict:
    """Run the chapter's sections at ``scale``; with ``out``, store after each section
    (atomically, with provenance) and skip the sections already stored.

    Defined in the chapter "The low-rank argument, tested".
    """
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch04_lowrank", scale, out)
    steps = {"baseline": lambda: unigram_baseline(corpus_tokens("train"), corpus_tokens("val")),
             "spectra": lambda: spectra(s, progress), "fitting": lambda: fitting(s, progress),
             "collapse": lambda: collapse(s), "heads": lambda: heads(s, progress),
             "trained": lambda: trained(s, progress), "collapse_trained": lambda: collapse_on_minilm(s)}
    unknown = [name for name in sections if name not in steps]
    if unknown:
        raise ValueError(f"unknown section {unknown[0]!r}; expected some of {tuple(steps)}")
    return run_sections({name: steps[name] for name in sections}, judged_settings(s, RULES), out, command)


def low_rank_share(rows: list[dict]) -> float:
    """The share of matrices (rows of :func:`matrix_stats`) that are numerically low-rank.
    Defined in the chapter "The low-rank argument, tested"."""
    if not rows:
        raise ValueError("no matrices to count")
    return sum(is_low_rank(r) for r in rows) / len(rows)


def _spectra_seeds(results: dict) -> int:
    return len({r["seed"] for r in results["spectra"]})


def _c03_decide(results: dict, p: dict) -> Verdict:
    """C03: random bidirectional attention matrices at every head size with
    ``n/d >= p["n_over_d"]`` (all logit scales and seeds): the share that is numerically
    low-rank, per head size. Supported when it is at least ``p["most"]`` at every such head
    size; refuted when it is at most ``1 - p["most"]`` at every one; nuanced when it depends
    on the head size. The exact rank is n (the softmax exponentiates entrywise): shown, not
    decided on."""
    rows = [r for r in results["spectra"] if r["mask"] == "bidirectional" and r["n"] / r["d"] >= p["n_over_d"]]
    if not rows:
        return Verdict("inconclusive", f"no head size has n/d >= {p['n_over_d']}")
    shares = {d: low_rank_share([r for r in rows if r["d"] == d]) for d in sorted({r["d"] for r in rows})}
    numbers = {"share_by_head_size": shares, "share": low_rank_share(rows)}
    if all(v >= p["most"] for v in shares.values()):
        return Verdict("supported", f"numerically low-rank at every head size with n/d >= {p['n_over_d']}", numbers)
    if all(v <= 1 - p["most"] for v in shares.values()):
        return Verdict("refuted", f"numerically full-rank at every head size with n/d >= {p['n_over_d']}", numbers)
    low = [d for d, v in shares.items() if v >= p["most"]]
    return Verdict("nuanced", f"low-rank at head sizes {low} but not at every head size with n/d >= "
                   f"{p['n_over_d']}: it depends on the logit scale and on d, not on n/d alone", numbers)


def _fit_seeds(results: dict) -> int:
    return len({r["seed"] for r in results["fitting"]})


def _kl(results: dict, mask: str, d_head: int) -> dict[int, float]:
    return {r["seed"]: r["kl"] for r in results["fitting"] if r["mask"] == mask and r["d_head"] == d_head}


def _bottleneck(results: dict, mask: str) -> tuple:
    """Paired interval of KL(smallest head) - KL(largest head) for random ``mask`` targets."""
    sizes = sorted({r["d_head"] for r in results["fitting"]})
    return t_interval(paired_differences(_kl(results, mask, sizes[0]), _kl(results, mask, sizes[-1]))), sizes


def _c04_decide(results: dict, p: dict) -> Verdict:
    """C04, in its two halves. *Full rank*: exact (positive diagonal in float64, checked;
    the determinant argument), and numerically on C03's yardstick: it holds when at most
    ``p["few"]`` of the random causal matrices are numerically low-rank, fails when at least
    ``1 - p["few"]`` are, and is mixed between. *Hence more expressive*: a causal head of
    the smallest size fits random causal targets (the paired interval of its KL minus the
    largest head's lies below ``p["fit_kl"]``); it fails when the interval lies above.
    Supported when both hold, refuted when both fail (or full rank is mixed and
    expressiveness fails), inconclusive when the fit interval straddles, nuanced otherwise."""
    causal = [r for r in results["spectra"] if r["mask"] == "causal"]
    exact = all(r["diagonal_positive_float64"] for r in causal)
    share = low_rank_share(causal)
    numeric = "holds" if share <= p["few"] else "fails" if share >= 1 - p["few"] else "mixed"
    gap, sizes = _bottleneck(results, "causal")
    expressive = "holds" if gap.high < p["fit_kl"] else "fails" if gap.low > p["fit_kl"] else "unclear"
    numbers = {"exact_full_rank": exact, "low_rank_share": share, "numerically_full_rank": numeric,
               "kl_gap": gap.__dict__, "head_sizes": [sizes[0], sizes[-1]], "expressive": expressive}
    if not exact:
        return Verdict("refuted", "a causal matrix had a zero diagonal entry: not even exactly full rank", numbers)
    if expressive == "unclear":
        return Verdict("inconclusive", "the fitting interval straddles its threshold", numbers)
    if numeric == "holds" and expressive == "holds":
        return Verdict("supported", "causal attention stayed full rank in float32, and small heads fit any target",
                       numbers)
    if numeric != "holds" and expressive == "fails":
        return Verdict("refuted", f"{share:.0%} of causal matrices are numerically low-rank, and full-rank causal heads "
                       "still cannot fit random targets: 'hence more expressive' does not follow", numbers)
    return Verdict("nuanced", f"full rank in float32: {numeric}; expressive: {expressive}", numbers)


def _c05_decide(results: dict, p: dict) -> Verdict:
    """C05: causal heads are full rank in exact arithmetic; do they still face a head-size
    bottleneck? The paired interval (by seed) of the mean KL to random causal targets of
    the smallest head minus the largest: above ``p["fit_kl"]``: supported (full rank is not
    expressive enough); below: refuted; straddling: inconclusive."""
    gap, sizes = _bottleneck(results, "causal")
    numbers = {"kl_gap": gap.__dict__, "head_sizes": [sizes[0], sizes[-1]]}
    if gap.low > p["fit_kl"]:
        return Verdict("supported", f"full-rank causal heads of size {sizes[0]} cannot fit random targets that heads "
                       f"of size {sizes[-1]} fit", numbers)
    if gap.high < p["fit_kl"]:
        return Verdict("refuted", "small causal heads fit random targets as well as large ones", numbers)
    return Verdict("inconclusive", "the fitting interval straddles its threshold", numbers)


def _heads_seeds(results: dict) -> int:
    return min(sum(r["arm"] == arm for r in results["heads"]) for arm in {r["arm"] for r in results["heads"]})


def _heads_loss(results: dict, arm: str) -> dict[int, float]:
    return {r["seed"]: r["val_loss"] for r in results["heads"] if r["arm"] == arm}


def flat_at_end(curve: list[float]) -> float:
    """How much a training curve still falls at its end: the relative drop of its mean over
    the last tenth against the tenth before. Defined in the chapter "The low-rank argument,
    tested"."""
    tenth = max(1, len(curve) // 10)
    last, before = curve[-tenth:], curve[-2 * tenth:-tenth]
    if not before:
        raise ValueError(f"a curve of {len(curve)} points is too short to tell whether it flattened")
    return (sum(before) / len(before) - sum(last) / len(last)) / (sum(before) / len(before))


def _c06_decide(results: dict, p: dict) -> Verdict:
    """C06, at equal parameters (every arm within ``p["equal_parameters"]`` of the first).

    Gates: every model beats the unigram baseline by ``p["gate_nats"]``, and every training
    curve has flattened (its last tenth at most ``p["still_falling"]`` below the tenth
    before); else inconclusive. Paired by seed, against a margin of ``p["margin"]`` times
    the loss of the one-head arm:

    - *small heads cost*: the standard arm with the most heads minus the one with the
      fewest (same parameters, heads of size d/h) is higher beyond the margin;
    - *a fixed head size helps*: at the most heads, the standard arm minus the fixed arm
      is higher beyond the margin.

    Supported when both; refuted when neither (each equivalent or the other way);
    inconclusive when either is unclear; nuanced otherwise.
    """
    rows = results["heads"]
    counts = {r["parameters"] for r in rows}
    apart = (max(counts) - min(counts)) / min(counts)
    if apart > p["equal_parameters"]:
        return Verdict("inconclusive", f"the arms are not at equal parameters ({apart:.1%} apart)")
    unigram = results["baseline"]["nats_per_byte"]
    falling = max(flat_at_end(r["curve"]) for r in rows)
    worst = max(r["val_loss"] for r in rows)
    numbers = {"parameters_apart": apart, "still_falling": falling, "worst_loss": worst, "unigram": unigram}
    if not learned(worst, unigram, lower_is_better=True, by=p["gate_nats"]):
        return Verdict("inconclusive", f"a model did not beat the unigram baseline ({unigram:.2f} nats/byte)", numbers)
    if falling > p["still_falling"]:
        return Verdict("inconclusive", f"a training curve was still falling at the end ({falling:.1%} over its last "
                       "tenth): not trained until flat", numbers)
    standard = sorted({r["heads"] for r in rows if not r["fixed"]})
    fewest, most = (next(r["arm"] for r in rows if r["heads"] == h and not r["fixed"]) for h in (standard[0], standard[-1]))
    fixed = next(r["arm"] for r in rows if r["fixed"])
    margin = p["margin"] * sum(_heads_loss(results, fewest).values()) / len(_heads_loss(results, fewest))
    cost = t_interval(paired_differences(_heads_loss(results, most), _heads_loss(results, fewest)))
    help_ = t_interval(paired_differences(_heads_loss(results, most), _heads_loss(results, fixed)))
    costs, helps = compare(cost, margin), compare(help_, margin)
    numbers |= {"cost": cost.__dict__, "help": help_.__dict__, "margin": margin, "cost_reading": costs,
                "help_reading": helps, "arms": [fewest, most, fixed]}
    if "unclear" in (costs, helps):
        return Verdict("inconclusive", "an interval straddles its margin: more seeds are needed to tell", numbers)
    if costs == "higher" and helps == "higher":
        return Verdict("supported", f"at equal parameters, {most} is worse than {fewest}, and the fixed head size "
                       "recovers the loss", numbers)
    if costs != "higher" and helps != "higher":
        return Verdict("refuted", f"at equal parameters, neither do small heads cost ({costs}) nor does a fixed head "
                       f"size help ({helps})", numbers)
    return Verdict("nuanced", f"small heads cost: {costs}; a fixed head size helps: {helps}", numbers)


def _collapse_seeds(results: dict) -> int:
    return len({r["seed"] for r in results["collapse"]})


def final_residuals(results: dict) -> dict[tuple[str, str], float]:
    """``{(variant, mask): median over seeds of the last layer's rank-one residual}`` of
    the random collapse curves. Defined in the chapter "The low-rank argument, tested"."""
    import statistics

    keys = {(r["variant"], r["mask"]) for r in results["collapse"]}
    return {k: statistics.median(r["ratios"][-1] for r in results["collapse"] if (r["variant"], r["mask"]) == k)
            for k in sorted(keys)}


def _c07_decide(results: dict, p: dict) -> Verdict:
    """C07: stacked attention loses rank with depth unless residuals or MLPs intervene.
    Read at the last layer, as the median over seeds of the random stacks (both masks) and
    on the trained layers of all-MiniLM-L6-v2: a stack *collapses* below ``p["collapsed"]``
    and *holds* above ``p["kept"]`` of its rank-one residual.

    Refuted when pure attention does not collapse; supported when it collapses and both
    interventions (attention with skips, attention with MLPs) hold everywhere; nuanced
    when one of them does not hold somewhere (naming it)."""
    final = final_residuals(results)
    trained = {v: r[-1] for v, r in results["collapse_trained"]["ratios"].items()}
    numbers = {"random": {f"{v} / {m}": x for (v, m), x in final.items()}, "trained": trained}
    pure = [x for (v, _), x in final.items() if v == "attention"] + [trained["attention"]]
    if max(pure) >= p["collapsed"]:
        return Verdict("refuted", "pure attention did not collapse with depth", numbers)
    failing = [f"{v} ({where})" for v in ("attention+skip", "attention+mlp")
               for where, x in [(m, final[(v, m)]) for m in ("bidirectional", "causal")] + [("trained", trained[v])]
               if x <= p["kept"]]
    numbers["not_holding"] = failing
    if not failing:
        return Verdict("supported", "pure attention collapses under both masks; skips and MLPs each stop it", numbers)
    return Verdict("nuanced", f"pure attention collapses, but {', '.join(failing)} did not hold its rank", numbers)


RULES = {
    "C03": Rule("C03", "random bidirectional attention with n/d >= 8 is numerically low-rank (float32 rank below "
                "0.9 n), at every such head size", {"min_seeds": 5, "n_over_d": 8, "most": 0.9},
                _c03_decide, seeds=_spectra_seeds),
    "C04": Rule("C04", "causal attention is full rank in float32 on the same yardstick, and a small causal head can "
                "therefore fit any causal attention pattern", {"min_seeds": 5, "few": 0.1, "fit_kl": 0.02},
                _c04_decide, seeds=_fit_seeds),
    "C05": Rule("C05", "full-rank causal heads still face a head-size bottleneck when fitting random causal targets",
                {"min_seeds": 5, "fit_kl": 0.02}, _c05_decide, seeds=_fit_seeds),
    "C06": Rule("C06", "at equal parameters, trained until flat, many small heads lose to few large ones, and a fixed "
                "head size recovers the loss", {"min_seeds": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE,
                                                 "margin": 0.01, "gate_nats": 0.5, "still_falling": 0.01},
                _c06_decide, seeds=_heads_seeds),
    "C07": Rule("C07", "pure attention collapses to rank one with depth under both masks, and skip connections or "
                "MLPs each stop it (random and trained layers)", {"min_seeds": 5, "collapsed": 1e-2, "kept": 0.1},
                _c07_decide, seeds=_collapse_seeds),
}


def causal_fit(results: dict) -> dict:
    """The fits of random causal targets that C04 and C05 cite: the smallest and largest
    head sizes fitted, the smallest causal head's mean KL over seeds, and the paired
    interval (by seed) of its KL minus the largest head's. Defined in the chapter "The
    low-rank argument, tested"."""
    gap, sizes = _bottleneck(results, "causal")
    kls = list(_kl(results, "causal", sizes[0]).values())
    return {"smallest": sizes[0], "largest": sizes[-1], "kl_smallest": sum(kls) / len(kls), "gap": gap}


def c03_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C03's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The low-rank argument, tested"."""
    settings = results["settings"]
    by_d = ", ".join(f"d = {d}: {v:.0%}" for d, v in RULES["C03"].readings(results)["share_by_head_size"].items())
    text = (f"Random bidirectional attention (n = {settings['n']}) numerically low-rank (float32 rank < "
            f"{LOW_RANK_FRACTION:g} n) by head size: {by_d}; the exact rank is n (softmax exponentiates entrywise).")
    scope = (f"{len(settings['seeds'])} seeds of Gaussian Q, K; head sizes {settings['head_sizes']}, logit scales "
             f"{settings['scales']}.")
    return Evidence(text, scope, joiner=" Scope: ")


def c04_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C04's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The low-rank argument, tested"."""
    settings, fit = results["settings"], causal_fit(results)
    n, fit_n, gap = settings["n"], settings["fit_n"], fit["gap"]
    causal = [r for r in results["spectra"] if r["mask"] == "causal"]
    deficient = sum(r["numerical_rank"] < n for r in causal) / len(causal)
    text = (f"Exact rank n (positive diagonal in float64), but {100 * deficient:.0f}% of random causal "
            f"matrices have float32 rank < n and {100 * low_rank_share(causal):.0f}% "
            f"< {LOW_RANK_FRACTION:g} n; causal heads of size {int(fit['smallest'])} leave KL {fit['kl_smallest']:.3f} "
            f"on random {fit_n}x{fit_n} targets (minus size {int(fit['largest'])}: {gap.mean:.3f} "
            f"[{gap.low:.3f}, {gap.high:.3f}]); rank(PV) <= d_v whatever rank P has.")
    scope = (f"the same matrices; fits of {fit_n}x{fit_n} targets by heads {settings['fit_heads']}, "
             f"{settings['fit_steps']} Adam steps, {len(settings['seeds'])} seeds.")
    return Evidence(text, scope, joiner=" Scope: ")


def c05_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C05's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The low-rank argument, tested"."""
    settings, fit = results["settings"], causal_fit(results)
    fit_n, gap = settings["fit_n"], fit["gap"]
    text = (f"Full-rank causal heads of size {int(fit['smallest'])} minus size {int(fit['largest'])}: KL "
            f"{gap.mean:.3f} [{gap.low:.3f}, {gap.high:.3f}] on random {fit_n}x{fit_n} targets.")
    scope = f"fits of {fit_n}x{fit_n} causal targets, {len(settings['seeds'])} seeds."
    return Evidence(text, scope, joiner=" Scope: ")


def head_comparison(results: dict) -> dict:
    """The C06 arms and their paired comparisons, shown whatever the rule's gates say:
    ``fewest``, ``most`` (the standard arms with the fewest and the most heads), ``fixed``
    (the fixed head size), ``cost`` (most minus fewest) and ``help`` (most minus fixed),
    95% t-intervals of validation loss by seed. Defined in the chapter "The low-rank
    argument, tested"."""
    rows = results["heads"]
    standard = sorted({r["heads"] for r in rows if not r["fixed"]})
    fewest, most = (next(r["arm"] for r in rows if r["heads"] == h and not r["fixed"]) for h in (standard[0], standard[-1]))
    fixed = next(r["arm"] for r in rows if r["fixed"])
    return {"fewest": fewest, "most": most, "fixed": fixed,
            "cost": t_interval(paired_differences(_heads_loss(results, most), _heads_loss(results, fewest))),
            "help": t_interval(paired_differences(_heads_loss(results, most), _heads_loss(results, fixed)))}


def c06_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C06's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The low-rank argument, tested"."""
    settings, n06, arms = results["settings"], RULES["C06"].readings(results), head_comparison(results)
    most, fewest, fixed = arms["most"], arms["fewest"], arms["fixed"]
    text = (f"At equal parameters ({n06['parameters_apart']:.2%} apart), {most} minus {fewest}: "
            f"{arms['cost']} nats/byte; {most} minus {fixed}: {arms['help']}; the most a training curve fell over its "
            f"last tenth: {n06['still_falling']:.1%} (the rule allows {RULES['C06'].parameters['still_falling']:.0%}).")
    scope = (f"causal LMs of width {settings['lm_width']}, {settings['lm_layers']} layers, {settings['lm_steps']} steps "
             f"of {settings['lm_batch']} x {settings['lm_seq']} bytes, {len(settings['seeds'])} seeds.")
    return Evidence(text, scope, joiner=" Scope: ")


def c07_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C07's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "The low-rank argument, tested"."""
    settings, final = results["settings"], final_residuals(results)
    trained = {v: r[-1] for v, r in results["collapse_trained"]["ratios"].items()}
    spread = {}
    for variant in sorted({v for v, _ in final}):
        values = [x for (v, _), x in final.items() if v == variant] + [trained[variant]]
        spread[variant] = (min(values), max(values))
    text = ("Last-layer rank-one residual (median over seeds; trained MiniLM): "
            + "; ".join(f"{v} from {low:.1e} to {high:.1e}" for v, (low, high) in spread.items()) + ".")
    scope = (f"random stacks of depth {settings['collapse_depth']} (n = 32, d = 64), {len(settings['seeds'])} seeds; "
             f"the 6 trained layers of all-MiniLM-L6-v2 on {results['collapse_trained']['tokens']} tokens.")
    return Evidence(text, scope, joiner=" Scope: ")


_HERE = "04_low_rank"
CLAIMS = (
    Claim("C03", "Bidirectional attention matrices are low-rank when n >> d", _HERE,
          stored_results(sys.modules[__name__]), RULES["C03"], c03_evidence),
    Claim("C04", "Causal attention matrices are always full rank (triangular, positive diagonal), hence more "
          "expressive", _HERE, stored_results(sys.modules[__name__]), RULES["C04"], c04_evidence),
    Claim("C05", "Full rank is not the same as expressive enough; theory alone settles nothing", _HERE,
          stored_results(sys.modules[__name__]), RULES["C05"], c05_evidence),
    Claim("C06", "Multi-head attention with small head size hits a low-rank bottleneck; a fixed head size helps",
          _HERE, stored_results(sys.modules[__name__]), RULES["C06"], c06_evidence),
    Claim("C07", "Stacked attention loses rank with depth unless residuals or MLPs intervene", _HERE,
          stored_results(sys.modules[__name__]), RULES["C07"], c07_evidence),
)


if __name__ == "__main__":
    experiment_main("experiments.ch04_lowrank", run, RESULTS_DIR)
