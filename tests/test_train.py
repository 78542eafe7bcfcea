import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder.objectives import full_lm
from whydecoder.results import load_result, save_result
from whydecoder.text import ByteTokenizer, corpus_tokens, random_chunks
from whydecoder.train import TrainConfig, evaluate, load_checkpoint, train

TOK = ByteTokenizer()


class Interrupted(Exception):
    pass


def _run(tmp_path=None, steps=12, ckpt_name=None, seed=0, interrupt_at=None):
    torch.manual_seed(0)
    model = wd.Transformer(small_config("decoder", vocab_size=TOK.vocab_size))
    data = corpus_tokens("train")[:20000]
    cfg = TrainConfig(steps=steps, lr=3e-3, warmup=2, seed=seed, log_every=1, progress=False, checkpoint_every=5,
                      checkpoint_path=str(tmp_path / ckpt_name) if ckpt_name else None)
    calls = []

    def make_batch(g):
        calls.append(1)
        if interrupt_at is not None and len(calls) > interrupt_at:
            raise Interrupted
        return full_lm(random_chunks(data, 4, 17, g))

    result = train(model, make_batch, cfg)
    return model, result


def test_training_reduces_loss_and_is_deterministic():
    m1, r1 = _run(steps=30)
    m2, r2 = _run(steps=30)
    assert r1.losses == r2.losses
    assert r1.losses[-1] < r1.losses[0] - 0.5
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert r1.tokens_per_s > 0


def test_resume_after_interruption_continues_exactly(tmp_path):
    straight_model, straight = _run(steps=12)
    with pytest.raises(Interrupted):  # killed during step 8; the last checkpoint is after step 5
        _run(tmp_path, steps=12, ckpt_name="b.pt", interrupt_at=7)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 5
    resumed_model, resumed = _run(tmp_path, steps=12, ckpt_name="b.pt")
    assert resumed.resumed_from == 5
    assert resumed.losses == straight.losses
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    _run(tmp_path, steps=5, ckpt_name="c.pt")
    other = wd.Transformer(small_config("decoder", vocab_size=TOK.vocab_size, n_layers=3))
    with pytest.raises(ValueError, match="another model config.*n_layers"):
        load_checkpoint(tmp_path / "c.pt", other)


@pytest.mark.parametrize("change", [{"steps": 14}, {"seed": 1}])
def test_resuming_under_other_training_settings_is_refused(tmp_path, change):
    with pytest.raises(Interrupted):
        _run(tmp_path, steps=12, ckpt_name="d.pt", interrupt_at=7)
    with pytest.raises(ValueError, match=f"other training settings.*{next(iter(change))}"):
        _run(tmp_path, ckpt_name="d.pt", **{"steps": 12, **change})


def test_evaluate_weights_by_target_tokens():
    model, _ = _run(steps=3)
    chunks = random_chunks(corpus_tokens("val"), 2, 17, torch.Generator().manual_seed(0))
    batch = full_lm(chunks)
    assert evaluate(model, [batch, batch]) == pytest.approx(evaluate(model, [batch]))


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "steps must be an integer >= 1, got 0"),
    ("steps", 2.5, "steps must be an integer"),
    ("lr", -1, "lr must be a finite number > 0, got -1"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("lr", 0, "lr must be a finite number > 0"),
    ("grad_clip", -1.0, "grad_clip must be a finite number >= 0, got -1.0"),  # would reverse the gradients
    ("grad_clip", float("inf"), "grad_clip must be a finite number"),
    ("min_lr_ratio", -0.1, "min_lr_ratio must be a finite number >= 0 and <= 1"),  # would drive the rate negative
    ("min_lr_ratio", 1.5, "min_lr_ratio must be a finite number >= 0 and <= 1"),
    ("log_every", 0, "log_every must be an integer >= 1, got 0"),  # divided by zero
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1"),
    ("warmup", -1, "warmup must be an integer >= 0"),
    ("warmup", 300, "warmup \\(300\\) must not exceed steps \\(200\\)"),
    ("weight_decay", -0.01, "weight_decay must be a finite number >= 0"),
    ("seed", -3, "seed must be an integer >= 0"),
    ("seed", True, "seed must be an integer"),
    ("device", "tpu", "device must be 'auto', 'cpu' or 'cuda"),
])
def test_bad_train_config(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_no_clipping_is_allowed():
    assert TrainConfig(grad_clip=0).grad_clip == 0
    assert TrainConfig(grad_clip=None).grad_clip is None


def test_results_are_stored_with_provenance(tmp_path):
    path = save_result(tmp_path / "r.json", {"loss": 1.5}, command="make full", device="cpu")
    payload = load_result(path)
    assert payload["results"] == {"loss": 1.5}
    assert payload["provenance"]["command"] == "make full"
    assert payload["provenance"]["device"].startswith("cpu")
    assert load_result(tmp_path / "missing.json") is None
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_corpus_and_chunks():
    train_ids, val_ids = corpus_tokens("train"), corpus_tokens("val")
    assert len(train_ids) > 300_000 and len(val_ids) > 30_000
    with pytest.raises(ValueError, match="'test'"):
        corpus_tokens("test")
    with pytest.raises(ValueError, match="chunk length 50"):
        random_chunks(torch.arange(10), 1, 50, torch.Generator())


def test_stored_or_run_prefers_complete_stored_results(tmp_path, capsys):
    from types import SimpleNamespace

    from whydecoder.pages import stored_or_run
    from whydecoder.results import load_complete, run_sections

    calls = []

    def run(scale, out=None, progress=False):
        calls.append((scale, out))
        sections = {"a": lambda: scale}
        return run_sections(sections, {"n": 1}, out, "cmd")

    exp = SimpleNamespace(RESULTS_DIR=tmp_path, run=run, load_complete=lambda: load_complete(tmp_path / "full.json", ["a"]))
    results, stored = stored_or_run(exp, "smoke")
    assert (results["a"], stored) == ("smoke", False) and calls == [("smoke", None)]
    assert "no stored full-scale results" in capsys.readouterr().out
    results, stored = stored_or_run(exp, "full")  # stores, then shows the stored payload
    assert (results["a"], stored) == ("full", True) and ("full", tmp_path / "full.json") in calls
    runs = [c for c in calls if c != ("full", None)]  # ("full", None): planned, to fingerprint its code
    results, stored = stored_or_run(exp, "smoke")
    assert (results["a"], stored) == ("full", True)
    assert [c for c in calls if c != ("full", None)] == runs  # complete stored results: shown, nothing run
    assert "stored full-scale results, made by\n  cmd" in capsys.readouterr().out


def test_stored_or_run_reports_a_corrupt_file_by_name_before_the_smoke_run(tmp_path, capsys):
    from types import SimpleNamespace

    from whydecoder.pages import stored_or_run
    from whydecoder.results import load_complete, run_sections

    (tmp_path / "full.json").write_text('{"provenance": {"comm')
    order = []

    def run(scale, out=None, progress=False):
        order.append("run")
        return run_sections({"a": lambda: scale}, {"n": 1}, out, "cmd")

    def load():
        order.append("load")
        return load_complete(tmp_path / "full.json", ["a"])

    results, stored = stored_or_run(SimpleNamespace(RESULTS_DIR=tmp_path, run=run, load_complete=load), "smoke")
    assert (results["a"], stored) == ("smoke", False) and order == ["load", "run"]
    assert str(tmp_path / "full.json") in capsys.readouterr().err
