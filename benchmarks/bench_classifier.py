"""ExplanationGuidedClassifier on the embedded MiniLM and BANKING77: step cost, latency, accuracy.

Parts (``--part``, default all but ``full`` and ``sig``), each printed from one run:

``steps``
    Seconds per training step (batch 32, the same batches for every loss)
    with plain cross-entropy, the gradient x input attribution loss, exact IG
    with 4 steps (the 4 interpolated copies in one batched pass, the logits
    of the last reused for the cross-entropy) and stochastic IG (one random
    point per text), in float32 and bfloat16; and each loss's ratio to the
    cross-entropy step.
``latency``
    ``predict`` latency per text at batch size 1 and throughput with the
    default evaluation batches of 64.
``accuracy``
    Test accuracy after 5-shot training (``beta=0``) in float32 and bfloat16.
``full``
    Test accuracy after training on the full training set (``beta=0``).
``sig``
    5-shot training with CAP (embedding) priors and ``beta=1``, exact IG-4
    against stochastic IG in the loss, over ``--seeds`` seeds: accuracy mean
    and standard deviation of each.

Run::

    python benchmarks/bench_classifier.py [--part steps latency accuracy] [--part sig --seeds 0 1 2]
"""

import argparse
import time

import numpy as np
import torch

from sklearn_cap import CAPPriorTransformer, ExplanationGuidedClassifier, WordAttributions, embedded
from sklearn_cap.datasets import load_banking77, sample_few_shot
from sklearn_cap.scorers import EmbeddingScorer


def steps(args, X, y, X_test, y_test):
    n = 32 * args.timing_steps
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    wa = WordAttributions(list(X[idx]))
    wa = wa.with_values(np.random.default_rng(0).random(wa.shape))  # any finite prior costs the same
    losses = [("plain CE", dict(beta=0)), ("grad_input", dict(beta=1, attribution="grad_input")),
              ("IG, 4 steps (exact)", dict(beta=1, attribution="ig", n_steps=4)),
              ("IG, stochastic", dict(beta=1, attribution="ig_stochastic"))]
    table = {}
    for precision in ("float32", "bfloat16"):
        for name, kw in losses:
            clf = ExplanationGuidedClassifier(embedded.ENCODER, epochs=2, batch_size=32, learning_rate=1e-4,
                                              random_state=0, progress_bar=False, precision=precision, **kw)
            clf.fit(wa, y[idx])
            table[(precision, name)] = clf.history_[1]["seconds"] / args.timing_steps  # epoch 2: warm
    print(f"\n(a) training step, batch 32, mean of {args.timing_steps} steps (second epoch, same batches), "
          f"{torch.get_num_threads()} threads")
    print(f"    {'loss':<24}{'float32 s':>10}{'x CE':>7}{'bfloat16 s':>12}{'x CE':>7}")
    for name, _ in losses:
        a, b = table[("float32", name)], table[("bfloat16", name)]
        print(f"    {name:<24}{a:>10.3f}{a / table[('float32', 'plain CE')]:>7.2f}"
              f"{b:>12.3f}{b / table[('bfloat16', 'plain CE')]:>7.2f}")
    print(f"    bfloat16 over float32, plain CE step: {table[('float32', 'plain CE')] / table[('bfloat16', 'plain CE')]:.2f}x")


def latency(args, X, y, X_test, y_test):
    idx = np.random.default_rng(0).choice(len(X), 320, replace=False)
    clf = ExplanationGuidedClassifier(embedded.ENCODER, epochs=1, beta=0, random_state=0,
                                      progress_bar=False).fit(X[idx], y[idx])
    clf.predict(X_test[:8])  # warm-up
    t = time.perf_counter()
    for text in X_test[:100]:
        clf.predict([text])
    lat = (time.perf_counter() - t) / 100
    t = time.perf_counter()
    clf.predict(X_test[:1024])
    thr = 1024 / (time.perf_counter() - t)
    print("\n(b) predict, float32")
    print(f"    latency at batch size 1: {lat * 1000:.1f} ms per text")
    print(f"    throughput, length-sorted batches of 64: {thr:.0f} texts/s")


def _fit_score(Xtr, ytr, X_test, y_test, **kw):
    clf = ExplanationGuidedClassifier(embedded.ENCODER, learning_rate=1e-4, random_state=kw.pop("seed", 0),
                                      progress_bar=False, **kw)
    t = time.perf_counter()
    clf.fit(Xtr, ytr)
    return time.perf_counter() - t, clf.score(X_test, y_test)


def accuracy(args, X, y, X_test, y_test):
    X5, y5, _ = sample_few_shot(X, y, 5, random_state=0)
    print(f"\n(c) test accuracy ({len(X_test)} texts), 5-shot ({len(X5)} texts), beta=0, 15 epochs, batch 16")
    print(f"    {'precision':<12}{'seconds':>9}{'accuracy':>10}")
    for precision in ("float32", "bfloat16"):
        s, acc = _fit_score(list(X5), y5, X_test, y_test, beta=0, epochs=15, batch_size=16, precision=precision)
        print(f"    {precision:<12}{s:>9.0f}{acc:>10.4f}")


def full(args, X, y, X_test, y_test):
    s, acc = _fit_score(list(X), y, X_test, y_test, beta=0, epochs=3, batch_size=32, precision=args.precision)
    print(f"\n(d) full training set ({len(X)} texts), beta=0, 3 epochs, batch 32, {args.precision}: "
          f"{s:.0f} s, test accuracy {acc:.4f}")


def sig(args, X, y, X_test, y_test):
    labels = sorted(set(y))
    rows = {"IG, 4 steps (exact)": [], "IG, stochastic": []}
    secs = {k: [] for k in rows}
    for seed in args.seeds:
        X5, y5, _ = sample_few_shot(X, y, 5, random_state=seed)
        cap = CAPPriorTransformer(EmbeddingScorer(precision="bfloat16"), n_samples=100, labels=labels,
                                  progress_bar=False)
        priors = cap.fit_transform(list(X5), y5)
        for name, kw in [("IG, 4 steps (exact)", dict(attribution="ig", n_steps=4)),
                         ("IG, stochastic", dict(attribution="ig_stochastic"))]:
            s, acc = _fit_score(priors, y5, X_test, y_test, beta=1.0, epochs=15, batch_size=16,
                                precision=args.precision, seed=seed, **kw)
            rows[name].append(acc)
            secs[name].append(s)
    print(f"\n(e) 5-shot BANKING77 with CAP (embedding) priors, beta=1, 15 epochs, {args.precision}, "
          f"seeds {args.seeds} (each its own sample and initialisation)")
    print(f"    {'IG in the loss':<24}{'accuracy mean':>14}{'sd':>8}{'fit s':>8}")
    for name, accs in rows.items():
        print(f"    {name:<24}{np.mean(accs):>14.4f}{np.std(accs, ddof=1) if len(accs) > 1 else 0:>8.4f}"
              f"{np.mean(secs[name]):>8.0f}")
    d = np.array(rows["IG, stochastic"]) - np.array(rows["IG, 4 steps (exact)"])
    print(f"    paired difference stochastic - exact: {d.mean():+.4f} (per seed: "
          + ", ".join(f"{v:+.4f}" for v in d) + ")")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["steps", "latency", "accuracy"],
                        choices=["steps", "latency", "accuracy", "full", "sig"])
    parser.add_argument("--timing-steps", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()
    X, y = load_banking77("train", data_home=args.data_home, return_X_y=True)
    X_test, y_test = load_banking77("test", data_home=args.data_home, return_X_y=True)
    print("ExplanationGuidedClassifier, embedded MiniLM-L6 (22.7M parameters), BANKING77, CPU")
    for part in args.part:
        globals()[part](args, X, y, X_test, y_test)


if __name__ == "__main__":
    main()
