"""The book's Sphinx transform that links claim ids to the ledger: what it cuts out of text."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

from claim_links import link_claims_in_html, split_claims  # noqa: E402


def test_claim_ids_are_cut_out_and_the_text_kept_whole():
    text = "C09 and C10 (after C21), not C22, C00 or XC05."
    pieces = split_claims(text)
    assert "".join(p for p, _ in pieces) == text
    assert [c for _, c in pieces if c] == ["C09", "C10", "C21"]


def test_text_without_claims_is_one_piece():
    assert split_claims("no claims here") == [("no claims here", None)]


def test_claim_ids_in_html_text_are_linked_but_not_in_links_code_or_tags():
    html = ('<table><tr><td>C19 and C20</td><td title="C21"><a href="x">C17</a></td>'
            '<td><code>C05</code></td></tr></table>')
    out = link_claims_in_html(html, "../book/claims.html")
    assert out.count('class="claim-link"') == 2
    assert 'href="../book/claims.html#claim-C19"' in out and 'href="../book/claims.html#claim-C20"' in out
    assert 'title="C21"' in out and '<a href="x">C17</a>' in out and "<code>C05</code>" in out
    assert link_claims_in_html("<p>no claims</p>", "l") == "<p>no claims</p>"
