"""ExplanationGuidedClassifier on the embedded MiniLM and BANKING77: step cost, latency, accuracy.

Prints, from one run:

(a) seconds per training step (batch 32) with plain cross-entropy, with the
    gradient x input attribution loss and with the IG attribution loss at the
    default steps, on the same batches, and the overhead ratios;
(b) ``predict`` latency per text at batch size 1, and throughput with the
    default evaluation batches of 64;
(c) test accuracy after training on the full training set and on a 5-shot
    sample (both ``beta=0``), with the epochs and seconds used.

Run::

    python benchmarks/bench_classifier.py [--epochs 3] [--few-shot-epochs 15] [--skip-full]
"""

import argparse
import time

import numpy as np

from sklearn_cap import ExplanationGuidedClassifier, WordAttributions, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs on the full training set")
    parser.add_argument("--few-shot-epochs", type=int, default=15)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--timing-steps", type=int, default=10)
    parser.add_argument("--skip-full", action="store_true", help="skip the full-data training (c)")
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()

    X, y = load_banking77("train", data_home=args.data_home, return_X_y=True)
    X_test, y_test = load_banking77("test", data_home=args.data_home, return_X_y=True)
    common = dict(batch_size=32, learning_rate=args.learning_rate, random_state=0, progress_bar=False)

    # (a) step cost on the same batches: same seed, same data, same order
    n = 32 * args.timing_steps
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    wa = WordAttributions(list(X[idx]))
    wa = wa.with_values(np.random.default_rng(0).random(wa.shape))  # any finite prior costs the same
    step = {}
    for name, kw in [("plain CE", dict(beta=0)), ("grad_input", dict(beta=1, attribution="grad_input")),
                     ("ig (n_steps=4)", dict(beta=1, attribution="ig"))]:
        clf = ExplanationGuidedClassifier(embedded.ENCODER, epochs=1, **common, **kw).fit(wa, y[idx])
        step[name] = clf.history_[0]["seconds"] / args.timing_steps

    # (b) latency and throughput of predict
    clf = ExplanationGuidedClassifier(embedded.ENCODER, epochs=1, beta=0, **common).fit(X[idx], y[idx])
    clf.predict(X_test[:8])  # warm-up
    t = time.perf_counter()
    for text in X_test[:100]:
        clf.predict([text])
    latency = (time.perf_counter() - t) / 100
    t = time.perf_counter()
    clf.predict(X_test[:1024])
    throughput = 1024 / (time.perf_counter() - t)

    # (c) accuracy, beta=0
    rows = []
    X5, y5, _ = sample_few_shot(X, y, 5, random_state=0)
    runs = [("5-shot", X5, y5, args.few_shot_epochs)]
    if not args.skip_full:
        runs.append(("full", X, y, args.epochs))
    for name, Xtr, ytr, epochs in runs:
        clf = ExplanationGuidedClassifier(embedded.ENCODER, epochs=epochs, beta=0, **{**common, "progress_bar": True})
        t = time.perf_counter()
        clf.fit(Xtr, ytr)
        seconds = time.perf_counter() - t
        rows.append((name, len(Xtr), epochs, seconds, clf.score(X_test, y_test)))

    print()
    print("ExplanationGuidedClassifier, embedded MiniLM-L6 (22.7M parameters), BANKING77, CPU")
    print()
    print(f"(a) training step, batch 32, mean of {args.timing_steps} steps on the same batches")
    print(f"    {'loss':<18}{'s/step':>8}{'x plain':>9}")
    for name, s in step.items():
        print(f"    {name:<18}{s:>8.3f}{s / step['plain CE']:>9.2f}")
    print()
    print("(b) predict")
    print(f"    latency at batch size 1: {latency * 1000:.1f} ms per text")
    print(f"    throughput at batch size 64: {throughput:.0f} texts/s")
    print()
    print(f"(c) test accuracy (3080 texts), beta=0, lr={args.learning_rate}, batch 32")
    print(f"    {'training set':<14}{'texts':>7}{'epochs':>8}{'seconds':>9}{'accuracy':>10}")
    for name, ntr, epochs, seconds, acc in rows:
        print(f"    {name:<14}{ntr:>7}{epochs:>8}{seconds:>9.0f}{acc:>10.4f}")


if __name__ == "__main__":
    main()
