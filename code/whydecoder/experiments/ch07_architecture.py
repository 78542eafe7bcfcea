"""The architecture route (C20): a mixture of experts and a recurrent decoder against the
dense Transformer decoder, at equal budgets.

Four decoders of the same width and depth, trained on the same bytes for the same steps:

- ``dense``: the book's decoder (attention, one MLP of width 4d);
- ``moe_active``: 4 experts of width 2d, 2 per token: the same *active* parameters as
  ``dense`` (each token runs through as many weights), twice the MLP's total;
- ``moe_total``: 4 experts of width d, 2 per token: the same *total* parameters as
  ``dense``, half the MLP's active ones;
- ``retention``: RetNet-style retention instead of attention (the same four projections,
  so the same parameters), a fixed-size state instead of a growing cache.

Every training row of text carries one planted fact: a marker token (one of 16 that text
never holds) at a random position, and later the query ``<sep>``, after which the row
repeats the marker. Naming the marker after the query needs the fact, at a known
distance back; its cross-entropy is added to the next-byte loss with weight
``recall_weight`` (one target in a row of text would otherwise hardly train). Measured:
held-out loss on plain text (nats per byte), recall of the marker against the distance,
and the cost of one more token (time and cache bytes) against the context length. Claim
C20 is decided by :data:`RULES`.

Explained in the chapter "The routes after the plain decoder".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..accounting import EQUAL_PARAMETERS_TOLERANCE, parameter_count
from ..claims import Claim, Evidence, counted, counted_of, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..experts import aux_loss
from ..model import Transformer, sequence_loss
from ..objectives import Batch, full_lm
from ..paths import results_dir
from ..results import judged_settings, per_seed_sections, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..serving import random_cache
from ..text import N_SENTINELS, ByteTokenizer, corpus_tokens, random_chunks, unigram_baseline, with_bos
from ..timing import median_seconds
from ..train import RunSizes, evaluate, train
from ..verdicts import Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("architecture_route")
#: The page that shows it (under ``chapters/``).
PAGE = "07_four_routes/four_routes"
VARIANTS = ("dense", "moe_active", "moe_total", "retention")
LABELS = {"dense": "dense decoder", "moe_active": "experts, equal active", "moe_total": "experts, equal total",
          "retention": "retention (recurrent)"}
SECTIONS = ("baseline",) + VARIANTS + ("decode",)
TOKENIZER = ByteTokenizer()
MARKERS = tuple(TOKENIZER.sentinel(k) for k in range(N_SENTINELS))  # the facts: tokens text never holds
CHANCE = 1 / len(MARKERS)


@dataclass(frozen=True)
class ArchitectureSettings(RunSizes):
    """Sizes of one scale of the architecture-route experiment. Defined in the chapter
    "The routes after the plain decoder"."""

    length: int
    lr: float
    seeds: tuple[int, ...]
    n_experts: int
    top_k: int
    aux_weight: float
    recall_weight: float
    min_gap: int
    eval_gaps: tuple[int, ...]
    eval_rows: int
    val_batches: int
    time_d_model: int
    time_contexts: tuple[int, ...]
    time_repeats: int


SETTINGS = {
    "smoke": ArchitectureSettings(d_model=32, n_layers=2, n_heads=2, steps=30, batch=8, length=64, lr=3e-3,
                                  seeds=(0, 1), n_experts=4, top_k=2, aux_weight=0.01, recall_weight=1.0, min_gap=2, eval_gaps=(8, 48),
                                  eval_rows=16, val_batches=2, time_d_model=32, time_contexts=(64, 256),
                                  time_repeats=3),
    "full": ArchitectureSettings(d_model=64, n_layers=4, n_heads=4, steps=1000, batch=16, length=256, lr=3e-3,
                                 seeds=(0, 1, 2, 3, 4), n_experts=4, top_k=2, aux_weight=0.01, recall_weight=1.0,
                                 min_gap=2, eval_gaps=(16, 64, 128, 224), eval_rows=256, val_batches=8, time_d_model=256,
                                 time_contexts=(512, 2048, 8192, 32768), time_repeats=20),
}


def variant_config(variant: str, s: ArchitectureSettings, d_model: int | None = None,
                   max_len: int | None = None) -> ModelConfig:
    """The model of ``variant`` at the settings' sizes (rotary positions for all four).

    Defined in the chapter "The routes after the plain decoder"."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    d = d_model or s.d_model
    base = ModelConfig(arch="decoder", vocab_size=TOKENIZER.vocab_size, d_model=d, n_heads=s.n_heads,
                       n_layers=s.n_layers, position="rope", max_len=max_len or s.length)
    width = {"dense": None, "moe_active": 4 * d // s.top_k, "moe_total": 4 * d // s.n_experts, "retention": None}
    if variant.startswith("moe"):
        return base.replace(n_experts=s.n_experts, expert_top_k=s.top_k, d_ff=width[variant])
    return base.replace(mixer="retention") if variant == "retention" else base


def budgets(s: ArchitectureSettings) -> dict[str, dict]:
    """Total and active non-embedding parameters of each variant, by formula.

    Defined in the chapter "The routes after the plain decoder"."""
    return {v: {"total": parameter_count(variant_config(v, s), embeddings=False),
                "active": parameter_count(variant_config(v, s), embeddings=False, active=True)} for v in VARIANTS}


def plant_facts(rows: torch.Tensor, gaps: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` ``(B, T)`` (``<bos>`` first) with one fact each: a random marker of
    :data:`MARKERS` at a random position ``p``, the query ``<sep>`` at ``p + gap`` (``gaps``
    one per row) and the marker again after it. Returns the new rows and each row's query
    position. Defined in the chapter "The routes after the plain decoder"."""
    b, t = rows.shape
    if gaps.shape != (b,) or int(gaps.min()) < 1 or int(gaps.max()) > t - 3:
        raise ValueError(f"gaps must be one per row in [1, {t - 3}] for rows of length {t}, got {gaps.tolist()}")
    rows = rows.clone()
    markers = torch.tensor(MARKERS)[torch.randint(0, len(MARKERS), (b,), generator=generator)]
    room = t - 2 - gaps  # the marker's position p in [1, room]: the query and its answer fit after it
    first = 1 + (torch.rand(b, generator=generator) * room).long()
    query = first + gaps
    index = torch.arange(b)
    rows[index, first], rows[index, query], rows[index, query + 1] = markers, TOKENIZER.sep, markers
    return rows, query


def training_rows(train_ids: torch.Tensor, s: ArchitectureSettings, generator: torch.Generator) -> torch.Tensor:
    """A batch of training rows: text with one planted fact each, at a distance drawn
    uniformly from ``min_gap`` to the longest that fits. Defined in the chapter "The routes
    after the plain decoder"."""
    rows = with_bos(random_chunks(train_ids, s.batch, s.length, generator))
    gaps = torch.randint(s.min_gap, s.length - 1, (s.batch,), generator=generator)  # rows hold length + 1 tokens
    return plant_facts(rows, gaps, generator)[0]


def recall_sets(val_ids: torch.Tensor, s: ArchitectureSettings, seed: int = 777) -> dict[int, tuple]:
    """Fixed held-out rows per distance: ``{gap: (rows, query_positions)}``. Defined in
    the chapter "The routes after the plain decoder"."""
    g = torch.Generator().manual_seed(seed)
    return {gap: plant_facts(with_bos(random_chunks(val_ids, s.eval_rows, s.length, g)),
                             torch.full((s.eval_rows,), gap), g) for gap in s.eval_gaps}


@torch.no_grad()
def recall_accuracy(model: Transformer, rows: torch.Tensor, query: torch.Tensor) -> float:
    """Share of rows whose marker the model names after the query (argmax of the logits at
    the query position). Defined in the chapter "The routes after the plain decoder"."""
    if not isinstance(rows, torch.Tensor) or rows.dim() != 2 or not len(rows):
        raise ValueError(f"rows must be a non-empty (batch, length) tensor, got shape {tuple(getattr(rows, 'shape', ()))}")
    if not isinstance(query, torch.Tensor) or query.shape != (len(rows),) or query.is_floating_point():
        raise ValueError(f"query must be one integer position per row, shape ({len(rows)},), got "
                         f"{tuple(getattr(query, 'shape', ()))} {getattr(query, 'dtype', type(query).__name__)}")
    if bool((query < 0).any()) or bool((query >= rows.shape[1] - 1).any()):
        raise ValueError(f"query positions must lie in [0, {rows.shape[1] - 1}) (a marker follows each), got "
                         f"{query.min().item()} to {query.max().item()}")
    model.eval()
    logits = model(rows[:, :-1])
    index = torch.arange(len(rows))
    return float((logits[index, query].argmax(-1) == rows[index, query + 1]).double().mean())


def training_loss(recall_weight: float, aux_weight: float):
    """The training loss: next-byte cross-entropy over the row, plus ``recall_weight``
    times the cross-entropy of the marker after each query, plus ``aux_weight`` times the
    experts' load-balancing loss (zero without experts). Defined in the chapter "The
    routes after the plain decoder"."""
    def loss(model: Transformer, batch: Batch) -> torch.Tensor:
        logits = model(batch.tokens)
        at = batch.tokens == TOKENIZER.sep
        recall = torch.nn.functional.cross_entropy(logits[at].float(), batch.targets[at])
        return sequence_loss(logits, batch.targets) + recall_weight * recall + aux_weight * aux_loss(model)

    return loss


def _one_run(variant: str, seed: int, s: ArchitectureSettings, corpus: dict, progress: bool) -> dict:
    cfg = variant_config(variant, s)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: full_lm(training_rows(corpus["train"], s, g)), s.train_config(seed, progress),
                   loss_fn=training_loss(s.recall_weight, s.aux_weight))
    g = torch.Generator().manual_seed(1234)
    val = [full_lm(with_bos(random_chunks(corpus["val"], s.batch, s.length, g))) for _ in range(s.val_batches)]
    load = None
    if cfg.n_experts:  # the experts' share of the routed slots on held-out text, per layer
        model(val[0].tokens)
        load = [[round(float(x), 4) for x in block.mlp.load] for block in model.decoder.blocks]
    return {"variant": variant, "seed": seed, "parameters": parameter_count(cfg, embeddings=False),
            "active_parameters": parameter_count(cfg, embeddings=False, active=True),
            "train_losses": result.losses, "tokens_per_s": result.tokens_per_s,
            "val_loss": evaluate(model, val),
            "recall": {str(gap): recall_accuracy(model, *rows) for gap, rows in corpus["recall"].items()},
            "expert_load": load}


@torch.no_grad()
def decode_costs(s: ArchitectureSettings, seed: int = 0) -> list[dict]:
    """Per variant and context length ``T``: the median seconds of one more token after a
    cache of ``T`` positions (random keys and values, or a random state: the content does
    not change the cost), and the bytes the cache holds. At ``time_d_model`` width, one
    thread. Defined in the chapter "The routes after the plain decoder"."""
    rows = []
    for variant in VARIANTS:
        torch.manual_seed(seed)
        model = Transformer(variant_config(variant, s, s.time_d_model, max(s.time_contexts) + 2)).eval()
        token = torch.zeros(1, 1, dtype=torch.long)
        for context in s.time_contexts:
            cache = random_cache(model, 1, context, seed)

            def step(cache=cache, model=model, token=token):
                model(token, cache=cache.fork())

            rows.append({"variant": variant, "context": context, "cache_bytes": cache.nbytes(),
                         "seconds": median_seconds(step, s.time_repeats, warmup=2)})
    return rows


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train every variant for every seed at ``scale``, measure recall and decode costs;
    with ``out``, store section by section. Defined in the chapter "The routes after the
    plain decoder"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    corpus = {split: corpus_tokens(split) for split in ("train", "val")}
    corpus["recall"] = recall_sets(corpus["val"], s)
    sections = {"baseline": lambda: unigram_baseline(corpus["train"], corpus["val"])}
    sections |= per_seed_sections(VARIANTS, s.seeds, lambda v, seed: _one_run(v, seed, s, corpus, progress))
    sections["decode"] = lambda: decode_costs(s)
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out,
                        experiment_command("experiments.ch07_architecture", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete under the current settings and rules, else ``None``.
    Defined in the chapter "The routes after the plain decoder"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def by_seed(results: dict, variant: str, measure) -> dict[int, float]:
    """``{seed: measure(run)}`` for one variant. Defined in the chapter "The routes after
    the plain decoder"."""
    return {r["seed"]: measure(r) for r in results[variant]}


def cost_growth(results: dict) -> dict[str, dict]:
    """Per variant: seconds and cache bytes at the shortest and the longest context timed,
    and their ratios. Defined in the chapter "The routes after the plain decoder"."""
    out = {}
    for variant in VARIANTS:
        rows = sorted((r for r in results["decode"] if r["variant"] == variant), key=lambda r: r["context"])
        first, last = rows[0], rows[-1]
        out[variant] = {"short": first["context"], "long": last["context"],
                        "time_ratio": last["seconds"] / first["seconds"],
                        "bytes_ratio": last["cache_bytes"] / first["cache_bytes"],
                        "seconds_long": last["seconds"], "bytes_long": last["cache_bytes"]}
    return out


def _c20_seeds(results: dict) -> int:
    return min(len(results[v]) for v in VARIANTS)


def _c20_decide(results: dict, p: dict) -> Verdict:
    """C20: does the architecture route buy capacity (experts) or long context (a
    recurrent state) without attention's growing cost?

    Equal budgets first (else inconclusive): ``moe_active`` within ``p["equal_parameters"]``
    of the dense decoder's active parameters, ``moe_total`` and ``retention`` of its total.
    Gate: the dense decoder's held-out loss beats the unigram baseline by ``p["loss_gate"]``
    nats per byte, else inconclusive. Recall is judged only if the dense decoder recalls
    the nearest facts above chance by ``p["recall_gate"]``.

    - *Capacity*: the paired difference of held-out loss, experts at equal active
      parameters minus dense, against ``p["loss_margin"]``: "lower" means capacity bought.
    - *Long context*: retention's time per token grows by at most ``p["flat_ratio"]`` from
      the shortest to the longest context timed, where the dense decoder's grows by at least
      ``p["growth_ratio"]`` (else the cost was not measured to grow, and this part is
      unclear); and it is bought without loss only if retention is not worse than dense in
      held-out loss (margin ``p["loss_margin"]``) nor in recall at the farthest distance
      (margin ``p["recall_margin"]``).

    Supported when both parts hold; refuted when neither does (experts not better, and
    retention not flat or worse in loss or far recall); inconclusive when both are unclear;
    nuanced otherwise, the reason naming each part.
    """
    size = {v: {"total": results[v][0]["parameters"], "active": results[v][0]["active_parameters"]} for v in VARIANTS}
    dense = size["dense"]["total"]
    apart = {"moe_active": abs(size["moe_active"]["active"] - dense) / dense,
             "moe_total": abs(size["moe_total"]["total"] - dense) / dense,
             "retention": abs(size["retention"]["total"] - dense) / dense}
    numbers = {"parameters": size, "apart": apart}
    if max(apart.values()) > p["equal_parameters"]:
        return Verdict("inconclusive", f"the variants are not at equal budgets ({apart})", numbers)
    loss = {v: by_seed(results, v, lambda r: r["val_loss"]) for v in VARIANTS}
    mean_loss = {v: sum(x.values()) / len(x) for v, x in loss.items()}
    baseline = results["baseline"]["nats_per_byte"]
    numbers |= {"mean_loss": mean_loss, "baseline": baseline}
    if not learned(mean_loss["dense"], baseline, lower_is_better=True, by=p["loss_gate"]):
        return Verdict("inconclusive", f"the dense decoder's loss {mean_loss['dense']:.3f} does not beat the unigram "
                       f"baseline {baseline:.3f} by {p['loss_gate']}: nothing learned to compare", numbers)
    moe = t_interval(paired_differences(loss["moe_active"], loss["dense"]))
    ret_loss = t_interval(paired_differences(loss["retention"], loss["dense"]))
    capacity = compare(moe, p["loss_margin"])
    numbers |= {"experts_minus_dense": moe.__dict__, "capacity": capacity, "retention_minus_dense": ret_loss.__dict__,
                "experts_total_minus_dense": t_interval(paired_differences(loss["moe_total"], loss["dense"])).__dict__}
    gaps = sorted(int(g) for g in results["dense"][0]["recall"])
    near, far = str(gaps[0]), str(gaps[-1])
    recall = {v: by_seed(results, v, lambda r, g=far: r["recall"][g]) for v in VARIANTS}
    dense_near = sum(r["recall"][near] for r in results["dense"]) / len(results["dense"])
    recall_judged = learned(dense_near, CHANCE, lower_is_better=False, by=p["recall_gate"])
    far_diff = t_interval(paired_differences(recall["retention"], recall["dense"]))
    growth = cost_growth(results)
    retention_near = sum(r["recall"][near] for r in results["retention"]) / len(results["retention"])
    numbers |= {"dense_recall_near": dense_near, "retention_recall_near": retention_near,
                "recall_judged": recall_judged, "far_gap": int(far),
                "retention_minus_dense_far_recall": far_diff.__dict__, "growth": growth}
    dense_grows = growth["dense"]["time_ratio"] >= p["growth_ratio"]
    flat = growth["retention"]["time_ratio"] <= p["flat_ratio"]
    worse_loss = compare(ret_loss, p["loss_margin"]) == "higher"
    far_reading = compare(far_diff, p["recall_margin"]) if recall_judged else "unjudged"
    lost_recall = far_reading == "lower"
    if not dense_grows:
        context = "unclear"
    elif not flat:
        context = "not flat"
    elif worse_loss or lost_recall:
        context = "flat, at a cost"
    elif far_reading in ("unclear", "unjudged") or compare(ret_loss, p["loss_margin"]) == "unclear":
        context = "unclear"
    else:
        context = "bought"
    numbers |= {"context": context, "far_recall_reading": far_reading, "retention_loss_worse": worse_loss}
    parts = (f"experts at equal active parameters: {capacity} loss ({moe.mean:+.3f} [{moe.low:+.3f}, {moe.high:+.3f}]"
             f" nats/byte); retention: time per token x{growth['retention']['time_ratio']:.2f} against dense "
             f"x{growth['dense']['time_ratio']:.1f} from {growth['dense']['short']} to {growth['dense']['long']} "
             f"tokens, loss {ret_loss.mean:+.3f} [{ret_loss.low:+.3f}, {ret_loss.high:+.3f}], recall at {far} back "
             f"{far_diff.mean:+.2f} [{far_diff.low:+.2f}, {far_diff.high:+.2f}] ({context})")
    if capacity == "lower" and context == "bought":
        return Verdict("supported", parts, numbers)
    if capacity in ("higher", "equivalent") and context in ("not flat", "flat, at a cost"):
        return Verdict("refuted", parts, numbers)
    if capacity == "unclear" and context == "unclear":
        return Verdict("inconclusive", parts, numbers)
    return Verdict("nuanced", parts, numbers)


RULES = {"C20": Rule(
    "C20", "experts buy capacity (lower loss at equal active parameters) and a recurrent state buys long context "
    "(a flat cost per token where attention's grows) without losing loss or far recall",
    {"min_seeds": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE, "loss_gate": 0.5, "loss_margin": 0.02,
     "recall_gate": 0.3, "recall_margin": 0.05, "flat_ratio": 1.5, "growth_ratio": 2.0},
    _c20_decide, seeds=_c20_seeds)}


def _c20_rests_on(results: dict, verdict: Verdict) -> str:
    """What C20's verdict rests on, counted: the variants and seeds at equal budgets, the
    dense decoder's gates (its loss; its recall, which decides whether recall is judged),
    and how many of the two parts (capacity, long context) read clearly."""
    rule = RULES["C20"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    n = verdict.numbers
    run = f"{counted(len(VARIANTS), 'variant')}, {counted(rule.seeds(results), 'seed')} each"
    if "mean_loss" not in n:
        return f"nothing compared: the variants are not at equal budgets; {run}"
    if "capacity" not in n:
        return f"nothing compared: the dense decoder did not pass the unigram gate; {run}, at equal budgets"
    gates = ("the dense decoder passed its loss and recall gates" if n["recall_judged"] else
             "the dense decoder passed its loss gate, not its recall gate (recall not judged)")
    parts = {"experts' loss": n["capacity"], "retention": n["context"]}
    clear = [f"{k} {v}" for k, v in parts.items() if v != "unclear"]
    no_recall = n["recall_judged"] and n["retention_recall_near"] < CHANCE + rule.parameters["recall_gate"]
    failed = (f"; retention never learned recall ({n['retention_recall_near']:.2f}): its reading rests on loss"
              if no_recall else "")
    return (f"{run}, at equal budgets; {gates}; {counted_of(len(clear), len(parts), 'part')} clear"
            + (f": {', '.join(clear)}" if clear else "") + failed)


def c20_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C20's evidence and scope in words, from the results the verdict was decided on (at
    smoke scale, where the gate stops the comparison, the evidence is the reason alone).
    Defined in the chapter "The routes after the plain decoder"."""
    rule = RULES["C20"]
    n20, p20, sa = rule.readings(results), rule.parameters, results["settings"]
    if "experts_total_minus_dense" in n20:
        total = n20["experts_total_minus_dense"]
        text = (f"{verdict.reason}. Held-out loss (nats/byte, mean of {len(sa['seeds'])} seeds): "
                + ", ".join(f"{LABELS[v]} {n20['mean_loss'][v]:.3f}" for v in VARIANTS)
                + f"; experts at equal total parameters minus dense {total['mean']:+.3f} [{total['low']:+.3f}, "
                f"{total['high']:+.3f}]; recall of the nearest facts: dense {n20['dense_recall_near']:.2f}, "
                f"retention {n20['retention_recall_near']:.2f}"
                + (" (retention never learned the recall, so its far recall is a failure to learn, not forgetting)"
                   if n20["retention_recall_near"] < CHANCE + p20["recall_gate"] else "")
                + ". Intervals: 95% t over seeds, paired.")
    else:  # smoke scale: the gate stops the comparison
        text = f"{verdict.reason}."
    scope = (f"Byte-level decoders of width {sa['d_model']}, {sa['n_layers']} layers, {sa['steps']} steps of "
             f"{sa['batch']} rows of {sa['length']} bytes of CPython's documentation with one planted fact each; equal "
             f"parameters within {max(n20['apart'].values()):.2%}; decode timed at width {sa['time_d_model']} up to "
             f"{max(sa['time_contexts'])} tokens, one thread.")
    return Evidence(text, scope, rests_on=_c20_rests_on(results, verdict))


CLAIMS = (Claim("C20", "The architecture route (RWKV, Mamba, RetNet, Mixtral-style mixture of experts) buys long "
                "context or capacity without attention's growing cost", "07_four_routes",
                stored_results(sys.modules[__name__]), RULES["C20"], c20_evidence),)


if __name__ == "__main__":
    experiment_main("experiments.ch07_architecture", run, RESULTS_DIR)
