"""Keep the book's execution cache honest: clear it when anything a notebook reads changed.

    python tools/book_cache.py [_build]

``make book`` executes notebooks through Jupyter Book's cache (``execute_notebooks:
cache``), which re-executes a notebook only when its own code cells change. The notebooks
also read the package (``code/``), the stored results and datasets (``data/``), the pinned
environment and the scale switch, and the cache sees none of those. This command hashes
them; when the hash differs from the one stored beside the cache by the last build, it
deletes the cache, so that every notebook is executed again. An unchanged rebuild, or one
after editing one chapter, executes only what changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the notebooks read besides their own cells.
INPUTS = ("code", "data", "requirements.txt", "constraints.txt", "pyproject.toml", "_config.yml")
#: Environment variables that change what a notebook computes.
ENVIRONMENT = ("WHYDEC_SCALE",)


def fingerprint(root: Path = ROOT) -> str:
    """A hash of every input file's path and bytes, and of the environment switches."""
    digest = hashlib.sha256()
    for name in INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or not file.exists():
                continue
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    for name in ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    return digest.hexdigest()


def refresh(build: Path, root: Path = ROOT) -> bool:
    """Delete ``build/.jupyter_cache`` if the inputs changed since it was filled; record
    the current fingerprint. Returns whether the cache was cleared."""
    cache = build / ".jupyter_cache"
    stamp = build / ".jupyter_cache.fingerprint"
    current = fingerprint(root)
    stale = not stamp.exists() or stamp.read_text().strip() != current
    if stale and cache.exists():
        shutil.rmtree(cache)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")
    return stale


if __name__ == "__main__":
    build = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build"
    cleared = refresh(build)
    print("book_cache: inputs changed, every notebook will execute" if cleared
          else "book_cache: inputs unchanged, notebooks execute only if their cells changed")
