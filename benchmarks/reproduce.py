"""The paper's experiments on the full label spaces, cell by cell, resumable: the runner.

A *cell* is one (data set, setting, seed, method) run: draw the seed's
training sample, compute the method's priors, train the classifier, and
score it (:func:`sklearn_cap.experiment.evaluate`) on the full test split,
the stored keyword-addition and keyword-replacement sets
(``benchmarks/adversarial/``), the hand-written adversarial set
(``benchmarks/adversarial/handwritten/``), and the faithfulness of its
explanations. Each finished cell is appended to
``benchmarks/results/cells.jsonl`` with every setting it actually used,
its seconds and the per-text correctness (for paired comparisons), so a
killed run loses at most the cell in flight and a re-run skips finished
cells. Priors are kept per seed in a local cache (``$SKLEARN_CAP_CACHE/
experiments``), with a score cache of their own for the model-scored priors
(so no setting's scores make another's look cheap; ``benchmarks/bench_prior_cost.py``
re-times a prior from an empty cache).

The settings, the methods (their priors and classifier parameters), the
grid and the cells file are ``benchmarks/registry.py``'s; the page is
``benchmarks/results_doc.py``'s, which this module does not import.

Run::

    python benchmarks/reproduce.py run --dataset banking77 --setting 5-shot --seeds 0 1 2 3 4 [--methods ...]
    python benchmarks/reproduce.py plan          # the grid in runs of at most two hours
    python benchmarks/reproduce.py next          # the next seed's missing cells, in the plan's order
    python benchmarks/reproduce.py --write-doc   # doc/results.rst from the cells alone (runs results_doc.py)
"""

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry  # noqa: E402
from registry import (ADVERSARIAL, BETA_GRID, CV, DESCRIPTIONS, FAITHFULNESS_TEXTS, PRIORS, SETTINGS,  # noqa: E402
                      config)

HERE = Path(__file__).resolve().parent


# -- data ------------------------------------------------------------------

def load(dataset, data_home):
    from sklearn_cap import datasets

    loader = getattr(datasets, f"load_{dataset}")
    X, y = loader("train", data_home=data_home, return_X_y=True)
    X_test, y_test = loader("test", data_home=data_home, return_X_y=True)
    return list(X), y, list(X_test), y_test


def stored_sets(dataset):
    """The stored adversarial sets: name -> (texts, labels); hand-written ones when present."""
    sets = {}
    for kind in ("addition", "replacement"):
        rows = list(csv.DictReader(open(ADVERSARIAL / f"{dataset}_{kind}.csv", encoding="utf-8")))
        sets[f"adv_{kind}"] = ([r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=object))
    hand = ADVERSARIAL / "handwritten" / f"{dataset}.csv"
    if hand.exists():
        rows = list(csv.DictReader(open(hand, encoding="utf-8")))
        for kind in ("addition", "replacement"):
            part = [r for r in rows if r["attack"] == kind]
            sets[f"hand_{kind}"] = ([r["text"] for r in part], np.array([r["label"] for r in part], dtype=object))
    return sets


# -- priors, per seed, cached on disk ----------------------------------------

class Timed:
    """Prior values with the seconds they took, for priors computed in parts across runs."""

    def __init__(self, values, seconds):
        self.values, self.seconds = values, seconds


def probe_reference_params():
    """What a probe reference sets on the grid's classifier: a logistic-regression head on frozen, normalised features.

    :meth:`Seed.references` trains with these; ``benchmarks/homogenisation.py`` records them. They are the
    settings of :func:`sklearn_cap.make_probe_reference` (whose mean pooling is the embedded MiniLM's "auto").
    """
    from sklearn_cap.stages import LinearProbe

    return dict(head_init="probe", normalize_features=True, stages=[LinearProbe()])


class Seed:
    """One (data set, setting, seed): its training sample and its priors, computed once and kept on disk."""

    def __init__(self, dataset, setting, seed, data, cache):
        from sklearn_cap.datasets import sample_few_shot

        X, y, _, _ = data
        per_class = SETTINGS[setting][0]
        if per_class is None:
            self.X, self.y = X, np.asarray(y)
        else:
            Xs, ys, _ = sample_few_shot(X, y, per_class, random_state=seed)
            self.X, self.y = list(Xs), ys
        self.dataset, self.setting, self.seed = dataset, setting, seed
        # Full data: every seed trains on the same texts, and its priors (hours on 2 cores) are computed
        # once, from seed 0's reference models, and shared; the seeds vary the classifier's initialisation
        # and batch order. A few-shot seed draws its own sample and so computes its own priors.
        self.prior_seed = 0 if per_class is None else seed
        self.labels = sorted(set(np.asarray(y).tolist()))
        self.cfg = config(setting)
        digest = hashlib.sha256("\x00".join(self.X).encode()).hexdigest()[:12]
        self.dir = cache / dataset / setting / f"seed{self.prior_seed}_{digest}"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Each seed's scores go into a cache of its own: a 10-shot sample contains the 5-shot sample of
        # its seed, and scores shared across settings would make the later setting's prior look cheap.
        # A killed extraction still resumes from it (recorded: fewer texts scored than queried).
        self.scores_dir = self.dir / "scores"
        self._mem = {}
        self.queries = {}  # prior name -> (text, label) pairs its scorer needed (cache hits included)
        self.scored = {}  # prior name -> those of them the scorer computed in the timed run (not cache hits)

    def classifier(self, **kw):
        from sklearn_cap import ExplanationGuidedClassifier, embedded

        c = self.cfg["classifier"]
        params = dict(beta=c["beta"], attribution=c["attribution"], epochs=c["epochs"], batch_size=c["batch_size"],
                      learning_rate=c["learning_rate"], precision=c["precision"], max_length=c["max_length"],
                      random_state=self.seed, progress_bar=False, **registry.recipe_params("base", self.setting))
        params.update(kw)
        return ExplanationGuidedClassifier(embedded.ENCODER, **params)

    def prior(self, name, compute):
        """A prior matrix by name: from memory, from disk, or computed (seconds and scorer queries recorded).

        ``compute`` returns the priors, or (priors, queries, scored) for priors
        scored by a model: ``scored`` < ``queries`` means the timed run found
        part of its scores in the cache (a resumed run), so its seconds are
        not the prior's cost.
        """
        if name not in self._mem:
            path = self.dir / f"{name}.npz"
            if path.exists():
                z = np.load(path)
                self._mem[name] = (z["values"], float(z["seconds"]))
                self.queries[name] = int(z["queries"]) if "queries" in z else None
                self.scored[name] = int(z["scored"]) if "scored" in z else None
            else:
                t = time.perf_counter()
                out = compute()
                values, queries, scored = out if isinstance(out, tuple) else (out, -1, -1)
                seconds = time.perf_counter() - t
                if isinstance(values, Timed):  # computed in resumable parts: the sum of the parts' seconds
                    values, seconds = values.values, values.seconds
                values = np.asarray(values, dtype=float)
                np.savez(path, values=values, seconds=seconds, queries=queries, scored=scored)
                for part in self.dir.glob(f"{name}_part*.npz"):  # its resumable parts, now redundant
                    part.unlink()
                self._mem[name] = (values, seconds)
                self.queries[name] = None if queries < 0 else int(queries)
                self.scored[name] = None if scored < 0 else int(scored)
        return self._mem[name]

    def references(self, kind="finetuned"):
        """The cross-fitted reference models (trained once per prior seed; their seconds kept on disk).

        ``kind="finetuned"``: the base recipe's vanilla classifier, as every
        cell before issue 28; ``"probe"``: a logistic regression on the frozen
        encoder's features (C = 10), seconds to train. On full data they are
        also kept on disk, so that priors computed in resumable parts
        (:meth:`cross_fitted`) survive a killed run.
        """
        key = "refs" if kind == "finetuned" else f"refs_{kind}"
        if key not in self._mem:
            import joblib

            from sklearn_cap import IGPriorTransformer

            path = self.dir / f"{key}.joblib"
            if path.exists():
                self._mem[key] = joblib.load(path)
            else:
                t = time.perf_counter()
                est = self.classifier(beta=0, random_state=self.prior_seed)
                if kind == "probe":
                    est.set_params(**probe_reference_params())
                self._mem[key] = IGPriorTransformer(est, cv=CV).fit_reference(self.X, self.y)
                if self.setting == "full":
                    joblib.dump(self._mem[key], path.with_suffix(".tmp"))
                    os.replace(path.with_suffix(".tmp"), path)
                (self.dir / f"{key}_seconds.json").write_text(json.dumps(time.perf_counter() - t))
        return self._mem[key]

    def cross_fitted(self, name, prior, chunk=500, kind="finetuned"):
        """Out-of-fold priors, fold by fold, in parts of ``chunk`` texts kept on disk as they finish.

        The same values as ``prior.fit_transform_with(self.references(), X, y)``
        (IG is deterministic, LIME seeds each text's samples from its text), but
        a killed run loses at most the part in flight.
        """
        from sklearn_cap.text import WordAttributions

        texts, y = prior.check_fit_data(self.X, self.y)
        wa = WordAttributions(texts)
        values, seconds = np.full(wa.shape, np.nan), 0.0
        for f, (test, model) in enumerate(self.references(kind).folds):
            for c in range(0, len(test), chunk):
                rows = test[c : c + chunk]
                part = self.dir / f"{name}_part{f}_{c}.npz"
                if not part.exists():
                    t = time.perf_counter()
                    block = prior.explain_with(model, [texts[i] for i in rows], y[rows])
                    tmp = part.with_suffix(".tmp.npz")
                    np.savez(tmp, values=block, seconds=time.perf_counter() - t)
                    os.replace(tmp, part)
                z = np.load(part)
                values[rows, : z["values"].shape[1]] = z["values"]
                seconds += float(z["seconds"])
        return Timed(wa.with_values(values), seconds)

    def refs_seconds(self, kind="finetuned"):
        path = self.dir / ("refs_seconds.json" if kind == "finetuned" else f"refs_{kind}_seconds.json")
        return json.loads(path.read_text()) if path.exists() else 0.0

    def reference_prior(self, kind, in_sample=False, vanilla=None):
        from sklearn_cap import IGPriorTransformer, LIMEPriorTransformer
        from sklearn_cap.priors import References

        name = f"{kind}_insample" if in_sample else kind
        kind, refs, own = registry.REFERENCE_PRIORS[kind]

        def compute():
            if kind == "ig":
                cfg = {**self.cfg["ig_prior"], **own}
                prior = IGPriorTransformer(self.classifier(beta=0), prefit=in_sample, cv=None if in_sample else CV,
                                           n_steps=cfg["n_steps"], progress_bar=False)
            else:
                cfg = {**self.cfg["lime_prior"], **own}
                prior = LIMEPriorTransformer(self.classifier(beta=0), prefit=in_sample, cv=None if in_sample else CV,
                                             num_samples=cfg["num_samples"], random_state=self.prior_seed,
                                             progress_bar=False)
            if in_sample:
                return prior.fit_transform_with(References(full=vanilla), self.X, self.y)
            return self.cross_fitted(name, prior, kind=refs)

        if not in_sample and not (self.dir / f"{name}.npz").exists():
            self.references(refs)  # trained outside the prior's timing: its seconds are counted once, separately
        return self.prior(name, compute)

    def cap(self, scorer_kind, descriptions=None):
        from sklearn_cap import CAPPriorTransformer, embedded
        from sklearn_cap.scorers import CausalLMScorer, EmbeddingScorer

        c = self.cfg["cap"]
        scorer = (EmbeddingScorer(precision=c["embedding_precision"], batch_size=128) if scorer_kind == "emb"
                  else CausalLMScorer(embedded.LLM, dtype=c["llm_dtype"]))
        cap = CAPPriorTransformer(scorer, n_samples=c["n_samples"], lam=c["lam"], labels=self.labels,
                                  label_descriptions=descriptions, chunk_size=2048, progress_bar=False,
                                  cache_dir=self.scores_dir)
        name = f"cap_{scorer_kind}" + ("_desc" if descriptions else "")

        def compute():
            values = cap.fit_transform(self.X, self.y)
            return values, cap.n_scored_ + cap.n_cached_, cap.n_scored_

        return self.prior(name, compute)

    def global_prior(self):
        from sklearn_cap import GlobalPriorTransformer
        from sklearn_cap.scorers import EmbeddingScorer

        prior = GlobalPriorTransformer(EmbeddingScorer(precision=self.cfg["cap"]["embedding_precision"],
                                                       batch_size=128), labels=self.labels, chunk_size=4096,
                                       progress_bar=False, cache_dir=self.scores_dir)

        def compute():
            values = prior.fit_transform(self.X, self.y)
            return values, prior.n_scored_ + prior.n_cached_, prior.n_scored_

        return self.prior("global", compute)

    def named_prior(self, name, in_sample=False, vanilla=None):
        """A prior of :data:`registry.PRIORS` by name: (values, seconds of its computation)."""
        if name in registry.REFERENCE_PRIORS:
            return self.reference_prior(name, in_sample, vanilla)
        if name == "cap_emb_desc":
            return self.cap("emb", descriptions=json.loads((DESCRIPTIONS / f"{self.dataset}.json").read_text()))
        if name.startswith("cap_"):
            return self.cap(name[len("cap_"):])
        if name == "global":
            return self.global_prior()
        raise ValueError(f"unknown prior {name!r}; registry.PRIORS lists {sorted(PRIORS)}")

    def fuse(self, priors, aggregate="mean"):
        """CAP Hybrid: PriorUnion's normalisation and aggregation of named priors (keys of registry.PRIORS)."""
        from sklearn_cap import (CAPPriorTransformer, GlobalPriorTransformer, IGPriorTransformer,
                                 LIMEPriorTransformer, PriorUnion)

        members = {"cap": CAPPriorTransformer(), "ig": IGPriorTransformer(), "lime": LIMEPriorTransformer(),
                   "global": GlobalPriorTransformer()}
        union = PriorUnion([(PRIORS[n][0], members[PRIORS[n][0]]) for n in priors],
                           normalization=self.cfg["fusion"]["normalization"], aggregate=aggregate)
        return union.fuse(self.X, {PRIORS[n][0]: p for n, p in priors.items()})


# -- one cell ----------------------------------------------------------------

def priors_for(method, s, vanilla):
    """(prior matrix or None, seconds of the priors) of a registered method.

    IG and LIME priors are computed first, the order every cell so far used;
    cross-fitted ones add their reference models' seconds, counted once.
    """
    if not method.priors:
        return None, 0.0
    values, seconds = {}, 0.0
    for name in sorted(method.priors, key=lambda n: not n.startswith(("ig", "lime"))):
        values[name], sec = s.named_prior(name, method.in_sample, vanilla)
        seconds += sec
    refs = set(method.reference_kinds)
    if method.in_sample:
        refs.discard("finetuned")  # the seed's own vanilla model: no reference models trained
    for kind in sorted(refs):
        seconds += s.refs_seconds(kind)
    if len(values) == 1:
        return values[method.priors[0]], seconds
    return np.asarray(s.fuse({n: values[n] for n in method.priors}, method.aggregate)), seconds


def choose_beta(s, priors):
    """beta by stratified 3-fold CV accuracy on the seed's training sample (the test split is never seen).

    The folds reuse the seed's priors: they were computed from the training
    sample alone (out-of-fold reference models, label-conditioned scorers).
    Returns the chosen beta and the mean CV accuracy of every candidate.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    search = GridSearchCV(s.classifier(), {"beta": BETA_GRID}, refit=False,
                          cv=StratifiedKFold(CV, shuffle=True, random_state=s.seed))
    search.fit(s.X, s.y, priors=np.asarray(priors))
    scores = {f"{b:g}": float(m) for b, m in zip(BETA_GRID, search.cv_results_["mean_test_score"])}
    return float(search.best_params_["beta"]), scores


def run_cell(method, s, data, sets, faith_idx, vanilla_cache):
    """One cell of a method of ``registry.METHODS``: train it on the seed's sample, score it, return its record."""
    from sklearn_cap.experiment import evaluate

    m = registry.METHODS[method]
    t0 = time.perf_counter()
    vanilla = vanilla_cache.get("model")
    if m.in_sample and vanilla is None:
        vanilla = vanilla_cache["model"] = s.classifier(beta=0).fit(s.X, s.y)
    values, prior_s = priors_for(m, s, vanilla)
    params, selection = {**registry.recipe_params(m.recipe, s.setting), **m.classifier}, {}
    if m.select_beta:
        t = time.perf_counter()
        params["beta"], scores = choose_beta(s, values)
        selection = {"beta_selection": {"grid": BETA_GRID, "cv": CV, "scoring": "accuracy",
                                        "mean_cv_accuracy": scores, "chosen": params["beta"],
                                        "seconds": time.perf_counter() - t}}
    t = time.perf_counter()
    clf = m.estimator(s, params) if m.estimator else s.classifier(**params)
    clf.fit(s.X, s.y, priors=values) if values is not None else clf.fit(s.X, s.y)
    train_s = time.perf_counter() - t
    if method == "vanilla":
        vanilla_cache["model"] = clf
    t = time.perf_counter()
    _, _, X_test, y_test = data
    faith = s.cfg["faithfulness"]
    result = evaluate(clf, {"test": (X_test, y_test), **sets}, explain=[X_test[i] for i in faith_idx],
                      attributions=m.attributions, k=tuple(faith["k"]), ig_steps=faith["ig_steps"])
    cfg = dict(s.cfg)
    cfg["classifier"] = {**cfg["classifier"], **params}
    cfg.update(selection)
    own = {p: registry.REFERENCE_PRIORS[p][2] for p in m.priors if p in registry.REFERENCE_PRIORS}
    own = {p: settings for p, settings in own.items() if settings}
    if own:
        cfg["prior_settings"] = own  # a prior's settings that differ from ig_prior / lime_prior
    return {
        "dataset": s.dataset, "setting": s.setting, "seed": s.seed, "prior_seed": s.prior_seed, "method": method,
        "n_train": len(s.X), "n_classes": len(s.labels), "n_test": len(X_test),
        "set_sizes": {name: len(texts) for name, (texts, _) in sets.items()},
        "metrics": result["metrics"], "correct": {n: registry.pack(c) for n, c in result["correct"].items()},
        "prior_queries": {k: v for k, v in s.queries.items() if v is not None},
        "prior_scored": {k: v for k, v in s.scored.items() if v is not None},
        "seconds": {"priors": prior_s, "train": train_s, "evaluate": time.perf_counter() - t,
                    "cell": time.perf_counter() - t0},
        "config": cfg, "epochs_run": getattr(clf, "n_epochs_", None),
        **({"probe": clf.probe_} if hasattr(clf, "probe_") else {}),
        "machine": machine(),
        "commit": _commit(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def machine():
    """What a cell's seconds depend on: cores, threads, the CPU (bfloat16 speed depends on it) and its measured speed.

    Virtual machines that report the same CPU model have trained at speeds
    about three times apart, so each cell also records how fast this machine
    multiplied float32 matrices right after the cell (``matmul_gflops``).
    """
    return {"cpus": os.cpu_count(), "threads": _threads(), "python": platform.python_version(), **_cpu(),
            "matmul_gflops": matmul_gflops()}


def matmul_gflops(n=1024, repeats=5):
    """Float32 GFLOP/s of an ``n`` x ``n`` matrix product on this process's threads, best of ``repeats``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool and allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return round(2 * n ** 3 / best / 1e9, 1)


def _cpu():
    """CPU model and its bfloat16 matrix support (AMX, AVX512-BF16 or neither); empty where /proc/cpuinfo is absent."""
    fields = registry.cpu_fields()
    if not fields:
        return {}
    return {"cpu": fields.get("model name", "unknown"), "bf16_matmul": registry.bf16_matmul(fields=fields)}


def _threads():
    import torch

    return torch.get_num_threads()


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except OSError:
        return ""


def run(args):
    import torch

    from sklearn_cap.cache import get_cache_dir

    torch.set_num_threads(os.cpu_count() or 1)
    done = registry.done()
    data = load(args.dataset, args.data_home)
    sets = stored_sets(args.dataset)
    faith_idx = np.sort(np.random.default_rng(0).choice(len(data[2]), min(FAITHFULNESS_TEXTS, len(data[2])),
                                                        replace=False))
    start = time.perf_counter()
    for seed in args.seeds:
        s = Seed(args.dataset, args.setting, seed, data, get_cache_dir() / "experiments")
        vanilla_cache = {}
        for method in args.methods:
            if (args.dataset, args.setting, seed, method) in done:
                continue
            if args.max_minutes and (time.perf_counter() - start) / 60 > args.max_minutes:
                print(f"time budget of {args.max_minutes} min used; stopping before {method}, seed {seed}")
                return
            cell = run_cell(method, s, data, sets, faith_idx, vanilla_cache)
            registry.append(cell)
            m = cell["metrics"]
            print(f"{args.dataset} {args.setting} seed {seed} {method:<22} acc {m['test']:.3f} "
                  f"add {m['adv_addition']:.3f} repl {m['adv_replacement']:.3f} "
                  f"({cell['seconds']['cell']:.0f} s)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="rebuild doc/results.rst from the cells")
    sub = parser.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run (and append) missing cells")
    r.add_argument("--dataset", choices=sorted(registry.DATASETS), required=True)
    r.add_argument("--setting", choices=list(SETTINGS), required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--methods", nargs="+", default=registry.REQUIRED, choices=list(registry.METHODS))
    r.add_argument("--max-minutes", type=float, default=None, help="start no new cell after this many minutes")
    r.add_argument("--data-home", default=None)
    sub.add_parser("plan", help="print the grid in runs of at most two hours")
    n = sub.add_parser("next", help="run the next seed's missing cells in the plan's order (exit 3: none left)")
    n.add_argument("--tier", nargs="+", default=None, help="only these tiers of the plan (e.g. required ablations)")
    n.add_argument("--max-minutes", type=float, default=None, help="start no new cell after this many minutes")
    n.add_argument("--data-home", default=None)
    args = parser.parse_args(argv)
    if args.write_doc:  # the renderer in a process of its own: the runner does not import it
        return subprocess.run([sys.executable, str(HERE / "results_doc.py")]).returncode
    elif args.command == "run":
        run(args)
    elif args.command == "next":
        group = registry.next_group(registry.load_cells(), args.tier)
        if group is None:
            print("no missing cells in " + (", ".join(args.tier) if args.tier else "the plan's grid"))
            return 3
        args.dataset, args.setting, seed, args.methods = group
        args.seeds = [seed]
        print(f"next: {args.dataset} {args.setting} seed {seed}: {' '.join(args.methods)}", flush=True)
        run(args)
    elif args.command == "plan":
        registry.plan(registry.load_cells())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
