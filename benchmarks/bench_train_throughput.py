"""Training throughput of the scale sweep's own step, as a share of this machine's matmul peak.

The fair head-to-head's campaign is bounded by how many training FLOPs two cores deliver, so
this measures, in one run and on one thread count:

1. the matmul peak: float32 ``n x n`` products (``2 n^3`` FLOPs each), the best of a few;
2. for each size, the sweep's training step (its model, its batch of ``rows_per_step`` rows,
   forward, backward and AdamW), timed over several steps after warm-up ones, with the FLOPs
   the sweep counts for it (``ch08_scale.training_flops`` per step);
3. achieved FLOP/s over the peak, and the hours a campaign of ``--steps`` steps per run would
   take at that rate (five seeds, the four architectures counted at the decoder's cost).

Sizes: the stored sweep's smallest and largest, and two candidates past a million
non-embedding parameters (the campaign's target). Prints JSON; ratios, never absolute
targets.

Usage: ``.venv/bin/python benchmarks/bench_train_throughput.py [--threads N] [--quick]`` (about 15
minutes on one thread: the candidates' batches hold 2,000-3,000 rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from whydecoder.experiments import ch08_scale as sc
from whydecoder.model import Transformer
from whydecoder.objectives import batch_loss
from whydecoder.text import corpus_tokens

#: Sizes past the stored sweep: (name, width, layers); about 0.8M and 1.2M non-embedding parameters.
CANDIDATES = (("d128", 128, 4), ("d160", 160, 4))


def matmul_peak(n: int, repeats: int) -> float:
    """Best float32 FLOP/s of ``n x n`` matrix products on the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def step_throughput(arch: str, size: str, s, ids: torch.Tensor, steps: int, warmup: int) -> dict:
    """Seconds per training step of the sweep's ``arch`` at ``size`` and the FLOP/s it achieves."""
    cfg = sc.model_config(arch, size, s)
    rows = sc.rows_per_step(size, s)
    torch.manual_seed(0)
    model = Transformer(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr)
    g = torch.Generator().manual_seed(0)
    batches = [sc.training_batch(arch, ids, rows, s, g) for _ in range(steps + warmup)]
    times = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss = batch_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    flops = sc.training_flops(arch, size, s) / s.steps
    return {"arch": arch, "size": size, "non_embedding_parameters": sc.parameters(size, s), "rows": rows,
            "seconds_per_step": seconds, "flops_per_step": flops, "achieved_flops_per_s": flops / seconds}


def run(threads: int = 1, quick: bool = False) -> dict:
    """Measure the peak and each size's step; the ratios and the campaign's hours."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(threads)
    full = sc.SETTINGS["full"]
    sizes = full.sizes[:1] + full.sizes[-1:] + CANDIDATES
    s = dataclasses.replace(full, sizes=full.sizes + CANDIDATES)
    steps, warmup, n, repeats = (2, 1, 256, 2) if quick else (10, 3, 1024, 5)
    if quick:
        sizes = full.sizes[:1]
    ids = corpus_tokens("train")
    peak = matmul_peak(n, repeats)
    rows = []
    for size, _, _ in sizes:
        row = step_throughput("decoder", size, s, ids, steps, warmup)
        row["share_of_matmul_peak"] = row["achieved_flops_per_s"] / peak
        # a campaign at this size: five seeds of four architectures, each about the decoder's cost
        row["campaign_hours_at_this_rate"] = 5 * 4 * s.steps * row["seconds_per_step"] / 3600
        rows.append(row)
    return {"threads": threads, "matmul_n": n, "matmul_peak_flops_per_s": peak, "sizes": rows,
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (the sweep runs one per process)")
    parser.add_argument("--quick", action="store_true", help="one small size, few steps (what the tests run)")
    args = parser.parse_args()
    try:
        print(json.dumps(run(args.threads, args.quick), indent=2))
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
