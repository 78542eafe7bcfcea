"""Edges where the package gave NaN, a silent wrong answer or an error from deep inside
torch: each is now handled so that it agrees with the reference form, or refused with an
error that names the argument and what was expected, before anything is changed."""

import math

import numpy as np
import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder import accounting, finetune, hf, llama_gguf, masks, nbce, positions, serving
from whydecoder import train as trainer
from whydecoder.attention import KVCache
from whydecoder.experts import MoE, aux_loss, moe_reference
from whydecoder.generate import generate, unmask_generate
from whydecoder.retention import retention_chunk, retention_recurrent
from whydecoder.tiled_attention import naive_attention, peak_memory_bytes, score_bytes, tiled_attention


def _model(arch="decoder", **overrides):
    return wd.Transformer(small_config(arch, **overrides)).eval()


def _ids(batch=1, length=10, seed=1):
    return torch.randint(0, 40, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- numeric edges
def _tiny_gguf(path, poison=None):
    """A one-layer Llama GGUF; ``poison`` names a tensor whose first value becomes NaN."""
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(16)
    w.add_embedding_length(8)
    w.add_feed_forward_length(12)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(100.0)
    w.add_layer_norm_rms_eps(1e-5)
    shapes = {"token_embd.weight": (20, 8), "output_norm.weight": (8,), "blk.0.attn_q.weight": (8, 8),
              "blk.0.attn_k.weight": (8, 8), "blk.0.attn_v.weight": (8, 8), "blk.0.attn_output.weight": (8, 8),
              "blk.0.ffn_gate.weight": (12, 8), "blk.0.ffn_up.weight": (12, 8), "blk.0.ffn_down.weight": (8, 12),
              "blk.0.attn_norm.weight": (8,), "blk.0.ffn_norm.weight": (8,)}
    for name, shape in shapes.items():
        values = rng.normal(size=shape).astype(np.float32)
        if name == poison:
            values.flat[0] = np.nan
        w.add_tensor(name, values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_gguf_tensor_with_nan_is_refused_at_load_by_name(tmp_path):
    from whydecoder.llama_gguf import llama_from_tensors, load_llama_gguf, read_llama_gguf

    good = load_llama_gguf(_tiny_gguf(tmp_path / "good.gguf"))
    assert torch.isfinite(good(torch.tensor([[1, 2, 3]]))).all()
    with pytest.raises(ValueError, match="tensor blk.0.ffn_up.weight holds 1 NaN"):
        load_llama_gguf(_tiny_gguf(tmp_path / "bad.gguf", poison="blk.0.ffn_up.weight"))
    cfg, tensors = read_llama_gguf(tmp_path / "good.gguf")
    tensors["output_norm.weight"][3] = math.inf
    with pytest.raises(ValueError, match="tensor output_norm.weight holds NaN or infinite"):
        llama_from_tensors(cfg, tensors)


def test_nbce_refuses_nan_and_chunks_without_mass():
    uncond = torch.randn(6).log_softmax(-1)
    chunks = torch.randn(3, 6).log_softmax(-1)
    for pooling in ("min_entropy", "average"):
        nan = chunks.clone()
        nan[1, 2] = math.nan
        with pytest.raises(ValueError, match=r"chunk_logprobs holds NaN or \+inf \(in chunk 1\)"):
            nbce.nbce_pool(nan, uncond, 0.5, pooling)
        empty = chunks.clone()
        empty[2] = -math.inf
        with pytest.raises(ValueError, match="chunk 2 gives every token -inf"):
            nbce.nbce_pool(empty, uncond, 0.5, pooling)
        with pytest.raises(ValueError, match="context-free distribution gives every token -inf"):
            nbce.nbce_pool(chunks, torch.full((6,), -math.inf), 0.5, pooling)
    some_inf = chunks.clone()
    some_inf[0, :3] = -math.inf  # a truncated distribution is still a distribution
    assert torch.isfinite(nbce.nbce_pool(some_inf, uncond, 0.5).exp().sum())
    with pytest.raises(ValueError, match=r"\(n, V\)"):
        nbce.nbce_pool(torch.zeros(0, 6), uncond, 0.5)


def test_retention_with_a_decay_of_zero_agrees_across_forms():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    state = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    gamma = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    for s in (None, state):
        ref, ref_state = retention_recurrent(q, k, v, gamma, s)
        out, new_state = retention_chunk(q, k, v, gamma, s)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(new_state, ref_state)
    # a decay of 0 keeps only the current position: o_t = q_t k_t^T v_t
    torch.testing.assert_close(out[:, 0], ((q[:, 0] * k[:, 0]).sum(-1, keepdim=True) * v[:, 0]))
    empty = q[:, :, :0]
    assert retention_recurrent(empty, empty, empty, gamma, state)[0].shape == (2, 3, 0, 4)
    torch.testing.assert_close(retention_chunk(empty, empty, empty, gamma, state)[1], state)


@pytest.mark.parametrize("gamma, state, message", [
    (torch.tensor([-0.5, 0.5, 0.9]), None, r"gamma must hold decays in \[0, 1\]"),
    (torch.tensor([math.nan, 0.5, 0.9]), None, r"gamma must hold decays in \[0, 1\]"),
    (torch.tensor([0.5, 0.9]), None, r"one decay per head, shape \(3,\)"),
    (torch.tensor([0.5, 0.5, 0.9]), torch.zeros(2, 3, 4), "state must be"),
])
def test_retention_refuses_decays_and_states_that_do_not_fit(gamma, state, message):
    q = torch.randn(2, 3, 5, 4)
    for form in (retention_recurrent, retention_chunk):
        with pytest.raises(ValueError, match=message):
            form(q, q, q, gamma, state)


def test_causal_attention_with_fewer_keys_than_queries_is_refused_in_both_forms():
    q, k = torch.randn(1, 2, 6, 4), torch.randn(1, 2, 3, 4)
    for form in (naive_attention, tiled_attention):
        with pytest.raises(ValueError, match=r"fewer keys \(3\) than queries \(6\)"):
            form(q, k, k, causal=True)
        with pytest.raises(ValueError, match="no key for the 6 queries"):
            form(q, k[..., :0, :], k[..., :0, :])
        with pytest.raises(ValueError, match="floating-point"):
            form(q.long(), k.long(), k.long())
    torch.testing.assert_close(tiled_attention(q, k, k, block_q=2, block_k=2), naive_attention(q, k, k))
    with pytest.raises(ValueError, match="tq must be an int >= 0"):
        score_bytes(-3, 4)


def test_mixture_of_experts_on_an_empty_batch_has_zero_aux_loss():
    model = wd.Transformer(small_config("decoder", n_experts=4))
    moe = next(m for m in model.modules() if isinstance(m, MoE))
    out = moe(torch.zeros(0, 5, 32))
    assert out.shape == (0, 5, 32) and moe.aux_loss.item() == 0.0 and moe.load.tolist() == [0.0] * 4
    assert moe_reference(moe, torch.zeros(0, 32)).shape == (0, 32)
    model(torch.zeros(0, 3, dtype=torch.long))
    assert aux_loss(model).item() == 0.0
    aux_loss(model).backward()  # a zero on the router's graph, like any other pass
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 32\)"):
        moe(torch.zeros(2, 16))


# ---------------------------------------------------------------------------- silent wrong answers
def test_a_prefix_lm_cache_remembers_its_prefix_and_refuses_another():
    model, x = _model("prefix-lm"), _ids(length=10)
    cache = model.new_cache()
    with torch.no_grad():
        model(x[:, :6], prefix_len=4, cache=cache)
        assert cache.prefix_len == 4
        with pytest.raises(ValueError, match="filled with prefix_len 4, not prefix_len 3"):
            model(x[:, 6:8], prefix_len=3, cache=cache)
        assert cache.length == 6  # refused before anything was appended
        with pytest.raises(ValueError, match="cannot crop to length 3: the cache was filled with prefix_len 4"):
            cache.crop(3)
        cache.crop(5)  # at or above the prefix: still exact
        cont = model(x[:, 5:8], prefix_len=4, cache=cache)
        torch.testing.assert_close(cont, model(x[:, :8], prefix_len=4)[:, 5:8], atol=1e-5, rtol=0)
        assert cache.fork().prefix_len == 4
        cache.crop(0)  # emptied: a new prefix may start
        assert cache.prefix_len is None
        model(x[:, :5], prefix_len=2, cache=cache)
        assert cache.prefix_len == 2
        per_example = model.new_cache()
        model(_ids(batch=2, length=6), prefix_len=torch.tensor([2, 4]), cache=per_example)
        assert per_example.prefix_len == (2, 4)
        with pytest.raises(ValueError, match=r"filled with prefix_len \(2, 4\), not prefix_len 4"):
            model(_ids(batch=2, length=1), prefix_len=4, cache=per_example)


def test_another_models_cache_is_refused_before_it_changes():
    x = _ids(batch=2, length=5)
    decoder, retention = _model(), _model(mixer="retention")
    with torch.no_grad():
        cache = decoder.new_cache()
        decoder(x, cache=cache)
        with pytest.raises(ValueError, match="made by another model.*'mixer'"):
            retention(x[:, :1], cache=cache)
        with pytest.raises(ValueError, match="made by another model.*'n_layers'"):
            _model(n_layers=3)(x[:, :1], cache=cache)
        with pytest.raises(ValueError, match="holds a batch of 2 but the new tokens have batch 1"):
            decoder(x[:1, :1], cache=cache)
        assert cache.length == 5
        bare = KVCache(2)  # made by hand: no owner, the tensors still checked
        bare.layers[0].state = torch.zeros(2, 4, 8, 8)
        with pytest.raises(ValueError, match="holds a recurrent state"):
            decoder(x[:, :1], cache=bare)
        with pytest.raises(TypeError, match="cache must be a KVCache"):
            decoder(x, cache=[])
        ed = _model("encoder-decoder")
        cache = ed.new_cache()
        ed(x, source=x, cache=cache)
        with pytest.raises(ValueError, match="already holds the encoded source"):
            ed(x[:, :1], source=x.flip(1), cache=cache)
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        KVCache(0)


def test_generate_refuses_a_source_the_model_cannot_read():
    x = _ids(length=4)
    with pytest.raises(ValueError, match="source only applies to arch 'encoder-decoder', not 'decoder'"):
        generate(_model(), x, 3, source=x)
    with pytest.raises(ValueError, match="needs source"):
        generate(_model("encoder-decoder"), x, 3)
    for kwargs, message in [(dict(temperature=math.nan), "temperature must be a finite number"),
                            (dict(temperature=1.0, top_k=2.5), "top_k 2.5"), (dict(top_k=True), "top_k True")]:
        with pytest.raises(ValueError, match=message):
            generate(_model(), x, 3, **kwargs)
    with pytest.raises(ValueError, match="prompt must be a"):
        generate(_model(), [[1, 2]], 3)


def test_flops_refuse_a_source_without_an_encoder_and_lengths_past_the_model():
    cfg = small_config("decoder")
    assert accounting.forward_flops(cfg, 32) > 0 and accounting.generation_flops(cfg, 1, 31, True) > 0
    with pytest.raises(ValueError, match="source_len=7 only applies to arch 'encoder-decoder'"):
        accounting.forward_flops(cfg, 5, source_len=7)
    with pytest.raises(ValueError, match="n_past \\+ n_new = 0 \\+ 10000 = 10000 exceeds the model's max_len 32"):
        accounting.forward_flops(cfg, 10_000)
    with pytest.raises(ValueError, match="exceeds the model's max_len 32"):
        accounting.forward_flops(cfg, 1, 32)
    with pytest.raises(ValueError, match="source_len=40 exceeds"):
        accounting.forward_flops(small_config("encoder-decoder"), 1, source_len=40)
    with pytest.raises(ValueError, match="arch 'encoder' has no KV cache"):
        accounting.forward_flops(small_config("encoder"), 1, 3)
    with pytest.raises(ValueError, match="prompt_len \\+ new_tokens = 33"):
        accounting.generation_flops(cfg, 3, 30, False)
    with pytest.raises(ValueError, match="prompt_len must be >= 1"):
        accounting.generation_flops(cfg, 0, 3, True)
    with pytest.raises(ValueError, match="source_len=4 only applies"):
        accounting.kv_cache_bytes(cfg, 10, source_len=4)
    assert accounting.kv_cache_bytes(cfg, 4096) > 0  # a cache size is a formula: past max_len is allowed
    with pytest.raises(TypeError, match="cfg must be a ModelConfig"):
        accounting.parameter_count({"arch": "decoder"})
    with pytest.raises(ValueError, match="target must be a positive int"):
        accounting.matched_mlp_width(cfg, 0)


@pytest.mark.parametrize("lengths", [torch.tensor([1.5]), [1.5, 2.0], torch.tensor([True]), "12"])
def test_prefix_masks_refuse_lengths_that_are_not_integers(lengths):
    with pytest.raises((ValueError, TypeError), match="prefix_lens must"):
        masks.prefix_masks(lengths, 4)
    assert masks.prefix_masks([1, 2], 4).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="source_len 5 is longer than the sequence length n=4"):
        masks.visibility("encoder-decoder", 4, source_len=5)


def test_exact_match_refuses_a_prediction_of_another_length():
    logp = torch.zeros(3, 10)
    with pytest.raises(ValueError, match=r"\(len\(answer\), V\) = \(1, V\)"):
        nbce.exact_match(logp, [0])
    with pytest.raises(ValueError, match="answer must be a list of token ids, got str"):
        nbce.exact_match(logp, "abc")
    with pytest.raises(ValueError, match="at least 1 token"):
        nbce.exact_match(logp[:0], [])
    assert nbce.exact_match(logp, [0, 0, 0])


def test_prepare_checks_every_argument_before_changing_the_model():
    model = _model(position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu", bias=False)
    before = [type(m) for m in model.modules()]
    for kwargs, message in [(dict(rank=0), "rank must be a positive int"), (dict(alpha=1.5), "alpha must be"),
                            (dict(rank=True), "rank must be")]:
        with pytest.raises(ValueError, match=message):
            finetune.prepare(model, "qlora", **kwargs)
    assert [type(m) for m in model.modules()] == before  # not one layer converted
    with pytest.raises(ValueError, match="targets must be a non-empty list"):
        finetune.with_adapters(model, 4, 8, targets="down")
    assert [type(m) for m in model.modules()] == before


def test_greedy_continue_checks_room_before_feeding():
    model = _model()
    cache = model.new_cache()
    with pytest.raises(ValueError, match="0 cached \\+ 30 new \\+ up to 4 reply tokens fed = 34 positions"):
        serving.greedy_continue(model, cache, list(range(30)), 5)
    assert cache.length == 0  # nothing fed
    with pytest.raises(ValueError, match="new must be a list of token ids, got str"):
        serving.greedy_continue(model, cache, "abc", 2)
    with pytest.raises(ValueError, match="stop must be a collection"):
        serving.greedy_continue(model, cache, [1, 2], 2, stop=5)
    reply, _ = serving.greedy_continue(model, cache, list(range(30)), 3)
    assert len(reply) == 3 and cache.length == 32
    with pytest.raises(ValueError, match="user_turns must be a list"):
        serving.chat(model, lambda m: [1], lambda ids: "", "hello", 2)


@pytest.mark.parametrize("kwargs", [dict(megabytes=0), dict(megabytes=-1), dict(repeats=0), dict(megabytes=1.5)])
def test_copy_bandwidth_needs_a_positive_size_and_repeats(kwargs):
    with pytest.raises(ValueError, match="must be an int >= 1"):
        serving.copy_bandwidth(**kwargs)


# ---------------------------------------------------------------------------- errors that name the input
@pytest.mark.parametrize("call, error, message", [
    (lambda m: m(inputs_embeds=torch.randn(1, 5, 16)), ValueError, r"inputs_embeds must be a \(batch, length, 32\)"),
    (lambda m: m(inputs_embeds=torch.zeros(1, 5, 32, dtype=torch.long)), ValueError, "floating-point"),
    (lambda m: m(inputs_embeds=torch.randn(1, 40, 32)), ValueError, "exceeds the model's max_len"),
    (lambda m: m(_ids(batch=2, length=5), prefix_len=torch.tensor([1, 2, 3])), ValueError,
     "prefix_len holds 3 lengths but tokens have batch 2"),
    (lambda m: m(_ids(), source=[[1, 2]]), ValueError, "source must be a"),
])
def test_model_inputs_that_failed_inside_torch_are_named(call, error, message):
    arch = "encoder-decoder" if "source" in message else "prefix-lm" if "prefix_len" in message else "decoder"
    with pytest.raises(error, match=message):
        call(_model(arch))


def test_other_entry_points_name_the_bad_argument():
    from whydecoder.objectives import prefix_lm, span_corruption
    from whydecoder.positions import AbsolutePositions, Rotary, sinusoidal_table
    from whydecoder.train import TrainConfig, evaluate, lr_at

    with pytest.raises(ValueError, match="step must be an int >= 0, got -5"):
        lr_at(-5, TrainConfig())
    with pytest.raises(ValueError, match="batches must be a non-empty list"):
        evaluate(_model(), [])
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        sinusoidal_table(-1, 4)
    with pytest.raises(ValueError, match="even head_dim"):
        Rotary(5, 8, 100.0)
    with pytest.raises(ValueError, match="kind must be 'learned' or 'sinusoidal'"):
        AbsolutePositions("rope", 8, 4)
    chunks = _ids(batch=2, length=12)
    with pytest.raises(ValueError, match="prefix_len 2.5"):
        prefix_lm(chunks, "decoder", 2.5)
    with pytest.raises(ValueError, match="chunks must hold integer token ids"):
        prefix_lm(chunks.float(), "decoder", 3)
    for kwargs in (dict(rate=math.nan), dict(rate=-0.1), dict(mean_span=0.0)):
        with pytest.raises(ValueError, match="must be a number in"):
            span_corruption(chunks, "decoder", torch.Generator(), **kwargs)
    with pytest.raises(ValueError, match="context must be a list of token ids, got str"):
        nbce.prefill(_model(), "some text")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        serving.random_cache(_model(), 1, 4, seed=-1)
    with pytest.raises(TypeError, match="must be a whydecoder Transformer"):
        serving.expand_kv_heads(torch.nn.Linear(2, 2))


def _filled(model, x, **kwargs):
    cache = model.new_cache()
    with torch.no_grad():
        model(x, cache=cache, **kwargs)
    return cache


@pytest.mark.parametrize("call, error, message", [
    (lambda: nbce.nbce_pool(torch.zeros(2, 4), torch.full((4,), math.inf), 0.5), ValueError, "uncond_logprobs holds NaN"),
    (lambda: nbce.nbce_pool(torch.zeros(2, 4, dtype=torch.long), torch.zeros(4), 0.5), ValueError, "floating-point"),
    (lambda: nbce.answer_logprobs(_model(), [1], [1], [2]), ValueError, "cache must be a KVCache"),
    (lambda: nbce.answer_logprobs(_model(), None, "ab", "c"), ValueError, "question must be a list of token ids"),
    (lambda: generate(_model(), _ids(length=2), 2, temperature=math.inf), ValueError, "temperature must be a finite"),
    (lambda: generate(_model(), _ids(length=2), True), ValueError, "max_new_tokens must be an int >= 0, got True"),
    (lambda: unmask_generate(_model("encoder"), torch.tensor([[1, 2]]), 2, mask_id=39, temperature=math.nan),
     ValueError, "temperature must be a finite"),
    (lambda: positions.Rotary(4, 8, math.nan), ValueError, "base must be a finite"),
    (lambda: retention_chunk(*(torch.ones(1, 2, 3, 4, dtype=torch.long),) * 3, torch.ones(2)), ValueError,
     "q must be a floating-point tensor"),
    (lambda: retention_chunk(*(torch.ones(1, 2, 3, 4),) * 3, torch.ones(2), torch.zeros(1, 2, 4, 4, dtype=torch.float64)),
     ValueError, "state must be a torch.float32 tensor"),
    (lambda: naive_attention(torch.ones(1, 3, 4), torch.ones(1, 2, 5), torch.ones(1, 2, 5)), ValueError, "do not fit"),
    (lambda: tiled_attention(*(torch.ones(4),) * 3), ValueError, "q must be a floating-point tensor"),
    (lambda: wd.attention.attend(torch.ones(1, 3, 4, 8), torch.ones(1, 2, 4, 8), torch.ones(1, 2, 4, 8)), ValueError,
     "h a multiple of h_kv"),
    (lambda: peak_memory_bytes("naive", 8, d=0), ValueError,
     "d must be a positive int"),
    (lambda: trainer.lr_at(1.5, trainer.TrainConfig()),
     ValueError, "step must be an int"),
    (lambda: trainer.seed_everything(1.5), ValueError, "seed must be an int >= 0"),
    (lambda: trainer.train(_model(), lambda g: None, {"steps": 1}), TypeError,
     "cfg must be a TrainConfig"),
    (lambda: finetune.quantize_4bit(_model(), block=3), ValueError, "block must be one of"),
    (lambda: finetune.with_adapters(_model(), 4, 8, targets=()), ValueError, "targets must be a non-empty list"),
    (lambda: llama_gguf.unpermute_rope_rows(torch.zeros(8, 2), 0), ValueError,
     "n_heads must be a positive int"),
    (lambda: hf.from_hf_gpt2(torch.nn.Linear(2, 2)), ValueError,
     "expected a transformers GPT2LMHeadModel"),
    (lambda: _model()(_ids(length=1), cache=_filled(_model(n_kv_heads=2), _ids())), ValueError, "another model"),
    (lambda: _model()(_ids(length=1), cache=_filled(_model(position="rope"), _ids())), ValueError,
     "another model.*'position'"),
])
def test_bad_input_is_refused_with_its_name(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_cache_on_another_device_is_named():
    model, x = _model(), _ids(length=4)
    cache = _filled(model, x)
    for layer in cache.layers:
        layer.k, layer.v = layer.k.to("meta"), layer.v.to("meta")
    with pytest.raises(ValueError, match="the cache is on meta but the input is on cpu"):
        model(x[:, :1], cache=cache)
