"""Can an encoder-only model generate? A masked LM generating by iterative unmasking vs a
causal LM at equal parameters, and a fill-in-the-blank task (claim C14). Explained in the
chapter "Encoder vs decoder at equal parameters".

Three models with the same block, width, depth, rotary positions, data, steps and seeds:
a causal LM, a masked LM with BERT's objective (15% of tokens) and a masked LM trained at
a random masking rate per sequence (the objective of masked diffusion LMs). Rotary rather
than learned absolute positions, because at this scale a bidirectional model with a
learned position table learns far more slowly (the NoPE experiment of the same chapter
measures it), which would decide the comparison for the wrong reason. Measured on
held-out text:

- the left-to-right loss of the true continuation of a prompt: for the causal LM the usual
  next-token loss; for a masked LM, position ``t`` is predicted from the prompt, the true
  tokens before ``t`` and ``<mask>`` at ``t`` and after it. Both are exact log-likelihoods
  of the same continuation under a left-to-right factorisation, in nats per byte;
- samples: continuations generated left to right (causal LM) or by iterative unmasking
  (masked LMs), and how many real words (words of the training text) each holds;
- filling one blank in the middle of a text: the masked LMs predict it directly; the
  causal LM either from the left context alone, or by scoring every candidate byte with
  its likelihood of the whole text (which uses the right context too, at one forward pass
  per candidate).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..claims import Claim, Evidence, counted, counted_of, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..generate import generate, unmask_generate
from ..model import Transformer, sequence_loss
from ..objectives import full_lm, masked_lm, random_rate_masked_lm
from ..paths import results_dir
from ..results import judged_settings, per_seed_sections, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_tokens, random_chunks, unigram_baseline, with_bos
from ..train import RunSizes, train
from ..verdicts import Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("unmasking")
#: The page that shows it (under ``chapters/``).
PAGE = "03_encoder_vs_decoder/generation"
TOK = ByteTokenizer()
# name -> (arch, objective turning (rows, generator) into a batch)
VARIANTS = {
    "causal LM": ("decoder", lambda rows, g: full_lm(rows)),
    "masked LM (15%)": ("encoder", masked_lm),
    "masked LM (random rate)": ("encoder", random_rate_masked_lm),
}
SECTIONS = ("baseline",) + tuple(VARIANTS)  # one stored section per model, so a long run resumes
WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class UnmaskingSettings(RunSizes):
    """Sizes of one scale of the C14 experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

    length: int
    prompt: int
    seeds: tuple[int, ...]
    eval_rows: int
    sample_rows: int
    temperature: float = 0.7
    lr: float = 3e-3
    position: str = "rope"


SETTINGS = {
    "smoke": UnmaskingSettings(d_model=32, n_layers=2, n_heads=2, steps=40, batch=16, length=32, prompt=16,
                               seeds=(0, 1), eval_rows=16, sample_rows=8),
    "full": UnmaskingSettings(d_model=64, n_layers=4, n_heads=4, steps=800, batch=32, length=64, prompt=32,
                              seeds=(0, 1, 2, 3, 4), eval_rows=128, sample_rows=64),
}


def _check_rows(rows) -> None:
    if not isinstance(rows, torch.Tensor) or rows.dim() != 2:
        raise ValueError(f"rows must be a (batch, length) tensor of token ids, got {type(rows).__name__} "
                         f"of shape {tuple(getattr(rows, 'shape', ()))}")


def _check_split(rows: torch.Tensor, prompt: int) -> None:
    _check_rows(rows)
    if not 1 <= prompt < rows.shape[1]:
        raise ValueError(f"prompt {prompt} must leave a non-empty continuation in rows of length {rows.shape[1]}")


@torch.no_grad()
def left_to_right_nll(model: Transformer, rows: torch.Tensor, prompt: int, mask_id: int = TOK.mask) -> float:
    """Mean loss (nats per token) of ``rows[:, prompt:]`` given ``rows[:, :prompt]``, one
    token at a time from left to right. A decoder reads the true earlier tokens causally;
    an encoder reads them with ``<mask>`` at the position being predicted and every later
    one. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    _check_split(rows, prompt)
    model.eval()
    if model.cfg.arch == "decoder":
        mask = torch.zeros(rows.shape[0], rows.shape[1] - 1, dtype=torch.bool)
        mask[:, prompt - 1 :] = True
        return float(sequence_loss(model(rows[:, :-1]), rows[:, 1:], mask))
    if model.cfg.arch != "encoder":
        raise ValueError(f"left_to_right_nll supports 'decoder' and 'encoder', not {model.cfg.arch!r}")
    losses = []
    for t in range(prompt, rows.shape[1]):
        tokens = rows.clone()
        tokens[:, t:] = mask_id
        losses.append(torch.nn.functional.cross_entropy(model(tokens)[:, t].float(), rows[:, t], reduction="none"))
    return float(torch.stack(losses).mean())


@torch.no_grad()
def fill_blank(model: Transformer, rows: torch.Tensor, position: int, candidates: torch.Tensor,
               use_right_context: bool = True, mask_id: int = TOK.mask) -> torch.Tensor:
    """The model's guess for the token at ``position`` of each row, among ``candidates``.
    An encoder sees the row with ``<mask>`` there. A decoder with ``use_right_context``
    picks the candidate that makes the whole row most likely (one forward pass per
    candidate); without it, the argmax of the next-token prediction from the left.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    _check_rows(rows)
    if not 1 <= position < rows.shape[1]:
        raise ValueError(f"blank position {position} is outside [1, {rows.shape[1]})")
    if not isinstance(candidates, torch.Tensor) or candidates.dim() != 1 or not len(candidates) \
            or candidates.is_floating_point():
        raise ValueError(f"candidates must be a non-empty 1-D tensor of token ids, got {type(candidates).__name__} "
                         f"of shape {tuple(getattr(candidates, 'shape', ()))}")
    model.eval()
    arch = model.cfg.arch
    if arch == "encoder":
        tokens = rows.clone()
        tokens[:, position] = mask_id
        return candidates[model(tokens)[:, position][:, candidates].argmax(-1)]
    if arch != "decoder":
        raise ValueError(f"fill_blank supports 'decoder' and 'encoder', not {arch!r}")
    if not use_right_context:
        return candidates[model(rows[:, :position])[:, -1][:, candidates].argmax(-1)]
    guesses = []
    for row in rows:
        filled = row.repeat(len(candidates), 1)
        filled[:, position] = candidates
        logp = model(filled[:, :-1]).float().log_softmax(-1)
        scores = logp.gather(-1, filled[:, 1:, None])[:, position - 1 :, 0].sum(1)
        guesses.append(candidates[scores.argmax()])
    return torch.stack(guesses)


def real_words(texts: list[str], vocabulary: set[str]) -> float:
    """The mean number of real words per text: words (runs of two or more ASCII letters)
    that occur in ``vocabulary``, not counting the first and last word of each text (they
    may be cut). A text of spaces and punctuation scores 0, so does one of made-up words.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if isinstance(texts, str) or isinstance(vocabulary, str):
        raise ValueError("texts must be a list of strings and vocabulary a set of words, not a single string "
                         f"(got {type(texts).__name__} and {type(vocabulary).__name__})")
    if not texts:
        raise ValueError("no texts to score")
    return sum(w in vocabulary for text in texts for w in WORD.findall(text)[1:-1]) / len(texts)


def corpus_vocabulary(ids: torch.Tensor) -> set[str]:
    """The words of a byte stream (runs of two or more ASCII letters). Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    return set(WORD.findall(TOK.decode(ids)))


def sample(model: Transformer, prompts: torch.Tensor, n_new: int, temperature: float, seed: int) -> torch.Tensor:
    """Continuations of ``prompts``: left to right with the KV cache for a decoder, by
    iterative unmasking for an encoder (bytes only). Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    g = torch.Generator().manual_seed(seed)
    if model.cfg.arch == "encoder":
        return unmask_generate(model, prompts, n_new, mask_id=TOK.mask, allowed=TOK.n_bytes, temperature=temperature,
                               generator=g)
    return generate(model, prompts, n_new, temperature=temperature, generator=g)


def _one_run(name: str, seed: int, s: UnmaskingSettings, data: dict, progress: bool) -> dict:
    arch, objective = VARIANTS[name]
    cfg = ModelConfig(arch=arch, position=s.position, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
                      max_len=s.length)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: objective(with_bos(random_chunks(data["train"], s.batch, s.length - 1, g)), g),
                   s.train_config(seed, progress))
    rows = data["rows"]
    position = s.length // 2
    truth = rows[:, position]
    blank = {"blank_accuracy": float((fill_blank(model, rows, position, data["candidates"]) == truth).float().mean())}
    if arch == "decoder":
        left = fill_blank(model, rows, position, data["candidates"], use_right_context=False)
        blank["blank_accuracy_left_only"] = float((left == truth).float().mean())
    prompts = rows[: s.sample_rows, : s.prompt]
    texts = [TOK.decode(row[s.prompt :]) for row in sample(model, prompts, s.length - s.prompt, s.temperature, seed)]
    return {"variant": name, "arch": arch, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "train_losses": result.losses, "nll": left_to_right_nll(model, rows, s.prompt),
            "real_words": real_words(texts, data["vocabulary"]), "samples": texts[:4], **blank}


def held_out_rows(n: int, length: int) -> torch.Tensor:
    """The ``n`` held-out texts (``<bos>`` and ``length - 1`` bytes of the validation split)
    every model is measured on; their first ``prompt`` bytes are the sampling prompts.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    g = torch.Generator().manual_seed(10_000)
    return with_bos(random_chunks(corpus_tokens("val"), n, length - 1, g))


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train the three models for every seed at ``scale`` and measure them; with ``out``,
    store after each model and resume. Defined in the chapter "Encoder vs decoder at equal
    parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    train_ids = corpus_tokens("train")
    data = {"train": train_ids, "rows": held_out_rows(s.eval_rows, s.length),
            "candidates": train_ids.unique(), "vocabulary": corpus_vocabulary(train_ids)}
    rows = data["rows"]
    sections = {"baseline": lambda: {"nll": unigram_baseline(train_ids, rows[:, s.prompt:])["nats_per_byte"],
                                     "blank": unigram_baseline(train_ids, rows[:, s.length // 2])["majority_accuracy"]}}
    sections |= per_seed_sections(VARIANTS, s.seeds, lambda name, seed: _one_run(name, seed, s, data, progress))
    return run_sections(sections, judged_settings(s, RULES), out, experiment_command("experiments.ch03_unmasking", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete, else ``None``. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def per_seed(results: dict, name: str, metric: str) -> dict:
    """``{seed: metric}`` of one model's runs. Defined in the chapter "Encoder vs decoder at
    equal parameters"."""
    return {r["seed"]: float(r[metric]) for r in results[name]}


def mean_of(results: dict, name: str, metric: str) -> float:
    """The mean over seeds of one model's ``metric``. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    values = per_seed(results, name, metric)
    return sum(values.values()) / len(values)


def paired_interval(results: dict, metric: str, a: str, b: str):
    """The 95% t-interval of ``metric`` of model ``a`` minus model ``b``, paired by seed.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    return t_interval(paired_differences(per_seed(results, a, metric), per_seed(results, b, metric)))


def _c14_seeds(results: dict) -> int:
    return min(len(results[name]) for name in VARIANTS)


def _c14_decide(results: dict, p: dict) -> Verdict:
    """C14. Gate: the causal LM beats the unigram baseline's left-to-right loss by
    ``p["gate_nats"]``, and some model beats always guessing the most frequent byte at the
    blanks by ``p["gate_accuracy"]``. Then, paired by seed with 95% t-intervals:

    - generation: the BERT-style masked LM's left-to-right loss against the causal LM's,
      with an equivalence margin of ``p["margin"]`` of the causal LM's loss; inside it or
      lower: refuted (it generates about as well);
    - the rescue: the random-rate masked LM against the causal LM, same margin; inside it
      or lower: nuanced (the failure belongs to BERT's objective, not to bidirectionality);
    - understanding: the masked LM fills blanks better than the causal LM scoring every
      candidate with the whole text (interval above 0): supported; otherwise nuanced.

    Inconclusive when the gate fails or the generation or rescue interval straddles its margin.
    """
    causal, bert, rr = VARIANTS
    base = results["baseline"]
    if not learned(mean_of(results, causal, "nll"), base["nll"], lower_is_better=True, by=p["gate_nats"]):
        return Verdict("inconclusive", f"the causal LM did not beat the unigram baseline ({base['nll']:.2f} nats/byte)",
                       {"baseline": base})
    if not any(learned(mean_of(results, m, "blank_accuracy"), base["blank"], lower_is_better=False,
                       by=p["gate_accuracy"]) for m in (causal, bert)):
        return Verdict("inconclusive", "no model beat always guessing the most frequent byte at the blanks",
                       {"baseline": base})
    margin = p["margin"] * mean_of(results, causal, "nll")
    gen, rescue = paired_interval(results, "nll", bert, causal), paired_interval(results, "nll", rr, causal)
    blanks = paired_interval(results, "blank_accuracy", bert, causal)
    words = paired_interval(results, "real_words", bert, causal)
    readings = {"generation": compare(gen, margin), "rescue": compare(rescue, margin), "blanks": compare(blanks, 0.0)}
    numbers = {"generation": gen.__dict__, "rescue": rescue.__dict__, "blanks": blanks.__dict__,
               "words": words.__dict__, "margin": margin, "baseline": base, **readings}
    if readings["generation"] == "unclear":
        return Verdict("inconclusive", "the generation interval straddles its margin", numbers)
    if readings["generation"] in ("equivalent", "lower"):
        return Verdict("refuted", "the BERT-style masked LM generated about as well as the causal LM", numbers)
    if readings["rescue"] == "unclear":
        return Verdict("inconclusive", "the random-rate masked LM's interval straddles its margin", numbers)
    if readings["rescue"] in ("equivalent", "lower"):
        return Verdict("nuanced", "BERT's objective generates poorly, but a masked LM trained at random rates "
                       "generates about as well as the causal LM", numbers)
    if readings["blanks"] == "higher":
        return Verdict("supported", "the masked LMs generated worse and the masked LM filled blanks better", numbers)
    return Verdict("nuanced", "the masked LMs generated worse, but the masked LM did not fill blanks better",
                   numbers)


def _c14_rests_on(results: dict, verdict: Verdict) -> str:
    """What C14's verdict rests on, counted: the models and seeds, its two gates, and the
    paired readings (generation, rescue, blanks) the rule took before it decided."""
    rule = RULES["C14"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    p, base, (causal, bert, _) = rule.parameters, results["baseline"], VARIANTS
    run = f"{counted(len(VARIANTS), 'model')}, {counted(rule.seeds(results), 'seed')} each"
    if not learned(mean_of(results, causal, "nll"), base["nll"], lower_is_better=True, by=p["gate_nats"]):
        return f"nothing compared: the causal LM did not pass the unigram gate; {run}"
    blanks = [m for m in (causal, bert) if learned(mean_of(results, m, "blank_accuracy"), base["blank"],
                                                   lower_is_better=False, by=p["gate_accuracy"])]
    gates = f"the causal LM past the unigram gate, {counted_of(len(blanks), 2, 'model')} past the blank gate"
    if not blanks:
        return f"nothing compared: {gates}; {run}"
    n = verdict.numbers
    taken = ["generation"] + (["rescue"] if n["generation"] == "higher" else [])
    taken += ["blanks"] if n["generation"] == n["rescue"] == "higher" else []
    return f"{run}; {gates}; decided by {counted(len(taken), 'paired reading')} ({', '.join(taken)})"


def c14_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C14's evidence and scope in words: each model's left-to-right loss, real words and
    blanks filled (means over seeds), and with more than one seed the paired intervals.
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    gs = results["settings"]
    causal, bert, rr = VARIANTS

    def mean(name, metric):
        return mean_of(results, name, metric)

    text = (
        f"Left-to-right loss: causal {mean(causal, 'nll'):.3f}, BERT-style masked LM {mean(bert, 'nll'):.3f}, "
        f"random-rate masked LM {mean(rr, 'nll'):.3f} nats/byte; real words per 32-byte sample "
        f"{mean(causal, 'real_words'):.2f} / {mean(bert, 'real_words'):.2f} / {mean(rr, 'real_words'):.2f}. Filling "
        f"a blank: masked LM {mean(bert, 'blank_accuracy'):.0%} vs causal {mean(causal, 'blank_accuracy'):.0%} "
        f"scoring the whole text ({mean(causal, 'blank_accuracy_left_only'):.0%} from the left only).")
    if len(results[causal]) > 1:
        pairs = {"generation": paired_interval(results, "nll", bert, causal),
                 "rescue": paired_interval(results, "nll", rr, causal),
                 "blanks": paired_interval(results, "blank_accuracy", bert, causal)}
        text += (f" Paired by seed (95%): BERT-style minus causal {pairs['generation']} nats/byte, random-rate minus "
                 f"causal {pairs['rescue']}, blanks {pairs['blanks']}.")
    scope = (f"equal parameters; width {gs['d_model']}, {gs['n_layers']} layers, {gs['steps']} steps of {gs['batch']} "
             f"x {gs['length']} bytes, {len(gs['seeds'])} seeds, the book's byte corpus")
    return Evidence(text, scope, rests_on=_c14_rests_on(results, verdict))


RULES = {"C14": Rule(
    "C14", "an encoder-only (masked) LM generates worse than a causal LM and suits understanding tasks",
    {"min_seeds": 5, "margin": 0.1, "gate_nats": 0.5, "gate_accuracy": 0.05}, _c14_decide, seeds=_c14_seeds)}


CLAIMS = (Claim("C14", "Encoder-only models cannot generate well; they suit understanding tasks",
                "03_encoder_vs_decoder/generation",
                stored_results(sys.modules[__name__]), RULES["C14"], c14_evidence),)


if __name__ == "__main__":
    experiment_main("experiments.ch03_unmasking", run, RESULTS_DIR)
