"""The claims ledger ``data/claims.csv``: one row per popular claim, with its verdict and
one line of evidence, read and validated here. Its one writer is :mod:`whydecoder.claims`,
which computes every row from the stored full-scale results (or a dataset), never from a
smoke run. Explained in "The claims ledger".
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from .paths import DATA
from .verdicts import OUTCOMES

COLUMNS = ("id", "claim", "sources", "papers", "chapter", "verdict", "reason", "rests_on", "evidence", "at_scale")
VERDICTS = OUTCOMES  # one list of outcomes for the whole book
LEDGER_PATH = DATA / "claims.csv"


def read_ledger(path: str | Path = LEDGER_PATH) -> list[dict]:
    """The ledger's rows as dicts, validated. Defined in "The claims ledger"."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                if None in row or None in row.values():  # more, or fewer, fields than the header
                    n = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None, []))
                    raise ValueError(f"{path}, line {reader.line_num}: {n} fields where the header has "
                                     f"{len(reader.fieldnames)} (an unquoted comma?)")
                rows.append(row)
    except (csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    try:
        validate_ledger(rows)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return rows


def validate_ledger(rows: list[dict]) -> None:
    """Raise ``ValueError`` naming the first bad column, id or verdict.

    Defined in "The claims ledger".
    """
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise TypeError(f"rows must be a list of dicts (one per claim), got {type(rows).__name__}"
                        + (f" of {sorted({type(r).__name__ for r in rows})}" if isinstance(rows, list) else ""))
    if not rows:
        raise ValueError("the claims ledger is empty")
    columns = tuple(rows[0].keys())
    if columns != COLUMNS:
        raise ValueError(f"ledger columns {columns} differ from the expected {COLUMNS}")
    seen = set()
    for i, row in enumerate(rows):
        if tuple(row.keys()) != COLUMNS:
            raise ValueError(f"row {i}: columns {tuple(row.keys())} differ from the expected {COLUMNS}")
        for column in COLUMNS:
            _check_one_line(row.get(column), f"row {i}, column {column!r}")
            _check_trimmed(row[column], f"row {i}, column {column!r}")
        cid = row["id"]
        if not re.fullmatch(r"C\d\d", cid or ""):
            raise ValueError(f"row {i}: claim id {cid!r} is not of the form C01")
        if cid in seen:
            raise ValueError(f"row {i}: claim id {cid} appears twice")
        seen.add(cid)
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"claim {cid}: verdict {row['verdict']!r} is not one of {VERDICTS}")
        if not row["claim"].strip():
            raise ValueError(f"claim {cid}: empty claim text")
        from .at_scale import RELATIONS

        if row["at_scale"] not in RELATIONS:
            raise ValueError(f"claim {cid}: at_scale {row['at_scale']!r} is not one of {RELATIONS}")
        if row["verdict"] != "untested" and not row["evidence"].strip():
            raise ValueError(f"claim {cid}: verdict {row['verdict']!r} needs one line of evidence")
        if row["verdict"] != "untested" and not row["reason"].strip():
            raise ValueError(f"claim {cid}: verdict {row['verdict']!r} needs its reason, in one line")
        if row["verdict"] != "untested" and not row["rests_on"].strip():
            raise ValueError(f"claim {cid}: verdict {row['verdict']!r} needs to say what it rests on (rests_on)")


def _check_one_line(text, where: str) -> None:
    """Refuse a value that is not a string or that holds a line break or a control
    character (a carriage return once left a ledger that no later read could parse)."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: expected text, got {text!r}")
    bad = [ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp")]
    if bad:
        raise ValueError(f"{where}: {text[:60]!r} holds a line break or control character {bad[0]!r}; "
                         "the ledger keeps one line per field")


def _check_trimmed(text: str, where: str) -> None:
    """Refuse a value with spaces at either end, or of spaces only: it reads as empty, or as
    another value, and a comparison with the committed ledger fails on it."""
    if text != text.strip():
        raise ValueError(f"{where}: {text[:60]!r} has spaces at either end (or is nothing but spaces)")
