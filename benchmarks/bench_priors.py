"""IG and LIME priors on the embedded MiniLM: ours (batched) against the plain one-at-a-time use.

A reference classifier (embedded MiniLM, ``beta=0``) is trained briefly on a
BANKING77 5-shot sample; then, for the same test texts and settings, prints
seconds per text and the ratio for

- IG: the IG prior with 16 length-sorted texts per pass, against one text
  per pass;
- LIME: lime's explainer with :func:`sklearn_cap.priors.lime.batched_proba`
  (each distinct perturbation scored once, in batches of 64), against the
  classifier called on one perturbation at a time, and against the classifier
  called on all perturbations at once without de-duplication;

and the largest difference between the attributions (they must agree).

Run::

    python benchmarks/bench_priors.py [--texts 10] [--n-steps 50] [--num-samples 1000]
"""

import argparse
import time

import numpy as np

from sklearn_cap import ExplanationGuidedClassifier, IGPriorTransformer, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.priors.lime import batched_proba, lime_weights, text_rng


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()

    X, y = load_banking77("train", data_home=args.data_home, return_X_y=True)
    X_test, y_test = load_banking77("test", data_home=args.data_home, return_X_y=True)
    X5, y5, _ = sample_few_shot(X, y, 2, random_state=0)
    clf = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=1, random_state=0, progress_bar=False)
    clf.fit(X5, y5)
    idx = np.random.default_rng(0).choice(len(X_test), args.texts, replace=False)
    texts = list(X_test[idx])
    target = np.array([list(clf.classes_).index(v) for v in y_test[idx]])

    # IG
    t = time.perf_counter()
    ig = dict(prefit=True, n_steps=args.n_steps, internal_batch_size=None, progress_bar=False)
    ours = IGPriorTransformer(clf, batch_size=16, **ig).explain_with(clf, texts, y_test[idx])
    t_ig = time.perf_counter() - t
    t = time.perf_counter()
    plain = IGPriorTransformer(clf, batch_size=1, **ig).explain_with(clf, texts, y_test[idx])
    t_ig_plain = time.perf_counter() - t
    ig_diff = np.nanmax(np.abs(ours - plain))

    # LIME
    def run(fn):
        start = time.perf_counter()
        w = [lime_weights(s, fn, target[i], num_samples=args.num_samples, random_state=text_rng(0, s))
             for i, s in enumerate(texts)]
        return w, time.perf_counter() - start

    one_at_a_time = lambda strings: np.vstack([clf.predict_proba([s]) for s in strings])
    w_ours, t_lime = run(batched_proba(clf))
    w_all, t_lime_all = run(clf.predict_proba)
    w_plain, t_lime_plain = run(one_at_a_time)
    lime_diff = max(np.abs(a - b).max() for a, b in zip(w_ours, w_plain))

    n = len(texts)
    print()
    print(f"embedded MiniLM reference classifier, {n} BANKING77 test texts, IG n_steps={args.n_steps}, "
          f"LIME num_samples={args.num_samples}")
    print()
    print(f"{'prior / way':<44}{'s/text':>9}{'speed-up':>10}")
    print(f"{'IG, one text per pass':<44}{t_ig_plain / n:>9.3f}{1:>10.1f}")
    print(f"{'IG, 16 length-sorted texts per pass':<44}{t_ig / n:>9.3f}{t_ig_plain / t_ig:>10.1f}")
    print(f"{'LIME, one perturbation at a time':<44}{t_lime_plain / n:>9.3f}{1:>10.1f}")
    print(f"{'LIME, all perturbations in one call':<44}{t_lime_all / n:>9.3f}{t_lime_plain / t_lime_all:>10.1f}")
    print(f"{'LIME, ours (distinct perturbations, batched)':<44}{t_lime / n:>9.3f}{t_lime_plain / t_lime:>10.1f}")
    print()
    print(f"max |IG difference| ours vs one at a time: {ig_diff:.2e}")
    print(f"max |LIME weight difference| ours vs one at a time: {lime_diff:.2e}")


if __name__ == "__main__":
    main()
