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
