"""whydecoder: the shared machinery of the book "Why Decoder-Only?".

Every chapter imports from here; every public function's docstring names the chapter
that explains it. Modules: ``masks`` (who may attend to whom), ``config`` and ``model``
(one transformer, four architectures), ``attention`` and ``positions`` (its parts),
``objectives`` (pretraining objectives), ``generate`` (with and without the KV cache),
``accounting`` (parameters, FLOPs, cache bytes), ``train`` (a deterministic trainer),
``text`` (offline corpus, byte tokenizer), ``probes`` and ``plots`` (chapter tools),
``hf`` (loading Hugging Face weights, for the tests), ``ledger`` and ``results`` (the
claims ledger and stored results), ``scale`` (smoke vs full runs).
"""

from .attention import KVCache, attend
from .config import ARCHS, POSITIONS, ModelConfig
from .masks import MASK_KINDS, attention_mask, prefix_masks, visibility
from .model import Transformer, sequence_loss

__all__ = [
    "ARCHS",
    "MASK_KINDS",
    "POSITIONS",
    "KVCache",
    "ModelConfig",
    "Transformer",
    "attend",
    "attention_mask",
    "prefix_masks",
    "sequence_loss",
    "visibility",
]
