"""HTML pieces for the book's generated pages. Explained in "The claims ledger"."""

from __future__ import annotations

import html
from pathlib import Path

from .paths import ROOT

VERDICT_COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "nuanced": "#9a6700", "inconclusive": "#8250df",
                   "untested": "#6e7781"}


def _chapter_notebook(slug: str) -> Path | None:
    """The notebook of a chapter folder (the first of the folder's pages in ``_toc.yml``,
    else its first by name) or of one page in it (``"folder/page"``), or ``None`` when there
    is none yet."""
    import re

    if slug is not None and not isinstance(slug, str):
        raise TypeError(f"a chapter is named by its folder (text such as '04_low_rank') or by a page in it "
                        f"('03_encoder_vs_decoder/positions'), got {slug!r}")
    if not slug:
        return None
    if "/" in slug:
        notebook = ROOT / "chapters" / f"{slug}.ipynb"
        return notebook if notebook.exists() else None
    toc = ROOT / "_toc.yml"
    if toc.exists():
        listed = re.findall(rf"file:\s*chapters/{re.escape(slug)}/(\S+)", toc.read_text(encoding="utf-8"))
        for name in listed:
            notebook = ROOT / "chapters" / slug / f"{name}.ipynb"
            if notebook.exists():
                return notebook
    notebooks = sorted((ROOT / "chapters" / slug).glob("*.ipynb"))
    return notebooks[0] if notebooks else None


def chapter_page(slug: str) -> str | None:
    """The built page of a chapter folder (or of ``"folder/page"``), relative to a page in ``book/``, or ``None``
    when the chapter does not exist yet. Defined in "The claims ledger"."""
    notebook = _chapter_notebook(slug)
    return f"../chapters/{notebook.parent.name}/{notebook.stem}.html" if notebook else None


def chapter_title(slug: str) -> str | None:
    """The title (first ``#`` heading) of a chapter folder's notebook, or ``None`` when the
    chapter does not exist yet. Defined in "The claims ledger"."""
    import json

    notebook = _chapter_notebook(slug)
    if notebook is None:
        return None
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    return slug


#: Column widths of the ledger table (per cent of the text column), so that it fits the page.
LEDGER_COLUMNS = (("Id", 7), ("Claim", 38), ("Verdict, why · rests on", 37), ("Chapter", 18))


def ledger_html(rows: list[dict]) -> str:
    """The ledger as an HTML table a reader scans: each claim (its sources and papers in
    small type), its verdict coloured, how the papers at scale stand to it, the rule's
    one-line reason and what the verdict rests on, its chapter linked by title; the
    evidence folds away under the verdict (a ``<details>`` the reader opens). Each row is
    an anchor ``claim-C01`` that other pages link to.

    Defined in "The claims ledger".
    """
    if not isinstance(rows, list):
        raise TypeError(f"rows must be a list of the ledger's rows (dicts), got {type(rows).__name__}")
    for i, row in enumerate(rows):
        missing = [c for c in ("id", "claim", "sources", "papers", "chapter", "verdict", "evidence")
                   if not isinstance(row, dict) or c not in row]
        if missing:
            raise ValueError(f"row {i} of the ledger lacks {missing}: {row!r}"[:300])
        if row["verdict"] not in VERDICT_COLOURS:
            raise ValueError(f"row {i} ({row['id']}): verdict {row['verdict']!r} is not one of {tuple(VERDICT_COLOURS)}")
    cols = "".join(f'<col style="width:{w}%">' for _, w in LEDGER_COLUMNS)
    head = "".join(f'<th style="padding:4px">{h}</th>' for h, _ in LEDGER_COLUMNS)
    body = []
    for row in rows:
        page, title = chapter_page(row["chapter"]), chapter_title(row["chapter"])
        if page:
            chapter = f'<a href="{page}">{html.escape(title)}</a>'
        else:
            chapter = "<em>planned</em>"
        colour = VERDICT_COLOURS[row["verdict"]]
        badge = f"color:white;background:{colour};padding:1px 6px;border-radius:4px;white-space:nowrap"
        verdict = f'<span style="{badge}">{row["verdict"]}</span>'
        if row.get("at_scale"):  # how the papers at scale stand to it, in a word or three
            scale_tag = row["at_scale"] if "at scale" in row["at_scale"] else f"at scale: {row['at_scale']}"
            verdict += (f' <span style="font-size:0.85em;color:#57606a;border:1px solid #d0d7de;padding:0 4px;'
                        f'border-radius:4px;white-space:nowrap">{html.escape(scale_tag)}</span>')
        if row.get("reason"):
            verdict += f'<br><span style="white-space:normal">{html.escape(row["reason"])}</span>'
        if row.get("rests_on"):
            verdict += (f'<br><span style="font-size:0.85em;color:#57606a;white-space:normal">rests on: '
                        f'{html.escape(row["rests_on"])}</span>')
        folded = (f'<details><summary style="cursor:pointer;color:#57606a;font-size:0.9em">evidence'
                  f'</summary><p style="margin:0.3em 0">{html.escape(row["evidence"]) or "&mdash;"}</p>'
                  f"</details>")
        origin = (f'<br><span style="font-size:0.85em;color:#57606a">{html.escape(row["sources"])}'
                  f' · {html.escape(row["papers"])}</span>')
        cells = [html.escape(row["id"]), html.escape(row["claim"]) + origin, verdict + folded, chapter]
        nowrap = (True, False, False, False)
        body.append(f'<tr id="claim-{html.escape(row["id"])}">' + "".join(
            f'<td style="vertical-align:top;padding:4px{";white-space:nowrap" if keep else ""}">{c}</td>'
            for c, keep in zip(cells, nowrap)) + "</tr>")
    style = "font-size:0.8em;table-layout:fixed;width:100%;overflow-wrap:break-word"
    return (f'<table class="table" style="{style}"><colgroup>{cols}</colgroup>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def readable_table(df, formats: dict | None = None, names: dict | None = None, index: bool = True):
    """A DataFrame styled for reading in the text column: snake_case headers become words
    (or ``names[column]``), ``formats`` (by original column name) set the digits, missing
    values show as a dash, and the index is hidden unless ``index`` (a named index is shown
    as the first column, headed by its name, rather than as a header row of its own).

    Defined in "How to read this book".
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"readable_table takes a pandas DataFrame, got {type(df).__name__}")
    for arg, value in (("formats", formats), ("names", names)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{arg} must be a dict keyed by column name, got {type(value).__name__}")
    names = dict(names or {})
    levels = list(df.index.names)
    if index and None not in levels and not set(levels) & set(df.columns) and df.columns.nlevels == 1:
        # a named index becomes the first column(s): its name heads the column instead of a lone row
        df = df.reset_index()
        index = False
    pretty = {c: names.get(c, str(c).replace("_", " ")) for c in df.columns}
    unknown = [c for c in (formats or {}) if c not in pretty]
    if unknown:
        raise ValueError(f"formats name columns {unknown} that the table does not have; it has {list(pretty)}")
    shown = df.rename(columns=pretty)
    if df.index.name:
        shown.index.name = names.get(df.index.name, str(df.index.name).replace("_", " "))
    style = shown.style.format({pretty[c]: f for c, f in (formats or {}).items()}, na_rep="–", escape="html")
    style = style.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    style = style.set_table_attributes('class="book-table"')
    return style if index else style.hide(axis="index")


def note_html(markup: str):
    """A one-line note for the page from ready HTML ``markup`` (escaped by the caller), set
    small and grey by the book's ``book-note`` class rather than shown as a block of program
    output. Defined in "How to read this book"."""
    from IPython.display import HTML

    if not isinstance(markup, str):
        raise TypeError(f"markup must be text (HTML), got {type(markup).__name__}")

    return HTML(f'<p class="book-note">{markup}</p>')


def folded_note_html(summary: str, markup: str):
    """A :func:`note_html` folded behind a one-line ``summary`` (plain text) that the reader
    opens for the rest (ready HTML ``markup``, escaped by the caller): provenance, which
    every page has and few readers need. Defined in "How to read this book"."""
    from IPython.display import HTML

    if not isinstance(summary, str) or not isinstance(markup, str):
        raise TypeError(f"summary and markup must be text, got {type(summary).__name__} and {type(markup).__name__}")
    return HTML(f'<details class="book-note"><summary>{html.escape(summary)}</summary><p>{markup}</p></details>')


def setting_note(text: str):
    """:func:`note_html` of plain ``text``: the settings behind the numbers that follow.
    Defined in "How to read this book"."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return note_html(html.escape(text))


def large_number(x: float) -> str:
    """A large count in words a table reader takes in at once: ``51.7 million``, ``1.2
    billion``, ``2.41 quadrillion`` (three significant digits); below a thousand as it is.
    Defined in "How to read this book"."""
    import math
    import numbers

    if not isinstance(x, numbers.Real):
        raise TypeError(f"large_number takes a number, got {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"large_number takes a finite number, got {x!r}")
    for size, word in ((1e15, "quadrillion"), (1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if abs(x) >= size:
            return f"{x / size:.3g} {word}"
    return f"{x:.3g}"


#: The ledger as seen from a chapter page (``chapters/<folder>/<page>.html``).
LEDGER_FROM_CHAPTER = "../../book/claims.html"


def verdict_box(claim_id: str, claim: str, rule, verdict, evidence: str, scope: str,
                ledger: str = LEDGER_FROM_CHAPTER, judged_by: str | None = None, at_scale: str | None = None,
                rests_on: str | None = None, revised: str = "") -> str:
    """The box every verdict of the book ends in, as HTML: the claim (its id linked to its
    row of the ``ledger``), the outcome with why, what it rests on (``rests_on``: how many
    tasks, cells or sizes passed their gates) and ``at_scale``: what the papers at scale
    found, and how it stands to the verdict (:func:`whydecoder.at_scale.at_scale_line`),
    when a paper at scale addresses the claim. Folded below them (a ``<details>`` the
    reader opens): what was tested (the rule's statement and its fixed parameters;
    ``judged_by``: the fingerprint the results were judged by, when a migration has
    changed it since; ``revised``: what of the rule was settled after results were seen,
    said instead of "fixed before the run"), the evidence with its intervals, and the
    scope of the experiment. Defined in "How to read this book"."""
    if getattr(verdict, "outcome", None) not in VERDICT_COLOURS or not hasattr(verdict, "reason"):
        raise ValueError(f"verdict must be a Verdict (an outcome in {tuple(VERDICT_COLOURS)} and a reason), "
                         f"got {verdict!r}")
    if not all(hasattr(rule, a) for a in ("statement", "parameters", "fingerprint")):
        raise TypeError(f"rule must be a verdicts.Rule (statement, parameters, fingerprint), got {type(rule).__name__}")
    colour = VERDICT_COLOURS.get(verdict.outcome, "#6e7781")
    migrated = ""
    if judged_by and judged_by != rule.fingerprint():
        migrated = (f", migrated from the run's <code>{html.escape(judged_by)}</code> with identical verdicts: see the "
                    "note on the results")
    params = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rule.parameters.items())
    link = f'<a href="{html.escape(ledger)}#claim-{html.escape(claim_id)}"><b>{html.escape(claim_id)}</b></a>'
    rows = [("Claim", f"{link}: {html.escape(claim)}"),
            ("Verdict", f'<span style="color:white;background:{colour};padding:1px 6px;border-radius:4px">'
                        f"{html.escape(verdict.outcome)}</span> {html.escape(verdict.reason)}")]
    if rests_on:
        rows.append(("Rests on", html.escape(rests_on)))
    rows.append(("At scale", html.escape(at_scale) if at_scale else
                 "<span style='color:#57606a'>no paper at scale tests this claim</span>"))
    when = (f"rule revised after results were seen: {html.escape(revised)}. Its parameters" if revised else
            "rule fixed before the run")
    folded = [("Tested", f"{html.escape(rule.statement)} <span style='color:#57606a'>({when}: "
                         f"{html.escape(params)}; fingerprint <code>{rule.fingerprint()}</code>{migrated})</span>"),
              ("Evidence", html.escape(evidence)),
              ("Scope", html.escape(scope))]

    def table(pairs):
        body = "".join(f'<tr><th style="padding:4px 8px;vertical-align:top;width:6.5em">{k}</th>'
                       f'<td style="padding:4px 8px">{v}</td></tr>' for k, v in pairs)
        return (f'<table class="book-table" style="width:100%;table-layout:fixed;overflow-wrap:break-word">'
                f"{body}</table>")

    # the verdict is said once, with what it rests on; the numbers and the rule fold away
    return (f'<div class="verdict-box" style="border-left:4px solid {colour};padding:4px 0;margin:1em 0">'
            f"{table(rows)}<details style='padding:0 8px'><summary style='cursor:pointer;color:#57606a'>"
            f"The evidence, its scope and the rule</summary>{table(folded)}</details></div>")
