"""A Sphinx extension of the book: every claim id in the text links to its ledger row.

The claims C01-C21 are named on every page; the ledger (``book/claims``) gives each row the
anchor ``claim-C01`` and so on. After the pages are read, this transform wraps each claim id
in running text (not in code, math, headings or an existing link) in a link to that row,
so no page has to write the links by hand. In the HTML a notebook cell puts out (its
tables), the ids in the text between tags are linked the same way, except inside a link,
code, a script or a style.
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


_TAG = re.compile(r"(<[^>]*>)")
_OPAQUE = ("a", "code", "pre", "script", "style", "th")  # th: the ledger's own id column heads stay plain


def link_claims_in_html(html: str, ledger: str) -> str:
    """``html`` with each claim id in its text (outside tags, links, code, scripts and
    styles) wrapped in a link to ``ledger#claim-<id>``."""
    out, inside = [], []
    for piece in _TAG.split(html):
        if piece.startswith("<") and piece.endswith(">"):
            name = re.match(r"</?\s*([a-zA-Z0-9]+)", piece)
            tag = name.group(1).lower() if name else ""
            if tag in _OPAQUE and not piece.endswith("/>"):
                if piece.startswith("</"):
                    if tag in inside:
                        inside.remove(tag)
                else:
                    inside.append(tag)
            out.append(piece)
        elif inside or not CLAIM_ID.search(piece):
            out.append(piece)
        else:
            out.append(CLAIM_ID.sub(lambda m: f'<a class="claim-link" href="{ledger}#claim-{m.group(0)}" '
                                               f'title="{m.group(0)} in the claims ledger">{m.group(0)}</a>', piece))
    return "".join(out)


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
        if self.env.docname == LEDGER:
            return
        for raw in list(self.document.findall(nodes.raw)):
            if "html" not in raw.get("format", "").split() or not CLAIM_ID.search(raw.astext()):
                continue
            linked = link_claims_in_html(raw.astext(), ledger)
            raw.replace(raw.children[0], nodes.Text(linked))


def setup(app):
    app.add_post_transform(ClaimLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
