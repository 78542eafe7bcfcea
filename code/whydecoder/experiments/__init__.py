"""The book's experiments, one module per experiment, named after the chapter that shows it.

Every module here follows one contract, checked by ``tests/test_experiments_contract.py``:

- ``RESULTS_DIR``: where its stored full-scale results live (``data/<name>``);
- ``PAGE``: the page that shows it (``chapters/<chapter>/<page>``);
- ``SETTINGS``: ``{"smoke": ..., "full": ...}``, one frozen settings dataclass per scale;
- ``SECTIONS``: the names of the stored sections (a full run stores and resumes by section);
- ``RULES``: ``{claim id: whydecoder.verdicts.Rule}``, the verdict rules it owns, fixed
  before its full run; their fingerprints are stored with its settings, so stored
  results judged by a rule that has since changed are no longer complete;
- ``run(scale, out=None, progress=True)`` and ``load_complete(path=RESULTS_DIR/"full.json")``;
- a command line: ``python -m whydecoder.experiments.<module> --scale full``.

A module listed in :data:`SECOND_LINES` measures real trained models for the page beside a
claim's experiment: it owns no rules (``RULES = {}``) and names the claims it informs in
``INFORMS``; its stored results carry provenance like every other.

A module listed in :data:`STAGES` computes what another experiment reads (a learning-rate
grid): it owns no rules and names the claims it informs. A module listed in
:data:`IN_PROGRESS` is a campaign whose full run is still being stored part by part: it
decides nothing yet and may have no complete stored results.

A module listed in :data:`SUPERSEDED` was replaced by a repair that decides its claims
now: it keeps its rules and stored results, decides nothing, and names the claims in
``INFORMS``.

A module listed in :data:`NOT_YET_UNDER_PROTOCOL` still decides its claims with the
functions it had before the protocol (its stored results predate it) and owns no
``RULES`` yet; the list only shrinks.

Explained in "How to read this book" (stored results, verdicts).
"""

MODULES = ("ch03_conditional", "ch03_nope", "ch03_unmasking", "ch03_zeroshot", "ch04_lowrank", "ch04_real_rank",
           "ch05_icl", "ch05_nbce", "ch05_real_icl", "ch06_efficiency", "ch06_real_cache", "ch07_architecture", "ch07_efficiency_route",
           "ch08_head_to_head", "ch08_lr_grid", "ch08_scale")
#: Second lines of evidence: real trained models measured beside a claim's experiment. They
#: decide no claim (``RULES = {}``) and name the claims they inform in ``INFORMS``.
SECOND_LINES = ("ch04_real_rank", "ch05_real_icl", "ch06_real_cache")
#: Stages: experiments whose stored results another experiment reads (the fair head-to-head's
#: learning-rate grid). They decide no claim (``RULES = {}``) and name the claims they inform.
STAGES = ("ch08_lr_grid",)
#: Campaigns still running: their rules and settings are committed, their full run is stored
#: part by part across sessions, and until it is complete they decide nothing (``CLAIMS = ()``;
#: the claims they will decide are named in ``INFORMS``) and have no complete stored results.
IN_PROGRESS: tuple[str, ...] = ()
#: Experiments a repair replaced: they keep their rules and stored results (their page shows
#: what the rules read, as superseded), decide no claim (``CLAIMS = ()``) and name in
#: ``INFORMS`` the claims their repair now decides (the scale sweep, by the fair head-to-head).
SUPERSEDED = ("ch08_scale",)
#: Experiments whose verdicts are not yet decided by package rules stored with their results.
NOT_YET_UNDER_PROTOCOL: tuple[str, ...] = ()


def experiment_map() -> str:
    """The map "Reproducing the runs" shows, as a Markdown table: each module, the page
    that shows it, the claims it decides (``CLAIMS``) or informs (``INFORMS``) and its
    folder in ``data/``, from the modules' own declarations (a test keeps the page's copy
    equal to it). Defined in "Reproducing the runs"."""
    import importlib

    rows = ["| module | page that shows it | claims | folder in `data/` |", "|---|---|---|---|"]
    for name in sorted(MODULES, key=lambda n: (n in SECOND_LINES, n)):
        module = importlib.import_module(f"{__name__}.{name}")
        ids = [claim.id for claim in getattr(module, "CLAIMS", ())]
        claims = (_ids(ids) if ids else f"will decide {_ids(list(module.INFORMS))} (campaign in progress)"
                  if name in IN_PROGRESS and getattr(module, "RULES", {})
                  else f"informs {_ids(list(module.INFORMS))} (first attempt, superseded)" if name in SUPERSEDED
                  else "informs " + _ids(list(module.INFORMS)))
        rows.append(f"| `{name}` | {{doc}}`../chapters/{module.PAGE}` | {claims} | `{module.RESULTS_DIR.name}` |")
    return "\n".join(rows) + "\n"


def _ids(ids: list[str]) -> str:
    """``C01, C02``, or a run of four or more as ``C03–C07``."""
    numbers = sorted(int(i[1:]) for i in ids)
    if len(numbers) >= 4 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"C{numbers[0]:02d}–C{numbers[-1]:02d}"
    return ", ".join(f"C{n:02d}" for n in numbers)
