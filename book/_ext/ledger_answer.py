"""A Sphinx extension of the book: the ``ledger-answer`` directive, the short answer the
landing page opens with, computed from ``data/claims.csv`` at build time
(:func:`whydecoder.conclusion.answer_markdown`), so the page never disagrees with the ledger."""

from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class LedgerAnswer(SphinxDirective):
    """The answer as MyST markdown, parsed in place."""

    has_content = False

    def run(self):
        from whydecoder.conclusion import answer_markdown
        from whydecoder.ledger import LEDGER_PATH

        self.env.note_dependency(str(LEDGER_PATH))  # rebuilt when the ledger changes
        container = nodes.container(classes=["ledger-answer"])
        self.state.nested_parse(StringList(answer_markdown().splitlines(), source="data/claims.csv"),
                                self.content_offset, container)
        return [container]


def setup(app):
    app.add_directive("ledger-answer", LedgerAnswer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
