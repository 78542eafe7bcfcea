"""What a chapter shows for an experiment: its stored full-scale results when they are
complete (with a note saying where they came from), else a run at the page's scale.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .provenance import code_changes
from .results import current_makers


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def _say_provenance(command: str, commit: str, date: str, device: str, notes=()) -> None:
    """Where a page's numbers come from: a :func:`whydecoder.report.note_html` on the page
    in a notebook, short lines elsewhere; ``notes``: further sentences (code changed since,
    migrations)."""
    if _in_notebook():
        from IPython.display import display

        from .report import folded_note_html

        display(folded_note_html(
            f"Stored full-scale results, commit {commit[:7]}, {date[:10]} (where they come from)",
            f"Made by <code>{html.escape(command)}</code> at commit <code>{html.escape(commit)}</code> on "
            f"{html.escape(date)}, {html.escape(device)}." + "".join(f" {html.escape(n)}" for n in notes)))
        return
    print("stored full-scale results, made by")
    print(" ", command)
    print("  commit", commit, "on", date)
    print("  device", device)
    for note in notes:
        print(" ", note)


def stored_or_run(experiment, scale: str | None = None, progress: bool = False) -> tuple[dict, bool]:
    """What a chapter shows for one experiment module (one with ``run``, ``load_complete``
    and ``RESULTS_DIR``): the stored full-scale results if they are complete, else a run at
    ``scale`` (at full scale storing into ``RESULTS_DIR/full.json`` and resuming from it),
    and whether they are the stored ones. At smoke scale nothing runs when the stored
    results are complete: the page shows them, and the module's own tests run its smoke
    scale. Says where the numbers come from (a note on the page in a notebook). Defined in "How to read this book".
    """
    from .run_scale import current_scale

    scale = current_scale(scale)
    out = Path(experiment.RESULTS_DIR) / "full.json" if scale == "full" else None
    stored = experiment.load_complete() if out is None else None
    measured = None if stored else experiment.run(scale, out=out, progress=progress)
    if out is not None:
        stored = experiment.load_complete()
    if stored:
        prov = stored["provenance"]
        # a run made in another checkout stored its default output path in full: show the command as it reads here
        command = re.sub(r" --out \S*/data/[\w-]+/full\.json$", "", prov["command"])
        name = getattr(experiment, "__name__", "")
        current = f"python -m {name} --scale full"
        if name.startswith("whydecoder.") and command != current:
            command = f"{current} (stored as: {command}, before the experiments moved)"
        _say_provenance(command, prov["commit"][:12], prov["date"], prov["device"], provenance_notes(stored, experiment))
        return stored["results"], True
    print("no stored full-scale results: showing this run's", scale, "numbers")
    return measured, False


def provenance_notes(stored: dict, experiment) -> list[str]:
    """Sentences for a page's provenance note: whether the stored sections were made by
    today's code (:func:`code_changes`), and each migration of its rules recorded since.
    Defined in "How to read this book"."""
    notes = []
    trees: dict = {}
    first = experiment.__name__.rsplit(".", 1)[-1] if hasattr(experiment, "__name__") else ""
    changes = code_changes(stored, current_makers(experiment, "full", trees), trees, first)
    if changes:
        notes.append(changes)
    moved = [m for m in stored["provenance"].get("migrations") or [] if m.get("rules")]
    if moved:
        times = {}
        for m in moved:
            for claim in m["rules"]:
                times[claim] = times.get(claim, 0) + 1
        words = {1: "once", 2: "twice"}
        by_count = {}
        for claim, n in sorted(times.items()):
            by_count.setdefault(n, []).append(claim)
        said = "; ".join(f"{', '.join(c)} {words.get(n, f'{n} times')}" for n, c in sorted(by_count.items()))
        notes.append(f"The fingerprints of the rules changed after these results were judged ({said}; the last "
                     f"time because {moved[-1].get('why', '')}). Each time, the old rules (run from a copy of "
                     "their commit) and the new gave identical outcomes, reasons and numbers on these results.")
    return notes
