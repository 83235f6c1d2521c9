"""The report generator of doc/results.rst: paired differences, intervals, and settings read from cells."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from registry import grid, plan  # noqa: E402
from results_doc import (brief_lines, cost_seconds, new_block_lines, new_pairs, paired, t_interval,  # noqa: E402
                         verdict, write_doc)


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
    assert ("CPUs the cells ran on: A = AMD EPYC (bfloat16: avx512_bf16): 1 cells; ? = not recorded: 9 cells."
            in " ".join(text.split()))
    assert "3*" in text  # the cost column of the faithfulness table marks the unverified median


# Issue 28's first block: the anchors and the LP-FT recipe, each seed paired with the same seed's cells.
BASE = {"learning_rate": 1e-4}
LPFT = {"learning_rate": 3e-5, "head_learning_rate": 3e-4, "head_init": "probe", "normalize_features": True}


def _recipe_cell(method, seed, acc, classifier, probe=None):
    cell = _cell(method, seed, acc, epochs=8 if classifier is LPFT else 15)
    cell["config"]["classifier"].update(classifier)
    if probe is not None:
        cell["probe"] = probe
    return cell


def _recipe_cells():
    """vanilla (base), vanilla_lpft, frozen_lr and cap_emb_lpft over seeds 0-2, with known per-seed differences."""
    cells = [_recipe_cell("vanilla", s, 0.70 + 0.01 * s, BASE) for s in range(3)]
    cells += [_recipe_cell("frozen_lr", s, 0.78, {**BASE, "head_init": "probe"},
                           probe={"C": [10.0, 1.0, 10.0][s], "train_accuracy": 1.0,
                                  "cv_accuracy": {"1": 0.70 + 0.01 * s, "10": 0.75 + 0.01 * s}}) for s in range(3)]
    # vanilla_lpft - frozen_lr: 0.02, 0.03, 0.04 (mean 0.03, sd 0.01: t(0.975, 2) * 0.01 / sqrt 3 = 0.0248)
    probe = {"C": 10.0, "train_accuracy": 1.0, "cv_accuracy": {}}
    cells += [_recipe_cell("vanilla_lpft", s, 0.80 + 0.01 * s, LPFT, probe) for s in range(3)]
    # cap_emb_lpft - vanilla_lpft: -0.020, -0.021, -0.022 (a loss: [-0.023, -0.019])
    cells += [_recipe_cell("cap_emb_lpft", s, 0.78 + 0.01 * s - 0.001 * s, LPFT, probe) for s in range(3)]
    return cells


def test_first_block_pairs_the_new_vanilla_against_the_anchor_and_the_base_vanilla(tmp_path):
    cells = _recipe_cells()
    assert np.allclose(paired(cells, "vanilla_lpft", "test", "frozen_lr"), [0.02, 0.03, 0.04])
    out = tmp_path / "results.rst"
    write_doc(cells, out)
    text = out.read_text()
    first = text.index("Accurate first: the LP-FT recipe and the anchors")
    assert first < text.index("\nSummary\n")  # near the top, before the base recipe's summary
    head = next(line for line in text.splitlines() if line.startswith("banking77, 5-shot  0.8"))
    # vanilla (LP-FT) 0.810 ± 0.010 over 3 seeds; minus frozen_lr; minus the base vanilla (0.100 on every seed)
    assert head.split("  ")[1].strip() == "0.810 ± 0.010 (3)"
    assert "+0.030 [+0.005, +0.055] win (3 seeds)" in head
    assert "+0.100 [+0.100, +0.100] win (3 seeds)" in head
    rows = [" ".join(line.split()) for line in text.splitlines()]
    assert any(r.startswith("vanilla (LP-FT) frozen encoder + logistic regression (C by CV) +0.030 [+0.005, +0.055] "
                            "win +0.030 [+0.005, +0.055] win") for r in rows)  # clean, kw. addition: row - against
    loss = next(r for r in rows if r.startswith("CAP (embedding) (LP-FT) vanilla (LP-FT)"))
    assert "-0.021 [-0.023, -0.019] loss" in loss  # against its registry ``against``, reported as losing
    assert ("* banking77, 5-shot, CAP (embedding) (LP-FT) against vanilla (LP-FT): loss on clean "
            "(-0.021, 95% CI [-0.023, -0.019], 3 seeds)") in text
    # the base recipe's sections keep their own rows, paired against the base vanilla only
    base = text[text.index("\nbanking77, 5-shot\n-"):]
    assert "LP-FT" not in base and "frozen encoder" not in base


def test_first_block_reads_recipe_settings_and_probe_C_from_the_cells(tmp_path):
    out = tmp_path / "results.rst"
    write_doc(_recipe_cells(), out)
    rows = [" ".join(line.split()) for line in out.read_text().splitlines()]
    assert "``learning_rate`` ``0.0001`` ``3e-05``" in rows  # base recipe column, LP-FT column
    assert "``head_init`` not recorded ``\"probe\"``" in rows  # the base cells did not record it
    assert "``epochs`` ``15`` ``8``" in rows and "probe ``C`` not recorded ``10.0``" in rows
    probe = next(r for r in rows if r.startswith("* frozen encoder + logistic regression"))
    assert "among 1, 10" in probe and "seed 0: 10 (0.750); seed 1: 1 (0.710); seed 2: 10 (0.770)." in probe
    assert "* vanilla (LP-FT); CAP (embedding) (LP-FT): probe C = 10 (seeds 0, 1, 2)." in rows
    base = " ".join(rows)
    base = base[base.index("The base recipe: this summary"):base.index("Differences to vanilla")]
    assert "the 3 cells of the base recipe" in base and "``learning_rate``: ``0.0001``" in base
    cells = _recipe_cells()
    for c in cells:  # a setting is read from the cells, never written as prose
        c["config"]["classifier"]["learning_rate"] *= 2
    write_doc(cells, out)
    assert "``learning_rate`` ``0.0002`` ``6e-05``" in [" ".join(line.split()) for line in out.read_text().splitlines()]


def test_first_block_absent_without_its_cells(tmp_path):
    cells = [c for c in _recipe_cells() if c["method"] == "vanilla"]
    assert new_block_lines([(("banking77", "5-shot"), cells)]) == []
    out = tmp_path / "results.rst"
    write_doc(cells, out)
    text = out.read_text()
    for word in ("Accurate first", "LP-FT", "base recipe", "anchor"):
        assert word not in text


def test_base_sections_unchanged_by_new_cells(tmp_path):
    import difflib

    old = [c for c in _recipe_cells() if c["method"] == "vanilla"]
    old += [_recipe_cell("cap_emb", s, 0.72 + 0.01 * s, BASE) for s in range(3)]
    without, with_new = tmp_path / "without.rst", tmp_path / "with.rst"
    write_doc(old, without)
    write_doc(old + [c for c in _recipe_cells() if c["method"] != "vanilla"], with_new)
    a, b = without.read_text().splitlines(), with_new.read_text().splitlines()
    changed = [(op, a[i1:i2]) for op, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
               if op != "equal"]
    # new sections are inserted; the only base lines that change count the cells or say where intervals are
    assert any(op == "insert" for op, _ in changed)
    for op, lines in changed:
        assert op == "insert" or all(line.startswith(("Cells:", "on ", "Differences to vanilla")) for line in lines)


def test_first_block_page_is_valid_rst(tmp_path):
    import docutils.core

    out = tmp_path / "results.rst"
    write_doc(_recipe_cells() + [_recipe_cell("cap_emb", s, 0.72, BASE) for s in range(3)], out)
    # a warning (a malformed table or heading) raises
    docutils.core.publish_doctree(out.read_text(), settings_overrides={"halt_level": 2, "report_stream": False})


def _overlap_line(dataset, seed, source, display, overlap, k=5, lam=0.1):
    config = {"logodds": {"alpha0": 1000.0}} if source == "logodds" else {"cap": {"lam": lam, "n_samples": 100}}
    return {"dataset": dataset, "setting": "5-shot", "seed": seed, "source": source, "display": display, "k": k,
            "min_count": 1, "n_train": 385, "n_classes": 77, "mean_overlap": overlap,
            "classes": {"a": {"partner": "b", "overlap": overlap, "words": ["card"]}},
            "top_words": f"top words of {source}", "partners_from": "the full training split", "config": config,
            "seconds": {"prior": 1.0, "wall": 1.0}, "machine": {"cpus": 2, "cpu": "Test CPU", "bf16_matmul": "none"}}


def test_homogenisation_section_is_read_from_its_lines(tmp_path):
    import json

    from registry import load_cells
    from results_doc import homogenisation_lines

    lines = [_overlap_line("banking77", s, "cap_emb", "CAP (embedding)", o) for s, o in [(0, 0.2), (1, 0.4)]]
    lines += [_overlap_line("hwu64", 0, "cap_emb", "CAP (embedding)", 0.1),
              _overlap_line("banking77", 0, "logodds", "log-odds keywords (no prior)", 0.05),
              _overlap_line("banking77", 0, "logodds", "log-odds keywords (no prior)", 0.5, k=10)]
    path = tmp_path / "homogenisation.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "results.rst"
    cells = [_cell("vanilla", 0, 0.8)]
    write_doc(cells, out, homogenisation=load_cells(path))
    text = out.read_text()
    assert "Shared top words of confusable classes" in text and "(5 lines)" in text
    table5 = text[text.index("5-shot, top 5 words"):text.index("5-shot, top 10 words")]
    rows = [r for r in table5.splitlines() if r.startswith(("log-odds", "CAP"))]
    # the reference row first; a cell is the mean over seeds, the sd over seeds and the number of seeds
    assert rows[0].split()[:5] == ["log-odds", "keywords", "(no", "prior)", "0.050"]
    assert rows[0].rstrip().endswith("–")  # no hwu64 line of the reference
    assert "0.300 ± 0.141 (2)" in rows[1] and "0.100 (1)" in rows[1]
    assert table5.index("banking77") < table5.index("hwu64")  # data sets in the registry's order
    assert "classes: banking77 77, hwu64 77" in table5
    assert "0.500 (1)" in text[text.index("5-shot, top 10 words"):]
    assert "``cap.lam`` = 0.1" in text and '``partners_from`` = "the full training split"' in text
    assert "Test CPU (bfloat16: none): 5 lines" in text
    # settings come from the lines: another lam is shown as recorded, both where they differ
    lines[1]["config"]["cap"]["lam"] = 0.5
    write_doc(cells, out, homogenisation=lines)
    assert "``cap.lam`` = 0.1, 0.5" in out.read_text()
    # no lines (the file absent): no section
    write_doc(cells, out)
    assert "Shared top words" not in out.read_text()
    assert homogenisation_lines(load_cells(tmp_path / "absent.jsonl")) == []


def test_homogenisation_pairs_each_source_with_cap_by_seed(tmp_path):
    from results_doc import homogenisation_lines, t_interval

    cap = [0.20, 0.25, 0.30]
    ig = [0.26, 0.29, 0.38]  # IG shares more top words than CAP on every seed
    lines = [_overlap_line("banking77", s, "cap_emb", "CAP (embedding)", o) for s, o in enumerate(cap)]
    lines += [_overlap_line("banking77", s, "ig_probe", "IG, probe reference", o) for s, o in enumerate(ig)]
    lines += [_overlap_line("banking77", 0, "logodds", "log-odds keywords (no prior)", 0.05)]
    text = "\n".join(homogenisation_lines(lines))
    paired = text[text.index("minus CAP (embedding)'s, paired by seed"):text.index("Settings read")]
    mean, lo, hi = t_interval(np.subtract(ig, cap))
    ig_row = next(r for r in paired.splitlines() if r.startswith("IG, probe reference"))
    assert f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}] (3)" in ig_row and lo > 0
    # one seed of the reference row beside CAP's: a mean, no interval
    assert "-0.150 (1 seed, no CI)" in next(r for r in paired.splitlines() if r.startswith("log-odds"))
    assert not any(r.startswith("CAP (embedding)") for r in paired.splitlines())  # the reference has no row
    # without a CAP source there is nothing to pair against
    assert "paired by seed" not in "\n".join(homogenisation_lines([x for x in lines if x["source"] != "cap_emb"]))


def test_first_block_cost_rows_name_the_cpus_their_seconds_came_from(tmp_path):
    cells = _recipe_cells()
    fast = {"cpus": 2, "cpu": "Intel Xeon", "bf16_matmul": "amx"}
    slow = {"cpus": 2, "cpu": "AMD EPYC", "bf16_matmul": "none"}
    for c in cells:
        c["machine"] = dict(slow if c["method"] == "cap_emb_lpft" and c["seed"] > 0 else fast)
    cells[-1]["machine"]["matmul_gflops"], cells[-2]["machine"]["matmul_gflops"] = 40.2, 31.0  # two measured speeds
    out = tmp_path / "results.rst"
    write_doc(cells, out)
    rows = [" ".join(line.split()) for line in out.read_text().splitlines()]
    # keys in name order: A = AMD EPYC, B = Intel Xeon; the header defines them, each cost row counts its cells
    assert any("A = AMD EPYC (bfloat16: none): 2 cells (2 of them measured float32 matrix products at 31-40 GFLOP/s); "
               "B = Intel Xeon (bfloat16: amx): 10 cells." in r for r in rows)
    cost = [r for r in rows if r.startswith("CAP (embedding) (LP-FT) –")]  # the faithfulness and cost table's row
    assert len(cost) == 1 and cost[0].endswith("A 2, B 1")
    assert any(r.startswith("vanilla (LP-FT) –") and r.endswith("B 3") for r in rows)


def test_a_probe_reference_row_is_paired_with_its_fine_tuned_row_and_with_the_vanilla():
    pairs = [(r, b) for r, b, _ in new_pairs({"vanilla_lpft", "ig_lpft", "ig_probe_lpft", "frozen_lr"})]
    assert pairs == [("vanilla_lpft", "frozen_lr"), ("ig_lpft", "vanilla_lpft"), ("ig_probe_lpft", "ig_lpft"),
                     ("ig_probe_lpft", "vanilla_lpft")]
    # without the fine-tuned row the probe row still meets the vanilla; an anchor is never a row of its own
    assert [(r, b) for r, b, _ in new_pairs({"vanilla_lpft", "ig_probe_lpft"})] == [("ig_probe_lpft", "vanilla_lpft")]


def test_a_sample_free_anchor_runs_once_and_is_paired_with_every_seed(tmp_path):
    # zero-shot reads only the label names: the grid runs it once per data set, at 5-shot seed 0
    zero = [g for g in grid() if g[-1] == "zero_shot"]
    assert sorted((d, st, s) for _, d, st, s, _ in zero) == [(d, "5-shot", 0) for d in ("banking77", "clinc150",
                                                                                         "hwu64")]
    cells = _recipe_cells() + [_recipe_cell("zero_shot", 0, 0.60, {**BASE, "head_init": "probe"})]
    # its one cell meets each of the three vanilla seeds (0.80, 0.81, 0.82); an anchor with one cell would not
    assert np.allclose(paired(cells, "vanilla_lpft", "test", "zero_shot"), [0.20, 0.21, 0.22])
    assert np.allclose(paired(cells[:-1] + [_recipe_cell("frozen_lr", 9, 0.6, BASE)], "vanilla_lpft", "test",
                              "frozen_lr"), [0.02, 0.03, 0.04])
    # and stands in for itself at 10 shots, where only the vanilla ran; the page says which cell it read
    ten = [{**c, "setting": "10-shot", "n_train": 770, "metrics": {**c["metrics"], "test": c["metrics"]["test"] + 0.05}}
           for c in cells if c["method"] == "vanilla_lpft"]
    out = tmp_path / "results.rst"
    write_doc(cells + ten, out)
    text = out.read_text()
    head = next(line for line in text.splitlines() if line.startswith("banking77, 10-shot  0.8"))
    assert "+0.260 [+0.235, +0.285] win (3 seeds)" in head
    tail = text[text.index("banking77, 10-shot: anchors"):]
    assert "its cell of seed 0, run at 5-shot, is paired with every seed" in tail
    # a second cell is said to agree only when its figures do
    twin = _recipe_cell("zero_shot", 1, 0.60 + 1e-9, {**BASE, "head_init": "probe"})  # another CPU's float noise
    write_doc(cells + [twin], out)
    assert "(the cells of seeds 1 agree with it to 1e-6)" in out.read_text()
    write_doc(cells + [_recipe_cell("zero_shot", 1, 0.61, {**BASE, "head_init": "probe"})], out)
    assert "(the cells of seeds 1 differ)" in out.read_text()
    assert "training texts per seed: 770;" in tail.split("\n\n")[1]  # the copy adds no sample size of its own
