"""NBCE (whydecoder.nbce) against Su's reference code and the model's own forward pass, and
the C17 experiment's documents and rule (driven to every outcome)."""

import dataclasses
import math
import random

import pytest
import torch

from conftest import one_line
from whydecoder.config import ModelConfig
from whydecoder.experiments import ch05_nbce as nb
from whydecoder.model import Transformer
from whydecoder.nbce import answer_logprobs, entropy, exact_match, nbce_pool, prefill, top_p_filter
from whydecoder.text import ByteTokenizer


def su_reference(logits: torch.Tensor, beta: float) -> torch.Tensor:
    """The core of Su's NBCE demo (github.com/bojone/NBCE, test.py), row 0 the context-free one."""
    from transformers import TopPLogitsWarper

    logits = logits - logits.logsumexp(dim=-1, keepdims=True)
    logits = TopPLogitsWarper(0.95)(None, logits)
    k = (logits.exp() * logits.clip(-100, 0)).sum(dim=-1)[1:].argmax() + 1
    logits_max, logits_uncond = logits[k], logits[0]
    merged = (1 + beta) * logits_max - beta * logits_uncond
    return torch.where(logits_uncond > -100, merged, logits_max)


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0])
def test_min_entropy_pooling_chooses_what_su_reference_chooses(beta):
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = torch.randn(5, 50, generator=g) * torch.tensor([1.0, 1, 3, 6, 2])[:, None]
        ours = nbce_pool(logits[1:], logits[0], beta)
        ref = su_reference(logits.clone(), beta)
        assert ours.argmax() == ref.argmax()
        finite = ref > -math.inf
        assert torch.equal(finite, ours > -math.inf)
        assert torch.allclose(ours[finite], ref[finite] - ref[finite].logsumexp(-1), atol=1e-5)


def test_top_p_keeps_the_smallest_nucleus_and_at_least_one_token():
    from transformers import TopPLogitsWarper

    logp = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = top_p_filter(logp, 0.7)
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logp, 0.01)).sum() == 1
    assert torch.equal(top_p_filter(logp, 1.0), logp)
    x = torch.randn(3, 40)
    assert torch.equal(torch.isfinite(top_p_filter(x.log_softmax(-1), 0.9)),
                       torch.isfinite(TopPLogitsWarper(0.9)(None, x.log_softmax(-1))))
    for bad in (0, 1.5, "0.9"):
        with pytest.raises(ValueError, match="top_p"):
            top_p_filter(logp, bad)


def test_entropy_of_uniform_and_certain_distributions():
    assert entropy(torch.full((8,), 1 / 8).log()).item() == pytest.approx(math.log(8))
    certain = torch.tensor([0.0, -math.inf, -math.inf])
    assert entropy(certain).item() == 0


def test_average_pooling_is_naive_bayes_with_beta():
    g = torch.Generator().manual_seed(1)
    chunks, uncond = torch.randn(3, 20, generator=g), torch.randn(20, generator=g)
    beta = 0.5
    expect = ((1 + beta) * chunks.log_softmax(-1).mean(0) - beta * uncond.log_softmax(-1)).log_softmax(-1)
    assert torch.allclose(nbce_pool(chunks, uncond, beta, "average"), expect, atol=1e-6)
    one = nbce_pool(chunks[:1], uncond, 0.0, "min_entropy", top_p=None)
    assert torch.allclose(one, chunks[0].log_softmax(-1), atol=1e-6)


def test_min_entropy_reads_the_confident_chunk():
    vague, sure = torch.zeros(10), torch.full((10,), -5.0)
    sure[7] = 5.0
    pooled = nbce_pool(torch.stack([vague, sure, vague]), torch.zeros(10), 0.25)
    assert pooled.argmax() == 7


def test_pooling_refuses_bad_input():
    chunks, uncond = torch.zeros(2, 5), torch.zeros(5)
    with pytest.raises(ValueError, match="beta"):
        nbce_pool(chunks, uncond, -0.1)
    with pytest.raises(ValueError, match="pooling"):
        nbce_pool(chunks, uncond, 0.2, "max")
    with pytest.raises(ValueError, match=r"\(n, V\)"):
        nbce_pool(chunks, torch.zeros(4), 0.2)


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    return Transformer(ModelConfig(arch="decoder", vocab_size=30, max_len=64, d_model=16, n_heads=2, n_layers=2,
                                   position="rope")).eval()


def test_a_forked_cache_gives_the_uncached_logits_and_stays_as_it_was(decoder):
    context, question, answer = list(range(1, 20)), [3, 4, 5], [6, 7, 8]
    cache = prefill(decoder, context)
    first = answer_logprobs(decoder, cache, question, answer)
    again = answer_logprobs(decoder, cache, question, answer)
    assert cache.length == len(context)
    full = decoder(torch.tensor([context + question + answer[:-1]]))[0, -len(answer):].log_softmax(-1)
    assert torch.allclose(first, full, atol=1e-5) and torch.equal(first, again)
    copy = cache.fork()
    decoder(torch.tensor([[1, 2]]), cache=copy)
    assert copy.length == cache.length + 2 and cache.length == len(context)
    alone = answer_logprobs(decoder, None, question, answer)
    assert torch.allclose(alone, decoder(torch.tensor([question + answer[:-1]]))[0, -3:].log_softmax(-1), atol=1e-5)


def test_exact_match_needs_every_answer_token(decoder):
    logp = torch.full((2, 5), -9.0)
    logp[0, 1] = logp[1, 3] = 0.0
    assert exact_match(logp, [1, 3]) and not exact_match(logp, [1, 2])
    with pytest.raises(ValueError, match="at least one token"):
        answer_logprobs(decoder, None, [], [1])


def test_prefill_refuses_other_architectures():
    enc = Transformer(ModelConfig(arch="encoder-decoder", vocab_size=30, max_len=32, d_model=16, n_heads=2, n_layers=1))
    with pytest.raises(ValueError, match="decoder-only"):
        prefill(enc, [1, 2])


# ---------------------------------------------------------------------------- the experiment
@pytest.fixture(scope="module")
def reader():
    s = nb.SETTINGS["smoke"]
    return nb.Reader(Transformer(ModelConfig(arch="decoder", vocab_size=ByteTokenizer().vocab_size, max_len=s.window,
                                             d_model=16, n_heads=2, n_layers=1)), ByteTokenizer().encode, s)


@pytest.mark.parametrize("factor", nb.FACTORS)
def test_documents_hide_each_answer_in_the_window_they_name(reader, factor):
    tok = ByteTokenizer()
    rng = random.Random(0)
    for task in nb.TASKS:
        for _ in range(5):
            doc = nb.make_document(reader, task, factor, rng)
            assert len(doc["chunks"]) == factor
            filler = reader.passkey_chunk(None, rng)[0]
            for q in doc["questions"]:
                key = tok.decode(q["answer"]).strip()
                window = doc["chunks"][q["chunk"]] or filler
                assert len(window) == reader.chunk_len
                said = f"key is {key}." if task == "passkey" else f"door is {key}."
                assert said in tok.decode(window)
                others = [c or filler for i, c in enumerate(doc["chunks"]) if i != q["chunk"]]
                assert all(said not in tok.decode(c) for c in others)
                assert len(window) + len(q["question"]) + len(q["answer"]) - 1 <= reader.s.window
                assert 0 <= q["depth"] < 1 and int(q["depth"] * factor) == q["chunk"]


def test_a_window_too_small_for_the_facts_is_refused():
    s = dataclasses.replace(nb.SETTINGS["smoke"], window=90)
    with pytest.raises(ValueError, match="too few"):
        nb.Reader(None, ByteTokenizer().encode, s)


@pytest.mark.parametrize("change, match", [({"model": "gpt"}, "model"), ({"docs": 0}, "docs"),
                                           ({"facts_per_chunk": 4}, "colours"), ({"betas": ()}, "betas"),
                                           ({"tiny_steps": 0}, "tiny_steps")])
def test_settings_refuse_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(nb.SETTINGS["smoke"], **change)


def test_smoke_run_reads_every_section_with_every_method():
    results = nb.run("smoke", progress=False)
    table = nb.accuracy_table(results)
    assert set(table) == set(nb.SECTIONS)
    for name in nb.SECTIONS:
        assert set(table[name]) == set(nb.methods(nb.SETTINGS["smoke"]))
        assert all(0 <= v <= 1 for v in table[name].values())
    verdict = nb.RULES["C17"](results)
    assert verdict.outcome == "inconclusive"  # two documents per cell, fewer than the rule asks for


# ---------------------------------------------------------------------------- the rule
def _results(cells: dict, docs: int | None = None) -> dict:
    """Synthetic results: per section, ``(truncation, oracle, nbce)`` accuracy patterns per
    document (0, 0.5 or 1: two questions each), over as many documents as the full scale
    reads (or ``docs``)."""
    full = nb.SETTINGS["full"]
    method = nb.RULES["C17"].parameters["method"]
    out = {}
    for name in nb.SECTIONS:
        pattern = cells.get(name, cells.get("*"))
        rows = []
        for i in range(docs or (full.passkey_docs if name.startswith("passkey") else full.docs)):
            trunc, oracle, nbce = (p[i % len(p)] for p in pattern)
            rows.append({"doc": i, "questions": [{"correct": {"truncation": trunc > q, "oracle": oracle > q,
                                                              method: nbce > q}} for q in (0.25, 0.75)]})
        out[name] = {"docs": rows}
    return out


READS = ([0, 0, 1], [1], [1])       # truncation right a third of the time, oracle and NBCE always
FAILS = ([0], [1], [0])             # NBCE no better than truncation, which the oracle beats
SHORT = ([0], [1], [0.5])           # NBCE far above truncation, but half short of the oracle
UNCLEAR = ([0], [1], [1, 0])          # over the 8 documents of a doors cell: NBCE could read, fall short or fail
CANNOT = ([0, 1], [0, 1], [0])      # the oracle no better than truncation: the right window makes no difference
MISSES = ([0], [1], [0.5, 0])       # over 8 documents: a gain over truncation unclear, the oracle far above
SAME = ([1], [1], [1])              # truncation already right: the cell cannot tell readers apart


@pytest.mark.parametrize("cells, outcome", [
    ({"*": READS}, "supported"),
    ({"*": FAILS}, "refuted"),
    ({"*": READS, "doors x4": SHORT}, "nuanced"),
    ({"*": READS, "doors x2": FAILS}, "nuanced"),
    ({"*": READS, "doors x4": UNCLEAR}, "inconclusive"),     # the unclear cell could still read, or not
    ({"*": FAILS, "doors x4": UNCLEAR}, "inconclusive"),
    ({"*": UNCLEAR, "doors x2": SHORT}, "nuanced"),           # a cell falls short: neither outcome is left open
    ({"*": READS, "doors x4": MISSES}, "nuanced"),            # unclear gain, but far below the oracle: cannot read
    ({"*": CANNOT}, "inconclusive"),
    ({"*": SAME}, "inconclusive"),
    ({"*": CANNOT, "passkey x2": READS}, "inconclusive"),       # only 2 windows could be told
    ({"*": CANNOT, "passkey x2": READS, "doors x4": READS}, "supported"),
    ({"*": CANNOT, "passkey x2": READS, "passkey x4": SHORT}, "nuanced"),
])
def test_c17_rule_reaches_every_outcome(cells, outcome):
    verdict = nb.RULES["C17"](_results(cells))
    assert verdict.outcome == outcome, verdict.reason


def test_c17_unclear_cells_say_what_they_could_be():
    verdict = nb.RULES["C17"](_results({"*": READS, "doors x4": MISSES}))
    assert "doors x4: unclear (fails or falls short)" in verdict.reason
    assert verdict.numbers["possible"]["doors x4"] == ["fails", "falls short"]


def test_c17_rule_needs_enough_documents():
    verdict = nb.RULES["C17"](_results({"*": READS}, docs=4))
    assert verdict.outcome == "inconclusive" and "fewer than the 8" in verdict.reason


def test_c17_reason_says_which_cells_count():
    verdict = nb.RULES["C17"](_results({"*": CANNOT, "passkey x2": READS, "doors x4": READS}))
    assert verdict.outcome == "supported"
    assert "(passkey x2: reads; doors x4: reads; 2 of 4 cells count)" in verdict.reason
    assert verdict.reason.endswith("; passkey x4, doors x2 not counted (the oracle not 0.1 above truncation)")
    assert "not counted" not in nb.RULES["C17"](_results({"*": READS})).reason
    alone = nb.RULES["C17"](_results({"*": CANNOT, "passkey x2": READS}))
    assert "only at 2 windows does a cell count" in alone.reason


def test_c17_says_what_an_unclear_cell_could_still_make_it():
    verdict = nb.RULES["C17"](_results({"*": CANNOT, "doors x2": UNCLEAR, "doors x4": UNCLEAR}))
    assert verdict.outcome == "inconclusive" and "could still make every cell read or fail" in verdict.reason




@pytest.mark.parametrize("cells, docs, says", [
    ({"*": READS, "doors x4": SHORT}, None,
     "all four cells counted (the oracle beat truncation by the margin), at both lengths; 8-24 documents per cell; "
     "read: three reads, one falls short"),
    ({"*": CANNOT, "passkey x2": READS}, None, "one of four cells counted (the oracle beat truncation by the margin), "
                                               "at 2 windows only"),
    ({"*": CANNOT}, None, "nothing compared: none of the four cells counted"),
    ({"*": READS}, 4, "nothing compared: four documents, fewer than the 8 the rule asks for"),
])
def test_c17_evidence_says_what_the_verdict_rests_on(cells, docs, says):
    from whydecoder.results import settings_dict

    results = _results(cells, docs) | {"settings": settings_dict(nb.SETTINGS["full"])}
    assert says in one_line(nb.c17_evidence(results, nb.RULES["C17"](results)).rests_on)
