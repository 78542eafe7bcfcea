"""Serving a trained decoder: greedy replies that keep one KV cache across the turns of a
chat, the same model with its grouped key/value heads expanded to one per query head
(for comparison), caches of a given size for timing, and this machine's copy bandwidth.

Explained in the chapter "Efficiency: the KV cache", section "A real model".
"""

from __future__ import annotations

import time

import torch

from .attention import KVCache
from .model import Transformer


def expand_kv_heads(model: Transformer) -> Transformer:
    """The same function with one key/value head per query head: each grouped head's rows
    repeated for every query head of its group (what grouped-query attention saves).
    Defined in the chapter "Efficiency: the KV cache"."""
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a whydecoder Transformer, got {type(model).__name__}")
    cfg = model.cfg
    if cfg.kv_heads == cfg.n_heads:
        raise ValueError(f"the model already has one key/value head per query head ({cfg.n_heads})")
    full = Transformer(cfg.replace(n_kv_heads=cfg.n_heads)).eval()
    group, dh = cfg.n_heads // cfg.kv_heads, cfg.head_dim
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith((".attn.k.weight", ".attn.v.weight", ".attn.k.bias", ".attn.v.bias")):
            value = value.reshape(cfg.kv_heads, dh, *value.shape[1:]).repeat_interleave(group, 0)
            value = value.reshape(cfg.n_heads * dh, *value.shape[2:])
        state[name] = value
    full.load_state_dict(state)
    return full


def random_cache(model: Transformer, batch: int, length: int, seed: int = 0) -> KVCache:
    """A cache of ``batch`` sequences of ``length`` positions filled with random keys and
    values (for retention, a random state that stands for ``length`` positions): what one
    decoding step reads, without paying for the prefill (its content does not change the
    step's cost). Defined in the chapter "Efficiency: the KV cache"."""
    for name, value in (("batch", batch), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if length >= model.cfg.max_len:
        raise ValueError(f"length {length} leaves no room for one more token within max_len {model.cfg.max_len}")
    g = torch.Generator().manual_seed(seed)
    cache = model.new_cache()
    cfg = model.cfg
    if cfg.mixer == "retention":  # one fixed-size state per layer, whatever the length
        for layer in cache.layers:
            layer.state = torch.randn((batch, cfg.n_heads, cfg.head_dim, cfg.head_dim), generator=g)
            layer.seen = length
        return cache
    shape = (batch, cfg.kv_heads, length, cfg.head_dim)
    for layer in cache.layers:
        layer.k, layer.v = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    return cache


@torch.no_grad()
def greedy_continue(model: Transformer, cache: KVCache, new: list[int], max_new: int, stop=()) -> tuple[list[int], list]:
    """Feed ``new`` tokens into ``cache``, then decode greedily up to ``max_new`` tokens or a
    ``stop`` token. Returns the reply and the logits that chose each of its tokens; the
    cache then holds everything but the reply's last token. Defined in the chapter
    "Efficiency: the KV cache". Refuses, before feeding anything, a call whose reply could
    run past the model's ``max_len``."""
    if isinstance(new, (str, bytes)) or not isinstance(new, (list, tuple)):
        raise ValueError(f"new must be a list of token ids, got {type(new).__name__}")
    if not new:
        raise ValueError("there must be at least one new token to feed")
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 1:
        raise ValueError(f"max_new must be a positive int, got {max_new!r}")
    if isinstance(stop, (str, bytes, int)) or not hasattr(stop, "__contains__"):
        raise ValueError(f"stop must be a collection of token ids (e.g. a set), got {stop!r}")
    if not isinstance(cache, KVCache):
        raise ValueError(f"cache must be a KVCache from model.new_cache(), got {type(cache).__name__}")
    needed = cache.length + len(new) + max_new - 1  # the reply's last token is never fed
    if needed > model.cfg.max_len:
        raise ValueError(f"{cache.length} cached + {len(new)} new + up to {max_new - 1} reply tokens fed = {needed} "
                         f"positions, more than the model's max_len {model.cfg.max_len}; lower max_new or crop the cache")
    reply, chose = [], []
    feed = new
    for _ in range(max_new):
        h = model.hidden_states(torch.tensor([feed]), cache=cache)
        logits = model.lm_head(h[0, -1])
        token = int(logits.argmax())
        reply.append(token)
        chose.append(logits)
        if token in stop:
            break
        feed = [token]
    return reply, chose


def common_prefix(a: list[int], b: list[int]) -> int:
    """The length of the longest common prefix of two token lists.
    Defined in the chapter "Efficiency: the KV cache"."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@torch.no_grad()
def chat(model: Transformer, template, decode, user_turns: list[str], max_new: int, stop=()) -> dict:
    """A multi-turn chat served with one cache: at each turn the chat ``template`` renders
    the whole conversation (``list[dict] -> list[int]``), and only the tokens past what the
    cache holds are fed. Where re-rendering a reply tokenizes it differently from how it
    was generated, the cache is cut back to the common prefix and the rest is fed again
    (counted). At the end one uncached pass over the whole conversation checks every reply
    token that still stands where it was generated: its logits and its greedy choice. Defined in the chapter "Efficiency: the KV cache"."""
    if isinstance(user_turns, (str, bytes)) or not isinstance(user_turns, (list, tuple)):
        raise ValueError(f"user_turns must be a list of messages, got {type(user_turns).__name__}")
    if not user_turns:
        raise ValueError("a chat needs at least one user turn")
    messages, cache, held, turns, steps, keeps = [], model.new_cache(), [], [], [], []
    for text in user_turns:
        messages.append({"role": "user", "content": text})
        prompt = template(messages)
        keep = common_prefix(held, prompt)
        if keep == len(prompt):
            keep -= 1  # feed at least one token
        cache.crop(keep)
        keeps.append(keep)
        t0 = time.perf_counter()
        reply, chose = greedy_continue(model, cache, prompt[keep:], max_new, stop)
        seconds = time.perf_counter() - t0
        steps.append((len(prompt), reply, chose))
        turns.append({"history_tokens": len(prompt), "fed_tokens": len(prompt) - keep, "refed_tokens": len(held) - keep,
                      "reply_tokens": len(reply), "seconds": seconds})
        held = prompt + reply[:-1]
        messages.append({"role": "assistant", "content": decode([t for t in reply if t not in stop])})
    everything = torch.tensor([held + [steps[-1][1][-1]]])
    full = model.lm_head(model.hidden_states(everything)[0])
    for t, (start, reply, chose) in enumerate(steps):
        standing = min(keeps[t + 1:], default=everything.shape[1]) >= start + len(reply) - 1
        turns[t]["checked"] = standing  # its tokens still stand where they were generated
        if standing:
            rows = full[start - 1:start - 1 + len(reply)]
            turns[t]["max_logit_gap"] = float((torch.stack(chose) - rows).abs().max())
            turns[t]["greedy_match"] = rows.argmax(-1).tolist() == reply
    return {"turns": turns, "messages": messages, "total_tokens": everything.shape[1]}


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """This machine's memory bandwidth for a large copy, in bytes per second (read plus
    write, median of ``repeats``). Defined in the chapter "Efficiency: the KV cache"."""
    for name, value in (("megabytes", megabytes), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    x = torch.empty(megabytes * 2**20 // 4)
    y = torch.empty_like(x)
    y.copy_(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y.copy_(x)
        times.append(time.perf_counter() - t0)
    return 2 * x.numel() * 4 / sorted(times)[len(times) // 2]
