"""The papers' own numbers, shown beside the book's: one CSV per paper under
``data/papers/``, one number per row, each with the table and page it comes from and the
copy of the paper it was read from, the transcriber's note, and what a second reader found
when checking it against the source (``checked``).

Explained in "How to read this book" (the papers beside ours).
"""

from __future__ import annotations

import math
from pathlib import Path

from .paths import DATA

PAPERS_DIR = DATA / "papers"
COLUMNS = ("paper", "table", "page", "row", "column", "value", "unit", "source", "note", "checked")
#: What ``checked`` says of a number no second reader has compared with its source yet.
UNCHECKED = "not yet checked by a second reader"


def published(name: str, path: str | Path | None = None):
    """The published numbers of one paper (``data/papers/<name>.csv``) as a pandas frame
    with a float ``value`` column. Every row must name its paper, table and source and hold
    a finite number; anything else is refused with the file and row named.

    Defined in "How to read this book".
    """
    import pandas as pd

    path = Path(path) if path is not None else PAPERS_DIR / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in PAPERS_DIR.glob("*.csv"))
        raise ValueError(f"no published numbers {name!r} ({path}); the book has {known}")
    lines = _record_lines(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    if tuple(table.columns) != COLUMNS:
        raise ValueError(f"{path}: columns {tuple(table.columns)}, expected {COLUMNS}")
    if table.empty:
        raise ValueError(f"{path}: no numbers below the header")
    for i, row in table.iterrows():
        missing = [c for c in ("paper", "table", "row", "column", "unit", "source", "checked") if not row[c].strip()]
        if missing:
            raise ValueError(f"{path}, line {lines[i]}: empty {missing}")
        try:
            value = float(row["value"])
        except ValueError:
            raise ValueError(f"{path}, line {lines[i]}: value {row['value']!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{path}, line {lines[i]}: value {row['value']!r} is not finite")
    return table.assign(value=table["value"].astype(float))


def _record_lines(path: str | Path) -> list[int]:
    """The line on which each data record of a CSV file starts (blank lines skipped, as
    pandas skips them), after checking that every record has as many fields as the header:
    an unquoted comma in a value (``1,5``) would otherwise shift the row's columns, and
    pandas would quietly take the extra field as an index (or fill a missing one with "")."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, strict=True)
            header, starts, start = None, [], 1
            for record in reader:
                if record and header is None:
                    header = record
                elif record and len(record) != len(header):
                    raise ValueError(f"{path}, line {start}: {len(record)} fields where the header has "
                                     f"{len(header)} (an unquoted comma in a value?): {record}")
                elif record:
                    starts.append(start)
                start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    if header is None:
        raise ValueError(f"{path}: the file is empty (not even a header)")
    return starts


def value(table, row: str, column: str) -> float:
    """The one number of ``table`` at ``row`` and ``column``. Defined in "How to read this book"."""
    missing = [c for c in ("row", "column", "value") if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table must be a frame of published() with columns row, column, value; it lacks {missing}")
    hit = table[(table["row"] == row) & (table["column"] == column)]
    if len(hit) != 1:
        raise ValueError(f"{len(hit)} numbers at row {row!r}, column {column!r}; expected one")
    return float(hit["value"].iloc[0])


def _short_unit(unit: str) -> str:
    """The unit without the reader's notes that follow it (in parentheses or after a
    semicolon); the notes stay in the CSV."""
    for mark in (" (", "; "):
        if mark in unit:
            unit = unit.split(mark, 1)[0]
    return unit.strip()


class PublishedTables:
    """Several small tables shown one after another on a page, each with its caption (what
    :func:`published_table` returns). ``tables`` holds ``(caption, Styler)`` pairs;
    ``folded``: a line the reader opens to see them (``None``: shown open).
    Defined in "How to read this book"."""

    def __init__(self, tables: list, folded: str | None = None):
        self.tables, self.folded = tables, folded

    def to_html(self) -> str:
        import html

        body = "\n".join(style.set_caption(caption).to_html() for caption, style in self.tables)
        if self.folded is None:
            return body
        count = f"{len(self.tables)} table{'s' if len(self.tables) != 1 else ''}"
        return (f'<details class="book-papers"><summary>{html.escape(self.folded)} ({count})</summary>'
                f"{body}</details>")

    def _repr_html_(self) -> str:
        return self.to_html()


def published_table(frame, notes: bool = False, folded: str | None = None) -> PublishedTables:
    """Published numbers (rows of :func:`published`, possibly of several papers) as the
    page shows them: one wide table per table (or section) of each paper, a row per row
    of the paper's table and a column per quantity, captioned with the paper by author
    and year and where in it (table or section, and page). A unit shared by the whole
    table is said once, in the caption; else a column's unit goes in its header when all
    its numbers share one and the header does not name one already, and beside each
    number otherwise. A table of one row reads down, a quantity per row, each number with
    its unit. The transcriber's notes are left out of the units unless ``notes``. With
    ``folded``, the tables fold behind that line (a page with many papers' tables keeps its
    argument in view; the verdict box's "at scale" line already says what they find).
    Defined in "How to read this book"."""
    import pandas as pd

    from .report import readable_table

    if folded is not None and (not isinstance(folded, str) or not folded.strip()):
        raise ValueError(f"folded must be a line of text to open the tables by, got {folded!r}")

    missing = [c for c in COLUMNS if c not in getattr(frame, "columns", ())]
    if missing:
        raise ValueError(f"frame must hold the columns of published(), {COLUMNS}; it lacks {missing}")
    frame = frame.reset_index(drop=True).assign(
        page=lambda f: f["page"].map(lambda p: "" if pd.isna(p) else str(p).strip()),
        unit=lambda f: f["unit"] if notes else f["unit"].map(_short_unit))
    tables = []
    for (paper, where, page), group in frame.groupby(["paper", "table", "page"], sort=False):
        caption = f"{paper.split(',')[0]} · {where}" + (f", p.\u00a0{page}" if page else "")
        rows, columns = list(dict.fromkeys(group["row"])), list(dict.fromkeys(group["column"]))
        units = group.groupby("column", sort=False)["unit"].agg(lambda u: u.iloc[0] if u.nunique() == 1 else None)
        if group["unit"].nunique() == 1:  # one unit for the whole table: said once, in the caption
            caption += f" ({group['unit'].iloc[0]})"
            units[:] = ""
        for column in columns:  # a header that names its own unit, "Acc. (%)", needs no other
            if "(" in column and units[column] is not None:
                units[column] = ""
        wide = pd.DataFrame(index=pd.Index(rows, name="row"), columns=columns, dtype=object)
        for _, r in group.iterrows():
            number = f"{r['value']:,.6g}"
            wide.loc[r["row"], r["column"]] = number if units[r["column"]] is not None else f"{number} {r['unit']}"
        if len(rows) == 1 and len(columns) > 1:  # one row of many quantities: read down, not across
            wide = pd.DataFrame({rows[0]: [
                cell if units[c] is None or not units[c] else f"{cell} {units[c]}"
                for c, cell in wide.loc[rows[0]].items()]}, index=pd.Index(columns, name="quantity"))
            names, first = {}, "quantity"
        else:
            names, first = {c: f"{c} ({units[c]})" if units[c] else c for c in columns}, "row"
        table = readable_table(wide, names=names)
        # a row may be a formula with no space to break at, e.g. "L(C_min) = (C_c^min/C_min)^alpha_C^min"
        tables.append((caption, table.set_properties(subset=[first], **{"overflow-wrap": "anywhere"})))
    return PublishedTables(tables, folded)
