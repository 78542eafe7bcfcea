import os

import pytest
import torch

import whydecoder as wd
from whydecoder.threads import THREAD_VARIABLES


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _keep_thread_counts():
    """A test that runs a command line (which sets one thread) leaves the count as it was."""
    before = torch.get_num_threads()
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    yield
    torch.set_num_threads(before)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def small_config(arch: str, **overrides) -> wd.ModelConfig:
    """A tiny model of each architecture, fast enough for exhaustive checks."""
    base = dict(arch=arch, vocab_size=40, max_len=32, d_model=32, n_heads=4, n_layers=2)
    base.update(overrides)
    return wd.ModelConfig(**base)


def arch_inputs(arch: str, batch: int = 2, length: int = 9, source_len: int = 6, prefix_len: int = 4, vocab: int = 40):
    """Random tokens plus the extra inputs each architecture needs."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab, (batch, length), generator=g)
    kwargs = {}
    if arch == "prefix-lm":
        kwargs["prefix_len"] = prefix_len
    if arch == "encoder-decoder":
        kwargs["source"] = torch.randint(0, vocab, (batch, source_len), generator=g)
    return tokens, kwargs


def one_line(text: str) -> str:
    """A claim's ``rests_on``: one non-empty line of text, short enough for the ledger."""
    assert isinstance(text, str) and text.strip() == text and text, repr(text)
    assert "\n" not in text and "\r" not in text and len(text) <= 200, repr(text)
    return text
