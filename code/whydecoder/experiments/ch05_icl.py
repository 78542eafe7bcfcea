"""In-context learning: is the prompt an implicit gradient step, and do causal decoders
learn better in context?

- The exact construction of von Oswald et al. (2023): one linear self-attention layer whose
  forward pass is one gradient-descent step on the in-context examples.
- The dual form of Dai et al. (2023): linear attention over demonstrations equals the
  query times a weight matrix plus an update built from the demonstrations.
- A linear self-attention layer trained on random regression tasks, against one GD step
  with the best step size.
- In-context linear regression (Garg et al. 2022) and two discrete few-shot tasks with
  small transformers at equal parameters that differ only in their wiring: causal
  decoder, prefix-LM (demonstrations see each other, Ding et al. 2024), encoder-decoder;
  against least squares, ridge and nearest neighbours. Claim C11 is decided by
  :data:`RULES` from the decoder against the encoder-decoder.

Explained in the chapter "In-context learning".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..accounting import EQUAL_PARAMETERS_TOLERANCE, matched_encoder_decoder, parameter_count
from ..claims import Claim, Evidence, counted, counted_of, protocol_stop, stored_results
from ..command import experiment_command, experiment_main
from ..config import ModelConfig
from ..model import Transformer
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_scale
from ..verdicts import READ_CLEARLY, Rule, Verdict, compare, learned, paired_differences, t_interval

RESULTS_DIR = results_dir("icl")
#: The page that shows it (under ``chapters/``).
PAGE = "05_in_context_learning/in_context_learning"
ICL_ARCHS = ("decoder", "prefix-lm", "encoder-decoder")


def regression_tasks(batch: int, n_points: int, dim: int, generator: torch.Generator, noise: float = 0.0):
    """``batch`` random linear tasks ``y = w.x (+ noise)`` with ``w, x ~ N(0, I)``:
    returns ``x (batch, n_points, dim)``, ``y (batch, n_points)`` and ``w (batch, dim)``.

    Defined in the chapter "In-context learning".
    """
    if batch < 1 or n_points < 1 or dim < 1:
        raise ValueError(f"batch, n_points and dim must be >= 1, got {batch}, {n_points}, {dim}")
    w = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    x = torch.randn(batch, n_points, dim, generator=generator, dtype=torch.float64)
    y = torch.einsum("bnd,bd->bn", x, w)
    if noise:
        y = y + noise * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    return x, y, w


def gd_prediction(x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_query: torch.Tensor, lr: float) -> torch.Tensor:
    """Prediction for ``x_query`` after one gradient step of size ``lr`` from ``W = 0`` on
    the loss ``1/(2N) sum_i (W x_i - y_i)^2``: ``lr/N sum_i y_i x_i . x_query``.

    Defined in the chapter "In-context learning".
    """
    n = x_ctx.shape[-2]
    delta_w = lr / n * torch.einsum("bn,bnd->bd", y_ctx, x_ctx)
    return torch.einsum("bd,bd->b", delta_w, x_query)


def optimal_gd_lr(n: int, dim: int) -> float:
    """The step size minimising the expected error of one GD step from zero, for
    ``x, w ~ N(0, I)``: ``N / (N + dim + 1)`` (from the Wishart moment E[(X^T X)^2]).

    Defined in the chapter "In-context learning".
    """
    return n / (n + dim + 1)


class LinearSelfAttention(nn.Module):
    """One linear self-attention layer (no softmax) over tokens ``e_i = (x_i, y_i)``:
    the query token is updated by ``P/N sum_i (W_V e_i)(W_K e_i)^T (W_Q e_q)``, the sum over
    the ``N`` context tokens; the prediction is the query's last coordinate.

    Defined in the chapter "In-context learning".
    """

    def __init__(self, dim: int, init_scale: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        size = dim + 1

        def param():
            return nn.Parameter(init_scale * torch.randn(size, size, generator=generator, dtype=torch.float64))

        self.w_k, self.w_q, self.w_v, self.proj = param(), param(), param(), param()

    def forward(self, x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        ctx = torch.cat([x_ctx, y_ctx[..., None]], dim=-1)  # (B, N, dim + 1)
        query = torch.cat([x_query, torch.zeros_like(x_query[..., :1])], dim=-1)  # (B, dim + 1)
        keys, values = ctx @ self.w_k.T, ctx @ self.w_v.T
        scores = torch.einsum("bnd,bd->bn", keys, query @ self.w_q.T) / ctx.shape[1]
        update = torch.einsum("bn,bnd->bd", scores, values) @ self.proj.T
        return (query + update)[..., -1]


def gd_layer(dim: int, lr: float) -> LinearSelfAttention:
    """von Oswald et al.'s construction: the layer whose forward pass is one GD step of
    size ``lr``. Keys and queries read ``x``, values read ``y``, the projection scales by
    ``lr``. Defined in the chapter "In-context learning".
    """
    layer = LinearSelfAttention(dim)
    with torch.no_grad():
        reads_x = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
        reads_x[:dim, :dim] = torch.eye(dim, dtype=torch.float64)
        layer.w_k.copy_(reads_x)
        layer.w_q.copy_(reads_x)
        layer.w_v.zero_()
        layer.w_v[dim, dim] = 1.0
        layer.proj.copy_(lr * torch.eye(dim + 1, dtype=torch.float64))
    return layer


def train_linear_attention(dim: int, n: int, steps: int, batch: int = 256, lr: float = 1e-3, seed: int = 0,
                           progress: bool = False) -> tuple[LinearSelfAttention, list[float]]:
    """Train a linear self-attention layer on random regression tasks (loss on the query).

    Defined in the chapter "In-context learning".
    """
    g = torch.Generator().manual_seed(seed)
    layer = LinearSelfAttention(dim, init_scale=0.05, generator=g)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(steps), desc="train LSA", disable=not progress, leave=False):
        x, y, _ = regression_tasks(batch, n + 1, dim, g)
        loss = (layer(x[:, :n], y[:, :n], x[:, n]) - y[:, n]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return layer, losses


def core_config(arch: str, task: str, **sizes) -> ModelConfig:
    """The transformer inside an in-context model of ``arch``, all three at equal
    non-embedding parameters: the prefix-LM is the decoder with another mask, the
    encoder-decoder :func:`whydecoder.accounting.matched_encoder_decoder` of it (half the
    layers in each stack, a narrower MLP to pay for the cross-attention). ``sizes`` are
    :class:`ModelConfig` fields of the decoder. Defined in the chapter "In-context learning"."""
    if arch not in ICL_ARCHS:
        raise ValueError(f"unknown arch {arch!r} for {task}; expected one of {ICL_ARCHS}")
    decoder = ModelConfig(arch="decoder", **sizes)
    if arch == "encoder-decoder":
        if decoder.n_layers % 2:
            raise ValueError(f"encoder-decoder splits n_layers in two; got odd n_layers={decoder.n_layers}")
        return matched_encoder_decoder(decoder)
    return decoder.replace(arch=arch)


class InContextRegressor(nn.Module):
    """A transformer reading regression examples as tokens and predicting the query's ``y``.

    Tokens are ``[x, y, is_query, is_start]``: a start token, then ``k`` demonstrations,
    then the query (``y = 0``). The architectures differ only in wiring:

    - ``decoder``: one causal stack over ``[start, demos, query]``;
    - ``prefix-lm``: the same, with ``[start, demos]`` as a bidirectional prefix;
    - ``encoder-decoder``: the encoder reads ``[start, demos]``, the decoder the query
      (half the layers in each stack and a narrower MLP: equal parameters, :func:`core_config`).

    No positional encoding: the demonstrations are a set. Defined in the chapter
    "In-context learning".
    """

    def __init__(self, arch: str, dim: int, max_points: int, d_model: int = 64, n_layers: int = 4, n_heads: int = 4):
        super().__init__()
        self.arch, self.dim, self.max_points = arch, dim, max_points
        self.core = Transformer(core_config(arch, "in-context regression", vocab_size=1, max_len=max_points + 2,
                                            d_model=d_model, n_heads=n_heads, n_layers=n_layers, position="none"))
        self.read_in = nn.Linear(dim + 3, d_model)
        self.read_out = nn.Linear(d_model, 1)

    def _tokens(self, x_ctx, y_ctx, x_query):
        b, k, d = x_ctx.shape
        start = torch.zeros(b, 1, d + 3, dtype=x_ctx.dtype)
        start[..., -1] = 1
        demos = torch.cat([x_ctx, y_ctx[..., None], torch.zeros(b, k, 2, dtype=x_ctx.dtype)], dim=-1)
        query = torch.cat([x_query, torch.zeros(b, 1, dtype=x_ctx.dtype), torch.ones(b, 1, dtype=x_ctx.dtype),
                           torch.zeros(b, 1, dtype=x_ctx.dtype)], dim=-1)[:, None]
        return torch.cat([start, demos], dim=1), query

    def forward(self, x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        if x_ctx.shape[1] > self.max_points:
            raise ValueError(f"{x_ctx.shape[1]} demonstrations exceed max_points {self.max_points}")
        if x_ctx.shape[-1] != self.dim or x_query.shape[-1] != self.dim:
            raise ValueError(f"inputs must have dimension {self.dim}, got {x_ctx.shape[-1]} and {x_query.shape[-1]}")
        context, query = self._tokens(x_ctx.float(), y_ctx.float(), x_query.float())
        context, query = self.read_in(context), self.read_in(query)
        if self.arch == "encoder-decoder":
            h = self.core.hidden_states(inputs_embeds=query, source_embeds=context)
        else:
            prefix = context.shape[1] if self.arch == "prefix-lm" else None
            h = self.core.hidden_states(inputs_embeds=torch.cat([context, query], dim=1), prefix_len=prefix)
        return self.read_out(h[:, -1]).squeeze(-1).double()


def _train_episodes(model: nn.Module, episode_loss, steps: int, lr: float, seed: int, desc: str,
                    progress: bool) -> list[float]:
    """AdamW on one freshly drawn batch of tasks per step; ``episode_loss(generator)``
    draws the tasks and returns the loss."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        loss = episode_loss(g)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def train_regressor(model: InContextRegressor, steps: int, batch: int = 64, lr: float = 1e-3, seed: int = 0,
                    progress: bool = False) -> list[float]:
    """Train on random tasks; each step draws a number of demonstrations ``k`` in
    ``[0, max_points]`` for the whole batch. Defined in the chapter "In-context learning"."""

    def episode_loss(g):
        k = int(torch.randint(0, model.max_points + 1, (1,), generator=g))
        x, y, _ = regression_tasks(batch, k + 1, model.dim, g)
        return (model(x[:, :k], y[:, :k], x[:, k]) - y[:, k]).pow(2).mean()

    return _train_episodes(model, episode_loss, steps, lr, seed, f"train {model.arch}", progress)


def baselines(x_ctx, y_ctx, x_query, ridge: float = 0.1) -> dict[str, torch.Tensor]:
    """Least squares (minimum norm), ridge and 1-nearest-neighbour predictions.

    Defined in the chapter "In-context learning".
    """
    k = x_ctx.shape[1]
    if k == 0:
        zero = torch.zeros(x_query.shape[0], dtype=torch.float64)
        return {"least squares": zero, "ridge": zero, "nearest neighbour": zero}
    w_ls = torch.linalg.pinv(x_ctx) @ y_ctx[..., None]
    eye = torch.eye(x_ctx.shape[-1], dtype=x_ctx.dtype)
    xt = x_ctx.transpose(1, 2)
    w_ridge = torch.linalg.solve(xt @ x_ctx + ridge * eye, xt @ y_ctx[..., None])
    nearest = (x_ctx - x_query[:, None]).norm(dim=-1).argmin(dim=1)
    return {
        "least squares": (w_ls.squeeze(-1) * x_query).sum(-1),
        "ridge": (w_ridge.squeeze(-1) * x_query).sum(-1),
        "nearest neighbour": y_ctx.gather(1, nearest[:, None]).squeeze(1),
    }


@torch.no_grad()
def error_curve(predict, max_points: int, dim: int, n_tasks: int = 2000, seed: int = 12345) -> list[float]:
    """Mean squared error on the query divided by ``dim`` (Garg et al.'s normalisation),
    for ``k = 0 .. max_points`` demonstrations, on fixed test tasks.

    Defined in the chapter "In-context learning".
    """
    g = torch.Generator().manual_seed(seed)
    x, y, _ = regression_tasks(n_tasks, max_points + 1, dim, g)

    def error(k: int) -> float:
        pred = predict(x[:, :k], y[:, :k], x[:, max_points])
        if pred.shape != y[:, max_points].shape:
            raise ValueError(f"predict returned shape {tuple(pred.shape)} for {k} demonstrations; expected one "
                             f"prediction per task, {tuple(y[:, max_points].shape)} (no broadcasting)")
        return float((pred - y[:, max_points]).pow(2).mean() / dim)

    return [error(k) for k in range(max_points + 1)]


DISCRETE_TASKS = ("shift", "lookup")


def discrete_tasks(kind: str, batch: int, k: int, n_symbols: int, generator: torch.Generator):
    """Few-shot tasks over ``n_symbols`` symbols, each with its own hidden function ``f``:

    - ``"shift"``: ``f(x) = (x + c) mod n_symbols`` with a random ``c`` per task; the query
      is a symbol not among the ``k`` demonstrations, so ``c`` must be inferred;
    - ``"lookup"``: ``f`` is a random permutation; the query is one of the demonstrated
      keys, so its answer must be found and copied.

    Returns ``x_ctx, y_ctx (batch, k)``, ``x_query, y_query (batch,)``.
    Defined in the chapter "In-context learning".
    """
    if kind not in DISCRETE_TASKS:
        raise ValueError(f"unknown task {kind!r}; expected one of {DISCRETE_TASKS}")
    if not 1 <= k < n_symbols:
        raise ValueError(f"k={k} demonstrations must be in [1, n_symbols - 1 = {n_symbols - 1}]")
    keys = torch.stack([torch.randperm(n_symbols, generator=generator) for _ in range(batch)])
    x_ctx = keys[:, :k]
    if kind == "shift":
        shift = torch.randint(0, n_symbols, (batch, 1), generator=generator)
        f = (torch.arange(n_symbols)[None] + shift) % n_symbols
        x_query = keys[:, k]
    else:
        f = torch.stack([torch.randperm(n_symbols, generator=generator) for _ in range(batch)])
        x_query = x_ctx.gather(1, torch.randint(0, k, (batch, 1), generator=generator)).squeeze(1)
    return x_ctx, f.gather(1, x_ctx), x_query, f.gather(1, x_query[:, None]).squeeze(1)


class FewShotClassifier(nn.Module):
    """A token-level transformer reading ``<start> x1 y1 ... xk yk`` and then the query
    ``xq``, predicting ``f(xq)`` among the symbols; wired as in :class:`InContextRegressor`
    (prefix: start and demonstrations). Rotary positions pair each ``x_i`` with its ``y_i``.

    Defined in the chapter "In-context learning".
    """

    def __init__(self, arch: str, n_symbols: int, max_shots: int, d_model: int = 64, n_layers: int = 4,
                 n_heads: int = 4):
        super().__init__()
        self.arch, self.n_symbols, self.max_shots = arch, n_symbols, max_shots
        self.start = n_symbols
        self.core = Transformer(core_config(arch, "few-shot tasks", vocab_size=n_symbols + 1,
                                            max_len=2 * max_shots + 2, d_model=d_model, n_heads=n_heads,
                                            n_layers=n_layers, position="rope"))

    def forward(self, x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        b, k = x_ctx.shape
        if k > self.max_shots:
            raise ValueError(f"{k} demonstrations exceed max_shots {self.max_shots}")
        demos = torch.stack([x_ctx, y_ctx], dim=2).reshape(b, 2 * k)
        context = torch.cat([torch.full((b, 1), self.start, dtype=torch.long), demos], dim=1)
        if self.arch == "encoder-decoder":
            logits = self.core(x_query[:, None], source=context)
        else:
            prefix = context.shape[1] if self.arch == "prefix-lm" else None
            logits = self.core(torch.cat([context, x_query[:, None]], dim=1), prefix_len=prefix)
        return logits[:, -1, : self.n_symbols]


def train_few_shot(model: FewShotClassifier, kind: str, steps: int, batch: int = 64, lr: float = 1e-3,
                   seed: int = 0, progress: bool = False) -> list[float]:
    """Train on random tasks of one kind, ``k`` drawn in ``[1, max_shots]`` per step.

    Defined in the chapter "In-context learning".
    """

    def episode_loss(g):
        k = int(torch.randint(1, model.max_shots + 1, (1,), generator=g))
        x_ctx, y_ctx, x_query, y_query = discrete_tasks(kind, batch, k, model.n_symbols, g)
        return nn.functional.cross_entropy(model(x_ctx, y_ctx, x_query), y_query)

    return _train_episodes(model, episode_loss, steps, lr, seed, f"few-shot {kind} {model.arch}", progress)


@torch.no_grad()
def accuracy_curve(model: FewShotClassifier, kind: str, n_tasks: int = 1000, seed: int = 54321) -> list[float]:
    """Query accuracy for ``k = 1 .. max_shots`` demonstrations on fixed test tasks.

    Defined in the chapter "In-context learning".
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(1, model.max_shots + 1):
        x_ctx, y_ctx, x_query, y_query = discrete_tasks(kind, n_tasks, k, model.n_symbols, g)
        out.append(float((model(x_ctx, y_ctx, x_query).argmax(-1) == y_query).float().mean()))
    return out


@dataclass(frozen=True)
class ICLSettings:
    """Sizes of one scale of the in-context learning experiments.

    Defined in the chapter "In-context learning".
    """

    dim: int
    max_points: int
    lsa_dim: int
    lsa_n: int
    lsa_steps: int
    d_model: int
    n_layers: int
    steps: int
    seeds: tuple[int, ...]
    n_tasks: int
    n_symbols: int = 16
    max_shots: int = 8
    few_shot_steps: int = 60


SETTINGS = {
    "smoke": ICLSettings(dim=5, max_points=11, lsa_dim=5, lsa_n=10, lsa_steps=300, d_model=32, n_layers=2,
                         steps=60, seeds=(0, 1), n_tasks=500, few_shot_steps=40),
    "full": ICLSettings(dim=5, max_points=11, lsa_dim=5, lsa_n=10, lsa_steps=4000, d_model=64, n_layers=4,
                        steps=3000, seeds=(0, 1, 2, 3, 4), n_tasks=4000, few_shot_steps=1500),
}
SECTIONS = ("linear_attention", "regression", "few_shot")


def _linear_attention_section(s: ICLSettings, progress: bool) -> dict:
    layer, losses = train_linear_attention(s.lsa_dim, s.lsa_n, s.lsa_steps, progress=progress)
    eta = optimal_gd_lr(s.lsa_n, s.lsa_dim)
    g = torch.Generator().manual_seed(999)
    x, y, _ = regression_tasks(4000, s.lsa_n + 1, s.lsa_dim, g)
    ctx = (x[:, : s.lsa_n], y[:, : s.lsa_n], x[:, s.lsa_n])
    with torch.no_grad():
        trained_pred = layer(*ctx)
        gd_pred = gd_prediction(*ctx, lr=eta)
        ls_pred = baselines(*ctx)["least squares"]
    target = y[:, s.lsa_n]

    def mse(p):
        return float((p - target).pow(2).mean())

    return {
        "losses": losses[:: max(1, len(losses) // 200)],
        "eta_star": eta,
        "mse_trained": mse(trained_pred),
        "mse_gd": mse(gd_pred),
        "mse_least_squares": mse(ls_pred),
        "mse_zero": mse(torch.zeros_like(target)),
        "prediction_gap": float((trained_pred - gd_pred).pow(2).mean() / gd_pred.pow(2).mean()),
        "cosine": float(torch.nn.functional.cosine_similarity(trained_pred, gd_pred, dim=0)),
    }


def _regression_section(s: ICLSettings, progress: bool) -> dict:
    curves = {}
    for arch in ICL_ARCHS:
        for seed in s.seeds:
            torch.manual_seed(seed)
            model = InContextRegressor(arch, s.dim, s.max_points, d_model=s.d_model, n_layers=s.n_layers)
            losses = train_regressor(model, s.steps, seed=seed, progress=progress)
            curves[f"{arch}/{seed}"] = {
                "arch": arch, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
                "non_embedding_parameters": parameter_count(model.core.cfg, embeddings=False),
                "final_train_loss": float(sum(losses[-50:]) / len(losses[-50:])),
                "errors": error_curve(model, s.max_points, s.dim, s.n_tasks),
            }
    for name in ("least squares", "ridge", "nearest neighbour"):
        curves[name] = {"arch": name, "seed": None, "parameters": 0, "final_train_loss": None,
                        "errors": error_curve(lambda *a, n=name: baselines(*a)[n], s.max_points, s.dim, s.n_tasks)}
    return curves


def _few_shot_section(s: ICLSettings, progress: bool) -> dict:
    curves = {}
    for kind in DISCRETE_TASKS:
        for arch in ICL_ARCHS:
            for seed in s.seeds:
                torch.manual_seed(seed)
                model = FewShotClassifier(arch, s.n_symbols, s.max_shots, d_model=s.d_model, n_layers=s.n_layers)
                train_few_shot(model, kind, s.few_shot_steps, seed=seed, progress=progress)
                curves[f"{kind}/{arch}/{seed}"] = {
                    "task": kind, "arch": arch, "seed": seed, "accuracy": accuracy_curve(model, kind),
                    "non_embedding_parameters": parameter_count(model.core.cfg, embeddings=False)}
    return curves


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Run the chapter's experiments at ``scale``; with ``out``, store after each section
    and skip sections already stored. Defined in the chapter "In-context learning"."""
    scale = current_scale(scale)
    s = SETTINGS[scale]
    command = experiment_command("experiments.ch05_icl", scale, out)
    sections = {"linear_attention": lambda: _linear_attention_section(s, progress),
                "regression": lambda: _regression_section(s, progress),
                "few_shot": lambda: _few_shot_section(s, progress)}
    assert tuple(sections) == SECTIONS
    return run_sections(sections, judged_settings(s, RULES), out, command)



def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored payload if it holds every section under the current settings and rules,
    else ``None``. Defined in the chapter "In-context learning".
    """
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


def format_baseline(kind: str, max_shots: int, n_symbols: int) -> float:
    """Mean accuracy over ``k = 1 .. max_shots`` of a model that knows only the answer
    format: for ``"lookup"`` it picks one of the ``k`` demonstrated answers (``1/k``), for
    ``"shift"`` any symbol (``1/n_symbols``). Defined in the chapter "In-context learning"."""
    if kind not in DISCRETE_TASKS:
        raise ValueError(f"unknown task {kind!r}; expected one of {DISCRETE_TASKS}")
    chance = [1 / k if kind == "lookup" else 1 / n_symbols for k in range(1, max_shots + 1)]
    return sum(chance) / len(chance)


def task_scores(results: dict) -> dict[str, dict[str, dict]]:
    """``{task: {arch: {seed: score}}}``: for ``"regression"`` the query error (Garg et
    al.'s normalisation) averaged over ``k = 1 .. max_points`` demonstrations, lower is
    better; for each discrete task the accuracy averaged over ``k = 1 .. max_shots``.
    Defined in the chapter "In-context learning"."""
    scores = {"regression": {arch: {} for arch in ICL_ARCHS}}
    for row in results["regression"].values():
        if row["arch"] in ICL_ARCHS:
            errors = row["errors"][1:]
            scores["regression"][row["arch"]][row["seed"]] = sum(errors) / len(errors)
    for row in results["few_shot"].values():
        scores.setdefault(row["task"], {arch: {} for arch in ICL_ARCHS})
        scores[row["task"]][row["arch"]][row["seed"]] = sum(row["accuracy"]) / len(row["accuracy"])
    return scores


def _c11_seeds(results: dict) -> int:
    return min(len(by_seed) for task in task_scores(results).values() for by_seed in task.values())


def _c11_decide(results: dict, p: dict) -> Verdict:
    """C11, the comparison the claim makes: the causal decoder against the encoder-decoder
    at equal parameters (non-embedding counts within ``p["equal_parameters"]``, else
    inconclusive), on in-context regression and each discrete few-shot task.

    Gate per task: both models must have learned it, averaged over seeds: regression error
    below the zero predictor's (1 in Garg et al.'s normalisation) by ``p["error_gate"]``;
    accuracy above :func:`format_baseline` by ``p["accuracy_gate"]``. A task that fails
    the gate is no evidence; when every task fails, inconclusive.

    On each task that passes: the paired difference (decoder minus encoder-decoder, by
    seed) with its 95% t-interval, read against a margin (``p["error_margin"]`` times the
    encoder-decoder's mean error; ``p["accuracy_margin"]`` in accuracy): decoder better,
    encoder-decoder better, equivalent, or unclear.

    Supported when the decoder is better on every such task; refuted when on every one the
    encoder-decoder is better or the two are equivalent; inconclusive when every reading
    is unclear; nuanced otherwise. The prefix-LM row is measured and shown, not decided on.
    """
    rows = [r for section in ("regression", "few_shot") for r in results[section].values() if r["arch"] in ICL_ARCHS]
    counts = {}
    for r in rows:
        counts.setdefault((r.get("task", "regression"), r["arch"]), r["non_embedding_parameters"])
    apart = max(abs(counts[(t, "encoder-decoder")] - counts[(t, "decoder")]) / counts[(t, "decoder")]
                for t, _ in counts)
    if apart > p["equal_parameters"]:
        return Verdict("inconclusive", f"the decoder and the encoder-decoder are not at equal parameters ({apart:.1%} apart)")
    s = results["settings"]
    readings, learned_by, numbers = {}, {}, {"parameters_apart": apart}
    for task, by_arch in task_scores(results).items():
        mean = {arch: sum(v.values()) / len(v) for arch, v in by_arch.items()}
        if task == "regression":
            learned_by[task] = [a for a in ICL_ARCHS if learned(mean[a], 1.0, lower_is_better=True, by=p["error_gate"])]
            diff = t_interval(paired_differences(by_arch["encoder-decoder"], by_arch["decoder"]))  # > 0: decoder better
            margin = p["error_margin"] * mean["encoder-decoder"]
        else:
            chance = format_baseline(task, s["max_shots"], s["n_symbols"])
            learned_by[task] = [a for a in ICL_ARCHS if learned(mean[a], chance, lower_is_better=False,
                                                                by=p["accuracy_gate"])]
            diff = t_interval(paired_differences(by_arch["decoder"], by_arch["encoder-decoder"]))
            margin = p["accuracy_margin"]
        reading = {"higher": "decoder better", "lower": "encoder-decoder better"}.get(compare(diff, margin),
                                                                                    compare(diff, margin))
        numbers[task] = {"mean": mean, "decoder_advantage": diff.__dict__, "margin": margin, "reading": reading,
                         "learned_by": learned_by[task]}
        if {"decoder", "encoder-decoder"} <= set(learned_by[task]):
            readings[task] = reading
    numbers["readings"] = readings
    if not readings:
        return Verdict("inconclusive", "on no task did both the decoder and the encoder-decoder learn in context",
                       numbers)
    found = set(readings.values())
    if found == {"decoder better"}:
        return Verdict("supported", f"the decoder learned better in context on every task both learned "
                       f"({', '.join(readings)})", numbers)
    if found <= {"encoder-decoder better", "equivalent"}:
        return Verdict("refuted", f"the decoder was not better on any task both learned ({', '.join(readings)})",
                       numbers)
    if found == {"unclear"}:
        return Verdict("inconclusive", "every comparison's interval straddles its margin: more seeds are needed",
                       numbers)
    return Verdict("nuanced", "; ".join(f"{t}: {r}" for t, r in readings.items()), numbers)


RULES = {"C11": Rule(
    "C11", "at equal parameters, a causal decoder learns in context better than an encoder-decoder, on tasks both "
    "models learned",
    {"min_seeds": 5, "equal_parameters": EQUAL_PARAMETERS_TOLERANCE, "error_gate": 0.2, "accuracy_gate": 0.1,
     "error_margin": 0.05, "accuracy_margin": 0.02},
    _c11_decide, seeds=_c11_seeds)}


def _c11_rests_on(results: dict, verdict: Verdict) -> str:
    """What C11's verdict rests on, counted: the tasks both the decoder and the
    encoder-decoder learned (the gate), the seeds, and how many of those tasks' readings
    were clear of zero or inside the margin."""
    rule = RULES["C11"]
    stop = protocol_stop(rule, results, verdict)
    if stop:
        return stop
    n = verdict.numbers
    if "readings" not in n:
        return "nothing compared: the decoder and the encoder-decoder are not at equal parameters"
    tasks = [t for t, v in n.items() if isinstance(v, dict) and "learned_by" in v]
    both = list(n["readings"])
    head = (f"{counted_of(len(both), len(tasks), 'task')} learned by both the decoder and the encoder-decoder"
            + (f" ({', '.join(both)})" if 0 < len(both) < len(tasks) else "")
            + f", {counted(rule.seeds(results), 'seed')} each")
    if not both:
        return f"nothing compared: {head}"
    clear = sum(r != "unclear" for r in n["readings"].values())
    if len(both) == 1:
        return f"{head}; its reading {READ_CLEARLY if clear else 'unclear'}"
    return f"{head}; {counted_of(clear, len(both), 'reading')} {READ_CLEARLY}"


def c11_evidence(results: dict, verdict: Verdict, rows=()) -> Evidence:
    """C11's evidence and scope in words, from the results the verdict was decided on.
    Defined in the chapter "In-context learning"."""
    settings, lsa, scores = results["settings"], results["linear_attention"], task_scores(results)
    n11 = RULES["C11"].readings(results)  # whatever the number of seeds
    pre_vs_dec = t_interval(paired_differences(scores["regression"]["decoder"], scores["regression"]["prefix-lm"]))

    def said(task):
        t = n11[task]
        gap = t["decoder_advantage"]
        return (f"{task}: {t['reading'] if task in n11['readings'] else 'not learned by both'} "
                f"(decoder advantage {gap['mean']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}])")

    text = ("Decoder vs encoder-decoder at equal parameters: " + "; ".join(said(t) for t in scores)
            + f". Prefix-LM minus decoder on regression error: {-pre_vs_dec.mean:+.3f} "
            f"[{-pre_vs_dec.high:+.3f}, {-pre_vs_dec.low:+.3f}]. One linear attention layer is one GD step "
            f"exactly; a trained one tracks GD with cosine {lsa['cosine']:.3f}.")
    scope = (f"Width {settings['d_model']}, {settings['n_layers']} layers (the encoder-decoder "
             f"{settings['n_layers'] // 2} + {settings['n_layers'] // 2}), {settings['steps']} steps on regression "
             f"(d = {settings['dim']}, k <= {settings['max_points']}) and {settings['few_shot_steps']} on each discrete "
             f"task, {len(settings['seeds'])} seeds; parameters within {n11['parameters_apart']:.1%}.")
    return Evidence(text, scope, rests_on=_c11_rests_on(results, verdict))


CLAIMS = (Claim("C11", "Decoder-only is better at in-context learning because the prompt acts directly on every "
                "layer (implicit finetuning)", "05_in_context_learning", stored_results(sys.modules[__name__]),
                RULES["C11"], c11_evidence),)


if __name__ == "__main__":
    experiment_main("experiments.ch05_icl", run, RESULTS_DIR)
