"""Every experiment module follows the one declared contract (whydecoder.experiments), and
the stored full-scale results of those under the verdict protocol were judged by the
rules as they are now: changing a rule, or its margins, means running the experiment again."""

import dataclasses
import importlib
import pkgutil

import pytest

import whydecoder.experiments as experiments
from whydecoder.ledger import read_ledger
from whydecoder.paths import DATA
from whydecoder.provenance import judged_by
from whydecoder.results import load_result
from whydecoder.verdicts import Rule, fingerprints

FOUND = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__))
MODULES = {name: importlib.import_module(f"whydecoder.experiments.{name}") for name in FOUND}
UNDER_PROTOCOL = [name for name in FOUND if name not in experiments.NOT_YET_UNDER_PROTOCOL]
STORED = [name for name in UNDER_PROTOCOL if name not in experiments.IN_PROGRESS]


def test_the_package_lists_every_experiment():
    assert tuple(FOUND) == tuple(sorted(experiments.MODULES))
    assert set(experiments.NOT_YET_UNDER_PROTOCOL) <= set(FOUND)
    assert set(experiments.SECOND_LINES) <= set(FOUND)
    assert set(experiments.STAGES) <= set(FOUND) and set(experiments.IN_PROGRESS) <= set(FOUND)
    assert set(experiments.SUPERSEDED) <= set(FOUND)


@pytest.mark.parametrize("name", FOUND)
def test_each_experiment_declares_the_contract(name):
    module = MODULES[name]
    assert module.RESULTS_DIR.parent == DATA
    assert set(module.SETTINGS) == {"smoke", "full"}
    for settings in module.SETTINGS.values():
        assert dataclasses.is_dataclass(settings) and type(settings).__dataclass_params__.frozen
    assert isinstance(module.SECTIONS, tuple) and module.SECTIONS and all(isinstance(s, str) for s in module.SECTIONS)
    assert callable(module.run) and callable(module.load_complete)
    source = importlib.util.find_spec(module.__name__).loader.get_source(module.__name__)
    assert f'experiment_main("experiments.{name}"' in source, "a command line: python -m whydecoder.experiments.<name>"


@pytest.mark.parametrize("name", FOUND)
def test_rules_belong_to_the_experiments_under_the_protocol(name):
    rules = getattr(MODULES[name], "RULES", {})
    if name in experiments.NOT_YET_UNDER_PROTOCOL:
        assert rules == {}, f"{name} owns rules: take it off NOT_YET_UNDER_PROTOCOL"
        return
    ids = {row["id"] for row in read_ledger()}
    if name in experiments.SECOND_LINES or name in experiments.STAGES:
        assert rules == {}, f"{name} is a second line of evidence or a stage: it decides no claim"
        assert MODULES[name].INFORMS and set(MODULES[name].INFORMS) <= ids
        return
    assert rules, f"{name} is under the protocol but owns no RULES"
    for claim, rule in rules.items():
        assert isinstance(rule, Rule) and rule.claim == claim and claim in ids


def test_no_claim_has_two_rules():
    owners = [claim for name in STORED if name not in experiments.SUPERSEDED for claim in MODULES[name].RULES]
    assert len(owners) == len(set(owners)), owners


def test_a_superseded_experiment_decides_nothing_and_its_repair_decides_its_claims():
    """The first attempt keeps its rules and stored results (its page shows what they read),
    and the claims it names are decided by another module."""
    decided = {claim.id for module in MODULES.values() for claim in getattr(module, "CLAIMS", ())}
    for name in experiments.SUPERSEDED:
        module = MODULES[name]
        assert module.CLAIMS == () and module.RULES and set(module.INFORMS) == set(module.RULES)
        assert set(module.INFORMS) <= decided


def test_a_campaign_in_progress_decides_nothing_yet():
    """Until its full run is complete, a campaign's rules are committed but it owns no claim
    (the ledger keeps deciding those claims from the experiment it replaces)."""
    for name in experiments.IN_PROGRESS:
        assert getattr(MODULES[name], "CLAIMS", ()) == () and MODULES[name].INFORMS


@pytest.mark.parametrize("name", STORED)
def test_stored_results_were_judged_by_the_current_rules(name):
    """The rule's fingerprint is part of the settings stored with the full run (carried
    through the migrations recorded in its provenance)."""
    module = MODULES[name]
    stored = load_result(module.RESULTS_DIR / "full.json")
    assert stored is not None, f"{name}: no stored full-scale results; run its full scale"
    assert judged_by(stored) == fingerprints(module.RULES), (
        f"{name}: the stored results were judged by other rules than the current ones; "
        f"run `python -m whydecoder.experiments.{name} --scale full` again, or check and record a migration "
        "(python -m whydecoder.migrate)")
    assert module.load_complete() is not None


def test_the_map_on_reproducing_is_the_modules_own():
    """The module -> page -> claims -> data map ("Reproducing the runs") is generated from
    the modules' declarations; the page's copy cannot drift from them."""
    from whydecoder.experiments import experiment_map
    from whydecoder.paths import CHAPTERS, ROOT
    from whydecoder.report import _chapter_notebook

    assert experiment_map() in (ROOT / "book" / "reproducing.md").read_text(encoding="utf-8")
    for name, module in MODULES.items():
        assert (CHAPTERS / f"{module.PAGE}.ipynb").exists(), name
        for claim in getattr(module, "CLAIMS", ()):
            # the ledger links each claim to the page that tests it (C18: the conclusion weighs it)
            assert _chapter_notebook(claim.chapter) == CHAPTERS / f"{module.PAGE}.ipynb" or claim.id == "C18", \
                (name, claim.id)
