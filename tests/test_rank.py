import math

import pytest
import torch

from whydecoder.rank import (
    COLLAPSE_VARIANTS,
    attention_probabilities,
    collapse_curve,
    condition_number,
    effective_rank,
    fit_attention,
    numerical_rank,
    random_attention,
    random_stochastic,
    rank_one_residual,
    row_kl,
    singular_values,
)


def test_effective_rank_of_identity_and_rank_one():
    assert effective_rank(torch.eye(7)) == pytest.approx(7)
    u = torch.randn(6, 1)
    assert effective_rank(u @ torch.randn(1, 5)) == pytest.approx(1, abs=1e-6)


def test_numerical_rank_and_condition_number():
    a = torch.diag(torch.tensor([1.0, 1e-3, 1e-12], dtype=torch.float64))
    assert numerical_rank(a) == 3  # float64: 1e-12 is above 3 * 2.2e-16
    assert numerical_rank(a, dtype=torch.float32) == 2  # float32 cannot tell 1e-12 from 0
    assert condition_number(a) == pytest.approx(1e12)
    assert condition_number(torch.zeros(2, 2) + torch.tensor([[1.0, 0], [0, 0]])) == math.inf
    assert singular_values(a).tolist() == pytest.approx([1.0, 1e-3, 1e-12])


def test_attention_rows_are_stochastic_and_causal_is_triangular():
    g = torch.Generator().manual_seed(0)
    for causal in (False, True):
        p = random_attention(10, 4, 1.0, causal, g)
        torch.testing.assert_close(p.sum(-1), torch.ones(10))
    assert (p.triu(1) == 0).all() and (p.diagonal() > 0).all()


def test_softmax_lifts_the_rank_above_d():
    """softmax(QK^T) with d = 2 has full numerical rank in float64 at moderate scale:
    the elementwise exponential does not keep the rank of QK^T."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(12, 2, generator=g, dtype=torch.float64), torch.randn(12, 2, generator=g, dtype=torch.float64)
    assert numerical_rank(q @ k.T) == 2
    assert numerical_rank(attention_probabilities(q, k, scale=4.0)) == 12


def test_random_stochastic_targets():
    g = torch.Generator().manual_seed(0)
    t = random_stochastic(8, True, g)
    torch.testing.assert_close(t.sum(-1), torch.ones(8, dtype=torch.float64))
    assert (t.triu(1) == 0).all()
    assert row_kl(t, t) == pytest.approx(0.0, abs=1e-12)


def test_fit_attention_succeeds_with_enough_head_size_and_not_with_too_little():
    g = torch.Generator().manual_seed(0)
    target = random_stochastic(8, False, g, concentration=0.3)
    big = fit_attention(target, d_head=8, causal=False, steps=600, lr=0.1)
    small = fit_attention(target, d_head=1, causal=False, steps=600, lr=0.1)
    assert big < 0.05 < small


def test_rank_collapse_of_pure_attention_and_its_prevention():
    pure = collapse_curve("attention", causal=False, depth=6, seed=0)
    skip = collapse_curve("attention+skip", causal=False, depth=6, seed=0)
    assert pure[-1] < 1e-3 * pure[0]
    assert skip[-1] > 0.1 * skip[0]
    assert rank_one_residual(torch.ones(4, 3)) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: numerical_rank(torch.ones(3)), "shape"),
        (lambda: numerical_rank(torch.eye(2), rtol=-1), "-1"),
        (lambda: effective_rank(torch.zeros(2, 2)), "zero matrix"),
        (lambda: random_attention(0, 2, 1.0, False, torch.Generator()), "n=0"),
        (lambda: random_stochastic(3, False, torch.Generator(), concentration=0), "concentration"),
        (lambda: fit_attention(torch.ones(2, 2) / 2, d_head=1, causal=True, steps=1), "above the diagonal"),
        (lambda: fit_attention(torch.ones(2, 3) / 3, d_head=1, causal=False), "square"),
        (lambda: collapse_curve("mlp only", False, 2), "'mlp only'"),
        (lambda: collapse_curve("attention", False, 0), "depth"),
        (lambda: attention_probabilities(torch.ones(3, 2), torch.ones(4, 2)), "q and k"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_all_variants_run_causal_and_bidirectional():
    for variant in COLLAPSE_VARIANTS:
        for causal in (False, True):
            curve = collapse_curve(variant, causal, depth=3, n=8, d=16)
            assert len(curve) == 4 and all(c >= 0 for c in curve)
