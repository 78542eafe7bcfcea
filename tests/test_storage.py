"""No stored result lost or silently foreign: one writer per file, nothing complete
replaced without an explicit option, strict JSON, fingerprints over a rule's whole call
tree, migrations checked by deciding with old and new code."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import whydecoder.command as command
import whydecoder.results as results
from whydecoder import sweep
from whydecoder.command import experiment_main
from whydecoder.fingerprint import call_tree, fingerprint, fingerprints
from whydecoder.provenance import code_changes
from whydecoder.results import load_complete, load_result, merge_results, only_sections, run_sections, save_result
from whydecoder.storage import Busy, dumps_strict, exclusive, lock_path
from whydecoder.verdicts import Rule, Verdict

SETTINGS = {"steps": 10, "rules": {"C99": "aaaa"}}


def _hold(path, seconds=30.0):
    """A child process that holds ``path``'s lock until killed; returns once it holds it."""
    import whydecoder.storage

    code = textwrap.dedent(f"""
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("storage", {whydecoder.storage.__file__!r})
        storage = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(storage)  # the module alone: no torch to import, so the child starts at once
        with storage.exclusive({str(path)!r}, "the test's other writer"):
            print("holding", flush=True)
            time.sleep({seconds})
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "holding"
    return child


# ---------------------------------------------------------------- one writer per file


def test_a_second_writer_of_the_same_results_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "full.json"
    child = _hold(out)
    try:
        with pytest.raises(Busy, match=r"being written by another process \(pid \d+ .*the test's other writer"):
            run_sections({"a": lambda: pytest.fail("ran beside another writer")}, SETTINGS, out, command="x")
        with pytest.raises(SystemExit):
            experiment_main("demo", lambda scale, out: run_sections({"a": lambda: [1]}, SETTINGS, out, "x"),
                            tmp_path, argv=["--scale", "full", "--out", str(out)])
        assert "being written by another process" in capsys.readouterr().err
    finally:
        child.kill()
        child.wait()
    assert not out.exists()
    run_sections({"a": lambda: [1]}, SETTINGS, out, command="x")  # a killed holder leaves no lock behind
    assert load_result(out)["results"]["a"] == [1]
    assert not lock_path(out).exists()


def test_a_killed_writer_leaves_nothing_that_blocks_or_litters(tmp_path):
    out = tmp_path / "full.json"
    save_result(out, {"settings": SETTINGS}, command="x")
    leftovers = [tmp_path / ".full.json.k2j3h4ab.tmp", tmp_path / ".full.json.abcd_123.probe", tmp_path / ".full.joining.json"]
    for stale in leftovers:
        stale.write_text("{half")
    child = _hold(out)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    save_result(out, {"settings": SETTINGS, "a": [1]}, command="x")
    assert [p for p in leftovers if p.exists()] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.json"]


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    out = tmp_path / "x.json"
    with exclusive(out), exclusive(out):
        save_result(out, {"a": 1}, command="x")  # the write takes the same lock again
    assert load_result(out)["results"] == {"a": 1}


# ---------------------------------------------------------------- nothing complete replaced


def test_a_smoke_sweep_cannot_replace_full_results(tmp_path, capsys):
    """The reported case: a one-section smoke sweep with --out on the full results exited 0
    and left a smoke file where the full results were."""
    from whydecoder.paths import DATA

    full = tmp_path / "full.json"
    full.write_text((DATA / "efficiency" / "full.json").read_text())
    before = full.read_bytes()
    with pytest.raises(SystemExit):
        sweep.main(["ch06_efficiency", "--scale", "smoke", "--sections", "reuse", "--out", str(full),
                    "--folder", str(tmp_path / "parts"), "--workers", "1"])
    assert "other settings" in capsys.readouterr().err
    assert full.read_bytes() == before
    assert list((tmp_path / "parts").glob("part-*.json")) == []  # refused before any work


def test_a_sweep_keeps_what_its_output_holds_and_refuses_what_it_cannot(tmp_path):
    out, folder = tmp_path / "out.json", tmp_path / "parts"
    sections, settings = results.planned_sections(sweep._module("ch06_efficiency").run, "smoke")
    makers = results.section_makers(sections)
    made = {"commit": "c", "date": "d", "device": "cpu", "code": "k"}
    save_result(out, {"settings": settings, "reuse": {"x": 1}}, command="x",
                sections={"reuse": made | {"maker": "0123456789abcdef"}})
    with pytest.raises(ValueError, match=r"holds sections \['reuse'\] made by other code than today's"):
        sweep.sweep("ch06_efficiency", "smoke", 1, "local", folder, out, only=["decode_steps"], progress=False)
    save_result(out, {"settings": settings, "reuse": {"x": 1}}, command="x",
                sections={"reuse": made | {"maker": makers["reuse"]}})
    sweep.sweep("ch06_efficiency", "smoke", 1, "local", folder, out, only=["reuse"], progress=False)
    assert load_result(out)["results"]["reuse"] == {"x": 1}  # kept, not run again: a sweep only adds
    assert list(folder.glob("part-*.json")) == []


def test_two_sweeps_cannot_share_a_folder(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    child = _hold(folder)
    try:
        with pytest.raises(Busy, match="being written by another process"):
            sweep.sweep("ch06_efficiency", "smoke", 1, "local", folder, tmp_path / "out.json", progress=False)
    finally:
        child.kill()
        child.wait()
    assert list(folder.iterdir()) == []


def test_parts_made_under_other_settings_or_code_are_refused_before_any_work(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    sections, settings = results.planned_sections(sweep._module("ch06_efficiency").run, "smoke")
    makers = results.section_makers(sections)
    made = {"commit": "c", "date": "d", "device": "cpu", "code": "k", "maker": makers["reuse"]}
    part = folder / "part-1.json"
    save_result(part, {"settings": dict(settings, warmup=99), "reuse": {"x": 1}}, command="x",
                sections={"reuse": made})
    with pytest.raises(ValueError, match="part-1.json was made under other settings"):
        sweep.stored_sections(folder, makers, settings)
    save_result(part, {"settings": settings, "reuse": {"x": 1}}, command="x",
                sections={"reuse": made | {"maker": "0123456789abcdef"}})
    with pytest.raises(ValueError, match="made by other code than the current"):
        sweep.stored_sections(folder, makers, settings)
    save_result(folder / "part-2.json", {"settings": settings, "reuse": {"x": 1}}, command="x",
                sections={"reuse": made})
    with pytest.raises(ValueError, match="stored twice"):
        sweep.stored_sections(folder, None, settings)


def test_part_names_cannot_collide(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(sweep, "_execute", lambda args, *rest: seen.extend(a[3] for a in args))
    monkeypatch.setattr(sweep, "join_parts", lambda *a, **k: None)
    for _ in range(2):
        sweep.sweep("ch06_efficiency", "smoke", 2, "local", tmp_path / "p", tmp_path / "o.json", progress=False)
    assert len(set(seen)) == len(seen) == 4
    assert all(os.path.basename(p).startswith("part-") for p in seen)


def test_the_scale_sweep_plans_at_smoke_scale():
    """It planned from the full scale's sections: 'unknown size d24' at smoke scale."""
    module = sweep._module("ch08_scale")
    sections, _ = results.planned_sections(module.run, "smoke")
    groups = sweep.plan(module, "smoke", 2, names=tuple(sections))
    assert sorted(sum(groups, [])) == sorted(sections)
    with pytest.raises(ValueError, match="a list of section names, got the string"):
        sweep.plan(module, "smoke", 2, only="reuse", names=tuple(sections))


def test_the_run_command_replaces_only_with_replace(tmp_path):
    out = tmp_path / "full.json"

    def run(scale, out):
        return run_sections({"a": lambda: [1]}, SETTINGS, out, "x")

    experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--out", str(out)])
    payload = load_result(out)
    payload["results"]["a"] = [5]  # as if made by an earlier run
    out.write_text(json.dumps(payload))
    experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--out", str(out)])
    assert load_result(out)["results"]["a"] == [5]  # complete: nothing recomputed, nothing replaced
    experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--out", str(out), "--replace"])
    assert load_result(out)["results"]["a"] == [1]


# ---------------------------------------------------------------- finite or refused


def test_results_are_strict_json(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"payload\['results'\]\['a'\]\[1\] is not a finite number"):
        save_result(tmp_path / "x.json", {"a": [1.0, math.nan]}, command="x")
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(ValueError, match="not a finite number"):
        dumps_strict({"b": -math.inf})
    path = tmp_path / "nan.json"
    path.write_text('{"provenance": {"command": "c", "commit": "c", "device": "d", "date": "d"}, '
                    '"results": {"a": NaN}}')
    with pytest.raises(ValueError, match="not strict JSON: the JSON holds NaN"):
        load_result(path)
    assert load_complete(path, ["a"]) is None
    assert "not strict JSON" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_rule_is_inconclusive_on_non_finite_results(bad):
    import importlib

    from whydecoder.experiments import MODULES
    from whydecoder.tree_structure import C19_RULE

    rules = [C19_RULE] + [r for m in MODULES for r in importlib.import_module(f"whydecoder.experiments.{m}").RULES.values()]
    for rule in rules:
        verdict = rule({"anything": [{"loss": 1.0}, {"loss": bad}]})
        assert verdict.outcome == "inconclusive", rule.claim
        assert "not a finite number at results['anything'][1]['loss']" in verdict.reason


# ---------------------------------------------------------------- provenance that decides


def test_a_rule_fingerprint_covers_the_helpers_it_calls(monkeypatch):
    """The reported case: growth_exponents returning five times its slope turned C13 from
    supported to inconclusive under the same stored fingerprint."""
    import whydecoder.experiments.ch06_efficiency as eff

    rule = eff.RULES["C13"]
    before = rule.fingerprint()
    assert "whydecoder.experiments.ch06_efficiency.growth_exponents" in call_tree(rule.decide)
    assert "whydecoder.verdicts.t_interval" in call_tree(rule.decide)
    from whydecoder.fingerprint import STORAGE

    tree = call_tree(rule.decide, type(rule).__call__, transparent=STORAGE)
    assert not any(key.startswith(STORAGE) for key in tree)  # storing results decides nothing
    original = eff.growth_exponents
    monkeypatch.setattr(eff, "growth_exponents", lambda steps, key: [5 * g for g in original(steps, key)])
    assert rule.fingerprint() != before
    monkeypatch.undo()
    assert rule.fingerprint() == before


def test_fingerprints_follow_constants_local_imports_and_closures(monkeypatch):
    import whydecoder.experiments.ch08_scale as sc

    tree = call_tree(sc.RULES["C18"].decide)
    assert "whydecoder.experiments.ch08_scale.ARCHS =" in tree
    before = fingerprint(sc.RULES["C18"].decide)
    monkeypatch.setattr(sc, "ARCHS", tuple(reversed(sc.ARCHS)))
    assert fingerprint(sc.RULES["C18"].decide) != before

    def uses_a_local_import():
        from whydecoder.verdicts import t_interval

        return t_interval

    assert "whydecoder.verdicts.t_interval" in call_tree(uses_a_local_import)
    sections, _ = results.planned_sections(sc.run, "smoke")
    tree = call_tree(sections["baseline"])  # a closure made in run: run's own code counts
    assert "whydecoder.experiments.ch08_scale.run" in tree and "whydecoder.experiments.ch08_scale.one_run" in tree
    machinery = fingerprints({"b": sections["baseline"]}, machinery=True)
    assert machinery == fingerprints({"b": sections["baseline"]}, machinery=True)  # deterministic
    with pytest.raises(TypeError, match="expected a function"):
        fingerprints({"x": 3})
    with pytest.raises(ValueError, match="at least one function"):
        call_tree()


def _stored(tmp_path, rules, migrations=None):
    path = tmp_path / "full.json"
    settings = {"steps": 10, "rules": rules}
    save_result(path, {"settings": settings, "a": [1]}, command="x")
    if migrations:
        payload = load_result(path)
        payload["provenance"]["migrations"] = migrations
        path.write_text(json.dumps(payload))
    return path


def test_results_judged_by_a_changed_rule_do_not_count_without_a_migration(tmp_path, capsys):
    now = {"steps": 10, "rules": {"C99": "new"}}
    assert load_complete(_stored(tmp_path, {"C99": "old"}), ["a"], now) is None
    assert "the rule of C99 (judged by old, now new) changed" in capsys.readouterr().err
    migrated = _stored(tmp_path, {"C99": "old"}, [{"rules": {"C99": {"from": "old", "to": "new"}}, "why": "moved"}])
    assert load_complete(migrated, ["a"], now) is not None
    other = _stored(tmp_path, {"C99": "old"}, [{"rules": {"C99": {"from": "older", "to": "new"}}}])
    assert load_complete(other, ["a"], now) is None  # a migration from another fingerprint carries nothing


def test_a_migration_is_recorded_only_when_every_verdict_is_identical(tmp_path, monkeypatch):
    import whydecoder.experiments.ch06_efficiency as eff
    from whydecoder import migrate

    stored = load_result(eff.RESULTS_DIR / "full.json")
    stored["results"]["settings"]["rules"]["C13"] = judged = "0123456789abcdef"  # as judged by an older rule
    stored["provenance"].pop("migrations", None)
    monkeypatch.setattr(eff, "RESULTS_DIR", tmp_path)
    (tmp_path / "full.json").write_text(json.dumps(stored))
    now = migrate.decide_now(eff, stored["results"])
    old = migrate.Checkout("0" * 40, tmp_path)

    def then(verdict=None, fp=judged):
        return lambda *a: {"C13": {"fingerprint": fp, "verdict": verdict or now["C13"]["verdict"]}}

    monkeypatch.setattr(migrate, "decide_at", then(fp="ffff"))
    with pytest.raises(ValueError, match="did not judge these results"):
        migrate.migrate("ch06_efficiency", old, "why")
    monkeypatch.setattr(migrate, "decide_at", then(dict(now["C13"]["verdict"], outcome="refuted")))
    with pytest.raises(ValueError, match="decides differently on the stored results"):
        migrate.migrate("ch06_efficiency", old, "why")
    assert "migrations" not in load_result(tmp_path / "full.json")["provenance"]
    monkeypatch.setattr(migrate, "decide_at", then())
    assert eff.load_complete(tmp_path / "full.json") is None  # judged by another rule: no longer counted
    assert "migrated, every verdict identical" in migrate.migrate("ch06_efficiency", old, "moved")
    record = load_result(tmp_path / "full.json")["provenance"]["migrations"][-1]
    assert record["rules"]["C13"] == {"from": judged, "to": now["C13"]["fingerprint"]}
    assert record["why"] == "moved" and "all 1 verdicts identical" in record["check"]
    assert eff.load_complete(tmp_path / "full.json") is not None


def test_a_reworded_reason_migrates_only_when_asked_and_only_the_reason_differs(tmp_path, monkeypatch):
    import whydecoder.experiments.ch06_efficiency as eff
    from whydecoder import migrate

    stored = load_result(eff.RESULTS_DIR / "full.json")
    stored["results"]["settings"]["rules"]["C13"] = judged = "0123456789abcdef"
    stored["provenance"].pop("migrations", None)
    monkeypatch.setattr(eff, "RESULTS_DIR", tmp_path)
    (tmp_path / "full.json").write_text(json.dumps(stored))
    now = migrate.decide_now(eff, stored["results"])["C13"]["verdict"]
    old = migrate.Checkout("0" * 40, tmp_path)

    def then(**changes):
        return lambda *a: {"C13": {"fingerprint": judged, "verdict": dict(now, **changes)}}

    monkeypatch.setattr(migrate, "decide_at", then(reason="the old, longer sentence"))
    with pytest.raises(ValueError, match="decides differently"):  # a new reason is a new verdict unless asked
        migrate.migrate("ch06_efficiency", old, "shorter reason")
    numbers = dict(now["numbers"], extra=1)
    monkeypatch.setattr(migrate, "decide_at", then(reason="the old, longer sentence", numbers=numbers))
    with pytest.raises(ValueError, match="decides differently"):  # rewording never covers a changed number
        migrate.migrate("ch06_efficiency", old, "shorter reason", reworded=True)
    monkeypatch.setattr(migrate, "decide_at", then(reason="the old, longer sentence"))
    assert "but for its reworded reason" in migrate.migrate("ch06_efficiency", old, "shorter reason", reworded=True)
    record = load_result(tmp_path / "full.json")["provenance"]["migrations"][-1]
    assert record["reworded"] == {"C13": {"from": "the old, longer sentence", "to": now["reason"]}}
    assert "reasons reworded" in record["check"] and eff.load_complete(tmp_path / "full.json") is not None


def test_pages_say_when_stored_sections_were_made_by_other_code():
    stored = {"results": {"settings": {}, "a": 1, "b": 2, "c": 3},
              "provenance": {"sections": {"a": {"maker": "m1"}, "b": {"maker": "old"}, "c": {}}}}
    said = code_changes(stored, {"a": "m1", "b": "m2", "c": "m3"})
    assert "The code that computed 1 of these 3 sections has changed since; they were not recomputed." in said
    assert "Which code computed 1 of these 3 sections was not recorded" in said
    assert code_changes({"results": {"a": 1}, "provenance": {"sections": {"a": {"maker": "m"}}}}, {"a": "m"}) is None
    stored["provenance"]["maker_trees"] = {"old": {"whydecoder.model.MLP": "1", "whydecoder.train.train": "2",
                                                   "whydecoder.model.<lambda>#ab": "5"}}
    now = {"m2": {"whydecoder.model.MLP": "1", "whydecoder.train.train": "3", "whydecoder.masks.causal": "4"}}
    said = code_changes(stored, {"a": "m1", "b": "m2", "c": "m3"}, now, first="masks")
    assert "of the functions it calls, 1 edited (among them train.train), 1 newly called; they" in said
    assert "<lambda>" not in said and "no longer called" not in said  # lambdas are not named or counted


def test_stored_results_say_which_functions_made_them(tmp_path):
    path = tmp_path / "full.json"
    sections = {"a": lambda: [1]}
    run_sections(sections, SETTINGS, path, command="x")
    prov = load_result(path)["provenance"]
    maker = prov["sections"]["a"]["maker"]
    assert set(prov["maker_trees"]) == {maker}
    assert any(name.split("#")[0].endswith("<lambda>") for name in prov["maker_trees"][maker])


def test_what_a_verdict_rests_on_comes_from_what_is_stored(monkeypatch):
    import whydecoder.experiments.ch06_real_cache as real_cache
    from whydecoder import conclusion

    assert "ch06_real_cache" in conclusion.second_lines().get("C13", ())
    monkeypatch.setattr(real_cache, "load_complete", lambda *a, **k: None)  # as if its results were deleted
    assert "C13" not in conclusion.second_lines()


def test_merging_checks_settings_and_code_of_every_part(tmp_path):
    sections = {"a": lambda: [1], "b": lambda: [2]}
    first, second = tmp_path / "p1.json", tmp_path / "p2.json"
    with only_sections(["a"]):
        run_sections(sections, SETTINGS, first, command="x")
    with only_sections(["b"]):
        run_sections(sections, SETTINGS, second, command="x")
    with pytest.raises(ValueError, match="made under other settings than the current ones"):
        merge_results([first, second], tmp_path / "o.json", "x", settings=dict(SETTINGS, steps=11))
    makers = results.section_makers(sections)
    merge_results([first, second], tmp_path / "o.json", "x", settings=SETTINGS, makers=makers)
    assert set(load_result(tmp_path / "o.json")["results"]) == {"settings", "a", "b"}


def test_a_rule_is_still_a_rule():
    rule = Rule("C99", "a claim", {"min_seeds": 2}, lambda r, p: Verdict("supported", "yes"), seeds=lambda r: 3)
    assert rule({"x": 1.0}).outcome == "supported"
    assert len(rule.fingerprint()) == 16


def test_lock_files_and_leftovers_are_ignored_by_git():
    from whydecoder.paths import ROOT

    names = ["data/x/.full.json.lock", "data/x/.full.json.ab12.tmp", "data/x/.full.json.ab12.probe",
             "data/x/.full.joining.json"]
    done = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(names)


def test_a_lock_waits_for_a_short_write(tmp_path):
    out = tmp_path / "x.json"
    child = _hold(out, seconds=0.5)
    start = time.monotonic()
    save_result(out, {"a": 1}, command="x")  # atomic writes wait up to a minute for the lock
    assert time.monotonic() - start < 30
    child.wait()


# ---------------------------------------------------------------- every bad input named


def _bad_inputs():
    from whydecoder import conclusion, storage
    from whydecoder import verdicts as v

    ok = v.Verdict("supported", "x")
    return [
        ("only_sections('reuse')", lambda: only_sections("reuse").__enter__(), ValueError, "got the string 'reuse'"),
        ("run_sections(list)", lambda: run_sections(["a"], {}, None, "x"), TypeError, "must map names to functions"),
        ("run_sections(settings str)", lambda: run_sections({"a": lambda: 1}, "s", None, "x"), TypeError,
         "settings must be a dict"),
        ("save_result(list)", lambda: save_result("/nonexistent/x.json", [1], "x"), TypeError, "results must be a dict"),
        ("save_result(no command)", lambda: save_result("/nonexistent/x.json", {}, " "), ValueError, "command must"),
        ("load_result(folder)", lambda: load_result("/"), ValueError, "is not a results file"),
        ("experiment_command(scale)", lambda: command.experiment_command("m", "huge", None), ValueError,
         "unknown scale 'huge'"),
        ("per_seed_sections(no seeds)", lambda: results.per_seed_sections(["a"], [], print), ValueError,
         "at least one name and one seed"),
        ("per_seed_sections(str)", lambda: results.per_seed_sections("ab", [0], print), ValueError, "must be lists"),
        ("incomplete_because({})", lambda: results.incomplete_because({}, ["a"]), ValueError, "a stored payload"),
        ("merge_results(str)", lambda: merge_results("p.json", "/nonexistent/o.json", "x"), ValueError,
         "a list of part files, got one"),
        ("t_interval('12')", lambda: v.t_interval("12"), TypeError, "values must be numbers"),
        ("compare(tuple)", lambda: v.compare((0, 1, 2), 0.1), TypeError, "must be an Interval"),
        ("paired_differences(lists)", lambda: v.paired_differences([1], [1]), TypeError, "map a seed to a number"),
        ("paired_differences(nan)", lambda: v.paired_differences({0: math.nan}, {0: 1.0}), ValueError, "finite"),
        ("learned(True)", lambda: v.learned(True, 1.0, lower_is_better=True, by=0.1), ValueError, "finite numbers"),
        ("Rule(decide=3)", lambda: v.Rule("C01", "s", {}, 3), TypeError, "must be functions"),
        ("Rule(statement='')", lambda: v.Rule("C01", " ", {}, print), ValueError, "statement must"),
        ("Rule(nan parameter)", lambda: v.Rule("C01", "s", {"m": math.nan}, print), ValueError, "Out of range"),
        ("rule([1])", lambda: v.Rule("C01", "s", {}, lambda r, p: ok)([1]), TypeError, "decides on a dict"),
        ("weigh(twice)", lambda: conclusion.weigh([{"id": "C18", "verdict": "supported"}] * 2), ValueError,
         r"\['C18'\] are given more than once"),
        ("answer_markdown(no C18)", lambda: conclusion.answer_markdown([{"id": "C01", "verdict": "supported"}]),
         ValueError, "lack the book's question C18"),
        ("strength(maybe)", lambda: conclusion.strength({"id": "C01", "verdict": "maybe"}, {}), ValueError,
         "'maybe' is not one of"),
        ("sweep(3)", lambda: sweep.sweep(3, "smoke", 1), ValueError, "experiment module's name"),
        ("sweep(workers=0)", lambda: sweep.sweep("ch06_efficiency", "smoke", 0), ValueError, "positive integer"),
        ("run_part(str)", lambda: sweep.run_part("ch06_efficiency", "smoke", "reuse", "/nonexistent/p.json"),
         ValueError, "got the string 'reuse'"),
        ("exclusive(wait=nan)", lambda: storage.exclusive("/nonexistent/x", wait=math.nan).__enter__(), ValueError,
         "finite number of seconds"),
        ("atomic_write_text(bytes)", lambda: storage.atomic_write_text("/nonexistent/x", b"x"), TypeError,
         "must be a str"),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_input_is_named_before_anything_is_done(case):
    _, call, error, message = case
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- what a hostile tester found


def test_python_dash_m_fingerprints_the_package_s_own_functions():
    """Started with -m, a module is __main__: its rules and sections were fingerprinted as
    code outside the package, and the README's own command made files that did not load."""
    import whydecoder.experiments.ch06_efficiency as eff
    from whydecoder.command import _package_run

    def run(scale, out=None, progress=True):
        raise AssertionError("the __main__ copy ran")

    run.__module__ = "__main__"
    assert _package_run("experiments.ch06_efficiency", run) is eff.run
    assert _package_run("experiments.ch06_efficiency", eff.run) is eff.run


def test_a_migrated_file_resumes_and_keeps_its_migrations(tmp_path):
    path = tmp_path / "full.json"
    save_result(path, {"settings": {"steps": 1, "rules": {"C99": "old"}}, "a": [1]}, command="x",
                sections={"a": {"commit": "c", "date": "d", "device": "cpu", "code": "k",
                                "maker": results.section_makers({"a": _A})["a"]}})
    payload = load_result(path)
    payload["provenance"]["migrations"] = [{"rules": {"C99": {"from": "old", "to": "new"}}, "why": "moved"}]
    path.write_text(json.dumps(payload))
    now = {"steps": 1, "rules": {"C99": "new"}}
    out = run_sections({"a": _A, "b": _B}, now, path, command="x")  # resumed: a kept, b computed
    assert out["a"] == [1] and out["b"] == [2]
    stored = load_result(path)
    assert stored["results"]["settings"] == now and stored["provenance"]["migrations"][0]["why"] == "moved"
    merged = tmp_path / "merged.json"
    merge_results([path], merged, command="x", makers=results.section_makers({"a": _A, "b": _B}))
    assert load_result(merged)["provenance"]["migrations"] == stored["provenance"]["migrations"]


def _A():
    return [1]


def _B():
    return [2]


def test_replace_keeps_the_old_file_until_new_results_are_stored(tmp_path, capsys):
    out = tmp_path / "full.json"
    out.write_text("{corrupt")

    def run(scale, out):
        return run_sections({"a": _A}, SETTINGS, out, "x")

    with pytest.raises(SystemExit):
        experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--out", str(out), "--replace",
                                                      "--sections", "nope"])
    assert out.read_text() == "{corrupt"  # a bad command line loses nothing
    experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--out", str(out), "--replace"])
    assert load_result(out)["results"]["a"] == [1]  # even a corrupt file can be replaced, by name


def test_a_linked_output_is_written_through_its_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "l.json"
    link.symlink_to(tmp_path / "real" / "t.json")
    run_sections({"a": _A}, SETTINGS, link, command="x")
    run_sections({"a": _A, "b": _B}, SETTINGS, link, command="x")
    assert link.is_symlink() and set(load_result(tmp_path / "real" / "t.json")["results"]) == {"settings", "a", "b"}


def test_a_lock_file_removed_while_held_stops_the_writer(tmp_path):
    out = tmp_path / "x.json"
    with exclusive(out, "test"):
        lock_path(out).unlink()  # git clean -X, or a hand
        with pytest.raises(Busy, match="was removed while this process held it"):
            save_result(out, {"a": 1}, command="x")
    assert not out.exists()


def test_a_section_that_is_not_the_experiment_s_is_never_joined(tmp_path):
    part = tmp_path / "part-1.json"
    save_result(part, {"settings": SETTINGS, "bogus": [1]}, command="x",
                sections={"bogus": {"commit": "c", "date": "d", "device": "cpu", "code": "k"}})
    with pytest.raises(ValueError, match="'bogus', which is not a section of this experiment"):
        merge_results([part], tmp_path / "o.json", "x", settings=SETTINGS, makers={"a": "m"})
    with pytest.raises(ValueError, match="'bogus', which is not a section of this experiment"):
        sweep.stored_sections(tmp_path, {"a": "m"}, SETTINGS)


def test_a_part_still_being_written_is_named_not_planned_again(tmp_path):
    part = tmp_path / "part-1.json"
    save_result(part, {"settings": SETTINGS}, command="x")
    child = _hold(part)
    try:
        with pytest.raises(Busy, match="being written by another process"):
            sweep.stored_sections(tmp_path, None, SETTINGS)
    finally:
        child.kill()
        child.wait()


def test_numbers_too_large_for_a_float_are_refused(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"provenance": {}, "results": {"a": 1e999}}')
    with pytest.raises(ValueError, match="1e999, which is not a finite number"):
        load_result(path)


def test_taking_a_lock_sweeps_only_its_own_file_s_leftovers(tmp_path):
    mine, other = tmp_path / ".a.json.k2j3h4ab.tmp", tmp_path / ".a.json.json.k2j3h4ab.tmp"
    mine.write_text("x")
    other.write_text("y")
    save_result(tmp_path / "a.json", {"a": 1}, command="x")
    assert not mine.exists() and other.exists()


def test_fingerprints_see_default_values_and_tables_of_functions():
    from whydecoder.model import Transformer
    from whydecoder.verdicts import t_interval

    assert call_tree(t_interval)["whydecoder.verdicts.t_interval"].endswith("# defaults: [0.95]")
    tree = call_tree(Transformer)
    assert "whydecoder.model._ACTIVATIONS =" in tree and any("<lambda>" in k for k in tree)


def test_sweep_mistakes_get_a_message_not_a_traceback(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit):
        sweep.main(["ch06_efficiency", "--scale", "smoke", "--folder", str(tmp_path / "afile"),
                    "--out", str(tmp_path / "o.json")])
    assert "afile" in capsys.readouterr().err
    with pytest.raises(ValueError, match="taken for one of the sweep's own parts"):
        sweep.sweep("ch06_efficiency", "smoke", 1, "local", tmp_path / "p", tmp_path / "p" / "part-x.json")


def test_a_migration_refuses_results_that_changed_during_its_check(tmp_path, monkeypatch):
    import whydecoder.experiments.ch06_efficiency as eff
    from whydecoder import migrate

    stored = load_result(eff.RESULTS_DIR / "full.json")
    stored["results"]["settings"]["rules"]["C13"] = "0123456789abcdef"
    stored["provenance"].pop("migrations", None)
    monkeypatch.setattr(eff, "RESULTS_DIR", tmp_path)
    path = tmp_path / "full.json"
    path.write_text(json.dumps(stored))
    now = migrate.decide_now(eff, stored["results"])

    def decide_and_tamper(*args):
        changed = json.loads(path.read_text())
        changed["results"]["reuse"][0]["greedy_match"] = False
        path.write_text(json.dumps(changed))  # a writer that ignores the lock
        return {"C13": {"fingerprint": "0123456789abcdef", "verdict": now["C13"]["verdict"]}}

    monkeypatch.setattr(migrate, "decide_at", decide_and_tamper)
    with pytest.raises(ValueError, match="changed while its verdicts were being checked"):
        migrate.migrate("ch06_efficiency", migrate.Checkout("0" * 40, tmp_path), "why")
    assert "migrations" not in load_result(path)["provenance"]
