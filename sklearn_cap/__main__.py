"""Command line: ``python -m sklearn_cap <command>`` (or ``sklearn-cap <command>``).

Commands
--------
demo
    The main job: on a confusable subset of BANKING77 in the 5-shot setting,
    train the vanilla classifier and CAP Hybrid on the embedded models, print
    accuracy, adversarial accuracy (keywords from the method-free log-odds
    statistic, as on the results page), comprehensiveness and sufficiency
    (of the attribution the models were trained to align, and of IG) side by
    side, and write an HTML report with highlighted explanations.
priors
    Extract and print CAP priors for a few BANKING77 test texts with an
    embedded model (the SmolLM2 LLM by default, or the MiniLM embedding
    scorer).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_SEED_LABEL = {"banking77": "card_arrival"}


def _at_least(low, kind):
    """An argparse type: a number of ``kind`` (int or float), finite and >= ``low``."""
    what = "an integer" if kind is int else "a finite number"

    def parse(value):
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
        if not low <= v < float("inf"):  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(f"must be {what} >= {low}, got {value}")
        return v

    return parse


def _int_at_least(low):
    return _at_least(low, int)


def _float_at_least(low):
    return _at_least(low, float)


# The data each command reads: checked (and downloaded if missing) before any work starts.
_COMMAND_DATA = {"demo": lambda a: [(a.dataset, "train"), (a.dataset, "test")],
                 "priors": lambda a: [("banking77", "test")]}


def _check_args(args):
    """User errors found before any work, as one line each (a string), or None."""
    from .cache import get_cache_dir
    from .datasets import get_data_home

    cache = get_cache_dir(args.cache_dir)
    if cache.exists() and not cache.is_dir():
        return f"--cache-dir {cache} is a file, not a folder: give a folder (it is created if missing)."
    existing = next(q for q in [cache, *cache.parents] if q.exists())
    if not existing.is_dir():
        return f"--cache-dir {cache} cannot be created: {existing} is a file, not a folder."
    if not os.access(existing, os.W_OK):
        return f"--cache-dir {cache} cannot be written: {existing} is not writable. Give a writable folder."
    report = getattr(args, "report", None)
    if report is not None:
        out = Path(report).expanduser()
        if out.is_dir():
            return f"--report {out} is a folder: give the path of the HTML file to write, e.g. {out / 'report.html'}."
        folder = out.absolute().parent
        if not folder.is_dir():
            return f"--report {out}: the folder {folder} does not exist. Create it, or write the report elsewhere."
        if not os.access(folder, os.W_OK):
            return f"--report {out}: the folder {folder} is not writable. Write the report elsewhere."
    home = get_data_home(args.data_home)
    if home.exists() and not home.is_dir():
        return f"--data-home {home} is a file, not a folder: give the folder that holds banking77/, clinc150/, hwu64/."
    for name, split in _COMMAND_DATA[args.command](args):
        if not (home / name / f"{split}.csv").exists():
            try:
                _load(name, split, args.data_home)  # downloads it where it can, now rather than mid-run
            except OSError as exc:
                return " ".join(str(exc).split())
    return None


def _priors(args):
    from . import embedded
    from .datasets import load_banking77
    from .priors import CAPPriorTransformer

    X, y = load_banking77("test", data_home=args.data_home, return_X_y=True)
    if args.n_texts > len(X):
        raise SystemExit(f"sklearn-cap priors: --n-texts {args.n_texts} is more than the {len(X)} BANKING77 "
                         "test texts.")
    labels = sorted(set(y))
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(X), size=args.n_texts, replace=False)
    scorer = embedded.LLM if args.scorer == "llm" else "embedding"
    cap = CAPPriorTransformer(
        scorer=scorer, n_samples=args.n_samples, labels=labels,
        cache_dir=args.cache_dir, progress_bar=False if args.quiet else "auto",
    )
    start = time.perf_counter()
    priors = cap.fit_transform(X[idx], y[idx])
    took = time.perf_counter() - start
    print(f"CAP priors, scorer={args.scorer}, n_samples={args.n_samples}, lam={cap.lam}, "
          f"{len(idx)} BANKING77 test texts, 77-label prompt")
    print(f"scored {cap.n_scored_} prompts, {cap.n_cached_} from the cache, in {took:.1f} s\n")
    for i in range(len(idx)):
        print(f"[{y[idx][i]}] {X[idx][i]}")
        print("   " + "  ".join(f"{w}:{v:+.2f}" for w, v in priors.to_list(i)))
        print(f"   top words: {', '.join(priors.top_words(i, 3))}\n")


def _load(name, split, data_home):
    from . import datasets

    return getattr(datasets, f"load_{name}")(split, data_home=data_home, return_X_y=True)


def _fit_cached(method, parts, X, y, vanilla):
    from .experiment import fit_method

    return fit_method(method, parts, X, y, vanilla=vanilla)


def _demo(args):
    from pathlib import Path

    import joblib
    from sklearn.base import clone

    from . import embedded
    from .cache import get_cache_dir
    from .datasets import sample_few_shot
    from .experiment import adversarial_sets, confusable_classes, evaluate, keywords_from, make_methods
    from .keywords import confusable_partners, logodds_keywords
    from .metrics import confusable_pairs, keyword_overlap
    from .report import html_report

    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    X, y = _load(args.dataset, "train", args.data_home)
    X_test, y_test = _load(args.dataset, "test", args.data_home)
    seed_label = args.seed_label if args.seed_label is not None else DEFAULT_SEED_LABEL.get(args.dataset)
    if seed_label is not None and seed_label not in set(y):
        raise SystemExit(f"sklearn-cap demo: --seed-label {seed_label!r} is not an intent of {args.dataset} "
                         f"(for example {', '.join(sorted(set(y))[:3])}).")
    classes = confusable_classes(y, args.n_classes, seed_label=seed_label)
    train = np.isin(y, classes)
    X_few, y_few, _ = sample_few_shot(X[train], y[train], args.shots, random_state=args.seed)
    test = np.flatnonzero(np.isin(y_test, classes))
    if args.max_test and len(test) > args.max_test:
        test = np.sort(np.random.default_rng(args.seed).choice(test, args.max_test, replace=False))
    X_test, y_test = list(X_test[test]), y_test[test]
    X_few = list(X_few)
    say(f"{args.dataset}: {len(classes)} confusable intents ({', '.join(classes)})")
    say(f"training: {len(X_few)} texts ({args.shots} per intent); test: {len(X_test)} texts")

    scorer = embedded.LLM if args.scorer == "llm" else "embedding"
    cache = get_cache_dir(args.cache_dir)
    parts = make_methods(embedded.ENCODER, scorer=scorer, n_samples=args.n_samples, epochs=args.epochs,
                         beta=args.beta, random_state=args.seed, cache_dir=cache, progress_bar=False if args.quiet else "auto")
    fit = joblib.Memory(cache / "demo_models", verbose=0).cache(_fit_cached, ignore=["vanilla"])

    def timed_fit(method, vanilla):
        cached = fit.check_call_in_cache(method, parts, X_few, y_few, vanilla)
        model, priors, seconds = fit(method, parts, X_few, y_few, vanilla)
        return model, priors, "cached" if cached else f"{seconds:.0f}"

    say("\n[1/4] vanilla classifier (cross-entropy only); also the reference model of the IG and LIME priors")
    vanilla, _, t_vanilla = timed_fit("vanilla", None)
    say(f"[2/4] CAP Hybrid (mean of CAP, IG and LIME priors; CAP scorer: {args.scorer})")
    hybrid, priors, t_hybrid = timed_fit("cap_hybrid_mean", vanilla)

    # The keywords come from word counts of the intents' whole training split, as the results page's stored
    # sets do: keywords of the CAP prior under test would score CAP Hybrid on edits its own prior chose.
    X_sub, y_sub = list(X[train]), y[train]
    say(f"[3/4] adversarial test sets from method-free class keywords (log-odds of {len(X_sub)} training texts)")
    keywords = logodds_keywords(X_sub, y_sub, top_k=10, min_count=2)
    adversarial = adversarial_sets(X_test, y_test, keywords, random_state=args.seed,
                                   partners=confusable_partners(X_sub, y_sub))

    trained = parts["classifier"].attribution
    readable = {"grad_input": "gradient x input", "ig": "IG", "ig_stochastic": "stochastic IG"}
    attribution = readable.get(trained, trained)
    say(f"[4/4] evaluation: accuracy, adversarial accuracy, faithfulness of each model's {attribution} "
        "(trained to align) and IG explanations")
    results = {name: evaluate(model, {"test": (X_test, y_test), **adversarial})
               for name, model in [("vanilla", vanilla), ("CAP Hybrid", hybrid)]}
    methods = list(next(iter(results.values()))["explanations"])  # the trained attribution, then IG
    short = {"grad_input": "g×i", "ig": "IG"}  # the results page's column names
    faith = [(f"{kind}_{m}", f"{head} ({short.get(m, m)}) {better}") for m in methods
             for kind, head, better in [("comprehensiveness", "compr.", "↑"), ("sufficiency", "suff.", "↓")]]
    header = ["model", "accuracy", "adv. addition", "adv. replacement"] + [h for _, h in faith] + ["train s"]
    rows = []
    for (name, r), secs in zip(results.items(), [t_vanilla, t_hybrid]):
        m = r["metrics"]
        rows.append([name] + [f"{m[k]:.3f}" for k in ("test", "adv_addition", "adv_replacement")]
                    + [f"{m[k]:.3f}" for k, _ in faith] + [secs])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    print()
    for line in [header] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    add, repl = adversarial["adv_addition"], adversarial["adv_replacement"]
    print(f"\nadversarial sets: {len(add)} addition and {len(repl)} replacement texts "
          f"({add.n_skipped} and {repl.n_skipped} test texts admitted no edit); keywords by log-odds of the "
          "training split, no prior's")
    print("compr., suff.: comprehensiveness and sufficiency (AOPC) of each model's explanations of the test "
          f"texts, by {', '.join(short.get(m, m) for m in methods)}")
    print("train s: seconds to fit ('cached': loaded from the cache); CAP Hybrid's include its priors, "
          "not the vanilla model it explains")

    cap_priors = clone(parts["cap"]).set_params(progress_bar=False).fit_transform(X_few, y_few)
    overlaps = []
    for name, wa in [("CAP prior", cap_priors), ("CAP Hybrid prior", priors)]:
        ov, cls = keyword_overlap(keywords_from(wa, y_few))
        overlaps.append((f"Keyword overlap, {name}", ov, cls))
    pairs = confusable_pairs(*overlaps[0][1:], n=3)
    notes = [
        f"Data: {args.dataset}, {len(classes)} confusable intents, {args.shots}-shot training "
        f"({len(X_few)} texts), {len(X_test)} test texts; seed {args.seed}.",
        f"Models: embedded MiniLM-L6 classifier, {args.epochs} epochs, beta={args.beta}, {attribution} in "
        f"the loss; CAP scorer {args.scorer}, n_samples={args.n_samples}, lam=0.1.",
        f"Adversarial sets: each intent's 10 keywords by the weighted log-odds ratio over the {len(X_sub)} "
        "training texts of these intents and its partner by word-count similarity (sklearn_cap.keywords), as "
        "for the results page's stored sets: no prior under test chose them.",
        f"Faithfulness: AOPC comprehensiveness and sufficiency of the {attribution} explanations (the "
        "attribution the models were trained to align) and of IG.",
        "Most confusable pairs by CAP keyword overlap: "
        + "; ".join(f"{a} / {b} ({o:.2f})" for a, b, o in pairs),
        f"Total run time: {time.perf_counter() - t0:.0f} s.",
    ]
    n_show = min(args.show, len(X_test))
    out = Path(args.report)
    html_report(
        out, title=f"sklearn-cap: vanilla vs CAP Hybrid on {args.dataset} ({args.shots}-shot)",
        summary_header=header, summary_rows=rows, notes=notes, heatmaps=overlaps,
        explanations=[(f"{name} ({short.get(methods[0], methods[0])})", r["explanations"][methods[0]][:n_show],
                       y_test[:n_show]) for name, r in results.items()],
        priors=("CAP Hybrid priors of training texts", priors[: min(15, len(priors))], y_few[:15]),
    )
    print(f"\nreport: {out.resolve()}  ({time.perf_counter() - t0:.0f} s in all)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sklearn-cap", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="vanilla vs CAP Hybrid on a confusable 5-shot BANKING77 subset")
    d.add_argument("--dataset", choices=["banking77", "clinc150", "hwu64"], default="banking77")
    d.add_argument("--n-classes", type=_int_at_least(2), default=10,
                   help="intents in the confusable subset (all of them when larger than the label space)")
    d.add_argument("--seed-label", default=None,
                   help="the subset is this intent and its nearest intents by name (default: card_arrival for "
                        "banking77; for the others, the intent whose nearest names are closest)")
    d.add_argument("--shots", type=_int_at_least(1), default=5)
    d.add_argument("--max-test", type=_int_at_least(0), default=400, help="0: every test text of the subset")
    d.add_argument("--scorer", choices=["embedding", "llm"], default="embedding")
    d.add_argument("--n-samples", type=_int_at_least(8), default=100)
    d.add_argument("--epochs", type=_int_at_least(1), default=8)
    d.add_argument("--beta", type=_float_at_least(0), default=1.0,
                   help="weight of the attribution loss (a number >= 0)")
    d.add_argument("--seed", type=_int_at_least(0), default=0)
    d.add_argument("--show", type=_int_at_least(0), default=25, help="test texts shown in the report")
    d.add_argument("--report", default="sklearn_cap_report.html")
    d.add_argument("--data-home", default=None, help="data folder (default $SKLEARN_CAP_DATA)")
    d.add_argument("--cache-dir", default=None, help="score and model cache (default $SKLEARN_CAP_CACHE)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_demo)
    p = sub.add_parser("priors", help="print CAP priors for a few BANKING77 texts")
    p.add_argument("--scorer", choices=["llm", "embedding"], default="llm")
    p.add_argument("--n-texts", type=_int_at_least(1), default=5)
    p.add_argument("--n-samples", type=_int_at_least(8), default=32)
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--data-home", default=None, help="data folder (default $SKLEARN_CAP_DATA)")
    p.add_argument("--cache-dir", default=None, help="score cache (default $SKLEARN_CAP_CACHE)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_priors)
    args = parser.parse_args(argv)
    problem = _check_args(args)
    if problem:
        parser.exit(2, f"{parser.prog} {args.command}: error: {problem}\n")
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
