"""The command line of every experiment: ``python -m whydecoder.experiments.<module>
[--scale smoke|full] [--out FILE] [--threads N] [--sections ...] [--merge ...] [--replace]``,
and the command stored with a run's results so that it can be reproduced.

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .paths import ROOT, RUNS
from .results import check_writable, merge_results, only_sections, planned_sections, replacing, section_makers
from .storage import Busy


def experiment_command(module: str, scale: str, out) -> str:
    """The command line that reproduces a run, as stored in its provenance: the output
    path relative to the repository, and left out when it is the default one.
    Defined in "How to read this book"."""
    from .run_scale import SCALES

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
    command = f"python -m whydecoder.{module} --scale {scale}"
    if not out:
        return command
    out = Path(out).resolve()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    default = scale == "full" and shown.parent.parent == Path("data") and shown.name == "full.json"
    return command if default else f"{command} --out {shown}"


def experiment_main(module: str, run, results_dir: Path, argv=None) -> None:
    """The command line of a chapter's experiments: ``python -m whydecoder.<module>
    [--scale smoke|full] [--out FILE]``; stores to ``results_dir/<scale>.json`` by default.

    Defined in "How to read this book".
    """
    import argparse

    from .run_scale import check_device, current_scale, using_device

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
    parser.add_argument("--replace", action="store_true",
                        help="start again: replace the results already stored in --out (without it, a run only "
                             "resumes or extends them, and a merge only adds to them)")
    parser.add_argument("--device", default="cpu",
                        help="where the experiment trains, if it can use a GPU: cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    from .threads import limit_threads

    limit_threads(args.threads)
    scale = current_scale(args.scale)
    try:
        check_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if args.out is not None and not args.out.strip():
        parser.error("--out must name a file, got an empty string")
    if args.out is not None:
        out = Path(args.out)
    elif scale == "full":
        out = Path(results_dir) / "full.json"
    else:  # smoke results are not the book's: keep them out of data/
        out = RUNS / module / "smoke.json"
    try:
        check_writable(out, args.replace)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    run = _package_run(module, run)
    try:
        if args.merge:
            sections, settings = planned_sections(run, scale)
            merge_results(args.merge, out, experiment_command(module, scale, args.out), settings=settings,
                          makers=section_makers(sections), replace=args.replace)
        else:
            with contextlib.ExitStack() as stack:
                stack.enter_context(using_device(args.device))
                if args.sections is not None:
                    stack.enter_context(only_sections(args.sections))
                if args.replace:  # the old file stands until the first new section replaces it
                    stack.enter_context(replacing())
                run(scale, out)
    except (ValueError, Busy, OSError) as err:
        parser.error(str(err))
    print(f"stored {out}")


def _package_run(module: str, run):
    """The experiment's ``run`` as the package knows it. Started as ``python -m``, its
    module is ``__main__``, whose functions would be fingerprinted as code outside the
    package: the same module imported by its name gives the same fingerprints however the
    command was started."""
    if getattr(run, "__module__", None) != "__main__":
        return run
    import importlib

    return getattr(importlib.import_module(f"whydecoder.{module}"), run.__name__)
