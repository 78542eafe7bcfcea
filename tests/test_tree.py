"""The evolution-tree dataset: schema, vocabulary, facts, validation errors, C15 counts."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from conftest import one_line
from whydecoder import tree


@pytest.fixture(scope="module")
def df():
    return tree.load_tree()


@pytest.fixture()
def raw():
    return pd.read_csv(tree.TREE_PATH, dtype=str, keep_default_na=False).astype({"year": int, "month": int})


def test_dataset_size_span_and_branches(df):
    assert len(df) >= 150
    assert df["year"].min() == 2017 and df["year"].max() == 2026
    assert set(df["branch"]) == set(tree.BRANCHES)
    assert df["source"].str.strip().ne("").all()
    # every branch has open and closed members or at least one open one
    assert (df["open_weights"] == "yes").sum() > 100 and (df["open_weights"] == "no").sum() > 30


# Models the survey names in its model lists or its tree (Yang et al. 2023) and the issue.
SURVEY_MODELS = [
    "BERT", "RoBERTa", "DistilBERT", "ALBERT", "ELECTRA", "DeBERTa", "T5", "BART", "mT5", "UL2",
    "Flan-T5", "GLM", "ChatGLM-6B", "AlexaTM 20B", "GPT-1", "GPT-2", "GPT-3", "GPT-4", "OPT", "BLOOM",
    "PaLM", "LLaMA", "Claude", "GLM-130B", "MT-NLG", "GLaM", "Gopher", "Chinchilla", "LaMDA",
    "BloombergGPT", "GPT-NeoX-20B",
]


def test_survey_models_are_rows_marked_in_the_tree(df):
    rows = df.set_index("name")
    missing = [m for m in SURVEY_MODELS if m not in rows.index]
    assert not missing
    assert (rows.loc[SURVEY_MODELS, "in_survey_tree"] == "yes").all()


def test_later_families_and_four_routes_systems_are_present(df):
    names = set(df["name"])
    for family in ("Llama", "Qwen", "DeepSeek", "Mistral", "Gemma", "Phi"):
        assert (df["family"] == family).sum() >= 3, family
    for system in ("RWKV", "Mamba", "RetNet", "Mixtral 8x7B", "Jamba", "GPT-4o", "Gemini 1.0"):
        assert system in names


@pytest.mark.parametrize(
    "name, year, month, branch, params",
    [
        ("BERT", 2018, 10, "encoder-only", 0.34),
        ("T5", 2019, 10, "encoder-decoder", 11),
        ("GPT-3", 2020, 5, "decoder-only", 175),
        ("PaLM", 2022, 4, "decoder-only", 540),
        ("LLaMA", 2023, 2, "decoder-only", 65),
        ("Mamba", 2023, 12, "non-transformer/hybrid", 2.8),
        ("DeepSeek-V3", 2024, 12, "decoder-only", 671),
    ],
)
def test_spot_facts(df, name, year, month, branch, params):
    row = df.set_index("name").loc[name]
    assert (row["year"], row["month"], row["branch"], row["params_b"]) == (year, month, branch, params)


def test_mixtures_of_experts_have_fewer_active_parameters(df):
    moe = df.dropna(subset=["active_params_b"])
    assert len(moe) >= 20
    assert (moe["active_params_b"] < moe["params_b"]).all()
    assert df.loc[df["name"] == "Mixtral 8x7B", "active_params_b"].item() == 12.9


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("branch", "decoder", "branch 'decoder'"),
        ("month", 13, "month 13"),
        ("year", 2016, "2016-"),
        ("open_weights", "maybe", "'maybe'"),
        ("params_b", "lots", "'lots'"),
        ("params_b", "90000", "90000"),
        ("source", "", "''"),
        ("source", "arXiv:1401.00001", "arXiv:1401.00001"),
        ("architecture_basis", "guessed", "'guessed'"),
    ],
)
def test_validation_names_the_bad_value(raw, column, value, message):
    raw.loc[raw["name"] == "BERT", column] = value
    with pytest.raises(ValueError) as err:
        tree.validate_tree(raw)
    assert str(err.value).startswith("BERT: ") and message in str(err.value)


def test_validation_rejects_duplicates_and_inconsistent_rows(raw):
    with pytest.raises(ValueError, match="appear twice: \\['BERT'\\]"):
        tree.validate_tree(pd.concat([raw, raw[raw["name"] == "BERT"]]))
    bad = raw.copy()
    bad.loc[bad["name"] == "Mixtral 8x7B", "active_params_b"] = "50"
    with pytest.raises(ValueError, match="Mixtral 8x7B: active parameters 50.0"):
        tree.validate_tree(bad)
    bad = raw.copy()
    bad.loc[bad["name"] == "Llama 3", "in_survey_tree"] = "yes"
    with pytest.raises(ValueError, match="Llama 3: released 2024-04, after the survey"):
        tree.validate_tree(bad)
    bad = raw.copy()
    bad.loc[bad["name"] == "Llama 3", "architecture_basis"] = "presumed"
    with pytest.raises(ValueError, match="Llama 3: open weights publish"):
        tree.validate_tree(bad)


def test_routes_link_to_tree_rows(df):
    routes = tree.load_routes(tree=df)
    assert set(routes["route"]) == {"scaling", "architecture", "efficiency", "agents"}
    linked = {n for names in routes["tree_name"] for n in names.split(";") if n}
    assert linked <= set(df["name"])
    with pytest.raises(ValueError, match="not rows of the tree"):
        tree.load_routes(tree=df[df["name"] != "RetNet"])


def _synthetic(counts_per_year: dict) -> pd.DataFrame:
    rows = []
    for year, counts in counts_per_year.items():
        for branch, n in counts.items():
            for i in range(n):
                rows.append({"name": f"{branch}-{year}-{i}", "year": year, "month": 6, "branch": branch,
                             "params_b": 1.0 if branch == "encoder-only" else 100.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "enc_recent, dec_recent, verdict",
    [(0, 10, "supported"), (8, 10, "nuanced"), (12, 2, "refuted")],
)
def test_c15_verdict_follows_the_counts(enc_recent, dec_recent, verdict):
    data = {2019: {"encoder-only": 5, "decoder-only": 5}}
    data.update({y: {"encoder-only": enc_recent, "decoder-only": dec_recent} for y in range(2021, 2025)})
    assert tree.c15_evidence(_synthetic(data))["verdict"] == verdict


def test_counts_add_up_and_organizations_split(df):
    counts = tree.counts_by_year(df)
    assert counts.to_numpy().sum() == len(df)
    orgs = tree.organizations_by_branch(df, top=50)
    # "Microsoft; NVIDIA" counts for both
    assert orgs.loc["NVIDIA"].sum() == df["organization"].str.contains("NVIDIA").sum()


def test_tree_layout_gives_every_model_its_own_place(df):
    per_line = {b: 3 for b in tree.BRANCHES}
    pos, ticks = tree._tree_layout(df, {b: 3.0 for b in tree.BRANCHES}, per_line)
    assert set(pos) == set(df["name"])
    assert len(set(pos.values())) == len(pos)
    assert [t[0] for t in ticks[:-1]] == list(range(2017, 2027))


def test_figures_draw(df):
    import matplotlib.pyplot as plt

    fig = tree.plot_tree(df)
    assert len(fig.axes[0].texts) >= len(df)
    for plot in (tree.plot_shares, tree.plot_params, tree.plot_organizations):
        assert plot(df) is not None
    plt.close("all")


def test_c15_evidence_says_what_the_verdict_rests_on(df):
    results = {"tree": df}
    rests_on = one_line(tree.c15_claim_evidence(results, tree.c15_verdict(results)).rests_on)
    assert rests_on.startswith(f"one dataset, counted with no gate: {len(df)} models, 2017 to 2026; ")
    data = {2019: {"encoder-only": 5, "decoder-only": 5}}
    data.update({y: {"encoder-only": 8, "decoder-only": 10} for y in range(2021, 2025)})  # encoder-only did not stall
    synthetic = {"tree": _synthetic(data)}
    assert tree.c15_claim_evidence(synthetic, tree.c15_verdict(synthetic)).rests_on == (
        "one dataset, counted with no gate: 82 models, 2019 to 2024; one of two halves held (decoder-only the most "
        "common in all four years from 2021)")
