"""A small, deterministic trainer: AdamW, warmup + cosine schedule, tqdm progress,
tokens/s, checkpoint and resume.

Checkpoints hold tensors, numbers and strings only and are loaded with
``torch.load(weights_only=True)``; a checkpoint made for another model configuration
is refused. Explained in "How to read this book".
"""

from __future__ import annotations

import io
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .model import Transformer
from .objectives import Batch, batch_loss
from .storage import atomic_write_bytes


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, torch (CPU and CUDA) and return a CPU generator for data.

    Defined in "How to read this book".
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class TrainConfig:
    """Optimisation settings. ``device="auto"`` picks CUDA when present (bf16 autocast there).

    Defined in "How to read this book".
    """

    steps: int = 200
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    checkpoint_path: str | None = None
    checkpoint_every: int = 100
    progress: bool = True

    def __post_init__(self):
        def integer(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

        def number(name, low, high=math.inf, low_open=False):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value > low if low_open else value >= low) and value <= high
            if not ok:
                bound = f"> {low}" if low_open else f">= {low}"
                raise ValueError(f"{name} must be a finite number {bound}" + (f" and <= {high}" if high < math.inf else "")
                                 + f", got {value!r}")

        integer("steps", 1)
        integer("warmup", 0)
        integer("seed", 0)
        integer("log_every", 1)
        integer("checkpoint_every", 1)
        number("lr", 0, low_open=True)
        number("min_lr_ratio", 0, 1)
        number("weight_decay", 0)
        if self.grad_clip is not None:
            number("grad_clip", 0)  # 0 or None: no clipping
        if self.warmup > self.steps:
            raise ValueError(f"warmup ({self.warmup}) must not exceed steps ({self.steps})")
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class RunSizes:
    """The sizes a chapter experiment's settings share: a model of width ``d_model`` with
    ``n_layers`` layers and ``n_heads`` heads, trained for ``steps`` steps of ``batch``
    examples. Each experiment subclasses it with its own fields, including ``lr``.

    Defined in "How to read this book".
    """

    d_model: int
    n_layers: int
    n_heads: int
    steps: int
    batch: int

    def train_config(self, seed: int, progress: bool = True) -> TrainConfig:
        """AdamW at the experiment's ``lr`` for ``steps`` steps, 5% of them warmup."""
        return warmed_up(self.steps, self.lr, seed, progress)


def warmed_up(steps: int, lr: float, seed: int, progress: bool = True) -> TrainConfig:
    """The chapters' training schedule: AdamW at ``lr`` for ``steps`` steps, 5% of them
    warmup. Defined in "How to read this book"."""
    return TrainConfig(steps=steps, lr=lr, warmup=max(1, steps // 20), seed=seed, progress=progress)


@dataclass
class TrainResult:
    """Logged steps and losses, throughput, and the step a resumed run started from.

    Defined in "How to read this book".
    """

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    tokens_per_s: float = 0.0
    resumed_from: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio``.

    Defined in "How to read this book".
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


#: The settings a resumed run must share with the run that wrote its checkpoint.
RESUME_FIELDS = ("steps", "lr", "min_lr_ratio", "warmup", "weight_decay", "grad_clip", "seed")


def _resume_settings(cfg: TrainConfig) -> dict:
    return {name: getattr(cfg, name) for name in RESUME_FIELDS}


def _save_checkpoint(path, model, opt, step, data_rng, result, cfg: TrainConfig) -> None:
    state = {
        "train_config": _resume_settings(cfg),
        "model_config": model.cfg.to_dict(),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "torch_rng": torch.get_rng_state(),
        "data_rng": data_rng.get_state(),
        "log_steps": result.steps,
        "log_losses": result.losses,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, model: Transformer) -> dict:
    """Load a checkpoint into ``model`` (``weights_only=True``); refuses another config.

    Defined in "How to read this book".
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in ("model_config", "model") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a checkpoint written by train(): it lacks {missing}")
    if state.get("model_config") != model.cfg.to_dict():
        diff = {k: (v, model.cfg.to_dict().get(k)) for k, v in state.get("model_config", {}).items() if model.cfg.to_dict().get(k) != v}
        raise ValueError(f"checkpoint {path} was made for another model config (checkpoint vs model: {diff})")
    model.load_state_dict(state["model"])
    return state


def train(
    model: Transformer, make_batch: Callable[[torch.Generator], Batch], cfg: TrainConfig,
    loss_fn: Callable[[Transformer, Batch], torch.Tensor] = batch_loss,
) -> TrainResult:
    """Train ``model`` for ``cfg.steps`` steps on batches from ``make_batch(generator)``.

    Deterministic for a given seed; resumes from ``cfg.checkpoint_path`` when that file
    exists (the same data stream continues). Defined in "How to read this book".
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch nn.Module (a whydecoder Transformer), got {type(model).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not callable(make_batch) or not callable(loss_fn):
        raise TypeError("make_batch and loss_fn must be callables (make_batch(generator) -> Batch)")
    data_rng = seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    result, start = TrainResult(), 0
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, model)
        stored = state.get("train_config")
        if stored != _resume_settings(cfg):
            diff = {k: (v, (stored or {}).get(k)) for k, v in _resume_settings(cfg).items() if (stored or {}).get(k) != v}
            raise ValueError(f"checkpoint {ckpt} was made with other training settings (now vs checkpoint: {diff}); "
                             "move it away to start again")
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        data_rng.set_state(state["data_rng"])
        start = result.resumed_from = int(state["step"])
        result.steps, result.losses = list(state["log_steps"]), list(state["log_losses"])
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    n_tokens, t0 = 0, time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress, desc="train", leave=False)
    for step in bar:
        batch = make_batch(data_rng).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast:
            loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n_tokens += batch.tokens.numel() + (0 if batch.source is None else batch.source.numel())
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            result.steps.append(step)
            result.losses.append(loss.item())
            bar.set_postfix(loss=f"{result.losses[-1]:.3f}")
        if ckpt is not None and ((step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1):
            _save_checkpoint(ckpt, model, opt, step + 1, data_rng, result, cfg)
    elapsed = time.perf_counter() - t0
    result.tokens_per_s = n_tokens / elapsed if elapsed > 0 and n_tokens else 0.0
    model.eval()
    return result


@torch.no_grad()
def evaluate(model: Transformer, batches: list[Batch], loss_fn=batch_loss) -> float:
    """Mean loss over fixed batches, weighted by target tokens. Defined in "How to read this book"."""
    if not isinstance(batches, (list, tuple)) or not batches:
        raise ValueError(f"batches must be a non-empty list of Batch, got {type(batches).__name__}"
                         + (f" of length {len(batches)}" if isinstance(batches, (list, tuple)) else ""))
    model.eval()
    device = next(model.parameters()).device
    total = weight = 0.0
    for batch in batches:
        batch = batch.to(device)
        total += loss_fn(model, batch).item() * batch.n_target_tokens
        weight += batch.n_target_tokens
    if not weight:
        raise ValueError("the batches hold no target token to evaluate")
    return total / weight


@torch.no_grad()
def exact_match(model: Transformer, batches: list[Batch]) -> float:
    """Fraction of examples whose whole target is the argmax at every target position
    (teacher forcing), i.e. whose greedy decoding would be exactly right.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if not isinstance(batches, (list, tuple)) or not batches or not all(isinstance(b, Batch) for b in batches):
        raise ValueError(f"batches must be a non-empty list of Batch, got {type(batches).__name__}"
                         + (f" of {len(batches)}" if isinstance(batches, (list, tuple)) else ""))
    model.eval()
    hits = total = 0
    for i, b in enumerate(batches):
        pred = model(b.tokens, **b.model_inputs()).argmax(-1)
        if not pred.shape == b.targets.shape == b.loss_mask.shape:
            raise ValueError(f"batch {i}: predictions {tuple(pred.shape)}, targets {tuple(b.targets.shape)} and loss "
                             f"mask {tuple(b.loss_mask.shape)} must have one shape (no broadcasting)")
        ok = ((pred == b.targets) | ~b.loss_mask).all(dim=1)
        hits += int(ok.sum())
        total += len(ok)
    return hits / total
