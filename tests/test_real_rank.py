"""The real-attention rank measurements (second line of evidence for C03 and C04)."""

import pytest
import torch

from whydecoder.experiments import ch04_real_rank as rr
from whydecoder.experiments.ch04_lowrank import is_low_rank


def test_head_rows_read_the_rank_and_the_first_token_share():
    n = 8
    sink = torch.zeros(n, n)
    sink[:, 0] = 1.0  # every query looks at the first token: rank 1
    rows = rr.head_rows([torch.stack([torch.eye(n), sink])], "m", "causal", d_head=4)
    assert [r["numerical_rank"] for r in rows] == [n, 1]
    assert [r["first_token"] for r in rows] == [pytest.approx(1 / n), 1.0]
    assert [is_low_rank(r) for r in rows] == [False, True]
    assert all(r["n_over_d"] == 2 for r in rows)


def test_smoke_run_measures_every_head_at_every_length():
    results = rr.run("smoke", progress=False)
    s = rr.SETTINGS["smoke"]
    dec, enc = results["decoder"], results["encoder"]
    assert {r["n_over_d"] for r in dec} == {r["n_over_d"] for r in enc} == set(map(float, s.ratios))
    assert len(enc) == 6 * 12 * len(s.ratios)  # MiniLM: 6 layers of 12 heads
    assert all(r["n"] == r["n_over_d"] * r["d"] for r in dec + enc)
    shares = rr.low_rank_shares(results)
    assert set(shares) == {(r["model"], r["n_over_d"]) for r in dec + enc}
    assert all(0 <= v <= 1 for v in shares.values())


@pytest.mark.parametrize("change, match", [({"decoder": "gpt2"}, "decoder"), ({"ratios": ()}, "ratios"),
                                           ({"ratios": (0,)}, "ratios")])
def test_settings_refuse_bad_values(change, match):
    import dataclasses

    with pytest.raises(ValueError, match=match):
        dataclasses.replace(rr.SETTINGS["smoke"], **change)
