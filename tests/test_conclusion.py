"""The book's answer from the ledger: grouping, strength of evidence, the landing page's text."""

from whydecoder import conclusion
from whydecoder.ledger import read_ledger


def rows(**verdicts):
    return [{"id": claim, "claim": f"claim {claim}", "verdict": v, "chapter": "", "evidence": ""}
            for claim, v in verdicts.items()]


def test_the_explanations_are_grouped_without_the_question():
    groups = conclusion.weigh(rows(C01="supported", C02="refuted", C12="inconclusive", C18="supported"))
    assert [r["id"] for r in groups["supported"]] == ["C01"]
    assert [r["id"] for r in groups["refuted"]] == ["C02"] and not groups["untested"]
    assert all(r["id"] != "C18" for g in groups.values() for r in g)


def test_strength_counts_a_second_line_on_real_models():
    lines = conclusion.second_lines()
    assert "C13" in lines and "C01" not in lines
    assert conclusion.strength({"id": "C13", "verdict": "supported"}, lines) == conclusion.STRENGTHS[3]
    assert conclusion.strength({"id": "C01", "verdict": "nuanced"}, lines) == conclusion.STRENGTHS[2]
    assert conclusion.strength({"id": "C13", "verdict": "inconclusive"}, lines) == conclusion.STRENGTHS[1]
    assert conclusion.strength({"id": "C01", "verdict": "untested"}, lines) == conclusion.STRENGTHS[0]


def test_the_answer_states_the_question_and_counts_by_id():
    text = conclusion.answer_markdown(rows(C01="supported", C02="supported", C03="refuted", C18="refuted"))
    assert "**refutes**" in text and "2 survive (C01 and C02)" in text and "1 fail (C03)" in text
    assert "{doc}`conclusion <../chapters/09_conclusion/conclusion>`" in text
    assert "untested" not in text.split("choice:")[1]  # empty groups are not listed


def test_the_ledger_answer_agrees_with_the_ledger():
    ledger = read_ledger()
    text = conclusion.answer_markdown(ledger)
    supported = [r["id"] for r in ledger if r["verdict"] == "supported" and r["id"] != "C18"]
    assert f"{len(supported)} survive" in text
