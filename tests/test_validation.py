"""Bad input at the package's boundary: each case fails with an error naming the value and
what was expected, instead of training, decoding or answering silently wrong. Grouped by
the module that validates it (training settings: test_train.py; stored results:
test_results.py; the ledger: test_ledger.py; loaders: test_hf_parity.py)."""

import math

import pytest
import torch

import whydecoder as wd
from conftest import arch_inputs, small_config
from whydecoder.accounting import kv_cache_bytes
from whydecoder.generate import unmask_generate
from whydecoder.model import sequence_loss
from whydecoder.text import ByteTokenizer


class TestModelConfig:
    @pytest.mark.parametrize("field, value", [
        ("rope_base", 0.0), ("rope_base", -10000.0), ("rope_base", math.nan), ("rope_base", math.inf),
        ("norm_eps", -1e-5), ("norm_eps", math.nan), ("norm_eps", 0.0), ("norm_eps", "1e-5"),
    ])
    def test_settings_that_gave_nan_or_garbage_logits_are_refused(self, field, value):
        with pytest.raises(ValueError, match=f"{field} must be a finite number > 0, got"):
            small_config("decoder", position="rope", **{field: value})

    def test_a_rope_base_of_one_would_give_every_dimension_the_same_frequency(self):
        with pytest.raises(ValueError, match="rope_base must be > 1"):
            small_config("decoder", position="rope", rope_base=1.0)

    @pytest.mark.parametrize("field, value", [("n_layers", True), ("d_model", 32.0), ("n_heads", 0), ("d_head", -2)])
    def test_sizes_must_be_positive_integers(self, field, value):
        with pytest.raises(ValueError, match=f"{field} must be a positive int"):
            small_config("decoder", **{field: value})

    @pytest.mark.parametrize("field", ["bias", "tie_embeddings", "final_norm"])
    def test_switches_must_be_booleans(self, field):
        with pytest.raises(ValueError, match=f"{field} must be True or False"):
            small_config("decoder", **{field: "no"})


class TestModelInputs:
    def test_source_and_target_batches_must_match(self):
        model = wd.Transformer(small_config("encoder-decoder"))
        tokens, kwargs = arch_inputs("encoder-decoder", batch=2)
        with pytest.raises(ValueError, match="source has batch 3 but tokens have batch 2"):
            model(tokens, source=torch.cat([kwargs["source"], kwargs["source"][:1]]))

    @pytest.mark.parametrize("prefix", [2.5, 2.0, -1, True, torch.tensor(2.5)])
    def test_a_prefix_length_must_be_a_whole_number(self, prefix):
        model = wd.Transformer(small_config("prefix-lm"))
        tokens, _ = arch_inputs("prefix-lm")
        with pytest.raises(ValueError, match="prefix_len must"):
            model(tokens, prefix_len=prefix)

    def test_a_per_example_prefix_tensor_must_hold_integers(self):
        model = wd.Transformer(small_config("prefix-lm"))
        tokens, _ = arch_inputs("prefix-lm", batch=2)
        with pytest.raises(ValueError, match="must hold integers"):
            model(tokens, prefix_len=torch.tensor([2.5, 3.0]))
        model(tokens, prefix_len=torch.tensor([2, 3]))  # integers work
        model(tokens, prefix_len=torch.tensor(3))


class TestSequenceLoss:
    def test_targets_of_minus_100_are_ignored_not_counted_as_zero(self):
        torch.manual_seed(0)
        logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
        ignored = targets.clone()
        ignored[:, 3:] = -100
        expected = sequence_loss(logits[:, :3], targets[:, :3])
        torch.testing.assert_close(sequence_loss(logits, ignored), expected)

    def test_ignore_index_and_loss_mask_combine(self):
        torch.manual_seed(0)
        logits, targets = torch.randn(1, 4, 7), torch.randint(0, 7, (1, 4))
        targets[0, 0] = -100
        mask = torch.tensor([[True, True, False, True]])
        expected = sequence_loss(logits[:, [1, 3]], targets[:, [1, 3]])
        torch.testing.assert_close(sequence_loss(logits, targets, mask), expected)

    @pytest.mark.parametrize("bad", [7, -5])
    def test_targets_outside_the_vocabulary_are_refused(self, bad):
        targets = torch.zeros(1, 3, dtype=torch.long)
        targets[0, 1] = bad
        with pytest.raises(ValueError, match=f"target id {bad} is outside the vocabulary"):
            sequence_loss(torch.randn(1, 3, 7), targets)

    def test_shapes_must_match(self):
        with pytest.raises(ValueError, match="do not match"):
            sequence_loss(torch.randn(1, 3, 7), torch.zeros(1, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="loss_mask"):
            sequence_loss(torch.randn(1, 3, 7), torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool))

    def test_nothing_selected_is_an_error(self):
        with pytest.raises(ValueError, match="select no position"):
            sequence_loss(torch.randn(1, 2, 7), torch.full((1, 2), -100))


class TestAccounting:
    @pytest.mark.parametrize("field, value", [("batch", -1), ("batch", 0), ("bytes_per_value", 0), ("batch", 1.5)])
    def test_a_cache_size_needs_a_positive_batch_and_width(self, field, value):
        with pytest.raises(ValueError, match=f"{field} must be an int >= 1"):
            kv_cache_bytes(small_config("decoder"), 10, **{field: value})

    def test_lengths_must_be_whole_numbers(self):
        with pytest.raises(ValueError, match="seq_len must be an int >= 0"):
            kv_cache_bytes(small_config("decoder"), True)


class TestTokenizer:
    def test_a_tokenizer_with_fewer_bytes_refuses_text_it_cannot_hold(self):
        tok = ByteTokenizer(n_bytes=128)
        assert tok.encode("abc") == [97, 98, 99]
        with pytest.raises(ValueError, match="byte 195 .* outside this tokenizer's 128 bytes"):
            tok.encode("é")

    @pytest.mark.parametrize("n", [0, 300, 2.0, True])
    def test_the_byte_count_is_checked(self, n):
        with pytest.raises(ValueError, match="n_bytes must be an int in \\[1, 256\\]"):
            ByteTokenizer(n_bytes=n)

    def test_encode_takes_text(self):
        with pytest.raises(ValueError, match="encode takes text, got bytes"):
            ByteTokenizer().encode(b"abc")


class TestUnmaskGenerate:
    def _model(self):
        return wd.Transformer(small_config("encoder", vocab_size=40)).eval()

    def test_a_mask_id_that_the_prompt_uses_is_refused(self):
        prompt = torch.tensor([[5, 6, 7]])
        with pytest.raises(ValueError, match="mask_id 6 occurs in the prompt"):
            unmask_generate(self._model(), prompt, 3, mask_id=6)

    @pytest.mark.parametrize("mask_id", [-1, 40, 2.0])
    def test_a_mask_id_outside_the_vocabulary_is_refused(self, mask_id):
        with pytest.raises(ValueError, match="mask_id must be a token id in \\[0, 40\\)"):
            unmask_generate(self._model(), torch.tensor([[5, 6]]), 2, mask_id=mask_id)

    def test_the_model_may_not_write_the_mask(self):
        with pytest.raises(ValueError, match="below allowed"):
            unmask_generate(self._model(), torch.tensor([[5, 6]]), 2, mask_id=30, allowed=35)
