"""Stored results: a file that is corrupt, incomplete, empty or made under other settings
never stands as the book's full-scale results; output paths fail before any work."""

import json

import pytest

from whydecoder.command import experiment_main
from whydecoder.results import (
    check_writable,
    load_complete,
    load_result,
    merge_results,
    only_sections,
    run_sections,
    save_result,
)

SETTINGS = {"steps": 10, "sizes": [1, 2]}


def _store(path, results, **prov):
    save_result(path, results, command="python -m whydecoder.demo --scale full")
    if prov:
        payload = json.loads(path.read_text())
        payload["provenance"].update(prov)
        path.write_text(json.dumps(payload))
    return path


def test_complete_results_load(tmp_path):
    path = _store(tmp_path / "full.json", {"settings": SETTINGS, "a": [1], "b": {"x": 2}})
    assert load_complete(path, ("a", "b"), SETTINGS)["results"]["a"] == [1]


@pytest.mark.parametrize("results, prov, why", [
    ({"settings": SETTINGS, "a": [1]}, {}, "section 'b' is missing"),
    ({"settings": SETTINGS, "a": [1], "b": []}, {}, "section 'b' is empty"),
    ({"settings": SETTINGS, "a": [1], "b": {}}, {}, "section 'b' is empty"),
    ({"settings": SETTINGS, "a": [1], "b": None}, {}, "section 'b' is empty"),
    ({"settings": {"steps": 5, "sizes": [1, 2]}, "a": [1], "b": [2]}, {}, "other settings"),
    ({"settings": SETTINGS, "a": [1], "b": [2]}, {"commit": ""}, "provenance lacks \\['commit'\\]"),
    ({"settings": SETTINGS, "a": [1], "b": [2]}, {"device": None, "date": ""}, "provenance lacks"),
])
def test_incomplete_results_are_ignored_by_name(tmp_path, capsys, results, prov, why):
    path = _store(tmp_path / "full.json", results, **prov)
    assert load_complete(path, ("a", "b"), SETTINGS) is None
    err = capsys.readouterr().err
    assert str(path) in err
    assert pytest.importorskip("re").search(why, err), err


@pytest.mark.parametrize("text", ['{"provenance": {"command": "x"}, "results": {"a"', "", "\x00\x01", "[1, 2]",
                                  '{"results": {}}', '{"provenance": [], "results": {}}'])
def test_a_corrupt_file_is_reported_by_name_and_treated_as_absent(tmp_path, capsys, text):
    path = tmp_path / "full.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)):
        load_result(path)
    assert load_complete(path, ("a",)) is None
    assert str(path) in capsys.readouterr().err


def test_a_missing_file_is_absent_quietly(tmp_path, capsys):
    assert load_complete(tmp_path / "none.json", ("a",)) is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, message", [("", "folder"), (".", "folder"), ("out.txt", ".json file")])
def test_bad_output_paths_fail_before_any_work(tmp_path, name, message):
    calls = []
    with pytest.raises(ValueError, match=message):
        run_sections({"a": lambda: calls.append(1) or [1]}, SETTINGS, tmp_path / name if name else tmp_path,
                     command="x")
    assert calls == []


def test_an_unwritable_folder_fails_before_any_work(tmp_path):
    import os

    if os.geteuid() == 0:
        target = tmp_path / "file-not-folder"
        target.write_text("x")
        bad = target / "full.json"  # a path under a file can never be written, even by root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        bad = locked / "full.json"
    calls = []
    with pytest.raises(OSError):
        run_sections({"a": lambda: calls.append(1) or [1]}, SETTINGS, bad, command="x")
    assert calls == []


def test_resuming_into_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "full.json"
    path.write_text('{"provenance": {')
    with pytest.raises(ValueError, match="truncated or corrupt"):
        check_writable(path)


def test_each_section_keeps_the_provenance_of_the_run_that_made_it(tmp_path):
    path = tmp_path / "full.json"
    seen = []

    def a():
        seen.append("a")
        return [1]

    run_sections({"a": a}, SETTINGS, path, command="first")
    first = load_result(path)["provenance"]["sections"]["a"]
    run_sections({"a": a, "b": lambda: [2]}, SETTINGS, path, command="second")
    payload = load_result(path)
    assert payload["results"]["a"] == [1] and seen == ["a"]  # resumed, not recomputed
    assert payload["provenance"]["sections"]["a"] == first
    assert set(payload["provenance"]["sections"]) == {"a", "b"}


def test_resuming_under_other_settings_is_refused(tmp_path):
    path = tmp_path / "full.json"
    run_sections({"a": lambda: [1]}, SETTINGS, path, command="x")
    with pytest.raises(ValueError, match="other settings"):
        run_sections({"a": lambda: [1]}, dict(SETTINGS, steps=11), path, command="x")


def test_the_command_line_refuses_an_empty_out(tmp_path, capsys):
    with pytest.raises(SystemExit):
        experiment_main("demo", lambda scale, out: pytest.fail("ran"), tmp_path, argv=["--out", ""])
    assert "--out must name a file" in capsys.readouterr().err


def test_the_command_line_refuses_a_folder_before_running(tmp_path, capsys):
    with pytest.raises(SystemExit):
        experiment_main("demo", lambda scale, out: pytest.fail("ran"), tmp_path, argv=["--out", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err


def test_smoke_results_from_the_command_line_stay_out_of_data(tmp_path):
    import shutil

    seen = {}
    experiment_main("demo-test", lambda scale, out: seen.update(out=out), tmp_path, argv=["--scale", "smoke"])
    assert "data" not in seen["out"].parts and seen["out"].parts[-3:] == ("runs", "demo-test", "smoke.json")
    shutil.rmtree(seen["out"].parent, ignore_errors=True)


def test_a_run_is_never_resumed_under_other_code(tmp_path, monkeypatch):
    import whydecoder.results as results

    path = tmp_path / "full.json"
    a = lambda: [1]  # noqa: E731
    run_sections({"a": a}, SETTINGS, path, command="x")
    made = load_result(path)["provenance"]["sections"]["a"]
    assert made["code"] == results.code_fingerprint()
    assert made["maker"] == results.section_makers({"a": a})["a"]
    monkeypatch.setattr(results, "section_makers", lambda sections, trees=None: dict.fromkeys(sections, "0123456789abcdef"))
    with pytest.raises(ValueError, match="made by other code"):
        run_sections({"a": lambda: [1], "b": lambda: [2]}, SETTINGS, path, command="x")
    # a complete file needs no resume: it is read as it is
    assert run_sections({"a": lambda: pytest.fail("recomputed")}, SETTINGS, path, command="x")["a"] == [1]


def _parts(tmp_path):
    """One experiment of three sections run as two processes would run it (``--sections``)."""
    sections = {"a": lambda: [1], "b": lambda: [2], "c": lambda: [3]}
    first, second = tmp_path / "part1.json", tmp_path / "part2.json"
    with only_sections(["a", "c"]):
        run_sections(sections, SETTINGS, first, command="x")
    with only_sections(["b"]):
        run_sections(sections, SETTINGS, second, command="x")
    return sections, first, second


def test_a_run_split_by_sections_merges_into_one_complete_result(tmp_path):
    sections, first, second = _parts(tmp_path)
    assert set(load_result(first)["results"]) == {"settings", "a", "c"}
    out = tmp_path / "full.json"
    merge_results([first, second], out, command="x")
    payload = load_complete(out, sections, SETTINGS)
    assert payload["results"] == {"settings": SETTINGS, "a": [1], "b": [2], "c": [3]}
    assert payload["provenance"]["sections"]["a"] == load_result(first)["provenance"]["sections"]["a"]
    # and a run over the merged file recomputes nothing
    assert run_sections({k: lambda: pytest.fail("recomputed") for k in sections}, SETTINGS, out, "x")["b"] == [2]


def test_merging_refuses_overlapping_parts_other_settings_and_other_code(tmp_path):
    sections, first, second = _parts(tmp_path)
    merge_results([first, first], tmp_path / "twice.json", command="x")  # the same record twice: taken once
    assert set(load_result(tmp_path / "twice.json")["results"]) == {"settings", "a", "c"}
    clash = tmp_path / "clash.json"
    with only_sections(["a"]):
        run_sections({"a": lambda: [9]}, SETTINGS, clash, command="x")
    with pytest.raises(ValueError, match="in more than one part"):
        merge_results([first, clash], tmp_path / "full.json", command="x")
    other = tmp_path / "other.json"
    with only_sections(["b"]):
        run_sections(sections, dict(SETTINGS, steps=11), other, command="x")
    with pytest.raises(ValueError, match="other settings"):
        merge_results([first, other], tmp_path / "full.json", command="x")
    payload = load_result(second)
    payload["provenance"]["sections"]["b"]["code"] = "0123456789abcdef"
    second.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="different package code"):
        merge_results([first, second], tmp_path / "full.json", command="x")
    with pytest.raises(ValueError, match="made by other code than the current"):
        merge_results([first, second], tmp_path / "full.json", command="x", makers={"a": "x", "b": "y", "c": "z"})
    with pytest.raises(ValueError, match="needs stored parts"):
        merge_results([], tmp_path / "full.json", command="x")


def test_unknown_or_no_sections_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"\['z'\] are not sections"):
        with only_sections(["z"]):
            run_sections({"a": lambda: pytest.fail("ran")}, SETTINGS, tmp_path / "x.json", command="x")
    with pytest.raises(ValueError, match="at least one section"):
        with only_sections([]):
            pass


def test_the_command_line_runs_only_the_named_sections(tmp_path):
    seen = {}

    def run(scale, out):
        seen["only"] = run_sections({"a": lambda: [1], "b, with a comma": lambda: [2], "c": lambda: [3]}, SETTINGS,
                                    out, command="x")

    experiment_main("demo", run, tmp_path, argv=["--scale", "full", "--sections", "b, with a comma", "c",
                                                 "--out", str(tmp_path / "p.json")])
    assert set(seen["only"]) == {"settings", "b, with a comma", "c"}


def test_merging_never_drops_or_changes_what_the_output_holds(tmp_path):
    _, first, second = _parts(tmp_path)
    out = tmp_path / "full.json"
    run_sections({"z": lambda: [0]}, SETTINGS, out, command="x")  # a section the parts do not hold
    with pytest.raises(ValueError, match=r"already holds results that this would replace or drop \(sections \['z'\]"):
        merge_results([first, second], out, command="x")
    assert set(load_result(out)["results"]) == {"settings", "z"}
    merge_results([out, first, second], out, command="x")  # the existing file named as a part: joined, not lost
    assert set(load_result(out)["results"]) == {"settings", "a", "b", "c", "z"}
    grown = tmp_path / "grown.json"
    merge_results([first], grown, command="x")
    merge_results([first, second], grown, command="x")  # keeps every section grown held: it only grows
    assert set(load_result(grown)["results"]) == {"settings", "a", "b", "c"}
    merge_results([second], grown, command="x", replace=True)  # dropping a and c needs the explicit option
    assert set(load_result(grown)["results"]) == {"settings", "b"}
