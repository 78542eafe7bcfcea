import re
from pathlib import Path

import pytest

from whydecoder.ledger import COLUMNS, LEDGER_PATH, VERDICTS, read_ledger, validate_ledger

SHARED_CLAIMS = Path(__file__).resolve().parents[1].parent / "shared" / "claims.md"


def test_ledger_is_valid_and_complete():
    rows = read_ledger()
    assert [r["id"] for r in rows] == [f"C{i:02d}" for i in range(1, 22)]
    assert all(r["verdict"] in VERDICTS for r in rows)


@pytest.mark.skipif(not SHARED_CLAIMS.exists(), reason="the team's claims.md is not beside this checkout")
def test_every_claim_of_the_shared_ledger_has_a_row():
    ids = set(re.findall(r"^\| (C\d\d) \|", SHARED_CLAIMS.read_text(encoding="utf-8"), flags=re.M))
    assert ids and ids == {r["id"] for r in read_ledger()}


HOSTILE = ['quotes "inside", and commas, and ; semicolons', "=1+1 looks like a formula", "back\\slash \\n",
           "unicode: α ≤ β — 76 %, 中文, emoji 🙂", "'single' and \"double\"\"\" quotes", "trailing comma,"]


@pytest.mark.parametrize("text", HOSTILE)
def test_any_one_line_text_round_trips_through_the_writer(tmp_path, text):
    from whydecoder.claims import render

    rows = read_ledger()
    for row in rows:
        if row["id"] == "C05":
            row.update(evidence=text, chapter=f"ch {text}")
    path = tmp_path / "claims.csv"
    path.write_text(render(rows), encoding="utf-8")
    row = [r for r in read_ledger(path) if r["id"] == "C05"][0]
    assert row["evidence"] == text and row["chapter"] == f"ch {text}"
    assert len(read_ledger(path)) == len(rows)


def test_the_writer_renders_the_committed_ledger_byte_for_byte():
    from whydecoder.claims import render

    assert render(read_ledger()) == LEDGER_PATH.read_text(encoding="utf-8")


def test_validate_catches_bad_rows():
    good = dict(zip(COLUMNS, ["C01", "a claim", "000", "x", "ch", "untested", "", "", "", "not tested at scale"],
                    strict=True))
    validate_ledger([good])
    with pytest.raises(ValueError, match="at_scale 'perhaps'"):
        validate_ledger([dict(good, at_scale="perhaps")])
    with pytest.raises(ValueError, match="'C1'"):
        validate_ledger([dict(good, id="C1")])
    with pytest.raises(ValueError, match="appears twice"):
        validate_ledger([good, good])
    with pytest.raises(ValueError, match="'maybe'"):
        validate_ledger([dict(good, verdict="maybe")])
    with pytest.raises(ValueError, match="needs one line of evidence"):
        validate_ledger([dict(good, verdict="supported", rests_on="two of three tasks")])
    with pytest.raises(ValueError, match=r"claim C01: verdict 'supported' needs its reason"):
        validate_ledger([dict(good, verdict="supported", evidence="a gap of 0.1", rests_on="two of three tasks")])
    with pytest.raises(ValueError, match=r"claim C01: verdict 'supported' needs .*\(rests_on\)"):
        validate_ledger([dict(good, verdict="supported", evidence="a gap of 0.1", reason="because")])
    validate_ledger([dict(good, verdict="supported", evidence="a gap of 0.1", reason="because",
                          rests_on="two of three tasks")])
    with pytest.raises(ValueError, match="control character"):
        validate_ledger([dict(good, claim="a\rclaim")])
    with pytest.raises(ValueError, match="expected text"):
        validate_ledger([dict(good, evidence=None)])
