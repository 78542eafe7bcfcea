"""The papers' numbers: every stored file loads, and a bad file is refused by name."""

import pytest

from whydecoder.papers import PAPERS_DIR, published, value

NAMES = sorted(p.stem for p in PAPERS_DIR.glob("*.csv"))


def test_there_are_published_numbers():
    assert {"haviv2022_nope", "bhojanapalli2020_table1", "wang2022_zeroshot", "ding2024_table1"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_file_loads_with_its_sources(name):
    table = published(name)
    where = ("Table", "Figure", "Section", "Abstract")  # a number from a figure's label or the text names its place too
    assert len(table) > 0 and table["source"].str.len().min() > 20 and table["table"].str.startswith(where).all()


def test_numbers_read_as_the_papers_print_them():
    wang = published("wang2022_zeroshot")
    assert value(wang, "CD:FLM", "EAI-Eval, after pretraining") == 44.2
    assert value(wang, "ED:MLM", "T0-Eval, after multitask finetuning") == 60.6
    assert value(published("haviv2022_nope"), "NoPos", "WikiText-103") == 20.97
    assert value(published("bhojanapalli2020_table1"), "BERT-large, 32 heads of size d/h (336M parameters)",
                 "SQuAD F1") == 90.45


@pytest.mark.parametrize("text, message", [
    ("paper,table\nx,y\n", "columns"),
    ("paper,table,page,row,column,value,unit,source,note,checked\nP,Table 1,1,r,c,abc,u,s,,k\n", "'abc' is not a number"),
    ("paper,table,page,row,column,value,unit,source,note,checked\nP,Table 1,1,r,c,nan,u,s,,k\n", "not finite"),
    ("paper,table,page,row,column,value,unit,source,note,checked\nP,,1,r,c,1,u,s,,k\n", "empty \\['table'\\]"),
])
def test_bad_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        published("bad", path)


def test_unknown_paper_and_ambiguous_value():
    with pytest.raises(ValueError, match="no published numbers 'nope'"):
        published("nope")
    with pytest.raises(ValueError, match="0 numbers at row 'x'"):
        value(published("haviv2022_nope"), "x", "y")


def test_the_page_table_is_wide_by_table_and_keeps_every_number():
    from whydecoder.papers import published, published_table

    frame = published("jiang2024_mixtral")
    shown = published_table(frame)
    assert [caption for caption, _ in shown.tables] == ["Jiang et al. 2024 · Abstract, p.\u00a01",
                                                         "Jiang et al. 2024 · Table 2, p.\u00a04 (accuracy %)"]
    table2 = shown.tables[1][1].data.set_index("row")
    assert list(table2.columns) == ["MMLU", "GSM8K", "MBPP", "HellaS"] and list(table2.index) == ["LLaMA 2 70B",
                                                                                                 "Mixtral 8x7B"]
    assert table2.loc["Mixtral 8x7B", "GSM8K"] == "74.4"  # one unit for the table: said once, in the caption
    cells = [v for _, t in shown.tables for v in t.data.iloc[:, 1:].to_numpy().ravel() if isinstance(v, str)]
    assert len(cells) == len(frame)  # every number, once
    abstract = shown.tables[0][1].data.set_index("quantity")  # one row of two quantities: read down
    assert abstract.loc["total parameters", "Mixtral 8x7B"] == "47 billion parameters each token has access to"
    assert "'47B" not in abstract.to_string()  # the transcriber's notes are left out ...
    assert "own evaluation pipeline of the paper" in published_table(frame, notes=True).to_html()  # ... unless asked


def test_the_page_tables_can_fold_behind_one_line():
    from whydecoder.papers import published, published_table

    frame = published("jiang2024_mixtral")
    assert "<details" not in published_table(frame).to_html()
    folded = published_table(frame, folded="What Mixtral reports <at scale>").to_html()
    assert folded.startswith('<details class="book-papers"><summary>What Mixtral reports &lt;at scale&gt; '
                             "(2 tables)</summary>")
    assert "74.4" in folded and folded.endswith("</details>")
    with pytest.raises(ValueError, match="folded must be a line of text"):
        published_table(frame, folded=" ")


def test_the_page_table_takes_several_papers_at_once():
    import pandas as pd

    from whydecoder.papers import published, published_table

    both = pd.concat([published("hu2022_lora"), published("dettmers2023_qlora")])
    assert "Hu" in published_table(both).to_html()
