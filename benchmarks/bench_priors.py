"""IG and LIME priors on the embedded MiniLM: ours against the plain use, same texts, same settings.

A reference classifier (embedded MiniLM, ``beta=0``) is trained briefly on a
BANKING77 2-shot sample; then, for the same test texts, prints seconds per
text and the ratios for

- LIME: plain lime (``LimeTextExplainer.explain_instance``) used well, with a
  batched ``classifier_fn`` (the classifier's ``predict_proba`` on all of a
  text's perturbations in one call), against ours
  (:func:`sklearn_cap.priors.lime.lime_weights_many`: the neighbourhoods of 32
  texts drawn as lime draws them, every distinct perturbation scored once in
  one length-sorted call); and, for reference, lime with the classifier called
  on one perturbation at a time (first ``--one-at-a-time`` texts only);
- IG: the IG prior with 16 length-sorted texts per pass against one text per pass;

and the largest difference between the weights (they must agree).

Run::

    python benchmarks/bench_priors.py [--texts 32] [--n-steps 50] [--num-samples 1000] [--precision bfloat16]
"""

import argparse
import time

import numpy as np
import torch

from sklearn_cap import ExplanationGuidedClassifier, IGPriorTransformer, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.priors.lime import lime_weights, lime_weights_many, text_rng


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--one-at-a-time", type=int, default=3)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    X, y = load_banking77("train", data_home=args.data_home, return_X_y=True)
    X_test, y_test = load_banking77("test", data_home=args.data_home, return_X_y=True)
    X2, y2, _ = sample_few_shot(X, y, 2, random_state=0)
    clf = ExplanationGuidedClassifier(embedded.ENCODER, beta=0, epochs=1, random_state=0, progress_bar=False,
                                      precision=args.precision).fit(X2, y2)
    idx = np.random.default_rng(0).choice(len(X_test), args.texts, replace=False)
    texts, labels = list(X_test[idx]), y_test[idx]
    target = clf.class_index(labels)
    n, k = len(texts), args.one_at_a_time

    # LIME
    t = time.perf_counter()
    w_plain = [lime_weights(s, clf.predict_proba, target[i], num_samples=args.num_samples, random_state=text_rng(0, s))
               for i, s in enumerate(texts)]
    t_plain = (time.perf_counter() - t) / n
    t = time.perf_counter()
    w_ours = lime_weights_many(clf.predict_proba, texts, target, [text_rng(0, s) for s in texts],
                               num_samples=args.num_samples)
    t_ours = (time.perf_counter() - t) / n
    t = time.perf_counter()
    one = lambda strings: np.vstack([clf.predict_proba([s]) for s in strings])
    w_one = [lime_weights(s, one, target[i], num_samples=args.num_samples, random_state=text_rng(0, s))
             for i, s in enumerate(texts[:k])]
    t_one = (time.perf_counter() - t) / k
    lime_diff = max(np.abs(a - b).max() for a, b in zip(w_ours + w_one, w_plain + w_plain[:k]))

    # IG
    ig = dict(prefit=True, n_steps=args.n_steps, internal_batch_size=None, progress_bar=False)
    t = time.perf_counter()
    ig_one = IGPriorTransformer(clf, batch_size=1, **ig).explain_with(clf, texts, labels)
    t_ig_one = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ig_16 = IGPriorTransformer(clf, batch_size=16, **ig).explain_with(clf, texts, labels)
    t_ig_16 = (time.perf_counter() - t) / n
    ig_diff = np.nanmax(np.abs(ig_16 - ig_one))

    print()
    print(f"embedded MiniLM reference classifier ({args.precision}), {n} BANKING77 test texts, "
          f"LIME num_samples={args.num_samples}, IG n_steps={args.n_steps}, {torch.get_num_threads()} threads")
    print()
    print(f"{'prior / way':<52}{'s/text':>9}{'speed-up':>10}")
    print(f"{'LIME, plain lime, batched classifier_fn (baseline)':<52}{t_plain:>9.3f}{1:>10.1f}")
    print(f"{'LIME, ours (32 texts per call, distinct strings once)':<52}{t_ours:>9.3f}{t_plain / t_ours:>10.1f}")
    print(f"{'LIME, plain lime, one perturbation per call':<52}{t_one:>9.3f}{t_plain / t_one:>10.2f}")
    print(f"{'IG, one text per pass (baseline)':<52}{t_ig_one:>9.3f}{1:>10.1f}")
    print(f"{'IG, 16 length-sorted texts per pass':<52}{t_ig_16:>9.3f}{t_ig_one / t_ig_16:>10.1f}")
    print()
    print(f"LIME speed-up of ours over plain lime used well: {t_plain / t_ours:.1f}x "
          f"(over one perturbation per call: {t_one / t_ours:.1f}x)")
    print(f"max |LIME weight difference| ours vs plain lime, same samples: {lime_diff:.2e}")
    print(f"max |IG difference| 16 per pass vs one per pass: {ig_diff:.2e}")


if __name__ == "__main__":
    main()
