"""Llama GGUF files in our model: the RoPE row order, a tiny file written here, the errors,
and the real SmolLM2-135M against transformers' Llama on the same dequantized weights."""

import numpy as np
import pytest
import torch
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from whydecoder.generate import generate
from whydecoder.llama_gguf import (
    llama_from_tensors,
    load_llama_gguf,
    read_llama_gguf,
    transformers_llama,
    unpermute_rope_rows,
)


def reference_llama(cfg, tensors, dtype=torch.float64):
    """transformers' Llama on the same tensors, un-permuted by transformers' own GGUF code."""
    return transformers_llama(cfg, tensors, dtype, attention="eager")

gguf = pytest.importorskip("gguf")


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py reorders query and key rows this way."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def test_unpermuting_undoes_llama_cpp_and_agrees_with_transformers():
    w = np.random.default_rng(0).normal(size=(3 * 8, 5)).astype(np.float32)
    stored = llama_cpp_permute(w, 3)
    assert not np.array_equal(stored, w)
    np.testing.assert_array_equal(unpermute_rope_rows(torch.from_numpy(stored), 3).numpy(), w)
    np.testing.assert_array_equal(LlamaTensorProcessor()._reverse_permute_weights(stored, 3, 3), w)
    with pytest.raises(ValueError, match="even size"):
        unpermute_rope_rows(torch.zeros(9, 2), 3)


TINY = dict(n_layers=2, d_model=32, d_ff=48, n_heads=4, n_kv_heads=2, vocab=64, context=32, rope_base=500.0)


def write_tiny_llama(path, arch="llama", t=TINY):
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(t["n_layers"])
    w.add_context_length(t["context"])
    w.add_embedding_length(t["d_model"])
    w.add_feed_forward_length(t["d_ff"])
    w.add_head_count(t["n_heads"])
    w.add_head_count_kv(t["n_kv_heads"])
    w.add_rope_freq_base(t["rope_base"])
    w.add_layer_norm_rms_eps(1e-5)
    d, dh = t["d_model"], t["d_model"] // t["n_heads"]

    def normal(*shape):
        return (rng.normal(size=shape) * 0.2).astype(np.float32)

    w.add_tensor("token_embd.weight", normal(t["vocab"], d))
    w.add_tensor("output_norm.weight", 1 + normal(d))
    for i in range(t["n_layers"]):
        w.add_tensor(f"blk.{i}.attn_q.weight", llama_cpp_permute(normal(t["n_heads"] * dh, d), t["n_heads"]))
        w.add_tensor(f"blk.{i}.attn_k.weight", llama_cpp_permute(normal(t["n_kv_heads"] * dh, d), t["n_kv_heads"]))
        w.add_tensor(f"blk.{i}.attn_v.weight", normal(t["n_kv_heads"] * dh, d))
        w.add_tensor(f"blk.{i}.attn_output.weight", normal(d, t["n_heads"] * dh))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", normal(t["d_ff"], d))
        w.add_tensor(f"blk.{i}.ffn_up.weight", normal(t["d_ff"], d))
        w.add_tensor(f"blk.{i}.ffn_down.weight", normal(d, t["d_ff"]))
        w.add_tensor(f"blk.{i}.attn_norm.weight", 1 + normal(d))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", 1 + normal(d))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_tiny_llama_file_loads_and_matches_transformers(tmp_path):
    cfg, tensors = read_llama_gguf(write_tiny_llama(tmp_path / "tiny.gguf"))
    assert (cfg.n_layers, cfg.kv_heads, cfg.rope_base, cfg.vocab_size, cfg.max_len) == (2, 2, 500.0, 64, 32)
    ours = llama_from_tensors(cfg, tensors).double()
    ref = reference_llama(cfg, tensors)
    tokens = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # transformers' RMSNorm rounds to float32 even in a float64 model
        assert (ours(tokens) - ref(tokens).logits).abs().max() < 1e-5
    ours_tokens = generate(ours, tokens[:, :5], 10)
    ref.generation_config.eos_token_id = None  # the random tiny model has no end-of-text token
    ref_tokens = ref.generate(tokens[:, :5], attention_mask=torch.ones(2, 5, dtype=torch.long), max_new_tokens=10,
                              do_sample=False, pad_token_id=0)
    assert torch.equal(ours_tokens, ref_tokens)


def test_files_that_are_not_llama_models_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="holds a 'gpt2' model"):
        load_llama_gguf(write_tiny_llama(tmp_path / "gpt2.gguf", arch="gpt2"))
    good = write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.gguf.*truncated or corrupt"):
        load_llama_gguf(cut)
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_llama_gguf(tmp_path / "absent.gguf")
    with pytest.raises(ValueError, match="max_len must be an int in"):
        load_llama_gguf(tmp_path / "tiny.gguf", max_len=64)


PROMPTS = [[504, 3575, 282, 4649, 314],  # "The capital of France is" in SmolLM2's tokenizer
           [1, 9690, 198, 2683, 359, 253, 5356, 5646, 28, 2, 198]]


@pytest.fixture(scope="module")
def smollm2():
    return read_llama_gguf(max_len=64)


def test_smollm2_in_our_model_matches_transformers_on_the_same_weights(smollm2):
    cfg, tensors = smollm2
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.rope_base) == (30, 576, 9, 3, 100000.0)
    ours = llama_from_tensors(cfg, tensors)
    with torch.no_grad():
        logits = [ours(torch.tensor([p])) for p in PROMPTS]
        greedy = generate(ours, torch.tensor([PROMPTS[0]]), 8)
    del ours
    ref = reference_llama(cfg, tensors, torch.float32)
    with torch.no_grad():
        for p, mine in zip(PROMPTS, logits):
            assert (mine - ref(torch.tensor([p])).logits).abs().max() < 1e-4
        theirs = ref.generate(torch.tensor([PROMPTS[0]]), max_new_tokens=8, do_sample=False, pad_token_id=2)
    assert torch.equal(greedy, theirs)
    assert greedy[0, 5].item() == 7042  # " Paris"
