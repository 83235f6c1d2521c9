"""The report generator of doc/results.rst: paired differences, intervals, and settings read from cells."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from registry import grid, plan  # noqa: E402
from results_doc import brief_lines, cost_seconds, paired, t_interval, verdict, write_doc  # noqa: E402


def _cell(method, seed, acc, **cfg):
    return {"dataset": "banking77", "setting": "5-shot", "seed": seed, "method": method, "n_train": 385,
            "n_classes": 77, "n_test": 3080, "set_sizes": {"adv_addition": 3080},
            "metrics": {"test": acc, "adv_addition": acc - 0.1},
            "seconds": {"priors": 1.0, "train": 2.0, "evaluate": 1.0, "cell": 4.0},
            "config": {"classifier": {"epochs": cfg.get("epochs", 15)}}, "machine": {"cpus": 2}}


def test_paired_differences_and_interval():
    cells = [_cell("vanilla", s, 0.80 + 0.01 * s) for s in range(5)]
    cells += [_cell("cap_emb", s, 0.82 + 0.01 * s + 0.001 * (s % 2)) for s in range(5)]
    d = paired(cells, "cap_emb", "test")
    assert np.allclose(d, [0.02, 0.021, 0.02, 0.021, 0.02])
    m, lo, hi = t_interval(d)
    assert lo < m < hi and lo > 0 and verdict(lo, hi) == "win"
    assert verdict(-0.01, 0.02) == "" and verdict(-0.03, -0.01) == "loss"
    assert np.isnan(t_interval(d[:1])[1]) and np.isnan(t_interval(d[:2])[1])


def test_doc_reads_settings_from_the_cells(tmp_path):
    cells = [_cell("vanilla", s, 0.8, epochs=15) for s in range(2)] + [_cell("cap_emb", 0, 0.7, epochs=15)]
    out = tmp_path / "results.rst"
    write_doc(cells, out)
    text = out.read_text()
    assert "``classifier.epochs`` = 15" in text and "banking77, 5-shot" in text
    write_doc([_cell("vanilla", 0, 0.8, epochs=7)], out)
    assert "``classifier.epochs`` = 7" in out.read_text()


def test_ablations_against_their_own_baseline_and_beta_plot(tmp_path):
    cells = [_cell("vanilla", s, 0.80) for s in range(3)]
    cells += [_cell("hybrid_mean", s, 0.82 + 0.001 * s) for s in range(3)]
    cells += [_cell("hybrid_mean_ig", s, 0.83 + 0.001 * s) for s in range(3)]
    for beta, acc in [("0.1", 0.81), ("0.3", 0.815), ("3", 0.79)]:
        cells += [_cell(f"hybrid_mean_beta{beta}", s, acc + 0.002 * s) for s in range(3)]
    d = paired(cells, "hybrid_mean_ig", "test", baseline="hybrid_mean")
    assert np.allclose(d, 0.01)  # against the configuration it changes, not against vanilla
    out = tmp_path / "results.rst"
    write_doc(cells, out)
    text = out.read_text()
    assert "Ablations" in text and "CAP Hybrid mean, IG (4 steps) in the loss" in text
    assert ".. image:: beta_banking77_5-shot.png" in text
    assert "over the seeds that ran every beta (0, 1, 2)" in text
    cells += [_cell(m, 3, 0.9) for m in ("vanilla", "hybrid_mean")]  # a seed without the sweep stays out
    write_doc(cells, out)
    assert "over the seeds that ran every beta (0, 1, 2)" in out.read_text()
    assert (tmp_path / "beta_banking77_5-shot.png").stat().st_size > 1000


def test_cost_counts_the_reused_vanilla_model_and_the_beta_search():
    cells = [_cell("vanilla", s, 0.80) for s in range(2)]
    cells[1]["seconds"]["train"] = 50.0
    insample = _cell("ig_insample", 1, 0.81)
    searched = _cell("hybrid_mean_betacv", 0, 0.81)
    searched["config"]["beta_selection"] = {"chosen": 0.0, "seconds": 100.0}
    group = cells + [insample, searched]
    assert cost_seconds(cells[0], group) == 3.0  # priors 1 + training 2
    assert cost_seconds(insample, group) == 3.0 + 50.0  # the vanilla model of its own seed
    assert cost_seconds(searched, group) == 3.0 + 100.0
    orphan = _cell("ig_insample", 4, 0.81)  # its seed's vanilla cell is missing: unknown, not free
    assert np.isnan(cost_seconds(orphan, group + [orphan]))
    resumed = _cell("cap_emb", 0, 0.81)  # its prior's timed run found 90 of 100 scores in the cache
    resumed["prior_queries"], resumed["prior_scored"] = {"cap_emb": 100}, {"cap_emb": 10}
    assert np.isnan(cost_seconds(resumed, group))
    resumed["prior_scored"] = {"cap_emb": 100}  # scored from an empty cache
    assert cost_seconds(resumed, group) == 3.0


def test_brief_counts_wins_and_losses_of_the_cap_methods():
    cells = [_cell("vanilla", s, 0.80 + 0.01 * s) for s in range(5)]
    cells += [_cell("cap_emb", s, 0.82 + 0.01 * s + 0.001 * (s % 2)) for s in range(5)]  # clean and kw. win
    cells += [_cell("hybrid_mean", s, 0.78 + 0.01 * s + 0.001 * (s % 2)) for s in range(5)]  # both lose
    cells += [_cell("ig", s, 0.90) for s in range(5)]  # not a CAP method: not counted against vanilla
    row = next(line for line in brief_lines([(("banking77", "5-shot"), cells)]) if line.startswith("banking77"))
    assert "embedding, Hybrid mean" in row
    assert "1 win, 1 loss of 2" in row  # clean accuracy
    assert row.count("1 win, 1 loss of 2") == 2  # and the keyword sets (only kw. addition is in these cells)
    assert "none of 0" not in row and "– (no CI)" in row  # no faithfulness metrics in these cells
    assert "1.0–1.0x" in row
    assert row.split()[2] == "5"  # every method ran the same five seeds


def test_brief_shows_a_seed_range_while_a_tier_is_being_run():
    cells = [_cell("vanilla", s, 0.80) for s in range(5)] + [_cell("cap_emb", s, 0.81) for s in range(4)]
    row = next(line for line in brief_lines([(("banking77", "5-shot"), cells)]) if line.startswith("banking77"))
    assert row.split()[2] == "4–5"


def test_plan_puts_the_required_grid_first_and_skips_done_cells(capsys):
    from registry import REQUIRED

    tiers = [g[0] for g in grid()]
    assert tiers.index("ablations") == sum(t == "required" for t in tiers)  # the grid comes first
    required = {g[1:] for g in grid() if g[0] == "required"}
    for d in ("banking77", "hwu64", "clinc150"):
        assert {(d, "5-shot", s, m) for s in range(5) for m in REQUIRED} <= required
    assert {("banking77", "full", s, m) for s in range(3) for m in ("vanilla", "hybrid_mean")} <= required
    plan([_cell("vanilla", 0, 0.8), _cell("cap_emb", 0, 0.8)])
    out = capsys.readouterr().out
    assert out.startswith("2 cells done") and f"required: {len(required) - 2} cells" in out


def test_next_runs_one_seed_of_the_first_unfinished_tier():
    from registry import REQUIRED, next_group

    cells = [_cell(m, 0, 0.8) for m in REQUIRED[:3]]
    assert next_group(cells) == ("banking77", "5-shot", 0, REQUIRED[3:])  # the extra priors' tier waits
    d, st, s, methods = next_group(cells, ["ablations"])
    assert (d, st, s) == ("banking77", "5-shot", 0) and "hybrid_mean_betacv" in methods and "vanilla" not in methods
    assert next_group([_cell(m, 0, 0.8) for m in REQUIRED], ["required"])[:3] == ("banking77", "5-shot", 1)


def test_costs_of_unrecorded_cache_use_are_marked_and_retimed_priors_listed(tmp_path):
    cells = [_cell("vanilla", s, 0.80 + 0.01 * s) for s in range(5)]
    cells += [_cell("cap_emb", s, 0.82 + 0.01 * s) for s in range(5)]
    row = lambda: next(line for line in brief_lines([(("banking77", "5-shot"), cells)])  # noqa: E731
                       if line.startswith("banking77"))
    assert row().rstrip().endswith("1.0x*")  # the cells do not say how many scores their cache supplied
    for c in cells[5:]:
        c["prior_queries"], c["prior_scored"] = {"cap_emb": 100}, {"cap_emb": 100}
    assert row().rstrip().endswith("1.0x")
    cells[5]["prior_scored"] = {}
    out = tmp_path / "results.rst"
    retimed = {"dataset": "banking77", "setting": "5-shot", "seed": 0, "prior": "cap_emb", "seconds": 4.0,
               "queries": 100, "scored": 100, "finished": "2026-12-01T00:00:00Z",
               "machine": {"cpus": 2, "cpu": "AMD EPYC", "bf16_matmul": "avx512_bf16"}}
    cells[9]["machine"] = dict(retimed["machine"])
    write_doc(cells, out, costs=[retimed])
    text = out.read_text()
    line = next(t for t in text.splitlines() if t.startswith("banking77, 5-shot  0"))
    assert "Re-timed priors" in text and "CAP (embedding)" in line and "0.25" in line
    # verified "no", and the re-time's CPU beside the cell's (which did not record one)
    assert " ".join(line.split()).endswith("no AMD EPYC (bfloat16: avx512_bf16) / not recorded")
    assert ("CPUs the cells ran on: AMD EPYC (bfloat16: avx512_bf16): 1 cells; not recorded: 9 cells."
            in " ".join(text.split()))
    assert "3*" in text  # the cost column of the faithfulness table marks the unverified median
