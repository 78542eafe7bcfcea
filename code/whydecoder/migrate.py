"""Migrations: a rule changed, its stored results did not, and the change is shown to
leave every verdict identical.

A rule's fingerprint (:meth:`whydecoder.verdicts.Rule.fingerprint`) covers everything its
decision calls. When the code moves or is refactored, the fingerprint changes and the
stored results no longer count as judged by today's rule (:func:`whydecoder.results.
load_complete` refuses them). Two honest ways out: run the experiment again, or show that
the change decides nothing differently. This module does the second:

1. the code at ``--from COMMIT`` (the commit whose rules judged the stored results: its
   fingerprints must equal the stored ones) decides on the stored results, in a separate
   process on a copy of that commit;
2. today's code decides on the same results;
3. only if every verdict is identical (outcome, reason and every number) is a migration
   recorded in the results' provenance: old fingerprint, new, why, the check, the date
   and the commit. Anything else is refused, naming the claims that differ. With
   ``--reworded`` the reason alone may differ (a rule's sentence rewritten, its decision
   not): the outcome and every number must still be identical, and the old and the new
   reason are both recorded.

``--backfill-makers`` records, for sections stored before the code that made them was
fingerprinted, the fingerprint of that code computed from the commit that made them (only
where that commit was clean: code with uncommitted changes cannot be reconstructed).

    python -m whydecoder.migrate --from COMMIT --why "the claims moved into the package"

Explained in "How to read this book" (stored results).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .paths import ROOT
from .provenance import git_commit, judged_by
from .results import current_makers, load_result
from .storage import atomic_write_text, dumps_strict, exclusive, loads_strict

#: Run in a separate interpreter on a copy of an old commit: its rules decide on stored results.
_DECIDE_AT = r"""
import dataclasses, importlib, json, sys
sys.path.insert(0, sys.argv[1])
import whydecoder
assert whydecoder.__file__.startswith(sys.argv[1]), whydecoder.__file__
module = importlib.import_module("whydecoder.experiments." + sys.argv[2])
results = json.loads(open(sys.argv[3], encoding="utf-8").read())["results"]
out = {claim: {"fingerprint": rule.fingerprint(), "verdict": dataclasses.asdict(rule(results))}
       for claim, rule in module.RULES.items()}
print(json.dumps(out, sort_keys=True))
"""

#: Run on a copy of an old commit: the fingerprint of each section's code, with today's fingerprinting.
_MAKERS_AT = r"""
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import whydecoder
assert whydecoder.__file__.startswith(sys.argv[1]), whydecoder.__file__
spec = importlib.util.spec_from_file_location("_today_fingerprint", sys.argv[4])
fp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fp)
module = importlib.import_module("whydecoder.experiments." + sys.argv[2])
captured = {}
class Planned(Exception):
    pass
def capture(sections, settings, out, command):
    captured.update(sections)
    raise Planned
module.run_sections = capture
try:
    module.run(sys.argv[3], out=None, progress=False)
except Planned:
    pass
trees = {}
makers = fp.fingerprints(captured, machinery=True, trees=trees)
print(json.dumps({"makers": makers, "trees": trees}, sort_keys=True))
"""


@dataclasses.dataclass
class Checkout:
    """A copy of the book's code and data at one commit, in a temporary folder. Defined in
    "How to read this book"."""

    commit: str
    folder: Path

    @property
    def code(self) -> Path:
        return self.folder / "code"


def checkout(commit: str, into: Path) -> Checkout:
    """Extract ``code/`` and ``data/`` at ``commit`` into ``into`` (``git archive``).
    Defined in "How to read this book"."""
    full = _resolve(commit)
    archive = subprocess.run(["git", "archive", full, "code", "data"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return Checkout(full, into)


def _resolve(commit: str) -> str:
    if not isinstance(commit, str) or not commit.strip() or "+" in commit:
        raise ValueError(f"--from must name a commit of this repository, got {commit!r}")
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise ValueError(f"{commit!r} is not a commit of this repository") from None
    return out.stdout.strip()


def _python(script: str, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"the old code failed: {done.stderr.strip()[-2000:]}")
    return loads_strict(done.stdout.strip().splitlines()[-1], "the old code's answer")


def decide_at(old: Checkout, module: str, path: Path) -> dict:
    """``{claim: {"fingerprint", "verdict"}}`` of ``module``'s rules at the old commit,
    deciding on the results stored at ``path``. Defined in "How to read this book"."""
    return _python(_DECIDE_AT, old.code, module, path)


def decide_now(module, results: dict) -> dict:
    """The same as :func:`decide_at`, with today's code. Defined in "How to read this book"."""
    return {claim: {"fingerprint": rule.fingerprint(), "verdict": json.loads(json.dumps(
        dataclasses.asdict(rule(results))))} for claim, rule in module.RULES.items()}


def migrate(name: str, old: Checkout, why: str, dry_run: bool = False, reworded: bool = False) -> str:
    """Check and record the migration of one experiment's stored results from the rules at
    ``old`` to today's (see the module's docstring); return what was done, in a line.
    Raises ``ValueError`` when the old commit did not judge these results or when any
    verdict differs (with ``reworded``: in anything but its reason). Defined in "How to
    read this book"."""
    module = importlib.import_module(f"whydecoder.experiments.{name}")
    path = Path(module.RESULTS_DIR) / "full.json"
    with exclusive(path, "python -m whydecoder.migrate"):  # no other writer between the check and the record
        return _migrate(name, module, path, old, why, dry_run, reworded)


def _decision(verdict: dict, reworded: bool) -> str:
    """A verdict as compared: all of it, or (``reworded``) all of it but its reason."""
    return json.dumps({k: v for k, v in verdict.items() if not (reworded and k == "reason")}, sort_keys=True)


def _migrate(name: str, module, path: Path, old: Checkout, why: str, dry_run: bool, reworded: bool = False) -> str:
    stored = load_result(path)
    if stored is None:
        return f"{name}: no stored results"
    judged = judged_by(stored)
    now = decide_now(module, stored["results"])
    changed = {claim: {"from": judged.get(claim), "to": now[claim]["fingerprint"]} for claim in now
               if judged.get(claim) != now[claim]["fingerprint"]}
    if not changed:
        return f"{name}: its rules are today's ({', '.join(sorted(now)) or 'none'})"
    then = decide_at(old, name, path)
    foreign = [c for c in now if then.get(c, {}).get("fingerprint") != judged.get(c)]
    if foreign:
        raise ValueError(f"{name}: the rules at {old.commit[:12]} did not judge these results ("
                         + ", ".join(f"{c}: {then.get(c, {}).get('fingerprint')} there, {judged.get(c)} stored"
                                     for c in foreign) + "); name the commit whose rules did")
    differ = [c for c in now if _decision(then[c]["verdict"], reworded) != _decision(now[c]["verdict"], reworded)]
    if differ:
        detail = "; ".join(f"{c}: {then[c]['verdict']['outcome']} ({then[c]['verdict']['reason']}) then, "
                           f"{now[c]['verdict']['outcome']} ({now[c]['verdict']['reason']}) now" for c in differ)
        raise ValueError(f"{name}: the change decides differently on the stored results ({detail}); "
                         "run the experiment again instead")
    same = "outcome and every number; reasons reworded" if reworded else "outcome, reason and every number"
    record = {"rules": changed, "why": why, "from_commit": old.commit,
              "check": (f"decided on these stored results with the rules at commit {old.commit[:12]} and with "
                        f"today's: all {len(now)} verdicts identical ({same})"),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "commit": git_commit()}
    if reworded:
        record["reworded"] = {c: {"from": then[c]["verdict"]["reason"], "to": now[c]["verdict"]["reason"]}
                              for c in now if then[c]["verdict"]["reason"] != now[c]["verdict"]["reason"]}
    if not dry_run:
        payload = load_result(path)
        if payload != stored:
            raise ValueError(f"{path} changed while its verdicts were being checked; run the migration again")
        payload["provenance"].setdefault("migrations", []).append(record)
        atomic_write_text(path, dumps_strict(payload))
    return (f"{name}: {', '.join(sorted(changed))} migrated, every verdict identical"
            + (" but for its reworded reason" if reworded else ""))


def backfill_makers(name: str, folder: Path, dry_run: bool = False) -> str:
    """Record the fingerprint of the code that made each stored section that lacks one,
    computed (with today's fingerprinting) from the clean commit that made it; sections
    made with uncommitted changes are left without, and said so. Defined in "How to read
    this book"."""
    module = importlib.import_module(f"whydecoder.experiments.{name}")
    path = Path(module.RESULTS_DIR) / "full.json"
    stored = load_result(path)
    if stored is None:
        return f"{name}: no stored results"
    made = stored["provenance"].get("sections") or {}
    missing = [s for s in stored["results"] if s != "settings" and not (made.get(s) or {}).get("maker")]
    if not missing:
        return f"{name}: every section has its maker"
    commits = sorted({(made.get(s) or {}).get("commit", "") for s in missing})
    found: dict[str, str] = {}
    trees: dict[str, dict] = {}
    notes = []
    for commit in commits:
        if not commit or commit.endswith("+dirty") or commit == "unknown":
            notes.append(f"made at {commit or 'an unrecorded commit'}: its code cannot be reconstructed")
            continue
        old = checkout(commit, Path(tempfile.mkdtemp(dir=folder)))
        answer = _python(_MAKERS_AT, old.code, name, "full", Path(__file__).with_name("fingerprint.py"))
        makers = answer["makers"]
        trees |= answer["trees"]
        for section in missing:
            if (made.get(section) or {}).get("commit") == commit and section in makers:
                found[section] = makers[section]
    if found and not dry_run:
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        with exclusive(path, "python -m whydecoder.migrate --backfill-makers"):
            payload = load_result(path)
            for section, maker in found.items():
                payload["provenance"]["sections"][section]["maker"] = maker
                payload["provenance"]["sections"][section]["maker_note"] = (
                    f"computed on {today} from the code at the section's commit")
            kept = payload["provenance"].setdefault("maker_trees", {})
            kept |= {fp: tree for fp, tree in trees.items() if fp in set(found.values())}
            atomic_write_text(path, dumps_strict(payload))
    current = current_makers(module, "full")
    same = sum(1 for s, m in found.items() if current.get(s) == m)
    return (f"{name}: makers for {len(found)} of {len(missing)} sections ({same} made by today's code)"
            + (f"; {'; '.join(notes)}" if notes else ""))


def main(argv=None) -> None:
    """``python -m whydecoder.migrate --from COMMIT --why TEXT [MODULE ...]`` (and
    ``--backfill-makers``, ``--dry-run``). Defined in "How to read this book"."""
    from .experiments import MODULES

    parser = argparse.ArgumentParser(prog="python -m whydecoder.migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"experiments (default all: {', '.join(MODULES)})")
    parser.add_argument("--from", dest="commit", default=None, help="the commit whose rules judged the stored results")
    parser.add_argument("--why", default=None, help="what changed, in a sentence (stored with the migration)")
    parser.add_argument("--backfill-makers", action="store_true",
                        help="record the fingerprint of the code that made sections stored without one")
    parser.add_argument("--dry-run", action="store_true", help="check and say, but store nothing")
    parser.add_argument("--reworded", action="store_true",
                        help="a rule's reason was reworded: its outcome and every number must stay identical")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown experiments {unknown}; expected some of {list(MODULES)}")
    if not args.backfill_makers and (not args.commit or not (args.why or "").strip()):
        parser.error("a migration needs --from COMMIT and --why TEXT")
    names = args.modules or list(MODULES)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.backfill_makers:
                for name in names:
                    print(backfill_makers(name, Path(tmp), args.dry_run))
            else:
                old = checkout(args.commit, Path(tmp))
                for name in names:
                    print(migrate(name, old, args.why.strip(), args.dry_run, args.reworded))
        except ValueError as err:
            parser.error(str(err))


if __name__ == "__main__":
    main()
