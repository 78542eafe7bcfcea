"""The claims ledger ``data/claims.csv``: one row per popular claim, with the verdict a
chapter computed and one line of evidence.

Chapters call :func:`record_verdict` after asserting their result; CI then checks that
the committed ledger equals what the notebooks computed. Explained in "The claims ledger".
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .results import atomic_write_text

COLUMNS = ("id", "claim", "sources", "papers", "chapter", "verdict", "evidence")
VERDICTS = ("supported", "refuted", "nuanced", "untested")
LEDGER_PATH = Path(__file__).resolve().parents[2] / "data" / "claims.csv"


def read_ledger(path: str | Path = LEDGER_PATH) -> list[dict]:
    """The ledger's rows as dicts, validated. Defined in "The claims ledger"."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    validate_ledger(rows)
    return rows


def validate_ledger(rows: list[dict]) -> None:
    """Raise ``ValueError`` naming the first bad column, id or verdict.

    Defined in "The claims ledger".
    """
    if not rows:
        raise ValueError("the claims ledger is empty")
    columns = tuple(rows[0].keys())
    if columns != COLUMNS:
        raise ValueError(f"ledger columns {columns} differ from the expected {COLUMNS}")
    seen = set()
    for i, row in enumerate(rows):
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
        if row["verdict"] != "untested" and not row["evidence"].strip():
            raise ValueError(f"claim {cid}: verdict {row['verdict']!r} needs one line of evidence")


def _render(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def record_verdict(claim_id: str, verdict: str, evidence: str, chapter: str | None = None, path: str | Path = LEDGER_PATH) -> dict:
    """Set a claim's verdict and evidence (and chapter); rewrite the file only if it changed.

    Returns the updated row. Defined in "The claims ledger".
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
    if "\n" in evidence or not evidence.strip():
        raise ValueError(f"evidence must be one non-empty line, got {evidence!r}")
    rows = read_ledger(path)
    match = [row for row in rows if row["id"] == claim_id]
    if not match:
        raise ValueError(f"unknown claim id {claim_id!r}; the ledger has {[r['id'] for r in rows]}")
    row = match[0]
    new = dict(row, verdict=verdict, evidence=evidence.strip(), chapter=chapter or row["chapter"])
    if new != row:
        row.update(new)
        validate_ledger(rows)
        atomic_write_text(path, _render(rows))
    return row
