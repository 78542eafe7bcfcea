"""How long the README's test command takes, against the same suite in one process.

Runs the suite as ``make test`` does (pytest-xdist workers, each notebook in its own
kernel, thread counts set by the project's ``conftest.py``), then, with ``--reference``,
the same suite in a single process, and prints both times and their ratio. The two runs
see the same machine at the same moment, so the ratio, not the seconds, is what compares
across machines. With ``--oversubscribed`` it also times the suite with every worker and
kernel given a full pool of threads (what ``make test`` did before the project set them):
on two cores that run takes about 20 minutes.

Usage: ``.venv/bin/python benchmarks/bench_test_suite.py [--reference] [--oversubscribed]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env"]


def timed(args: list[str], env: dict | None = None) -> tuple[float, str]:
    """Seconds a pytest command took and its closing line; raises if the suite failed."""
    start = time.perf_counter()
    proc = subprocess.run(PYTEST + args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"pytest {' '.join(args)} failed: {last}")
    return seconds, last


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="xdist workers, as `make test` (default 2)")
    parser.add_argument("--reference", action="store_true", help="also time the suite in one process")
    parser.add_argument("--oversubscribed", action="store_true",
                        help="also time it with a full thread pool per worker and kernel (slow)")
    args = parser.parse_args(argv)
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = {"cores": os.cpu_count(), "jobs": args.jobs}
    result["make_test_seconds"], result["make_test_summary"] = timed(
        ["-n", str(args.jobs), "--dist", "loadscope"], env=clean)
    if args.reference:
        result["one_process_seconds"], _ = timed(["-n", "0"], env=clean)
        result["speedup_over_one_process"] = result["one_process_seconds"] / result["make_test_seconds"]
    if args.oversubscribed:
        cores = str(os.cpu_count() or 1)
        env = dict(clean, WHYDEC_TEST_THREADS=cores)
        result["oversubscribed_seconds"], _ = timed(["-n", str(args.jobs), "--dist", "loadscope"], env=env)
        result["slowdown_when_oversubscribed"] = result["oversubscribed_seconds"] / result["make_test_seconds"]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
