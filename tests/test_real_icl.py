"""In-context learning in a real decoder (ch05_real_icl): prompts, accuracy, and the
implicit-finetuning comparison."""

import dataclasses

import pytest
import torch

from whydecoder.config import ModelConfig
from whydecoder.experiments import ch05_real_icl as ri
from whydecoder.model import Transformer
from whydecoder.text import ByteTokenizer


def test_tasks_have_distinct_inputs_and_enough_pairs():
    for pairs in ri.TASKS.values():
        assert len({a for a, _ in pairs}) == len(pairs) >= max(ri.SETTINGS["full"].shots) + ri.SETTINGS["full"].queries
    prompt, answer = ri.prompt_parts([("France", "Paris")], ("Italy", "Rome"))
    assert prompt == "input: France\noutput: Paris\n\ninput: Italy\noutput:" and answer == " Rome"


def test_layer_states_follow_the_parameters_given():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(arch="decoder", vocab_size=50, max_len=32, d_model=16, n_heads=2, n_layers=3)).eval()
    ids = [1, 2, 3, 4]
    with torch.no_grad():
        own = ri.layer_states(model, ids)
        same = ri.layer_states(model, ids, dict(model.named_parameters()))
    assert own.shape == (3, 16) and torch.allclose(own, same)
    with torch.no_grad():  # the last block's output, normed, is what the head reads
        top = model.hidden_states(torch.tensor([ids]))[0, -1]
    assert torch.allclose(model.decoder.final_norm(own[-1]), top, atol=1e-5)
    stepped = ri.gradient_step(model, [1, 2, 3, 4, 5, 6], [False, False, True, True, False, True], lr=1e-2)
    assert set(stepped) == {n for n, _ in model.named_parameters()}
    with torch.no_grad():
        moved = ri.layer_states(model, ids, stepped)
    assert not torch.allclose(moved, own)


def test_smoke_run_measures_every_task_and_k():
    results = ri.run("smoke", progress=False)
    s = ri.SETTINGS["smoke"]
    curves = ri.accuracy_curves(results)
    assert set(curves) == set(ri.TASKS) and all(list(c) == list(s.shots) for c in curves.values())
    assert all(0 <= a <= 1 for c in curves.values() for a in c.values())
    rows = results["implicit_finetuning"]
    assert len(rows) == len(ri.TASKS) * s.gd_prompts
    n_layers = ri.load_model(s)[0].cfg.n_layers
    assert all(len(r["cos_icl_gd"]) == n_layers and all(-1 <= c <= 1 for c in r["cos_icl_gd"]) for r in rows)


@pytest.mark.parametrize("change, match", [({"model": "gpt2"}, "model"), ({"shots": (-1,)}, "shots"),
                                           ({"queries": 0}, "queries"), ({"shots": (0, 15)}, "pairs"),
                                           ({"gd_lr": 0.0}, "gd_lr")])
def test_settings_refuse_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(ri.SETTINGS["smoke"], **change)


def test_byte_prompts_encode_back():
    tok = ByteTokenizer()
    prompt, answer = ri.prompt_parts([("a", "b")], ("c", "d"))
    assert tok.decode(tok.encode(prompt + answer)) == prompt + answer
