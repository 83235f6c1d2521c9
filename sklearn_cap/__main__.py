"""Command line: ``python -m sklearn_cap <command>`` (or ``sklearn-cap <command>``).

Commands
--------
priors
    Extract and print CAP priors for a few BANKING77 test texts with an
    embedded model (the SmolLM2 LLM by default, or the MiniLM embedding
    scorer).
"""

import argparse
import sys
import time

import numpy as np


def _priors(args):
    from . import embedded
    from .datasets import load_banking77
    from .priors import CAPPriorTransformer

    X, y = load_banking77("test", data_home=args.data_home, return_X_y=True)
    labels = sorted(set(y))
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(X), size=args.n_texts, replace=False)
    scorer = embedded.LLM if args.scorer == "llm" else "embedding"
    cap = CAPPriorTransformer(
        scorer=scorer, n_samples=args.n_samples, labels=labels,
        cache_dir=args.cache_dir, progress_bar=not args.quiet,
    )
    start = time.perf_counter()
    priors = cap.fit_transform(X[idx], y[idx])
    took = time.perf_counter() - start
    print(f"CAP priors, scorer={args.scorer}, n_samples={args.n_samples}, lam={cap.lam}, "
          f"{len(idx)} BANKING77 test texts, 77-label prompt")
    print(f"scored {cap.n_scored_} prompts, {cap.n_cached_} from the cache, in {took:.1f} s\n")
    for i in range(len(idx)):
        print(f"[{y[idx][i]}] {X[idx][i]}")
        print("   " + "  ".join(f"{w}:{v:+.2f}" for w, v in priors.to_list(i)))
        print(f"   top words: {', '.join(priors.top_words(i, 3))}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sklearn-cap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("priors", help="print CAP priors for a few BANKING77 texts")
    p.add_argument("--scorer", choices=["llm", "embedding"], default="llm")
    p.add_argument("--n-texts", type=int, default=5)
    p.add_argument("--n-samples", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-home", default=None, help="data folder (default $SKLEARN_CAP_DATA)")
    p.add_argument("--cache-dir", default=None, help="score cache (default $SKLEARN_CAP_CACHE)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_priors)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
