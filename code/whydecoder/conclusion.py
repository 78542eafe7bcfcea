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


#: What each claim is, for the reader: a reason offered for decoder-only, a counter-argument
#: to one, or context (an observation about the field, or a tool, that is no reason either way).
ROLES = {
    "reason": ("C01", "C02", "C03", "C04", "C08", "C09", "C11", "C12", "C13", "C14", "C16"),
    "counter-argument": ("C05", "C10"),
    "context": ("C06", "C07", "C15", "C17", "C19", "C20", "C21"),
}
ROLE_WORDS = {"reason": "reasons offered for decoder-only", "counter-argument": "counter-arguments",
              "context": "pieces of context (no reason either way)"}
#: The chart's row labels.
CHART_LABELS = {"reason": "reasons for decoder-only", "counter-argument": "counter-arguments", "context": "context"}
SINGULAR = {"reason": "reason offered for decoder-only", "counter-argument": "counter-argument",
            "context": "piece of context"}


def role(claim_id: str) -> str:
    """``"reason"``, ``"counter-argument"`` or ``"context"`` (:data:`ROLES`); the question is
    none of them. Defined in the chapter "Conclusion"."""
    for name, ids in ROLES.items():
        if claim_id in ids:
            return name
    raise ValueError(f"claim {claim_id!r} has no role in conclusion.ROLES (the question {QUESTION} has none)")


def _tally(rows: list[dict]) -> str:
    words = {"supported": ("holds", "hold"), "refuted": ("fails", "fail"),
             "nuanced": ("holds only in part", "hold only in part"),
             "inconclusive": ("could not be told at our scale",) * 2, "untested": ("is untested", "are untested")}
    parts = [f"{len(g)} {words[o][len(g) > 1]} ({_ids(g)})" for o in GROUPS
             for g in [[r for r in rows if r["verdict"] == o]] if g]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


def _relation(row: dict) -> str:
    from .at_scale import relation

    return row.get("at_scale") or relation(row["verdict"], row["id"])


def answer_markdown(rows: list[dict] | None = None, conclusion: str = "../chapters/09_conclusion/conclusion",
                    ledger: str = "claims", head_to_head: str = "../chapters/08_scale/head_to_head",
                    links: bool = True) -> str:
    """The short answer the landing page opens with, as MyST markdown, in plain sentences:
    the question's verdict here and at scale, how the reasons offered for decoder-only and the
    counter-arguments fared (by id), and the size of our models; then a chart (where the
    papers at scale agree with each verdict) of every claim by role, and (``links``) the links
    (``conclusion``, ``ledger``, ``head_to_head``: their paths for ``{doc}``). Defined in the
    chapter "Conclusion"."""
    from .at_scale import AT_SCALE

    rows = read_ledger() if rows is None else _checked(rows, question=True)
    question = next(r for r in rows if r["id"] == QUESTION)
    at = AT_SCALE[QUESTION]
    ours = {"supported": "supports it", "refuted": "refutes it", "nuanced": "finds it true only in part",
            "inconclusive": "could not tell", "untested": "has not tested it"}[question["verdict"]]
    relation = _relation(question)
    if relation == "agrees":
        headline = {"supported": "yes", "refuted": "no", "nuanced": "it depends on what you count",
                    "inconclusive": "it cannot be told yet"}[question["verdict"]]
    elif relation == "disagrees":
        headline = "the book's small models and the papers at scale disagree"
    elif at.reading == "nuanced":
        headline = "it depends on what you count"
    else:
        headline = "the evidence is mixed"
    sentences = [
        f"**The short answer: {headline}.** The sources conclude that decoder-only is the best choice at equal "
        f"parameters and equal inference cost. The book's own "
        + (f"{{doc}}`fair head-to-head <{head_to_head}>`" if links else "fair head-to-head")
        + f" (each architecture with its own recipe and learning rate, every arm gated, on continuation, "
        f"transformation and understanding tasks) {ours}; the papers that compared the architectures at {at.sizes} "
        f"read it as **{at.reading}**: {at.summary}."]
    tallies = [f"of the {len(g)} {ROLE_WORDS[name] if len(g) > 1 else SINGULAR[name]}, {_tally(g)}"
               for name in ("reason", "counter-argument")
               for g in [[r for r in rows if r["id"] in ROLES[name]]] if g]
    if tallies:
        sentences.append("; ".join(tallies)[0].upper() + "; ".join(tallies)[1:] + ".")
    sentences.append(f"The models the book pretrains are byte-level transformers of {MODEL_SIZES}, on a CPU (the "
                     "real models it measures or finetunes, such as SmolLM2-135M, are small too): they test "
                     "mechanisms, and the papers are the evidence at scale.")
    where = (f"How each claim was weighed is in the {{doc}}`conclusion <{conclusion}>`, every verdict with its "
             f"evidence in the {{doc}}`claims ledger <{ledger}>`.")
    return " ".join(sentences) + "\n\n" + chart_html(rows) + ("\n\n" + where if links else "")


#: The size of the models the book pretrains, in words (checked against the stored results by
#: a test: the smallest of the scale sweep, the largest of the head-to-head's).
MODEL_SIZES = "about two thousand to six hundred thousand parameters"


def chart_html(rows: list[dict]) -> str:
    """The landing page's figure: every claim as a chip coloured by its verdict, in three
    rows (reasons, counter-arguments, context), marked where papers at scale agree (=),
    disagree (x) or are mixed (~); as raw HTML for MyST. Defined in the chapter "Conclusion"."""
    import html

    from .report import VERDICT_COLOURS

    marks = {"agrees": "=", "disagrees": "\u00d7", "mixed": "~", "part of ours": "", "not tested at scale": ""}
    words = {"agrees": "agree", "disagrees": "disagree", "mixed": "are mixed",
             "part of ours": "are part of our own evidence", "not tested at scale": "do not test it"}

    def chip(r):
        colour = VERDICT_COLOURS.get(r["verdict"], "#6e7781")
        mark = marks[_relation(r)]
        title = html.escape(f"{r['id']}: {r.get('claim', '')} ({r['verdict']}; the papers at scale "
                            f"{words[_relation(r)]})")
        return (f'<span title="{title}" style="display:inline-block;margin:2px;padding:1px 6px;border-radius:4px;'
                f'color:white;background:{colour}">{r["id"]}{(" " + mark) if mark else ""}</span>')

    lines = ['<div class="claims-chart" role="figure" aria-label="Every claim by role, coloured by verdict">']
    label = '<span style="display:inline-block;width:13em;white-space:nowrap">{}</span>'
    question = [r for r in rows if r["id"] == QUESTION]
    if question:
        lines.append(f'<div>{label.format("the question")}{chip(question[0])}</div>')
    for name in ("reason", "counter-argument", "context"):
        chips = "".join(chip(r) for r in rows if r["id"] in ROLES[name])
        lines.append(f'<div>{label.format(html.escape(CHART_LABELS[name]))}{chips}</div>')
    legend = " ".join(f'<span style="color:{c}">&#9632;</span> {o}' for o, c in VERDICT_COLOURS.items() if o != "untested")
    lines.append(f'<div style="color:#57606a;font-size:90%">{legend}; the papers at scale: = agree, &#215; disagree, '
                 "~ mixed, no mark: not tested at scale, or the papers' numbers are part of our own evidence</div></div>")
    return "".join(lines)


def two_columns_html(rows: list[dict] | None = None) -> str:
    """The conclusion's weighing, as an HTML table: every claim but the question, grouped by
    role (reasons, counter-arguments, context), with two columns of evidence: our small
    models (the verdict and what it rests on, :func:`strength`) and the papers at scale
    (how they read the claim, at what sizes, and how that stands to ours; or that no paper
    at scale tests it). Defined in the chapter "Conclusion"."""
    import html

    from .at_scale import AT_SCALE
    from .report import VERDICT_COLOURS

    rows = read_ledger() if rows is None else _checked(rows)
    lines = second_lines()
    body = []
    for name in ("reason", "counter-argument", "context"):
        group = [r for r in rows if r["id"] in ROLES[name]]
        if not group:
            continue
        body.append(f'<tr><th colspan="3" style="padding:6px 4px 2px;text-align:left">'
                    f"{html.escape(ROLE_WORDS[name][0].upper() + ROLE_WORDS[name][1:])}</th></tr>")
        for r in group:
            colour = VERDICT_COLOURS.get(r["verdict"], "#6e7781")
            ours = (f'<span style="color:white;background:{colour};padding:1px 6px;border-radius:4px">'
                    f'{html.escape(r["verdict"])}</span> <span style="color:#57606a">({html.escape(strength(r, lines))})</span>')
            at = AT_SCALE.get(r["id"])
            theirs = ("<span style='color:#57606a'>not tested at scale</span>" if at is None else
                      f"{html.escape(at.reading)}, {html.escape(at.sizes)}: <b>{html.escape(_relation(r))}</b>")
            body.append(f'<tr><td style="padding:4px;vertical-align:top">{html.escape(r["id"])}: '
                        f'{html.escape(r.get("claim", ""))}</td><td style="padding:4px;vertical-align:top">{ours}</td>'
                        f'<td style="padding:4px;vertical-align:top">{theirs}</td></tr>')
    head = ('<tr><th style="padding:4px">claim</th><th style="padding:4px">our small models (mechanism)</th>'
            '<th style="padding:4px">papers at scale</th></tr>')
    return (f'<table class="table" style="font-size:0.85em;table-layout:fixed;width:100%;overflow-wrap:break-word">'
            f'<colgroup><col style="width:46%"><col style="width:27%"><col style="width:27%"></colgroup>'
            f'<thead>{head}</thead><tbody>{"".join(body)}</tbody></table>')
