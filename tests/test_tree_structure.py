"""C19: the tree's architecture-feature columns, their validation, the counts per period
and the rule driven to every outcome."""

import pandas as pd
import pytest

from conftest import one_line
from whydecoder import tree, tree_structure


@pytest.fixture(scope="module")
def df():
    return tree.load_tree()


@pytest.fixture
def raw():
    return pd.read_csv(tree.TREE_PATH, dtype=str, keep_default_na=False).astype({"year": int, "month": int})


@pytest.mark.parametrize("name, attention, layers, context_k, tokens", [
    ("LLaMA", "MHA", "attention", 2, 1.4),
    ("Llama 2", "GQA", "attention", 4, 2),
    ("PaLM", "MQA", "attention", 2, 0.78),
    ("DeepSeek-V3", "MLA", "attention", 128, 14.8),
    ("Jamba", "GQA", "hybrid", 256, None),
    ("Mamba", "none", "recurrent", None, 0.3),
])
def test_spot_features(df, name, attention, layers, context_k, tokens):
    row = df.set_index("name").loc[name]
    assert (row["attention"], row["layers"]) == (attention, layers)
    assert (pd.isna(row["context_k"]) and context_k is None) or row["context_k"] == context_k
    assert (pd.isna(row["train_tokens_t"]) and tokens is None) or row["train_tokens_t"] == tokens


def test_mistral_has_a_sliding_window_and_closed_models_no_layers(df):
    rows = df.set_index("name")
    assert rows.loc["Mistral 7B", "sliding_window"] == "yes"
    assert rows.loc["GPT-4", "layers"] == "" and rows.loc["GPT-4", "attention"] == ""


@pytest.mark.parametrize("column, value, message", [
    ("attention", "flash", "attention 'flash'"),
    ("sliding_window", "maybe", "sliding_window 'maybe'"),
    ("layers", "convolution", "layers 'convolution'"),
    ("context_k", "lots", "'lots' is not a number of thousand tokens"),
    ("context_k", "50000", "outside the plausible range"),
    ("train_tokens_t", "900", "outside the plausible range"),
    ("feature_source", "", "have no feature_source"),
    ("feature_source", "a blog", "neither an arXiv id"),
    ("attention", "none", "disagree"),
    ("tool_use", "sometimes", "tool_use 'sometimes'"),
    ("experts", "maybe", "experts 'maybe'"),
    ("tool_use", "yes", "needs a tool_use_source exactly when"),
])
def test_feature_validation_names_the_bad_value(raw, column, value, message):
    raw.loc[raw["name"] == "Llama 2", column] = value
    with pytest.raises(ValueError) as err:
        tree.validate_tree(raw)
    assert str(err.value).startswith("Llama 2: ") and message in str(err.value)


def test_a_source_without_features_is_refused(raw):
    raw.loc[raw["name"] == "OpenAI o1", "feature_source"] = "arXiv:2412.16720"
    with pytest.raises(ValueError, match="OpenAI o1: a feature_source but no feature"):
        tree.validate_tree(raw)


def test_counts_take_generative_published_models_with_known_layers(df):
    rows = tree_structure.with_structure(df)
    assert set(rows["branch"]) <= set(tree_structure.GENERATIVE)
    assert (rows["architecture_basis"] == "published").all() and (rows["layers"] != "").all()
    assert rows.set_index("name").loc["Mixtral 8x7B", "departs"] and not rows.set_index("name").loc["LLaMA", "departs"]
    assert rows.set_index("name").loc["Llama 2", "period"] == "before"
    assert rows.set_index("name").loc["Mistral 7B", "period"] == "after"
    table = tree_structure.structure_by_year(df)
    assert table["models"].sum() == len(rows) and table.index.min() == tree_structure.BEFORE_FROM


def counts(before, after, n=(20, 20), tokens=(1.0, 10.0), published=None, sha=None):
    published = published or n

    def period(share, models, median, known):
        return {"models": models, "departs": share, "moe": share, "mla": 0.0, "recurrent_layers": 0.0,
                "shared_kv": 0.0, "median_tokens_t": median, "tokens_published": known, "families": models,
                "family_departs": share}
    return {"before": period(before, n[0], tokens[0], published[0]),
            "after": period(after, n[1], tokens[1], published[1]),
            "data_sha256": sha or tree_structure.TREE_SHA256}


@pytest.mark.parametrize("before, after, kwargs, outcome", [
    (0.05, 0.1, {}, "supported"),                          # structure stood still, data grew x10
    (0.05, 0.5, {"tokens": (1.0, 2.0)}, "refuted"),        # structure changed, data x2 only
    (0.05, 0.5, {}, "nuanced"),                            # both changed
    (0.05, 0.1, {"tokens": (1.0, 2.0)}, "nuanced"),        # neither
    (0.2, 0.3, {}, "nuanced"),                             # wide but hardly risen: mixed structure
    (0.0, 0.2, {"tokens": (1.0, 2.0)}, "nuanced"),         # risen but still rare, data flat
    (0.05, 0.5, {"n": (5, 20)}, "inconclusive"),           # too few models
    (0.05, 0.1, {"published": (20, 4)}, "inconclusive"),   # too few publish their tokens
    (0.05, 0.1, {"sha": "0" * 64}, "inconclusive"),        # the tree was edited after the rule froze it
])
def test_c19_rule_reaches_every_outcome(before, after, kwargs, outcome):
    verdict = tree_structure.C19_RULE(counts(before, after, **kwargs))
    assert verdict.outcome == outcome, verdict.reason


def test_c19_rule_freezes_the_tree_it_was_fixed_on(tmp_path):
    assert tree_structure.TREE_SHA256 == tree_structure.tree_hash()
    edited = tmp_path / "llm_tree.csv"
    edited.write_bytes(tree.TREE_PATH.read_bytes() + b"\n")
    verdict = tree_structure.C19_RULE(tree_structure.c19_results(edited))
    assert verdict.outcome == "inconclusive" and "not the one the rule froze" in verdict.reason
    crlf = tmp_path / "crlf.csv"  # a checkout that writes Windows line endings is the same tree
    crlf.write_bytes(tree.TREE_PATH.read_bytes().replace(b"\n", b"\r\n"))
    assert tree_structure.tree_hash(crlf) == tree_structure.TREE_SHA256


def test_c19_on_the_dataset_reads_both_halves():
    verdict = tree_structure.C19_RULE(tree_structure.c19_results())
    numbers = verdict.numbers
    assert numbers["after"]["models"] >= 10 and numbers["before"]["models"] >= 10
    assert f"{numbers['after']['departs']:.0%}" in verdict.reason and f"x{numbers['token_growth']:.1f}" in verdict.reason
    assert numbers["structure"] in verdict.reason and numbers["data"] in verdict.reason


def test_experts_are_marked_where_the_active_count_is_missing(df, raw):
    rows = df.set_index("name")
    assert rows.loc["Switch Transformer", "experts"] == "yes" and pd.isna(rows.loc["Switch Transformer", "active_params_b"])
    assert rows.loc["Llama 2", "experts"] == "no"
    raw.loc[raw["name"] == "Mixtral 8x7B", "experts"] = "no"
    with pytest.raises(ValueError, match="Mixtral 8x7B: active parameters 12.9 B are given, so experts must be 'yes'"):
        tree.validate_tree(raw)


@pytest.mark.parametrize("before, after, kwargs, says", [
    (0.05, 0.5, {}, "one dataset, frozen by its hash: 20 models before the tree, 20 after, 20 and 20 with training "
                    "tokens (the rule asks for 10); read: structure changed, data grew"),
    (0.05, 0.5, {"n": (5, 20)}, "nothing compared: one dataset, frozen by its hash: 5 models before the tree"),
    (0.05, 0.1, {"sha": "0" * 64}, "nothing counted: the tree's file is not the one the rule froze"),
])
def test_c19_evidence_says_what_the_verdict_rests_on(before, after, kwargs, says):
    results = counts(before, after, **kwargs)
    for period in ("before", "after"):  # the columns the evidence's text reads beside the rule's
        results[period] |= {"decoder_branch": 0.7, "plain_decoders": 0.5}
    assert one_line(tree_structure.c19_evidence(results, tree_structure.C19_RULE(results)).rests_on).startswith(says)
