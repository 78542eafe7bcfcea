"""The book's Sphinx transform that links claim ids to the ledger: what it cuts out of text."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from claim_links import split_claims  # noqa: E402


def test_claim_ids_are_cut_out_and_the_text_kept_whole():
    text = "C09 and C10 (after C21), not C22, C00 or XC05."
    pieces = split_claims(text)
    assert "".join(p for p, _ in pieces) == text
    assert [c for _, c in pieces if c] == ["C09", "C10", "C21"]


def test_text_without_claims_is_one_piece():
    assert split_claims("no claims here") == [("no claims here", None)]
