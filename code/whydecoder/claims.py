"""The book's claims as package objects, and the one writer of the claims ledger.

Each claim is declared once, beside the rule that decides it, in the module that owns its
evidence (an experiment module's ``CLAIMS``; the tree's for C15 and C19): its id, the
claim in the sources' words, the page that tests it, how its results are loaded, how it is
judged, and a function that writes its evidence and scope from those results. The
hand-written columns of the ledger (sources, papers) live in ``data/claim_sources.csv``;
everything else in ``data/claims.csv`` is generated here:

    python -m whydecoder.claims           # compute every verdict from the stored results, write the ledger
    python -m whydecoder.claims --check   # exit 1, naming the rows, when the committed ledger differs

Pages display (:func:`show_verdict`); no notebook writes under ``data/``.

Explained in "The claims ledger".
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

from .paths import DATA
from .verdicts import Verdict

LEDGER = DATA / "claims.csv"
SOURCES = DATA / "claim_sources.csv"
#: Where a claim's evidence may come from: complete stored full-scale results, or a dataset.
SCALES = ("full", "dataset")
#: The claim that is decided last: its evidence weighs the others (the book's question).
LAST = "C18"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a claim's verdict rests on, in words: the evidence (numbers with their
    intervals), the scope (what was run), how the ledger joins them, and ``rests_on``: how
    much the verdict rests on, counted (how many tasks, cells, sizes or seeds passed their
    gates and were compared, out of how many run), so that "refuted on one task" never
    reads like "refuted". Defined in "The claims ledger"."""

    text: str
    scope: str = ""
    joiner: str = " Scope: "
    rests_on: str = ""

    def __post_init__(self):
        for name in ("text", "scope", "joiner", "rests_on"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Evidence.{name} must be text, got {getattr(self, name)!r}")
        if "\n" in self.rests_on:
            raise ValueError(f"Evidence.rests_on must be one line, got {self.rests_on!r}")

    @property
    def line(self) -> str:
        """The ledger's evidence column."""
        return self.text + (self.joiner + self.scope if self.scope else "")


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def in_words(n: int) -> str:
    """A count for a ``rests_on`` line: in words below ten ("no" for zero), else in digits.
    Defined in "The claims ledger"."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a count must be an int >= 0, got {n!r}")
    return _WORDS[n] if n < len(_WORDS) else str(n)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` things for a ``rests_on`` line, small counts in words: ``counted(3, "task")``
    is "three tasks", ``counted(1, "seed")`` "one seed", ``counted(216, "model")`` "216
    models" (``plural``: when adding an "s" is wrong). Defined in "The claims ledger"."""
    return f"{in_words(n)} {noun if n == 1 else plural or noun + 's'}"


def counted_of(k: int, n: int, noun: str, plural: str | None = None) -> str:
    """``k`` of ``n`` things for a ``rests_on`` line: "two of four cells", "7 of 10
    comparisons", "both tasks", "all three sizes", "neither task", "none of the three
    tasks", "no task" (of one). Defined in "The claims ledger"."""
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n, got k={k!r}, n={n!r}")
    many = counted(n, noun, plural)
    if k == n:
        return f"the one {noun}" if n == 1 else f"both {many.split(' ', 1)[1]}" if n == 2 else f"all {many}"
    if k == 0:
        return f"no {noun}" if n == 1 else f"neither {noun}" if n == 2 else f"none of the {many}"
    return f"{in_words(k) if n < len(_WORDS) else k} of {many}"  # 7 of 10, not seven of 10


def protocol_stop(rule, results: dict, verdict: Verdict, unit: str = "seed") -> str | None:
    """The ``rests_on`` of a verdict the protocol gave before the rule read anything
    (:meth:`whydecoder.verdicts.Rule.__call__`: a value that is not a finite number, fewer
    seeds, or other ``unit`` of replication, than the rule asks for), or ``None`` when the
    rule itself decided. Defined in "The claims ledger"."""
    from .verdicts import first_non_finite

    if verdict.outcome != "inconclusive" or verdict.numbers:
        return None
    if first_non_finite(results):
        return "nothing compared: the results hold a value that is not a finite number"
    need, seeds = rule.parameters.get("min_seeds"), getattr(rule, "seeds", None)
    if need is not None and seeds is not None and seeds(results) < need:
        return f"nothing compared: {counted(seeds(results), unit)}, fewer than the {need} the rule asks for"
    return None


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim: ``id``; ``claim``, in the sources' words (one place: the ledger and the
    page's verdict box read it here); ``chapter``, the page that tests it (its chapter's folder for
    a chapter's opening page, ``"folder/page"`` for a section); ``load``, the results
    the ledger is computed from (``None`` when they are not stored complete); ``judge``,
    results to :class:`~whydecoder.verdicts.Verdict` (the claim's rule); ``evidence``,
    ``(results, verdict, rows)`` to :class:`Evidence` (``rows``: the ledger's other rows,
    which only the book's question reads); ``scale``: what the evidence rests on
    (:data:`SCALES`); ``revised``: empty when the rule was fixed before the results it
    judges were seen, else what of it was settled after (a phrase: the verdict box and the
    ledger say so, instead of "fixed before the run"). Defined in "The claims ledger"."""

    id: str
    claim: str
    chapter: str
    load: Callable[[], dict | None]
    judge: Callable[[dict], Verdict]
    evidence: Callable[..., Evidence]
    scale: str = "full"
    revised: str = ""

    def __post_init__(self):
        if not (isinstance(self.id, str) and len(self.id) == 3 and self.id.startswith("C") and self.id[1:].isdigit()):
            raise ValueError(f"claim id must look like 'C01', got {self.id!r}")
        if not isinstance(self.claim, str) or not self.claim.strip() or "\n" in self.claim:
            raise ValueError(f"{self.id}: the claim must be one non-empty line, got {self.claim!r}")
        if self.scale not in SCALES:
            raise ValueError(f"{self.id}: scale {self.scale!r} is not one of {SCALES}")
        if not isinstance(self.revised, str) or "\n" in self.revised:
            raise ValueError(f"{self.id}: revised must be one line of text (empty: the rule was fixed before the run), "
                             f"got {self.revised!r}")
        for name in ("load", "judge", "evidence"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{self.id}: {name} must be a function, got {getattr(self, name)!r}")

    @property
    def rule(self):
        """The claim's :class:`~whydecoder.verdicts.Rule` (its judge), for the verdict box."""
        return self.judge

    def decide(self, results: dict, rows: list[dict] | None = None) -> tuple[Verdict, Evidence]:
        """The verdict and its evidence on ``results`` (stored or a smoke run's)."""
        verdict = self.judge(results)
        return verdict, self.explain(results, verdict, rows)

    def explain(self, results: dict, verdict: Verdict, rows: list[dict] | None = None) -> Evidence:
        """The evidence for ``verdict`` on ``results``; what it rests on ends by saying so
        when the rule was revised after results were seen (:attr:`revised`)."""
        evidence = self.evidence(results, verdict, rows or [])
        if not isinstance(evidence, Evidence):
            raise TypeError(f"{self.id}: evidence returned {type(evidence).__name__}, not an Evidence")
        if self.revised:
            evidence = dataclasses.replace(
                evidence, rests_on=f"{evidence.rests_on}; rule revised after results were seen ({self.revised})")
        return evidence


def stored_results(module) -> Callable[[], dict | None]:
    """A ``load`` for :class:`Claim`: the experiment module's complete stored full-scale
    results, or ``None``. Defined in "The claims ledger"."""

    def load():
        stored = module.load_complete()
        return stored["results"] if stored else None

    return load


#: The modules outside ``experiments`` that declare claims (``CLAIMS``): the tree's, for
#: the claims that rest on its dataset.
DATASET_OWNERS = ("whydecoder.tree", "whydecoder.tree_structure")


def owners() -> tuple[str, ...]:
    """The modules that declare claims: :data:`DATASET_OWNERS` and every experiment that
    decides one (all but the second lines of evidence). Defined in "The claims ledger"."""
    from .experiments import MODULES, SECOND_LINES

    return DATASET_OWNERS + tuple(f"whydecoder.experiments.{name}" for name in MODULES if name not in SECOND_LINES)


def all_claims() -> dict[str, Claim]:
    """``{id: Claim}`` of every claim the package declares, by id; a claim declared twice
    is refused. Defined in "The claims ledger"."""
    found: dict[str, Claim] = {}
    for owner in owners():
        for claim in getattr(importlib.import_module(owner), "CLAIMS", ()):
            if claim.id in found:
                raise ValueError(f"claim {claim.id} is declared twice (again in {owner})")
            found[claim.id] = claim
    return dict(sorted(found.items()))


def get(claim_id: str) -> Claim:
    """One declared claim. Defined in "The claims ledger"."""
    claims = all_claims()
    if claim_id not in claims:
        raise ValueError(f"unknown claim {claim_id!r}; declared: {', '.join(claims)}")
    return claims[claim_id]


def read_sources(path: str | Path = SOURCES) -> dict[str, dict]:
    """``{id: {"sources", "papers"}}``: the ledger's hand-written columns. Defined in "The
    claims ledger"."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or tuple(rows[0]) != ("id", "sources", "papers"):
        raise ValueError(f"{path}: expected the columns id, sources, papers")
    out = {}
    for line, row in enumerate(rows, start=2):
        if None in row or row["id"] in out:
            raise ValueError(f"{path}, line {line}: a malformed or repeated row {row!r}")
        out[row["id"]] = {"sources": row["sources"], "papers": row["papers"]}
    return out


def compute_ledger(claims: dict[str, Claim] | None = None, sources: dict | None = None) -> list[dict]:
    """Every ledger row, computed from the stored results (and datasets): the book's
    question last, since its evidence weighs the others. A claim whose results are not
    stored complete is refused by name: the ledger never rests on a smoke run. Defined in
    "The claims ledger"."""
    from .at_scale import relation
    from .ledger import COLUMNS, validate_ledger

    claims = all_claims() if claims is None else claims
    sources = read_sources() if sources is None else sources
    missing = sorted(set(claims) ^ set(sources))
    if missing:
        raise ValueError(f"claims {missing} are declared in the package or in {SOURCES.name}, not in both")
    rows: dict[str, dict] = {}
    for claim_id in sorted(claims, key=lambda c: (c == LAST, c)):
        claim = claims[claim_id]
        results = claim.load()
        if results is None:
            raise ValueError(f"{claim_id}: no complete stored results to judge it on; run its full scale first")
        verdict, evidence = claim.decide(results, [rows[c] for c in sorted(rows)])
        rows[claim_id] = {"id": claim_id, "claim": claim.claim, **sources[claim_id], "chapter": claim.chapter,
                          "verdict": verdict.outcome, "reason": verdict.reason, "rests_on": evidence.rests_on,
                          "evidence": evidence.line,
                          "at_scale": relation(verdict.outcome, claim_id)}
    out = [{column: rows[c][column] for column in COLUMNS} for c in sorted(rows)]
    validate_ledger(out)
    return out


def render(rows: list[dict]) -> str:
    """The ledger's CSV text. Defined in "The claims ledger"."""
    from .ledger import COLUMNS

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def differences(committed: str, computed: str) -> list[str]:
    """One line per ledger row that differs (``C13: verdict supported -> nuanced``).
    Defined in "The claims ledger"."""
    def by_id(text):
        return {row["id"]: row for row in csv.DictReader(io.StringIO(text))}

    old, new = by_id(committed), by_id(computed)
    out = []
    for claim_id in sorted(set(old) | set(new)):
        if claim_id not in old or claim_id not in new:
            out.append(f"{claim_id}: {'added' if claim_id in new else 'removed'}")
            continue
        for column, value in new[claim_id].items():
            if old[claim_id].get(column) != value:
                out.append(f"{claim_id}: {column} {old[claim_id].get(column)!r} -> {value!r}"[:400])
    if not out and committed != computed:
        out.append("the rows are the same but the file's text differs (order, quoting or line endings)")
    return out


def show_verdict(claim_id: str, results: dict, verdict: Verdict | None = None) -> str:
    """The verdict box of one claim on ``results`` (stored or a smoke run's), as HTML: the
    claim's words, the rule, the verdict, the evidence and the scope, all from the package
    (``verdict``: the page's own, when it already decided it, so as not to decide twice).
    Defined in "The claims ledger"."""
    from .ledger import read_ledger
    from .report import verdict_box

    claim = get(claim_id)
    rows = [row for row in read_ledger() if row["id"] != claim_id] if claim_id == LAST else []
    if verdict is None:
        verdict, evidence = claim.decide(results, rows)
    else:
        evidence = claim.explain(results, verdict, rows)
    settings = results.get("settings") if isinstance(results, dict) else None
    judged = ((settings or {}).get("rules") or {}).get(claim_id) if isinstance(settings, dict) else None
    from .at_scale import at_scale_line

    return verdict_box(claim.id, claim.claim, claim.rule, verdict, evidence.text, evidence.scope, judged_by=judged,
                       at_scale=at_scale_line(claim.id, verdict.outcome), rests_on=evidence.rests_on,
                       revised=claim.revised)


def main(argv=None) -> int:
    """``python -m whydecoder.claims [--check]``. Defined in "The claims ledger"."""
    from .storage import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m whydecoder.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the committed ledger with the computed one and exit 1 when they differ")
    args = parser.parse_args(argv)
    try:
        computed = render(compute_ledger())
    except ValueError as err:
        parser.error(str(err))
    committed = LEDGER.read_text(encoding="utf-8") if LEDGER.exists() else ""
    if args.check:
        diff = differences(committed, computed)
        if diff:
            print(f"{LEDGER} differs from the verdicts computed from the stored results "
                  "(run python -m whydecoder.claims and commit it):", file=sys.stderr)
            for line in diff:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"{LEDGER.name}: {computed.count(chr(10)) - 1} claims, as computed")
        return 0
    if computed != committed:
        atomic_write_text(LEDGER, computed)
        print(f"wrote {LEDGER}")
    else:
        print(f"{LEDGER} already holds these verdicts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
