"""Stored results: written, resumed, joined, checked complete.

Every stored full-scale result carries the command, the git commit and the device that
made it, and for each section the fingerprint of the code that computed it (its call tree
in the package, :mod:`whydecoder.fingerprint`). Files are written atomically, by one
writer at a time, as strict JSON (:mod:`whydecoder.storage`); a file that holds results
is replaced only by a resumed run of the same settings and code, or by an explicit
``replace``.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from .provenance import code_fingerprint, judged_by, provenance
from .storage import atomic_write_text, dumps_strict, exclusive, loads_strict


def save_result(path: str | os.PathLike, results: dict, command: str, device: str | torch.device | None = None,
                sections: dict | None = None, extra: dict | None = None) -> Path:
    """Store ``results`` as JSON with its provenance, atomically. ``sections`` maps each
    section's name to the provenance of the run that computed it (a resumed run keeps the
    commit and date of the sections it did not recompute); ``extra``: more provenance
    (``maker_trees``, ``migrations``), kept as given.

    Defined in "How to read this book".
    """
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict, got {type(results).__name__}")
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"command must be the command line that made the results, got {command!r}")
    prov = provenance(command, device)
    if sections:
        prov["sections"] = sections
    for key, value in (extra or {}).items():
        if key in prov:
            raise ValueError(f"extra provenance {key!r} would replace the run's own")
        if value:
            prov[key] = value
    payload = {"provenance": prov, "results": results}
    return atomic_write_text(path, dumps_strict(payload))


def load_result(path: str | os.PathLike) -> dict | None:
    """The stored payload (``{"provenance": ..., "results": ...}``), or ``None`` if absent.

    Defined in "How to read this book".
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{path} is not a results file (a folder?)")
    try:
        payload = loads_strict(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a readable results file (truncated or corrupt: {err})") from None
    except ValueError as err:
        why = "not strict JSON" if "finite" in str(err) else "truncated or corrupt"
        raise ValueError(f"{path} is not a readable results file ({why}: {str(err).split(': ', 1)[-1]})") from None
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
    ``{"settings": ..., name: result, ...}``. With ``out``, hold its one-writer lock for
    the whole run, store the results atomically (with provenance, and the fingerprint of
    the code each section runs: :func:`section_makers`) after every section and skip the
    sections already stored there, so an interrupted run resumes; stored results made
    with other settings or by other code are refused.

    Defined in "How to read this book".
    """
    if not isinstance(sections, dict) or not all(isinstance(k, str) and callable(v) for k, v in sections.items()):
        raise TypeError(f"sections must map names to functions, got {sections!r}"[:300])
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict (stored with the results), got {type(settings).__name__}")
    if _PLANNING.get():
        raise _Planned(sections, settings)
    only = _ONLY_SECTIONS.get()
    if only is not None:
        unknown = sorted(set(only) - set(sections))
        if unknown:
            raise ValueError(f"--sections {unknown} are not sections of this experiment; expected some of "
                             f"{list(sections)}")
        sections = {name: compute for name, compute in sections.items() if name in only}
    if out is None:
        return {"settings": settings} | {name: compute() for name, compute in sections.items()}
    replace = _REPLACING.get()
    check_writable(out, replace)  # before any work: a bad path fails now, not after the first section
    with exclusive(out, command):
        stored = None if replace else load_result(out)  # replacing: the old file stands until a section is stored
        results = normalized(stored) if stored else {}
        made = dict(stored["provenance"].get("sections") or {}) if stored else {}
        migrations = list(stored["provenance"].get("migrations") or []) if stored else []
        if results.setdefault("settings", settings) != json.loads(json.dumps(settings)):
            raise ValueError(f"{out} holds results for other settings; move it away to start again (or --replace)")
        todo = [name for name in sections if name not in results]
        if not todo:  # complete: nothing to run, nothing to fingerprint
            return results
        trees = dict(stored["provenance"].get("maker_trees") or {}) if stored else {}
        makers = section_makers(sections, trees)
        if stored and todo:
            done = [name for name in sections if name in results]
            other = [name for name in done if (made.get(name) or {}).get("maker") != makers[name]]
            if other:
                raise ValueError(f"{out} holds sections {other} made by other code (or code not recorded) than "
                                 "the current package; resuming would mix them. Move the file away to start again")
        code = code_fingerprint()
        for name, compute in sections.items():
            if name not in results:
                results[name] = compute()
                now = provenance(command)
                made[name] = {key: now[key] for key in ("commit", "date", "device")} | {"code": code,
                                                                                        "maker": makers[name]}
                used = {m.get("maker") for m in made.values()}
                save_result(out, results, command=command, sections=made,
                            extra={"maker_trees": {fp: tree for fp, tree in trees.items() if fp in used},
                                   "migrations": migrations})
    return results


def normalized(stored: dict) -> dict:
    """The stored results with their settings' rule fingerprints carried through the
    migrations recorded in their provenance (:func:`whydecoder.provenance.judged_by`): what
    a resumed run, a join or a sweep compares with today's settings. Defined in "How to
    read this book"."""
    results = dict(stored["results"])
    settings = results.get("settings")
    if isinstance(settings, dict) and "rules" in settings:
        results["settings"] = dict(settings, rules=judged_by(stored))
    return results


_REPLACING: contextvars.ContextVar = contextvars.ContextVar("replacing", default=False)


@contextlib.contextmanager
def replacing():
    """Within this block, :func:`run_sections` starts again instead of resuming: the
    results already stored in its output (even a corrupt file) are replaced, atomically,
    when the first new section is stored, and stand until then. The command line's
    ``--replace``. Defined in "How to read this book"."""
    token = _REPLACING.set(True)
    try:
        yield
    finally:
        _REPLACING.reset(token)


def section_makers(sections: dict, trees: dict | None = None) -> dict[str, str]:
    """``{section: fingerprint}`` of the code each section's function runs (its call tree
    in the package, :func:`whydecoder.fingerprint.fingerprints`), stored as each section's
    ``maker``; ``trees`` receives each fingerprint's digest (stored as the provenance's
    ``maker_trees``). Defined in "How to read this book"."""
    from .fingerprint import fingerprints

    return fingerprints(sections, machinery=True, trees=trees)


class _Planned(Exception):
    def __init__(self, sections, settings):
        super().__init__("planned")
        self.sections, self.settings = sections, settings


_PLANNING: contextvars.ContextVar = contextvars.ContextVar("planning", default=False)


def planned_sections(run, scale: str) -> tuple[dict, dict]:
    """``(sections, settings)`` that ``run(scale)`` would compute and store, without
    computing any: the sections' functions (for their fingerprints) and the settings the
    stored results must hold. Defined in "How to read this book"."""
    token = _PLANNING.set(True)
    try:
        run(scale, out=None, progress=False)
    except _Planned as planned:
        return planned.sections, json.loads(json.dumps(planned.settings))
    finally:
        _PLANNING.reset(token)
    raise ValueError(f"{getattr(run, '__module__', run)}.run did not go through run_sections")


def current_makers(experiment, scale: str = "full", trees: dict | None = None) -> dict[str, str]:
    """``{section: fingerprint}`` of the code that would compute each section of
    ``experiment`` (a module with ``run``) now (``trees`` receives their digests).
    Defined in "How to read this book"."""
    sections, _ = planned_sections(experiment.run, scale)
    return section_makers(sections, trees)


_ONLY_SECTIONS: contextvars.ContextVar = contextvars.ContextVar("only_sections", default=None)


@contextlib.contextmanager
def only_sections(names):
    """Within this block, :func:`run_sections` computes only the sections named (the
    command line's ``--sections``), so that one experiment can run as several processes,
    each storing its own file, joined afterwards by :func:`merge_results`. Defined in "How
    to read this book"."""
    if isinstance(names, (str, bytes)):
        raise ValueError(f"--sections takes a list of section names, got the string {names!r}")
    names = tuple(names)
    if not names:
        raise ValueError("--sections needs at least one section name")
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"section names must be non-empty strings, got {list(names)}")
    token = _ONLY_SECTIONS.set(names)
    try:
        yield names
    finally:
        _ONLY_SECTIONS.reset(token)


def merge_results(parts, out: str | os.PathLike, command: str, *, settings: dict | None = None,
                  makers: dict | None = None, replace: bool = False) -> Path:
    """Join stored results of one experiment run in parts (``--sections``) into ``out``.

    Every part must hold the same settings (``settings``, when given), each section must
    come from one part only and carry the provenance of the run that computed it, and its
    code fingerprint must be the current one (``makers``: ``{section: fingerprint}``, when
    given; without it, all sections must come from the same package code); anything else
    is refused, naming the file and what differs. The merged file keeps each section's own
    provenance. An existing ``out`` is replaced only when the merge keeps every section it
    holds unchanged (a sweep that grew), when it is one of the parts, or with ``replace``.
    Defined in "How to read this book".
    """
    if isinstance(parts, (str, bytes, os.PathLike)):
        raise ValueError(f"merging takes a list of part files, got one: {str(parts)!r}")
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError(f"merging needs stored parts, got {parts!r}")
    check_writable(out)
    with exclusive(out, command):
        results: dict = {}
        made: dict = {}
        trees: dict = {}
        migrations: list = []
        for part in parts:
            stored = load_result(part)
            if stored is None:
                raise ValueError(f"{part} does not exist")
            trees |= stored["provenance"].get("maker_trees") or {}
            migrations += [m for m in stored["provenance"].get("migrations") or [] if m not in migrations]
            part_results = normalized(stored)
            part_settings = part_results.get("settings")
            expected = results.get("settings", settings)
            if expected is not None and part_settings != expected:
                raise ValueError(f"{part} was made under other settings than "
                                 f"{'the current ones' if 'settings' not in results else parts[0]}")
            results["settings"] = part_settings
            sections = stored["provenance"].get("sections") or {}
            for name, value in part_results.items():
                if name == "settings":
                    continue
                if name in results:
                    if results[name] == value and made.get(name) == sections.get(name):
                        continue  # the same record twice (the joined output beside its parts): one copy
                    raise ValueError(f"section {name!r} is in more than one part (again in {part})")
                if not (sections.get(name) or {}).get("code"):
                    raise ValueError(f"section {name!r} of {part} has no recorded provenance or code")
                if makers is not None and name not in makers:
                    raise ValueError(f"{part} holds {name!r}, which is not a section of this experiment")
                if makers is not None and sections[name].get("maker") != makers.get(name):
                    raise ValueError(f"section {name!r} of {part} was made by other code than the current "
                                     f"({sections[name].get('maker')} != {makers.get(name)}); it cannot be joined")
                results[name], made[name] = value, sections[name]
        if makers is None:
            codes = sorted({m["code"] for m in made.values()})
            if len(codes) != 1:
                raise ValueError(f"the parts were made by different package code {codes}; they cannot be merged")
        if Path(out).resolve() not in {p.resolve() for p in parts}:
            refuse_to_lose(out, results, made, replace)
        used = {m.get("maker") for m in made.values()}
        return save_result(out, results, command=command, sections=made,
                           extra={"maker_trees": {fp: tree for fp, tree in trees.items() if fp in used},
                                  "migrations": migrations})


def refuse_to_lose(out: str | os.PathLike, results: dict, sections: dict, replace: bool = False) -> None:
    """Raise unless writing ``results`` (with per-section provenance ``sections``) to
    ``out`` keeps everything ``out`` already holds: each stored section unchanged, with its
    provenance, under the same settings. ``replace`` allows it, by name. Defined in "How
    to read this book"."""
    stored = load_result(out)
    if stored is None or replace:
        return
    made = stored["provenance"].get("sections") or {}
    lost = [name for name, value in normalized(stored).items()
            if name not in results or results[name] != value
            or (name != "settings" and (made.get(name) or {}) != (sections.get(name) or {}))]
    if lost:
        raise ValueError(f"{out} already holds results that this would replace or drop (sections {lost[:5]}"
                         f"{' ...' if len(lost) > 5 else ''}); write elsewhere, move it away, or replace it "
                         "explicitly (--replace)")


def check_writable(path: str | os.PathLike, replace: bool = False) -> Path:
    """Fail now, before any work, if a results file could not be written at ``path``
    (a folder, an unwritable place, a file that is not a stored result). Defined in
    "How to read this book"."""
    path = Path(path)
    if path.is_dir() or not path.name:
        raise ValueError(f"--out {str(path)!r} is a folder, not a file")
    if path.suffix != ".json":
        raise ValueError(f"--out {str(path)!r} should be a .json file")
    if path.exists() and not replace:
        load_result(path)  # refuse to resume into a corrupt or foreign file
    target = path.resolve()  # a link: the file it points to is the one written
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".probe")
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):  # a writer taking the lock may have swept it already
        os.unlink(tmp)
    return path


def per_seed_sections(names, seeds, one_run) -> dict:
    """One section per name for :func:`run_sections`: the list of ``one_run(name, seed)``
    over ``seeds``, so that a long run stores and resumes name by name.
    Defined in "How to read this book"."""
    if isinstance(names, (str, bytes)) or isinstance(seeds, (str, bytes)):
        raise ValueError(f"names and seeds must be lists, got {names!r} and {seeds!r}")
    names, seeds = list(names), list(seeds)
    if not names or not seeds:
        raise ValueError(f"per_seed_sections needs at least one name and one seed, got {names} and {seeds}")
    if not callable(one_run):
        raise TypeError(f"one_run must be a function of (name, seed), got {one_run!r}")
    return {name: (lambda name=name: [one_run(name, seed) for seed in seeds]) for name in names}


PROVENANCE_KEYS = ("command", "commit", "device", "date")


def incomplete_because(stored: dict, sections, settings: dict | None = None) -> str | None:
    """Why a stored payload cannot stand as full-scale results, or ``None`` when it can:
    a provenance field missing or empty, a section missing or empty, settings other than
    ``settings``, or a rule changed since the results were judged and no migration
    recorded. Defined in "How to read this book"."""
    if not isinstance(stored, dict) or not {"provenance", "results"} <= set(stored):
        raise ValueError(f"expected a stored payload with provenance and results, got {str(stored)[:100]}")
    prov = stored["provenance"]
    missing = [key for key in PROVENANCE_KEYS if not prov.get(key)]
    if missing:
        return f"its provenance lacks {missing}"
    results = stored["results"]
    if settings is not None:
        settings = json.loads(json.dumps(settings))
        held = dict(normalized(stored).get("settings") or {})
        if {k: v for k, v in held.items() if k != "rules"} != {k: v for k, v in settings.items() if k != "rules"}:
            return "it was made under other settings than the current ones"
        if held.get("rules") != settings.get("rules"):
            now, then = settings.get("rules") or {}, held.get("rules") or {}
            changed = [f"{c} (judged by {then.get(c)}, now {now.get(c)})" for c in sorted(set(now) | set(then))
                       if now.get(c) != then.get(c)]
            return (f"the rule of {', '.join(changed)} changed since its results were judged: run it again, or "
                    "show the change leaves every verdict identical (python -m whydecoder.migrate)")
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


