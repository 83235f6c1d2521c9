"""The experiment path at scale: full-data CAP, adaptive sampling, and a 5-shot CAP Hybrid fit by stage.

Parts (``--part``), each printed from one run:

``cap_full``
    ``CAPPriorTransformer`` with the embedding scorer, ``n_samples=100``, on
    all 10,003 BANKING77 training texts from an empty cache (bfloat16
    autocast), with the seconds, variants scored and variants per second; and,
    on the first 500 texts, float32 against bfloat16: throughput ratio and the
    Spearman correlation of their priors. Resumable: a killed run keeps what
    it scored in ``--cache-dir``.
``adaptive``
    The embedded SmolLM2 LLM on 200 BANKING77 training texts: ``n_samples=100``
    against ``adaptive=True``; LLM queries of each and the Spearman
    correlation of each text's adaptive prior with its full prior.
``llm_precision``
    CAP with the embedded SmolLM2 in float32 (the CPU default) and in
    bfloat16 on ``--texts`` BANKING77 training texts: variants per second of
    each and the Spearman correlation of each text's two priors.
``hybrid``
    One 5-shot, all-77-intent BANKING77 CAP Hybrid fit (IG and LIME priors of
    cross-fitted reference models, CAP from the embedding scorer, guided
    training with gradient x input), the seconds of each stage.

Run::

    python benchmarks/bench_scale.py --part cap_full [--cache-dir DIR]
    python benchmarks/bench_scale.py --part adaptive [--texts 200]
    python benchmarks/bench_scale.py --part llm_precision [--texts 60]
    python benchmarks/bench_scale.py --part hybrid [--precision bfloat16]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from sklearn_cap import (CAPPriorTransformer, ExplanationGuidedClassifier, IGPriorTransformer, LIMEPriorTransformer,
                         PriorUnion, embedded)
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.scorers import CausalLMScorer, EmbeddingScorer


def _rank_agreement(a, b):
    """Spearman correlation of each row's finite entries (rows with fewer than 3 words are skipped)."""
    out = []
    for x, y in zip(np.asarray(a), np.asarray(b)):
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.sum() >= 3:
            out.append(spearmanr(x[keep], y[keep]).statistic)
    return np.array(out)


def _by_precision(make_scorer, texts, ys, labels, progress):
    """CAP priors (n_samples=100, no cache) and variants per second with the scorer in float32 and bfloat16."""
    rates, priors = {}, {}
    for precision in ("float32", "bfloat16"):
        cap = CAPPriorTransformer(make_scorer(precision), n_samples=100, labels=labels, cache_dir=False,
                                  progress_bar=progress)
        t = time.perf_counter()
        priors[precision] = np.asarray(cap.fit_transform(texts, ys))
        rates[precision] = cap.n_scored_ / (time.perf_counter() - t)
    return rates, priors


def cap_full(args, X, y, labels):
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="cap_full_"))
    cap = CAPPriorTransformer(EmbeddingScorer(precision="bfloat16", batch_size=128), n_samples=100, labels=labels,
                              cache_dir=cache, chunk_size=4096, progress_bar=args.progress)
    t = time.perf_counter()
    cap.fit_transform(list(X), y)
    full_s = time.perf_counter() - t
    scored, cached = cap.n_scored_, cap.n_cached_

    sub, ys = list(X[:500]), y[:500]
    rates, priors = _by_precision(lambda p: EmbeddingScorer(precision=p, batch_size=128), sub, ys, labels, False)
    rho = _rank_agreement(priors["float32"], priors["bfloat16"])

    print(f"\nCAP, embedding scorer (embedded MiniLM), n_samples=100, all {len(X)} BANKING77 training texts, "
          f"77-label space, {torch.get_num_threads()} threads")
    print(f"  bfloat16, empty cache: {full_s:.0f} s ({full_s / 60:.1f} min); {scored} variants scored, "
          f"{cached} from the cache; {scored / full_s:.0f} variants/s")
    print(f"  first 500 texts: float32 {rates['float32']:.0f} variants/s, bfloat16 {rates['bfloat16']:.0f} "
          f"variants/s, ratio {rates['bfloat16'] / rates['float32']:.2f}x")
    print(f"  Spearman of bfloat16 vs float32 priors per text: median {np.median(rho):.3f}, "
          f"mean {rho.mean():.3f}, 5th percentile {np.percentile(rho, 5):.3f} ({len(rho)} texts)")


def adaptive(args, X, y, labels):
    idx = np.random.default_rng(0).choice(len(X), args.texts, replace=False)
    texts, ys = list(X[idx]), y[idx]
    cache = Path(tempfile.mkdtemp(prefix="cap_adaptive_"))
    scorer = CausalLMScorer(embedded.LLM)
    kw = dict(n_samples=100, labels=labels, cache_dir=cache, progress_bar=args.progress)
    t = time.perf_counter()
    ada = CAPPriorTransformer(scorer, adaptive=True, adaptive_tol=args.tol, **kw)
    P_ada = ada.fit_transform(texts, ys)
    t_ada, q_ada = time.perf_counter() - t, ada.n_scored_
    t = time.perf_counter()
    full = CAPPriorTransformer(scorer, **kw)
    P_full = full.fit_transform(texts, ys)  # reuses the adaptive run's scores: its masks are a prefix
    t_full = time.perf_counter() - t
    q_full = full.n_scored_ + full.n_cached_
    rho = _rank_agreement(P_ada, P_full)
    print(f"\nCAP, embedded SmolLM2-135M, {len(texts)} BANKING77 training texts, 77-label prompt")
    print(f"  n_samples=100: {q_full} LLM queries (distinct variants)")
    print(f"  adaptive (tol={args.tol}): {q_ada} LLM queries, {ada.n_masks_.mean():.1f} masks per text on average "
          f"-> {q_full / q_ada:.2f}x fewer queries ({t_ada:.0f} s; the full run then took {t_full:.0f} s "
          f"for the remaining {full.n_scored_} queries)")
    print(f"  Spearman of adaptive vs n=100 priors per text: mean {rho.mean():.3f}, median {np.median(rho):.3f}, "
          f"share >= 0.95: {np.mean(rho >= 0.95):.2f} ({len(rho)} texts)")


def llm_precision(args, X, y, labels):
    idx = np.random.default_rng(1).choice(len(X), args.texts, replace=False)
    texts, ys = list(X[idx]), y[idx]
    rates, priors = _by_precision(lambda p: CausalLMScorer(embedded.LLM, dtype=p), texts, ys, labels, args.progress)
    rho = _rank_agreement(priors["float32"], priors["bfloat16"])
    top = np.mean([np.nanargmax(a) == np.nanargmax(b) for a, b in zip(priors["float32"], priors["bfloat16"])])
    print(f"\nCAP, embedded SmolLM2-135M, n_samples=100, {len(texts)} BANKING77 training texts, 77-label prompt, "
          f"{torch.get_num_threads()} threads")
    print(f"  float32 {rates['float32']:.1f} variants/s, bfloat16 {rates['bfloat16']:.1f} variants/s, "
          f"ratio {rates['bfloat16'] / rates['float32']:.2f}x")
    print(f"  Spearman of bfloat16 vs float32 priors per text: median {np.median(rho):.3f}, mean {rho.mean():.3f}, "
          f"5th percentile {np.percentile(rho, 5):.3f} ({len(rho)} texts); same top word: {top:.2f}")


def hybrid(args, X, y, labels):
    X5, y5, _ = sample_few_shot(X, y, 5, random_state=0)
    X5 = list(X5)
    common = dict(epochs=15, learning_rate=1e-4, batch_size=16, random_state=0, precision=args.precision,
                  progress_bar=False)
    ref = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, **common)
    ig = IGPriorTransformer(ref, cv=3, n_steps=20, progress_bar=False)
    lime = LIMEPriorTransformer(ref, cv=3, num_samples=500, progress_bar=False)
    cap = CAPPriorTransformer(EmbeddingScorer(precision=args.precision), n_samples=100, labels=labels,
                              cache_dir=False, progress_bar=False)
    stages = {}
    t = time.perf_counter()
    refs = ig.fit_reference(X5, y5)
    stages["reference models (3 folds)"] = time.perf_counter() - t
    t = time.perf_counter()
    p_ig = ig.fit_transform_with(refs, X5, y5)
    stages["IG prior (20 steps)"] = time.perf_counter() - t
    t = time.perf_counter()
    p_lime = lime.fit_transform_with(refs, X5, y5)
    stages["LIME prior (500 samples)"] = time.perf_counter() - t
    t = time.perf_counter()
    p_cap = cap.fit_transform(X5, y5)
    stages["CAP prior (embedding, n=100)"] = time.perf_counter() - t
    t = time.perf_counter()
    fused = PriorUnion([("cap", cap), ("ig", ig), ("lime", lime)]).fuse(X5, {"cap": p_cap, "ig": p_ig, "lime": p_lime})
    ExplanationGuidedClassifier(embedded.ENCODER, beta=1.0, attribution="grad_input", **common).fit(fused, y5)
    stages["fusion and guided training"] = time.perf_counter() - t
    total = sum(stages.values())
    print(f"\n5-shot BANKING77, all 77 intents ({len(X5)} texts), CAP Hybrid mean, precision={args.precision}, "
          f"{torch.get_num_threads()} threads")
    for name, s in stages.items():
        print(f"  {name:<34}{s:>8.0f} s  {s / total:>5.0%}")
    print(f"  {'total':<34}{total:>8.0f} s  ({total / 60:.1f} min)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["cap_full", "adaptive", "llm_precision", "hybrid"], required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--tol", type=float, default=0.95)
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()
    X, y = load_banking77("train", data_home=args.data_home, return_X_y=True)
    labels = sorted(set(y))
    parts = {"cap_full": cap_full, "adaptive": adaptive, "llm_precision": llm_precision, "hybrid": hybrid}
    parts[args.part](args, X, y, labels)


if __name__ == "__main__":
    main()
