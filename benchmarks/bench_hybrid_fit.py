"""A user's CAP Hybrid fit, end to end, against a vanilla fit in the same run: seconds and their ratio.

What a user of the README's recipe waits for on 5-shot BANKING77 (by
default): ``Pipeline([PriorUnion(CAP embedding, IG, LIME), classifier])``
with IG and LIME explaining cross-fitted linear probes on the frozen encoder
(:func:`sklearn_cap.make_probe_reference`), at the results page's settings
(IG 20 steps, LIME 500 samples, 3 folds, the LP-FT classifier of the 5-shot
cells), from an empty score cache. Each fit is timed, with the prior's
members timed apart (``PriorUnion`` fits them in turn), and every ratio is
to the vanilla fit of the same run: absolute seconds drift on a shared
machine, ratios in one run hold. Test accuracy is printed beside them.

``--lime-samples 500 250`` times one Hybrid per LIME sample count; ``--precision
bfloat16`` runs the probe references and the embedding scorer in bfloat16, as
the results page's cells do on a CPU with bfloat16 matrix units.

Run (one torch job at a time)::

    python benchmarks/bench_hybrid_fit.py [--dataset banking77 --shots 5 --seed 0 --lime-samples 500 250]
"""

import argparse
import os
import tempfile
import time
from contextlib import contextmanager

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry  # noqa: E402


def _classifier(seed, shots, **kw):
    from sklearn_cap import ExplanationGuidedClassifier, embedded

    # the LP-FT recipe of the results page's cells at this setting, read from the registry
    setting = f"{shots}-shot"
    params = dict(beta=0, attribution="grad_input", batch_size=registry.SETTINGS[setting][2], max_length=128,
                  random_state=seed, progress_bar=False, **registry.recipe_params("lpft", setting))
    return ExplanationGuidedClassifier(embedded.ENCODER, **{**params, **kw})


def _hybrid(seed, shots, lime_samples, cache_dir, precision):
    from sklearn.pipeline import Pipeline

    from sklearn_cap import (CAPPriorTransformer, IGPriorTransformer, LIMEPriorTransformer, PriorUnion, embedded,
                             make_probe_reference)
    from sklearn_cap.scorers import EmbeddingScorer

    reference = make_probe_reference(embedded.ENCODER, precision=precision, random_state=seed, progress_bar=False)
    union = PriorUnion([
        ("cap", CAPPriorTransformer(EmbeddingScorer(precision=precision), n_samples=100, lam=0.1, cache_dir=cache_dir,
                                    progress_bar=False)),
        ("ig", IGPriorTransformer(reference, cv=3, n_steps=20, progress_bar=False)),
        ("lime", LIMEPriorTransformer(reference, cv=3, num_samples=lime_samples, random_state=seed,
                                      progress_bar=False)),
    ], aggregate="mean")
    return Pipeline([("priors", union), ("clf", _classifier(seed, shots, beta=1.0))])


@contextmanager
def _timed_parts():
    """Time the prior members' work (PriorUnion fits clones of them, so their classes are wrapped): name -> s."""
    from sklearn_cap import CAPPriorTransformer, IGPriorTransformer, LIMEPriorTransformer
    from sklearn_cap.priors.reference import ReferencePrior

    seconds, saved = {}, []

    def wrap(cls, method, label):
        fn, own = getattr(cls, method), method in cls.__dict__

        def run(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - t
        saved.append((cls, method, fn if own else None))
        setattr(cls, method, run)

    wrap(CAPPriorTransformer, "fit_transform", "CAP")
    wrap(ReferencePrior, "fit_reference", "probe references")
    wrap(IGPriorTransformer, "explain_with", "IG")
    wrap(LIMEPriorTransformer, "explain_with", "LIME")
    try:
        yield seconds
    finally:
        for cls, method, fn in saved:
            setattr(cls, method, fn) if fn is not None else delattr(cls, method)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="banking77", choices=["banking77", "hwu64", "clinc150"])
    p.add_argument("--shots", type=int, default=5, choices=[5, 10])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lime-samples", type=int, nargs="+", default=[500])
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                   help="of the probe references and the embedding scorer (the classifier stays float32)")
    p.add_argument("--data-home", default=None)
    args = p.parse_args(argv)

    import torch

    from sklearn_cap import datasets

    torch.set_num_threads(os.cpu_count() or 1)
    load = getattr(datasets, f"load_{args.dataset}")
    X, y = load("train", data_home=args.data_home, return_X_y=True)
    X_test, y_test = load("test", data_home=args.data_home, return_X_y=True)
    Xs, ys, _ = datasets.sample_few_shot(X, y, args.shots, random_state=args.seed)
    Xs, X_test = list(Xs), list(X_test)
    print(f"{args.dataset} {args.shots}-shot seed {args.seed}: {len(Xs)} training texts, {len(X_test)} test texts, "
          f"{torch.get_num_threads()} threads, priors' models in {args.precision}")

    rows = []
    t = time.perf_counter()
    vanilla = _classifier(args.seed, args.shots).fit(Xs, ys)
    base = time.perf_counter() - t
    rows.append(("vanilla (LP-FT)", base, {}, vanilla.score(X_test, y_test)))
    for n in args.lime_samples:
        with tempfile.TemporaryDirectory() as cache, _timed_parts() as parts:  # empty cache: CAP scores all
            hybrid = _hybrid(args.seed, args.shots, n, cache, args.precision)
            t = time.perf_counter()
            hybrid.fit(Xs, ys)
            total = time.perf_counter() - t
            parts = dict(parts)
        rows.append((f"CAP Hybrid mean, probe references, LIME {n} samples", total, parts, hybrid.score(X_test, y_test)))

    print(f"\n{'fit':<55} {'seconds':>8} {'x vanilla':>10} {'accuracy':>9}  parts (seconds)")
    for name, sec, parts, acc in rows:
        detail = ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
        if parts:
            detail += f", classifier {sec - sum(parts.values()):.0f}"
        print(f"{name:<55} {sec:>8.0f} {sec / base:>10.2f} {acc:>9.3f}  {detail}")


if __name__ == "__main__":
    main()
