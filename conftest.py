"""Thread counts for the whole test run, set before any test imports torch.

``make test`` runs pytest-xdist workers, and each worker starts notebook kernels; with a
full pool of threads each they oversubscribe a small machine many times over (on two
cores: 21 minutes instead of under one). Each worker, and every kernel it starts (kernels
inherit the environment), gets its share of the cores. ``WHYDEC_TEST_THREADS=N`` overrides
the share (``benchmarks/bench_test_suite.py --oversubscribed`` uses it).
"""

import os

from whydecoder.threads import limit_threads, threads_per_process

_override = os.environ.get("WHYDEC_TEST_THREADS")
limit_threads(int(_override) if _override else threads_per_process(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
