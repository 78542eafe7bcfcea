"""Running an experiment's sections as independent jobs, past one process.

A sweep (the scale chapter's is 121 runs) splits into jobs, each a group of sections that
one process computes with :func:`whydecoder.results.only_sections` and stores in its own
part file; the parts are then joined into the experiment's stored results with
:func:`whydecoder.results.merge_results`. The jobs run

- in N local worker processes (``concurrent.futures``, one thread each by default), or
- through ``submitit``: on a Slurm cluster (``--slurm PARTITION``), or with its local
  executor (``--executor submitit-local``: how the tests exercise that path on one machine).

Partial sweeps resume: sections already stored in the folder's parts (by the same code,
under the same settings) are not planned again, and each part resumes section by section.

Explained in the chapter "Scale" (running the sweep wider).
"""

from __future__ import annotations

import concurrent.futures.process
import contextlib
import importlib
import json
import os
import time
import uuid
from pathlib import Path

from .paths import RUNS
from .results import (
    check_writable,
    load_result,
    merge_results,
    normalized,
    only_sections,
    planned_sections,
    section_makers,
)
from .storage import Busy, exclusive

EXECUTORS = ("local", "submitit-local", "slurm")


def _module(name: str):
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected an experiment module's name (e.g. 'ch08_scale'), got {name!r}")
    if not name.startswith("whydecoder.experiments."):
        name = f"whydecoder.experiments.{name}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        raise ValueError(f"no experiment module {name!r}") from None
    for attribute in ("run", "SECTIONS", "RESULTS_DIR"):
        if not hasattr(module, attribute):
            raise ValueError(f"{name} is not an experiment module (it has no {attribute})")
    return module


def stored_sections(folder: str | os.PathLike, makers: dict[str, str] | None = None,
                    settings: dict | None = None) -> dict[str, Path]:
    """``{section: part file}`` of the parts in ``folder``. Each part must hold
    ``settings`` (the current ones, when given) and each section the current fingerprint
    of its code (``makers``, when given; :func:`whydecoder.results.section_makers`); a
    part made otherwise, or a section in two parts, is refused by name: joining would mix
    them. Defined in the chapter "Scale"."""
    done: dict[str, Path] = {}
    for part in sorted(Path(folder).glob("part-*.json")):
        with exclusive(part, "checking the sweep's parts"):  # a part still being written: its writer is named
            stored = load_result(part)
        if settings is not None and normalized(stored).get("settings") != settings:
            raise ValueError(f"{part} was made under other settings than the current ones; move the folder's "
                             "parts away to start again")
        foreign = _made_elsewhere(stored, makers) if makers is not None else []
        if foreign and foreign[0] not in makers:
            raise ValueError(f"{part} holds {foreign[0]!r}, which is not a section of this experiment")
        if foreign:
            maker = (stored["provenance"].get("sections") or {}).get(foreign[0], {}).get("maker")
            raise ValueError(f"{part} holds section {foreign[0]!r} made by other code than the current "
                             f"({maker} != {makers[foreign[0]]}); move the folder's parts away to start again")
        for name in stored["results"]:
            if name == "settings":
                continue
            if name in done:
                raise ValueError(f"section {name!r} is stored twice, in {done[name]} and {part}")
            done[name] = part
    return done


def plan(module, scale: str, jobs: int, done=(), only=None, names=None) -> list[list[str]]:
    """The sections still to compute (of ``only`` when given), in at most ``jobs`` groups of about equal expected
    cost (longest first, each to the least loaded group; the module's ``section_cost``
    when it has one, else one per section); each group keeps the experiment's order.
    ``names``: the experiment's sections at ``scale`` (default ``module.SECTIONS``, the
    full scale's). Defined in the chapter "Scale"."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    names = tuple(module.SECTIONS if names is None else names)
    if only is not None:
        if isinstance(only, str):
            raise ValueError(f"only must be a list of section names, got the string {only!r}")
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"{unknown} are not sections of {module.__name__} at this scale; expected some of "
                             f"{list(names)[:6]}{' ...' if len(names) > 6 else ''}")
    todo = [name for name in names if name not in set(done) and (only is None or name in only)]
    cost = getattr(module, "section_cost", None)
    weight = {name: float(cost(name, scale)) if cost else 1.0 for name in todo}
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(todo)))]
    load = [0.0] * len(groups)
    for name in sorted(todo, key=lambda n: -weight[n]):
        k = load.index(min(load))
        groups[k].append(name)
        load[k] += weight[name] + 1e-9  # ties spread over the groups
    order = {name: i for i, name in enumerate(names)}
    return [sorted(g, key=order.get) for g in groups]


def run_part(module_name: str, scale: str, names: list[str], out: str, threads: int = 1, device: str = "cpu") -> str:
    """One job: compute ``names`` of the experiment into the part file ``out`` (resuming
    it), with ``threads`` CPU threads, training on ``device`` where the experiment can.
    Runs in the worker. Defined in the chapter "Scale"."""
    from .run_scale import using_device
    from .threads import limit_threads

    limit_threads(threads)
    module = _module(module_name)
    if isinstance(names, (str, bytes)):
        raise ValueError(f"names must be a list of section names, got the string {names!r}")
    with only_sections(names), using_device(device):
        module.run(scale, out, progress=False)
    return out


def join_parts(parts, out: str | os.PathLike, command: str, *, settings: dict | None = None,
               makers: dict | None = None, replace: bool = False) -> Path:
    """Join the part files into ``out`` (:func:`whydecoder.results.merge_results`:
    atomically, holding ``out``'s lock, and never dropping or changing what ``out``
    already holds unless ``replace``). Defined in the chapter "Scale"."""
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("there are no stored parts to join")
    return merge_results(parts, out, command, settings=settings, makers=makers, replace=replace)


def sweep(module_name: str, scale: str = "full", workers: int = 2, executor: str = "local",
          folder: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
          slurm: dict | None = None, only=None, progress: bool = True, replace: bool = False,
          device: str = "cpu") -> Path:
    """Run every section of an experiment not yet stored in ``folder`` as ``workers``
    jobs with ``executor`` (:data:`EXECUTORS`), then join all the folder's parts into
    ``out`` (default: the experiment's stored results at full scale, its folder under
    ``runs/`` at smoke scale). ``slurm``: submitit's Slurm parameters (``partition``,
    ``timeout_min``, ``cpus_per_task``, ``gpus_per_node``, ...); ``only``: just these
    sections (a partial sweep, joined all the same); ``replace``: let the join replace
    results ``out`` holds that it would not keep; ``device``: where the jobs train (``"cuda"``
    on a GPU machine; experiments that train on the CPU only ignore it). The folder is held by one sweep at a
    time; parts are named so that they cannot collide, and checked for the current
    settings and code before anything runs. Defined in the chapter "Scale"."""
    from .run_scale import check_device, current_scale

    check_device(device)  # before any work: a GPU that is not there fails now
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; expected one of {EXECUTORS}")
    if (executor == "slurm") != bool(slurm):
        raise ValueError("Slurm parameters (a partition at least) go with executor 'slurm', and only with it")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    scale = current_scale(scale)
    module = _module(module_name)
    short = module.__name__.rsplit(".", 1)[-1]
    folder = Path(folder) if folder is not None else RUNS / "sweep" / short / scale
    out = Path(out) if out is not None else (Path(module.RESULTS_DIR) / "full.json" if scale == "full"
                                             else RUNS / short / f"{scale}.json")
    check_writable(out)
    if out.resolve().parent == folder.resolve() and out.name.startswith("part-"):
        raise ValueError(f"--out {str(out)!r} would be taken for one of the sweep's own parts: name it otherwise")
    folder.mkdir(parents=True, exist_ok=True)
    command = f"python -m whydecoder.sweep {short} --scale {scale} --workers {workers} --executor {executor}" + (
        f" --device {device}" if device != "cpu" else "")
    with exclusive(folder, command), exclusive(out, command):
        sections, settings = planned_sections(module.run, scale)
        makers = section_makers(sections)
        done = stored_sections(folder, makers, settings)
        kept = {} if replace else _output_sections(out, settings, makers, scale)
        groups = plan(module, scale, workers, set(done) | set(kept), only, names=tuple(sections))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        token = uuid.uuid4().hex[:8]
        paths = [str(folder / f"part-{stamp}-{token}-{k:03d}.json") for k in range(len(groups))]
        threads = max(1, (os.cpu_count() or 1) // max(1, len(groups)))
        if executor == "slurm":
            threads = int(slurm.get("cpus_per_task", 1))
        args = [(module.__name__, scale, g, p, threads, device) for g, p in zip(groups, paths)]
        if groups:
            _execute(args, executor, folder, slurm or {}, progress)
        parts = sorted(folder.glob("part-*.json"))
        stored_sections(folder, makers, settings)  # the parts the jobs wrote, checked again before the join
        if kept:  # what out already held joins in as a part: a sweep only adds to it
            parts.append(out)
        return join_parts(parts, out, command, settings=settings, makers=makers, replace=replace)


def _output_sections(out: Path, settings: dict, makers: dict, scale: str) -> dict[str, Path]:
    """The sections ``out`` already holds, made under ``settings`` by today's code: they are
    not run again, and ``out`` joins as a part (a campaign resumes from its committed
    results even where its parts are gone). Anything else there is refused before any work."""
    stored = load_result(out)
    if stored is None:
        return {}
    if normalized(stored).get("settings") != settings:
        raise ValueError(f"{out} holds results made under other settings than this sweep's ({scale} scale); "
                         "write elsewhere (--out), move it away, or replace it (--replace)")
    foreign = _made_elsewhere(stored, makers)
    if foreign:
        raise ValueError(f"{out} holds sections {foreign[:5]}{' ...' if len(foreign) > 5 else ''} made by other code "
                         "than today's (or not sections of this experiment): joining would mix them; write elsewhere "
                         "(--out), move it away, or replace it (--replace)")
    return dict.fromkeys((name for name in stored["results"] if name != "settings"), out)


def _made_elsewhere(stored: dict, makers: dict) -> list[str]:
    """The stored sections that are not this experiment's, or were made by other code than
    today's (``makers``): a join would mix them."""
    made = stored["provenance"].get("sections") or {}
    return [name for name in stored["results"]
            if name != "settings" and (name not in makers or (made.get(name) or {}).get("maker") != makers[name])]


def _die_with_parent() -> None:
    """In a local worker: ask Linux to end it when the sweep that started it dies, so that
    a killed sweep leaves no orphan writing parts that a rerun would plan again."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _execute(args: list[tuple], executor: str, folder: Path, slurm: dict, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(args), desc="jobs", disable=not progress)
    if executor == "local":
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited torch thread pool
        with concurrent.futures.ProcessPoolExecutor(max_workers=len(args), mp_context=context,
                                                    initializer=_die_with_parent) as pool:
            for future in concurrent.futures.as_completed([pool.submit(run_part, *a) for a in args]):
                future.result()
                bar.update()
    else:
        import submitit

        cluster = "local" if executor == "submitit-local" else "slurm"
        ex = submitit.AutoExecutor(folder=folder / "submitit", cluster=cluster)
        if cluster == "slurm":
            ex.update_parameters(**{f"slurm_{k}" if k not in ("timeout_min", "cpus_per_task", "gpus_per_node") else k: v
                                    for k, v in slurm.items()})
        else:
            ex.update_parameters(timeout_min=int(slurm.get("timeout_min", 60)))
        jobs = [ex.submit(run_part, *a) for a in args]
        for job in jobs:
            job.result()  # raises the job's own error, with its log's path
            bar.update()
    bar.close()


def main(argv=None) -> None:
    """``python -m whydecoder.sweep MODULE [--scale] [--workers N] [--executor] [--slurm
    PARTITION ...]``. Defined in the chapter "Scale"."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m whydecoder.sweep",
                                     description="Run an experiment's sections as parallel jobs and join them.")
    parser.add_argument("module", help="an experiment module, e.g. ch08_scale")
    parser.add_argument("--scale", choices=("smoke", "full"), default="full")
    parser.add_argument("--workers", type=int, default=2, help="jobs at once (local) or jobs in all (Slurm)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--folder", default=None, help="where the parts are stored (default runs/sweep/MODULE/SCALE)")
    parser.add_argument("--out", default=None, help="the joined results (default the experiment's stored file)")
    parser.add_argument("--sections", nargs="+", default=None, metavar="SECTION", help="only these sections")
    parser.add_argument("--slurm", default=None, metavar="PARTITION", help="submit to this Slurm partition")
    parser.add_argument("--timeout-min", type=int, default=240)
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--replace", action="store_true",
                        help="let the join replace results the output already holds (without it, a sweep only adds)")
    parser.add_argument("--device", default="cpu", help="where the jobs train: cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    executor = "slurm" if args.slurm else args.executor
    slurm = ({"partition": args.slurm, "timeout_min": args.timeout_min, "cpus_per_task": args.cpus_per_task}
             | ({"gpus_per_node": args.gpus_per_node} if args.gpus_per_node else {})) if args.slurm else None
    try:
        out = sweep(args.module, args.scale, args.workers, executor, args.folder, args.out, slurm, args.sections,
                    replace=args.replace, device=args.device)
    except (ValueError, Busy, OSError) as err:
        parser.error(str(err))
    except concurrent.futures.process.BrokenProcessPool as err:
        parser.error(f"a worker died ({err}); the parts it finished are kept: run the same command again to resume")
    print(f"stored {out}")
    print(json.dumps({"sections": len(load_result(out)["results"]) - 1}))


if __name__ == "__main__":
    main()
