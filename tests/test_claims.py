"""The claims as package objects and the ledger's one writer: every claim declared once,
in the package; the ledger computed from stored results only; --check names the rows that
differ; no notebook writes the ledger."""

import json

import pytest

from whydecoder import claims
from whydecoder.claims import Claim, Evidence
from whydecoder.ledger import COLUMNS, read_ledger
from whydecoder.paths import ROOT
from whydecoder.verdicts import Verdict


def test_every_ledger_claim_is_declared_once_in_the_package():
    declared = claims.all_claims()
    ledger = {row["id"]: row for row in read_ledger()}
    assert sorted(declared) == sorted(ledger) == sorted(claims.read_sources())
    for claim_id, claim in declared.items():
        assert claim.claim == ledger[claim_id]["claim"], claim_id  # the words live in the package, once
        assert claim.chapter == ledger[claim_id]["chapter"], claim_id


def test_no_notebook_writes_under_data():
    for path in sorted(ROOT.glob("chapters/*/*.ipynb")) + sorted(ROOT.glob("book/*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        for writer in ("record_verdict", "atomic_write", "save_result", "to_csv(", "write_text("):
            assert writer not in code, f"{path.relative_to(ROOT)} calls {writer}"


def _fake(claim_id, outcome="supported", stored=True, line="fine"):
    return Claim(claim_id, f"claim {claim_id}", "01_x", (lambda: {"x": 1.0}) if stored else (lambda: None),
                 lambda results: Verdict(outcome, "because"),
                 lambda results, verdict, rows: Evidence(f"{line} ({len(rows)} before)", "scope", rests_on="one task"))


def test_the_ledger_is_computed_from_stored_results_with_the_question_last():
    fake = {"C18": _fake("C18"), "C01": _fake("C01", "refuted"), "C02": _fake("C02")}
    sources = {c: {"sources": "000", "papers": "p"} for c in fake}
    rows = claims.compute_ledger(fake, sources)
    assert [r["id"] for r in rows] == ["C01", "C02", "C18"]
    assert tuple(rows[0]) == COLUMNS
    assert rows[0]["verdict"] == "refuted" and rows[0]["evidence"] == "fine (0 before) Scope: scope"
    assert rows[2]["evidence"] == "fine (2 before) Scope: scope"  # the question weighs every other row
    with pytest.raises(ValueError, match="C02: no complete stored results"):
        claims.compute_ledger(dict(fake, C02=_fake("C02", stored=False)), sources)
    with pytest.raises(ValueError, match=r"\['C03'\] are declared in the package or in"):
        claims.compute_ledger(fake, dict(sources, C03={"sources": "", "papers": ""}))


def test_check_names_the_rows_that_differ():
    fake = {"C13": _fake("C13"), "C18": _fake("C18")}  # C13: no paper at scale, so only its verdict moves
    sources = {c: {"sources": "000", "papers": "p"} for c in fake}
    committed = claims.render(claims.compute_ledger(fake, sources))
    changed = claims.render(claims.compute_ledger(dict(fake, C13=_fake("C13", "nuanced")), sources))
    assert claims.differences(committed, committed) == []
    assert claims.differences(committed, changed) == ["C13: verdict 'supported' -> 'nuanced'"]
    assert claims.differences(committed, changed.replace("\n", "\r\n"))[0].startswith("C13")
    assert "the file's text differs" in claims.differences(committed, committed.replace("\n", "\r\n"))[0]


def test_the_command_checks_the_committed_ledger(monkeypatch, capsys, tmp_path):
    fake = {"C01": _fake("C01"), "C18": _fake("C18")}
    sources = {c: {"sources": "000", "papers": "p"} for c in fake}
    monkeypatch.setattr(claims, "all_claims", lambda: fake)
    monkeypatch.setattr(claims, "read_sources", lambda path=None: sources)
    monkeypatch.setattr(claims, "LEDGER", tmp_path / "claims.csv")
    assert claims.main([]) == 0 and (tmp_path / "claims.csv").exists()
    assert claims.main(["--check"]) == 0
    fake["C01"] = _fake("C01", "refuted")
    assert claims.main(["--check"]) == 1
    assert "C01: verdict 'supported' -> 'refuted'" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("id", "C1", "look like 'C01'"), ("claim", " ", "one non-empty line"), ("scale", "smoke", "not one of"),
    ("judge", 3, "must be a function"), ("revised", None, "revised must be one line"),
    ("revised", "two\nlines", "revised must be one line"),
])
def test_a_claim_is_declared_well_or_refused(field, value, message):
    good = dict(id="C01", claim="a claim", chapter="01_x", load=dict, judge=print, evidence=print)
    with pytest.raises((ValueError, TypeError), match=message):
        Claim(**(good | {field: value}))


def test_a_rule_revised_after_results_were_seen_says_so_in_what_the_verdict_rests_on():
    def claim(revised):
        return Claim("C01", "claim", "01_x", dict, lambda results: Verdict("nuanced", "why"),
                     lambda results, verdict, rows: Evidence("text", "scope", rests_on="two tasks"), revised=revised)

    assert claim("").decide({})[1].rests_on == "two tasks"
    said = claim("its cut was set on review").decide({})[1].rests_on
    assert said == "two tasks; rule revised after results were seen (its cut was set on review)"


def test_an_unknown_claim_is_named():
    with pytest.raises(ValueError, match="unknown claim 'C99'"):
        claims.get("C99")


@pytest.mark.parametrize("rests_on, error, message", [
    (3, TypeError, "Evidence.rests_on must be text"), (None, TypeError, "must be text"),
    ("two tasks\nfive seeds", ValueError, "must be one line"),
])
def test_evidence_refuses_a_rests_on_that_is_not_one_line_of_text(rests_on, error, message):
    with pytest.raises(error, match=message):
        Evidence("text", "scope", rests_on=rests_on)
    assert Evidence("text", rests_on="one of three tasks").rests_on == "one of three tasks"


def test_the_ledger_refuses_a_verdict_that_does_not_say_what_it_rests_on():
    fake = {"C01": Claim("C01", "claim C01", "01_x", lambda: {"x": 1.0}, lambda results: Verdict("supported", "why"),
                         lambda results, verdict, rows: Evidence("fine", "scope"))}
    with pytest.raises(ValueError, match=r"claim C01: .*\(rests_on\)"):
        claims.compute_ledger(fake, {"C01": {"sources": "000", "papers": "p"}})


def test_counts_read_as_words():
    assert claims.counted(3, "task") == "three tasks" and claims.counted(1, "seed") == "one seed"
    assert claims.counted(216, "model") == "216 models" and claims.counted(2, "half", "halves") == "two halves"
    assert claims.counted(0, "cell") == "no cells"
    assert claims.counted_of(1, 3, "task") == "one of three tasks"
    assert claims.counted_of(7, 10, "comparison") == "7 of 10 comparisons"  # not "seven of 10"
    assert claims.counted_of(2, 2, "task") == "both tasks" and claims.counted_of(4, 4, "arm") == "all four arms"
    assert claims.counted_of(0, 2, "reading") == "neither reading" and claims.counted_of(0, 1, "task") == "no task"
    assert claims.counted_of(0, 3, "task") == "none of the three tasks"
    assert claims.counted_of(1, 1, "task") == "the one task"
    for bad in ((-1, "seed"), (True, "seed"), (2.0, "seed")):
        with pytest.raises(ValueError, match="count must be an int"):
            claims.counted(*bad)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        claims.counted_of(4, 3, "task")


def test_a_verdict_the_protocol_gave_rests_on_nothing_compared():
    from whydecoder.verdicts import Rule

    rule = Rule("C01", "a claim", {"min_seeds": 5}, lambda results, p: Verdict("supported", "why", {"n": 1}),
                seeds=lambda results: len(results["seeds"]))
    few = {"seeds": [0, 1]}
    assert claims.protocol_stop(rule, few, rule(few)) == ("nothing compared: two seeds, fewer than the 5 the rule "
                                                          "asks for")
    assert claims.protocol_stop(rule, few, rule(few), unit="document").startswith("nothing compared: two documents")
    nan = {"seeds": [0, 1, 2, 3, 4], "x": float("nan")}
    assert "not a finite number" in claims.protocol_stop(rule, nan, rule(nan))
    enough = {"seeds": [0, 1, 2, 3, 4]}
    assert claims.protocol_stop(rule, enough, rule(enough)) is None  # the rule decided
