"""Re-measure one cell's model-scored prior from an empty score cache.

A cell of ``reproduce.py`` records the seconds its prior's run took. A run
that found part of its scores in a cache (a resumed extraction, or, before
each seed had a cache of its own, scores left by another setting) measured
less than the prior costs. This recomputes the prior of one (data set,
setting, seed) in a temporary folder, so nothing is cached, and prints the
seconds next to those the cell recorded, with their ratio from this one run,
and whether the priors are the same. The measurement is appended to
``benchmarks/results/prior_costs.jsonl``, which the results page reads
(*Re-timed priors*).

Run (one torch job at a time)::

    python benchmarks/bench_prior_cost.py --dataset banking77 --setting 5-shot --seed 0 --prior cap_llm
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry  # noqa: E402
import reproduce  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="banking77")
    p.add_argument("--setting", default="5-shot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", choices=["cap_emb", "cap_llm"], default="cap_llm")
    p.add_argument("--data-home", default=None)
    args = p.parse_args(argv)

    import torch

    from sklearn_cap.cache import get_cache_dir

    torch.set_num_threads(os.cpu_count() or 1)
    data = reproduce.load(args.dataset, args.data_home)
    recorded = [c for c in registry.load_cells()
                if (c["dataset"], c["setting"], c["seed"], c["method"]) ==
                (args.dataset, args.setting, args.seed, args.prior)]
    with tempfile.TemporaryDirectory() as tmp:
        s = reproduce.Seed(args.dataset, args.setting, args.seed, data, Path(tmp))
        t = time.perf_counter()
        values, _ = s.cap(args.prior.split("_")[1])
        fresh = time.perf_counter() - t
        kept = get_cache_dir() / "experiments" / s.dir.relative_to(tmp) / f"{args.prior}.npz"
    print(f"{args.dataset} {args.setting} seed {args.seed} {args.prior}: {s.queries[args.prior]} queries, "
          f"{s.scored[args.prior]} scored from an empty cache in {fresh:.0f} s "
          f"({s.scored[args.prior] / fresh:.1f} queries/s)")
    for c in recorded:
        rec = c["seconds"]["priors"]
        print(f"  the cell ({c['finished']}, commit {c['commit']}) recorded {rec:.0f} s for its priors: "
              f"{rec / fresh:.2f}x this run; it scored {c.get('prior_scored', {}).get(args.prior, 'an unrecorded number')}"
              f" of {c.get('prior_queries', {}).get(args.prior, 'its')} queries")
    record = {"dataset": args.dataset, "setting": args.setting, "seed": args.seed, "prior": args.prior,
              "seconds": fresh, "queries": s.queries[args.prior], "scored": s.scored[args.prior],
              "machine": reproduce.machine(),
              "commit": reproduce._commit(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    registry.append(record, registry.COSTS)
    if kept.exists():
        old = np.load(kept)["values"]
        same = np.allclose(np.nan_to_num(old, nan=7.0), np.nan_to_num(values, nan=7.0), atol=1e-6)
        print(f"  priors equal to the experiment's kept ones: {same}")


if __name__ == "__main__":
    main()
