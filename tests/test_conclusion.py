"""The book's answer from the ledger: grouping, strength of evidence, the landing page's text."""

from whydecoder import conclusion
from whydecoder.ledger import read_ledger


def rows(**verdicts):
    return [{"id": claim, "claim": f"claim {claim}", "verdict": v, "rests_on": "", "chapter": "", "evidence": ""}
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
    text = conclusion.answer_markdown(rows(C01="supported", C02="supported", C03="refuted", C05="nuanced",
                                           C18="refuted"))
    assert "understanding tasks) refutes it" in text and "**nuanced**" in text  # ours, and the papers at scale
    assert "{doc}`fair head-to-head <../chapters/08_scale/head_to_head>`" in text
    assert "Of the 3 reasons offered for decoder-only, 2 hold (C01 and C02) and 1 fails (C03)" in text
    assert "of the 1 counter-argument, 1 holds only in part (C05)" in text
    assert "{doc}`conclusion <../chapters/09_conclusion/conclusion>`" in text
    assert "untested" not in text.split("<div")[0]  # empty groups are not listed
    assert "conclusion <" not in conclusion.answer_markdown(rows(C01="supported", C18="refuted"), links=False)


def test_the_ledger_answer_agrees_with_the_ledger():
    ledger = read_ledger()
    text = conclusion.answer_markdown(ledger)
    reasons = [r["id"] for r in ledger if r["verdict"] == "supported" and r["id"] in conclusion.ROLES["reason"]]
    assert f"{len(reasons)} hold" in text or f"{len(reasons)} holds" in text
    assert all(f'>{r["id"]}' in text for r in ledger if r["id"] != "C18")  # every claim in the chart


def test_every_claim_but_the_question_has_one_role():
    ids = [r["id"] for r in read_ledger() if r["id"] != conclusion.QUESTION]
    placed = [c for group in conclusion.ROLES.values() for c in group]
    assert sorted(placed) == sorted(ids)
    assert conclusion.role("C15") == "context"


def test_the_stated_model_sizes_match_the_experiments():
    """The landing page's "about two thousand to six hundred thousand parameters": the
    scale sweep's smallest pretrained model and the head-to-head's largest (chapter 3's
    largest, under half a million, lies between)."""
    import json

    from whydecoder import head_to_head
    from whydecoder.experiments import ch08_scale
    from whydecoder.paths import DATA

    smallest = ch08_scale.parameters(ch08_scale.SETTINGS["full"].sizes[0][0], ch08_scale.SETTINGS["full"])
    full = head_to_head.SETTINGS["full"]
    largest = head_to_head.parameters(full.size_names()[-1], full)
    stored = json.loads((DATA / "zeroshot" / "full.json").read_text())["results"]
    chapter3 = max(r["parameters"] for runs in stored.values() if isinstance(runs, list) for r in runs
                   if isinstance(r, dict) and "parameters" in r)
    assert 1_000 <= smallest <= 3_000 and "two thousand" in conclusion.MODEL_SIZES
    assert 550_000 <= largest <= 650_000 and "six hundred thousand" in conclusion.MODEL_SIZES
    assert chapter3 < largest


def test_the_conclusion_weighs_every_claim_twice():
    table = conclusion.two_columns_html(read_ledger())
    for row in read_ledger():
        if row["id"] != conclusion.QUESTION:
            assert f">{row['id']}: " in table
    assert "Reasons offered for decoder-only" in table and "not tested at scale" in table
    assert "papers at scale" in table and "our small models" in table
