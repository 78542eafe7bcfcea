"""Writing results safely and recording where they came from.

Every stored full-scale result carries the command, the git commit and the device that
made it; files are written atomically (a temporary file, then a rename), so an
interrupted run never leaves half a file.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import html
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .paths import ROOT, RUNS


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Defined in "How to read this book".
    """
    path = Path(path)
    if not path.name:
        raise ValueError(f"not a file path: {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # keep the file's mode (mkstemp makes 0600)
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
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


def save_result(path: str | os.PathLike, results: dict, command: str, device: str | torch.device = "cpu",
                sections: dict | None = None) -> Path:
    """Store ``results`` as JSON with its provenance, atomically. ``sections`` maps each
    section's name to the provenance of the run that computed it (a resumed run keeps the
    commit and date of the sections it did not recompute).

    Defined in "How to read this book".
    """
    prov = provenance(command, device)
    if sections:
        prov["sections"] = sections
    payload = {"provenance": prov, "results": results}
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def load_result(path: str | os.PathLike) -> dict | None:
    """The stored payload (``{"provenance": ..., "results": ...}``), or ``None`` if absent.

    Defined in "How to read this book".
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable results file (truncated or corrupt: {err})") from None
    if not isinstance(payload, dict) or set(payload) != {"provenance", "results"}:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a stored result (keys {keys})")
    if not isinstance(payload["results"], dict) or not isinstance(payload["provenance"], dict):
        raise ValueError(f"{path} is not a stored result (results and provenance must be objects)")
    return payload


def settings_dict(settings) -> dict:
    """A settings dataclass as JSON-ready data (tuples become lists), for storing and comparing.

    Defined in "How to read this book".
    """
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(settings)))  # tuples, nested too, become lists


def judged_settings(settings, rules: dict) -> dict:
    """The settings stored with (and required of) an experiment's results: the sizes of its
    settings dataclass and the fingerprints of the rules that judge them, so that results
    judged by a rule that has since changed no longer count. Defined in "How to read this
    book"."""
    from .verdicts import fingerprints

    return settings_dict(settings) | {"rules": fingerprints(rules)}


def run_sections(sections: dict, settings: dict, out: str | os.PathLike | None, command: str) -> dict:
    """Compute each named section (a zero-argument function) in order and return
    ``{"settings": ..., name: result, ...}``. With ``out``, store the results atomically
    (with provenance) after every section and skip the sections already stored there, so
    an interrupted run resumes; stored results made with other settings are refused.

    Defined in "How to read this book".
    """
    only = _ONLY_SECTIONS.get()
    if only is not None:
        unknown = sorted(set(only) - set(sections))
        if unknown:
            raise ValueError(f"--sections {unknown} are not sections of this experiment; expected some of "
                             f"{list(sections)}")
        sections = {name: compute for name, compute in sections.items() if name in only}
    if out is not None:
        check_writable(out)  # before any work: a bad path fails now, not after the first section
    stored = load_result(out) if out is not None else None
    results = dict(stored["results"]) if stored else {}
    made = dict(stored["provenance"].get("sections") or {}) if stored else {}
    if results.setdefault("settings", settings) != json.loads(json.dumps(settings)):
        raise ValueError(f"{out} holds results for other settings; move it away to start again")
    todo = [name for name in sections if name not in results]
    code = code_fingerprint() if out is not None else None  # only stored sections carry it
    if stored and todo:
        done = [name for name in sections if name in results]
        other = [name for name in done if (made.get(name) or {}).get("code") != code]
        if other:
            raise ValueError(f"{out} holds sections {other} made by other code (or code not recorded) than the "
                             f"current package ({code}); resuming would mix them. Move the file away to start again")
    for name, compute in sections.items():
        if name not in results:
            results[name] = compute()
            if out is not None:
                now = provenance(command)
                made[name] = {key: now[key] for key in ("commit", "date", "device")} | {"code": code}
                save_result(out, results, command=command, sections=made)
    return results


_ONLY_SECTIONS: contextvars.ContextVar = contextvars.ContextVar("only_sections", default=None)


@contextlib.contextmanager
def only_sections(names):
    """Within this block, :func:`run_sections` computes only the sections named (the
    command line's ``--sections``), so that one experiment can run as several processes,
    each storing its own file, joined afterwards by :func:`merge_results`. Defined in "How
    to read this book"."""
    names = tuple(names)
    if not names:
        raise ValueError("--sections needs at least one section name")
    token = _ONLY_SECTIONS.set(names)
    try:
        yield names
    finally:
        _ONLY_SECTIONS.reset(token)


def merge_results(parts, out: str | os.PathLike, command: str) -> Path:
    """Join stored results of one experiment run in parts (``--sections``) into ``out``.

    Every part must hold the same settings, each section must come from one part only and
    carry the provenance of the run that computed it, and all sections must have been made
    by the same package code; anything else is refused, naming the file and what differs.
    The merged file keeps each section's own provenance; an existing ``out`` that is not one
    of the parts is refused rather than replaced. Defined in "How to read this book".
    """
    parts = [Path(p) for p in parts]
    if len(parts) < 2:
        raise ValueError(f"merging needs at least two stored parts, got {[str(p) for p in parts]}")
    if Path(out).exists() and Path(out).resolve() not in {p.resolve() for p in parts}:
        raise ValueError(f"{out} already holds results; merging would replace them: name it as a part, or move it away")
    check_writable(out)
    results: dict = {}
    made: dict = {}
    for part in parts:
        stored = load_result(part)
        if stored is None:
            raise ValueError(f"{part} does not exist")
        settings = stored["results"].get("settings")
        if "settings" in results and settings != results["settings"]:
            raise ValueError(f"{part} was made under other settings than {parts[0]}")
        results["settings"] = settings
        sections = stored["provenance"].get("sections") or {}
        for name, value in stored["results"].items():
            if name == "settings":
                continue
            if name in results:
                raise ValueError(f"section {name!r} is in more than one part (again in {part})")
            if not (sections.get(name) or {}).get("code"):
                raise ValueError(f"section {name!r} of {part} has no recorded provenance or code")
            results[name], made[name] = value, sections[name]
    codes = sorted({m["code"] for m in made.values()})
    if len(codes) != 1:
        raise ValueError(f"the parts were made by different package code {codes}; they cannot be merged")
    return save_result(out, results, command=command, sections=made)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, before any work, if a results file could not be written at ``path``
    (a folder, an unwritable place, a file that is not a stored result). Defined in
    "How to read this book"."""
    path = Path(path)
    if path.is_dir() or not path.name:
        raise ValueError(f"--out {str(path)!r} is a folder, not a file")
    if path.suffix != ".json":
        raise ValueError(f"--out {str(path)!r} should be a .json file")
    if path.exists():
        load_result(path)  # refuse to resume into a corrupt or foreign file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    os.close(fd)
    os.unlink(tmp)
    return path


def per_seed_sections(names, seeds, one_run) -> dict:
    """One section per name for :func:`run_sections`: the list of ``one_run(name, seed)``
    over ``seeds``, so that a long run stores and resumes name by name.
    Defined in "How to read this book"."""
    return {name: (lambda name=name: [one_run(name, seed) for seed in seeds]) for name in names}


def experiment_command(module: str, scale: str, out) -> str:
    """The command line that reproduces a run, as stored in its provenance: the output
    path relative to the repository, and left out when it is the default one.
    Defined in "How to read this book"."""
    command = f"python -m whydecoder.{module} --scale {scale}"
    if not out:
        return command
    out = Path(out).resolve()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    default = scale == "full" and shown.parent.parent == Path("data") and shown.name == "full.json"
    return command if default else f"{command} --out {shown}"


PROVENANCE_KEYS = ("command", "commit", "device", "date")


def incomplete_because(stored: dict, sections, settings: dict | None = None) -> str | None:
    """Why a stored payload cannot stand as full-scale results, or ``None`` when it can:
    a provenance field missing or empty, a section missing or empty, or settings other
    than ``settings``. Defined in "How to read this book"."""
    prov = stored["provenance"]
    missing = [key for key in PROVENANCE_KEYS if not prov.get(key)]
    if missing:
        return f"its provenance lacks {missing}"
    results = stored["results"]
    if settings is not None and results.get("settings") != json.loads(json.dumps(settings)):
        return "it was made under other settings than the current ones"
    for name in sections:
        if name not in results:
            return f"section {name!r} is missing (a run still in progress?)"
        if results[name] in (None, {}, [], ""):
            return f"section {name!r} is empty"
    return None


def load_complete(path: str | os.PathLike, sections, settings: dict | None = None) -> dict | None:
    """The stored payload at ``path`` if it holds every one of ``sections``, non-empty,
    with its provenance and (when given) the current ``settings``; else ``None``. A file
    that cannot be read, or is incomplete, is reported by name on stderr and treated as
    absent. Defined in "How to read this book"."""
    try:
        stored = load_result(path)
    except ValueError as err:
        print(f"ignoring stored results: {err}", file=sys.stderr)
        return None
    if stored is None:
        return None
    why = incomplete_because(stored, sections, settings)
    if why:
        print(f"ignoring stored results {path}: {why}", file=sys.stderr)
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
    parser.add_argument("--out", default=None,
                        help="where to store the results (JSON; default data/<chapter>/full.json at full "
                             "scale, runs/<module>/smoke.json at smoke scale)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op CPU threads (default 1: the book's small models train fastest "
                             "single-threaded, and two runs side by side then share two cores)")
    parser.add_argument("--sections", nargs="+", default=None, metavar="SECTION",
                        help="the sections to compute (the rest are left out; quote a name with spaces or commas), "
                             "so that one run can be split across processes, each with its own --out")
    parser.add_argument("--merge", nargs="+", default=None, metavar="PART",
                        help="join stored parts made with --sections into --out (or the default file) and exit")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    from .threads import limit_threads

    limit_threads(args.threads)
    scale = current_scale(args.scale)
    if args.out is not None and not args.out.strip():
        parser.error("--out must name a file, got an empty string")
    if args.out is not None:
        out = Path(args.out)
    elif scale == "full":
        out = Path(results_dir) / "full.json"
    else:  # smoke results are not the book's: keep them out of data/
        out = RUNS / module / "smoke.json"
    try:
        check_writable(out)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if args.merge:
        try:
            merge_results(args.merge, out, experiment_command(module, scale, args.out))
        except ValueError as err:
            parser.error(str(err))
    elif args.sections is not None:
        with only_sections(args.sections):
            run(scale, out)
    else:
        run(scale, out)
    print(f"stored {out}")


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def _say_provenance(command: str, commit: str, date: str, device: str) -> None:
    """Where a page's numbers come from: a :func:`whydecoder.report.note_html` on the page
    in a notebook, four short lines elsewhere."""
    if _in_notebook():
        from IPython.display import display

        from .report import note_html

        display(note_html(f"Stored full-scale results, made by <code>{html.escape(command)}</code> "
                          f"at commit <code>{html.escape(commit)}</code> on {html.escape(date)}, "
                          f"{html.escape(device)}."))
        return
    print("stored full-scale results, made by")
    print(" ", command)
    print("  commit", commit, "on", date)
    print("  device", device)


def stored_or_run(experiment, scale: str | None = None, progress: bool = False) -> tuple[dict, bool]:
    """What a chapter shows for one experiment module (one with ``run``, ``load_complete``
    and ``RESULTS_DIR``): the stored full-scale results if they are complete, else a run at
    ``scale`` (at full scale storing into ``RESULTS_DIR/full.json`` and resuming from it),
    and whether they are the stored ones. At smoke scale nothing runs when the stored
    results are complete: the page shows them, and the module's own tests run its smoke
    scale. Says where the numbers come from (a note on the page in a notebook). Defined in "How to read this book".
    """
    from .scale import current_scale

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
        _say_provenance(command, prov["commit"][:12], prov["date"], prov["device"])
        return stored["results"], True
    print("no stored full-scale results: showing this run's", scale, "numbers")
    return measured, False
