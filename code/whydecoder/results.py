"""Writing results safely and recording where they came from.

Every stored full-scale result carries the command, the git commit and the device that
made it; files are written atomically (a temporary file, then a rename), so an
interrupted run never leaves half a file.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Defined in "How to read this book".
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic text write (UTF-8). Defined in "How to read this book"."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The current commit of the book's repository (``"unknown"`` outside git).

    Defined in "How to read this book".
    """
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description(device: str | torch.device = "cpu") -> str:
    """A human-readable name of the device a run used. Defined in "How to read this book"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def provenance(command: str, device: str | torch.device = "cpu") -> dict:
    """Where a result came from: command, commit, device, date, Python and torch versions.

    Defined in "How to read this book".
    """
    return {
        "command": command,
        "commit": git_commit(),
        "device": device_description(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }


def save_result(path: str | os.PathLike, results: dict, command: str, device: str | torch.device = "cpu") -> Path:
    """Store ``results`` as JSON with its provenance, atomically.

    Defined in "How to read this book".
    """
    payload = {"provenance": provenance(command, device), "results": results}
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def load_result(path: str | os.PathLike) -> dict | None:
    """The stored payload (``{"provenance": ..., "results": ...}``), or ``None`` if absent.

    Defined in "How to read this book".
    """
    path = Path(path)
    if not path.exists():
        return None
    payload = json.loads(path.read_text(encoding="utf-8"))
    if set(payload) != {"provenance", "results"}:
        raise ValueError(f"{path} is not a stored result (keys {sorted(payload)})")
    return payload


def settings_dict(settings) -> dict:
    """A settings dataclass as JSON-ready data (tuples become lists), for storing and comparing.

    Defined in "How to read this book".
    """
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}


def run_sections(sections: dict, settings: dict, out: str | os.PathLike | None, command: str) -> dict:
    """Compute each named section (a zero-argument function) in order and return
    ``{"settings": ..., name: result, ...}``. With ``out``, store the results atomically
    (with provenance) after every section and skip the sections already stored there, so
    an interrupted run resumes; stored results made with other settings are refused.

    Defined in "How to read this book".
    """
    stored = load_result(out) if out is not None else None
    results = dict(stored["results"]) if stored else {}
    if results.setdefault("settings", settings) != settings:
        raise ValueError(f"{out} holds results for other settings; move it away to start again")
    for name, compute in sections.items():
        if name not in results:
            results[name] = compute()
            if out is not None:
                save_result(out, results, command=command)
    return results


def per_seed_sections(names, seeds, one_run) -> dict:
    """One section per name for :func:`run_sections`: the list of ``one_run(name, seed)``
    over ``seeds``, so that a long run stores and resumes name by name.
    Defined in "How to read this book"."""
    return {name: (lambda name=name: [one_run(name, seed) for seed in seeds]) for name in names}


def experiment_command(module: str, scale: str, out) -> str:
    """The command line that reproduces a run, as stored in its provenance.
    Defined in "How to read this book"."""
    return f"python -m whydecoder.{module} --scale {scale}" + (f" --out {out}" if out else "")


def load_complete(path: str | os.PathLike, sections) -> dict | None:
    """The stored payload at ``path`` if it holds every one of ``sections``, else ``None``
    (absent, or a run still in progress). Defined in "How to read this book"."""
    stored = load_result(path)
    if stored is None or any(name not in stored["results"] for name in sections):
        return None
    return stored


def experiment_main(module: str, run, results_dir: Path, argv=None) -> None:
    """The command line of a chapter's experiments: ``python -m whydecoder.<module>
    [--scale smoke|full] [--out FILE]``; stores to ``results_dir/<scale>.json`` by default.

    Defined in "How to read this book".
    """
    import argparse

    from .scale import current_scale

    parser = argparse.ArgumentParser(prog=f"python -m whydecoder.{module}",
                                     description=f"Run and store the experiments of whydecoder.{module}.")
    parser.add_argument("--scale", choices=("smoke", "full"), default=None)
    parser.add_argument("--out", default=None, help="where to store the results (JSON)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op CPU threads (default 1: the book's small models train fastest "
                             "single-threaded, and two runs side by side then share two cores)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    from .threads import limit_threads

    limit_threads(args.threads)
    scale = current_scale(args.scale)
    out = args.out or Path(results_dir) / f"{scale}.json"
    run(scale, out)
    print(f"stored {out}")


def stored_or_run(experiment, scale: str | None = None, progress: bool = False) -> tuple[dict, bool]:
    """What a chapter shows for one experiment module (one with ``run``, ``load_complete``
    and ``RESULTS_DIR``): run it at ``scale`` (at full scale storing into
    ``RESULTS_DIR/full.json`` and resuming from it), then return the stored full-scale
    results if they are complete, else this run's, and whether they are the stored ones.
    Prints where the numbers come from. Defined in "How to read this book".
    """
    from .scale import current_scale

    scale = current_scale(scale)
    out = Path(experiment.RESULTS_DIR) / "full.json" if scale == "full" else None
    measured = experiment.run(scale, out=out, progress=progress)
    stored = experiment.load_complete()
    if stored:
        prov = stored["provenance"]
        print("stored full-scale results:", prov["command"])
        print("  commit", prov["commit"], "|", prov["device"], "|", prov["date"])
        return stored["results"], True
    print("no stored full-scale results: showing this run's", scale, "numbers")
    return measured, False
