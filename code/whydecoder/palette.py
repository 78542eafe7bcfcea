"""One colour per architecture across the whole book, so that a reader who has learned
that the decoder is blue never has to relearn it. Explained in "How to read this book".
"""

from __future__ import annotations

#: The four architectures of chapter 1, and the colours every figure gives them.
ARCHITECTURE_COLOURS = {
    "decoder": "#1f77b4",  # blue
    "prefix-lm": "#ff7f0e",  # orange
    "encoder-decoder": "#2ca02c",  # green
    "encoder": "#d62728",  # red: the bidirectional encoder / masked LM
}

#: How figures and tables name the four architectures (the package's keys are lower case).
ARCHITECTURE_NAMES = {"decoder": "decoder", "prefix-lm": "prefix-LM", "encoder-decoder": "encoder-decoder",
                      "encoder": "encoder"}

#: Other names the chapters use for the same architectures (Wang et al.'s grid, objectives).
ALIASES = {
    "CD": "decoder", "causal decoder": "decoder", "causal LM": "decoder", "causal": "decoder",
    "ND": "prefix-lm", "prefix-LM": "prefix-lm", "non-causal decoder": "prefix-lm",
    "ED": "encoder-decoder",
    "masked LM": "encoder", "masked": "encoder", "MLM": "encoder", "bidirectional": "encoder",
}

#: A neutral colour for baselines and references (chance, a formula, a bound).
REFERENCE = "#6e7781"


def architecture_colour(name: str) -> str:
    """The book's colour for an architecture, by its name in :data:`ARCHITECTURE_COLOURS`
    or one of its :data:`ALIASES` (a Wang et al. cell such as ``"ED:MLM"`` takes the colour
    of its architecture). Defined in "How to read this book"."""
    if not isinstance(name, str):
        raise TypeError(f"an architecture is named by text, got {name!r}")
    key = name.split(":")[0] if ":" in name else name
    key = ALIASES.get(key, key)
    if key not in ARCHITECTURE_COLOURS:
        known = sorted(ARCHITECTURE_COLOURS) + sorted(ALIASES)
        raise ValueError(f"no colour for architecture {name!r}; expected one of {known}")
    return ARCHITECTURE_COLOURS[key]


#: The architecture route's decoders (chapter "The routes after the plain decoder"): the
#: dense decoder keeps the decoder's blue; the experts are purples, retention brown.
ROUTE_COLOURS = {
    "dense": ARCHITECTURE_COLOURS["decoder"],
    "moe_active": "#9467bd",
    "moe_total": "#c5b0d5",
    "retention": "#8c564b",
}
#: The efficiency route's finetuning methods and attention forms.
METHOD_COLOURS = {
    "full": "#17becf", "lora": "#bcbd22", "qlora": "#e377c2",
    "naive": REFERENCE, "tiled": "#17becf", "sdpa": "#e377c2",
}
