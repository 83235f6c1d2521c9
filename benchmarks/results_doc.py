"""doc/results.rst from the cells of ``benchmarks/results/cells.jsonl`` alone: the renderer.

Every number and every setting on the page is read from the cells; the
prose around them is fixed and says nothing about what the numbers show,
except the summary lines, which are generated from the confidence intervals.
What each method is (its name on the page, what an ablation is compared
with, which priors it fuses) is ``benchmarks/registry.py``'s; this module
does not import the runner, ``reproduce.py``.

Cells of the anchors and of a recipe other than the base one (issue 28's
LP-FT) make a block of their own near the top, *Accurate first*, paired
against that recipe's vanilla; every other section shows the base recipe's
cells alone, as it did before those cells existed.

When ``benchmarks/results/homogenisation.jsonl`` exists (``benchmarks/homogenisation.py``), a section
*Shared top words of confusable classes* shows its overlap table, read from its lines alone.

Run (``python benchmarks/reproduce.py --write-doc`` runs the same)::

    python benchmarks/results_doc.py
"""

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry import (DATASETS, HOMOGENISATION, MAIN, METHODS, PRIORS, SETTINGS, beta_sweep, load_cells,  # noqa: E402
                      load_costs, method_of, name_of, order)

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "doc" / "results.rst"

ACCURACY = [("test", "clean"), ("adv_addition", "kw. addition"), ("adv_replacement", "kw. replacement"),
            ("hand_addition", "hand addition"), ("hand_replacement", "hand replacement")]
FAITH = [("comprehensiveness_grad_input", "compr. (g×i) ↑"), ("sufficiency_grad_input", "suff. (g×i) ↓"),
         ("comprehensiveness_ig", "compr. (IG) ↑"), ("sufficiency_ig", "suff. (IG) ↓")]
SETTING_ORDER = list(SETTINGS)


def _one_per_seed(cells, method, seeds):
    """{seed: cell} of ``method`` for ``seeds``; a sample-free method's one cell stands for a seed it has none of."""
    own = {c["seed"]: c for c in cells if c["method"] == method}
    if own and method_of(method).sample_free:
        first = own[min(own)]
        return {s: own.get(s, first) for s in seeds}
    return own


def paired(cells, method, metric, baseline="vanilla"):
    """Per-seed differences method - baseline on ``metric`` (same seed, same test texts).

    A sample-free method (``Method.sample_free``: the same model at every
    seed) is paired, through its one cell, with every seed of the other side.
    """
    seeds = sorted({c["seed"] for c in cells if c["method"] in (method, baseline)})
    rows, base = _one_per_seed(cells, method, seeds), _one_per_seed(cells, baseline, seeds)
    return np.array([rows[s]["metrics"][metric] - base[s]["metrics"][metric] for s in seeds
                     if s in rows and s in base and metric in rows[s]["metrics"] and metric in base[s]["metrics"]])


def with_sample_free(groups):
    """Each (data set, setting) group of ``groups`` with its data set's sample-free cells where it has none.

    A sample-free method gives the same model at every setting, so the data
    set's first cell of it (by setting, then seed) is added to a group that
    lacks one, marked ``stands_in`` with the setting it ran at.
    """
    first = {}
    for (dataset, setting), group in sorted(groups.items(), key=lambda kv: SETTING_ORDER.index(kv[0][1])):
        for c in sorted(group, key=lambda c: c["seed"]):
            if method_of(c["method"]).sample_free:
                first.setdefault((dataset, c["method"]), c)
    out = {}
    for (dataset, setting), group in groups.items():
        present = {c["method"] for c in group}
        extra = [{**c, "setting": setting, "stands_in": c["setting"]} for (d, m), c in first.items()
                 if d == dataset and m not in present and any(in_new_block(x) for x in present)]
        out[(dataset, setting)] = group + extra
    return out


MIN_SEEDS = 3  # fewer seeds give no interval (two equal differences would give one of width 0)


def t_interval(diffs, level=0.95):
    """Mean and the t-interval over seeds, or (mean, nan, nan) with fewer than ``MIN_SEEDS`` seeds."""
    if len(diffs) == 0:
        return np.nan, np.nan, np.nan
    m = float(np.mean(diffs))
    if len(diffs) < MIN_SEEDS:
        return m, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * np.std(diffs, ddof=1) / np.sqrt(len(diffs))
    return m, m - half, m + half


def verdict(lo, hi, higher_is_better=True):
    if np.isnan(lo):
        return ""
    if lo > 0:
        return "win" if higher_is_better else "loss"
    if hi < 0:
        return "loss" if higher_is_better else "win"
    return ""


def _table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("=" * w for w in widths)
    out = [line, "  ".join(str(h).ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in rows]
    return out + [line, ""]


def _mean_sd(values):
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "–"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f} ({len(v)})" if len(v) > 1 else f"{v.mean():.3f} (1)"


def _settings_lines(cells):
    """The settings of a group of cells, read from them (distinct values listed where they differ)."""
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", json.dumps(v)

    seen = defaultdict(set)
    for c in cells:
        for k, v in flat(c["config"]):
            seen[k].add(v)
    return [f"``{k}`` = {', '.join(sorted(v))}" for k, v in sorted(seen.items())]


def queries(group, method):
    """Scorer queries ((text, label) pairs) of a method's model-scored priors, or "–".

    Per prior, the median over the cells of ``group`` (any method) that recorded its count; summed
    over the priors the method fuses. Priors cached before counts were recorded have none.
    """
    names = method_of(method).scored_priors
    total = 0.0
    for n in names:
        counts = [c.get("prior_queries", {}).get(n) for c in group]
        counts = [q for q in counts if isinstance(q, (int, float)) and q >= 0]
        if not counts:
            return "–"
        total += float(np.median(counts))
    return f"{total:.0f}" if names else "–"


def _against_vanilla(present):
    """(row, baseline, its name on the page): every method against vanilla, in the page's order."""
    return [(m, "vanilla", name_of(m)) for m in sorted(present - {"vanilla"}, key=order)]


def summary_lines(groups, pairs=_against_vanilla):
    """One line per (data set, setting, method) with a win or loss, and the number of intervals tested.

    ``pairs(methods)`` gives the (row, baseline, name) of the methods present in a group.
    """
    lines, tested, found = [], 0, 0
    for (dataset, setting), cells in groups:
        for method, baseline, who in pairs({c["method"] for c in cells}):
            parts = []
            for metric, label in ACCURACY + FAITH:
                d = paired(cells, method, metric, baseline)
                m, lo, hi = t_interval(d)
                tested += not np.isnan(lo)
                v = verdict(lo, hi, higher_is_better=not metric.startswith("sufficiency"))
                found += bool(v)
                if v:
                    parts.append(f"{v} on {label} ({m:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], {len(d)} seeds)")
            if parts:
                lines.append(f"* {dataset}, {setting}, {who}: " + "; ".join(parts) + ".")
    return lines, tested, found


BRIEF_METHODS = [n for n, m in METHODS.items() if m.brief]  # the CAP methods of the in-brief table
BRIEF = [("clean accuracy", ACCURACY[:1], "vanilla"), ("keyword sets", ACCURACY[1:3], "vanilla"),
         ("hand-written sets", ACCURACY[3:5], "vanilla"), ("faithfulness (g×i)", FAITH[:2], "vanilla"),
         ("faithfulness (IG)", FAITH[2:], "vanilla"), ("clean, against IG prior", ACCURACY[:1], "ig")]


def _count(group, methods, metrics, baseline):
    """'W wins, L losses of N' over the 95% intervals of ``methods`` x ``metrics`` against ``baseline``."""
    wins = losses = n = 0
    for m in methods:
        for k, _ in metrics:
            _, lo, hi = t_interval(paired(group, m, k, baseline))
            if np.isnan(lo):
                continue
            n += 1
            v = verdict(lo, hi, higher_is_better=not k.startswith("sufficiency"))
            wins += v == "win"
            losses += v == "loss"
    if n == 0:
        return "– (no CI)"
    parts = [f"{wins} win{'s' * (wins != 1)}"] * bool(wins) + [f"{losses} loss{'es' * (losses != 1)}"] * bool(losses)
    return (", ".join(parts) or "none") + f" of {n}"


def brief_lines(groups):
    """A table per (data set, setting): wins and losses of the CAP methods, counted by family, and their cost."""
    rows = []
    for (dataset, setting), group in groups:
        present = {c["method"] for c in group}
        methods = [m for m in BRIEF_METHODS if m in present]
        if not methods or "vanilla" not in present:
            continue
        # a range where the CAP methods have run fewer seeds than vanilla (a tier still being run)
        counts = [len({c["seed"] for c in group if c["method"] == m}) for m in ["vanilla", *methods]]
        seeds = str(max(counts)) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        row = [f"{dataset}, {setting}", seeds, ", ".join(method_of(m).brief for m in methods)]
        for _, metrics, base in BRIEF:
            row.append(_count(group, methods, metrics, base) if base in present else "–")

        def cost(m):
            return _known_median([cost_seconds(c, group) for c in group if c["method"] == m])
        ratios = [cost(m) / cost("vanilla") for m in methods]
        mark = "" if all(cost_verified(c) for c in group if c["method"] in methods) else "*"
        ratios = [r for r in ratios if np.isfinite(r)]
        row.append("–" if not ratios else (f"{min(ratios):.1f}–{max(ratios):.1f}x" if len(ratios) > 1
                                           else f"{ratios[0]:.1f}x") + mark)
        rows.append(row)
    if not rows:
        return []
    return (["In brief: the CAP methods (embedding, LLM, Hybrid mean, Hybrid max) against vanilla, as",
             "counts of the 95% intervals of the tables below that exclude 0 (a *win* is a better score,",
             "also a lower sufficiency), by family of measure; the last but one column compares them with",
             "the IG prior instead; the last gives their cost (priors and training, median seconds over",
             "seeds) as a multiple of vanilla's training (* where cells behind it were timed before they",
             "recorded how many scores their cache supplied; see *Re-timed priors* at the end):", ""]
            + _table(["data set, setting", "seeds", "CAP methods"] + [h for h, _, _ in BRIEF]
                     + ["cost vs vanilla"], rows))


def _scored_counts(cell):
    """(queries asked, queries scored in the timed run) of each model-scored prior of a cell's method."""
    names = method_of(cell["method"]).scored_priors
    return [(cell.get("prior_queries", {}).get(n), cell.get("prior_scored", {}).get(n)) for n in names]


def cpu_of(record):
    """A cell's (or re-time's) CPU and its bfloat16 matrix support, or "not recorded" (records before 2026-12-01)."""
    m = record.get("machine", {})
    return f"{m['cpu']} (bfloat16: {m['bf16_matmul']})" if "cpu" in m else "not recorded"


def cpu_keys(cells):
    """A short key (A, B, ...) for each CPU the cells recorded, in name order; "?" for cells that recorded none."""
    names = sorted({cpu_of(c) for c in cells} - {"not recorded"})
    return {**{n: chr(ord("A") + i) for i, n in enumerate(names)}, "not recorded": "?"}


def cpu_line(cells):
    """Which CPUs the cells' seconds were measured on, with counts: costs move with the CPU, not only the method."""
    counts, keys, speeds_of = Counter(cpu_of(c) for c in cells), cpu_keys(cells), defaultdict(list)
    for c in cells:
        if "matmul_gflops" in c.get("machine", {}):
            speeds_of[cpu_of(c)].append(c["machine"]["matmul_gflops"])
    parts = []
    for name, n in sorted(counts.items(), key=lambda kv: (keys[kv[0]] == "?", keys[kv[0]])):
        speeds = speeds_of[name]
        measured = (f" ({len(speeds)} of them measured float32 matrix products at "
                    f"{min(speeds):.0f}-{max(speeds):.0f} GFLOP/s)") if speeds else ""
        parts.append(f"{keys[name]} = {name}: {n} cells{measured}")
    return "CPUs the cells ran on: " + "; ".join(parts) + "."


def cpu_mix(cells, keys):
    """The CPU keys of some cells with their counts ("A 2, C 1"): which machines a median of seconds mixes."""
    counts = Counter(keys[cpu_of(c)] for c in cells)
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


def retimed_lines(cells, costs):
    """A table of priors re-timed from an empty cache, next to the seconds their cells recorded."""
    if not costs:
        return []
    rows = []
    for r in costs:
        owner = next((c for c in cells if (c["dataset"], c["setting"], c["seed"], c["method"])
                      == (r["dataset"], r["setting"], r["seed"], r["prior"])), None)
        rec = owner["seconds"]["priors"] if owner else float("nan")
        rows.append([f"{r['dataset']}, {r['setting']}", r["seed"], name_of(r["prior"]), r["queries"],
                     f"{r['seconds']:.0f}", f"{rec:.0f}" if owner else "–", f"{rec / r['seconds']:.2f}" if owner else "–",
                     r["finished"][:10], "yes" if owner and cost_verified(owner) else "no",
                     f"{cpu_of(r)} / {cpu_of(owner) if owner else '–'}"])
    return (["Re-timed priors", "---------------", "",
             "Model-scored priors computed again from an empty score cache",
             "(``python benchmarks/bench_prior_cost.py``), next to the seconds their cell recorded. A ratio",
             "below 1 is what the cell's cache (or a faster machine on the cell's day) saved; *verified*",
             "says whether the cell itself recorded that it scored every query:", ""]
            + _table(["data set, setting", "seed", "prior", "queries", "re-timed s", "cell s", "cell / re-timed",
                      "re-timed on", "verified", "CPU (re-timed / cell)"], rows))


def cost_seconds(cell, group):
    """Seconds a user pays for a cell's method: its priors and training, plus what the cell reused.

    An in-sample reference *is* the seed's vanilla model, trained in its own
    cell, and a beta chosen by CV records its search apart from the training.
    NaN when the vanilla cell an in-sample cell reused is missing, or when a
    model-scored prior found part of its scores in the cache (a resumed run):
    an unknown cost is not a small one.
    """
    if any(asked is not None and scored is not None and scored < asked for asked, scored in _scored_counts(cell)):
        return np.nan  # its prior resumed a killed extraction: the timed run scored only the rest
    sec = cell["seconds"]["priors"] + cell["seconds"]["train"]
    sec += cell["config"].get("beta_selection", {}).get("seconds", 0.0)
    if method_of(cell["method"]).in_sample:
        sec += next((c["seconds"]["train"] for c in group
                     if c["method"] == "vanilla" and c["seed"] == cell["seed"]), np.nan)
    return sec


def cost_verified(cell):
    """Whether a cell's seconds are known to include all the scoring its method's priors need.

    True when every model-scored prior of the method records that its timed run
    scored all its queries; cells timed before that was recorded can have been
    served by a cache shared across settings, so their cost is marked unverified.
    """
    return all(asked is not None and scored is not None and scored >= asked for asked, scored in _scored_counts(cell))


def _cost_cell(cells, group_cost):
    """A median cost, "–" when unknown, marked with * when a cell behind it is unverified."""
    if not np.isfinite(group_cost):
        return "–"
    return f"{group_cost:.0f}" + ("" if all(cost_verified(c) for c in cells) else "*")


def _known_median(values):
    """Median over the values that are known (NaN where none is)."""
    known = [v for v in values if np.isfinite(v)]
    return float(np.median(known)) if known else np.nan


# -- the anchors and the LP-FT recipe ("Accurate first") ----------------------------------------------------

# Its rows are the anchors (a model a user would try first) and the methods of a later classifier recipe; the
# recipe's vanilla is paired against each anchor and against the base recipe's vanilla of the same seeds (the
# change of base), every other row against the method the registry says it changes (``against``).
RECIPE_NAMES = {"base": "base recipe", "lpft": "LP-FT"}
NEW_VANILLA = "vanilla_lpft"
ANCHOR_METHODS = [n for n, m in METHODS.items() if m.group == "anchor"]
RECIPE_KEYS = ["head_init", "normalize_features", "learning_rate", "head_learning_rate", "epochs", "batch_size"]
_MISSING = object()


def in_new_block(method):
    """Whether a method's cells are shown in the page's first block (an anchor, or a recipe other than base)."""
    m = method_of(method)
    return m.group == "anchor" or m.recipe != "base"


def label(method):
    """A method's name in the first block: an anchor's name, any other's with its recipe, e.g. "vanilla (LP-FT)"."""
    m = method_of(method)
    return m.display if m.group == "anchor" else f"{m.display} ({RECIPE_NAMES.get(m.recipe, m.recipe)})"


def _page_index(method):
    return (list(METHODS).index(method) if method in METHODS else len(METHODS)), method


def new_pairs(present):
    """(row, baseline, name) of the first block among the methods ``present``, each paired as row - baseline.

    The recipe's vanilla against each anchor and against the base recipe's
    vanilla; every other row of the block against its registry ``against``,
    and a row that changes another prior (a probe reference for a fine-tuned
    one) against the recipe's vanilla too: what a user of it gains or loses.

    Examples
    --------
    >>> [(r, b) for r, b, _ in new_pairs({"vanilla", "vanilla_lpft", "frozen_lr", "cap_emb_lpft"})]
    [('vanilla_lpft', 'frozen_lr'), ('vanilla_lpft', 'vanilla'), ('cap_emb_lpft', 'vanilla_lpft')]
    >>> [(r, b) for r, b, _ in new_pairs({"vanilla_lpft", "ig_lpft", "ig_probe_lpft"})]
    [('ig_lpft', 'vanilla_lpft'), ('ig_probe_lpft', 'ig_lpft'), ('ig_probe_lpft', 'vanilla_lpft')]
    """
    rows = [(NEW_VANILLA, b) for b in ANCHOR_METHODS + ["vanilla"] if NEW_VANILLA in present and b in present]
    for m in sorted(present, key=_page_index):
        if not in_new_block(m) or method_of(m).group == "anchor" or m == NEW_VANILLA:
            continue
        rows += [(m, b) for b in (method_of(m).against, NEW_VANILLA) if b in present]
    return [(r, b, f"{label(r)} against {label(b)}") for r, b in dict.fromkeys(rows)]


def _recorded(cells, read):
    """What ``read(cell)`` gives over the cells, per setting where the settings differ ("not recorded": absent)."""
    by_setting = defaultdict(set)
    for c in cells:
        v = read(c)
        by_setting[c["setting"]].add("not recorded" if v is _MISSING else f"``{json.dumps(v)}``")
    values = {st: " or ".join(sorted(v)) for st, v in by_setting.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    ordered = sorted(values.items(), key=lambda kv: (SETTING_ORDER.index(kv[0]) if kv[0] in SETTING_ORDER
                                                      else len(SETTING_ORDER), kv[0]))
    return ", ".join(f"{v} ({st})" for st, v in ordered)


def _classifier_setting(key):
    return lambda c: c["config"]["classifier"].get(key, _MISSING)


def _probe_C(cell):
    return cell.get("probe", {}).get("C", _MISSING)


def recipe_table(cells):
    """The classifier settings of each recipe as its cells record them (``config.classifier``; probe C: ``probe``)."""
    recipes = defaultdict(list)
    for c in cells:
        if method_of(c["method"]).group != "anchor":
            recipes[method_of(c["method"]).recipe].append(c)
    names = sorted(recipes, key=lambda r: (r != "base", r))
    rows = [[f"``{k}``"] + [_recorded(recipes[r], _classifier_setting(k)) for r in names] for k in RECIPE_KEYS]
    rows.append(["probe ``C``"] + [_recorded(recipes[r], _probe_C) for r in names])
    return _table(["classifier setting"] + [f"{RECIPE_NAMES.get(r, r)} ({len(recipes[r])} cells)" for r in names],
                  rows)


def _probe_lines(group):
    """The probe's C of each seed (and its cross-validated accuracy where C was chosen), as the cells record them.

    Methods whose probes read the same are named on one line.
    """
    lines = defaultdict(list)
    for m in sorted({c["method"] for c in group if "probe" in c}, key=_page_index):
        cs = sorted((c for c in group if c["method"] == m and "probe" in c), key=lambda c: c["seed"])
        cv = [c["probe"].get("cv_accuracy") or {} for c in cs]
        if any(cv):
            among = ", ".join(dict.fromkeys(k for scores in cv for k in scores))
            chosen = [f"{c['probe']['C']:g}" for c in cs]
            seeds = "; ".join(f"seed {c['seed']}: {C}" + (f" ({scores[C]:.3f})" if C in scores else "")
                              for c, C, scores in zip(cs, chosen, cv))
            lines[f"C chosen by mean cross-validated accuracy on the seed's training sample among {among} "
                  f"(that accuracy in parentheses): {seeds}."].append(label(m))
        else:
            by_C = defaultdict(list)
            for c in cs:
                by_C[f"{c['probe']['C']:g}"].append(c["seed"])
            lines["probe C = " + "; ".join(f"{C} (seeds {', '.join(map(str, ss))})" for C, ss in by_C.items())
                  + "."].append(label(m))
    if not lines:
        return []
    return (["Linear probes, as the cells record them:", ""]
            + [f"* {'; '.join(names)}: {text}" for text, names in lines.items()] + [""])


def _diff_with_seeds(d, higher_is_better=True):
    """A paired difference as :func:`_diff_cell` gives it, with its number of seeds where it has an interval."""
    return _diff_cell(d, higher_is_better) + (f" ({len(d)} seeds)" if len(d) >= MIN_SEEDS else "")


def headline_lines(groups):
    """The recipe's vanilla against each anchor and the base recipe's vanilla, on clean accuracy, per group."""
    against = [b for b in ANCHOR_METHODS + ["vanilla"] if any(c["method"] == b for _, g in groups for c in g)]
    rows = []
    for (dataset, setting), group in groups:
        mine = [c["metrics"]["test"] for c in group if c["method"] == NEW_VANILLA]
        if mine:
            rows.append([f"{dataset}, {setting}", _mean_sd(mine)]
                        + [_diff_with_seeds(paired(group, NEW_VANILLA, "test", b)) for b in against])
    if not rows:
        return []
    return ([f"{label(NEW_VANILLA)} minus each anchor and minus {label('vanilla')}, on clean accuracy: the mean",
             "of the per-seed differences, its 95% CI and the number of paired seeds (a *loss* is an interval",
             f"below 0: the anchor, or {label('vanilla')}, is the more accurate):", ""]
            + _table(["data set, setting", f"{label(NEW_VANILLA)}, clean"] + [f"minus {label(b)}" for b in against],
                     rows))


def _same_figures(a, b, tol=1e-6):
    """Whether two cells have the same metrics, to ``tol`` (float noise differs between CPUs)."""
    return a["metrics"].keys() == b["metrics"].keys() and all(
        abs(a["metrics"][k] - b["metrics"][k]) <= tol for k in a["metrics"])


def _sample_free_lines(group):
    """Which cells a group's sample-free methods were read from, and that each is paired with every seed."""
    out = []
    for m in sorted({c["method"] for c in group if method_of(c["method"]).sample_free}, key=_page_index):
        cs = sorted((c for c in group if c["method"] == m), key=lambda c: c["seed"])
        ran = cs[0].get("stands_in", cs[0]["setting"])
        out.append(f"{label(m)} reads no training text, only the label names, so its model is the same at every "
                   f"seed and setting: its cell of seed {cs[0]['seed']}, run at {ran}, is paired with every seed"
                   + (f" (the cells of seeds {', '.join(str(c['seed']) for c in cs[1:])} "
                      f"{'agree with it to 1e-6' if all(_same_figures(c, cs[0]) for c in cs[1:]) else 'differ'})."
                      if len(cs) > 1 else "."))
    return out + [""] * bool(out)


def new_block_lines(groups):
    """The page's first block: the anchors and the LP-FT recipe, from the groups that have cells of them."""
    cells = [c for _, g in groups for c in g]
    keys = cpu_keys(cells)
    groups = [(key, g) for key, g in groups if any(in_new_block(c["method"]) for c in g)]
    if not groups:
        return []
    title = f"Accurate first: the {RECIPE_NAMES['lpft']} recipe and the anchors"
    out = [title, "-" * len(title), "",
           "The anchors (" + "; ".join(name_of(a) for a in ANCHOR_METHODS) + ")",
           "are what a user would try before an explanation-guided classifier; the "
           f"{RECIPE_NAMES['lpft']} block is every method",
           f"trained with the {RECIPE_NAMES['lpft']} recipe, on the same samples and test sets as every other cell.",
           "Each difference is *row minus against*, paired by seed on the same test texts, with the page's 95%",
           f"t-interval over seeds: {label(NEW_VANILLA)} against each anchor and against {label('vanilla')} of the",
           "same seeds (the change of base), every other row against the method it changes one thing of.", "",
           "The two recipes, as their cells record them (per setting where they differ):", ""]
    out += recipe_table(cells)
    out += headline_lines(groups)
    lines, tested, n_found = summary_lines(groups, new_pairs)
    out += [f"Differences of this block whose 95% interval excludes 0 ({n_found} of its {tested} intervals, not",
            "corrected for their number; all others are within seed noise):", ""]
    out += (lines or ["* none so far."]) + [""]
    for (dataset, setting), group in groups:
        present = {c["method"] for c in group}
        rows_of = sorted((m for m in present if in_new_block(m)), key=_page_index)
        rows_of += ["vanilla"] * ("vanilla" in present)  # the base recipe's, for reference
        sub = f"{dataset}, {setting}: anchors and {RECIPE_NAMES['lpft']}"
        out += [sub, "~" * len(sub), ""] + _group_intro([c for c in group
                                                         if in_new_block(c["method"]) and "stands_in" not in c])
        out += _sample_free_lines(group)
        rows = [[label(m)] + [_mean_sd([c["metrics"][k] for c in group if c["method"] == m and k in c["metrics"]])
                              for k, _ in ACCURACY] for m in rows_of]
        out += ["Accuracy:", ""] + _table(["method"] + [h for _, h in ACCURACY], rows)
        rows = []
        for m in rows_of:
            cs = [c for c in group if c["method"] == m]
            rows.append([label(m)] + [_mean_sd([c["metrics"][k] for c in cs if k in c["metrics"]]) for k, _ in FAITH]
                        + [f"{np.median([c['seconds'][k] for c in cs]):.0f}" for k in ("priors", "train")]
                        + [_cost_cell(cs, _known_median([cost_seconds(c, group) for c in cs])), queries(group, m),
                           cpu_mix(cs, keys)])
        out += ["Faithfulness and cost (median seconds over seeds of the priors, of the training, and their sum",
                "as the base recipe's tables count it; scorer queries as there; *CPUs*: the machines the seconds",
                "were measured on, keyed as in the page's header, with their cell counts: seconds compare across",
                "rows only where the CPUs match):", ""]
        out += _table(["method"] + [h for _, h in FAITH] + ["priors s", "train s", "cost s", "scorer queries", "CPUs"],
                      rows)
        pairs = new_pairs(present)
        rows = [[label(r), label(b)] + [_diff_cell(paired(group, r, k, b)) for k, _ in ACCURACY] for r, b, _ in pairs]
        if rows:
            out += ["Paired differences, row minus against (mean, 95% CI over seeds):", ""]
            out += _table(["row", "against"] + [h for _, h in ACCURACY], rows)
        rows = [[label(r), label(b)] + [_diff_cell(paired(group, r, k, b), not k.startswith("sufficiency"))
                                        for k, _ in FAITH] for r, b, _ in pairs]
        rows = [r for r in rows if any(x != "–" for x in r[2:])]
        if rows:
            out += ["Faithfulness, row minus against (95% CI over seeds; lower sufficiency is better):", ""]
            out += _table(["row", "against"] + [h for _, h in FAITH], rows)
        out += _probe_lines(group)
        recipe = [c for c in group if in_new_block(c["method"]) and method_of(c["method"]).group != "anchor"]
        if recipe:
            out += [f"Settings read from the {RECIPE_NAMES['lpft']} cells of this section:", ""]
            out += [f"* {line}" for line in _settings_lines(recipe)] + [""]
    return out


def write_doc(cells, path=DOC, costs=(), homogenisation=()):
    groups = defaultdict(list)
    for c in cells:
        groups[(c["dataset"], c["setting"])].append(c)
    groups = with_sample_free(groups)
    ordered = sorted(groups.items(), key=lambda kv: (DATASETS.index(kv[0][0]), SETTING_ORDER.index(kv[0][1])))
    first = new_block_lines(ordered)
    # the base recipe's sections below: every cell but the first block's
    ordered = [(key, base) for key, g in ordered if (base := [c for c in g if not in_new_block(c["method"])])]
    total_h = sum(c["seconds"]["cell"] for c in cells) / 3600
    seeds = sorted({c["seed"] for c in cells})
    out = [
        "Results",
        "=======",
        "",
        "Every number on this page is read from ``benchmarks/results/cells.jsonl`` by",
        "``python benchmarks/reproduce.py --write-doc``; the cells were produced by",
        "``python benchmarks/reproduce.py run ...``; ``python benchmarks/reproduce.py plan`` lists the cells still",
        "missing, by tier, in runs of at most two hours, and ``python benchmarks/reproduce.py next`` runs the",
        "next seed's missing cells in that order.",
        "A cell is one data set, setting, seed and method; each seed draws its own training sample",
        "(few-shot) and its own initialisation. Accuracy columns read ``mean ± sd (seeds)``.",
        "Differences are paired against the vanilla model of the same seed, on the same test texts;",
        "the interval is a 95% t-interval over seeds of the per-seed differences, and a difference is",
        f"called a win or a loss only where that interval excludes 0 (intervals need {MIN_SEEDS} or more seeds).",
        "",
        f"Cells: {len(cells)}; seeds: {', '.join(map(str, seeds))}; compute: {total_h:.1f} hours of wall time",
        f"on {cells[0]['machine']['cpus'] if cells else '?'} CPU cores (sum over cells). {cpu_line(cells)}",
        "",
        "Test sets: *clean* is the full test split; *kw. addition* and *kw. replacement* are the stored",
        "sets of ``benchmarks/adversarial/`` (keywords from a method-free log-odds statistic of the",
        "training split, so no prior under test chose them); *hand addition* and *hand replacement*",
        "are the hand-written, meaning-preserving sets of ``benchmarks/adversarial/handwritten/``.",
        "Faithfulness (AOPC comprehensiveness and sufficiency) is measured on a fixed subset of test",
        "texts with the attribution the model was trained to align (gradient x input, *g×i*) and with IG.",
        "",
    ]
    out += first + ["Summary", "-------", ""]
    if first:
        old = [c for _, g in ordered for c in g]
        out += [f"The {RECIPE_NAMES['base']}: this summary and the sections from here to *Re-timed priors* show",
                f"the {len(old)} cells of the {RECIPE_NAMES['base']}, which record its classifier settings as: "
                + "; ".join(f"``{k}``: {_recorded(old, _classifier_setting(k))}" for k in RECIPE_KEYS) + ".", ""]
    out += brief_lines(ordered)
    lines, tested, n_found = summary_lines(ordered)
    where = "of the base recipe's sections" if first else "on this page"
    out += [f"Differences to vanilla whose 95% interval excludes 0 ({n_found} of the {tested} intervals {where};",
            "all others are within seed noise). The intervals are not corrected for their number: with no",
            f"effect at all, about {tested / 20:.0f} of {tested} would exclude 0 by chance, so a lone win or loss",
            "on one set deserves less weight than a pattern across data sets:", ""]
    out += lines or ["* none so far."]
    out.append("")
    for (dataset, setting), group in ordered:
        methods = sorted({c["method"] for c in group}, key=order)
        title = f"{dataset}, {setting}"
        out += [title, "-" * len(title), ""] + _group_intro(group)
        rows = []
        for m in methods:
            cs = [c for c in group if c["method"] == m]
            rows.append([name_of(m)] + [_mean_sd([c["metrics"][k] for c in cs if k in c["metrics"]])
                                        for k, _ in ACCURACY])
        out += ["Accuracy:", ""] + _table(["method"] + [h for _, h in ACCURACY], rows)
        rows = []
        for m in methods:
            if m == "vanilla":
                continue
            row = [name_of(m)]
            for k, _ in ACCURACY:
                d = paired(group, m, k)
                mean, lo, hi = t_interval(d)
                cell = "–" if np.isnan(mean) else (f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" if not np.isnan(lo)
                                                   else f"{mean:+.3f} ({len(d)} seed{'s' if len(d) > 1 else ''}, no CI)")
                v = verdict(lo, hi)
                row.append(cell + (f" {v}" if v else ""))
            rows.append(row)
        if rows:
            out += ["Difference to vanilla (95% CI over seeds):", ""]
            out += _table(["method"] + [h for _, h in ACCURACY], rows)
        rows = [[name_of(m)] + [_diff_cell(paired(group, m, k), higher_is_better=not k.startswith("sufficiency"))
                                for k, _ in FAITH] for m in methods if m != "vanilla"]
        if rows:
            out += ["Faithfulness, difference to vanilla (95% CI over seeds; lower sufficiency is better):", ""]
            out += _table(["method"] + [h for _, h in FAITH], rows)
        rows = []
        for m in methods:
            cs = [c for c in group if c["method"] == m]
            cost = _known_median([cost_seconds(c, group) for c in cs])
            rows.append([name_of(m)] + [_mean_sd([c["metrics"][k] for c in cs if k in c["metrics"]])
                                        for k, _ in FAITH] + [_cost_cell(cs, cost), queries(group, m)])
        out += ["Faithfulness and cost (seconds to compute the method's priors and train it, median over seeds;",
                "shared priors are counted in full for every method that uses them, an in-sample reference adds",
                "the vanilla training it reuses, a beta chosen by CV its search; a cell whose LLM or embedding",
                "prior resumed a killed extraction is left out, its seconds being only the rest; * marks a cost",
                "from cells timed before they recorded how many scores their cache supplied, see *Re-timed",
                "priors* below). Scorer queries are the",
                "(text, label) pairs a model-scored prior asks for (cache hits included): per prior, the",
                "median over the seeds that recorded it, summed over the priors a method fuses:", ""]
        out += _table(["method"] + [h for _, h in FAITH] + ["cost s", "scorer queries"], rows)
        rows = [[name_of(m)] + [_diff_cell(paired(group, m, k, "ig"), higher_is_better=not k.startswith("sufficiency"))
                                for k, _ in ACCURACY[:3] + FAITH[:2]]
                for m in methods if method_of(m).uses_scorer and m in MAIN]
        if rows and any(c["method"] == "ig" for c in group):
            out += ["Does CAP add to an IG prior? Each CAP method against the IG prior, paired by seed",
                    "(mean difference, 95% CI over seeds):", ""]
            out += _table(["method"] + [h for _, h in ACCURACY[:3] + FAITH[:2]], rows)
        out += _ablation_lines(group)
        out += _beta_lines(group, dataset, setting, path.parent)
        out += ["Settings read from these cells:", ""] + [f"* {line}" for line in _settings_lines(group)] + [""]
    out += homogenisation_lines(homogenisation)
    out += retimed_lines(cells, costs)
    path.write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {path} from {len(cells)} cells")


def _uses_priors(method):
    """Whether a method's cells train with priors (an unregistered method is taken to)."""
    return method != "vanilla" and (method not in METHODS or bool(METHODS[method].priors))


def _group_intro(group):
    """The lines that open a (data set, setting) section: its sizes, and the seeds whose priors were shared."""
    n_train = sorted({c["n_train"] for c in group})
    sizes = group[0]["set_sizes"]
    out = [f"{group[0]['n_classes']} intents; training texts per seed: {', '.join(map(str, n_train))}; "
           f"test texts: {group[0]['n_test']}; adversarial sets: " + ", ".join(f"{k} {v}" for k, v in sizes.items())
           + "."]
    guided = [c for c in group if _uses_priors(c["method"])]
    shared = sorted({c["prior_seed"] for c in guided if c.get("prior_seed", c["seed"]) != c["seed"]})
    if shared:
        users = sorted({c["seed"] for c in guided})
        out.append(f"Every seed trains on the same texts; the priors were computed once, from the reference "
                   f"models of seed {', '.join(map(str, shared))}, and shared by seeds "
                   f"{', '.join(map(str, users))}: the seeds vary the classifier's initialisation and batch order.")
    return out + [""]


def _diff_cell(d, higher_is_better=True, judged=True, count=False):
    """A paired difference as ``mean [lo, hi]``, its verdict when ``judged``, its seed count when ``count``."""
    mean, lo, hi = t_interval(d)
    if np.isnan(mean):
        return "–"
    if np.isnan(lo):
        return f"{mean:+.3f} ({len(d)} seed{'s' if len(d) > 1 else ''}, no CI)"
    v = verdict(lo, hi, higher_is_better) if judged else ""
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (f" {v}" if v else "") + (f" ({len(d)})" if count else "")


def _ablation_lines(group):
    """Each ablation (or variant) against the configuration it changes one thing of, paired by seed."""
    present = {c["method"] for c in group}
    rows = []
    for m in sorted(present, key=order):
        base = method_of(m).against
        if base is None or base not in present:
            continue
        rows.append([name_of(m), name_of(base)] + [_diff_cell(paired(group, m, k, base)) for k, _ in ACCURACY[:3]]
                    + [_diff_cell(paired(group, m, k, base), higher_is_better=not k.startswith("sufficiency"))
                       for k, _ in FAITH[:2]])
    if not rows:
        return []
    return (["Ablations: each row against the configuration it changes one thing of, paired by seed",
             "(mean difference, 95% CI over seeds):", ""]
            + _table(["variant", "against"] + [h for _, h in ACCURACY[:3]] + [h for _, h in FAITH[:2]], rows))


def _beta_lines(group, dataset, setting, folder):
    """Accuracy against beta (vanilla is beta = 0), as a PNG next to the page, when a beta sweep ran."""
    betas = beta_sweep({c["method"] for c in group})
    chosen = sorted((c["seed"], c["config"]["beta_selection"]) for c in group
                    if method_of(c["method"]).select_beta and "beta_selection" in c["config"])
    lines = []
    if chosen:
        sel = chosen[0][1]
        lines += [f"beta chosen by {sel['cv']}-fold cross-validated {sel['scoring']} on each seed's training sample "
                  f"alone, among {', '.join(f'{b:g}' for b in sel['grid'])}: "
                  + "; ".join(f"seed {seed}: {b['chosen']:g}" for seed, b in chosen) + ".", ""]
    if len(betas) < 4:
        return lines
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # every point over the same seeds, those that ran every beta, so the curve is not a mix of samples
    seeds = sorted(set.intersection(*({c["seed"] for c in group if c["method"] == m} for m in betas.values())))
    if not seeds:
        return lines
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for metric, label in ACCURACY[:3]:
        xs, ms, sds = [], [], []
        for b, m in sorted(betas.items()):
            v = [c["metrics"][metric] for c in group
                 if c["method"] == m and c["seed"] in seeds and metric in c["metrics"]]
            if v:
                xs.append(b)
                ms.append(np.mean(v))
                sds.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
        ax.errorbar(xs, ms, yerr=sds, marker="o", capsize=3, label=label)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xticks(sorted(betas), [f"{b:g}" for b in sorted(betas)])
    ax.set_xlabel("beta (0 = vanilla)")
    ax.set_ylabel("accuracy (mean ± sd over seeds)")
    ax.set_title(f"CAP Hybrid mean, {dataset} {setting}, seeds {', '.join(map(str, seeds))}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = f"beta_{dataset}_{setting}.png"
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return ["Sensitivity to beta (reported on the test sets, not used to choose beta: beta stays at the",
            f"paper's 1), over the seeds that ran every beta ({', '.join(map(str, seeds))}):", "",
            f".. image:: {name}", "   :width: 520px", ""] + lines


def _source_order(source):
    """Row order of the overlap table: a source that is no prior (the log-odds reference), then the registry's."""
    names = list(PRIORS)
    return (source in PRIORS, names.index(source) if source in PRIORS else 0, source)


def _overlap_pairs(group, datasets, sources, setting, k):
    """Each source's mean overlap minus CAP's, paired by seed, with a 95% t-interval: does CAP separate more?

    The reference is the first CAP source of the registry's order present in the group; none: no table.
    """
    cap = next((src for src in sources if src.startswith("cap")), None)
    if cap is None:
        return []
    value = {(r["dataset"], r["seed"], r["source"]): r["mean_overlap"] for r in group}
    rows = []
    for source in sources:
        if source == cap:
            continue
        cells = []
        for d in datasets:
            seeds = sorted(s for (dd, s, src) in value if dd == d and src == source and (d, s, cap) in value)
            diffs = np.array([value[(d, s, source)] - value[(d, s, cap)] for s in seeds])
            cells.append(_diff_cell(diffs, judged=False, count=True))  # more overlap is neither good nor bad
        rows.append([next(r["display"] for r in group if r["source"] == source)] + cells)
    name = next(r["display"] for r in group if r["source"] == cap)
    return ([f"{setting}, top {k}: each source's overlap minus {name}'s, paired by seed, mean [95% t-interval] "
             f"(seeds); above 0: the source gives confusable classes more shared top words than {name}:", ""]
            + _table(["source"] + datasets, rows))


def homogenisation_lines(lines):
    """The section on shared top words of confusable classes, from ``benchmarks/homogenisation.py``'s lines.

    One table per (setting, k, min_count) that the lines hold: a row per prior source, a column per data
    set, each cell the mean over seeds of the per-seed mean overlap over classes, with its sd over seeds
    and the number of seeds. Settings are listed as the lines record them. No lines: no section.
    """
    if not lines:
        return []
    latest = {}
    for r in lines:  # a line written again (a rerun after its file was edited) replaces the earlier one
        latest[(r["dataset"], r["setting"], r["seed"], r["source"], r["k"], r["min_count"])] = r
    lines = list(latest.values())
    title = "Shared top words of confusable classes"
    out = [title, "-" * len(title), "",
           "Do the priors give confusable classes the same top words? For each class, its top k words under a",
           "prior source (or, in the row with no prior, its log-odds keywords) on a seed's training sample, and",
           "the share of them that its partner class (``partners_from`` below) also has among its top k: 0 when",
           "the two lists share no word, 1 when they are the same. A cell is the mean over seeds of the mean",
           "over classes, ``mean ± sd over seeds (seeds)``. Read from",
           f"``benchmarks/results/{HOMOGENISATION.name}`` ({len(lines)} lines), written by",
           "``python benchmarks/homogenisation.py``.", ""]
    tables = sorted({(r["setting"], r["k"], r["min_count"]) for r in lines},
                    key=lambda g: (SETTING_ORDER.index(g[0]) if g[0] in SETTING_ORDER else len(SETTING_ORDER),) + g)
    for setting, k, min_count in tables:
        group = [r for r in lines if (r["setting"], r["k"], r["min_count"]) == (setting, k, min_count)]
        datasets = sorted({r["dataset"] for r in group},
                          key=lambda d: (DATASETS.index(d) if d in DATASETS else len(DATASETS), d))
        sources = sorted({r["source"] for r in group}, key=_source_order)
        rows = []
        for source in sources:
            mine = [r for r in group if r["source"] == source]
            rows.append([mine[0]["display"]] + [_mean_sd([r["mean_overlap"] for r in mine if r["dataset"] == d])
                                                for d in datasets])
        classes = ", ".join(f"{d} " + "/".join(str(n) for n in sorted({r["n_classes"] for r in group
                                                                        if r["dataset"] == d})) for d in datasets)
        out += [f"{setting}, top {k} words a class, each seen in at least {min_count} of the class's texts "
                f"(log-odds keywords: occurrences); classes: {classes}:", ""]
        out += _table(["source"] + datasets, rows)
        out += _overlap_pairs(group, datasets, sources, setting, k)
    out += ["Settings read from these lines, by source:", ""]
    for source in sorted({r["source"] for r in lines}, key=_source_order):
        mine = [r for r in lines if r["source"] == source]
        recorded = [{"config": {**r["config"], "top_words": r["top_words"], "partners_from": r["partners_from"]}}
                    for r in mine]
        out += [f"* {mine[0]['display']}: " + "; ".join(_settings_lines(recorded))]
    cpus = Counter(cpu_of(r) for r in lines)
    return out + ["", "CPUs the lines ran on: " + "; ".join(f"{k}: {v} lines" for k, v in sorted(cpus.items())) + ".",
                  ""]


def main():
    write_doc(load_cells(), costs=load_costs(), homogenisation=load_cells(HOMOGENISATION))


if __name__ == "__main__":
    main()
