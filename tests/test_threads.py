"""Thread counts: each process gets its share of the cores, set by the project."""

import os
import subprocess
import sys

import pytest
import torch

from whydecoder.threads import THREAD_VARIABLES, limit_threads, threads_per_process


@pytest.mark.parametrize("processes, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (1, 1, 1)])
def test_threads_per_process(processes, cores, expected):
    assert threads_per_process(processes, cores) == expected


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        threads_per_process(bad, 2)
    with pytest.raises(ValueError, match="positive integer"):
        limit_threads(bad)
    if bad is not None:
        with pytest.raises(ValueError, match="cores must be"):
            threads_per_process(1, bad)


def test_this_test_process_runs_with_its_share():
    """conftest.py set the count before the tests started: the worker and its kernels."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = int(os.environ.get("WHYDEC_TEST_THREADS") or threads_per_process(workers))
    assert torch.get_num_threads() == share
    assert all(os.environ[name] == str(share) for name in THREAD_VARIABLES)


def test_limit_threads_reaches_torch_and_child_processes():  # conftest restores the count
    limit_threads(1)
    assert torch.get_num_threads() == 1
    child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "1"


def test_full_scale_commands_take_a_thread_count(tmp_path):
    from whydecoder.command import experiment_main

    seen = {}
    experiment_main("demo", lambda scale, out: seen.update(threads=torch.get_num_threads(), scale=scale),
                    tmp_path, argv=["--scale", "smoke", "--threads", "1", "--out", str(tmp_path / "smoke.json")])
    assert seen == {"threads": 1, "scale": "smoke"}
    with pytest.raises(SystemExit):
        experiment_main("demo", lambda scale, out: None, tmp_path, argv=["--threads", "0"])
