"""What the papers at scale say about each claim, beside our small models' verdict.

Our experiments test mechanisms on models of thousands to hundreds of thousands of
parameters; the papers that compared these architectures at 100M-100B parameters are the
evidence at scale. :data:`AT_SCALE` declares, for each claim a paper at scale addresses,
which papers (their numbers in ``data/papers/``), at what sizes, what they found (a sentence
whose numbers are read from those files) and how that reads as a verdict on the claim.
:func:`relation` compares it with ours: ``agrees``, ``disagrees``, ``mixed``, or ``not tested
at scale``, the ledger's ``at_scale`` column.

Explained in "The claims ledger" (at scale).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from .papers import UNCHECKED, published, value

RELATIONS = ("agrees", "disagrees", "mixed", "part of ours", "not tested at scale")
READINGS = ("supported", "refuted", "nuanced")


@dataclass(frozen=True)
class AtScale:
    """One claim at scale: the papers (``data/papers/`` names), the sizes they span in
    words, how their findings read as a verdict on the claim (:data:`READINGS`), and
    ``finding``, which writes the finding with its numbers read from the papers' files;
    ``summary``: the finding in a few words, for the landing page; ``within``: the paper's
    numbers are among what our own rule reads, so they are part of our verdict, not a
    second line beside it. Defined in "The claims ledger"."""

    papers: tuple[str, ...]
    sizes: str
    reading: str
    finding: Callable[[], str]
    summary: str = ""
    within: bool = False

    def __post_init__(self):
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, got {self.reading!r}")
        if not self.papers or not all(isinstance(p, str) for p in self.papers):
            raise ValueError(f"papers must name files of data/papers, got {self.papers!r}")


def _v(paper: str, row: str, column: str, table: str | None = None) -> str:
    """One published number as the paper prints it (``39.0``, ``1.6``), read from its file;
    ``table`` picks one where the paper states it twice."""
    frame = _printed(paper)
    hit = frame[(frame["row"] == row) & (frame["column"] == column)]
    if table is not None:
        hit = hit[hit["table"] == table]
    if len(hit) != 1:
        raise ValueError(f"{len(hit)} numbers at row {row!r}, column {column!r} of {paper}; expected one")
    value(published(paper).loc[hit.index], row, column)  # the checked reading: a finite number
    return hit["value"].iloc[0]


@functools.lru_cache(maxsize=None)
def _printed(paper: str):
    """The paper's file with its values as printed (strings)."""
    import pandas as pd

    from .papers import PAPERS_DIR

    return pd.read_csv(PAPERS_DIR / f"{paper}.csv", dtype=str, keep_default_na=False)


def _c02() -> str:
    w, t = "wang2022_zeroshot", "raffel2020_t5"
    return (f"Wang et al.: the non-causal (prefix-LM) decoder against the causal one, after pretraining "
            f"{_v(w, 'ND:PLM', 'EAI-Eval, after pretraining')} vs {_v(w, 'CD:FLM', 'EAI-Eval, after pretraining')} "
            f"(EAI-Eval); after multitask finetuning {_v(w, 'ND:PLM', 'EAI-Eval, after multitask finetuning')} vs "
            f"{_v(w, 'CD:FLM', 'EAI-Eval, after multitask finetuning')} (EAI-Eval) but "
            f"{_v(w, 'ND:PLM', 'T0-Eval, after multitask finetuning')} vs "
            f"{_v(w, 'CD:FLM', 'T0-Eval, after multitask finetuning')} (T0-Eval). Both suites are prompted tasks "
            "scored by the likeliest answer, not open generation, and the two cells differ in objective (prefix "
            "against full language modelling) as well as in mask. T5's Table 2 (Raffel et al., BERT-base-sized "
            "stacks, equal parameters and FLOPs) has the prefix LM ahead of the decoder-only language model on "
            f"CNN/Daily Mail summarisation, a generation task: {_v(t, 'Prefix LM, Denoising', 'CNNDM')} against "
            f"{_v(t, 'Language model, Denoising', 'CNNDM')} ROUGE-2 with the denoising objective, "
            f"{_v(t, 'Prefix LM, LM', 'CNNDM')} against {_v(t, 'Language model, LM', 'CNNDM')} with language "
            "modelling")


def _c09() -> str:
    w = "wang2022_zeroshot"
    return (f"Wang et al. (168B tokens): after self-supervised pretraining only, the causal decoder with full LM "
            f"scores {_v(w, 'CD:FLM', 'EAI-Eval, after pretraining')} on EAI-Eval, the non-causal decoder "
            f"{_v(w, 'ND:PLM', 'EAI-Eval, after pretraining')}, the encoder-decoder "
            f"{_v(w, 'ED:PLM', 'EAI-Eval, after pretraining')}")


def _c10() -> str:
    w, g = "wang2022_zeroshot", "zhang2025_t5gemma"
    return (f"Wang et al.: after multitask finetuning the encoder-decoder with masked LM leads on T0-Eval "
            f"({_v(w, 'ED:MLM', 'T0-Eval, after multitask finetuning')} vs "
            f"{_v(w, 'CD:FLM', 'T0-Eval, after multitask finetuning')} for the causal decoder, the best after "
            f"pretraining alone); T5Gemma at XL: the encoder-decoder adapted from the decoder scores "
            f"{_v(g, 'XL-XL', 'PT Score, + PrefixLM (encoder-decoder)')} vs "
            f"{_v(g, 'XL-XL', 'PT Score, Gemma 2 (decoder-only)')} after pretraining, "
            f"{_v(g, 'XL-XL', 'IT Score, + PrefixLM (encoder-decoder)')} vs "
            f"{_v(g, 'XL-XL', 'IT Score, Gemma 2 (decoder-only)')} after instruction tuning")


def _c11() -> str:
    p = "patel2023_bidirectional"
    return (f"Patel et al.: mT5-XL ({_v(p, 'mT5 used with SAP (mT5-XL)', 'parameters')}B parameters, an "
            "encoder-decoder trained only on span corruption), prompted in context one word at a time (SAP, many "
            f"passes), matches XGLM and GPT-3 few-shot translation on average with about "
            f"{_v(p, 'mT5 + SAP, few-shot, vs XGLM and GPT-3', 'fewer parameters')}% fewer parameters; the models "
            "also differ in data and training, as the authors say, so in-context learning is not the decoder's "
            "alone, but the mechanism is not tested")


def _c12() -> str:
    e = "weller2025_ettin"
    suite = "Ettin suite (paired encoder-only and decoder-only models)"
    mnli = "MNLI: native encoder vs decoder adapted to encoder tasks by continued training"
    return (f"Ettin (paired encoders and decoders from {_v(e, suite, 'smallest model size')}M to "
            f"{_v(e, suite, 'largest model size')}B, same data and recipe; its abstract only): encoders excel at "
            f"classification and retrieval, decoders at generation; a {_v(e, mnli, 'size of the encoder')}M encoder "
            f"beats a {_v(e, mnli, 'size of the decoder it outperforms')}B decoder on MNLI. No trend with size is "
            "stated")


def _c14() -> str:
    return _c12()


def _c16() -> str:
    k, r = "kaplan2020_scaling", "zhang2025_redllm"
    return (f"Kaplan et al. fit a power law in parameters for decoders up to "
            f"{float(_v(k, 'models trained', 'largest model size')) / 1e9:g}B parameters (alpha_N "
            f"{_v(k, 'L(N) = (N_c/N)^alpha_N', 'alpha_N')}); RedLLM's abstract "
            f"({_v(r, 'RedLLM and DecLLM, smallest size', 'model size')}M to "
            f"{_v(r, 'RedLLM and DecLLM, largest size', 'model size')}B) reports comparable scaling for the "
            "encoder-decoder: the law holds for it too, so it is no reason to prefer the decoder")


def _c18() -> str:
    r, g = "zhang2025_redllm", "zhang2025_t5gemma"
    return (f"RedLLM ({_v(r, 'RedLLM and DecLLM, smallest size', 'model size')}M to "
            f"{_v(r, 'RedLLM and DecLLM, largest size', 'model size')}B, {_v(r, 'RedLLM and DecLLM', 'pretraining tokens')}T "
            "tokens, both trained from scratch): at equal parameters the decoder pretrains to the better quality but "
            f"needs about {_v(r, 'DecLLM vs RedLLM at equal parameter count', 'training FLOPs ratio')} times the "
            "training FLOPs, and at equal compute the gap almost disappears; after instruction tuning the "
            "encoder-decoder is comparable or better, with better inference efficiency. T5Gemma (encoder-decoders "
            "adapted from Gemma 2, compared at similar inference FLOPs with about twice the parameters): "
            f"{_v(g, '9B-9B', 'IT Score, + PrefixLM (encoder-decoder) (RLHF, number in parentheses)')} vs "
            f"{_v(g, '9B-9B', 'IT Score, Gemma 2 (decoder-only) (RLHF, number in parentheses)')} after instruction "
            "tuning at 9B")


def _c01() -> str:
    t = "raffel2020_t5"
    ed, shared, prefix = "Encoder-decoder, Denoising", "Enc-dec, shared, Denoising", "Prefix LM, Denoising"
    return (f"T5's Table 2 (Raffel et al., BERT-base-sized stacks, denoising objective): the encoder-decoder with "
            f"its weights shared between the stacks (half the parameters, the same FLOPs) scores "
            f"{_v(t, shared, 'GLUE')} on GLUE against {_v(t, ed, 'GLUE')} unshared and {_v(t, prefix, 'GLUE')} for "
            f"the prefix LM of the same size, so it keeps most of its lead there; on CNN/Daily Mail "
            f"({_v(t, shared, 'CNNDM')} against {_v(t, ed, 'CNNDM')} and {_v(t, prefix, 'CNNDM')}) it keeps less "
            "than half")


def _c08() -> str:
    h = "haviv2022_nope"
    return (f"Haviv et al.: a decoder without positions reaches perplexity {_v(h, 'NoPos', 'The Pile')} on the "
            f"Pile against {_v(h, 'Learned', 'The Pile')} with learned positions, while a masked LM without them "
            f"reaches {_v(h, 'NoPos', 'MLM perplexity')} against {_v(h, 'Learned', 'MLM perplexity')}")


def _c06() -> str:
    b = "bhojanapalli2020_table1"
    return (f"Bhojanapalli et al. (BERT-large): with heads of size d/h, SQuAD F1 falls from "
            f"{_v(b, 'BERT-large, 8 heads of size d/h (336M parameters)', 'SQuAD F1')} at 8 heads to "
            f"{_v(b, 'BERT-large, 32 heads of size d/h (336M parameters)', 'SQuAD F1')} at 32 (one run each); the "
            "fixed-head-size rows are not transcribed")


def _c20() -> str:
    j = "jiang2024_mixtral"
    return (f"Mixtral 8x7B ({_v(j, 'Mixtral 8x7B', 'active parameters')}B active of "
            f"{_v(j, 'Mixtral 8x7B', 'total parameters')}B) scores {_v(j, 'Mixtral 8x7B', 'MMLU')} on MMLU against "
            f"{_v(j, 'LLaMA 2 70B', 'MMLU')} for LLaMA 2 70B; RetNet reports lower inference memory at 6.7B")


def _c21() -> str:
    q = "dettmers2023_qlora"
    return (f"QLoRA finetunes a 65B model in {_v(q, 'QLoRA, 65B model', 'GPU memory for finetuning', 'Abstract')} GB "
            f"against {_v(q, 'regular 16-bit finetuning, LLaMA 65B', 'GPU memory for finetuning')} GB for full 16-bit "
            f"finetuning, at a mean score of {_v(q, 'NFloat4 + DQ', 'Mean')} against "
            f"{_v(q, 'BFloat16', 'Mean')} for 16-bit LoRA")


#: The claims a paper at scale addresses. Every other claim is not tested at scale.
AT_SCALE: dict[str, AtScale] = {
    "C01": AtScale(("raffel2020_t5",), "about 220M parameters unshared", "nuanced", _c01, within=True),
    "C02": AtScale(("wang2022_zeroshot", "raffel2020_t5"), "about 110M to 5B parameters", "nuanced", _c02),
    "C06": AtScale(("bhojanapalli2020_table1",), "336M parameters", "nuanced", _c06),
    "C08": AtScale(("haviv2022_nope",), "up to 1.3B parameters", "supported", _c08),
    "C09": AtScale(("wang2022_zeroshot",), "about 5B to 11B parameters", "supported", _c09),
    "C10": AtScale(("wang2022_zeroshot", "zhang2025_t5gemma"), "2B to 11B parameters", "supported", _c10),
    "C11": AtScale(("patel2023_bidirectional",), "3.7B parameters", "nuanced", _c11),
    "C12": AtScale(("weller2025_ettin",), "17M to 1B parameters", "nuanced", _c12),
    "C14": AtScale(("weller2025_ettin",), "17M to 1B parameters", "supported", _c14),
    "C16": AtScale(("kaplan2020_scaling", "zhang2025_redllm"), "up to 8B parameters", "nuanced", _c16),
    "C18": AtScale(("zhang2025_redllm", "zhang2025_t5gemma"), "150M to 9B parameters", "nuanced", _c18,
                   "the decoder pretrains to the better quality per parameter but not per FLOP, and after "
                   "instruction tuning an encoder-decoder matches or beats it at lower inference cost "
                   "(the RedLLM and T5Gemma papers)"),
    "C20": AtScale(("jiang2024_mixtral", "sun2023_retnet"), "7B to 70B parameters", "supported", _c20),
    "C21": AtScale(("dettmers2023_qlora",), "7B to 65B parameters", "supported", _c21),
}


def relation(ours: str, claim_id: str) -> str:
    """How our verdict ``ours`` stands to the papers at scale on ``claim_id``: ``agrees``
    (the same verdict), ``disagrees`` (one supported, the other refuted), ``mixed`` (any
    other pair: one of the two nuanced, or ours inconclusive), ``part of ours`` (our rule
    reads the paper's numbers itself: no second line to agree or disagree),
    ``not tested at scale``. Defined in "The claims ledger"."""
    if ours not in READINGS + ("inconclusive",):
        raise ValueError(f"unknown verdict {ours!r}; expected one of {READINGS + ('inconclusive',)}")
    at = AT_SCALE.get(claim_id)
    if at is None:
        return "not tested at scale"
    if at.within:
        return "part of ours"
    if ours == at.reading:
        return "agrees"
    if {ours, at.reading} == {"supported", "refuted"}:
        return "disagrees"
    return "mixed"


def at_scale_line(claim_id: str, ours: str) -> str | None:
    """The verdict box's "at scale" line: the papers' finding, its sizes, what it reads as
    and how it stands to ours; ``None`` for a claim no paper at scale addresses. Defined in
    "The claims ledger"."""
    at = AT_SCALE.get(claim_id)
    if at is None:
        return None
    unchecked = [p for p in at.papers if (_printed(p)["checked"] == UNCHECKED).any()]
    note = f" Numbers of {', '.join(unchecked)} not yet checked by a second reader." if unchecked else ""
    stands = relation(ours, claim_id)
    how = ("our rule reads these numbers itself, so they are part of our verdict, not a second line beside it"
           if stands == "part of ours" else f"{stands} with ours")
    return f"{at.finding()} ({at.sizes}). Read as {at.reading}; {how}.{note}"


def t5gemma_table():
    """T5Gemma's head-to-head (Table 2 of Zhang et al. 2025, arXiv 2504.06225) in wide form:
    per size, the decoder-only Gemma 2 and the encoder-decoder adapted from it (prefix-LM
    objective) after pretraining (PT score), after instruction tuning (IT score; Gemma 2 2B
    and 9B by RLHF, the others by SFT, as the table prints them) and on SuperGLUE after task
    finetuning. Each encoder-decoder ``N-N`` has about twice the decoder's parameters at
    similar inference FLOPs. Defined in the chapter "Conclusion"."""
    import pandas as pd

    t = published("zhang2025_t5gemma")

    def one(size, column):
        hit = t[(t["row"] == size) & (t["column"] == column)]
        return float(hit["value"].iloc[0]) if len(hit) == 1 else None

    rows = []
    for size in ("S-S", "B-B", "L-L", "XL-XL", "2B-2B", "9B-9B"):
        rlhf = size in ("2B-2B", "9B-9B")
        it_dec = "IT Score, Gemma 2 (decoder-only)" + (" (RLHF, number in parentheses)" if rlhf else "")
        it_ed = "IT Score, + PrefixLM (encoder-decoder)" + (" (RLHF, number in parentheses)" if rlhf else "")
        sg_dec = "PT Models, Gemma 2 (decoder-only)"
        rows.append({"size": size,
                     "PT: decoder": one(size, "PT Score, Gemma 2 (decoder-only)"),
                     "PT: enc-dec": one(size, "PT Score, + PrefixLM (encoder-decoder)"),
                     "IT: decoder": one(size, it_dec), "IT: enc-dec": one(size, it_ed),
                     "SuperGLUE: decoder": one(size, sg_dec),
                     "SuperGLUE: enc-dec": one(size, "PT Models, + PrefixLM (encoder-decoder)")})
    return pd.DataFrame(rows)
