"""Our model against Hugging Face transformers' GPT-2 and BERT, carrying the same weights."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from whydecoder.generate import generate  # noqa: E402
from whydecoder.hf import from_hf_bert, from_hf_gpt2  # noqa: E402


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=3, n_embd=48, n_head=4, vocab_size=97, n_positions=40, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        num_hidden_layers=3, hidden_size=48, num_attention_heads=4, intermediate_size=96, vocab_size=97,
        max_position_embeddings=40,
    )
    return transformers.BertForMaskedLM(cfg).eval()


def test_gpt2_logits_match(gpt2):
    ours = from_hf_gpt2(gpt2).eval()
    tokens = torch.randint(0, 97, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), gpt2(tokens).logits, rtol=0, atol=1e-5)


def test_bert_masked_lm_logits_match(bert):
    ours = from_hf_bert(bert).eval()
    tokens = torch.randint(0, 97, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), bert(tokens).logits, rtol=0, atol=1e-5)


def test_gpt2_greedy_generation_matches_transformers(gpt2):
    ours = from_hf_gpt2(gpt2).eval()
    prompt = torch.randint(0, 97, (2, 5))
    reference = gpt2.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(ours, prompt, 12), reference)


def test_loaders_reject_unsupported_activation():
    cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=20, n_positions=8, activation_function="relu")
    with pytest.raises(ValueError, match="'relu'"):
        from_hf_gpt2(transformers.GPT2LMHeadModel(cfg))


@pytest.mark.parametrize("change", [{"scale_attn_weights": False}, {"scale_attn_by_inverse_layer_idx": True},
                                    {"reorder_and_upcast_attn": True}])
def test_gpt2_variants_the_block_does_not_implement_are_refused(change):
    """Each of these once loaded silently and returned logits off by about 2e-3."""
    cfg = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=20, n_positions=8, **change)
    with pytest.raises(ValueError, match=next(iter(change))):
        from_hf_gpt2(transformers.GPT2LMHeadModel(cfg))


def test_bert_variants_the_block_does_not_implement_are_refused():
    cfg = transformers.BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                                  vocab_size=20, max_position_embeddings=8, position_embedding_type="relative_key")
    with pytest.raises(ValueError, match="position_embedding_type"):
        from_hf_bert(transformers.BertForMaskedLM(cfg))
