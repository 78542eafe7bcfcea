"""The evolution tree of language models as a dataset: loading and validating
``data/llm_tree.csv`` and ``data/four_routes.csv``, the counts behind claim C15, and the
tree's figures. Explained in the chapter "The evolution tree of language models".
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .claims import Claim, Evidence, counted_of
from .palette import ARCHITECTURE_COLOURS, REFERENCE
from .paths import DATA
from .verdicts import Verdict

DATA_DIR = DATA
TREE_PATH = DATA_DIR / "llm_tree.csv"
ROUTES_PATH = DATA_DIR / "four_routes.csv"

BRANCHES = ("encoder-only", "encoder-decoder", "decoder-only", "non-transformer/hybrid")
#: The tree's branches in the book's colours (whydecoder.palette); hybrids in the reference grey.
BRANCH_COLOURS = {
    "encoder-only": ARCHITECTURE_COLOURS["encoder"],
    "encoder-decoder": ARCHITECTURE_COLOURS["encoder-decoder"],
    "decoder-only": ARCHITECTURE_COLOURS["decoder"],
    "non-transformer/hybrid": REFERENCE,
}
COLUMNS = (
    "name", "family", "year", "month", "organization", "branch", "architecture_basis",
    "params_b", "active_params_b", "open_weights", "in_survey_tree", "source", "notes",
    "attention", "sliding_window", "layers", "context_k", "train_tokens_t", "experts", "feature_source",
    "tool_use", "tool_use_source",
)
#: The architecture-feature columns (claim C19), empty where not published.
ATTENTION_KINDS = ("MHA", "MQA", "GQA", "MLA", "none")
LAYER_KINDS = ("attention", "hybrid", "recurrent")
FEATURES = ("attention", "sliding_window", "layers", "context_k", "train_tokens_t", "experts")
ROUTE_COLUMNS = ("route", "route_in_source", "representative", "kind", "tree_name", "source", "focus")
FIRST_YEAR, LAST_DATE = 2017, (2026, 12)
# The survey's tree, in its April and August 2023 versions, stops at August 2023.
SURVEY_LAST_DATE = (2023, 8)

_ARXIV = re.compile(r"arXiv:(\d{2})(\d{2})\.\d{4,5}")
_CITATION = re.compile(r".+\((?:.*, )?(\d{4})-(\d{2})\)$")


def _months(year: int, month: int) -> int:
    return 12 * year + month - 1


def _number(value: str, what: str, name: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{name}: {what} {value!r} is not a number of billions of parameters") from None
    if not 0.01 <= x <= 5000:
        raise ValueError(f"{name}: {what} {x} B is outside the plausible range 0.01 to 5000 B")
    return x


def _check_source(name: str, source: str, year: int, month: int) -> None:
    """The source is an arXiv id, a URL or a dated citation, and its date is near the release."""
    m = _ARXIV.fullmatch(source)
    if m:
        paper = _months(2000 + int(m.group(1)), int(m.group(2)))
        # papers follow a release by up to a year (reports of earlier releases) and can
        # precede the weights by a few months; anything further off is a typo
        if not -9 <= paper - _months(year, month) <= 12:
            raise ValueError(f"{name}: source {source} is dated too far from its release {year}-{month:02d}")
        return
    if source.startswith("https://"):
        return
    m = _CITATION.fullmatch(source)
    if not m:
        raise ValueError(f"{name}: source {source!r} is neither an arXiv id, an https URL nor a citation ending '(YYYY-MM)'")
    if abs(_months(int(m.group(1)), int(m.group(2))) - _months(year, month)) > 12:
        raise ValueError(f"{name}: source {source!r} is dated too far from its release {year}-{month:02d}")


def _check_columns(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"the tree dataset must be a pandas DataFrame, got {type(df).__name__}")
    if tuple(df.columns) != COLUMNS:
        raise ValueError(f"tree columns {tuple(df.columns)} differ from the expected {COLUMNS}")


def validate_tree(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the first bad row and value of the tree dataset.

    Checks the columns, unique names (also up to case and spaces; no spaces at either end of
    a name, family or organization), dates between 2017 and 2026, the branch and yes/no
    vocabularies, plausible parameter counts (active no larger than total), a source for
    every row dated near the release, and that survey-tree rows predate its last version.
    Defined in the chapter "The evolution tree of language models".
    """
    _check_columns(df)
    if df.empty:
        raise ValueError("the tree dataset is empty")
    dupes = sorted(df.loc[df["name"].duplicated(), "name"])
    if dupes:
        raise ValueError(f"model names appear twice: {dupes}")
    _check_names(df)
    for row in df.itertuples(index=False):
        name = row.name
        if not str(name).strip():
            raise ValueError("a row has an empty name")
        year, month = int(row.year), int(row.month)
        if not 1 <= month <= 12:
            raise ValueError(f"{name}: month {month} is not 1 to 12")
        if not _months(FIRST_YEAR, 1) <= _months(year, month) <= _months(*LAST_DATE):
            raise ValueError(f"{name}: release {year}-{month:02d} is outside {FIRST_YEAR} to {LAST_DATE[0]}")
        if row.branch not in BRANCHES:
            raise ValueError(f"{name}: branch {row.branch!r} is not one of {BRANCHES}")
        if row.architecture_basis not in ("published", "presumed"):
            raise ValueError(f"{name}: architecture_basis {row.architecture_basis!r} is not 'published' or 'presumed'")
        for column in ("open_weights", "in_survey_tree"):
            if getattr(row, column) not in ("yes", "no"):
                raise ValueError(f"{name}: {column} {getattr(row, column)!r} is not 'yes' or 'no'")
        if row.architecture_basis == "presumed" and row.open_weights == "yes":
            raise ValueError(f"{name}: open weights publish the architecture, so it cannot be 'presumed'")
        if row.in_survey_tree == "yes" and _months(year, month) > _months(*SURVEY_LAST_DATE):
            raise ValueError(f"{name}: released {year}-{month:02d}, after the survey's last tree ({SURVEY_LAST_DATE})")
        total = _number(row.params_b, "params_b", name) if row.params_b else None
        if row.active_params_b:
            active = _number(row.active_params_b, "active_params_b", name)
            if total is None or active > total:
                raise ValueError(f"{name}: active parameters {active} B need a total at least as large (got {total})")
        if not str(row.organization).strip():
            raise ValueError(f"{name}: empty organization")
        _check_source(name, str(row.source).strip(), year, month)
        _check_features(row)


def _check_names(df: pd.DataFrame) -> None:
    """Names, families and organizations without spaces at either end, and no two names
    (or organizations) that differ only in case or such spaces: ``'GPT-1 '`` beside
    ``'GPT-1'`` would count one model twice and break the links to it."""
    for column in ("name", "family", "organization"):
        for i, text in enumerate(df[column]):
            parts = str(text).split("; ") if column == "organization" else [str(text)]
            if any(part != part.strip() for part in parts):
                raise ValueError(f"row {i + 1} ({df['name'].iloc[i]!r}): {column} {text!r} has spaces at either end "
                                 "(of the name or, for organizations, of one of its '; '-separated parts)")
    seen = {}
    for i, name in enumerate(df["name"]):
        key = str(name).strip().casefold()
        if key in seen:
            j = seen[key]
            raise ValueError(f"rows {j + 1} and {i + 1}: model names {df['name'].iloc[j]!r} and {name!r} are the same "
                             "name up to case or spaces")
        seen[key] = i
    orgs = {}
    for text in df["organization"]:
        for part in str(text).split("; "):
            other = orgs.setdefault(part.casefold(), part)
            if other != part:
                raise ValueError(f"organizations {other!r} and {part!r} are the same name up to case; "
                                 "write one organization one way")


def _check_features(row) -> None:
    """The architecture features of one row: known vocabularies, plausible numbers, a
    source whenever a feature is given, and no softmax-attention variant on a model without
    attention layers."""
    name = row.name
    for column, allowed in (("attention", ATTENTION_KINDS), ("sliding_window", ("yes", "no")), ("layers", LAYER_KINDS),
                            ("experts", ("yes", "no"))):
        value = getattr(row, column)
        if value and value not in allowed:
            raise ValueError(f"{name}: {column} {value!r} is not one of {allowed} (or empty: not published)")
    for column, low, high, unit in (("context_k", 0.1, 20000, "thousand tokens"), ("train_tokens_t", 0.001, 200,
                                                                                    "trillion tokens")):
        value = getattr(row, column)
        if value:
            try:
                x = float(value)
            except ValueError:
                raise ValueError(f"{name}: {column} {value!r} is not a number of {unit}") from None
            if not low <= x <= high:
                raise ValueError(f"{name}: {column} {x} is outside the plausible range {low} to {high} {unit}")
    if row.active_params_b and row.experts != "yes":
        raise ValueError(f"{name}: active parameters {row.active_params_b} B are given, so experts must be 'yes', "
                         f"not {row.experts!r}")
    if (row.layers == "recurrent") != (row.attention == "none") and row.layers and row.attention:
        raise ValueError(f"{name}: layers {row.layers!r} and attention {row.attention!r} disagree "
                         "(a recurrent model has no attention, and only a recurrent one)")
    if row.tool_use not in ("yes", "no", ""):
        raise ValueError(f"{name}: tool_use {row.tool_use!r} is not 'yes', 'no' or empty (not known)")
    tool_source = str(row.tool_use_source).strip()
    if (row.tool_use == "yes") != bool(tool_source):
        raise ValueError(f"{name}: tool_use {row.tool_use!r} needs a tool_use_source exactly when it is 'yes'")
    if tool_source and not (_ARXIV.fullmatch(tool_source) or tool_source.startswith("https://")
                            or _CITATION.fullmatch(tool_source)):
        raise ValueError(f"{name}: tool_use_source {tool_source!r} is neither an arXiv id, an https URL nor a "
                         "citation ending '(YYYY-MM)'")
    given = [c for c in FEATURES if getattr(row, c)]
    source = str(row.feature_source).strip()
    if given and not source:
        raise ValueError(f"{name}: features {given} have no feature_source")
    if source and not given:
        raise ValueError(f"{name}: a feature_source but no feature")
    if source and not (_ARXIV.fullmatch(source) or source.startswith("https://") or _CITATION.fullmatch(source)):
        raise ValueError(f"{name}: feature_source {source!r} is neither an arXiv id, an https URL nor a citation "
                         "ending '(YYYY-MM)'")


def _read_csv(path: str | Path) -> pd.DataFrame:
    """A data file as strings, refused with the file (and line) named when a record has
    more or fewer fields than the header or the CSV cannot be parsed."""
    from .papers import _record_lines

    _record_lines(path)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None


def load_tree(path: str | Path = TREE_PATH) -> pd.DataFrame:
    """The tree dataset, validated, with numeric ``params_b``/``active_params_b``,
    ``context_k``/``train_tokens_t`` (NaN where unpublished) and a fractional ``date`` column (year + (month - 1) / 12).

    Defined in the chapter "The evolution tree of language models".
    """
    df = _read_csv(path)
    _check_columns(df)
    for column in ("year", "month"):
        bad = df.loc[~df[column].str.fullmatch(r"\d+"), "name"].tolist()
        if bad:
            raise ValueError(f"{column} is not an integer for {bad}")
        df[column] = df[column].astype(int)
    validate_tree(df)
    for column in ("params_b", "active_params_b", "context_k", "train_tokens_t"):
        df[column] = pd.to_numeric(df[column].replace("", np.nan))
    df["date"] = df["year"] + (df["month"] - 1) / 12
    return df.sort_values(["date", "name"], kind="stable").reset_index(drop=True)


def load_routes(path: str | Path = ROUTES_PATH, tree: pd.DataFrame | None = None) -> pd.DataFrame:
    """The "four routes" table of source 004 as data, each representative linked to its
    rows of the tree (``tree_name``, ';'-separated; empty for methods such as LoRA).

    Raises ``ValueError`` naming a route or link that does not exist.
    Defined in the chapter "The evolution tree of language models".
    """
    if tree is not None and not (isinstance(tree, pd.DataFrame) and "name" in tree.columns):
        raise TypeError(f"tree must be the frame of load_tree() (with a 'name' column), got {type(tree).__name__}")
    routes = _read_csv(path)
    if tuple(routes.columns) != ROUTE_COLUMNS:
        raise ValueError(f"route columns {tuple(routes.columns)} differ from the expected {ROUTE_COLUMNS}")
    unknown = set(routes["route"]) - {"scaling", "architecture", "efficiency", "agents"}
    if unknown:
        raise ValueError(f"unknown routes {sorted(unknown)}")
    names = set((tree if tree is not None else load_tree())["name"])
    for row in routes.itertuples(index=False):
        missing = [n for n in row.tree_name.split(";") if n and n not in names]
        if missing:
            raise ValueError(f"route {row.route!r}, {row.representative}: {missing} are not rows of the tree")
        if row.kind != "method" and not row.tree_name:
            raise ValueError(f"route {row.route!r}: model {row.representative} links to no row of the tree")
    return routes


def counts_by_year(df: pd.DataFrame) -> pd.DataFrame:
    """New models per year (rows) and branch (columns, in :data:`BRANCHES` order).

    Defined in the chapter "The evolution tree of language models".
    """
    counts = pd.crosstab(df["year"], df["branch"]).reindex(columns=list(BRANCHES), fill_value=0)
    counts.columns.name = None
    return counts


def organizations_by_branch(df: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """Models per organization (rows: the ``top`` most prolific) and branch. A row with
    several organizations counts once for each. Defined in the chapter "The evolution tree
    of language models".
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive int (how many organizations), got {top!r}")
    orgs = df.assign(organization=df["organization"].str.split("; ")).explode("organization")
    table = pd.crosstab(orgs["organization"], orgs["branch"]).reindex(columns=list(BRANCHES), fill_value=0)
    table.columns.name = None
    order = table.sum(axis=1).sort_values(ascending=False, kind="stable").index[:top]
    return table.loc[order]


def c15_evidence(df: pd.DataFrame, since: int = 2021, recent: int = 2023, early: tuple[int, int] = (2018, 2020)) -> dict:
    """The numbers behind claim C15 and its verdict.

    *Mainstream*: decoder-only is the most common branch in every year from ``since`` and
    holds at least half of the models from ``recent`` on. *Encoder-only stalled*: its share
    from ``recent`` on is at most half its share in the ``early`` years, and its largest model
    since ``since`` is under 1% of the largest decoder-only model. Verdict: ``supported``
    if both halves hold, ``nuanced`` if one does, ``refuted`` if neither.
    Defined in the chapter "The evolution tree of language models".
    """
    if not isinstance(df, pd.DataFrame) or {"year", "branch", "params_b"} - set(df.columns):
        raise TypeError(f"df must be the frame of load_tree() (columns year, branch, params_b), got {type(df).__name__}")
    counts = counts_by_year(df)
    years = [y for y in counts.index if y >= since]
    if not years:
        raise ValueError(f"no models from {since} on")
    if not counts.index.max() >= recent:
        raise ValueError(f"recent={recent!r}: no models from {recent} on, so no recent shares")
    if not (len(early) == 2 and counts.index[(counts.index >= early[0]) & (counts.index <= early[1])].size):
        raise ValueError(f"early={early!r}: no models in these (first, last) years, so no early share")
    plurality = {int(y): counts.loc[y].idxmax() for y in years}
    pooled_recent = counts.loc[counts.index >= recent].sum()
    pooled_early = counts.loc[(counts.index >= early[0]) & (counts.index <= early[1])].sum()
    decoder_recent = float(pooled_recent["decoder-only"] / pooled_recent.sum())
    encoder_recent = float(pooled_recent["encoder-only"] / pooled_recent.sum())
    encoder_early = float(pooled_early["encoder-only"] / pooled_early.sum())
    later = df[df["year"] >= since]
    largest = later.groupby("branch")["params_b"].max()
    enc_max, dec_max = float(largest.get("encoder-only", 0.0)), float(largest["decoder-only"])
    mainstream = all(b == "decoder-only" for b in plurality.values()) and decoder_recent >= 0.5
    stalled = encoder_recent <= encoder_early / 2 and enc_max < 0.01 * dec_max
    verdict = {2: "supported", 1: "nuanced", 0: "refuted"}[int(mainstream) + int(stalled)]
    return {
        "verdict": verdict, "mainstream": mainstream, "stalled": stalled,
        "plurality_by_year": plurality, "decoder_share_recent": decoder_recent,
        "encoder_share_recent": encoder_recent, "encoder_share_early": encoder_early,
        "largest_encoder_b": enc_max, "largest_decoder_b": dec_max,
        "n_models": len(df), "since": since, "recent": recent, "early": early,
    }


def c15_verdict(results: dict) -> Verdict:
    """C15's verdict on ``{"tree": load_tree()}``: the outcome of :func:`c15_evidence`,
    the reason naming each half, the numbers its evidence. Defined in the chapter "The
    evolution tree of language models"."""
    e = c15_evidence(results["tree"])
    reason = (f"decoder-only {'is' if e['mainstream'] else 'is not'} the mainstream branch (the most common every "
              f"year from {e['since']} and {e['decoder_share_recent']:.0%} of models from {e['recent']}); "
              f"encoder-only {'stalled' if e['stalled'] else 'did not stall'} ({e['encoder_share_early']:.0%} in "
              f"{e['early'][0]}-{e['early'][1]} to {e['encoder_share_recent']:.0%}, its largest "
              f"{e['largest_encoder_b']:g}B vs {e['largest_decoder_b']:g}B)")
    return Verdict(e["verdict"], reason, e)


def c15_claim_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C15's evidence in words (no scope: the dataset is named in the text), from the
    tree the verdict was decided on. Defined in the chapter "The evolution tree of
    language models"."""
    evidence = c15_evidence(results["tree"])
    return Evidence(
        f"In {evidence['n_models']} models (2017 to April 2026), decoder-only is the most common branch every year"
        f" since 2021 and {evidence['decoder_share_recent']:.0%} of models from 2023; encoder-only fell from"
        f" {evidence['encoder_share_early']:.0%} (2018-20) to {evidence['encoder_share_recent']:.0%}, its largest"
        f" {evidence['largest_encoder_b']:g}B vs {evidence['largest_decoder_b']:g}B; counts announcements, not use.",
        rests_on=_c15_rests_on(results["tree"], evidence))


def _c15_rests_on(df: pd.DataFrame, evidence: dict) -> str:
    """What C15's verdict rests on, counted: one dataset (its models and years; counts,
    no gate), and how many of the two halves held."""
    plurality = list(evidence["plurality_by_year"].values())
    held = int(evidence["mainstream"]) + int(evidence["stalled"])
    return (f"one dataset, counted with no gate: {evidence['n_models']} models, {df['year'].min()} to "
            f"{df['year'].max()}; {counted_of(held, 2, 'half', 'halves')} held (decoder-only the most common in "
            f"{counted_of(plurality.count('decoder-only'), len(plurality), 'year')} from {evidence['since']})")


# ---------------------------------------------------------------- figures


def _tree_layout(df: pd.DataFrame, widths: dict, per_line: dict) -> tuple[dict, list]:
    """Place every name: half-year bands stacked upwards, branches side by side; a band is
    as tall as its most crowded branch needs. Returns positions and band (year, y) ticks."""
    half = (df["year"] * 2 + (df["month"] > 6)).astype(int)
    pos, ticks, y = {}, [], 0.0
    for band in range(int(half.min()), int(half.max()) + 1):
        rows = df[half == band]
        lines = {b: int(np.ceil((rows["branch"] == b).sum() / per_line[b])) for b in BRANCHES}
        height = max(1, max(lines.values()))
        x0 = 0.0
        for b in BRANCHES:
            names = rows.loc[rows["branch"] == b, "name"].tolist()
            for i, name in enumerate(names):
                col, line = i % per_line[b], i // per_line[b]
                pos[name] = (x0 + (col + 0.5) * widths[b] / per_line[b], y + line + 0.5)
            x0 += widths[b]
        if band % 2 == 0:
            ticks.append((band // 2, y))
        y += height + 0.4
    return pos, ticks + [(None, y)]


def plot_tree(df: pd.DataFrame, fontsize: float = 7.0):
    """The evolution tree: time upwards in half-year bands, the four branches side by side,
    one box per model; filled boxes have open weights, white boxes are closed, a dotted edge
    marks an architecture that is presumed rather than published. Returns the figure.

    Defined in the chapter "The evolution tree of language models".
    """
    if df.empty:
        raise ValueError("plot_tree needs at least one model; the frame is empty")
    if not (isinstance(fontsize, (int, float)) and np.isfinite(fontsize) and fontsize > 0):
        raise ValueError(f"fontsize must be a positive number, got {fontsize!r}")
    per_line = {"encoder-only": 1, "encoder-decoder": 1, "decoder-only": 4, "non-transformer/hybrid": 2}
    # room per name: the decoder and hybrid columns hold the longest names
    widths = {b: per_line[b] * (1.2 if per_line[b] > 1 else 1.0) for b in BRANCHES}
    pos, ticks = _tree_layout(df, widths, per_line)
    top = ticks[-1][1]
    fig, ax = plt.subplots(figsize=(8.5, 0.19 * top + 1.2))
    x0 = 0.0
    for b in BRANCHES:
        ax.axvspan(x0, x0 + widths[b], color=BRANCH_COLOURS[b], alpha=0.07, lw=0)
        ax.text(x0 + widths[b] / 2, top + 0.3, b.replace("/", "/\n").replace("-d", "-\nd"), ha="center", va="bottom",
                fontsize=9, weight="bold", color=BRANCH_COLOURS[b])
        x0 += widths[b]
    for row in df.itertuples(index=False):
        x, y = pos[row.name]
        colour = BRANCH_COLOURS[row.branch]
        is_open = row.open_weights == "yes"
        ax.text(x, y, row.name, ha="center", va="center", fontsize=fontsize,
                color="white" if is_open else "black",
                bbox=dict(boxstyle="round,pad=0.2", fc=colour if is_open else "white", ec=colour,
                          ls=":" if row.architecture_basis == "presumed" else "-", lw=0.8))
    for year, y in ticks[:-1]:
        ax.axhline(y - 0.2, color="0.8", lw=0.5, zorder=0)
        ax.text(-0.15, y + 0.3, str(year), ha="right", va="center", fontsize=9)
    ax.set_xlim(-1.0, x0)
    ax.set_ylim(-0.5, top + 1.2)
    ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, fc="0.4", ec="0.4"), plt.Rectangle((0, 0), 1, 1, fc="white", ec="0.4"),
               plt.Rectangle((0, 0), 1, 1, fc="white", ec="0.4", ls=":")]
    ax.legend(handles, ["open weights", "closed weights", "architecture presumed, not published"],
              loc="upper left", bbox_to_anchor=(0.0, -0.005), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_shares(df: pd.DataFrame, ax=None):
    """Stacked bars: share of each branch among the year's new models, with the count on
    top. Defined in the chapter "The evolution tree of language models"."""
    ax = ax or plt.subplots(figsize=(8, 3.6))[1]
    counts = counts_by_year(df)
    shares = counts.div(counts.sum(axis=1), axis=0)
    bottom = np.zeros(len(shares))
    for b in BRANCHES:
        ax.bar(shares.index, shares[b], bottom=bottom, color=BRANCH_COLOURS[b], label=b, width=0.8)
        bottom += shares[b].to_numpy()
    for year, n in counts.sum(axis=1).items():
        ax.text(year, 1.01, str(n), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xticks(counts.index)
    ax.set_ylabel("share of the year's models")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("New models per branch (number of models above each bar)", fontsize=10)
    return ax


def plot_params(df: pd.DataFrame, ax=None):
    """Published parameter counts over time on a log scale, by branch; filled markers have
    open weights; a thin line joins a mixture of experts' total to its active parameters.
    The largest model of each year is named. Defined in the chapter "The evolution tree
    of language models"."""
    ax = ax or plt.subplots(figsize=(8, 4.2))[1]
    known = df.dropna(subset=["params_b"])
    for b in BRANCHES:
        part = known[known["branch"] == b]
        for is_open, marker_fill in (("yes", BRANCH_COLOURS[b]), ("no", "white")):
            sub = part[part["open_weights"] == is_open]
            ax.scatter(sub["date"], sub["params_b"], s=22, facecolors=marker_fill, edgecolors=BRANCH_COLOURS[b],
                       label=f"{b}" if is_open == "yes" else None, zorder=3)
    moe = known.dropna(subset=["active_params_b"])
    for row in moe.itertuples(index=False):
        ax.plot([row.date, row.date], [row.active_params_b, row.params_b], color=BRANCH_COLOURS[row.branch], lw=0.8, alpha=0.6)
        ax.scatter([row.date], [row.active_params_b], s=8, marker="_", color=BRANCH_COLOURS[row.branch])
    for row in known.loc[known.groupby("year")["params_b"].idxmax()].itertuples(index=False):
        ax.annotate(row.name, (row.date, row.params_b), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_ylabel("parameters (billions)")
    ax.set_xlabel("release date")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.set_title("Largest published size per release (filled: open weights; line: MoE total to active)", fontsize=10)
    return ax


def plot_organizations(df: pd.DataFrame, ax=None, top: int = 15):
    """Horizontal stacked bars: models per organization and branch (the survey's bar chart).

    Defined in the chapter "The evolution tree of language models"."""
    table = organizations_by_branch(df, top)[::-1]
    ax = ax or plt.subplots(figsize=(8, 0.3 * len(table) + 1))[1]
    left = np.zeros(len(table))
    for b in BRANCHES:
        ax.barh(table.index, table[b], left=left, color=BRANCH_COLOURS[b], label=b)
        left += table[b].to_numpy()
    ax.set_xlim(0, left.max() * 1.05)  # room after the longest bar
    ax.set_xlabel("models in the dataset")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.set_title(f"The {top} organizations with most models, by branch", fontsize=10)
    return ax


CLAIMS = (Claim("C15", "Decoder-only became the mainstream branch; encoder-only stalled", "02_evolution_tree",
                lambda: {"tree": load_tree()}, c15_verdict, c15_claim_evidence, scale="dataset"),)
