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


def published_table(frame, notes: bool = False):
    """Published numbers (rows of :func:`published`, possibly of several papers) as a
    table for the page: the paper by author and year, where in it (table or section and
    page), the row, the quantity, the value and its unit, without the transcriber's notes
    unless ``notes``. Defined in "How to read this book"."""
    import pandas as pd

    from .report import readable_table

    missing = [c for c in COLUMNS if c not in getattr(frame, "columns", ())]
    if missing:
        raise ValueError(f"frame must hold the columns of published(), {COLUMNS}; it lacks {missing}")

    def where(row):
        page = "" if pd.isna(row["page"]) else str(row["page"]).strip()
        return f"{row['table']}, p.\u00a0{page}" if page else row["table"]

    frame = frame.reset_index(drop=True)  # rows of several papers, concatenated
    shown = pd.DataFrame({
        "paper": frame["paper"].str.split(",").str[0].str.replace(" ", "\u00a0"),  # one line: "Jiang et al. 2024"
        "where": frame.apply(where, axis=1),
        "row": frame["row"],
        "quantity": frame["column"],
        "value": frame["value"],
        "unit": frame["unit"] if notes else frame["unit"].map(_short_unit),
    })
    table = readable_table(shown, formats={"value": "{:,.6g}"}, index=False)
    # a row may be a formula with no space to break at, e.g. "L(C_min) = (C_c^min/C_min)^alpha_C^min"
    return table.set_properties(subset=["row", "quantity"], **{"overflow-wrap": "anywhere"})
