"""The HTML pieces of the book's pages: the verdict box links its claim to the ledger."""

import pandas as pd
import pytest

from whydecoder import report
from whydecoder.report import LEDGER_FROM_CHAPTER, readable_table, setting_note, verdict_box
from whydecoder.verdicts import Rule, Verdict

RULE = Rule("C09", "a <statement>", {"margin": 0.05}, lambda results, p: Verdict("supported", "why"))


def test_the_verdict_box_links_its_claim_to_its_ledger_row_and_escapes_text():
    box = verdict_box("C09", "claim & more", RULE, Verdict("refuted", "because <b>"), "evidence", "scope")
    assert f'href="{LEDGER_FROM_CHAPTER}#claim-C09"' in box
    assert "claim &amp; more" in box and "because &lt;b&gt;" in box and "a &lt;statement&gt;" in box
    assert RULE.fingerprint() in box and "margin 0.05" in box
    assert "Rests on" not in box  # nothing said, no row


def test_the_verdict_box_says_what_the_verdict_rests_on():
    box = verdict_box("C09", "claim", RULE, Verdict("refuted", "because"), "evidence", "scope",
                      rests_on="one of three tasks learned by both arms <regression>")
    assert "Rests on" in box and "one of three tasks learned by both arms &lt;regression&gt;" in box
    assert box.index("Verdict") < box.index("Rests on") < box.index("At scale") < box.index("<details")
    # said once: the rule, the evidence and the scope fold away below the verdict
    assert box.index("<details") < box.index("Tested") < box.index("Evidence") < box.index("Scope")


def test_a_rule_revised_after_results_were_seen_says_so_instead_of_fixed_before_the_run():
    fixed = verdict_box("C09", "claim", RULE, Verdict("refuted", "because"), "evidence", "scope")
    assert "rule fixed before the run" in fixed
    revised = verdict_box("C09", "claim", RULE, Verdict("refuted", "because"), "evidence", "scope",
                          revised="its cut was chosen <on review>")
    assert "rule fixed before the run" not in revised
    assert "rule revised after results were seen: its cut was chosen &lt;on review&gt;. Its parameters: margin" in revised


def test_readable_tables_have_words_for_headers_and_a_dash_for_missing_values():
    html = readable_table(pd.DataFrame({"held_out_loss": [0.5, None]}), formats={"held_out_loss": "{:.2f}"},
                          index=False).to_html()
    assert "held out loss" in html and "0.50" in html and "–" in html and "nan" not in html.lower()


def test_a_named_index_heads_its_own_column_instead_of_a_lone_header_row():
    df = pd.DataFrame({"loss": [0.5, 0.25]}, index=pd.Index(["a", "b"], name="cell"))
    html = readable_table(df).to_html()
    assert "index_name" not in html and "cell" in html and ">a<" in html.replace(" ", "")


def test_large_numbers_read_as_words():
    from whydecoder.report import large_number

    assert large_number(51_700_000) == "51.7 million"
    assert large_number(1.234e9) == "1.23 billion"
    assert large_number(2.5e12) == "2.5 trillion"
    assert large_number(2.41e15) == "2.41 quadrillion"  # not "2.41e+03 trillion"
    assert large_number(12_345) == "12.3 thousand"
    assert large_number(0.5) == "0.5"


def test_tables_and_notes_show_angle_brackets_as_text():
    """A cell reading ``<bos> a a`` must not become an unknown HTML tag the browser drops."""
    df = pd.DataFrame({"input": ["<bos> a a"], "x": [1.5]}).set_index("input")
    html = readable_table(df).to_html()
    assert "&lt;bos&gt; a a" in html and "<bos>" not in html
    note = setting_note("width 64 & <mask> tokens")._repr_html_()
    assert note == '<p class="book-note">width 64 &amp; &lt;mask&gt; tokens</p>'


def test_provenance_folds_behind_one_line():
    from whydecoder.report import folded_note_html

    note = folded_note_html("Stored <results>", "made by <code>x</code>")._repr_html_()
    assert note == ('<details class="book-note"><summary>Stored &lt;results&gt;</summary>'
                    '<p>made by <code>x</code></p></details>')
    with pytest.raises(TypeError, match="summary and markup must be text"):
        folded_note_html("a", None)


def test_the_ledger_reads_at_a_glance_and_folds_its_evidence():
    from whydecoder.report import ledger_html

    row = {"id": "C09", "claim": "a claim", "sources": "000", "papers": "Wang et al. 2022",
           "chapter": "03_encoder_vs_decoder", "verdict": "nuanced", "reason": "best, but not everywhere",
           "rests_on": "one of four cells", "evidence": "loss 1.0 <2.0>", "at_scale": "mixed"}
    table = ledger_html([row])
    assert table.count("<th style") == 4 and 'id="claim-C09"' in table
    order = ["nuanced", "at scale: mixed", "best, but not everywhere", "rests on: one of four cells", "<details",
             "loss 1.0 &lt;2.0&gt;"]
    assert [table.index(x) for x in order] == sorted(table.index(x) for x in order)
    assert "Wang et al. 2022" in table and "Encoder vs decoder" in table


def test_a_claim_links_to_a_chapter_or_to_one_page_in_it():
    """A chapter folder links to its opening page; ``folder/page`` to that page; a page
    that does not exist yet links nowhere."""
    assert report.chapter_page("03_encoder_vs_decoder") == "../chapters/03_encoder_vs_decoder/encoder_vs_decoder.html"
    assert report.chapter_page("03_encoder_vs_decoder/positions") == "../chapters/03_encoder_vs_decoder/positions.html"
    assert report.chapter_title("03_encoder_vs_decoder/positions").startswith("Positions")
    assert report.chapter_page("03_encoder_vs_decoder/no_such_page") is None
