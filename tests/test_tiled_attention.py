"""Tiled attention with an online softmax equals naive attention and PyTorch's fused kernel."""

import pytest
import torch
import torch.nn.functional as F

from whydecoder.tiled_attention import naive_attention, score_bytes, tiled_attention


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tq, tk, block_q, block_k", [(50, 50, 16, 16), (37, 37, 64, 7), (5, 40, 4, 16), (1, 33, 8, 8)])
def test_tiles_give_the_softmax_of_the_whole_row(causal, tq, tk, block_q, block_k):
    g = torch.Generator().manual_seed(tq * tk + block_k)
    q, k, v = (torch.randn(2, 3, t, 16, generator=g, dtype=torch.float64) for t in (tq, tk, tk))
    ours = tiled_attention(q, k, v, causal, block_q, block_k)
    assert torch.allclose(ours, naive_attention(q, k, v, causal), atol=1e-12)
    if not causal or tq == tk:  # SDPA's causal mask is aligned to the top left
        assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-12)


def test_large_logits_do_not_overflow():
    q = torch.full((1, 8, 4), 30.0)
    k = torch.full((1, 8, 4), 30.0)
    v = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(0))
    out = tiled_attention(q, k, v, block_q=3, block_k=3)
    assert torch.isfinite(out).all() and torch.allclose(out, v.mean(dim=-2, keepdim=True).expand_as(v), atol=1e-5)


def test_bad_shapes_and_blocks_are_refused():
    q = torch.zeros(1, 4, 8)
    with pytest.raises(ValueError, match="block_k"):
        tiled_attention(q, q, q, block_k=0)
    with pytest.raises(ValueError, match="do not fit"):
        tiled_attention(q, torch.zeros(1, 4, 6), torch.zeros(1, 4, 6))


def test_the_tile_holds_far_fewer_scores_than_the_matrix():
    assert score_bytes(4096, 4096) == 4096 * 4096 * 4
    assert score_bytes(4096, 4096, block_q=64, block_k=64) == 64 * 64 * 4
    assert score_bytes(4096, 4096, heads=8, batch=2) == 8 * 2 * score_bytes(4096, 4096)


def test_the_naive_call_raises_the_peak_by_about_its_score_matrix():
    from whydecoder.tiled_attention import peak_memory_bytes

    length, heads = 2048, 4
    naive = peak_memory_bytes("naive", length, heads=heads)
    tiled = peak_memory_bytes("tiled", length, heads=heads)
    matrix = score_bytes(length, length, heads=heads)  # 64 MiB of float32 scores
    assert naive > matrix  # the scores, their softmax and the mask all live at once
    assert tiled < matrix / 2
    with pytest.raises(ValueError, match="method"):
        peak_memory_bytes("flash", 8)
