"""In-context learning in a real trained decoder, SmolLM2-135M; a second line of evidence
for C11.

Sections:

- ``accuracy``: exact-match accuracy against the number of demonstrations ``k`` on four
  tasks the model might do (copying a word, the next letter, a country's capital, an
  antonym), over several draws and orders of the demonstrations, with chance (one of the
  task's answers at random) beside it; ``k = 0`` is zero-shot;
- ``implicit_finetuning``: the reading of Dai et al. 2023 measured directly. For a prompt
  of demonstrations and a query, the change the demonstrations make to the query's hidden
  state at every layer (ICL: with them minus without) is compared, by cosine, with the
  change one gradient step on the same demonstrations makes to the query's hidden state
  without them (GD), and with the change one step on shuffled demonstrations makes (a
  baseline of the same size that carries no task).

It decides no claim: there is no trained encoder-decoder here, so it cannot say which
architecture learns better in context. Smoke scale: a tiny random decoder of ours on bytes.
Run the full scale with ``python -m whydecoder.experiments.ch05_real_icl --scale full``
(stored in ``data/real_icl/``).

Explained in the chapter "In-context learning", section "A real model".
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..nbce import answer_logprobs, exact_match
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..text import ByteTokenizer

RESULTS_DIR = results_dir("real_icl")
#: The page that shows it (under ``chapters/``).
PAGE = "05_in_context_learning/in_context_learning"
SECTIONS = ("accuracy", "implicit_finetuning")
INFORMS = ("C11",)
RULES: dict = {}
WORDS = ("apple", "river", "stone", "cloud", "paper", "glass", "horse", "music", "light", "chair", "bread", "green",
         "table", "dream", "ocean", "plant")
TASKS = {
    "copy": [(w, w) for w in WORDS],
    "next letter": [(c, chr(ord(c) + 1)) for c in "bcdfghjkmnprstvw"],
    "capital": [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
                ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Russia", "Moscow"), ("Greece", "Athens"),
                ("Austria", "Vienna"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Norway", "Oslo"),
                ("Poland", "Warsaw"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Cuba", "Havana")],
    "antonym": [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"),
                ("light", "dark"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("hard", "soft"),
                ("rich", "poor"), ("strong", "weak"), ("young", "old"), ("wet", "dry"), ("loud", "quiet"),
                ("near", "far")],
}


@dataclass(frozen=True)
class RealIclSettings:
    """One scale: the model (``"smollm2"`` or ``"tiny"``), the numbers of demonstrations,
    the draws of demonstrations per ``k``, the queries per draw, and for the implicit
    finetuning the ``k``, the prompts per task and the gradient step's size.
    Defined in the chapter "In-context learning"."""

    model: str
    shots: tuple[int, ...]
    draws: int
    queries: int
    gd_shots: int
    gd_prompts: int
    gd_lr: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        if self.model not in ("smollm2", "tiny"):
            raise ValueError(f"model must be 'smollm2' or 'tiny', got {self.model!r}")
        if not self.shots or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in self.shots):
            raise ValueError(f"shots must be ints >= 0, got {self.shots!r}")
        for name in ("draws", "queries", "gd_shots", "gd_prompts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max(self.shots) + self.queries > min(len(p) for p in TASKS.values()):
            raise ValueError(f"{max(self.shots)} demonstrations and {self.queries} queries need more pairs than a task has")
        if not self.gd_lr > 0:
            raise ValueError(f"gd_lr must be > 0, got {self.gd_lr!r}")


SETTINGS = {
    "smoke": RealIclSettings(model="tiny", shots=(0, 1, 2), draws=2, queries=2, gd_shots=2, gd_prompts=2),
    "full": RealIclSettings(model="smollm2", shots=(0, 1, 2, 4, 8), draws=4, queries=8, gd_shots=4, gd_prompts=6),
}


def demo_text(pair: tuple[str, str]) -> str:
    """One demonstration. Defined in the chapter "In-context learning"."""
    return f"input: {pair[0]}\noutput: {pair[1]}\n\n"


def prompt_parts(demos, query) -> tuple[str, str]:
    """The prompt (demonstrations, then the query's input) and the answer it continues with.
    Defined in the chapter "In-context learning"."""
    return "".join(demo_text(d) for d in demos) + f"input: {query[0]}\noutput:", f" {query[1]}"


def load_model(s: RealIclSettings):
    """``(model, encode)``: SmolLM2-135M with its tokenizer, or a tiny random decoder on
    bytes. Defined in the chapter "In-context learning"."""
    if s.model == "smollm2":
        from ..llama_gguf import load_smollm2

        model, _, encode = load_smollm2(max_len=1024)
        return model, encode
    torch.manual_seed(s.seed)
    cfg = ModelConfig(arch="decoder", vocab_size=ByteTokenizer().vocab_size, max_len=512, d_model=32, n_heads=4,
                      n_layers=2, position="rope", norm_layer="rmsnorm", gated_mlp=True, activation="silu", bias=False)
    return Transformer(cfg).eval(), ByteTokenizer().encode


def _accuracy_section(s: RealIclSettings, model, encode, progress: bool) -> list[dict]:
    rows = []
    grid = [(task, k, draw) for task in TASKS for k in s.shots for draw in range(s.draws)]
    for task, k, draw in tqdm(grid, desc="accuracy", disable=not progress, leave=False):
        rng = random.Random(f"{s.seed}-{task}-{k}-{draw}")
        pairs = rng.sample(TASKS[task], k + s.queries)  # a random draw, in a random order
        demos, queries = pairs[:k], pairs[k:]
        right = 0
        for q in queries:
            prompt, answer = prompt_parts(demos, q)
            ids = encode(prompt + answer)
            n_prompt = len(encode(prompt))
            right += exact_match(answer_logprobs(model, None, ids[:n_prompt], ids[n_prompt:]), ids[n_prompt:])
        rows.append({"task": task, "k": k, "draw": draw, "accuracy": right / len(queries),
                     "chance": 1 / len({b for _, b in TASKS[task]})})
    return rows


def layer_states(model: Transformer, ids: list[int], params: dict | None = None) -> torch.Tensor:
    """The residual stream at the last position after every block, ``(layers, d)``, with
    the model's own parameters or ``params`` in their place. Defined in the chapter
    "In-context learning"."""
    states = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: states.append(out[0, -1])) for b in model.decoder.blocks]
    try:
        if params is None:
            model.hidden_states(torch.tensor([ids]))
        else:
            torch.func.functional_call(model, params, args=(), kwargs={"tokens": torch.tensor([ids])})
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(states)


def gradient_step(model: Transformer, ids: list[int], answer_mask: list[bool], lr: float) -> dict:
    """The parameters after one SGD step of size ``lr`` on the loss of the tokens marked in
    ``answer_mask`` (the demonstrations' answers). Defined in the chapter "In-context learning"."""
    model.zero_grad(set_to_none=True)
    tokens = torch.tensor([ids])
    logits = model(tokens[:, :-1])[0]
    mask = torch.tensor(answer_mask[1:])
    loss = F.cross_entropy(logits[mask], tokens[0, 1:][mask])
    grads = torch.autograd.grad(loss, [p for p in model.parameters()])
    return {name: (p - lr * g).detach() for (name, p), g in zip(model.named_parameters(), grads)}


def _demo_tokens(demos, encode) -> tuple[list[int], list[bool]]:
    ids, mask = [], []
    for a, b in demos:
        head, tail = encode(f"input: {a}\noutput:"), encode(f" {b}\n\n")
        ids += head + tail
        mask += [False] * len(head) + [True] * len(tail)
    return ids, mask


def _implicit_section(s: RealIclSettings, model, encode, progress: bool) -> list[dict]:
    rows = []
    grid = [(task, i) for task in TASKS for i in range(s.gd_prompts)]
    for task, i in tqdm(grid, desc="implicit finetuning", disable=not progress, leave=False):
        rng = random.Random(f"{s.seed}-gd-{task}-{i}")
        pairs = rng.sample(TASKS[task], s.gd_shots + 1)
        demos, query = pairs[:-1], pairs[-1]
        prompt, _ = prompt_parts(demos, query)
        alone, _ = prompt_parts([], query)
        with torch.no_grad():
            base = layer_states(model, encode(alone))
            icl = layer_states(model, encode(prompt)) - base
        ids, mask = _demo_tokens(demos, encode)
        gd_params = gradient_step(model, ids, mask, s.gd_lr)
        answers = [b for _, b in demos]
        shuffled = [(a, answers[(j + 1) % len(answers)]) for j, (a, _) in enumerate(demos)]  # the task broken
        if all(x == y for x, y in zip(shuffled, demos)):
            shuffled = [(a, b[::-1]) for a, b in demos]
        sids, smask = _demo_tokens(shuffled, encode)
        shuffled_params = gradient_step(model, sids, smask, s.gd_lr)
        with torch.no_grad():
            gd = layer_states(model, encode(alone), gd_params) - base
            control = layer_states(model, encode(alone), shuffled_params) - base
        del gd_params, shuffled_params
        rows.append({"task": task, "prompt": i,
                     "cos_icl_gd": F.cosine_similarity(icl, gd, dim=-1).tolist(),
                     "cos_icl_shuffled": F.cosine_similarity(icl, control, dim=-1).tolist(),
                     "cos_gd_shuffled": F.cosine_similarity(gd, control, dim=-1).tolist()})
    return rows


@functools.lru_cache(maxsize=2)
def _model(s: RealIclSettings):
    return load_model(s)


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Measure at ``scale``; with ``out``, store after each section and skip sections
    already stored. Defined in the chapter "In-context learning"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch05_real_icl", scale, out)
    sections = {"accuracy": lambda: _accuracy_section(s, *_model(s), progress),
                "implicit_finetuning": lambda: _implicit_section(s, *_model(s), progress)}
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, command)


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings, else
    ``None``. Defined in the chapter "In-context learning"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def accuracy_curves(results: dict) -> dict[str, dict[int, float]]:
    """``{task: {k: mean accuracy over draws}}``. Defined in the chapter "In-context learning"."""
    curves: dict = {}
    for r in results["accuracy"]:
        curves.setdefault(r["task"], {}).setdefault(r["k"], []).append(r["accuracy"])
    return {t: {k: sum(v) / len(v) for k, v in sorted(c.items())} for t, c in curves.items()}


if __name__ == "__main__":
    experiment_main("experiments.ch05_real_icl", run, RESULTS_DIR)
