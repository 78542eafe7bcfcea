"""C14 machinery: the random-rate masked LM objective, generation by unmasking, the
left-to-right loss of both kinds of model, filling a blank, the word check and the verdict."""

import pytest
import torch

from conftest import one_line
from whydecoder.config import ModelConfig
from whydecoder.experiments import ch03_unmasking as u
from whydecoder.generate import unmask_generate
from whydecoder.model import Transformer, sequence_loss
from whydecoder.objectives import random_rate_masked_lm
from whydecoder.text import ByteTokenizer, with_bos

TOK = ByteTokenizer()


def model(arch, length=16):
    torch.manual_seed(0)
    return Transformer(ModelConfig(arch=arch, d_model=32, n_heads=2, n_layers=2, max_len=length)).eval()


def rows(batch=3, length=16, seed=0):
    return with_bos(torch.randint(97, 123, (batch, length - 1), generator=torch.Generator().manual_seed(seed)))


def test_random_rate_masked_lm_masks_at_varied_rates():
    chunks = torch.randint(0, 256, (64, 50), generator=torch.Generator().manual_seed(0))
    b = random_rate_masked_lm(chunks, torch.Generator().manual_seed(1))
    assert torch.equal(b.loss_mask, b.tokens == TOK.mask) and torch.equal(b.targets, chunks)
    assert torch.equal(b.tokens[~b.loss_mask], chunks[~b.loss_mask])
    rates = b.loss_mask.float().mean(1)
    assert rates.min() < 0.2 and rates.max() > 0.8 and (b.loss_mask.sum(1) >= 1).all()


class _Oracle(torch.nn.Module):
    """An 'encoder' that predicts token 97 + position everywhere, most confident at the end."""

    def __init__(self, length):
        super().__init__()
        self.cfg = ModelConfig(arch="encoder", max_len=length)
        self.order = []

    def forward(self, tokens):
        b, t = tokens.shape
        self.order.append((tokens == TOK.mask).sum().item())
        logits = torch.zeros(b, t, self.cfg.vocab_size)
        logits[:, torch.arange(t), 97 + torch.arange(t)] = 1.0 + torch.arange(t, dtype=torch.float)
        return logits


def test_unmask_generate_fills_every_mask_one_per_step():
    oracle = _Oracle(10)
    prompt = torch.full((2, 4), 120)
    out = unmask_generate(oracle, prompt, 6, mask_id=TOK.mask)
    assert torch.equal(out[:, :4], prompt)
    assert torch.equal(out[0, 4:], 97 + torch.arange(4, 10))
    assert oracle.order == [12, 10, 8, 6, 4, 2]  # one mask per row filled at each step


def test_unmask_generate_with_a_real_encoder_and_bad_input():
    enc = model("encoder")
    out = unmask_generate(enc, rows()[:, :6], 10, mask_id=TOK.mask, allowed=256, temperature=1.0,
                          generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 16) and (out[:, 6:] < 256).all()
    with pytest.raises(ValueError, match="needs a bidirectional 'encoder', got arch 'decoder'"):
        unmask_generate(model("decoder"), rows()[:, :6], 4, mask_id=TOK.mask)
    with pytest.raises(ValueError, match="exceeds the model's max_len 16"):
        unmask_generate(enc, rows()[:, :6], 11, mask_id=TOK.mask)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1, got 0"):
        unmask_generate(enc, rows()[:, :6], 0, mask_id=TOK.mask)


def test_left_to_right_nll_decoder_matches_one_token_at_a_time():
    dec, r = model("decoder"), rows()
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(dec(r[:, :t])[:, -1], r[:, t]) for t in range(5, 16)]
    assert u.left_to_right_nll(dec, r, 5) == pytest.approx(float(torch.stack(losses).mean()), abs=1e-5)


def test_left_to_right_nll_encoder_masks_the_future():
    enc, r = model("encoder"), rows()
    tokens = r.clone()
    tokens[:, 15:] = TOK.mask
    with torch.no_grad():
        last = torch.nn.functional.cross_entropy(enc(tokens)[:, 15], r[:, 15])
    assert u.left_to_right_nll(enc, r, 15) == pytest.approx(float(last), abs=1e-5)
    with pytest.raises(ValueError, match="prompt 16 must leave a non-empty continuation"):
        u.left_to_right_nll(enc, r, 16)


def test_fill_blank_with_right_context_is_the_most_likely_whole_text():
    dec, r = model("decoder"), rows(batch=2)
    candidates = torch.arange(97, 123)
    guess = u.fill_blank(dec, r, 7, candidates)
    for i in range(2):
        totals = []
        for c in candidates:
            x = r[i : i + 1].clone()
            x[0, 7] = c
            with torch.no_grad():
                totals.append(-sequence_loss(dec(x[:, :-1]), x[:, 1:]).item())
        assert guess[i] == candidates[torch.tensor(totals).argmax()]
    left = u.fill_blank(dec, r, 7, candidates, use_right_context=False)
    with torch.no_grad():
        assert torch.equal(left, candidates[dec(r[:, :7])[:, -1, candidates].argmax(-1)])
    with pytest.raises(ValueError, match="blank position 16 is outside"):
        u.fill_blank(dec, r, 16, candidates)


def test_fill_blank_encoder_reads_the_masked_position():
    enc, r = model("encoder"), rows(batch=2)
    candidates = torch.arange(97, 123)
    x = r.clone()
    x[:, 4] = TOK.mask
    with torch.no_grad():
        expected = candidates[enc(x)[:, 4, candidates].argmax(-1)]
    assert torch.equal(u.fill_blank(enc, r, 4, candidates), expected)


def test_real_words_counts_words_of_the_corpus_per_text():
    vocab = {"the", "function", "returns"}
    assert u.real_words(["ction returns the valuX"], vocab) == 2  # cut words at the ends do not count
    assert u.real_words(["xx the qzqz function yy", "   ..  |  "], vocab) == pytest.approx(1.0)
    assert u.real_words(["a b"], vocab) == 0
    with pytest.raises(ValueError, match="no texts"):
        u.real_words([], vocab)
    assert "returns" in u.corpus_vocabulary(torch.tensor(list(b"it returns a value")))


def fake_results(bert_nll=2.2, rr_nll=1.7, bert_words=0.5, bert_blank=0.6, causal_blank=0.5, causal_nll=1.6,
                 seeds=5, wobble=0.0, blank_base=0.25):
    out = {"baseline": {"nll": 3.2, "blank": blank_base}}
    for name, nll, words, blank in (("causal LM", causal_nll, 0.8, causal_blank),
                                    ("masked LM (15%)", bert_nll, bert_words, bert_blank),
                                    ("masked LM (random rate)", rr_nll, 0.7, 0.55)):
        extra = wobble if name == "masked LM (15%)" else 0.0
        out[name] = [{"variant": name, "seed": s, "nll": nll + 0.01 * s + extra * (-1) ** s, "real_words": words,
                      "blank_accuracy": blank + 0.01 * s + 0.002 * s * (name == "masked LM (15%)")}
                     for s in range(seeds)]
    return out


@pytest.mark.parametrize("changes, verdict", [
    ({"rr_nll": 2.0}, "supported"),
    ({}, "nuanced"),  # the random-rate masked LM generates about as well
    ({"rr_nll": 2.0, "bert_blank": 0.45}, "nuanced"),  # the encoder does not win the blanks
    ({"bert_nll": 1.65}, "refuted"),  # generates about as well (inside the margin)
    ({"bert_nll": 1.5}, "refuted"),  # generates better
    ({"bert_nll": 1.76, "wobble": 0.3}, "inconclusive"),  # the interval straddles the margin
    ({"causal_nll": 3.0}, "inconclusive"),  # the causal LM learned nothing: no comparison
    ({"blank_base": 0.7}, "inconclusive"),  # nobody beats guessing the commonest byte
    ({"seeds": 3}, "inconclusive"),
])
def test_c14_rule_reaches_every_outcome(changes, verdict):
    assert u.RULES["C14"](fake_results(**changes)).outcome == verdict


def test_smoke_run_is_complete():
    res = u.run("smoke", progress=False)
    seeds = u.SETTINGS["smoke"].seeds
    assert all(len(res[name]) == len(seeds) for name in u.VARIANTS)
    params = {r["parameters"] for name in u.VARIANTS for r in res[name]}
    assert len(params) == 1  # equal parameters
    assert all(len(r["samples"]) > 0 for name in u.VARIANTS for r in res[name])
    assert "blank_accuracy_left_only" in res["causal LM"][0]


@pytest.mark.parametrize("changes, says", [
    ({"rr_nll": 2.0}, "three models, five seeds each; the causal LM past the unigram gate, both models past the blank "
                      "gate; decided by three paired readings (generation, rescue, blanks)"),
    ({"bert_nll": 1.65}, "; decided by one paired reading (generation)"),
    ({"causal_nll": 3.0}, "nothing compared: the causal LM did not pass the unigram gate"),
    ({"blank_base": 0.7}, "nothing compared: the causal LM past the unigram gate, neither model past the blank gate"),
    ({"seeds": 3}, "nothing compared: three seeds, fewer than the 5 the rule asks for"),
])
def test_c14_evidence_says_what_the_verdict_rests_on(changes, says):
    from whydecoder.results import settings_dict

    results = fake_results(**changes) | {"settings": settings_dict(u.SETTINGS["full"])}
    for name in u.VARIANTS:
        results[name] = [dict(r, blank_accuracy_left_only=0.4) for r in results[name]]
    assert says in one_line(u.c14_evidence(results, u.RULES["C14"](results)).rests_on)
