"""The benchmark must keep running (its numbers are not checked here: timings are not tests)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers")


def test_benchmark_quick_mode_runs():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model.py"
    spec = importlib.util.spec_from_file_location("bench_model", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run("cpu", quick=True)
    assert result["decode_same_tokens_as_transformers"] is True
    assert result["cache_speedup_flop_formula"] > 1
    for key in ("train_ratio_ours_over_transformers", "decode_ratio_ours_over_transformers", "cache_speedup_measured"):
        assert result[key] > 0


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decode_benchmark_quick_mode_runs_on_a_tiny_llama_file(tmp_path):
    pytest.importorskip("gguf")
    here = Path(__file__).resolve().parent
    tiny = _load(here / "test_llama_gguf.py", "llama_gguf_tests").write_tiny_llama(tmp_path / "tiny.gguf")
    bench = _load(here.parent / "benchmarks" / "bench_decode.py", "bench_decode")
    result = bench.run(tiny, quick=True)
    assert result["decode_same_tokens_as_transformers"] is True
    for key in ("decode_ratio_ours_over_transformers", "bandwidth_bound_seconds_per_token", "ours_over_bandwidth_bound"):
        assert result[key] > 0


def test_the_training_throughput_benchmark_runs_and_refuses_bad_threads():
    bench = _load(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train_throughput.py", "bench_train")
    result = bench.run(1, quick=True)
    row = result["sizes"][0]
    assert result["matmul_peak_flops_per_s"] > 0 and row["seconds_per_step"] > 0
    assert 0 < row["share_of_matmul_peak"] and row["flops_per_step"] > 0
    with pytest.raises(ValueError, match="threads must be a positive int"):
        bench.run(0)
