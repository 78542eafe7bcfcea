"""A process's own memory, as Linux reports it, for the measurements that run in a fresh
child process: its resident size now (``VmRSS``), its peak (``VmHWM``, which a fresh
process starts at its own size rather than carrying a parent's over the exec, as
``getrusage`` can), a reset of that peak, and the environment such a child is started with.

Explained in the chapter "The routes after the plain decoder" (efficiency route).
"""

from __future__ import annotations

import ctypes
import gc
import os


def resident_bytes() -> int:
    """This process's resident memory now (``VmRSS``), after returning freed heap to the
    system. Defined in the chapter "The routes after the plain decoder"."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the number is a little higher, not wrong
        pass
    return _status("VmRSS:")


def reset_peak() -> None:
    """Reset this process's peak resident memory (``VmHWM``) to its current size (Linux
    ``clear_refs``). Defined in the chapter "The routes after the plain decoder"."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_bytes() -> int:
    """This process's peak resident memory (``VmHWM``): since it started, or since the last
    :func:`reset_peak`. Defined in the chapter "The routes after the plain decoder"."""
    return _status("VmHWM:")


def measuring_env() -> dict[str, str]:
    """The environment of a child process that measures memory: only what it needs to find
    Python and the package (nothing inherited that could change how the allocator or the
    kernels behave), and one thread. Defined in the chapter "The routes after the plain decoder"."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        line = next((x for x in f if x.startswith(key)), None)
    if line is None:
        raise OSError(f"/proc/self/status has no {key!r} line: this kernel does not report the process's memory")
    return int(line.split()[1]) * 1024
