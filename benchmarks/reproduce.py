"""The paper's results table on BANKING77, HWU64 and CLINC150 with the embedded models.

Rows: vanilla, IG, LIME, CAP, CAP Hybrid (mean), CAP Hybrid (max), with CAP
from the embedding scorer and from the embedded LLM as separate rows.
Columns: 5-shot accuracy, keyword-addition and keyword-replacement adversarial
accuracy, and the faithfulness (comprehensiveness, sufficiency) of each
model's own IG explanations. Each cell is the mean and standard deviation
over training seeds; the 5-shot sample is fixed per data set.

This machine has 2 CPU cores, so the setting is reduced and says so: a
confusable subset of ``--n-classes`` intents per data set (the seed intent
and its nearest intents by name embedding), ``--max-test`` test texts, CAP
with ``--n-samples`` masks (LLM) and 100 (embedding), ``--epochs`` epochs.
The full-data setting is not run.

Every finished cell is appended to ``benchmarks/results/cells.jsonl``, so
the table can be built across several sessions: a re-run skips finished
cells, and LLM scores come from the persistent cache. ``--write-doc``
rebuilds ``doc/results.rst`` from the cells alone.

Run::

    python benchmarks/reproduce.py --seeds 0 1 2 && python benchmarks/reproduce.py --write-doc
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
CELLS = HERE / "results" / "cells.jsonl"
DOC = HERE.parent / "doc" / "results.rst"

DATASETS = {  # data set -> seed intent of the confusable subset
    "banking77": "card_arrival",
    "hwu64": "alarm_set",
    "clinc150": "transfer",
}
ROWS = [
    ("vanilla", "vanilla", None),
    ("IG", "ig", None),
    ("LIME", "lime", None),
    ("CAP (embedding)", "cap", "embedding"),
    ("CAP (LLM)", "cap", "llm"),
    ("CAP Hybrid mean (embedding)", "cap_hybrid_mean", "embedding"),
    ("CAP Hybrid mean (LLM)", "cap_hybrid_mean", "llm"),
    ("CAP Hybrid max (embedding)", "cap_hybrid_max", "embedding"),
    ("CAP Hybrid max (LLM)", "cap_hybrid_max", "llm"),
]
METRICS = [("accuracy", "5-shot acc."), ("adv_addition", "adv. addition"), ("adv_replacement", "adv. replacement"),
           ("comprehensiveness", "compr. ↑"), ("sufficiency", "suff. ↓")]


def load_cells(path=CELLS):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cell_key(c):
    return (c["dataset"], c["row"], c["seed"])


def run(args):
    from sklearn_cap import embedded
    from sklearn_cap.cache import get_cache_dir
    from sklearn_cap.datasets import load_banking77, load_clinc150, load_hwu64, sample_few_shot
    from sklearn_cap.experiment import (adversarial_sets, confusable_classes, evaluate, fit_method, keywords_from,
                                        make_methods)
    from sklearn.base import clone

    loaders = {"banking77": load_banking77, "hwu64": load_hwu64, "clinc150": load_clinc150}
    cells_path = Path(args.cells)
    done = {cell_key(c) for c in load_cells(cells_path)}
    cells_path.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.datasets:
            todo = [r for r in ROWS if (name, r[0], seed) not in done]
            if not todo:
                continue
            X, y = loaders[name]("train", data_home=args.data_home, return_X_y=True)
            Xt, yt = loaders[name]("test", data_home=args.data_home, return_X_y=True)
            classes = confusable_classes(y, args.n_classes, seed_label=DATASETS[name])
            mask = np.isin(y, classes)
            X5, y5, _ = sample_few_shot(X[mask], y[mask], 5, random_state=0)  # fixed per data set
            test = np.flatnonzero(np.isin(yt, classes))
            if len(test) > args.max_test:
                test = np.sort(np.random.default_rng(0).choice(test, args.max_test, replace=False))
            X5, Xt, yt = list(X5), list(Xt[test]), yt[test]
            common = dict(epochs=args.epochs, random_state=seed, cache_dir=get_cache_dir(args.cache_dir),
                          lime_samples=args.lime_samples, beta=args.beta)
            parts = {"embedding": make_methods(embedded.ENCODER, scorer="embedding", n_samples=100, **common),
                     "llm": make_methods(embedded.ENCODER, scorer=embedded.LLM, n_samples=args.n_samples, **common)}
            # The adversarial sets come from CAP (embedding) keywords of the training texts: one set per data set.
            cap_priors = clone(parts["embedding"]["cap"]).fit_transform(X5, y5)
            adversarial = adversarial_sets(Xt, yt, keywords_from(cap_priors, y5), random_state=0)
            print(f"\n{name} seed {seed}: {len(classes)} intents, {len(X5)} training / {len(Xt)} test texts", flush=True)
            t = time.perf_counter()
            vanilla = clone(parts["embedding"]["classifier"]).set_params(beta=0).fit(X5, y5)
            t_vanilla = time.perf_counter() - t
            for row, method, scorer in todo:
                t = time.perf_counter()
                if method == "vanilla":
                    clf, secs = vanilla, t_vanilla
                else:
                    clf, _, secs = fit_method(method, parts[scorer or "embedding"], X5, y5, vanilla=vanilla)
                t_eval = time.perf_counter()
                res = evaluate(clf, Xt[: args.faithfulness_texts], yt[: args.faithfulness_texts], {},
                               explain_steps=args.explain_steps)
                scores = {"accuracy": float(clf.score(Xt, yt)),
                          "adv_addition": float(clf.score(adversarial["addition"].texts, adversarial["addition"].labels)),
                          "adv_replacement": float(clf.score(adversarial["replacement"].texts,
                                                             adversarial["replacement"].labels)),
                          "comprehensiveness": res["comprehensiveness"], "sufficiency": res["sufficiency"]}
                cell = {"dataset": name, "row": row, "seed": seed, **scores, "fit_seconds": round(secs, 1),
                        "eval_seconds": round(time.perf_counter() - t_eval, 1),
                        "n_classes": len(classes), "n_train": len(X5), "n_test": len(Xt),
                        "n_adv": [len(adversarial["addition"]), len(adversarial["replacement"])],
                        "settings": {k: v for k, v in vars(args).items() if k not in ("seeds", "cells", "doc")}}
                with open(cells_path, "a") as f:
                    f.write(json.dumps(cell, default=str) + "\n")
                print(f"  {row:<30} acc {scores['accuracy']:.3f}  adv+ {scores['adv_addition']:.3f}  "
                      f"adv~ {scores['adv_replacement']:.3f}  compr {scores['comprehensiveness']:.3f}  "
                      f"suff {scores['sufficiency']:.3f}  ({secs:.0f}+{time.perf_counter() - t_eval:.0f} s)",
                      flush=True)


def write_doc(args):
    cells = load_cells(args.cells)
    if not cells:
        sys.exit("no cells yet: run benchmarks/reproduce.py first")
    s0 = cells[0]["settings"]
    lines = [
        "Results",
        "=======",
        "",
        "Every number on this page was produced by ``benchmarks/reproduce.py`` on this project's",
        "2-core CPU machine, read back from ``benchmarks/results/cells.jsonl``. Regenerate with::",
        "",
        "    python benchmarks/reproduce.py --seeds 0 1 2 && python benchmarks/reproduce.py --write-doc",
        "",
        "Setting (reduced to fit the machine, as the script's docstring says): for each data set, a",
        f"confusable subset of {s0['n_classes']} intents (a seed intent and its nearest intents by name",
        "embedding), the 5-shot training sample fixed per data set (``random_state=0``), at most",
        f"{s0['max_test']} test texts of those intents, the embedded MiniLM-L6 classifier trained "
        f"{s0['epochs']} epochs",
        f"(``beta={s0['beta']}``, gradient x input in the loss), CAP with ``n_samples=100`` (embedding scorer) and",
        f"``n_samples={s0['n_samples']}`` (embedded SmolLM2-135M LLM), ``lam=0.1``, LIME ``num_samples={s0['lime_samples']}``,",
        "IG priors with 20 steps. IG and LIME priors explain the seed's vanilla model. Adversarial sets",
        "(keyword addition / replacement) are built once per data set from CAP (embedding) keywords of the",
        f"training texts. Faithfulness is measured on the first {s0['faithfulness_texts']} test texts, on each model's own IG",
        f"explanations ({s0['explain_steps']} steps) of its predicted class, AOPC over k = 1, 5, 10, 20, 50 %.",
        "The full-data setting was not run. Cells read ``mean ± std (n seeds)``; a missing",
        "cell was not run yet.",
        "",
    ]
    for name in DATASETS:
        ds = [c for c in cells if c["dataset"] == name]
        if not ds:
            lines += [f"{name}", "-" * len(name), "", "Not run yet.", ""]
            continue
        lines += [f"{name}", "-" * len(name), "",
                  f"{ds[0]['n_classes']} intents, {ds[0]['n_train']} training texts, {ds[0]['n_test']} test texts, "
                  f"adversarial sets of {ds[0]['n_adv'][0]} (addition) and {ds[0]['n_adv'][1]} (replacement) texts.",
                  ""]
        header = ["method"] + [h for _, h in METRICS] + ["fit s / seed", "eval s / seed"]
        table = []
        for row, _, _ in ROWS:
            rc = [c for c in ds if c["row"] == row]
            if not rc:
                table.append([row] + ["—"] * (len(METRICS) + 2))
                continue
            cells_row = [row]
            for key, _ in METRICS:
                v = np.array([c[key] for c in rc], dtype=float)
                spread = f"{v.std(ddof=1):.3f}" if len(v) > 1 else "n/a"
                cells_row.append(f"{v.mean():.3f} ± {spread} ({len(v)})")
            cells_row.append(f"{np.mean([c['fit_seconds'] for c in rc]):.0f}")
            cells_row.append(f"{np.mean([c['eval_seconds'] for c in rc]):.0f}")
            table.append(cells_row)
        widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
        rule = "  ".join("=" * w for w in widths)
        lines += [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)), rule]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
        lines += [rule, ""]
    lines += ["Summary", "-------", "",
              "Computed from the cells above: the best row by 5-shot accuracy, and CAP Hybrid mean minus",
              "vanilla per column (a difference of means: positive is better for CAP Hybrid in every column",
              "but sufficiency, where lower is better). Where CAP does not win, this says so.", ""]
    for name in DATASETS:
        ds = [c for c in cells if c["dataset"] == name]
        means = {row: {k: np.mean([c[k] for c in ds if c["row"] == row]) for k, _ in METRICS}
                 for row, _, _ in ROWS if any(c["row"] == row for c in ds)}
        if "vanilla" not in means:
            continue
        best = max(means, key=lambda r: means[r]["accuracy"])
        lines.append(f"* {name}: best accuracy {best} ({means[best]['accuracy']:.3f}).")
        for hybrid in ("CAP Hybrid mean (embedding)", "CAP Hybrid mean (LLM)"):
            if hybrid in means:
                diff = {k: means[hybrid][k] - means["vanilla"][k] for k, _ in METRICS}
                lines.append(f"  {hybrid} - vanilla: accuracy {diff['accuracy']:+.3f}, adv. addition "
                             f"{diff['adv_addition']:+.3f}, adv. replacement {diff['adv_replacement']:+.3f}, "
                             f"comprehensiveness {diff['comprehensiveness']:+.3f}, sufficiency {diff['sufficiency']:+.3f}.")
    lines += ["", "Compute: ``fit s`` includes the method's priors (CAP scoring from an empty cache on the first",
              "seed, cached after) and its training; the vanilla model's own training is in the vanilla row.",
              "The first BANKING77 seed ran while other jobs shared the two cores, so its seconds are inflated",
              "(its later seeds and the other data sets ran alone).",
              f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU.", ""]
    Path(args.doc).write_text("\n".join(lines))
    print(f"wrote {args.doc}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--n-classes", type=int, default=10)
    p.add_argument("--max-test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--n-samples", type=int, default=32, help="CAP masks per text with the LLM scorer")
    p.add_argument("--lime-samples", type=int, default=300)
    p.add_argument("--faithfulness-texts", type=int, default=100)
    p.add_argument("--explain-steps", type=int, default=8)
    p.add_argument("--data-home", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--cells", default=str(CELLS), help="where finished cells are appended")
    p.add_argument("--doc", default=str(DOC), help="the page --write-doc writes")
    p.add_argument("--write-doc", action="store_true", help="only rebuild doc/results.rst from the cells")
    args = p.parse_args()
    write_doc(args) if args.write_doc else run(args)


if __name__ == "__main__":
    main()
