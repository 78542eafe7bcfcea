"""Where a stored result came from: the command, the git commit, the device, the date and
the versions that made it; the fingerprint of the package's code; the rules a stored file
stands under after its migrations; and which of its sections were made by code that has
changed since.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .paths import ROOT


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The current commit of the book's repository (``"unknown"`` outside git).

    Defined in "How to read this book".
    """
    repo = Path(repo) if repo is not None else ROOT
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        # results under data/ are what a run writes, not the code that made them: they do not count as dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)data"],
                               cwd=repo, capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description(device: str | torch.device = "cpu") -> str:
    """A human-readable name of the device a run used. Defined in "How to read this book"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def code_fingerprint() -> str:
    """A short hash of the package's source (every ``.py`` file of ``whydecoder``): stored
    with each section, so that a run is never resumed under other code.

    Defined in "How to read this book".
    """
    import hashlib

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def provenance(command: str, device: str | torch.device | None = None) -> dict:
    """Where a result came from: command, commit, device, date, Python and torch versions.

    ``device`` defaults to the one the command line chose (:func:`whydecoder.run_scale.current_device`).

    Defined in "How to read this book".
    """
    if device is None:
        from .run_scale import current_device

        device = current_device()
    return {
        "command": command,
        "commit": git_commit(),
        "device": device_description(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def judged_by(stored: dict) -> dict[str, str]:
    """``{claim: fingerprint}`` of the rules the stored results stand under: the ones
    stored with their settings, carried through each migration recorded in their
    provenance (:mod:`whydecoder.migrate`). Defined in "How to read this book"."""
    rules = dict((stored["results"].get("settings") or {}).get("rules") or {})
    for migration in stored["provenance"].get("migrations") or []:
        for claim, change in (migration.get("rules") or {}).items():
            if rules.get(claim) == change.get("from"):
                rules[claim] = change.get("to")
    return rules


def code_changes(stored: dict, makers: dict[str, str], trees: dict | None = None, first: str = "") -> str | None:
    """A sentence saying whether the code that computed the stored sections has been edited
    since (``makers``: today's fingerprint of each section's code; ``trees``: their digests,
    to name what changed; ``first``: the experiment's module, named first), or ``None``
    when every section was made by today's code. Defined in "How to read this book"."""
    from .fingerprint import changed as changed_names

    made = stored["provenance"].get("sections") or {}
    names = [name for name in stored["results"] if name != "settings"]
    unknown = [n for n in names if not (made.get(n) or {}).get("maker")]
    changed = [n for n in names if n not in unknown and made[n]["maker"] != makers.get(n)]
    if not unknown and not changed:
        return None
    parts = []
    if changed:
        then = (stored["provenance"].get("maker_trees") or {}).get(made[changed[0]]["maker"])
        now = (trees or {}).get(makers.get(changed[0]))
        what = ""
        if then is not None and now is not None:
            diff = changed_names(then, now, first)
            listed = [f"{len(diff['edited'])} edited (among them {', '.join(diff['edited'][:4])})" if diff["edited"]
                      else "", f"{len(diff['added'])} newly called" if diff["added"] else "",
                      f"{len(diff['dropped'])} no longer called" if diff["dropped"] else ""]
            what = f": of the functions it calls, {', '.join(x for x in listed if x)}"
        parts.append(f"The code that computed {len(changed)} of these {len(names)} sections has changed since{what}; "
                     "they were not recomputed")
    if unknown:
        parts.append(f"Which code computed {len(unknown)} of these {len(names)} sections was not recorded (they "
                     "predate the record), so whether it has changed since cannot be told")
    return ". ".join(parts) + "."
