"""Speed of our model against Hugging Face transformers' GPT-2, measured in one run.

Prints ratios (ours / reference), never absolute targets:

1. training step tokens/s (forward, backward, AdamW) on the same GPT-2 config and weights;
2. cached greedy decoding tokens/s: our ``generate`` vs ``transformers``' ``generate``;
3. our cached vs uncached decoding speed-up, next to what the FLOP formula predicts.

Usage: ``.venv/bin/python benchmarks/bench_model.py [--device cuda] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import transformers

from whydecoder.accounting import generation_flops
from whydecoder.generate import generate
from whydecoder.hf import from_hf_gpt2


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeats):
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _train_step(model, opt, tokens, forward):
    def step():
        loss = forward(model, tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def run(device: str = "cpu", quick: bool = False, seed: int = 0) -> dict:
    device = torch.device(device)
    torch.manual_seed(seed)
    if quick:
        size = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=128)
        batch, seq, prompt_len, new_tokens, repeats = 2, 32, 8, 16, 2
    else:
        size = dict(n_layer=6, n_embd=384, n_head=6, vocab_size=8192, n_positions=512)
        batch, seq, prompt_len, new_tokens, repeats = 8, 256, 16, 200, 5
    # no dropout: ours has none, and dropout would slow the reference down unfairly
    no_dropout = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**size, **no_dropout, bos_token_id=0, eos_token_id=0)).to(device)
    ours = from_hf_gpt2(hf.cpu()).to(device)
    hf.to(device)
    tokens = torch.randint(0, size["vocab_size"], (batch, seq), device=device)

    # 1. training step
    def hf_loss(model, x):
        return model(x, labels=x).loss

    def our_loss(model, x):
        logits = model(x[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())

    hf.train(), ours.train()
    t_hf = _timed(_train_step(hf, torch.optim.AdamW(hf.parameters(), lr=1e-4), tokens, hf_loss), device, repeats)
    t_ours = _timed(_train_step(ours, torch.optim.AdamW(ours.parameters(), lr=1e-4), tokens, our_loss), device, repeats)
    train_tps = {"ours": batch * seq / t_ours, "transformers": batch * seq / t_hf}

    # 2. cached greedy decoding (same weights again, so both produce the same tokens)
    ours = from_hf_gpt2(hf.cpu()).to(device).eval()
    hf.to(device).eval()
    prompt = tokens[:1, :prompt_len]
    with torch.no_grad():
        same = torch.equal(
            generate(ours, prompt, new_tokens),
            hf.generate(prompt, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0),
        )
        t_hf_dec = _timed(lambda: hf.generate(prompt, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0), device, repeats)
        t_ours_dec = _timed(lambda: generate(ours, prompt, new_tokens, use_cache=True), device, repeats)
        t_ours_uncached = _timed(lambda: generate(ours, prompt, new_tokens, use_cache=False), device, repeats)
    decode_tps = {"ours": new_tokens / t_ours_dec, "transformers": new_tokens / t_hf_dec}
    predicted = generation_flops(ours.cfg, prompt_len, new_tokens, False) / generation_flops(ours.cfg, prompt_len, new_tokens, True)
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "config": {**size, "batch": batch, "seq": seq, "prompt_len": prompt_len, "new_tokens": new_tokens},
        "train_tokens_per_s": train_tps,
        "train_ratio_ours_over_transformers": train_tps["ours"] / train_tps["transformers"],
        "decode_tokens_per_s": decode_tps,
        "decode_ratio_ours_over_transformers": decode_tps["ours"] / decode_tps["transformers"],
        "decode_same_tokens_as_transformers": same,
        "cache_speedup_measured": t_ours_uncached / t_ours_dec,
        "cache_speedup_flop_formula": predicted,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmark runs")
    args = parser.parse_args(argv)
    result = run(args.device, args.quick)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
