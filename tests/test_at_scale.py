"""The papers at scale beside each verdict: the declared mapping reads its numbers from the
papers' files, and the relation to our verdict takes every value."""

import pytest

from whydecoder.at_scale import AT_SCALE, RELATIONS, AtScale, at_scale_line, relation
from whydecoder.ledger import read_ledger
from whydecoder.papers import PAPERS_DIR


@pytest.mark.parametrize("claim_id", sorted(AT_SCALE))
def test_each_finding_reads_its_numbers_from_the_papers(claim_id):
    at = AT_SCALE[claim_id]
    assert all((PAPERS_DIR / f"{p}.csv").exists() for p in at.papers)
    line = at_scale_line(claim_id, "supported")
    assert any(ch.isdigit() for ch in at.finding()) and at.sizes in line


@pytest.mark.parametrize("ours, claim_id, expected", [
    ("supported", "C09", "agrees"), ("refuted", "C09", "disagrees"), ("nuanced", "C09", "mixed"),
    ("inconclusive", "C09", "mixed"), ("refuted", "C08", "disagrees"), ("nuanced", "C18", "agrees"),
    ("supported", "C13", "not tested at scale"), ("nuanced", "C05", "not tested at scale"),
    ("nuanced", "C01", "part of ours"), ("refuted", "C01", "part of ours")])  # T5's table is read by C01's rule
def test_the_relation_takes_every_value(ours, claim_id, expected):
    assert relation(ours, claim_id) == expected
    assert expected in RELATIONS


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        relation("maybe", "C09")
    with pytest.raises(ValueError, match="reading must be one of"):
        AtScale(("wang2022_zeroshot",), "5B", "probably", lambda: "")
    with pytest.raises(ValueError, match="papers must name files"):
        AtScale((), "5B", "supported", lambda: "")
    assert at_scale_line("C13", "supported") is None


def test_a_line_says_when_its_numbers_are_unchecked(monkeypatch):
    import whydecoder.at_scale as at

    frame = at._printed("wang2022_zeroshot").copy()
    frame.loc[0, "checked"] = at.UNCHECKED
    monkeypatch.setattr(at, "_printed", lambda paper: frame if paper == "wang2022_zeroshot" else at._printed(paper))
    assert "not yet checked by a second reader" in at_scale_line("C09", "supported")


def test_the_ledger_column_is_the_mapping_applied_to_the_verdicts():
    for row in read_ledger():
        assert row["at_scale"] == relation(row["verdict"], row["id"])
