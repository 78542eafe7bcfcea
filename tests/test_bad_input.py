"""Bad input to the data loaders, the page helpers, the rank and text tools and the
experiments' scoring helpers: refused with a ValueError (or TypeError) that says what was
wrong, before anything is changed, instead of a bare KeyError/IndexError, a CSV error
without the file, or a silently wrong answer."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import small_config
from whydecoder import ledger, palette, papers, plots, probes, rank, report, text, timing, tree, tree_structure
from whydecoder.experiments import (
    ch03_conditional,
    ch03_nope,
    ch03_unmasking,
    ch05_icl,
    ch07_architecture,
    ch08_scale,
)
from whydecoder.model import Transformer
from whydecoder.objectives import Batch

HEADER = ",".join(papers.COLUMNS)


@pytest.fixture(scope="module")
def df():
    return tree.load_tree()


@pytest.fixture(scope="module")
def decoder():
    return Transformer(small_config("decoder", vocab_size=260))


# ---------------------------------------------------------------- papers


@pytest.mark.parametrize("body, message", [
    ("P,Table 1,3,r,c,1,5,u,s,,k\n", "line 2: 11 fields where the header has 10"),  # an unquoted 1,5
    ("P,Table 1,3,r,c,1.5,u,s,\n", "line 2: 9 fields where the header has 10"),
    ("P,Table 1,3,r,c,1.5,u,s,,k\nP,Table 1,3,r2,c,1,5,u,s,,k\n", "line 3: 11 fields"),
    ('"P,Table 1,3,r,c,1.5,u,s,,k\n', "not a readable CSV file"),
    ("", "no numbers below the header"),
])
def test_papers_csv_with_shifted_columns_is_refused_naming_file_and_line(tmp_path, body, message):
    path = tmp_path / "shifted.csv"
    path.write_text(HEADER + "\n" + body)
    with pytest.raises(ValueError, match=message) as err:
        papers.published("shifted", path)
    assert "shifted.csv" in str(err.value)


def test_papers_empty_file_and_multiline_record(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="empty.csv: the file is empty"):
        papers.published("empty", path)
    path.write_text(HEADER + '\nP,Table 1,3,"two\nlines",c,1.5,u,s,,k\nP,Table 1,3,r,c,abc,u,s,,k\n')
    with pytest.raises(ValueError, match="line 4: value 'abc'"):  # the line the record starts on
        papers.published("empty", path)


def test_published_table_shows_no_page_for_a_missing_one():
    frame = papers.published("haviv2022_nope").head(2).copy()
    frame["page"] = [np.nan, ""]
    html = papers.published_table(frame).to_html()
    assert "nan" not in html and "p.\u00a0" not in html
    with pytest.raises(ValueError, match="lacks \\['page'"):
        papers.published_table(frame.drop(columns="page"))
    with pytest.raises(ValueError, match="lacks"):
        papers.value("not a frame", "r", "c")


# ---------------------------------------------------------------- tree


@pytest.mark.parametrize("name, message", [
    ("GPT-1 ", "name 'GPT-1 ' has spaces"),
    (" GPT-1", "name ' GPT-1' has spaces"),
    ("gpt-1", "model names 'GPT-1' and 'gpt-1' are the same name"),
])
def test_tree_names_equal_up_to_spaces_or_case_are_refused(df, name, message):
    raw = pd.read_csv(tree.TREE_PATH, dtype=str, keep_default_na=False).astype({"year": int, "month": int})
    extra = raw[raw["name"] == "GPT-1"].assign(name=name)
    with pytest.raises(ValueError, match=message):
        tree.validate_tree(pd.concat([raw, extra], ignore_index=True))


def test_tree_organization_spelt_two_ways_is_refused():
    raw = pd.read_csv(tree.TREE_PATH, dtype=str, keep_default_na=False).astype({"year": int, "month": int})
    raw.loc[raw["name"] == "GPT-1", "organization"] = "openai"
    with pytest.raises(ValueError, match="organizations 'OpenAI' and 'openai'|organizations 'openai' and 'OpenAI'"):
        tree.validate_tree(raw)


def test_tree_csv_with_wrong_field_count_names_file_and_line(tmp_path):
    lines = tree.TREE_PATH.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "tree.csv"
    path.write_text(lines[0] + lines[1].replace(",", ",1,", 1) + "".join(lines[2:]))
    with pytest.raises(ValueError, match="tree.csv, line 2: 23 fields where the header has 22"):
        tree.load_tree(path)
    path.write_text("")
    with pytest.raises(ValueError, match="tree.csv: the file is empty"):
        tree.load_tree(path)


def test_tree_helpers_refuse_bad_arguments(df):
    for top in (0, -1, "5", 2.5):
        with pytest.raises(ValueError, match="top must be a positive int"):
            tree.organizations_by_branch(df, top)
    with pytest.raises(ValueError, match="recent=2100"):
        tree.c15_evidence(df, recent=2100)
    with pytest.raises(ValueError, match="early=\\(1990, 1995\\)"):
        tree.c15_evidence(df, early=(1990, 1995))
    with pytest.raises(TypeError, match="load_tree"):
        tree.c15_evidence("df")
    with pytest.raises(TypeError, match="DataFrame"):
        tree.validate_tree("df")
    with pytest.raises(TypeError, match="tree must be the frame"):
        tree.load_routes(tree=["GPT-4"])
    with pytest.raises(ValueError, match="at least one model"):
        tree.plot_tree(df.iloc[:0])
    with pytest.raises(ValueError, match="fontsize"):
        tree.plot_tree(df.iloc[:3], fontsize=float("nan"))
    with pytest.raises(ValueError, match="lacks the columns \\['date'\\]"):
        tree_structure.with_structure(df.drop(columns="date"))
    with pytest.raises(TypeError, match="load_tree"):
        tree_structure.c19_counts(None)


# ---------------------------------------------------------------- ledger


def _rows():
    return [dict(r) for r in ledger.read_ledger()]


@pytest.mark.parametrize("column, value", [
    ("chapter", "   "), ("chapter", "04_low_rank "), ("sources", " "), ("claim", " padded"), ("evidence", "  "),
])
def test_ledger_refuses_blank_or_padded_fields(column, value):
    rows = _rows()
    rows[2][column] = value
    with pytest.raises(ValueError, match=f"column '{column}'.*spaces"):
        ledger.validate_ledger(rows)


def test_ledger_refuses_a_row_with_an_extra_or_missing_field(tmp_path):
    lines = ledger.LEDGER_PATH.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "claims.csv"
    path.write_text("".join(lines[:3]) + lines[3].rstrip("\n") + ",extra\n" + "".join(lines[4:]))
    n = len(ledger.COLUMNS)
    with pytest.raises(ValueError, match=f"claims.csv, line 4: {n + 1} fields where the header has {n}"):
        ledger.read_ledger(path)
    rows = _rows()
    rows[5]["extra"] = "x"
    with pytest.raises(ValueError, match="row 5: columns"):
        ledger.validate_ledger(rows)
    with pytest.raises(ValueError, match="appears twice"):  # already caught before this change
        ledger.validate_ledger(_rows() + [_rows()[0]])
    with pytest.raises(TypeError, match="list of dicts"):
        ledger.validate_ledger("C01")
    path.write_text("")
    with pytest.raises(ValueError, match="claims.csv: the claims ledger is empty"):
        ledger.read_ledger(path)


# ---------------------------------------------------------------- report, palette, plots


def test_report_helpers_refuse_bad_input():
    frame = pd.DataFrame({"a_b": [1.0], "c": [2e9]})
    with pytest.raises(ValueError, match="formats name columns \\['zz'\\]"):
        report.readable_table(frame, formats={"zz": "{:.1f}"})
    with pytest.raises(TypeError, match="DataFrame"):
        report.readable_table([[1, 2]])
    with pytest.raises(TypeError, match="formats must be a dict"):
        report.readable_table(frame, ["a_b"])
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            report.large_number(bad)
    with pytest.raises(TypeError, match="takes a number"):
        report.large_number("5")
    assert report.large_number(np.int64(12345678)) == "12.3 million"
    with pytest.raises(TypeError, match="chapter is named by its folder.*or by a page in it"):
        report.chapter_page(3)
    row = dict(zip(ledger.COLUMNS, ["C01", "c", "s", "p", "", "maybe", "", "", "", ""], strict=True))
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        report.ledger_html([row])
    with pytest.raises(ValueError, match="lacks"):
        report.ledger_html([{"id": "C01"}])
    with pytest.raises(TypeError, match="text must be a string"):
        report.setting_note(3)
    with pytest.raises(ValueError, match="verdict must be a Verdict"):
        report.verdict_box("C01", "c", None, "supported", "e", "s")


def test_palette_and_plots_refuse_bad_input():
    with pytest.raises(TypeError, match="named by text"):
        palette.architecture_colour(None)
    fig, ax = matplotlib.pyplot.subplots()
    for matrix in (np.ones(3), np.ones((3, 4)), np.ones((0, 0))):
        with pytest.raises(ValueError, match="square"):
            plots.plot_pattern(ax, matrix)
    with pytest.raises(ValueError, match="NaN"):
        plots.plot_pattern(ax, np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="split must be an int in \\[0, 3\\]"):
        plots.plot_pattern(ax, np.ones((3, 3)), split=9)
    with pytest.raises(ValueError, match="non-empty dict"):
        plots.pattern_grid({})
    for depth in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_layers must be an int >= 1"):
            plots.wiring_diagram(depth)
    matplotlib.pyplot.close("all")


def test_wiring_diagram_draws_each_architecture_with_its_mask():
    import matplotlib

    matplotlib.use("Agg")
    fig = plots.wiring_diagram(3)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["decoder", "prefix-LM", "encoder-decoder", "encoder"]
    texts = ["".join(t.get_text() for t in ax.texts) for ax in panels]
    assert all("× 3 blocks" in t for t in texts) and "the masked tokens" in texts[3]
    masks = [[im.get_array() for inset in ax.child_axes for im in inset.images] for ax in panels]
    assert [len(m) for m in masks] == [1, 1, 2, 1]  # two stacks only for the encoder-decoder
    assert np.array_equal(masks[0][0], np.tril(np.ones((5, 5)))) and masks[3][0].all()
    matplotlib.pyplot.close(fig)


# ---------------------------------------------------------------- text and rank


def test_text_tools_refuse_bad_input():
    ids = torch.arange(100)
    with pytest.raises(TypeError, match="tensor of token ids"):
        text.with_bos([[1, 2]])
    with pytest.raises(TypeError, match="integer token ids"):
        text.unigram_baseline(torch.tensor([1.0, 2.0]), torch.tensor([1.5]))
    with pytest.raises(ValueError, match="vocab_size"):
        text.unigram_baseline(ids, ids, 0)


def test_rank_tools_refuse_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        rank.row_kl(torch.ones(3, 3) / 3, torch.ones(1, 3) / 3)  # broadcast before
    with pytest.raises(ValueError, match="d = 0"):
        rank.attention_probabilities(torch.ones(3, 0), torch.ones(3, 0))
    with pytest.raises(ValueError, match="scale"):
        rank.attention_probabilities(torch.ones(3, 2), torch.ones(3, 2), scale=math.nan)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n must be an int"):
        rank.random_attention(3.5, 2, 1.0, False, g)
    with pytest.raises(ValueError, match="concentration"):
        rank.random_stochastic(3, False, g, math.inf)
    target = torch.ones(3, 3) / 3
    for kwargs, message in (({"steps": -1}, "steps"), ({"lr": 0}, "lr"), ({"d_head": 2.5}, "d_head")):
        with pytest.raises(ValueError, match=message):
            rank.fit_attention(target, **({"d_head": 2, "causal": False} | kwargs))
    with pytest.raises(ValueError, match="row-stochastic"):
        rank.fit_attention(torch.ones(3, 3), 2, False, steps=1)
    with pytest.raises(ValueError, match="non-negative"):
        rank.fit_attention(-target, 2, False, steps=1)
    for kwargs, message in (({"n": 0}, "n must"), ({"d": 0}, "d must"), ({"depth": 2.5}, "depth"),
                            ({"weight_scale": math.nan}, "weight_scale")):
        with pytest.raises(ValueError, match=message):
            rank.collapse_curve(**({"variant": "attention", "causal": False, "depth": 2} | kwargs))


def test_probes_refuse_bad_input(decoder):
    with pytest.raises(ValueError, match="sequence length"):
        probes.dependency_matrix(decoder, 0)
    with pytest.raises(TypeError, match="Transformer"):
        probes.dependency_matrix(None, 4)
    tokens = torch.randint(0, 256, (1, 4))
    with pytest.raises(ValueError, match="\\(batch, length\\)"):
        probes.permutation_gap(decoder, tokens[0], torch.tensor([1, 0, 2, 3]))
    with pytest.raises(ValueError, match="integer positions"):
        probes.permutation_gap(decoder, tokens, torch.tensor([1.0, 0.0, 2.0, 3.0]))


# ---------------------------------------------------------------- experiments' scoring helpers


def test_exact_match_refuses_mismatched_lengths(decoder):
    g = torch.Generator().manual_seed(0)
    b = ch03_conditional.task_batch("addition", "decoder", 4, 0, 2, g)
    assert 0.0 <= ch03_conditional.exact_match(decoder, [b]) <= 1.0
    for bad in (Batch(b.tokens, b.targets[:, -1:], b.loss_mask[:, -1:]),  # one answer position, broadcast before
                Batch(b.tokens, b.targets, b.loss_mask[:1]), Batch(b.tokens, b.targets[:1], b.loss_mask[:1])):
        with pytest.raises(ValueError, match="must have one shape"):
            ch03_conditional.exact_match(decoder, [bad])
    with pytest.raises(ValueError, match="non-empty list of Batch"):
        ch03_conditional.exact_match(decoder, [])  # was ZeroDivisionError
    with pytest.raises(ValueError, match="non-empty list of Batch"):
        ch03_conditional.exact_match(decoder, b)


def test_scoring_helpers_refuse_bad_input(decoder):
    rows = torch.randint(0, 256, (2, 8))
    with pytest.raises(ValueError, match="one integer position per row"):
        ch07_architecture.recall_accuracy(decoder, rows, torch.tensor([2]))  # broadcast before
    with pytest.raises(ValueError, match="must lie in \\[0, 7\\)"):
        ch07_architecture.recall_accuracy(decoder, rows, torch.tensor([-1, 2]))  # silently wrapped before
    with pytest.raises(ValueError, match="unknown arch 'decodr'"):
        ch08_scale.fill_in_accuracy(decoder, "decodr", rows, torch.tensor([65, 66]))  # None before
    with pytest.raises(ValueError, match="non-empty"):
        ch08_scale.fill_in_accuracy(decoder, "decoder", rows[:0], torch.tensor([65, 66]))
    features, labels, groups = torch.randn(20, 3), torch.randint(0, 2, (20,)), torch.arange(20) // 2
    with pytest.raises(ValueError, match="labels and groups of shape"):
        ch08_scale.probe_accuracy(features, labels[:10], groups)
    with pytest.raises(ValueError, match="single string"):
        ch03_unmasking.real_words("hello there world again", {"there", "world"})  # scored characters before
    with pytest.raises(ValueError, match="single string"):
        ch03_unmasking.real_words(["hello there world again"], "there world")
    with pytest.raises(ValueError, match="\\(batch, length\\)"):
        ch03_unmasking.left_to_right_nll(decoder, rows[0], 3)
    with pytest.raises(ValueError, match="candidates"):
        ch03_unmasking.fill_blank(decoder, rows, 3, torch.tensor([], dtype=torch.long))
    states = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="T >= 2"):
        ch03_nope.position_probe_r2(torch.randn(2, 1, 4), torch.randn(2, 1, 4))  # nan before
    with pytest.raises(ValueError, match="ridge"):
        ch03_nope.position_probe_r2(states, states, math.nan)
    with pytest.raises(ValueError, match="NaN"):
        ch03_nope.position_probe_r2(states, torch.full((2, 5, 4), math.nan))
    with pytest.raises(ValueError, match="repeats"):
        timing.median_seconds(lambda: None, 0)
    with pytest.raises(ValueError, match="one prediction per task"):
        ch05_icl.error_curve(lambda x, y, q: q[:1, 0], 2, 2, n_tasks=5)
