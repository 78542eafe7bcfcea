"""The book's answer, computed from the claims ledger: which explanations survive, which
fail, which depend on conditions and which are open, each weighed by what its evidence
rests on. Used by the conclusion chapter and by the landing page (``book/_ext/ledger_answer``).

Explained in the chapter "Conclusion".
"""

from __future__ import annotations

import importlib

from .ledger import read_ledger

#: The book's question itself: the sources' conclusion, decided by the head-to-head.
QUESTION = "C18"
#: How a verdict's outcome reads in the answer, in the order the answer gives them.
GROUPS = {"supported": "survive", "refuted": "fail", "nuanced": "depend on conditions",
          "inconclusive": "could not be told at this scale", "untested": "untested"}
#: What a verdict's evidence rests on, weakest first.
STRENGTHS = ("none", "could not tell", "one line of evidence", "two lines: an experiment and real trained models")


def second_lines() -> dict[str, tuple[str, ...]]:
    """``{claim: modules}`` of the second lines of evidence (real trained models) that
    inform each claim: the experiments' ``INFORMS``, counted only where their complete
    full-scale results are stored (a deleted or incomplete file is no evidence).
    Defined in the chapter "Conclusion"."""
    from .experiments import SECOND_LINES

    out: dict[str, tuple[str, ...]] = {}
    for name in SECOND_LINES:
        module = importlib.import_module(f"whydecoder.experiments.{name}")
        if module.load_complete() is None:
            continue
        for claim in module.INFORMS:
            out[claim] = out.get(claim, ()) + (name,)
    return out


def strength(row: dict, lines: dict | None = None) -> str:
    """What a ledger row's verdict rests on (:data:`STRENGTHS`): nothing (untested), an
    experiment that could not tell (inconclusive), one line of evidence (an experiment or a
    dataset), or an experiment and a second line on real trained models. Defined in the chapter "Conclusion"."""
    lines = second_lines() if lines is None else lines
    if row.get("verdict") not in GROUPS:
        raise ValueError(f"claim {row.get('id')!r}: verdict {row.get('verdict')!r} is not one of {tuple(GROUPS)}")
    if row["verdict"] == "untested":
        return STRENGTHS[0]
    if row["verdict"] == "inconclusive":
        return STRENGTHS[1]
    return STRENGTHS[3] if row["id"] in lines else STRENGTHS[2]


def weigh(rows: list[dict] | None = None) -> dict[str, list[dict]]:
    """The explanations (every claim but :data:`QUESTION`) grouped by outcome, in the order
    of :data:`GROUPS`, each row with its ``strength``. Defined in the chapter "Conclusion"."""
    rows = read_ledger() if rows is None else _checked(rows)
    lines = second_lines()
    groups: dict[str, list[dict]] = {outcome: [] for outcome in GROUPS}
    for row in rows:
        if row["id"] != QUESTION:
            groups[row["verdict"]].append(dict(row, strength=strength(row, lines)))
    return groups


def _checked(rows: list[dict], question: bool = False) -> list[dict]:
    """Rows given by hand: each claim once (and, with ``question``, the question among them)."""
    if isinstance(rows, (str, dict)) or not all(isinstance(r, dict) and "id" in r for r in rows):
        raise ValueError(f"rows must be the ledger's rows (dicts with an id), got {str(rows)[:100]}")
    ids = [r["id"] for r in rows]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"claims {twice} are given more than once: each claim counts once")
    if question and QUESTION not in ids:
        raise ValueError(f"the rows lack the book's question {QUESTION}; got {ids}")
    return rows


def _ids(rows: list[dict]) -> str:
    ids = [r["id"] for r in rows]
    return ", ".join(ids[:-1]) + f" and {ids[-1]}" if len(ids) > 1 else (ids[0] if ids else "none")


def answer_markdown(rows: list[dict] | None = None, conclusion: str = "../chapters/09_conclusion/conclusion") -> str:
    """The short answer the landing page opens with, as MyST markdown: the verdict on the
    question (C18) and how many of the sources' explanations survive, fail, depend on
    conditions or stay open, by id, linking to the conclusion (``conclusion``: its path
    for ``{doc}``). Defined in the chapter "Conclusion"."""
    rows = read_ledger() if rows is None else _checked(rows, question=True)
    question = next(r for r in rows if r["id"] == QUESTION)
    groups = weigh(rows)
    total = sum(len(g) for g in groups.values())
    said = {"supported": "the book's head-to-head **supports** it at its scale, on next-byte loss",
            "refuted": "the book's head-to-head **refutes** it at its scale, on next-byte loss",
            "nuanced": "the book's head-to-head finds it **true only in part**",
            "inconclusive": "the book's head-to-head **could not tell**",
            "untested": "the book has **not yet tested** it"}[question["verdict"]]
    parts = [f"**The short answer.** The sources conclude that at equal parameters and equal inference cost "
             f"decoder-only is the best choice: {said}. Of the {total} explanations and observations they give for it,"]
    counted = [f"{len(g)} {GROUPS[o]} ({_ids(g)})" for o, g in groups.items() if g]
    parts.append("; ".join(counted) + ".")
    parts.append(f"How each was weighed, and what the book could not test, is in the {{doc}}`conclusion <{conclusion}>`.")
    return " ".join(parts)
