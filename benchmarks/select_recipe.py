"""Choose the classifier recipe on training data only: inner splits of each seed's few-shot sample.

For every seed, the seed's few-shot training sample (``sample_few_shot(...,
random_state=seed)``, the sample the results page trains on) is split per
class into ``--inner-train`` texts to fit on and the rest to score on; the
test split is never read. Each (seed, candidate) is one line of
``benchmarks/results/recipe_selection.jsonl``, written as it finishes, so a
killed run loses at most the fit in flight and a re-run skips finished ones.

Run::

    python benchmarks/select_recipe.py run --dataset banking77 --shots 5 --seeds 0 1 [--candidates ...]
    python benchmarks/select_recipe.py report [--against probe_only]   # mean inner accuracy, paired differences
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "recipe_selection.jsonl"

# The training settings of the results page's 5-shot cells (benchmarks/registry.py), the "legacy" recipe.
_LEGACY = dict(head_init="random", learning_rate=1e-4, epochs=15, batch_size=16)
_LPFT = dict(head_init="probe", learning_rate=3e-5, head_learning_rate=3e-4, epochs=8, batch_size=16)
CANDIDATES = {
    "legacy": _LEGACY,
    "probe_only": dict(head_init="probe", normalize_features=True, stages="probe_only", batch_size=16, epochs=1),
    "lpft": dict(_LPFT),
    "lpft_norm": dict(_LPFT, normalize_features=True),
    "lpft_norm_lr1e-4": dict(_LPFT, normalize_features=True, learning_rate=1e-4, head_learning_rate=1e-3),
    "lpft_norm_15ep": dict(_LPFT, normalize_features=True, epochs=15),
    "lpft_cosine": dict(_LPFT, head="cosine", temperature=0.05, head_learning_rate=3e-3),
    "random_norm_headlr": dict(_LEGACY, normalize_features=True, head_learning_rate=1e-3),
    # A supervised contrastive pass over the body first (sklearn_cap.stages.ContrastiveBody), SetFit's idea.
    "con2_lpft_norm": dict(_LPFT, normalize_features=True, contrastive_epochs=2),
    "con4_lpft_norm": dict(_LPFT, normalize_features=True, contrastive_epochs=4),
    "con4_lpft_norm_4ep": dict(_LPFT, normalize_features=True, contrastive_epochs=4, epochs=4),
    # WiSE-FT (Wortsman et al. 2022): the weights interpolated between the probe's model and the fine-tuned one;
    # one fit scores every alpha (a callback keeps the weights the fine-tuning started from).
    "lpft_norm_wise": dict(_LPFT, normalize_features=True, wise_alphas=(0.25, 0.5, 0.75)),
    "lpft_norm_ls0.1": dict(_LPFT, normalize_features=True, label_smoothing=0.1),
    "lpft_norm_probecv": dict(_LPFT, normalize_features=True, probe_C="cv"),
    "con8_probe": dict(head_init="probe", normalize_features=True, contrastive_epochs=8, stages="contrastive_probe",
                       batch_size=16, epochs=1),
}


def _snapshot_callback():
    from sklearn_cap.callbacks import Callback
    from sklearn_cap.stages import FineTune

    class StartOfFineTuning(Callback):
        """Keeps a copy of the weights a FineTune stage starts from."""

        def on_stage_begin(self, clf, stage, **kwargs):
            if isinstance(stage, FineTune):
                self.state_ = {k: v.detach().clone() for k, v in clf.model_.state_dict().items()}

    return StartOfFineTuning()


def interpolated_predictions(clf, start, alphas, texts):
    """Predictions of ``(1 - alpha) * start + alpha * fitted`` weights for each alpha; the model is restored."""
    import torch

    end = {k: v.detach().clone() for k, v in clf.model_.state_dict().items()}
    out = {}
    try:
        for a in alphas:
            clf.model_.load_state_dict({k: (1 - a) * start[k] + a * end[k] if end[k].is_floating_point() else end[k]
                                        for k in end})
            out[a] = clf.predict(texts)
    finally:
        clf.model_.load_state_dict(end)
    return out


def inner_split(y, n_train, seed):
    """Per class, ``n_train`` rows to fit on and the rest to score on."""
    rng = np.random.default_rng(seed)
    fit, score = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        fit.extend(rows[:n_train]), score.extend(rows[n_train:])
    return np.sort(fit), np.sort(score)


def make(params, seed):
    from sklearn_cap import ExplanationGuidedClassifier, embedded
    from sklearn_cap.stages import ContrastiveBody, LinearProbe

    params = dict(params)
    params.pop("wise_alphas", None)
    stages = params.pop("stages", None)
    if stages == "probe_only":
        params["stages"] = [LinearProbe()]
    elif stages == "contrastive_probe":  # SetFit's shape: a tuned body read by a logistic regression
        params["stages"] = [ContrastiveBody(epochs=params.pop("contrastive_epochs")), LinearProbe()]
    return ExplanationGuidedClassifier(embedded.ENCODER, beta=0, random_state=seed, progress_bar=False, **params)


def done(path=OUT):
    if not path.exists():
        return set()
    return {(r["dataset"], r["shots"], r["seed"], r["candidate"], r["inner_train"])
            for r in map(json.loads, path.read_text().splitlines())}


def run(args):
    import torch

    from sklearn_cap import datasets

    torch.set_num_threads(args.threads)
    loader = getattr(datasets, f"load_{args.dataset}")
    X, y = loader("train", data_home=args.data_home, return_X_y=True)
    finished = done()
    for seed in args.seeds:
        Xs, ys, _ = datasets.sample_few_shot(list(X), np.asarray(y), args.shots, random_state=seed)
        Xs, ys = list(Xs), np.asarray(ys)
        fit, score = inner_split(ys, args.inner_train, seed)
        for name in args.candidates:
            alphas = CANDIDATES[name].get("wise_alphas")
            names = [f"{name}{a:g}" for a in alphas] if alphas else [name]
            if all((args.dataset, args.shots, seed, n, args.inner_train) in finished for n in names):
                continue
            clf = make(CANDIDATES[name], seed)
            if alphas:
                snap = _snapshot_callback()
                clf.set_params(callbacks=[snap])
            start = time.perf_counter()
            clf.fit([Xs[i] for i in fit], ys[fit])
            seconds = time.perf_counter() - start
            texts = [Xs[i] for i in score]
            preds = (interpolated_predictions(clf, snap.state_, alphas, texts) if alphas
                     else {None: clf.predict(texts)})
            for cand, (alpha, pred) in zip(names, preds.items()):
                acc = float(np.mean(pred == ys[score]))
                rec = {"dataset": args.dataset, "shots": args.shots, "seed": seed, "candidate": cand,
                       "inner_train": args.inner_train, "params": CANDIDATES[name], "n_fit": len(fit),
                       "n_score": len(score), "inner_accuracy": acc, "fit_seconds": round(seconds, 1),
                       "threads": args.threads, "cpu": platform.processor() or platform.machine()}
                if alpha is not None:
                    rec["wise_alpha"] = alpha
                with OUT.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(f"{args.dataset} {args.shots}-shot seed {seed} {cand}: {acc:.3f} in {seconds:.0f} s", flush=True)


def report(args):
    from scipy import stats

    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    for (d, k, n) in sorted({(r["dataset"], r["shots"], r["inner_train"]) for r in rows}):
        group = [r for r in rows if (r["dataset"], r["shots"], r["inner_train"]) == (d, k, n)]
        acc = {(r["candidate"], r["seed"]): r["inner_accuracy"] for r in group}
        sec = {(r["candidate"], r["seed"]): r["fit_seconds"] for r in group}
        print(f"\n{d}, {k}-shot sample, fit on {n} per class, scored on the rest (test split unused)")
        print(f"{'candidate':22s} seeds  inner acc  vs {args.against} [95% CI, seeds]   fit s (median)")
        for cand in sorted({c for c, _ in acc}, key=lambda c: -np.mean([v for (cc, _), v in acc.items() if cc == c])):
            seeds = sorted(s for c, s in acc if c == cand)
            mean = np.mean([acc[cand, s] for s in seeds])
            paired = [acc[cand, s] - acc[args.against, s] for s in seeds if (args.against, s) in acc]
            ci = ""
            if len(paired) >= 2:
                m, se = np.mean(paired), stats.sem(paired)
                h = se * stats.t.ppf(0.975, len(paired) - 1) if se > 0 else 0.0
                ci = f"{m:+.3f} [{m - h:+.3f}, {m + h:+.3f}, {len(paired)}]"
            elif paired:
                ci = f"{paired[0]:+.3f} (1 seed)"
            print(f"{cand:22s} {len(seeds):5d}  {mean:9.3f}  {ci:27s} {np.median([sec[cand, s] for s in seeds]):6.0f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", default="banking77", choices=["banking77", "hwu64", "clinc150"])
    r.add_argument("--shots", type=int, default=5)
    r.add_argument("--inner-train", type=int, default=3)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    r.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--data-home", default=None)
    rep = sub.add_parser("report")
    rep.add_argument("--against", default="probe_only", choices=list(CANDIDATES))
    args = p.parse_args(argv)
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
