import pytest
import torch

import whydecoder as wd
from conftest import small_config
from whydecoder.objectives import batch_loss, full_lm, masked_lm, prefix_lm, span_corruption
from whydecoder.text import ByteTokenizer

TOK = ByteTokenizer()


def _chunks(batch=3, length=24, seed=0):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_full_lm_shifts_by_one():
    chunks = _chunks()
    b = full_lm(chunks)
    assert torch.equal(b.tokens, chunks[:, :-1]) and torch.equal(b.targets, chunks[:, 1:])
    assert b.loss_mask.all()


def test_prefix_lm_wiring_per_arch():
    chunks = _chunks()
    dec = prefix_lm(chunks, "decoder", 10)
    pre = prefix_lm(chunks, "prefix-lm", 10)
    ed = prefix_lm(chunks, "encoder-decoder", 10)
    # the same targets are scored in every wiring
    assert torch.equal(dec.targets[dec.loss_mask].view(3, -1), chunks[:, 10:])
    assert torch.equal(pre.targets[pre.loss_mask].view(3, -1), chunks[:, 10:])
    assert torch.equal(ed.targets, chunks[:, 10:])
    assert pre.prefix_len.tolist() == [10, 10, 10] and dec.prefix_len is None
    assert torch.equal(ed.source, chunks[:, :10]) and (ed.tokens[:, 0] == TOK.bos).all()
    assert torch.equal(ed.tokens[:, 1:], chunks[:, 10:-1])


def test_masked_lm_corrupts_only_picked_positions():
    chunks = _chunks(8, 200)
    b = masked_lm(chunks, torch.Generator().manual_seed(0))
    assert torch.equal(b.tokens[~b.loss_mask], chunks[~b.loss_mask])
    rate = b.loss_mask.float().mean().item()
    assert 0.12 < rate < 0.18
    masked = (b.tokens == TOK.mask)[b.loss_mask].float().mean().item()
    assert 0.7 < masked < 0.9


@pytest.mark.parametrize("arch", ["decoder", "prefix-lm", "encoder-decoder"])
def test_span_corruption_round_trips(arch):
    chunks = _chunks(4, 40)
    b = span_corruption(chunks, arch, torch.Generator().manual_seed(1))
    if arch == "encoder-decoder":
        inputs, targets = b.source, b.targets
    else:
        n_in = int(b.prefix_len[0]) if arch == "prefix-lm" else int((~b.loss_mask[0]).sum()) + 1
        full = torch.cat([b.tokens[:, :1], b.targets], dim=1)
        inputs, targets = full[:, :n_in], full[:, n_in:]
    for r in range(4):  # rebuild the original text from input + target
        spans, current = {}, None
        for t in targets[r].tolist():
            if t >= TOK.sentinel(0):
                current = t
                spans[current] = []
            else:
                spans[current].append(t)
        rebuilt = []
        for t in inputs[r].tolist():
            rebuilt += spans[t] if t >= TOK.sentinel(0) else [t]
        assert rebuilt == chunks[r].tolist()


def test_every_objective_trains_its_arch():
    chunks = _chunks(2, 20)
    g = torch.Generator().manual_seed(0)
    cases = [
        ("decoder", full_lm(chunks)),
        ("prefix-lm", prefix_lm(chunks, "prefix-lm", 7)),
        ("encoder-decoder", span_corruption(chunks, "encoder-decoder", g)),
        ("encoder", masked_lm(chunks, g)),
    ]
    for arch, batch in cases:
        model = wd.Transformer(small_config(arch, vocab_size=TOK.vocab_size))
        loss = batch_loss(model, batch)
        loss.backward()
        assert torch.isfinite(loss)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: full_lm(_chunks(), "encoder"), "does not apply to arch 'encoder'"),
        (lambda: prefix_lm(_chunks(), "decoder", 24), "prefix_len 24"),
        (lambda: prefix_lm(_chunks(), "decoder", 0), "prefix_len 0"),
        (lambda: masked_lm(_chunks(), torch.Generator(), rate=1.5), "1.5"),
        (lambda: span_corruption(_chunks(1, 400), "decoder", torch.Generator(), mean_span=1), "sentinels"),
        (lambda: full_lm(torch.zeros(3, dtype=torch.long)), "shape"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tokenizer_round_trip_and_errors():
    text = "héllo <world>"
    assert TOK.decode(TOK.encode(text)) == text
    assert TOK.decode([TOK.bos, 104, 105, TOK.sentinel(2)]) == "<bos>hi<extra_id_2>"
    with pytest.raises(ValueError, match="token id 999"):
        TOK.decode([999])
    with pytest.raises(ValueError, match="'<pad>'"):
        TOK.special("<pad>")
