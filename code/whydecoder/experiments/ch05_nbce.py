"""NBCE on a retrieval task past the model's window; claim C17, decided by :data:`RULES`.

A document of ``factor`` windows (2 or 4) hides facts the question asks for. The model
never reads more than its window at once: *truncation* keeps the last window before the
question; the *oracle* is handed the window that holds the answer; *NBCE*
(:mod:`whydecoder.nbce`) reads every window with the question and pools the chunks'
next-token distributions, over a sweep of ``beta`` and both poolings. Two tasks:

- ``passkey``: one five-digit pass key in repeated filler sentences (the test of
  Mohtashami and Jaggi 2023): every other window is the same filler, so only the key's
  window changes from document to document;
- ``doors``: ``facts_per_chunk`` pass keys per window, each of a door of another colour,
  in varied text (the CPython reference topics); the question asks for one door's key, so
  every other window holds a confident wrong answer (distractors).

An answer counts when every one of its tokens is the pooled distribution's most likely
token (greedy decoding writes it). Full scale: SmolLM2-135M at its trained window of
8192 tokens, documents of 16384 and 32768 tokens. Smoke scale: the same code on a tiny
decoder of ours trained for a few steps on single windows of the tasks.

Sections ``"<task> x<factor>"``; run the full scale with ``python -m
whydecoder.experiments.ch05_nbce --scale full`` (stored in ``data/nbce/``).

Explained in the chapter "In-context learning", section "Reading past the window".
"""

from __future__ import annotations

import functools
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..claims import Claim, Evidence, counted_of, in_words, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..nbce import POOLINGS, answer_logprobs, entropy, exact_match, nbce_pool, prefill, top_p_filter
from ..objectives import Batch
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer, corpus_text
from ..train import TrainConfig, train
from ..verdicts import Rule, Verdict, t_interval

RESULTS_DIR = results_dir("nbce")
#: The page that shows it (under ``chapters/``).
PAGE = "05_in_context_learning/nbce"
TASKS = ("passkey", "doors")
FACTORS = (2, 4)
SECTIONS = tuple(f"{task} x{factor}" for task in TASKS for factor in FACTORS)
MODELS = ("smollm2", "tiny")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "brown", "purple", "orange", "pink", "grey", "silver")
PASSKEY_FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."


@dataclass(frozen=True)
class NbceSettings:
    """One scale of the NBCE experiment: the model (``"smollm2"`` or a ``"tiny"`` decoder
    of ours trained for ``tiny_steps`` steps), its ``window`` in tokens, ``docs`` documents
    of doors and ``passkey_docs`` of pass keys per length (one question each, so more of
    them), and the sweep of ``betas``. Defined in the chapter "In-context learning"."""

    model: str
    window: int
    docs: int
    passkey_docs: int
    facts_per_chunk: int
    key_digits: int
    betas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    top_p: float = 0.95
    seed: int = 0
    tiny_steps: int = 0
    tiny_d_model: int = 32
    tiny_layers: int = 2
    tiny_batch: int = 8

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in ("window", "docs", "passkey_docs", "facts_per_chunk", "key_digits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if FACTORS[-1] * self.facts_per_chunk > len(COLOURS):
            raise ValueError(f"{FACTORS[-1]} windows of {self.facts_per_chunk} doors need more than the "
                             f"{len(COLOURS)} colours")
        if not self.betas or any(b < 0 for b in self.betas):
            raise ValueError(f"betas must be a non-empty tuple of numbers >= 0, got {self.betas!r}")
        if self.model == "tiny" and self.tiny_steps < 1:
            raise ValueError("a tiny model needs tiny_steps >= 1 of training")


SETTINGS = {
    "smoke": NbceSettings(model="tiny", window=160, docs=2, passkey_docs=3, facts_per_chunk=1, key_digits=2, tiny_steps=30),
    "full": NbceSettings(model="smollm2", window=8192, docs=8, passkey_docs=24, facts_per_chunk=2, key_digits=5),
}


def methods(settings: NbceSettings) -> list[str]:
    """The readers compared: truncation, the oracle, and NBCE for every pooling and beta.
    Defined in the chapter "In-context learning"."""
    return ["truncation", "oracle"] + [f"{pooling} b={beta:g}" for pooling in POOLINGS for beta in settings.betas]


# ---------------------------------------------------------------------------- the tasks
def fact(task: str, key: str, colour: str | None = None) -> str:
    """The sentence that hides a key. Defined in the chapter "In-context learning"."""
    if task == "passkey":
        return f" The pass key is {key}. Remember it. {key} is the pass key."
    return f"\n\nThe pass key of the {colour} door is {key}."


def question(task: str, colour: str | None = None) -> str:
    """The question, ending where the answer begins. Defined in the
    chapter "In-context learning"."""
    if task == "passkey":
        return " What is the pass key? The pass key is"
    return f"\n\nWhat is the pass key of the {colour} door? The pass key of the {colour} door is"


class Reader:
    """A model with its tokenizer's ``encode`` and the text it hides facts in.
    Defined in the chapter "In-context learning"."""

    def __init__(self, model: Transformer, encode, settings: NbceSettings):
        self.model, self.encode, self.s = model, encode, settings
        self.budget = max(len(encode(question(t, c))) + 1 + settings.key_digits + 1 for t in TASKS for c in COLOURS)
        self.chunk_len = settings.window - self.budget
        longest = max(len(encode(fact(t, "9" * settings.key_digits, c))) for t in TASKS for c in COLOURS)
        if self.chunk_len < settings.facts_per_chunk * longest + 8:
            raise ValueError(f"a window of {settings.window} tokens leaves {self.chunk_len} for context: too few for "
                             f"{settings.facts_per_chunk} facts of up to {longest} tokens")
        self.filler_unit = encode(PASSKEY_FILLER)

    @functools.cached_property
    def paragraphs(self) -> list[list[int]]:
        """The reference text's paragraphs, encoded once, when a doors window first needs them."""
        return [self.encode("\n\n" + p) for p in corpus_text().split("\n\n") if p.strip()]

    def passkey_chunk(self, key: str | None, rng: random.Random) -> tuple[list[int], float]:
        """A window of filler, with the key's sentence at a random sentence boundary when
        ``key`` is given; and the sentence's relative position in the window."""
        units = [self.filler_unit] * (self.chunk_len // len(self.filler_unit) + 1)
        if key is None:
            return sum(units, [])[:self.chunk_len], -1.0
        hidden = self.encode(fact("passkey", key))
        fits = [j for j in range(len(units)) if j * len(self.filler_unit) + len(hidden) <= self.chunk_len]
        j = rng.choice(fits)
        tokens = sum(units[:j], []) + hidden + sum(units[j:], [])
        return tokens[:self.chunk_len], j * len(self.filler_unit) / self.chunk_len

    def doors_chunk(self, facts: list[tuple[str, str]], rng: random.Random) -> tuple[list[int], list[float]]:
        """A window of reference text from a random paragraph on, with one door sentence
        per ``(colour, key)`` at random paragraph boundaries; and their relative positions."""
        start = rng.randrange(len(self.paragraphs))
        paragraphs, length = [], 0
        while length < self.chunk_len:
            paragraphs.append(self.paragraphs[(start + len(paragraphs)) % len(self.paragraphs)])
            length += len(paragraphs[-1])
        hidden = [self.encode(fact("doors", key, colour)) for colour, key in facts]
        bounds = [0]
        for p in paragraphs:
            bounds.append(bounds[-1] + len(p))
        room = self.chunk_len - sum(len(h) for h in hidden)
        choices = [i for i, b in enumerate(bounds) if b <= room] or [0]
        places = sorted(rng.choice(choices) for _ in hidden)
        tokens, depths, done = [], [], 0
        for place, h in zip(places, hidden):
            tokens += sum(paragraphs[done:place], [])
            done = max(done, place)
            depths.append(len(tokens) / self.chunk_len)
            tokens += h
        tokens += sum(paragraphs[done:], [])
        return tokens[:self.chunk_len], depths


def _key(rng: random.Random, digits: int) -> str:
    return str(rng.randrange(10 ** (digits - 1), 10 ** digits))


def make_document(reader: Reader, task: str, factor: int, rng: random.Random) -> dict:
    """``factor`` windows of context and the questions about them: ``{"chunks": [...],
    "questions": [{"question", "answer", "chunk", "depth"}]}`` (token ids; ``chunk`` is the
    window that holds the answer). Defined in the chapter "In-context learning"."""
    s = reader.s
    if task == "passkey":
        where = rng.randrange(factor)
        key = _key(rng, s.key_digits)
        chunk, depth = reader.passkey_chunk(key, rng)
        chunks = [chunk if i == where else None for i in range(factor)]  # None: the shared filler window
        questions = [{"question": reader.encode(question(task)), "answer": reader.encode(" " + key),
                      "chunk": where, "depth": (where + depth) / factor}]
        return {"chunks": chunks, "questions": questions}
    n = factor * s.facts_per_chunk
    colours = rng.sample(COLOURS, n)
    keys = [str(k) for k in rng.sample(range(10 ** (s.key_digits - 1), 10 ** s.key_digits), n)]  # all different
    chunks, questions = [], []
    for i in range(factor):
        part = slice(i * s.facts_per_chunk, (i + 1) * s.facts_per_chunk)
        facts = list(zip(colours[part], keys[part]))
        chunk, depths = reader.doors_chunk(facts, rng)
        chunks.append(chunk)
        questions += [{"question": reader.encode(question(task, c)), "answer": reader.encode(" " + k), "chunk": i,
                       "depth": (i + d) / factor} for (c, k), d in zip(facts, depths)]
    return {"chunks": chunks, "questions": questions}


# ---------------------------------------------------------------------------- reading
def read_document(reader: Reader, doc: dict, filler_cache=None) -> list[dict]:
    """Every reader's answer to every question of ``doc``: per question, whether each
    method got it exactly, the answer's mean log-probability (nats per token) under
    truncation, the oracle and NBCE, and whether min-entropy pooling chose the window that
    holds the answer at the first answer token. Defined in the chapter "In-context learning"."""
    s, model = reader.s, reader.model
    per_chunk = []
    for chunk in doc["chunks"]:
        cache = filler_cache() if chunk is None else prefill(model, chunk)
        per_chunk.append([answer_logprobs(model, cache, q["question"], q["answer"]) for q in doc["questions"]])
        del cache
    rows = []
    for j, q in enumerate(doc["questions"]):
        lps = torch.stack([per_chunk[k][j] for k in range(len(doc["chunks"]))])  # (chunks, A, V)
        uncond = answer_logprobs(model, None, q["question"], q["answer"])
        answer = torch.tensor(q["answer"])
        pooled = {"truncation": lps[-1], "oracle": lps[q["chunk"]]}
        for pooling in POOLINGS:
            for beta in s.betas:
                pooled[f"{pooling} b={beta:g}"] = torch.stack(
                    [nbce_pool(lps[:, t], uncond[t], beta, pooling, s.top_p) for t in range(len(answer))])
        chosen = int(entropy(top_p_filter(lps[:, 0], s.top_p)).argmin())  # the window min-entropy pooling reads
        rows.append({
            "chunk": q["chunk"], "depth": q["depth"],
            "correct": {m: exact_match(lp, q["answer"]) for m, lp in pooled.items()},
            "logprob": {m: float(lp.gather(1, answer[:, None]).clamp(min=-100).mean()) for m, lp in pooled.items()},
            "chose_answer_window": chosen == q["chunk"],
        })
    return rows


def _section(reader: Reader, task: str, factor: int, progress: bool) -> dict:
    s = reader.s
    rng = random.Random(f"{s.seed}-{task}-{factor}")
    filler = functools.lru_cache(maxsize=1)(lambda: prefill(reader.model, reader.passkey_chunk(None, rng)[0]))
    t0 = time.perf_counter()
    docs = []
    for i in tqdm(range(s.passkey_docs if task == "passkey" else s.docs), desc=f"{task} x{factor}", disable=not progress, leave=False):
        doc = make_document(reader, task, factor, rng)
        docs.append({"doc": i, "questions": read_document(reader, doc, filler)})
    return {"docs": docs, "seconds": time.perf_counter() - t0, "context_tokens": factor * reader.chunk_len,
            "window": s.window, "chunk_len": reader.chunk_len}


# ---------------------------------------------------------------------------- the models
def _tiny_batch(reader: Reader, rng: random.Random, n: int) -> Batch:
    """``n`` windows of either task with one question about them, trained on the answer only."""
    rows, masks = [], []
    for _ in range(n):
        task = rng.choice(TASKS)
        doc = make_document(reader, task, 1, rng)
        q = rng.choice(doc["questions"])
        chunk = doc["chunks"][0] if doc["chunks"][0] is not None else reader.passkey_chunk(None, rng)[0]
        seq = chunk + q["question"] + q["answer"]
        seq = ([0] * (reader.s.window + 1 - len(seq)) + seq)[-(reader.s.window + 1):]
        rows.append(seq)
        masks.append([False] * (len(seq) - 1 - len(q["answer"])) + [True] * len(q["answer"]))
    tokens = torch.tensor(rows)
    return Batch(tokens[:, :-1], tokens[:, 1:], torch.tensor(masks))


@functools.lru_cache(maxsize=2)
def load_reader(settings: NbceSettings) -> Reader:
    """SmolLM2-135M with its tokenizer, or a tiny decoder of ours trained for
    ``tiny_steps`` steps on single windows of the tasks (bytes). Loaded once per process.
    Defined in the chapter "In-context learning"."""
    if settings.model == "smollm2":
        from ..llama_gguf import load_smollm2

        model, _, encode = load_smollm2(max_len=settings.window)
        return Reader(model, encode, settings)
    tok = ByteTokenizer()
    cfg = ModelConfig(arch="decoder", vocab_size=tok.vocab_size, max_len=settings.window, d_model=settings.tiny_d_model,
                      n_heads=4, n_layers=settings.tiny_layers, position="rope")
    torch.manual_seed(settings.seed)
    model = Transformer(cfg)
    reader = Reader(model, tok.encode, settings)
    rng = random.Random(settings.seed)
    train(model, lambda g: _tiny_batch(reader, rng, settings.tiny_batch),
          TrainConfig(steps=settings.tiny_steps, lr=3e-3, warmup=max(1, settings.tiny_steps // 20), seed=settings.seed,
                      progress=False))
    return reader


def settings_for(scale: str | None = None) -> NbceSettings:
    """The settings of ``scale``. Defined in the chapter "In-context learning"."""
    return SETTINGS[current_scale(scale)]


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Run the experiment at ``scale``; with ``out``, store after each section and skip
    sections already stored. Defined in the chapter "In-context learning"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch05_nbce", scale, out)
    sections = {f"{task} x{factor}": (lambda task=task, factor=factor: _section(load_reader(s), task, factor, progress))
                for task in TASKS for factor in FACTORS}
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings and rules,
    else ``None``. Defined in the chapter "In-context learning"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


# ---------------------------------------------------------------------------- the verdict
def doc_accuracy(section: dict, method: str) -> list[float]:
    """Per document, the share of its questions ``method`` answered exactly.
    Defined in the chapter "In-context learning"."""
    return [sum(q["correct"][method] for q in d["questions"]) / len(d["questions"]) for d in section["docs"]]


def accuracy_table(results: dict) -> dict[str, dict[str, float]]:
    """``{section: {method: accuracy over all its questions}}``. Defined in the chapter
    "In-context learning"."""
    table = {}
    for name in SECTIONS:
        questions = [q for d in results[name]["docs"] for q in d["questions"]]
        table[name] = {m: sum(q["correct"][m] for q in questions) / len(questions) for m in questions[0]["correct"]}
    return table


def _c17_decide(results: dict, p: dict) -> Verdict:
    """C17, per task and length (a *cell*), judged on NBCE as Su's code runs it
    (``p["method"]``: min-entropy pooling, beta 0.25), with documents as the unit of
    replication (paired: every reader answers the same questions), on 95% t-intervals over
    documents, never on means.

    Gate: a cell counts only if it can tell a reader that has the answer's window from one
    that has not: the oracle (handed the window that holds the answer) minus truncation has
    its lower end above ``p["margin"]``. A counted cell's reading is one of:

    - *reads*: NBCE minus truncation above ``p["margin"]`` and oracle minus NBCE below it:
      NBCE answers past the window about as well as the oracle;
    - *falls short*: NBCE minus truncation above the margin, oracle minus NBCE above it too;
    - *fails*: NBCE minus truncation below the margin: no gain.

    "Above" and "below" mean the whole interval. Where an interval straddles the margin,
    the cell is *unclear*, and the readings its intervals leave possible are kept (an
    oracle far above NBCE rules out "reads" even when the gain over truncation is unclear).
    Supported when every counted cell reads and cells count at every length the claim
    names (2 and 4 windows); refuted when every one fails, likewise; nuanced when the
    possible readings already rule both out; inconclusive when no cell counts, when the
    cells that count cover one length only and supported or refuted is still possible, or
    when supported or refuted is still possible but not certain.
    """
    cells, possible, numbers = {}, {}, {}
    for name in SECTIONS:
        section = results[name]
        oracle = doc_accuracy(section, "oracle")
        nbce, trunc = doc_accuracy(section, p["method"]), doc_accuracy(section, "truncation")
        gate = t_interval([a - b for a, b in zip(oracle, trunc)])
        gain = t_interval([a - b for a, b in zip(nbce, trunc)])
        short = t_interval([a - b for a, b in zip(oracle, nbce)])
        numbers[name] = {"oracle": sum(oracle) / len(oracle), "oracle_minus_truncation": gate.__dict__,
                         "nbce_minus_truncation": gain.__dict__, "oracle_minus_nbce": short.__dict__}
        if not gate.low > p["margin"]:
            cells[name] = "not counted"
            continue
        possible[name] = {reading for reading, could in (
            ("reads", gain.high > p["margin"] and short.low < p["margin"]),
            ("falls short", gain.high > p["margin"] and short.high >= p["margin"]),
            ("fails", gain.low <= p["margin"])) if could}
        cells[name] = next(iter(possible[name])) if len(possible[name]) == 1 else "unclear"
    numbers["cells"] = cells
    numbers["possible"] = {n: sorted(r) for n, r in possible.items()}
    left = [n for n, c in cells.items() if c == "not counted"]
    tail = (f"; {', '.join(left)} not counted (the oracle not {p['margin']:g} above truncation)") if left else ""
    if not possible:
        return Verdict("inconclusive", "in no cell does the oracle beat truncation by the margin, so no reading "
                       "counts", numbers)
    listed = "; ".join(f"{n}: {cells[n]}" + (f" ({' or '.join(sorted(r))})" if cells[n] == "unclear" else "")
                       for n, r in possible.items()) + f"; {len(possible)} of {len(cells)} cells count"
    may_support = all("reads" in r for r in possible.values())
    may_refute = all("fails" in r for r in possible.values())
    lengths = {name.split(" x")[1] for name in possible}
    if len(lengths) < len(FACTORS) and (may_support or may_refute):
        told = " and ".join(f"{f} windows" for f in FACTORS if str(f) in lengths)
        return Verdict("inconclusive", f"the claim names {' and '.join(str(f) for f in FACTORS)} windows, and only at "
                       f"{told} does a cell count ({listed}){tail}", numbers)
    if all(r == {"reads"} for r in possible.values()):
        return Verdict("supported", f"in every cell that counts ({listed}) NBCE answers past the window as well as a "
                       f"reader handed the right window, far better than truncation{tail}", numbers)
    if all(r == {"fails"} for r in possible.values()):
        return Verdict("refuted", f"in every cell that counts ({listed}) NBCE does no better than truncating to the "
                       f"window{tail}", numbers)
    if not may_support and not may_refute:
        return Verdict("nuanced", f"NBCE reads past the window in some cells that count, not in others ({listed}){tail}",
                       numbers)
    unclear = ", ".join(n for n, c in cells.items() if c == "unclear")
    could = " or ".join(w for w, may in (("read", may_support), ("fail", may_refute)) if may)
    return Verdict("inconclusive", f"too few documents to tell in {unclear}, which could still make every cell "
                   f"{could} ({listed}){tail}", numbers)


def _c17_docs(results: dict) -> int:
    return min(len(results[name]["docs"]) for name in SECTIONS)


RULES = {"C17": Rule(
    "C17", "pooling the chunks' next-token distributions (NBCE, min-entropy, beta 0.25) answers questions about a "
    "context of 2 and 4 windows about as well as a reader handed the right window, and better than truncation, in "
    "every cell where the right window makes a difference",
    {"method": "min_entropy b=0.25", "margin": 0.1, "min_seeds": 8},
    _c17_decide, _c17_docs)}


def _c17_rests_on(results: dict, verdict: Verdict) -> str:
    """What C17's verdict rests on, counted: the cells (task x length) that passed the
    oracle gate and so count, the lengths they cover, the documents per cell, and how the
    counted cells read."""
    stop = protocol_stop(RULES["C17"], results, verdict, unit="document")
    if stop:
        return stop
    cells = verdict.numbers["cells"]
    kept = [name for name, c in cells.items() if c != "not counted"]
    lengths = sorted({int(name.split(" x")[1]) for name in kept})
    docs = sorted({len(results[name]["docs"]) for name in cells})
    at = ("" if not kept else ", at both lengths" if len(lengths) == len(FACTORS)
          else f", at {' and '.join(map(str, lengths))} windows only")
    head = (f"{counted_of(len(kept), len(cells), 'cell')} counted (the oracle beat truncation by the margin){at}; "
            f"{'-'.join(map(str, docs))} documents per cell")
    if not kept:
        return f"nothing compared: {head}"
    readings = [cells[name] for name in kept]
    return head + "; read: " + ", ".join(f"{in_words(readings.count(r))} {r}" for r in dict.fromkeys(readings))


def c17_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C17's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "In-context learning"."""
    settings, table, rule = results["settings"], accuracy_table(results), RULES["C17"]
    method = rule.parameters["method"]
    numbers = rule.readings(results)  # whatever the number of documents
    cells = numbers["cells"]

    def cell_text(name):
        n = numbers[name]
        if cells[name] == "not counted":
            o = n["oracle_minus_truncation"]
            return (f"{name}: not counted (oracle minus truncation {o['mean']:+.2f} [{o['low']:+.2f}, {o['high']:+.2f}], "
                    "not above the margin)")
        g, s = n["nbce_minus_truncation"], n["oracle_minus_nbce"]
        return (f"{name}: {cells[name]} (NBCE minus truncation {g['mean']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}], "
                f"oracle minus NBCE {s['mean']:+.2f} [{s['low']:+.2f}, {s['high']:+.2f}])")

    text = (f"SmolLM2-135M reading documents of 2 and 4 windows of {settings['window']} tokens, NBCE as in Su's code "
            f"({method.replace('_', '-')}, top-p {settings['top_p']}): " + "; ".join(cell_text(n) for n in SECTIONS)
            + ". Intervals: 95% t over documents, paired.")
    counted_cells = [n for n, c in cells.items() if c != "not counted"]
    if len(counted_cells) < len(cells):
        text += (f" The verdict rests on {', '.join(counted_cells) or 'no cell'} alone; read descriptively, NBCE answers "
                 + ", ".join(f"{n} {table[n][method]:.2f} (oracle {table[n]['oracle']:.2f})"
                             for n in cells if cells[n] == "not counted") + ".")
    scope = (f"One trained decoder of 135M parameters, its native window; synthetic retrieval (a pass key in filler, "
             f"{settings['passkey_docs']} documents per length; {settings['facts_per_chunk']} door keys per window in "
             f"varied text, {settings['docs']} documents per length); exact-match answers.")
    return Evidence(text, scope, rests_on=_c17_rests_on(results, verdict))


CLAIMS = (Claim("C17", "Naive-Bayes context extension (NBCE) lets an LM read contexts longer than its training "
                "length without finetuning", "05_in_context_learning/nbce", stored_results(sys.modules[__name__]),
                RULES["C17"], c17_evidence,
                revised="the rule that counts cells was rewritten after a first run's results had been seen, and the "
                "experiment was run again under it"),)


if __name__ == "__main__":
    experiment_main("experiments.ch05_nbce", run, RESULTS_DIR)
