"""HTML pieces for the book's generated pages. Explained in "The claims ledger"."""

from __future__ import annotations

import html
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERDICT_COLOURS = {"supported": "#1a7f37", "refuted": "#cf222e", "nuanced": "#9a6700", "untested": "#6e7781"}


def chapter_page(slug: str) -> str | None:
    """The built page of a chapter folder, relative to a page in ``book/``, or ``None``
    when the chapter does not exist yet. Defined in "The claims ledger"."""
    notebooks = sorted((ROOT / "chapters" / slug).glob("*.ipynb")) if slug else []
    return f"../chapters/{slug}/{notebooks[0].stem}.html" if notebooks else None


def ledger_html(rows: list[dict]) -> str:
    """The ledger as an HTML table, verdicts coloured, chapters linked.

    Defined in "The claims ledger".
    """
    head = "".join(f"<th>{h}</th>" for h in ("Id", "Claim", "Sources · papers", "Chapter", "Verdict", "Evidence"))
    body = []
    for row in rows:
        page = chapter_page(row["chapter"])
        chapter = f'<a href="{page}">{html.escape(row["chapter"])}</a>' if page else f"<em>{html.escape(row['chapter'])} (planned)</em>"
        colour = VERDICT_COLOURS[row["verdict"]]
        verdict = f'<span style="color:white;background:{colour};padding:1px 6px;border-radius:4px">{row["verdict"]}</span>'
        origin = f'{html.escape(row["sources"])}<br><small>{html.escape(row["papers"])}</small>'
        cells = [html.escape(row["id"]), html.escape(row["claim"]), origin, chapter, verdict, html.escape(row["evidence"]) or "&mdash;"]
        body.append("<tr>" + "".join(f'<td style="vertical-align:top">{c}</td>' for c in cells) + "</tr>")
    return f'<table class="table" style="font-size:0.85em"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
