"""How many CPU threads each process of the book may use.

On a small machine, several processes that each start a full pool of threads (two test
workers and their notebook kernels on two cores, say) run many times slower than the same
processes with one thread each. The book sets thread counts itself, for its test workers
and the notebook kernels they start (``conftest.py``), and for its full-scale commands
(``--threads``), so that no reader has to know about ``OMP_NUM_THREADS``.

Explained in "How to read this book" (running the book on a laptop).
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """The threads each of ``processes`` concurrent processes gets on ``cores`` cores
    (all of this machine's when ``None``): at least one, never more than its share.

    Defined in "How to read this book".
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}")
    cores = (os.cpu_count() or 1) if cores is None else cores
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive integer, got {cores!r}")
    return max(1, cores // processes)


def limit_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads in this process and in every process it starts
    (notebook kernels inherit the environment). Returns ``threads``.

    Sets the OpenMP/MKL/OpenBLAS variables before torch is loaded, and torch's own count
    when it already is. Defined in "How to read this book".
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads
