"""The learning-rate grid of the fair head-to-head: each architecture's own rate.

Every architecture pretrains with each rate of a small grid at two sizes (one seed), and is
scored on its own objective on the validation split, which the verdicts never read. The best
rate at each size, and :func:`whydecoder.head_to_head.rate_at` between and beyond them, give
the rate every run of ``ch08_head_to_head`` uses (fixed before that sweep).

Explained in the chapter "The fair head-to-head".
"""

from __future__ import annotations

from pathlib import Path

from ..command import experiment_command, experiment_main
from ..head_to_head import SETTINGS as SWEEP_SETTINGS
from ..head_to_head import data, grid_names, grid_run, grid_settings
from ..paths import results_dir
from ..results import judged_settings, run_sections
from ..results import load_complete as load_stored
from ..run_scale import current_device, current_scale

RESULTS_DIR = results_dir("lr_grid")
#: The page that shows it (under ``chapters/``).
PAGE = "08_scale/head_to_head"
#: It decides no claim: the head-to-head's rules read its choice.
RULES: dict = {}
INFORMS = ("C12", "C16", "C18")
#: The grid's own settings: the fields of the head-to-head's that it reads.
SETTINGS = {scale: grid_settings(s) for scale, s in SWEEP_SETTINGS.items()}
SECTIONS = grid_names(SWEEP_SETTINGS["full"])


def section_cost(name: str, scale: str | None = None) -> float:
    """A grid point's running time, in bytes read (the sweep starts the longest first). Defined in the chapter "The fair head-to-head"."""
    from ..head_to_head import rows_per_step

    s = SWEEP_SETTINGS[current_scale(scale)]
    return float(rows_per_step(name.split(":")[1], s) * s.length * s.steps)


def run(scale: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Every grid point at ``scale``; with ``out``, stored point by point. Defined in the chapter "The fair head-to-head"."""
    scale = current_scale(scale)
    s = SWEEP_SETTINGS[scale]
    d = data("val")
    device = current_device()
    sections = {}
    for name in grid_names(s):
        arch, size, rate = name.split(":")
        sections[name] = lambda a=arch, z=size, r=float(rate): grid_run(a, z, r, s, d, device, progress)
    return run_sections(sections, judged_settings(SETTINGS[scale], RULES), out,
                        experiment_command("experiments.ch08_lr_grid", scale, out))


def load_complete(path: str | Path = RESULTS_DIR / "full.json") -> dict | None:
    """The stored grid if complete under the current settings, else ``None``. Defined in the chapter "The fair head-to-head"."""
    return load_stored(path, SECTIONS, judged_settings(SETTINGS["full"], RULES))


if __name__ == "__main__":
    experiment_main("experiments.ch08_lr_grid", run, RESULTS_DIR)
