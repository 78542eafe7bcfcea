import pytest
import torch

import whydecoder as wd
from conftest import arch_inputs, small_config
from whydecoder.accounting import count_parameters


@pytest.mark.parametrize("arch", wd.ARCHS)
@pytest.mark.parametrize("position", wd.POSITIONS)
def test_every_arch_and_position_runs(arch, position):
    model = wd.Transformer(small_config(arch, position=position))
    tokens, kw = arch_inputs(arch)
    assert model(tokens, **kw).shape == (2, 9, 40)


def test_prefix_lm_with_empty_prefix_equals_decoder():
    torch.manual_seed(3)
    dec = wd.Transformer(small_config("decoder"))
    pre = wd.Transformer(small_config("prefix-lm"))
    pre.load_state_dict(dec.state_dict())
    tokens, _ = arch_inputs("decoder")
    torch.testing.assert_close(pre(tokens, prefix_len=0), dec(tokens), rtol=0, atol=1e-6)
    # ...and with a full prefix it is an encoder (same weights, bidirectional everywhere)
    enc = wd.Transformer(small_config("encoder"))
    enc.load_state_dict(dec.state_dict())
    torch.testing.assert_close(pre(tokens, prefix_len=tokens.shape[1]), enc(tokens), rtol=0, atol=1e-6)


def test_per_example_prefix_lengths_match_single_calls():
    model = wd.Transformer(small_config("prefix-lm"))
    tokens, _ = arch_inputs("prefix-lm", batch=3)
    lens = torch.tensor([1, 4, 9])
    batched = model(tokens, prefix_len=lens)
    for b, p in enumerate(lens.tolist()):
        torch.testing.assert_close(batched[b], model(tokens[b : b + 1], prefix_len=p)[0], rtol=0, atol=1e-5)


def test_causal_outputs_do_not_see_the_future():
    model = wd.Transformer(small_config("decoder"))
    tokens, _ = arch_inputs("decoder")
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 40
    torch.testing.assert_close(model(tokens)[:, :-1], model(changed)[:, :-1], rtol=0, atol=0)


def test_shared_encoder_decoder_shares_weights():
    shared = wd.Transformer(small_config("encoder-decoder", share_encoder_decoder=True))
    separate = wd.Transformer(small_config("encoder-decoder"))
    assert shared.decoder.blocks[0].attn is shared.encoder.blocks[0].attn
    assert count_parameters(shared) < count_parameters(separate)


def test_grouped_query_and_fixed_head_size():
    cfg = small_config("decoder", n_kv_heads=2, d_head=16)
    model = wd.Transformer(cfg)
    assert model.decoder.blocks[0].attn.k.out_features == 2 * 16
    assert model.decoder.blocks[0].attn.q.out_features == 4 * 16
    tokens, _ = arch_inputs("decoder")
    assert model(tokens).shape == (2, 9, 40)


def test_kept_attention_weights_equal_fused_path_and_are_row_stochastic():
    model = wd.Transformer(small_config("prefix-lm"))
    tokens, kw = arch_inputs("prefix-lm")
    fused = model(tokens, **kw)
    for block in model.decoder.blocks:
        block.attn.keep_weights = True
    explicit = model(tokens, **kw)
    torch.testing.assert_close(fused, explicit, rtol=0, atol=1e-5)
    w = model.decoder.blocks[0].attn.weights
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    mask = wd.attention_mask("prefix", 9, prefix_len=4)
    assert (w[..., ~mask] == 0).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(arch="rnn"), "unknown arch 'rnn'"),
        (dict(position="alibi"), "unknown position 'alibi'"),
        (dict(d_model=30, n_heads=4), "d_model=30 is not divisible by n_heads=4"),
        (dict(n_kv_heads=3), "n_kv_heads=3"),
        (dict(position="rope", d_head=5), "d_head=5"),
        (dict(n_layers=0), "n_layers"),
        (dict(n_encoder_layers=2), "only apply to 'encoder-decoder'"),
        (dict(arch="encoder-decoder", share_encoder_decoder=True, n_encoder_layers=3), "equal depths"),
    ],
)
def test_bad_config_names_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_config(overrides.pop("arch", "decoder"), **overrides)


def test_bad_inputs_name_the_value():
    dec = wd.Transformer(small_config("decoder"))
    with pytest.raises(ValueError, match="token id 40"):
        dec(torch.tensor([[1, 40]]))
    with pytest.raises(ValueError, match="token id -1"):
        dec(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="length 33 .* max_len 32"):
        dec(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="dtype"):
        dec(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="prefix_len only applies"):
        dec(torch.zeros(1, 3, dtype=torch.long), prefix_len=1)
    pre = wd.Transformer(small_config("prefix-lm"))
    with pytest.raises(ValueError, match="needs prefix_len"):
        pre(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix_len 5 is longer than the sequence length 3"):
        pre(torch.zeros(1, 3, dtype=torch.long), prefix_len=5)
    ed = wd.Transformer(small_config("encoder-decoder"))
    with pytest.raises(ValueError, match="needs source"):
        ed(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="token id 99 in source"):
        ed(torch.zeros(1, 3, dtype=torch.long), source=torch.tensor([[99]]))
    enc = wd.Transformer(small_config("encoder"))
    with pytest.raises(ValueError, match="no KV cache"):
        enc.new_cache()


def test_sequence_loss_respects_the_mask():
    logits = torch.randn(1, 3, 5)
    targets = torch.tensor([[1, 2, 3]])
    only_last = wd.sequence_loss(logits, targets, torch.tensor([[False, False, True]]))
    expected = torch.nn.functional.cross_entropy(logits[0, 2:], targets[0, 2:])
    torch.testing.assert_close(only_last, expected)
    with pytest.raises(ValueError, match="no position"):
        wd.sequence_loss(logits, targets, torch.zeros(1, 3, dtype=torch.bool))


# ---------------------------------------------------------------- the encoder-decoder's source positions


def _ed(cross_positions):
    from whydecoder.config import ModelConfig

    return ModelConfig(arch="encoder-decoder", vocab_size=20, max_len=32, d_model=32, n_heads=4, n_layers=1,
                       n_encoder_layers=1, position="rope", cross_positions=cross_positions)


def test_continued_positions_let_cross_attention_tell_where_each_source_byte_is():
    """With the book's first recipe, cross-attention sees the encoder's outputs as a set: it
    cannot tell which source byte is last. RedLLM's continued rotary positions can."""
    from whydecoder.attention import Attention

    torch.manual_seed(0)
    x, context = torch.randn(2, 3, 32), torch.randn(2, 7, 32)
    shuffled = context[:, torch.randperm(7)]
    for cross_positions, order_blind in (("none", True), ("continued", False)):
        attn = Attention(_ed(cross_positions), cross=True).eval()
        same = torch.allclose(attn(x, start=7, context=context), attn(x, start=7, context=shuffled), atol=1e-6)
        assert same == order_blind, cross_positions


def test_continued_positions_cache_exactly_and_cost_no_parameter():
    torch.manual_seed(0)
    model = wd.Transformer(_ed("continued")).eval()
    source, target = torch.randint(0, 20, (2, 7)), torch.randint(0, 20, (2, 6))
    whole = model(target, source=source)
    cache = model.new_cache()
    stepped = torch.cat([model(target[:, :3], source=source, cache=cache), model(target[:, 3:], cache=cache)], 1)
    assert (stepped - whole).abs().max() < 1e-5
    plain = wd.Transformer(_ed("none"))
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="run on past the model's max_len 32"):
        model(torch.randint(0, 20, (1, 20)), source=torch.randint(0, 20, (1, 20)))


@pytest.mark.parametrize("changes, message", [
    ({"cross_positions": "absolute"}, "unknown cross_positions 'absolute'"),
    ({"cross_positions": "continued", "position": "learned"}, "needs arch 'encoder-decoder' and position 'rope'"),
])
def test_continued_positions_need_an_encoder_decoder_with_rope(changes, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_ed("none"), **changes)
