import pytest
import torch

from whydecoder.masks import attention_mask, decode_mask, prefix_masks, visibility


def test_bidirectional_is_all_true():
    assert attention_mask("bidirectional", 5).all()


def test_causal_is_lower_triangle():
    m = attention_mask("causal", 4)
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_prefix_mask_is_bidirectional_inside_prefix_and_causal_after():
    m = attention_mask("prefix", 5, prefix_len=2)
    expected = torch.tensor(
        [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(m, expected)


@pytest.mark.parametrize("n", [1, 6])
def test_prefix_extremes(n):
    assert torch.equal(attention_mask("prefix", n, prefix_len=0), attention_mask("causal", n))
    assert torch.equal(attention_mask("prefix", n, prefix_len=n), attention_mask("bidirectional", n))
    assert torch.equal(attention_mask("prefix", n, prefix_len=1), attention_mask("causal", n))


def test_batched_prefix_masks_match_single():
    lens = torch.tensor([0, 3, 7])
    batched = prefix_masks(lens, 7)
    assert batched.shape == (3, 1, 7, 7)
    for b, p in enumerate(lens.tolist()):
        assert torch.equal(batched[b, 0], attention_mask("prefix", 7, prefix_len=p))


def test_decode_mask_rows_are_the_tail_of_the_full_mask():
    full = attention_mask("prefix", 8, prefix_len=3)
    assert torch.equal(decode_mask("prefix", 2, 6, prefix_len=3), full[6:])
    assert torch.equal(decode_mask("causal", 1, 4), torch.ones(1, 5, dtype=torch.bool))


def test_zero_length():
    assert attention_mask("causal", 0).shape == (0, 0)


def test_visibility_matches_masks():
    assert torch.equal(visibility("encoder", 4), attention_mask("bidirectional", 4))
    assert torch.equal(visibility("decoder", 4), attention_mask("causal", 4))
    assert torch.equal(visibility("encoder-decoder", 6, 2), attention_mask("prefix", 6, prefix_len=2))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: attention_mask("sideways", 3), "sideways"),
        (lambda: attention_mask("prefix", 3, prefix_len=5), "prefix_len 5"),
        (lambda: attention_mask("prefix", 3, prefix_len=-1), "-1"),
        (lambda: attention_mask("causal", -2), "-2"),
        (lambda: attention_mask("prefix", 3), "needs prefix_len"),
        (lambda: attention_mask("causal", 3, prefix_len=1), "prefix_len=1"),
        (lambda: prefix_masks(torch.tensor([2, 9]), 4), "prefix length 9"),
        (lambda: visibility("rnn", 3), "rnn"),
        (lambda: visibility("prefix-lm", 3), "source_len"),
    ],
)
def test_bad_input_names_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_integer_length_is_rejected():
    with pytest.raises(TypeError, match="2.5"):
        attention_mask("causal", 2.5)
