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

import hashlib
from pathlib import Path

import pandas as pd

from .claims import Claim, Evidence
from .tree import COLUMNS, SURVEY_LAST_DATE, TREE_PATH, load_tree
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
    per feature, and the median training tokens where published; the same departure
    shares counting each family once (its first release); and, in the survey's own sense of
    structure, the share on the decoder-only branch and the share of plain decoders (that
    branch, no departure). Defined in the chapter "The routes after the plain decoder"."""
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
                       "decoder_branch": float((part["branch"] == "decoder-only").mean()),
                       "plain_decoders": float(((part["branch"] == "decoder-only") & ~part["departs"]).mean()),
                       "families": int(len(families)), "family_departs": float(families["departs"].mean())}
    return out


def tree_hash(path: str | Path = TREE_PATH) -> str:
    """The SHA-256 of the tree's file, its line endings read as ``\n`` (a checkout that
    writes ``\r\n`` reads the same): what C19's rule freezes, so that rows edited after the
    rule was fixed are not judged by it. Defined in the chapter "The routes after the plain
    decoder"."""
    return hashlib.sha256(Path(path).read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def c19_results(path: str | Path = TREE_PATH) -> dict:
    """What C19's rule reads: :func:`c19_counts` of the tree at ``path`` with the hash of
    its file (``data_sha256``). Defined in the chapter "The routes after the plain decoder"."""
    return c19_counts(load_tree(path)) | {"data_sha256": tree_hash(path)}


def c19_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C19's evidence and scope in words, from the counts (:func:`c19_counts`) the verdict
    was decided on. Defined in the chapter "The routes after the plain decoder"."""
    b19, a19 = results["before"], results["after"]
    text = (f"Of {a19['models']} generative models with a published architecture released after the survey's tree "
            f"(Sept 2023 on), {a19['departs']:.0%} depart from the dense attention block (experts {a19['moe']:.0%}, "
            f"latent attention {a19['mla']:.0%}, recurrent or hybrid layers {a19['recurrent_layers']:.0%}) against "
            f"{b19['departs']:.0%} of {b19['models']} from 2020 to Aug 2023; one row per family: "
            f"{a19['family_departs']:.0%} against {b19['family_departs']:.0%}; decoder-only: "
            f"{a19['decoder_branch']:.0%} of the later models against {b19['decoder_branch']:.0%} before; plain dense "
            f"decoders (decoder-only with no departure): {a19['plain_decoders']:.0%} against "
            f"{b19['plain_decoders']:.0%}; median training tokens "
            f"{b19['median_tokens_t']:g}T -> {a19['median_tokens_t']:g}T.")
    scope = ("A curated dataset of notable releases (announcements, not use), the features as their papers, model "
             "cards or announcements state them; closed models without a published architecture are not counted.")
    return Evidence(text, scope, rests_on=_c19_rests_on(results, verdict))


def _c19_rests_on(counts: dict, verdict: Verdict) -> str:
    """What C19's verdict rests on, counted: one dataset, frozen by its hash; the models
    counted in each period and those that publish their training tokens, against the
    rule's least number; and how each half read."""
    if "before" not in verdict.numbers:
        return "nothing counted: the tree's file is not the one the rule froze"
    b, a, least = counts["before"], counts["after"], C19_RULE.parameters["min_models"]
    head = (f"one dataset, frozen by its hash: {b['models']} models before the tree, {a['models']} after, "
            f"{b['tokens_published']} and {a['tokens_published']} with training tokens (the rule asks for {least})")
    if "structure" not in verdict.numbers:
        return f"nothing compared: {head}"
    return f"{head}; read: structure {verdict.numbers['structure']}, data {verdict.numbers['data']}"


def _c19_decide(counts: dict, p: dict) -> Verdict:
    """C19 in its two halves, on the tree frozen by its hash (``p["data_sha256"]``; a file
    that differs is not judged: the rule must be fixed again before it reads new rows).

    Inconclusive when either period has fewer than ``p["min_models"]`` models with known
    layers, or fewer than ``p["min_models"]`` that publish their training tokens.

    - *Structure*: it *changed* when, after the tree, at least ``p["share"]`` of the
      generative models depart from the dense attention block (experts, latent attention,
      recurrent or hybrid layers) and that share rose by at least ``p["rise"]`` over the
      tree's own years; it *stood still* when neither holds; *mixed* when one does.
    - *Data*: it *grew* when the median training tokens after the tree are at least
      ``p["token_growth"]`` times the median before; else it did not. ("Cleaner" data has no
      column to count; whether progress *came from* data is causal and no count answers it.)

    Supported when the structure stood still and the data grew; refuted when the structure
    changed and the data did not grow; nuanced otherwise (naming each half).
    """
    if counts.get("data_sha256") != p["data_sha256"]:
        return Verdict("inconclusive", f"the tree's file is not the one the rule froze (its SHA-256 is "
                       f"{str(counts.get('data_sha256'))[:12]}..., the rule's {p['data_sha256'][:12]}...): rows edited "
                       "after the rule was fixed are not judged by it", {"data_sha256": counts.get("data_sha256")})
    before, after = counts["before"], counts["after"]
    if min(before["models"], after["models"]) < p["min_models"]:
        return Verdict("inconclusive", f"too few models with known layers ({before['models']} before, "
                       f"{after['models']} after; the rule asks for {p['min_models']})", counts)
    if min(before["tokens_published"], after["tokens_published"]) < p["min_models"]:
        return Verdict("inconclusive", f"too few models publish their training tokens ({before['tokens_published']} "
                       f"before, {after['tokens_published']} after; the rule asks for {p['min_models']})", counts)
    rise = after["departs"] - before["departs"]
    wide, rising = after["departs"] >= p["share"], rise >= p["rise"]
    structure = "changed" if wide and rising else "stood still" if not (wide or rising) else "mixed"
    growth = after["median_tokens_t"] / before["median_tokens_t"]
    data = "grew" if growth >= p["token_growth"] else "did not grow"
    numbers = {**counts, "rise": rise, "token_growth": growth, "structure": structure, "data": data}
    halves = (f"structure {structure}: {after['departs']:.0%} of {after['models']} generative models after the tree "
              f"depart from the dense attention block (experts {after['moe']:.0%}, latent attention {after['mla']:.0%}, "
              f"recurrent or hybrid layers {after['recurrent_layers']:.0%}) against {before['departs']:.0%} of "
              f"{before['models']} from {BEFORE_FROM} to the tree's end; data {data}: median training tokens "
              f"x{growth:.1f} ({before['median_tokens_t']:g}T to {after['median_tokens_t']:g}T)")
    if structure == "stood still" and data == "grew":
        return Verdict("supported", halves, numbers)
    if structure == "changed" and data == "did not grow":
        return Verdict("refuted", halves, numbers)
    return Verdict("nuanced", halves + ("; the claim's 'more data' holds, its 'no structural change' does not"
                                        if structure == "changed" and data == "grew" else ""), numbers)


#: The tree as C19's rule froze it (2026-12-07): rows edited later are judged only after the rule is fixed again.
TREE_SHA256 = "e979ffb9388b8c32b527faa9af701afe1f5108caf1baf989502b38b27c0c1e3e"

C19_RULE = Rule(
    "C19", "after the survey's tree, the structure of generative models stood still (few depart from the dense "
    "attention block, and that share did not rise) while their training data grew (median training tokens at "
    "least 3 times larger), on the tree frozen by its hash",
    {"min_models": 10, "share": 0.25, "rise": 0.15, "token_growth": 3.0, "data_sha256": TREE_SHA256}, _c19_decide)


CLAIMS = (Claim("C19", "After the models of the survey's tree, LLMs barely changed in structure: progress came from "
                "more and cleaner data", "07_four_routes", c19_results, C19_RULE, c19_evidence,
                scale="dataset", revised="its data half was added on review, after the growth in training tokens "
                "was known, and the dataset's hash was taken after the counts"),)
