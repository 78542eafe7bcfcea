"""Did the structure of language models stand still after the survey's tree (claim C19)?

Counts, from the architecture-feature columns of ``data/llm_tree.csv``, which generative
models (decoder-only, encoder-decoder and recurrent or hybrid; not the encoders) with a
published architecture depart from the dense attention block of the tree's models: a
mixture-of-experts MLP (the ``experts`` column), latent attention (MLA), or
recurrent or hybrid token-mixing layers. Grouped-query and multi-query attention and
sliding windows are counted and shown but not called a departure: they keep the block and
shrink its cache. Training tokens and context lengths are shown beside, per year.

Explained in the chapter "The routes after the plain decoder".
"""

from __future__ import annotations

import pandas as pd

from .claims import Claim, Evidence
from .tree import COLUMNS, SURVEY_LAST_DATE, load_tree
from .verdicts import Rule, Verdict

GENERATIVE = ("decoder-only", "encoder-decoder", "non-transformer/hybrid")
#: The first year counted "before": the tree's models from then to its last version.
BEFORE_FROM = 2020


def with_structure(df: pd.DataFrame) -> pd.DataFrame:
    """The generative, published-architecture rows whose token-mixing layers are known,
    with boolean columns ``moe``, ``mla``, ``recurrent_layers`` (hybrid or recurrent),
    ``departs`` (any of the three), ``shared_kv`` (GQA or MQA), ``window`` and the period
    (``"before"``: from :data:`BEFORE_FROM` to the survey's last tree; ``"after"``).

    Defined in the chapter "The routes after the plain decoder"."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be the frame of tree.load_tree(), got {type(df).__name__}")
    missing = [c for c in COLUMNS + ("date",) if c not in df.columns]
    if missing:
        raise ValueError(f"df must be the frame of tree.load_tree(); it lacks the columns {missing}")
    rows = df[df["branch"].isin(GENERATIVE) & (df["architecture_basis"] == "published") & (df["layers"] != "")].copy()
    rows = rows[rows["year"] >= BEFORE_FROM]
    rows["moe"] = rows["experts"] == "yes"
    rows["mla"] = rows["attention"] == "MLA"
    rows["recurrent_layers"] = rows["layers"].isin(["hybrid", "recurrent"])
    rows["departs"] = rows["moe"] | rows["mla"] | rows["recurrent_layers"]
    rows["shared_kv"] = rows["attention"].isin(["GQA", "MQA"])
    rows["window"] = rows["sliding_window"] == "yes"
    last = SURVEY_LAST_DATE[0] + (SURVEY_LAST_DATE[1] - 1) / 12
    rows["period"] = ["before" if d <= last else "after" for d in rows["date"]]
    return rows


def structure_by_year(df: pd.DataFrame) -> pd.DataFrame:
    """Per year: models counted, the share with each feature, and the median context
    (thousand tokens) and training tokens (trillions) where published.

    Defined in the chapter "The routes after the plain decoder"."""
    rows = with_structure(df)
    grouped = rows.groupby("year")
    table = pd.DataFrame({
        "models": grouped.size(),
        "mixture of experts": grouped["moe"].mean(),
        "latent attention (MLA)": grouped["mla"].mean(),
        "recurrent or hybrid layers": grouped["recurrent_layers"].mean(),
        "any departure": grouped["departs"].mean(),
        "GQA or MQA": grouped["shared_kv"].mean(),
        "sliding window": grouped["window"].mean(),
        "median context (k tokens)": grouped["context_k"].median(),
        "median training tokens (T)": grouped["train_tokens_t"].median(),
    })
    table.index.name = "year"
    return table


def c19_counts(df: pd.DataFrame) -> dict:
    """The numbers C19's rule reads: per period (before and after the survey's last tree),
    the models counted, the share that departs from the dense attention block and the share
    per feature, and the median training tokens where published; and the same departure
    shares counting each family once (its first release). Defined in the chapter "The
    routes after the plain decoder"."""
    rows = with_structure(df)
    out = {}
    for period in ("before", "after"):
        part = rows[rows["period"] == period]
        families = part.drop_duplicates("family", keep="first")
        out[period] = {"models": int(len(part)), "departs": float(part["departs"].mean()),
                       "moe": float(part["moe"].mean()), "mla": float(part["mla"].mean()),
                       "recurrent_layers": float(part["recurrent_layers"].mean()),
                       "shared_kv": float(part["shared_kv"].mean()),
                       "median_tokens_t": float(part["train_tokens_t"].median()),
                       "tokens_published": int(part["train_tokens_t"].notna().sum()),
                       "families": int(len(families)), "family_departs": float(families["departs"].mean())}
    return out


def c19_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C19's evidence and scope in words, from the counts (:func:`c19_counts`) the verdict
    was decided on. Defined in the chapter "The routes after the plain decoder"."""
    b19, a19 = results["before"], results["after"]
    text = (f"Of {a19['models']} generative models with a published architecture released after the survey's tree "
            f"(Sept 2023 on), {a19['departs']:.0%} depart from the dense attention block (experts {a19['moe']:.0%}, "
            f"latent attention {a19['mla']:.0%}, recurrent or hybrid layers {a19['recurrent_layers']:.0%}) against "
            f"{b19['departs']:.0%} of {b19['models']} from 2020 to Aug 2023; one row per family: "
            f"{a19['family_departs']:.0%} against {b19['family_departs']:.0%}; median training tokens "
            f"{b19['median_tokens_t']:g}T -> {a19['median_tokens_t']:g}T.")
    scope = ("A curated dataset of notable releases (announcements, not use), the features as their papers, model "
             "cards or announcements state them; closed models without a published architecture are not counted.")
    return Evidence(text, scope)


def _c19_decide(counts: dict, p: dict) -> Verdict:
    """C19: after the survey's tree, did the structure of LLMs barely change?

    Inconclusive when either period has fewer than ``p["min_models"]`` models with known
    layers. *Changed* when, after the tree, at least ``p["share"]`` of the models depart
    from the dense attention block (experts, latent attention, recurrent or hybrid
    layers) and that share rose by at least ``p["rise"]`` over the tree's own years.
    Refuted when it changed, supported when neither holds (the share stayed below
    ``p["share"]`` and rose by less than ``p["rise"]``), nuanced when only one holds. The
    growth of training tokens is reported beside; the dataset cannot say what progress
    came from, only whether the structure stood still.
    """
    before, after = counts["before"], counts["after"]
    if min(before["models"], after["models"]) < p["min_models"]:
        return Verdict("inconclusive", f"too few models with known layers ({before['models']} before, "
                       f"{after['models']} after; the rule asks for {p['min_models']})", counts)
    rise = after["departs"] - before["departs"]
    wide, rising = after["departs"] >= p["share"], rise >= p["rise"]
    growth = after["median_tokens_t"] / before["median_tokens_t"]
    reason = (f"{after['departs']:.0%} of {after['models']} generative models after the tree depart from the dense "
              f"attention block (experts {after['moe']:.0%}, latent attention {after['mla']:.0%}, recurrent or hybrid "
              f"layers {after['recurrent_layers']:.0%}) against {before['departs']:.0%} of {before['models']} from "
              f"{BEFORE_FROM} to the tree's end; median training tokens x{growth:.1f}")
    numbers = {**counts, "rise": rise, "token_growth": growth}
    if wide and rising:
        return Verdict("refuted", reason, numbers)
    if not wide and not rising:
        return Verdict("supported", reason, numbers)
    return Verdict("nuanced", reason, numbers)


C19_RULE = Rule(
    "C19", "after the survey's tree, few generative models depart from the dense attention block (experts, latent "
    "attention, recurrent or hybrid layers), and that share did not rise",
    {"min_models": 10, "share": 0.25, "rise": 0.15}, _c19_decide)


CLAIMS = (Claim("C19", "After the models of the survey's tree, LLMs barely changed in structure: progress came from "
                "more and cleaner data", "07_four_routes", lambda: c19_counts(load_tree()), C19_RULE, c19_evidence,
                scale="dataset"),)
