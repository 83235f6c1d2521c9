"""Prefix reuse against full prompts for CAP scoring on the embedded SmolLM2.

Scores the masked variants of 20 BANKING77 test texts (n_samples=100, the
77-label prompt) with the shared prefix computed once (queries packed behind
one prefix copy; as a second row, padded rows that each copy it), then a
subset of the same variants with full prompts; checks that all give the same log-probs,
and prints variants per second, their ratio, and a floor estimate
(2 x parameters x tokens over this machine's measured matmul FLOP rate).
All ratios come from this one run: absolute times drift on shared machines.

Run::

    python benchmarks/bench_cap.py [--texts 20] [--full-texts 1] [--data-home DIR]
"""

import argparse
import time

import numpy as np
import torch

from sklearn_cap import embedded
from sklearn_cap.datasets import load_banking77
from sklearn_cap.priors.cap import _text_seed, sample_masks
from sklearn_cap.text import masked_text
from sklearn_cap.scorers import CausalLMScorer, Task
from sklearn_cap.scorers.causal_lm import load_causal_lm
from sklearn_cap.text import segment


def matmul_flops(size=2048, repeats=5):
    """Measured float32 matmul rate of this machine, in FLOP/s (best of several runs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 * repeats / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--full-texts", type=int, default=1, help="texts also scored with full prompts")
    parser.add_argument("--n-samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()

    X, y = load_banking77("test", data_home=args.data_home, return_X_y=True)
    labels = sorted(set(y))
    task = Task.from_labels(labels)
    names = dict(zip(labels, task.label_names))
    idx = np.random.default_rng(0).choice(len(X), args.texts, replace=False)

    variants, answers, owner = [], [], []
    for k, i in enumerate(idx):
        _, spans = segment(X[i])
        if len(spans) < 3:
            continue
        M = sample_masks(len(spans), args.n_samples, _text_seed(0, X[i]))
        uniq = sorted({masked_text(X[i], spans, m) for m in M})  # duplicates are scored once
        variants += uniq
        answers += [names[y[i]]] * len(uniq)
        owner += [k] * len(uniq)
    owner = np.asarray(owner)

    fast = CausalLMScorer(embedded.LLM, batch_size=args.batch_size)
    full = CausalLMScorer(embedded.LLM, batch_size=8, reuse_prefix=False)
    tok, lm = load_causal_lm(embedded.LLM)  # load once, outside the timings
    torch.set_num_threads(torch.get_num_threads())
    n_params = sum(p.numel() for p in lm.parameters())
    prefix, queries, ans_ids = fast.prompt_ids(variants, answers, task)
    q_tokens = np.array([len(q) + len(a) for q, a in zip(queries, ans_ids)])

    rate = matmul_flops()  # measured before and after the scoring; the best counts
    t = time.perf_counter()
    fast_scores = fast.score(variants, answers, task, progress_bar=True)
    t_fast = time.perf_counter() - t

    padded = CausalLMScorer(embedded.LLM, batch_size=args.batch_size, pack=False)
    t = time.perf_counter()
    padded_scores = padded.score(variants, answers, task, progress_bar=True)
    t_padded = time.perf_counter() - t

    bf16 = CausalLMScorer(embedded.LLM, batch_size=args.batch_size, dtype="bfloat16")
    load_causal_lm(embedded.LLM, dtype="bfloat16")
    t = time.perf_counter()
    bf16_scores = bf16.score(variants, answers, task, progress_bar=True)
    t_bf16 = time.perf_counter() - t

    sub = np.flatnonzero(owner < args.full_texts)
    t = time.perf_counter()
    full_scores = full.score([variants[j] for j in sub], [answers[j] for j in sub], task, progress_bar=True)
    t_full = time.perf_counter() - t

    rate = max(rate, matmul_flops())
    fast_vps = len(variants) / t_fast
    full_vps = len(sub) / t_full
    floor_fast = 2 * n_params * q_tokens.mean() / rate  # seconds per variant, prefix amortised
    floor_full = 2 * n_params * (q_tokens[sub].mean() + len(prefix)) / rate
    diff = np.abs(fast_scores[sub] - full_scores).max()

    print()
    print(f"model: SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to float32), {n_params / 1e6:.1f}M parameters, "
          f"{torch.get_num_threads()} threads")
    print(f"prompt: instruction + {len(labels)} labels = {len(prefix)} prefix tokens; "
          f"query + answer {q_tokens.mean():.1f} tokens on average")
    print(f"variants: {len(variants)} distinct masked texts of {len(idx)} texts (n_samples={args.n_samples}); "
          f"full prompts on {len(sub)} of them ({args.full_texts} text(s))")
    print(f"max |log-prob difference| (prefix reuse vs full prompt): {diff:.2e}  ({'OK' if diff < 1e-3 else 'MISMATCH'})")
    print(f"measured matmul rate: {rate / 1e9:.1f} GFLOP/s")
    print()
    print(f"{'path':<14}{'variants/s':>12}{'floor v/s':>12}{'of floor':>10}")
    padded_vps = len(variants) / t_padded
    print(f"{'prefix reuse':<14}{fast_vps:>12.2f}{1 / floor_fast:>12.2f}{fast_vps * floor_fast:>10.0%}")
    print(f"{'  unpacked':<14}{padded_vps:>12.2f}{1 / floor_fast:>12.2f}{padded_vps * floor_fast:>10.0%}")
    print(f"{'full prompts':<14}{full_vps:>12.2f}{1 / floor_full:>12.2f}{full_vps * floor_full:>10.0%}")
    print()
    print(f"speed-up of prefix reuse over full prompts: {fast_vps / full_vps:.1f}x; packing the queries behind one "
          f"prefix copy is {fast_vps / padded_vps:.2f}x padding them into rows that each copy it "
          f"(max |log-prob difference| {np.abs(padded_scores - fast_scores).max():.1e})")
    bf16_vps = len(variants) / t_bf16
    bdiff = np.abs(bf16_scores - fast_scores)
    print(f"prefix reuse with bfloat16 weights: {bf16_vps:.2f} variants/s, {bf16_vps / fast_vps:.2f}x float32; "
          f"|log-prob difference| to float32: median {np.median(bdiff):.3f}, max {bdiff.max():.3f}")
    print("floor: 2 x parameters x tokens per variant at the measured matmul rate (the prefix counted only")
    print("for full prompts); attention over the prefix and the answer-position logits are not in it.")


if __name__ == "__main__":
    main()
