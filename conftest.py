"""Thread counts for the whole test run, set before any test imports torch.

``make test`` runs pytest-xdist workers, and each worker starts notebook kernels; with a
full pool of threads each they oversubscribe a small machine many times over. Each worker,
and every kernel it starts (kernels inherit the environment), gets its share of the cores.
"""

import os

from whydecoder.threads import limit_threads, threads_per_process

limit_threads(threads_per_process(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
