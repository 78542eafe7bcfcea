"""The one switch between the CPU "smoke" scale that CI runs and the full scale whose
results are stored in ``data/``.

Set the environment variable ``WHYDEC_SCALE=full`` (or pass ``scale="full"``) to run an
experiment at full scale. Explained in "How to read this book".
"""

from __future__ import annotations

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
