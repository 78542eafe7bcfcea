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
    row = record_verdict("C03", "nuanced", "a line of evidence", evidence_scale="full", path=path)
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
        (("C01", "supported", "a carriage\rreturn"), "control character"),
        (("C01", "supported", "a line\u2028separator"), "control character"),
        (("C01", "supported", "a nul\x00byte"), "control character"),
        (("C01", "supported", "   "), "one non-empty line"),
        (("C01", "supported", 3.5), "one non-empty line"),
        (("C01", "supported", "ok", "chapter\rname"), "control character"),
    ],
)
def test_record_verdict_rejects_bad_input(tmp_path, args, message):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        record_verdict(*args, evidence_scale="full", path=path)
    assert path.read_bytes() == before


def test_a_smoke_run_never_changes_the_ledger(tmp_path, capsys):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    before = path.read_bytes()
    row = record_verdict("C11", "nuanced", "a smoke-scale line", evidence_scale="smoke", path=path)
    assert row["verdict"] == "nuanced" and row["evidence"] == "a smoke-scale line"
    assert path.read_bytes() == before
    assert "not recorded" in capsys.readouterr().out


@pytest.mark.parametrize("scale", ["", "Full", None, "stored"])
def test_the_evidence_scale_must_be_named(tmp_path, scale):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    with pytest.raises(ValueError, match="evidence_scale"):
        record_verdict("C01", "supported", "x", evidence_scale=scale, path=path)
    with pytest.raises(TypeError):
        record_verdict("C01", "supported", "x", path=path)  # no default: every chapter says what it rests on


HOSTILE = ['quotes "inside", and commas, and ; semicolons', "=1+1 looks like a formula", "back\\slash \\n",
           "unicode: α ≤ β — 76 %, 中文, emoji 🙂", "'single' and \"double\"\"\" quotes", "trailing comma,"]


@pytest.mark.parametrize("text", HOSTILE)
def test_any_one_line_text_round_trips(tmp_path, text):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    record_verdict("C05", "supported", text, chapter=f"ch {text}", evidence_scale="full", path=path)
    row = [r for r in read_ledger(path) if r["id"] == "C05"][0]
    assert row["evidence"] == text.strip() and row["chapter"] == f"ch {text}"
    assert len(read_ledger(path)) == len(read_ledger())


def test_rewriting_keeps_the_file_mode(tmp_path):
    path = tmp_path / "claims.csv"
    shutil.copy(LEDGER_PATH, path)
    path.chmod(0o640)
    record_verdict("C05", "refuted", "a changed line", evidence_scale="full", path=path)
    assert path.stat().st_mode & 0o777 == 0o640


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
    with pytest.raises(ValueError, match="control character"):
        validate_ledger([dict(good, claim="a\rclaim")])
    with pytest.raises(ValueError, match="expected text"):
        validate_ledger([dict(good, evidence=None)])
