"""Do IG and LIME priors homogenise confusable classes while CAP separates them? The overlap table's runner.

For each data set, seed and prior source, on the runner's few-shot sample of
that seed (``reproduce.Seed``: ``sample_few_shot(X, y, 5, random_state=seed)``
at 5-shot), each class's top-k prior words and the share of them its most
confusable class also ranks in its top k
(:func:`sklearn_cap.homogenisation.top_word_overlap`). The partners come from
the method-free word-count statistic of ``sklearn_cap/keywords.py`` on the
whole training split, the pairs of the stored adversarial sets. The
*log-odds* source is the reference that uses no prior: the log-odds keywords
of the same sample.

The priors are ``reproduce.Seed``'s, with the registry's settings, and kept in
its per-seed cache (``$SKLEARN_CAP_CACHE/experiments``): priors the grid has
computed already are read, not recomputed, and priors computed here serve the
grid. Every (data set, setting, seed, source, k) is appended to
``benchmarks/results/homogenisation.jsonl`` as it finishes, with the settings
it used and its seconds; a rerun skips finished lines. The costly sources
(CAP with the embedded LLM, IG and LIME of fine-tuned references) run after
every cheap source of every data set and seed.
``python benchmarks/reproduce.py --write-doc`` renders the table.

Run::

    python benchmarks/homogenisation.py [--datasets ...] [--seeds 0 1 2 3 4] [--sources ...] [--k 5 10]
                                        [--threads 2] [--data-home DIR] [--max-minutes M]
"""

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import registry  # noqa: E402
import reproduce  # noqa: E402

RESULTS = registry.HOMOGENISATION
LOGODDS = "logodds"  # the reference row: log-odds keywords of the sample, no prior
SOURCES = [LOGODDS, "global", "cap_emb", "ig_probe", "lime_probe", "cap_llm"]  # the default, cheapest first
COSTLY = {"cap_llm", "ig", "lime"}  # an LLM's scores or three fine-tuned references: after every cheap source
DISPLAY = {LOGODDS: "log-odds keywords (no prior)", "ig_probe": "IG, probe reference",
           "lime_probe": "LIME, probe reference"}  # the others: the registry's name of the method of that prior


def display(source):
    """A source's name on the page."""
    return DISPLAY.get(source) or registry.name_of(source)


def settings_of(s, source):
    """The settings a source's priors are computed with: the blocks of the registry's config that the runner reads."""
    if source == LOGODDS:
        from sklearn_cap.keywords import logodds_keywords

        return {"logodds": {"alpha0": inspect.signature(logodds_keywords).parameters["alpha0"].default}}
    if source in registry.REFERENCE_PRIORS:
        kind, refs, own = registry.REFERENCE_PRIORS[source]
        reference = reference_settings({**s.cfg["classifier"], **registry.recipe_params("base", s.setting)},
                                       refs == "probe")
        return {f"{kind}_prior": {**s.cfg[f"{kind}_prior"], **own}, "reference": refs,
                "reference_classifier": reference}
    return {"cap": s.cfg["cap"]}  # CAP and the global prior read their scorers' settings from this block


# Settings a probe reference never reads: it trains no weights of the encoder (reproduce.Seed.references).
_FINE_TUNING_ONLY = ("attribution", "batch_size", "epochs", "head_learning_rate", "learning_rate")


def reference_settings(classifier, probe):
    """The settings the reference models of ``reproduce.Seed.references`` are trained with.

    They are the grid's classifier at ``beta=0``; a probe reference is that
    classifier with ``stages=[LinearProbe()]`` on normalised features, so the
    fine-tuning settings are left out and the probe's are named.
    """
    out = {**classifier, "beta": 0.0}
    if probe:
        out = {k: v for k, v in out.items() if k not in _FINE_TUNING_ONLY}
        out.update({k: repr(v) if k == "stages" else v for k, v in reproduce.probe_reference_params().items()})
    return out


def _key(line):
    return line["dataset"], line["setting"], line["seed"], line["source"], line["k"], line["min_count"]


def priors_of(s, source):
    """(prior matrix or None, its recorded seconds, whether it came from the cache) of a source."""
    if source == LOGODDS:
        return None, {}, False
    cached = (s.dir / f"{source}.npz").exists()
    values, seconds = s.named_prior(source)
    sec = {"prior": seconds}
    if source in registry.REFERENCE_PRIORS:  # their cross-fitted references, trained once per seed, as cells count them
        sec["references"] = s.refs_seconds(registry.REFERENCE_PRIORS[source][1])
    return values, sec, cached


def lines_for(s, source, ks, min_count, partners):
    """The JSON lines of one (data set, setting, seed, source): one per k."""
    from sklearn_cap.homogenisation import top_word_overlap

    t = time.perf_counter()
    values, seconds, cached = priors_of(s, source)
    results = {k: top_word_overlap(s.X, s.y, values, top_k=k, min_count=min_count, partners=partners) for k in ks}
    wall = time.perf_counter() - t
    common = {
        "dataset": s.dataset, "setting": s.setting, "seed": s.seed, "source": source, "display": display(source),
        "min_count": min_count, "n_train": len(s.X), "n_classes": len(partners),
        "top_words": ("log-odds keywords of the sample (sklearn_cap.keywords.logodds_keywords)" if source == LOGODDS
                      else "per-text min-max normalised prior, summed per word over the class's texts "
                           "(sklearn_cap.metrics.class_keywords)"),
        "partners_from": "sklearn_cap.keywords.confusable_partners of the full training split",
        "config": settings_of(s, source), "prior_cached": cached,
        "prior_queries": s.queries.get(source), "prior_scored": s.scored.get(source),
        "machine": reproduce.machine(), "commit": reproduce._commit(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = []
    for k, r in results.items():
        classes = {str(c): {"partner": str(r.partners[c]), "overlap": r.overlap[c],
                            "words": [w for w, _ in r.keywords[c]]} for c in r.overlap}
        out.append({**common, "k": k, "mean_overlap": r.mean_overlap, "classes": classes,
                    "seconds": {**seconds, "wall": wall}})
    return out


def run(args):
    import torch

    from sklearn_cap.cache import get_cache_dir
    from sklearn_cap.keywords import confusable_partners

    torch.set_num_threads(args.threads)
    done = {_key(line) for line in registry.load_cells(args.out)}
    cache = get_cache_dir() / "experiments"
    phases = [[s for s in args.sources if s not in COSTLY], [s for s in args.sources if s in COSTLY]]
    data, partners = {}, {}
    start = time.perf_counter()
    for phase in filter(None, phases):
        for dataset in args.datasets:
            for seed in args.seeds:
                todo = [src for src in phase
                        if any((dataset, args.setting, seed, src, k, args.min_count) not in done for k in args.k)]
                if not todo:
                    continue
                if dataset not in data:
                    data[dataset] = reproduce.load(dataset, args.data_home)
                    X, y = data[dataset][:2]
                    partners[dataset] = confusable_partners(X, y)
                s = reproduce.Seed(dataset, args.setting, seed, data[dataset], cache)
                for source in todo:
                    if args.max_minutes and (time.perf_counter() - start) / 60 > args.max_minutes:
                        print(f"time budget of {args.max_minutes} min used; stopping before {dataset} seed {seed} "
                              f"{source}", flush=True)
                        return
                    ks = [k for k in args.k if (dataset, args.setting, seed, source, k, args.min_count) not in done]
                    for line in lines_for(s, source, ks, args.min_count, partners[dataset]):
                        registry.append(line, args.out)
                        done.add(_key(line))
                        print(f"{dataset} {args.setting} seed {seed} {source:<11} k={line['k']:<3} "
                              f"overlap {line['mean_overlap']:.3f} ({line['seconds']['wall']:.0f} s)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=registry.DATASETS, choices=registry.DATASETS)
    parser.add_argument("--setting", default="5-shot", choices=[k for k, v in registry.SETTINGS.items() if v[0]])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--sources", nargs="+", default=SOURCES, choices=[LOGODDS] + list(registry.PRIORS))
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10], help="top words per class")
    parser.add_argument("--min-count", type=int, default=1,
                        help="fewest texts of a class (log-odds: occurrences) a top word must appear in")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--data-home", default=os.environ.get("SKLEARN_CAP_DATA"))
    parser.add_argument("--max-minutes", type=float, default=None, help="start no new source after this many minutes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON-lines file to append to")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
