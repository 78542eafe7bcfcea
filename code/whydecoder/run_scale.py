"""The one switch between the CPU "smoke" scale that CI runs and the full scale whose
results are stored in ``data/``.

Set the environment variable ``WHYDEC_SCALE=full`` (or pass ``scale="full"``) to run an
experiment at full scale. Explained in "How to read this book".
"""

from __future__ import annotations

import contextlib
import contextvars
import os

SCALES = ("smoke", "full")


def current_scale(scale: str | None = None) -> str:
    """``scale`` if given, else ``$WHYDEC_SCALE``, else ``"smoke"``; validated.

    Defined in "How to read this book".
    """
    value = scale if scale is not None else os.environ.get("WHYDEC_SCALE", "smoke")
    if value not in SCALES:
        raise ValueError(f"unknown scale {value!r}; expected one of {SCALES}")
    return value


_DEVICE: contextvars.ContextVar[str] = contextvars.ContextVar("whydecoder_device", default="cpu")


def check_device(device: str) -> str:
    """``device`` if this machine has it: ``"cpu"``, or ``"cuda"``/``"cuda:N"`` where
    torch sees that GPU; an error names anything else. Defined in "How to read this book"."""
    import torch

    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or
                                           (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")
    if device != "cpu":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not there: torch sees no CUDA GPU on this machine")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} is not there: torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def current_device() -> str:
    """The device experiments that can use a GPU train on (``"cpu"`` unless a command
    line's ``--device`` set it with :func:`using_device`). Defined in "How to read this book"."""
    return _DEVICE.get()


@contextlib.contextmanager
def using_device(device: str):
    """Run experiments on ``device`` (checked with :func:`check_device`) inside the block. Defined in "How to read this book"."""
    token = _DEVICE.set(check_device(device))
    try:
        yield device
    finally:
        _DEVICE.reset(token)
