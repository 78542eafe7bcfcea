import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder.probes import dependency_matrix, permutation_gap


@pytest.mark.parametrize("arch", wd.ARCHS)
def test_dependency_is_nonzero_exactly_where_visible(arch):
    model = wd.Transformer(small_config(arch, n_layers=2))
    source_len = 3 if arch in ("prefix-lm", "encoder-decoder") else None
    dep = dependency_matrix(model, 7, source_len=source_len)
    assert torch.equal(dep > 0, wd.visibility(arch, 7, source_len))


def test_bidirectional_nope_is_permutation_equivariant_and_causal_is_not():
    tokens = torch.randint(0, 40, (2, 10))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    enc = wd.Transformer(small_config("encoder", position="none"))
    dec = wd.Transformer(small_config("decoder", position="none"))
    assert permutation_gap(enc, tokens, perm) < 1e-5
    assert permutation_gap(dec, tokens, perm) > 1e-3
    enc_pos = wd.Transformer(small_config("encoder", position="learned"))
    assert permutation_gap(enc_pos, tokens, perm) > 1e-3


def test_probe_bad_input():
    model = wd.Transformer(small_config("prefix-lm"))
    with pytest.raises(ValueError, match="source_len=None"):
        dependency_matrix(model, 5)
    with pytest.raises(ValueError, match="not a permutation"):
        permutation_gap(model, torch.zeros(1, 3, dtype=torch.long), torch.tensor([0, 0, 1]), prefix_len=1)
