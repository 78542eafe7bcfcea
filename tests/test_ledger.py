import re
import shutil
from pathlib import Path

import pytest

from whydecoder.ledger import COLUMNS, LEDGER_PATH, VERDICTS, read_ledger, record_verdict, validate_ledger

SHARED_CLAIMS = Path(__file__).resolve().parents[1].parent / "shared" / "claims.md"


def test_ledger_is_valid_and_complete():
    rows = read_ledger()
    assert [r["id"] for r in rows] == [f"C{i:02d}" for i in range(1, 22)]
    assert all(r["verdict"] in VERDICTS for r in rows)


@pytest.mark.skipif(not SHARED_CLAIMS.exists(), reason="the team's claims.md is not beside this checkout")
def test_every_claim_of_the_shared_ledger_has_a_row():
    ids = set(re.findall(r"^\| (C\d\d) \|", SHARED_CLAIMS.read_text(encoding="utf-8"), flags=re.M))
    assert ids and ids == {r["id"] for r in read_ledger()}


def test_record_verdict_updates_one_row(tmp_path):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    row = record_verdict("C03", "nuanced", "a line of evidence", path=path)
    assert row["verdict"] == "nuanced"
    rows = read_ledger(path)
    assert [r for r in rows if r["id"] == "C03"][0]["evidence"] == "a line of evidence"
    assert [r["verdict"] for r in rows if r["id"] != "C03"] == [r["verdict"] for r in read_ledger() if r["id"] != "C03"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("C99", "supported", "x"), "unknown claim id 'C99'"),
        (("C01", "maybe", "x"), "verdict 'maybe'"),
        (("C01", "supported", "two\nlines"), "one non-empty line"),
    ],
)
def test_record_verdict_rejects_bad_input(tmp_path, args, message):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    with pytest.raises(ValueError, match=message):
        record_verdict(*args, path=path)


def test_validate_catches_bad_rows():
    good = dict(zip(COLUMNS, ["C01", "a claim", "000", "x", "ch", "untested", ""]))
    validate_ledger([good])
    with pytest.raises(ValueError, match="'C1'"):
        validate_ledger([dict(good, id="C1")])
    with pytest.raises(ValueError, match="appears twice"):
        validate_ledger([good, good])
    with pytest.raises(ValueError, match="'maybe'"):
        validate_ledger([dict(good, verdict="maybe")])
    with pytest.raises(ValueError, match="needs one line of evidence"):
        validate_ledger([dict(good, verdict="supported")])
