"""The experiment registry: settings, methods, the run grid and the cells file.

``reproduce.py`` runs cells and ``results_doc.py`` renders them; both read
what a cell *is* from here, and neither imports the other.

- **Settings** (:data:`SETTINGS`, :func:`config`): ``5-shot`` and ``10-shot``
  (a new sample of k texts per intent for every seed), ``full`` (the whole
  training split), and every other setting a cell records.
- **Methods** (:data:`METHODS`): one :class:`Method` entry each, with its
  name, its name on the page, its priors and how they are fused, its
  classifier parameters (over the setting's), and its *recipe*, the block of
  the page it belongs to. A new row (an anchor such as a frozen encoder with
  logistic regression, or a new classifier recipe) is one new entry.
- **The grid** (:func:`grid`, :func:`missing`, :func:`plan`): the cells the
  results page wants, tier by tier in order of priority.
- **Cells** (:func:`load_cells`, :func:`append`, :func:`pack`,
  :func:`unpack`): one JSON object a line in ``results/cells.jsonl``.

Example::

    >>> METHODS["hybrid_mean"].display, METHODS["hybrid_mean"].priors
    ('CAP Hybrid mean', ('cap_emb', 'ig', 'lime'))
    >>> method_of("hybrid_mean_beta3").classifier, method_of("hybrid_mean_beta3").against
    ({'beta': 3.0}, 'hybrid_mean')
"""

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
CELLS = HERE / "results" / "cells.jsonl"
COSTS = HERE / "results" / "prior_costs.jsonl"  # priors re-timed from an empty cache (bench_prior_cost.py)
HOMOGENISATION = HERE / "results" / "homogenisation.jsonl"  # top words of confusable classes (homogenisation.py)
ADVERSARIAL = HERE / "adversarial"
DESCRIPTIONS = HERE / "label_descriptions"

# -- settings ----------------------------------------------------------------

SETTINGS = {  # name -> (texts per intent or None for all, epochs, batch size)
    "5-shot": (5, 15, 16),
    "10-shot": (10, 10, 16),
    "full": (None, 3, 32),
}
DATASETS = ["banking77", "hwu64", "clinc150"]  # the order of the grid and of the page
BETA_GRID = [0.0, 0.1, 0.3, 1.0, 3.0]  # a beta chosen by CV chooses among these on the training sample alone
FAITHFULNESS_TEXTS = 500
CV = 3


# The classifier recipes, by setting: parameters over config()'s "classifier" block. "base" is the recipe
# of every cell before issue 28 (a random head fine-tuned at 1e-4), spelled out now that the library's
# defaults are the LP-FT recipe; "lpft" is that recipe, chosen on inner splits of the training samples
# (benchmarks/select_recipe.py, doc/benchmarks.rst), never on a test split.
_BASE = {"head_init": "random", "normalize_features": False, "head_learning_rate": None}
# float32: the library's default, and the only fast precision on a CPU without bfloat16 matrix units (bfloat16
# autocast is emulated there, several times slower); the base cells ran in bfloat16 on an AMX host.
_LPFT = {"head_init": "probe", "normalize_features": True, "learning_rate": 3e-5, "head_learning_rate": 3e-4,
         "precision": "float32"}
RECIPES = {
    "base": {"5-shot": _BASE, "10-shot": _BASE, "full": _BASE},
    "lpft": {"5-shot": {**_LPFT, "epochs": 8}, "10-shot": {**_LPFT, "epochs": 6}, "full": {**_LPFT, "epochs": 3}},
}


def recipe_params(recipe, setting):
    """The classifier parameters of a recipe in a setting (over :func:`config`'s).

    A block that is not a classifier recipe (a row with its own ``estimator``
    and parameters) adds none.
    """
    return dict(RECIPES.get(recipe, {}).get(setting, {}))


def cpu_fields(cpuinfo=None):
    """The first logical CPU's block of /proc/cpuinfo as a dict ("model name", "flags", ...).

    ``cpuinfo`` is the file's text (read here when None); empty where it
    cannot be read. One parser for the runner's cells and the benchmarks' CPU line.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    first = cpuinfo.strip().split("\n\n")[0]  # one block per logical CPU; they agree
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def bf16_matmul(cpuinfo=None, *, fields=None):
    """This CPU's bfloat16 matrix units ("amx", "avx512_bf16" or "none").

    ``cpuinfo`` is the text of /proc/cpuinfo (read here when None), or
    ``fields`` its :func:`cpu_fields` already parsed; "none" where it cannot be read.
    """
    flags = set((cpu_fields(cpuinfo) if fields is None else fields).get("flags", "").split())
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"


def fast_precision():
    """The precision the runner's own models use here: bfloat16 on bfloat16 matrix units, else float32.

    Without those units torch emulates bfloat16 matrix products several
    times slower than float32, so a host without them scores and trains
    the references in float32; the precision is recorded in every cell.
    """
    return "float32" if bf16_matmul() == "none" else "bfloat16"


def config(setting):
    """Every setting of a cell, as recorded with it (a method's classifier parameters go over ``classifier``).

    The reference models and the scorers run at :func:`fast_precision`
    (every cell before issue 28 ran in bfloat16 on an AMX host);
    doc/benchmarks.rst measures what bfloat16 does to the LLM scorer's
    speed and to the priors' word order.
    """
    per_class, epochs, batch = SETTINGS[setting]
    precision = fast_precision()
    return {
        "classifier": {"model": "embedded MiniLM-L6 (all-MiniLM-L6-v2)", "pooling": "auto (mean)", "epochs": epochs,
                       "batch_size": batch, "learning_rate": 1e-4, "beta": 1.0, "attribution": "grad_input",
                       "precision": precision, "max_length": 128},
        "per_class": per_class,
        "cap": {"n_samples": 100, "lam": 0.1, "embedding_precision": precision, "llm": "embedded SmolLM2-135M-Instruct",
                "llm_dtype": precision},
        "ig_prior": {"n_steps": 20, "cv": CV},
        "lime_prior": {"num_samples": 500, "cv": CV},
        "fusion": {"normalization": "minmax"},
        "faithfulness": {"texts": FAITHFULNESS_TEXTS, "k": [0.01, 0.05, 0.1, 0.2, 0.5], "ig_steps": 16},
    }


# -- methods -----------------------------------------------------------------

# The priors a method can fuse, by the name a cell records them under: (PriorUnion member, scored by a model,
# so that cells count its scorer queries). How each is computed is the runner's (reproduce.Seed).
# The priors explained off reference models: name -> (IG or LIME, which cross-fitted references, settings over
# config()'s ``ig_prior`` / ``lime_prior`` for this prior alone, recorded in its cells' ``prior_settings``).
REFERENCE_PRIORS = {
    "ig": ("ig", "finetuned", {}), "lime": ("lime", "finetuned", {}),
    # IG and LIME of a linear probe on the frozen encoder, cross-fitted like the fine-tuned references
    "ig_probe": ("ig", "probe", {}), "lime_probe": ("lime", "probe", {}),
    # half LIME's samples: LIME is half of CAP Hybrid's prior time with probe references (issue 28's 3 minutes)
    "lime_probe_250": ("lime", "probe", {"num_samples": 250}),
}
PRIORS = {"cap_emb": ("cap", True), "cap_llm": ("cap", True), "cap_emb_desc": ("cap", True),
          "global": ("global", True), **{n: (kind, False) for n, (kind, _, _) in REFERENCE_PRIORS.items()}}


@dataclass(frozen=True)
class Method:
    """One row of the results page: how its cells are run and how the page shows them.

    Parameters
    ----------
    name : str
        The name its cells record (``method``).
    display : str
        Its name on the page.
    group : {"required", "extra", "ablation", "anchor", "recipe", None}
        ``required``: the issue's methods, run by default; ``required`` and
        ``extra`` are the page's main rows, in the order of :data:`METHODS`;
        ``ablation``: a variant of one of them; ``anchor``: a model a user
        would try first (not explanation-guided); ``recipe``: a method of a
        later classifier recipe (its block of the page). None: not registered.
    priors : tuple of str
        Keys of :data:`PRIORS`, in the order ``PriorUnion`` fuses them; one
        prior is used as it is, several are fused.
    aggregate : {"mean", "max"}
        How several priors are fused.
    in_sample : bool
        IG and LIME priors explain the seed's own vanilla model instead of
        reference models cross-fitted over :data:`CV` folds.
    classifier : dict
        Classifier parameters over those of :func:`config` (recorded with the cell).
    select_beta : bool
        beta is chosen by :data:`CV`-fold cross-validated accuracy on the seed's
        training sample (never on the test split) among :data:`BETA_GRID`.
    against : str or None
        The method it changes one thing of (an ablation is compared with it).
    brief : str or None
        Its short name in the page's in-brief table of the CAP methods.
    costs_as : str or None
        A method with the same cost per cell, whose cells time it in the plan
        until it has run itself.
    recipe : str
        The classifier recipe, so that cells of a later recipe can be shown
        as a block of their own.
    estimator : callable or None
        ``estimator(seed, params)`` builds the model in place of the recipe's
        classifier (for a row that is not explanation-guided); it needs
        ``fit(X, y)`` and ``predict``.
    attributions : tuple of str
        The attributions whose faithfulness its cells measure (empty for a
        model that cannot explain itself).
    scored : tuple of str or None
        The model-scored priors whose queries the page counts; None: those
        of ``priors``.
    sample_free : bool
        It reads no training text, only the label space, so it gives the same
        model at every seed and setting of a data set: the grid runs it once
        (5-shot, seed 0) and the page pairs that one cell with every seed.
    """

    name: str
    display: str
    group: Optional[str] = None
    priors: tuple = ()
    aggregate: str = "mean"
    in_sample: bool = False
    classifier: dict = field(default_factory=dict)
    select_beta: bool = False
    against: Optional[str] = None
    brief: Optional[str] = None
    costs_as: Optional[str] = None
    recipe: str = "base"
    estimator: Optional[Callable] = None
    attributions: tuple = ("grad_input", "ig")
    scored: Optional[tuple] = None
    sample_free: bool = False

    @property
    def scored_priors(self):
        """The priors whose scorer queries a cell of this method records and the page counts."""
        return self.scored if self.scored is not None else tuple(p for p in self.priors if PRIORS[p][1])

    @property
    def reference_kinds(self):
        """The kinds of reference model its IG and LIME priors explain ("finetuned", "probe"), as a set."""
        return {REFERENCE_PRIORS[p][1] for p in self.priors if p in REFERENCE_PRIORS}

    @property
    def uses_scorer(self):
        """Whether one of its priors is scored by a model (a CAP or global prior), not only IG or LIME."""
        return any(PRIORS[p][1] for p in self.priors)


HYBRID = ("cap_emb", "ig", "lime")
HYBRID_PROBE = ("cap_emb", "ig_probe", "lime_probe")
HYBRID_PROBE_250 = ("cap_emb", "ig_probe", "lime_probe_250")


def _frozen_probe(s, params):
    """Frozen encoder + logistic regression, C by 3-fold CV on the training sample (an anchor)."""
    from sklearn_cap.stages import LinearProbe

    return s.classifier(**{**params, "stages": [LinearProbe(C="cv")]})


def _zero_shot(s, params):
    """Nearest label-name embedding (an anchor): the training texts give only the label space."""
    from anchors import LabelNameHead

    return s.classifier(**{**params, "stages": [LabelNameHead()]})


def _setfit(s, params):
    from anchors import SetFitClassifier

    return SetFitClassifier(random_state=s.seed)


# The anchors' classifier parameters: beta 0, the frozen features the probe recipe reads.
_ANCHOR = {"beta": 0, "head_init": "probe", "normalize_features": True, "precision": "float32"}
BETA_SWEEP = {0.0: "vanilla", 0.1: "hybrid_mean_beta0.1", 0.3: "hybrid_mean_beta0.3", 1.0: "hybrid_mean",
              3.0: "hybrid_mean_beta3"}  # CAP Hybrid mean over beta; vanilla is beta = 0, the recipe's beta is 1

_ENTRIES = [
    Method("vanilla", "vanilla", "required", classifier={"beta": 0}),
    Method("ig", "IG", "required", ("ig",)),
    Method("lime", "LIME", "required", ("lime",)),
    Method("cap_emb", "CAP (embedding)", "required", ("cap_emb",), brief="embedding"),
    Method("cap_llm", "CAP (LLM)", "required", ("cap_llm",), against="cap_emb", brief="LLM"),
    Method("hybrid_mean", "CAP Hybrid mean", "required", HYBRID, brief="Hybrid mean"),
    Method("hybrid_max", "CAP Hybrid max", "required", HYBRID, aggregate="max", brief="Hybrid max"),
    Method("global", "global (LAAT-style)", "extra", ("global",)),
    Method("hybrid_mean_global", "CAP Hybrid + global", "extra", HYBRID + ("global",), against="hybrid_mean"),
    Method("ig_insample", "IG, in-sample reference", "ablation", ("ig",), in_sample=True, against="ig"),
    Method("lime_insample", "LIME, in-sample reference", "ablation", ("lime",), in_sample=True, against="lime"),
    Method("hybrid_mean_insample", "CAP Hybrid mean, in-sample reference", "ablation", HYBRID, in_sample=True,
           against="hybrid_mean"),
    Method("cap_desc", "CAP (embedding, descriptions)", "ablation", ("cap_emb_desc",), against="cap_emb"),
    # The page has not counted scorer queries for the two IG-in-the-loss rows (their cells recorded none);
    # ``scored=()`` keeps the page as it was rendered.
    Method("hybrid_mean_ig", "CAP Hybrid mean, IG (4 steps) in the loss", "ablation", HYBRID,
           classifier={"attribution": "ig", "n_steps": 4}, against="hybrid_mean", scored=()),
    Method("hybrid_mean_sig", "CAP Hybrid mean, stochastic IG in the loss", "ablation", HYBRID,
           classifier={"attribution": "ig_stochastic"}, against="hybrid_mean_ig", scored=()),
    *(Method(m, f"CAP Hybrid mean, beta={b:g}", "ablation", HYBRID, classifier={"beta": b}, against="hybrid_mean",
             costs_as="hybrid_mean") for b, m in BETA_SWEEP.items() if m.startswith("hybrid_mean_beta")),
    Method("hybrid_mean_betacv", "CAP Hybrid mean, beta by CV on the training sample", "ablation", HYBRID,
           select_beta=True, against="hybrid_mean", costs_as="hybrid_mean"),
]
_ENTRIES += [
    Method("frozen_lr", "frozen encoder + logistic regression (C by CV)", "anchor", classifier=dict(_ANCHOR),
           estimator=_frozen_probe),
    Method("zero_shot", "zero-shot label names", "anchor", classifier=dict(_ANCHOR), estimator=_zero_shot,
           sample_free=True),
    Method("setfit", "SetFit (defaults, same MiniLM body)", "anchor", estimator=_setfit, attributions=()),
    # The LP-FT recipe's block: every method of the base block again, and the cheap probe references.
    Method("vanilla_lpft", "vanilla", "recipe", classifier={"beta": 0}, recipe="lpft"),
    Method("ig_lpft", "IG", "recipe", ("ig",), recipe="lpft", against="vanilla_lpft"),
    Method("lime_lpft", "LIME", "recipe", ("lime",), recipe="lpft", against="vanilla_lpft"),
    Method("cap_emb_lpft", "CAP (embedding)", "recipe", ("cap_emb",), brief="embedding", recipe="lpft",
           against="vanilla_lpft"),
    Method("cap_llm_lpft", "CAP (LLM)", "recipe", ("cap_llm",), brief="LLM", recipe="lpft", against="vanilla_lpft"),
    Method("hybrid_mean_lpft", "CAP Hybrid mean", "recipe", HYBRID, brief="Hybrid mean", recipe="lpft",
           against="vanilla_lpft"),
    Method("hybrid_max_lpft", "CAP Hybrid max", "recipe", HYBRID, aggregate="max", brief="Hybrid max",
           recipe="lpft", against="vanilla_lpft"),
    Method("ig_probe_lpft", "IG, probe reference", "recipe", ("ig_probe",), recipe="lpft", against="ig_lpft"),
    Method("lime_probe_lpft", "LIME, probe reference", "recipe", ("lime_probe",), recipe="lpft",
           against="lime_lpft"),
    Method("hybrid_mean_probe_lpft", "CAP Hybrid mean, probe reference", "recipe", HYBRID_PROBE,
           recipe="lpft", against="hybrid_mean_lpft"),
    Method("hybrid_max_probe_lpft", "CAP Hybrid max, probe reference", "recipe", HYBRID_PROBE, aggregate="max",
           recipe="lpft", against="hybrid_max_lpft"),
    Method("hybrid_mean_probe250_lpft", "CAP Hybrid mean, probe reference, LIME 250 samples", "recipe",
           HYBRID_PROBE_250, recipe="lpft", against="hybrid_mean_probe_lpft"),
]
METHODS = {m.name: m for m in _ENTRIES}  # name -> Method, in the page's order
REQUIRED = [n for n, m in METHODS.items() if m.group == "required"]
MAIN = [n for n, m in METHODS.items() if m.group in ("required", "extra")]
ABLATIONS = [n for n, m in METHODS.items() if m.group == "ablation"]
ANCHORS = [n for n, m in METHODS.items() if m.group == "anchor" and n != "setfit"]  # SetFit: its own tier
SAMPLE_FREE = [n for n, m in METHODS.items() if m.sample_free]  # one cell per data set stands for all
LPFT = [n for n, m in METHODS.items() if m.group == "recipe" and m.recipe == "lpft"]
LPFT_REQUIRED = [n for n in LPFT if "probe" not in n]
LPFT_GRID = [n for n in LPFT if n != "hybrid_mean_probe250_lpft"]  # every prior on each data set; 250: its own tier
# The priors' default reference is the probe (measured against fine-tuned references at 5 shots on every data set),
# so past 5 shots IG, LIME and the Hybrids run with probe references only, but on BANKING77 10-shot, which keeps
# the comparison at a second setting.
FINETUNED_REFS = [n for n in LPFT_GRID if "finetuned" in METHODS[n].reference_kinds]
LPFT_PROBE_GRID = [n for n in LPFT_GRID if n not in FINETUNED_REFS]


def method_of(name):
    """The registered method of a name, or an unregistered one that shows the name as it is."""
    return METHODS.get(name) or Method(name, name)


def name_of(name):
    """A method's (or a prior's: they share names) name on the page."""
    return method_of(name).display


def order(name):
    """Sort key of the page: the main rows in the registry's order, then every other method by name."""
    return (MAIN.index(name) if name in MAIN else len(MAIN), name)


def beta_sweep(present):
    """{beta: method} of the beta sweep: its two ends always, the variants among the methods ``present``."""
    return {b: m for b, m in BETA_SWEEP.items() if not m.startswith("hybrid_mean_beta") or m in present}


# -- the grid ------------------------------------------------------------------

# Intents and full training split of each data set (the few-shot settings draw k texts per intent), and a
# rough guess of seconds per training text for a method with no finished cell yet.
_CLASSES = {"banking77": 77, "hwu64": 64, "clinc150": 150}
_FULL = {"banking77": 10003, "hwu64": 8954, "clinc150": 15000}
_GUESS_PER_TEXT = 0.6


def _n_train(dataset, setting):
    return _FULL[dataset] if setting == "full" else int(setting.split("-")[0]) * _CLASSES[dataset]


def grid():
    """The issue's grid in order of priority: (tier, data set, setting, seed, method)."""
    tiers = [("required", [(d, "5-shot", s, m) for d in DATASETS for s in range(5) for m in REQUIRED]
              + [("banking77", "full", s, m) for s in range(3) for m in ("vanilla", "hybrid_mean")]),
             ("ablations", [("banking77", "5-shot", s, m) for s in range(3) for m in ABLATIONS]),
             # the "one more data set if cheap": one run, without the costly IG-in-the-loss rows
             ("ablations-hwu64", [("hwu64", "5-shot", s, m) for s in range(3) for m in ABLATIONS
                                  if m not in ("hybrid_mean_ig", "hybrid_mean_sig")]),
             ("10-shot", [(d, "10-shot", s, m) for d in DATASETS for s in range(5) for m in REQUIRED]),
             ("full, one seed", [(d, "full", 0, m) for d in ("hwu64", "clinc150") for m in ("vanilla", "hybrid_mean")]),
             ("extra priors", [(d, "5-shot", s, m) for d in DATASETS for s in range(5)
                               for m in ("global", "hybrid_mean_global")]),
             # issue 28: the anchors and the LP-FT recipe's vanilla first, then every prior on top of it
             ("lpft 5-shot", [(d, "5-shot", s, m) for d in DATASETS for s in range(5)
                              for m in ("frozen_lr", "vanilla_lpft")]),
             # CAP Hybrid in 3 minutes: does halving LIME's samples cost anything? (paired with the probe rows)
             ("lpft hybrid cost", [("banking77", "5-shot", s, "hybrid_mean_probe250_lpft") for s in range(3)]),
             # a sample-free method (zero-shot) once per data set: one cell stands for every seed and setting
             # (banking77's seeds 1-2 and 10-shot seed 0, run before this was noticed, agree with seed 0)
             ("lpft 5-shot priors", [(d, "5-shot", s, m) for d in DATASETS for s in range(5)
                                     for m in SAMPLE_FREE * (s == 0) + [m for m in LPFT_GRID if m != "vanilla_lpft"]]),
             ("lpft 10-shot", [(d, "10-shot", s, m) for d in DATASETS for s in range(5)
                               for m in [a for a in ANCHORS if a not in SAMPLE_FREE]
                               + (LPFT_GRID if d == "banking77" else LPFT_PROBE_GRID)]),
             ("lpft full", [("banking77", "full", s, m) for s in range(3)
                            for m in ("frozen_lr", "vanilla_lpft", "hybrid_mean_probe_lpft")]),
             ("setfit", [(d, k, s, "setfit") for k in ("5-shot", "10-shot") for d in DATASETS for s in range(5)])]
    return [(t, *g) for t, cells in tiers for g in cells]


def _key(cell):
    return cell["dataset"], cell["setting"], cell["seed"], cell["method"]


def missing(cells, tiers=None):
    """The grid's cells not yet in ``cells`` (optionally only ``tiers``), in the grid's order."""
    done = {_key(c) for c in cells}
    return [g for g in grid() if g[1:] not in done and (not tiers or g[0] in tiers)]


def next_group(cells, tiers=None):
    """The first (data set, setting, seed) of the grid with missing cells, and those cells' methods."""
    todo = missing(cells, tiers)
    if not todo:
        return None
    tier, d, st, s, _ = todo[0]
    return d, st, s, [m for t, dd, sst, ss, m in todo if (t, dd, sst, ss) == (tier, d, st, s)]


def plan(cells, budget_min=120):
    """Print the remaining grid, tier by tier, as runs of at most ``budget_min`` minutes, from measured cell times.

    A cell's estimate is its method's measured seconds per training text (same setting, any data set,
    else any setting) times its training texts; methods never run use a rough guess. On full data the
    priors are computed once and shared by the seeds, so only the first seed of a method pays for them.
    """
    by_method = defaultdict(list)
    for c in cells:
        by_method[c["method"]].append(c)
    done = {_key(c) for c in cells}
    todo = missing(cells)

    def scaled(c, n, epochs, all_priors):
        # priors scale with the training texts, training with texts x epochs, evaluation not at all; a few-shot
        # cell pays for the priors its seed has not computed yet (cell time), a first full-data cell for all
        sec = c["seconds"]
        priors = sec["priors"] if all_priors else sec["cell"] - sec["train"] - sec["evaluate"]
        return (priors * n / c["n_train"] + sec["evaluate"]
                + sec["train"] * n * epochs / (c["n_train"] * c["config"]["classifier"]["epochs"]))

    def estimate(d, st, s, m):
        n, epochs = _n_train(d, st), SETTINGS[st][1]
        if st == "full" and m != "vanilla" and ((d, st, 0, m) in done
                                                or any(k[1:3] == (d, st) and k[4] == m and k[3] < s for k in todo)):
            m = "vanilla"  # priors shared by the seeds: training only
        like = method_of(m).costs_as
        base = like if like and not by_method[m] else m
        refs = [c for c in by_method[base] if c["setting"] == st] or by_method[base]
        if not refs:
            return _GUESS_PER_TEXT * n
        # a beta chosen by CV never run yet: its base's cell plus the search's fits (candidates x folds on 2/3)
        search = len(BETA_GRID) * CV * 2 / 3 if method_of(m).select_beta and base != m else 0
        return np.median([scaled(c, n, epochs, st == "full")
                          + search * c["seconds"]["train"] * n * epochs / (c["n_train"] * c["config"]["classifier"]["epochs"])
                          for c in refs])

    print(f"{len(done)} cells done, {len(todo)} to go in the issue's grid, "
          f"~{sum(estimate(*g[1:]) for g in todo) / 3600:.1f} h; by tier, in order of priority, in runs of at most "
          f"{budget_min} min (a longer cell is resumable: its cross-fitted priors are kept in parts):")
    for tier in dict.fromkeys(g[0] for g in todo):
        runs, current, used = [], [], 0.0
        for _, d, st, s, m in (g for g in todo if g[0] == tier):
            est = estimate(d, st, s, m)
            if current and used + est > budget_min * 60:
                runs.append((current, used))
                current, used = [], 0.0
            current.append((d, st, s, m))
            used += est
        if current:
            runs.append((current, used))
        print(f"{tier}: {sum(len(c) for c, _ in runs)} cells, ~{sum(u for _, u in runs) / 3600:.1f} h")
        for i, (cs, secs) in enumerate(runs, 1):
            keys = list(dict.fromkeys((d, st) for d, st, _, _ in cs))
            print(f"  run {i}: {len(cs)} cells, ~{secs / 60:.0f} min: "
                  + "; ".join(f"{d} {st} seeds {sorted({s for dd, ss, s, _ in cs if (dd, ss) == (d, st)})} "
                              f"{sorted({m for dd, ss, _, m in cs if (dd, ss) == (d, st)})}" for d, st in keys))


# -- cells -------------------------------------------------------------------

def load_cells(path=CELLS):
    """The records of a cells file (one JSON object a line), or [] when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_costs(path=COSTS):
    """The re-timed priors of ``benchmarks/bench_prior_cost.py`` (one JSON object a line, like the cells)."""
    return load_cells(path)


def done(path=CELLS):
    """The (data set, setting, seed, method) of every finished cell."""
    return {_key(c) for c in load_cells(path)}


def append(record, path=CELLS):
    """Append a finished cell (or a re-timed prior) as one line, so a killed run loses only the cell in flight."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def pack(bits):
    """Per-text correctness as base64 of the packed bits (a cell's ``correct``)."""
    return base64.b64encode(np.packbits(np.asarray(bits, dtype=bool)).tobytes()).decode("ascii")


def unpack(text, n):
    """The ``n`` booleans :func:`pack` stored."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)
