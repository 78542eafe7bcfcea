"""Notebooks are committed without outputs: CI executes them from source."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for d in ("chapters", "book") for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_source_has_no_control_characters(path):
    """A JSON escape such as "\\bmod" is a backspace followed by "mod": MathJax then shows
    "Math input error" in the browser while Sphinx builds without a warning."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    bad = [(i, repr(ch)) for i, c in enumerate(nb["cells"]) for ch in "".join(c["source"])
           if ord(ch) < 32 and ch not in "\n"]
    assert not bad, f"{path.name}: control characters (cell, char) {bad[:5]}; write a backslash as \\\\ in the JSON"


#: What a digit in a markdown cell may belong to without having been computed: glue, math,
#: code, citations and links; claim ids, years, source ids; list numbers; names that carry
#: digits (GPT-2, T5, float32, 1.3B, 4-digit); table, figure and section numbers; the
#: options of a directive (``:width: 100%``); and the confidence level of every interval.
PROSE_ALLOWED = [
    r"\{glue:[a-z]+\}`[^`]*`", r"\{cite:[a-z]+\}`[^`]*`", r"\{(doc|numref|ref)\}`[^`]*`",
    r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"``[^`]*``", r"`[^`\n]*`", r"\]\([^)]*\)",
    r"\bC\d\d\b", r"\b(19|20)\d\d\b", r"\b00\d\b",
    r"(?m)^\s*\d+\.\s", r"\b[A-Za-z]+\w*-?\d[\w.]*", r"\b\d[\d.]*[A-Za-z]+\b", r"\b\d+-[a-z]+",
    r"\b(Tables?|Figure|Section|page|Llama)\s+\d[\d.]*(\s+and\s+\d+)?", r"\b95%",
    r"(?m)^:(width|height|scale):\s*\S+$",
]


def stray_digits(text: str) -> list[str]:
    """The lines of a markdown cell that hold a digit not covered by :data:`PROSE_ALLOWED`."""
    import re

    for pattern in PROSE_ALLOWED:
        text = re.sub(pattern, " ", text, flags=re.S)
    return [line.strip() for line in text.splitlines() if re.search(r"\d", line)]


def test_stray_digits_finds_typed_numbers_and_spares_the_allowed():
    assert stray_digits("the loss fell to 1.42 nats") == ["the loss fell to 1.42 nats"]
    assert stray_digits("with 800 steps") == ["with 800 steps"]
    assert not stray_digits("{glue:text}`c08_gap:.2f` in C08 (2022), $n = 64$, GPT-2, Table 2, 95% interval")
    assert not stray_digits("1. first\n2. second, `x = 3`, {cite:t}`haviv2022nope`, 1.3B, 4-digit")
    assert not stray_digits(":width: 100%") and stray_digits("a width of 100% here")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_numbers_in_the_prose_are_glued(path):
    """Every number a reader sees in the prose comes from the computation ({glue}), so
    the text cannot drift from the data; a sentence that depends on the data is produced
    by a code cell that chooses it."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    stray = [(i, line) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"
             for line in stray_digits("".join(c["source"]))]
    assert not stray, f"{path.name}: typed numbers in markdown cells (cell, line): {stray[:6]}"


#: Characters of code the text column shows without a scroll bar (measured in the built
#: site at Chromium's default width: a longer line is cut at the column's edge).
CODE_COLUMN = 76
HIDDEN = {"remove-input", "hide-input", "remove-cell"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_the_reader_sees_fits_the_column(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    long = [(i, len(line)) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and not HIDDEN & set(c["metadata"].get("tags", []))
            for line in "".join(c["source"]).splitlines() if len(line) > CODE_COLUMN]
    assert not long, f"{path.name}: visible code lines (cell, length) longer than {CODE_COLUMN}: {long}"
