"""The experiment registry: one entry per method, and a runner and a renderer that do not import each other."""

import ast
import doctest
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import registry  # noqa: E402


@pytest.mark.parametrize("module, other", [("reproduce", "results_doc"), ("results_doc", "reproduce")])
def test_runner_and_renderer_do_not_import_each_other(module, other):
    # nowhere in the source, not even inside a function ...
    tree = ast.parse((BENCHMARKS / f"{module}.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {other, f"benchmarks.{other}"} & names and "registry" in names
    # ... and not through anything they import, both as scripts see them and as ``import benchmarks.<module>``
    for stmt in (f"sys.path.insert(0, {str(BENCHMARKS)!r}); import {module}", f"import benchmarks.{module}"):
        code = f"import sys; {stmt}; print(sorted(m for m in sys.modules if m.endswith({other!r})))"
        out = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS.parent, capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "[]", out


def test_each_method_is_one_consistent_entry():
    methods = registry.METHODS
    assert registry.MAIN == [n for n, m in methods.items() if m.group in ("required", "extra")]
    assert set(registry.REQUIRED) <= set(registry.MAIN) and not set(registry.ABLATIONS) & set(registry.MAIN)
    for name, m in methods.items():
        assert m.name == name and registry.name_of(name) == m.display
        assert set(m.priors) <= set(registry.PRIORS), name
        assert all(ref is None or ref in methods for ref in (m.against, m.costs_as)), name
        assert m.group in ("required", "extra", "ablation", "anchor", "recipe")
        assert m.recipe == "base" or m.recipe in registry.RECIPES or m.estimator is not None, name
    # no two rows look alike on the page: within a recipe's block, every display name is its own
    assert len({(m.recipe, m.display) for m in methods.values()}) == len(methods)
    for beta, name in registry.BETA_SWEEP.items():  # the sweep's betas are the ones its entries train with
        assert methods[name].classifier.get("beta", 1.0) == beta
    # every method of the grid is registered, and the grid asks for no cell twice
    grid = registry.grid()
    assert {g[4] for g in grid} <= set(methods) and len({g[1:] for g in grid}) == len(grid)
    # an unregistered name is shown as it is and compared with nothing
    assert registry.name_of("no_such_method") == "no_such_method" and registry.method_of("x").against is None
    assert registry.order("vanilla") < registry.order("hybrid_mean_global") < registry.order("cap_desc")


def test_past_five_shots_fine_tuned_references_run_on_banking77_10_shot_only():
    grid = registry.grid()
    finetuned = {(d, st) for _, d, st, _, m in grid if st != "5-shot" and m in registry.FINETUNED_REFS
                 and registry.METHODS[m].recipe == "lpft"}
    assert finetuned == {("banking77", "10-shot")}
    assert set(registry.FINETUNED_REFS) == {"ig_lpft", "lime_lpft", "hybrid_mean_lpft", "hybrid_max_lpft"}
    # every prior still runs everywhere, with the probe reference (the priors' default)
    for d in registry.DATASETS:
        ten = {m for _, dd, st, _, m in grid if (dd, st) == (d, "10-shot")}
        assert set(registry.LPFT_PROBE_GRID) <= ten, d
    full = {m for _, d, st, _, m in grid if st == "full" and registry.METHODS[m].recipe == "lpft"}
    assert full == {"vanilla_lpft", "hybrid_mean_probe_lpft"}


def test_a_registered_beta_sweep_keeps_its_ends():
    assert registry.beta_sweep({"vanilla", "hybrid_mean"}) == {0.0: "vanilla", 1.0: "hybrid_mean"}
    sweep = registry.beta_sweep({"hybrid_mean_beta3", "hybrid_mean_betacv"})
    assert sweep == {0.0: "vanilla", 1.0: "hybrid_mean", 3.0: "hybrid_mean_beta3"}


def test_cells_are_appended_and_read_back(tmp_path):
    path = tmp_path / "results" / "cells.jsonl"
    assert registry.load_cells(path) == []
    bits = [True, False, True, True, False, False, True, False, True]
    for seed in range(2):
        registry.append({"dataset": "banking77", "setting": "5-shot", "seed": seed, "method": "vanilla",
                         "correct": {"test": registry.pack(bits)}}, path)
    cells = registry.load_cells(path)
    assert [c["seed"] for c in cells] == [0, 1] and registry.done(path) == {("banking77", "5-shot", 0, "vanilla"),
                                                                            ("banking77", "5-shot", 1, "vanilla")}
    assert registry.unpack(cells[1]["correct"]["test"], len(bits)).tolist() == bits


def test_registry_docstring_example():
    assert doctest.testmod(registry).failed == 0
