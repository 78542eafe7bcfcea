"""A Sphinx extension of the book: every claim id in the text links to its ledger row.

The claims C01-C21 are named on every page; the ledger (``book/claims``) gives each row the
anchor ``claim-C01`` and so on. After the pages are read, this transform wraps each claim id
in running text (not in code, math, raw HTML, headings or an existing link) in a link to
that row, so no page has to write the links by hand.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

#: The claim ids of ``../shared/claims.md``.
CLAIM_ID = re.compile(r"\bC(0[1-9]|1[0-9]|2[01])\b")
LEDGER = "book/claims"
#: Where a claim id stays plain text.
SKIP = (nodes.reference, nodes.literal, nodes.literal_block, nodes.raw, nodes.math, nodes.math_block, nodes.title,
        nodes.FixedTextElement)


def split_claims(text: str) -> list[tuple[str, str | None]]:
    """``text`` cut into pieces ``(piece, claim id or None)``, in order, so that joining the
    pieces gives ``text`` back."""
    pieces, at = [], 0
    for match in CLAIM_ID.finditer(text):
        if match.start() > at:
            pieces.append((text[at:match.start()], None))
        pieces.append((match.group(0), match.group(0)))
        at = match.end()
    if at < len(text):
        pieces.append((text[at:], None))
    return pieces


def _skipped(node: nodes.Node) -> bool:
    while node is not None:
        if isinstance(node, SKIP):
            return True
        node = node.parent
    return False


class ClaimLinks(SphinxPostTransform):
    default_priority = 900
    formats = ("html",)

    def run(self, **kwargs) -> None:
        if LEDGER not in self.env.all_docs:
            return
        ledger = self.app.builder.get_relative_uri(self.env.docname, LEDGER)
        for text in list(self.document.findall(nodes.Text)):
            if not CLAIM_ID.search(text.astext()) or _skipped(text.parent):
                continue
            new = []
            for piece, claim in split_claims(text.astext()):
                if claim is None:
                    new.append(nodes.Text(piece))
                else:
                    new.append(nodes.reference(piece, piece, refuri=f"{ledger}#claim-{claim}", internal=True,
                                               classes=["claim-link"], reftitle=f"{claim} in the claims ledger"))
            text.parent.replace(text, new)


def setup(app):
    app.add_post_transform(ClaimLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
