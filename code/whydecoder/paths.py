"""Where the book's files are: the one place that knows the repository's layout.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

from pathlib import Path

#: The repository root (the package lives in ``code/whydecoder``).
ROOT = Path(__file__).resolve().parents[2]
#: Datasets, the claims ledger, papers' tables and stored full-scale results.
DATA = ROOT / "data"
#: The chapters' notebooks.
CHAPTERS = ROOT / "chapters"
#: Smoke-scale results of the command lines (not the book's; ignored by git).
RUNS = ROOT / "runs"


def results_dir(experiment: str) -> Path:
    """The folder of an experiment's stored results, ``data/<experiment>``.

    Defined in "How to read this book".
    """
    if not experiment or "/" in experiment or experiment.startswith("."):
        raise ValueError(f"experiment name {experiment!r} is not a plain folder name")
    return DATA / experiment
