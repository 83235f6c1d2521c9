"""The paper's experiments on the full label spaces, cell by cell, resumable.

A *cell* is one (data set, setting, seed, method) run: draw the seed's
training sample, compute the method's priors, train the classifier, and
score it on the full test split, the stored keyword-addition and
keyword-replacement sets (``benchmarks/adversarial/``), the hand-written
adversarial set (``benchmarks/adversarial/handwritten/``), and the
faithfulness of its explanations. Each finished cell is appended to
``benchmarks/results/cells.jsonl`` with every setting it actually used,
its seconds and the per-text correctness (for paired comparisons), so a
killed run loses at most the cell in flight and a re-run skips finished
cells. Priors are kept per seed in a local cache (``$SKLEARN_CAP_CACHE/
experiments``), with a score cache of their own for the model-scored priors
(so no setting's scores make another's look cheap; ``benchmarks/bench_prior_cost.py``
re-times a prior from an empty cache).

Settings: ``5-shot`` and ``10-shot`` (a new sample of k texts per intent for
every seed, ``sample_few_shot(random_state=seed)``), ``full`` (the whole
training split). Methods: ``vanilla``, ``ig``, ``lime``, ``cap_emb``,
``cap_llm``, ``hybrid_mean``, ``hybrid_max`` (CAP from the embedding scorer
fused with IG and LIME), with IG and LIME priors from reference models
cross-fitted over 3 folds; ablations ``ig_insample``, ``lime_insample``,
``hybrid_mean_insample`` (priors explaining the seed's own vanilla model),
``cap_desc`` (CAP from label descriptions), ``hybrid_mean_ig`` (exact IG,
4 steps, in the loss), ``hybrid_mean_sig`` (stochastic IG in the loss) and
``hybrid_mean_beta<b>``, and ``hybrid_mean_betacv`` (beta chosen by 3-fold
cross-validated accuracy on the seed's training sample, never on the test
split, among 0, 0.1, 0.3, 1 and 3). CAP with the embedded LLM scores in bfloat16: 2.1x
float32 with priors of the same word order (median Spearman 0.993 per text,
``python benchmarks/bench_scale.py --part llm_precision``, doc/benchmarks.rst).

Run::

    python benchmarks/reproduce.py run --dataset banking77 --setting 5-shot --seeds 0 1 2 3 4 [--methods ...]
    python benchmarks/reproduce.py plan          # the grid in runs of at most two hours
    python benchmarks/reproduce.py next          # the next seed's missing cells, in the plan's order
    python benchmarks/reproduce.py --write-doc   # doc/results.rst from the cells alone
"""

import argparse
import base64
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

HERE = Path(__file__).resolve().parent
CELLS = HERE / "results" / "cells.jsonl"
ADVERSARIAL = HERE / "adversarial"
DESCRIPTIONS = HERE / "label_descriptions"

SETTINGS = {  # name -> (texts per intent or None for all, epochs, batch size)
    "5-shot": (5, 15, 16),
    "10-shot": (10, 10, 16),
    "full": (None, 3, 32),
}
REQUIRED = ["vanilla", "ig", "lime", "cap_emb", "cap_llm", "hybrid_mean", "hybrid_max"]  # the methods
METHODS = REQUIRED + ["global", "hybrid_mean_global"]
ABLATIONS = ["ig_insample", "lime_insample", "hybrid_mean_insample", "cap_desc", "hybrid_mean_ig", "hybrid_mean_sig",
             "hybrid_mean_beta0.1", "hybrid_mean_beta0.3", "hybrid_mean_beta3", "hybrid_mean_betacv"]
BETA_GRID = [0.0, 0.1, 0.3, 1.0, 3.0]  # hybrid_mean_betacv chooses among these on the training sample alone
FAITHFULNESS_TEXTS = 500
CV = 3


def config(setting):
    """Every setting of a cell, as recorded with it."""
    per_class, epochs, batch = SETTINGS[setting]
    return {
        "classifier": {"model": "embedded MiniLM-L6 (all-MiniLM-L6-v2)", "pooling": "auto (mean)", "epochs": epochs,
                       "batch_size": batch, "learning_rate": 1e-4, "beta": 1.0, "attribution": "grad_input",
                       "precision": "bfloat16", "max_length": 128},
        "per_class": per_class,
        "cap": {"n_samples": 100, "lam": 0.1, "embedding_precision": "bfloat16", "llm": "embedded SmolLM2-135M-Instruct",
                "llm_dtype": "bfloat16"},
        "ig_prior": {"n_steps": 20, "cv": CV},
        "lime_prior": {"num_samples": 500, "cv": CV},
        "fusion": {"normalization": "minmax"},
        "faithfulness": {"texts": FAITHFULNESS_TEXTS, "k": [0.01, 0.05, 0.1, 0.2, 0.5], "ig_steps": 16},
    }


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


def pack(bits):
    return base64.b64encode(np.packbits(np.asarray(bits, dtype=bool)).tobytes()).decode("ascii")


def unpack(text, n):
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


# -- priors, per seed, cached on disk ----------------------------------------

class Timed:
    """Prior values with the seconds they took, for priors computed in parts across runs."""

    def __init__(self, values, seconds):
        self.values, self.seconds = values, seconds


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
                      random_state=self.seed, progress_bar=False)
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

    def references(self):
        """The cross-fitted reference models (trained once per prior seed; their seconds kept on disk).

        On full data they are also kept on disk, so that priors computed in
        resumable parts (:meth:`cross_fitted`) survive a killed run.
        """
        if "refs" not in self._mem:
            import joblib

            from sklearn_cap import IGPriorTransformer

            path = self.dir / "refs.joblib"
            if path.exists():
                self._mem["refs"] = joblib.load(path)
            else:
                t = time.perf_counter()
                est = self.classifier(beta=0, random_state=self.prior_seed)
                self._mem["refs"] = IGPriorTransformer(est, cv=CV).fit_reference(self.X, self.y)
                if self.setting == "full":
                    joblib.dump(self._mem["refs"], path.with_suffix(".tmp"))
                    os.replace(path.with_suffix(".tmp"), path)
                (self.dir / "refs_seconds.json").write_text(json.dumps(time.perf_counter() - t))
        return self._mem["refs"]

    def cross_fitted(self, name, prior, chunk=500):
        """Out-of-fold priors, fold by fold, in parts of ``chunk`` texts kept on disk as they finish.

        The same values as ``prior.fit_transform_with(self.references(), X, y)``
        (IG is deterministic, LIME seeds each text's samples from its text), but
        a killed run loses at most the part in flight.
        """
        from sklearn_cap.text import WordAttributions

        texts, y = prior.check_fit_data(self.X, self.y)
        wa = WordAttributions(texts)
        values, seconds = np.full(wa.shape, np.nan), 0.0
        for f, (test, model) in enumerate(self.references().folds):
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

    def refs_seconds(self):
        path = self.dir / "refs_seconds.json"
        return json.loads(path.read_text()) if path.exists() else 0.0

    def reference_prior(self, kind, in_sample=False, vanilla=None):
        from sklearn_cap import IGPriorTransformer, LIMEPriorTransformer
        from sklearn_cap.priors import References

        name = f"{kind}_insample" if in_sample else kind

        def compute():
            if kind == "ig":
                prior = IGPriorTransformer(self.classifier(beta=0), prefit=in_sample, cv=None if in_sample else CV,
                                           n_steps=self.cfg["ig_prior"]["n_steps"], progress_bar=False)
            else:
                prior = LIMEPriorTransformer(self.classifier(beta=0), prefit=in_sample, cv=None if in_sample else CV,
                                             num_samples=self.cfg["lime_prior"]["num_samples"],
                                             random_state=self.prior_seed, progress_bar=False)
            if in_sample:
                return prior.fit_transform_with(References(full=vanilla), self.X, self.y)
            return self.cross_fitted(name, prior)

        if not in_sample and not (self.dir / f"{name}.npz").exists():
            self.references()  # trained outside the prior's timing: its seconds are counted once, separately
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

    def fuse(self, priors, aggregate="mean"):
        """CAP Hybrid: PriorUnion's normalisation and aggregation of the CAP, IG and LIME priors."""
        from sklearn_cap import CAPPriorTransformer, IGPriorTransformer, LIMEPriorTransformer, PriorUnion

        from sklearn_cap import GlobalPriorTransformer

        members = {"cap": CAPPriorTransformer(), "ig": IGPriorTransformer(), "lime": LIMEPriorTransformer(),
                   "global": GlobalPriorTransformer()}
        union = PriorUnion([(n, members[n]) for n in priors], normalization=self.cfg["fusion"]["normalization"],
                           aggregate=aggregate)
        return union.fuse(self.X, priors)


# -- one cell ----------------------------------------------------------------

def priors_for(method, s, vanilla):
    """(prior matrix, seconds of the priors, extra classifier params) of a method."""
    if method == "vanilla":
        return None, 0.0, {"beta": 0}
    base = method
    extra = {}
    if method == "hybrid_mean_betacv":
        base = "hybrid_mean"  # beta chosen in run_cell, once the priors exist
    elif method.startswith("hybrid_mean_beta"):
        extra["beta"] = float(method[len("hybrid_mean_beta"):])
        base = "hybrid_mean"
    elif method == "hybrid_mean_ig":
        extra.update(attribution="ig", n_steps=4)
        base = "hybrid_mean"
    elif method == "hybrid_mean_sig":
        extra.update(attribution="ig_stochastic")
        base = "hybrid_mean"
    in_sample = base.endswith("_insample")
    base = base.replace("_insample", "")
    if base in ("ig", "lime"):
        v, sec = s.reference_prior(base, in_sample, vanilla)
        return v, sec + (0.0 if in_sample else s.refs_seconds()), extra
    if base == "cap_emb":
        return (*s.cap("emb"), extra)
    if base == "cap_llm":
        return (*s.cap("llm"), extra)
    if base == "cap_desc":
        desc = json.loads((DESCRIPTIONS / f"{s.dataset}.json").read_text())
        return (*s.cap("emb", descriptions=desc), extra)
    if base == "global":
        return (*s.global_prior(), extra)
    if base == "hybrid_mean_global":
        (ig, a), (lime, b), (cap, c), (glob, d) = (s.reference_prior("ig"), s.reference_prior("lime"), s.cap("emb"),
                                                   s.global_prior())
        fused = s.fuse({"cap": cap, "ig": ig, "lime": lime, "global": glob})
        return np.asarray(fused), a + b + c + d + s.refs_seconds(), extra
    if base in ("hybrid_mean", "hybrid_max"):
        (ig, a), (lime, b), (cap, c) = (s.reference_prior("ig", in_sample, vanilla),
                                        s.reference_prior("lime", in_sample, vanilla), s.cap("emb"))
        fused = s.fuse({"cap": cap, "ig": ig, "lime": lime}, aggregate=base.split("_")[1])
        return np.asarray(fused), a + b + c + (0.0 if in_sample else s.refs_seconds()), extra
    raise ValueError(f"unknown method {method!r}")


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


def evaluate(clf, data, sets, faith_idx, cfg):
    from sklearn_cap.metrics import faithfulness

    _, _, X_test, y_test = data
    out, bits = {}, {}
    for name, (texts, labels) in [("test", (X_test, y_test))] + list(sets.items()):
        correct = clf.predict(texts) == labels
        out[name] = float(correct.mean())
        bits[name] = pack(correct)
    texts = [X_test[i] for i in faith_idx]
    for method in ("grad_input", "ig"):
        ex = clf.explain(texts, method=method, n_steps=cfg["faithfulness"]["ig_steps"], batch_size=16)
        f = faithfulness(clf, ex, k=tuple(cfg["faithfulness"]["k"]))
        out[f"comprehensiveness_{method}"] = f["comprehensiveness"]
        out[f"sufficiency_{method}"] = f["sufficiency"]
    return out, bits, {name: len(v[0]) for name, v in sets.items()}


def run_cell(method, s, data, sets, faith_idx, vanilla_cache):
    t0 = time.perf_counter()
    vanilla = vanilla_cache.get("model")
    if method.endswith("_insample") and vanilla is None:
        vanilla = vanilla_cache["model"] = s.classifier(beta=0).fit(s.X, s.y)
    values, prior_s, extra = priors_for(method, s, vanilla)
    selection = {}
    if method == "hybrid_mean_betacv":
        t = time.perf_counter()
        extra["beta"], scores = choose_beta(s, values)
        selection = {"beta_selection": {"grid": BETA_GRID, "cv": CV, "scoring": "accuracy",
                                        "mean_cv_accuracy": scores, "chosen": extra["beta"],
                                        "seconds": time.perf_counter() - t}}
    t = time.perf_counter()
    clf = s.classifier(**extra)
    clf.fit(s.X, s.y, priors=values) if values is not None else clf.fit(s.X, s.y)
    train_s = time.perf_counter() - t
    if method == "vanilla":
        vanilla_cache["model"] = clf
    t = time.perf_counter()
    metrics, bits, sizes = evaluate(clf, data, sets, faith_idx, s.cfg)
    cfg = dict(s.cfg)
    cfg["classifier"] = {**cfg["classifier"], **{k: v for k, v in extra.items()}}
    cfg.update(selection)
    return {
        "dataset": s.dataset, "setting": s.setting, "seed": s.seed, "prior_seed": s.prior_seed, "method": method,
        "n_train": len(s.X), "n_classes": len(s.labels), "n_test": len(data[2]), "set_sizes": sizes,
        "metrics": metrics, "correct": bits,
        "prior_queries": {k: v for k, v in s.queries.items() if v is not None},
        "prior_scored": {k: v for k, v in s.scored.items() if v is not None},
        "seconds": {"priors": prior_s, "train": train_s, "evaluate": time.perf_counter() - t,
                    "cell": time.perf_counter() - t0},
        "config": cfg, "epochs_run": clf.n_epochs_,
        "machine": machine(),
        "commit": _commit(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def machine():
    """What a cell's seconds depend on: cores, threads, and the CPU (bfloat16 runs 1.4-2.1x float32 by CPU)."""
    return {"cpus": os.cpu_count(), "threads": _threads(), "python": platform.python_version(), **_cpu()}


def _cpu():
    """CPU model and its bfloat16 matrix support (AMX, AVX512-BF16 or neither); empty where /proc/cpuinfo is absent."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = info.strip().split("\n\n")[0]  # one block per logical CPU; the first describes the model
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    bf16 = "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"
    return {"cpu": fields.get("model name", "unknown"), "bf16_matmul": bf16}


def _threads():
    import torch

    return torch.get_num_threads()


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except OSError:
        return ""


def load_cells(path=CELLS):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args):
    import torch

    from sklearn_cap.cache import get_cache_dir

    torch.set_num_threads(os.cpu_count() or 1)
    done = {(c["dataset"], c["setting"], c["seed"], c["method"]) for c in load_cells()}
    data = load(args.dataset, args.data_home)
    sets = stored_sets(args.dataset)
    faith_idx = np.sort(np.random.default_rng(0).choice(len(data[2]), min(FAITHFULNESS_TEXTS, len(data[2])),
                                                        replace=False))
    start = time.perf_counter()
    CELLS.parent.mkdir(parents=True, exist_ok=True)
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
            with open(CELLS, "a") as f:
                f.write(json.dumps(cell) + "\n")
            m = cell["metrics"]
            print(f"{args.dataset} {args.setting} seed {seed} {method:<22} acc {m['test']:.3f} "
                  f"add {m['adv_addition']:.3f} repl {m['adv_replacement']:.3f} "
                  f"({cell['seconds']['cell']:.0f} s)", flush=True)


def next_group(cells, tiers=None):
    """The first (data set, setting, seed) of the plan's grid with missing cells, and those cells' methods."""
    from results_doc import missing

    todo = missing(cells, tiers)
    if not todo:
        return None
    tier, d, st, s, _ = todo[0]
    return d, st, s, [m for t, dd, sst, ss, m in todo if (t, dd, sst, ss) == (tier, d, st, s)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="rebuild doc/results.rst from the cells")
    sub = parser.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run (and append) missing cells")
    r.add_argument("--dataset", choices=["banking77", "clinc150", "hwu64"], required=True)
    r.add_argument("--setting", choices=list(SETTINGS), required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--methods", nargs="+", default=REQUIRED, choices=METHODS + ABLATIONS)
    r.add_argument("--max-minutes", type=float, default=None, help="start no new cell after this many minutes")
    r.add_argument("--data-home", default=None)
    sub.add_parser("plan", help="print the grid in runs of at most two hours")
    n = sub.add_parser("next", help="run the next seed's missing cells in the plan's order (exit 3: none left)")
    n.add_argument("--tier", nargs="+", default=None, help="only these tiers of the plan (e.g. required ablations)")
    n.add_argument("--max-minutes", type=float, default=None, help="start no new cell after this many minutes")
    n.add_argument("--data-home", default=None)
    args = parser.parse_args(argv)
    if args.write_doc:
        from results_doc import load_costs, write_doc

        write_doc(load_cells(), costs=load_costs())
    elif args.command == "run":
        run(args)
    elif args.command == "next":
        group = next_group(load_cells(), args.tier)
        if group is None:
            print("no missing cells in " + (", ".join(args.tier) if args.tier else "the plan's grid"))
            return 3
        args.dataset, args.setting, seed, args.methods = group
        args.seeds = [seed]
        print(f"next: {args.dataset} {args.setting} seed {seed}: {' '.join(args.methods)}", flush=True)
        run(args)
    elif args.command == "plan":
        from results_doc import plan

        plan(load_cells())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
