"""Language models without positional encoding (NoPE): the learned half of claim C08.
Explained in the chapter "Encoder vs decoder at equal parameters".

Five models on the same byte corpus, the same steps, batches and seeds: causal LMs with no
positions, learned absolute positions and rotary positions, and masked LMs (BERT's
objective) with the same three choices. Every sequence starts with ``<bos>``.
For each model we measure

- the validation loss (nats per byte; a masked LM's loss is on its masked positions, so
  it is compared only with the other masked LMs);
- a linear probe per layer that predicts a token's absolute position from its hidden
  state (ridge regression, fitted on some sequences, scored as R^2 on others);
- the prefix-shuffle test: shuffle the first half of each sequence (``<bos>`` stays) and
  measure how much the loss on the second half rises. A model that ignores the order of
  what it read shows no rise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .model import Transformer
from .objectives import Batch, full_lm, masked_lm
from .probes import permutation_gap
from .results import (experiment_command, experiment_main, load_complete as load_stored, per_seed_sections,
                      run_sections, settings_dict)
from .scale import current_scale
from .text import corpus_tokens, random_chunks, with_bos
from .train import RunSizes, evaluate, train

RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "nope"
# name -> (arch, position)
VARIANTS = {
    "causal, none": ("decoder", "none"),
    "causal, learned": ("decoder", "learned"),
    "causal, rope": ("decoder", "rope"),
    "masked, none": ("encoder", "none"),
    "masked, learned": ("encoder", "learned"),
    "masked, rope": ("encoder", "rope"),
}
SECTIONS = tuple(VARIANTS)  # one stored section per variant, so a long run resumes


@dataclass(frozen=True)
class NopeSettings(RunSizes):
    """Sizes of one scale of the NoPE experiment. Defined in the chapter "Encoder vs decoder
    at equal parameters"."""

    length: int
    seeds: tuple[int, ...]
    eval_batches: int
    probe_sequences: int
    lr: float = 3e-3


SETTINGS = {
    "smoke": NopeSettings(d_model=32, n_layers=2, n_heads=2, steps=40, batch=16, length=32, seeds=(0, 1),
                          eval_batches=2, probe_sequences=32),
    "full": NopeSettings(d_model=64, n_layers=4, n_heads=4, steps=800, batch=32, length=64, seeds=(0, 1, 2),
                         eval_batches=16, probe_sequences=256),
}


def lm_batch(arch: str, rows: torch.Tensor, generator: torch.Generator, score_from: int = 0) -> Batch:
    """The batch a model of ``arch`` trains on from ``rows`` (``<bos>`` first): next-token
    prediction for ``decoder``, BERT's masked LM for ``encoder``. With ``score_from`` > 0
    only tokens at positions ``>= score_from`` count (for a masked LM: only those are
    masked). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if not 0 <= score_from < rows.shape[1] - 1:
        raise ValueError(f"score_from {score_from} must be in [0, {rows.shape[1] - 1}) for rows of length {rows.shape[1]}")
    if arch == "decoder":
        batch = full_lm(rows)
        batch.loss_mask[:, : max(0, score_from - 1)] = False  # target t is the token at position t + 1
        return batch
    if arch == "encoder":
        if score_from == 0:
            return masked_lm(rows, generator)
        tail = masked_lm(rows[:, score_from:], generator)
        head = rows[:, :score_from]
        return Batch(torch.cat([head, tail.tokens], 1), rows.clone(),
                     torch.cat([torch.zeros_like(head, dtype=torch.bool), tail.loss_mask], 1))
    raise ValueError(f"unknown arch {arch!r}; expected 'decoder' or 'encoder'")


@torch.no_grad()
def layer_states(model: Transformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Hidden states ``(B, T, d)`` entering the first block (embedding plus any absolute
    positions) and leaving every block, read with forward hooks.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if model.cfg.arch not in ("encoder", "decoder"):
        raise ValueError(f"layer_states supports 'encoder' and 'decoder', not {model.cfg.arch!r}")
    states: list[torch.Tensor] = []
    blocks = model.decoder.blocks
    hooks = [blocks[0].register_forward_pre_hook(lambda m, args: states.append(args[0].detach()))]
    hooks += [b.register_forward_hook(lambda m, args, out: states.append(out.detach())) for b in blocks]
    try:
        model.eval()
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return states


def position_probe_r2(train_states: torch.Tensor, test_states: torch.Tensor, ridge: float = 1e-3) -> float:
    """R^2 of a linear (ridge) regression from hidden state to absolute position, fitted on
    ``train_states`` ``(B, T, d)`` and scored on ``test_states``. 1 is a perfect read-out,
    0 no better than predicting the mean position; below 0 is worse than that.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if train_states.dim() != 3 or test_states.shape[1:] != train_states.shape[1:]:
        raise ValueError(f"states must be (B, T, d) with equal T and d, got {tuple(train_states.shape)} "
                         f"and {tuple(test_states.shape)}")

    def flat(states):
        b, t, d = states.shape
        return states.reshape(b * t, d).double(), torch.arange(t, dtype=torch.float64).repeat(b)

    x, y = flat(train_states)
    mean, scale = x.mean(0), x.std(0) + 1e-8
    x = (x - mean) / scale
    w = torch.linalg.solve(x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype), x.T @ (y - y.mean()))
    xt, yt = flat(test_states)
    pred = ((xt - mean) / scale) @ w + y.mean()
    return float(1 - ((yt - pred) ** 2).sum() / ((yt - yt.mean()) ** 2).sum())


def shuffle_first_half(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each row with positions ``1 .. T/2 - 1`` permuted at random (``<bos>`` and the
    second half stay). Defined in the chapter "Encoder vs decoder at equal parameters"."""
    half = rows.shape[1] // 2
    out = rows.clone()
    for row in out:
        row[1:half] = row[1:half][torch.randperm(half - 1, generator=generator)]
    return out


def _measure(model: Transformer, s: NopeSettings, corpus: torch.Tensor) -> dict:
    arch = model.cfg.arch
    g = torch.Generator().manual_seed(10_000)  # the same held-out rows and masks for every model
    rows = [with_bos(random_chunks(corpus, s.batch, s.length - 1, g)) for _ in range(s.eval_batches)]
    val = [lm_batch(arch, r, torch.Generator().manual_seed(i)) for i, r in enumerate(rows)]
    half = s.length // 2
    second = [lm_batch(arch, r, torch.Generator().manual_seed(i), score_from=half) for i, r in enumerate(rows)]
    shuffled = []  # the same scored tokens (and masks), the first half read in another order
    for r, b in zip(rows, second):
        mixed = shuffle_first_half(r, g)
        if arch == "encoder":
            tokens = b.tokens.clone()
            tokens[:, :half] = mixed[:, :half]
            shuffled.append(Batch(tokens, b.targets, b.loss_mask))
        else:
            shuffled.append(Batch(mixed[:, :-1], mixed[:, 1:], b.loss_mask))
    probe_rows = with_bos(random_chunks(corpus, 2 * s.probe_sequences, s.length - 1, g))
    states = layer_states(model, probe_rows)
    n = s.probe_sequences
    perm = torch.randperm(s.length, generator=g)
    return {
        "val_loss": evaluate(model, val),
        "second_half_loss": evaluate(model, second),
        "shuffled_loss": evaluate(model, shuffled),
        "probe_r2": [position_probe_r2(h[:n], h[n:]) for h in states],
        "permutation_gap": permutation_gap(model, probe_rows[:4], perm),
    }


def _one_run(name: str, seed: int, s: NopeSettings, corpus: dict, progress: bool) -> dict:
    arch, position = VARIANTS[name]
    cfg = ModelConfig(arch=arch, position=position, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
                      max_len=s.length)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    result = train(model, lambda g: lm_batch(arch, with_bos(random_chunks(corpus["train"], s.batch, s.length - 1, g)), g),
                   s.train_config(seed, progress))
    return {"variant": name, "arch": arch, "position": position, "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()), "train_losses": result.losses,
            **_measure(model, s, corpus["val"])}


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train every variant for every seed at ``scale`` and measure it; with ``out``, store
    the results. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    corpus = {split: corpus_tokens(split) for split in ("train", "val")}
    sections = per_seed_sections(VARIANTS, s.seeds, lambda name, seed: _one_run(name, seed, s, corpus, progress))
    return run_sections(sections, settings_dict(s), out, experiment_command("nope", scale, out))


def all_runs(results: dict) -> list[dict]:
    """Every run of a result payload's ``results``, variant by variant. Defined in the
    chapter "Encoder vs decoder at equal parameters"."""
    return [r for name in VARIANTS for r in results[name]]


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if complete, else ``None``. Defined in the chapter "Encoder vs
    decoder at equal parameters"."""
    return load_stored(path, SECTIONS, settings_dict(SETTINGS["full"]))


def summary(runs: list[dict]) -> dict[str, dict]:
    """Per variant: mean and standard deviation over seeds of the validation loss, the
    shuffle rise (shuffled minus unshuffled second-half loss), the best probe R^2 over
    layers and the probe R^2 at the input of the first block, and the largest permutation
    gap. Defined in the chapter "Encoder vs decoder at equal parameters"."""
    out = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == name]

        def stats(values):
            t = torch.tensor(values, dtype=torch.float64)
            return float(t.mean()), float(t.std(unbiased=True)) if len(t) > 1 else float("nan")

        out[name] = {
            "val_loss": stats([r["val_loss"] for r in rs]),
            "shuffle_rise": stats([r["shuffled_loss"] - r["second_half_loss"] for r in rs]),
            "best_probe_r2": stats([max(r["probe_r2"][1:]) for r in rs]),
            "input_probe_r2": stats([r["probe_r2"][0] for r in rs]),
            "probe_r2_by_layer": torch.tensor([r["probe_r2"] for r in rs]).mean(0).tolist(),
            "permutation_gap": max(r["permutation_gap"] for r in rs),
        }
    return out


def c08_checks(summ: dict[str, dict], tolerance: float = 0.05) -> dict[str, bool]:
    """The tests behind C08's verdict, each True or False:

    - ``bidirectional_blind``: the trained masked LM without positions is still
      permutation-equivariant (gap < 1e-4) and shuffling what it reads changes its loss by
      less than 1e-4;
    - ``bidirectional_fails``: its loss is worse than the better masked LM with positions
      by more than ``tolerance`` (relative);
    - ``causal_learns_position``: a probe reads position from some layer of the causal NoPE
      LM (R^2 > 0.5) though not from its input (R^2 < 0.2), and shuffling hurts it;
    - ``causal_competitive``: the causal NoPE LM's loss is within ``tolerance`` (relative) of
      the better causal LM with positions.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    nope, mlm = summ["causal, none"], summ["masked, none"]
    best_positional = min(summ["causal, learned"]["val_loss"][0], summ["causal, rope"]["val_loss"][0])
    best_masked = min(summ["masked, learned"]["val_loss"][0], summ["masked, rope"]["val_loss"][0])
    return {
        "bidirectional_blind": mlm["permutation_gap"] < 1e-4 and abs(mlm["shuffle_rise"][0]) < 1e-4,
        "bidirectional_fails": mlm["val_loss"][0] > (1 + tolerance) * best_masked,
        "causal_learns_position": nope["best_probe_r2"][0] > 0.5 and nope["input_probe_r2"][0] < 0.2
        and nope["shuffle_rise"][0] > 0,
        "causal_competitive": nope["val_loss"][0] <= (1 + tolerance) * best_positional,
    }


def c08_verdict(checks: dict[str, bool]) -> str:
    """``supported`` when every check of :func:`c08_checks` passes; ``refuted`` when the
    causal NoPE LM learns no position or the bidirectional NoPE model does not fail;
    ``nuanced`` otherwise (the mechanism holds but the NoPE LM is clearly worse).
    Defined in the chapter "Encoder vs decoder at equal parameters"."""
    if all(checks.values()):
        return "supported"
    if not checks["causal_learns_position"] or not (checks["bidirectional_blind"] and checks["bidirectional_fails"]):
        return "refuted"
    return "nuanced"


if __name__ == "__main__":
    experiment_main("nope", run, RESULTS_DIR)
