"""Write the stored keyword-addition and keyword-replacement test sets of the experiments.

For each data set, from its full training split and with no model or prior:

- class keywords by the weighted log-odds ratio with an informative Dirichlet
  prior, class against the rest (:func:`sklearn_cap.keywords.logodds_keywords`,
  10 per class, each seen at least twice in the class);
- each class's confusable partner: the class with the closest word-frequency
  profile (:func:`sklearn_cap.keywords.confusable_partners`);
- the whole test split edited once with a fixed seed
  (:func:`sklearn_cap.adversarial.make_adversarial`): *addition* inserts the
  partner's strongest keyword that is absent from the text and not a keyword
  of the gold class at a random word boundary; *replacement* swaps a random
  word that is not a gold-class keyword for it.

Files: ``benchmarks/adversarial/<data set>_<addition|replacement>.csv`` with
``text,label,source_index,source_text,keyword,confusable_with``, and
``keywords_<data set>.json``. Every method and every later version is scored
on these same texts. Regenerate (byte-identical) with::

    python benchmarks/make_adversarial.py [--data-home DIR]
"""

import argparse
import csv
import json
from pathlib import Path

from sklearn_cap import datasets
from sklearn_cap.adversarial import make_adversarial
from sklearn_cap.keywords import confusable_partners, logodds_keywords

OUT = Path(__file__).parent / "adversarial"
SEED = 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    for name in ("banking77", "clinc150", "hwu64"):
        load = getattr(datasets, f"load_{name}")
        X, y = load("train", data_home=args.data_home, return_X_y=True)
        X_test, y_test = load("test", data_home=args.data_home, return_X_y=True)
        keywords = logodds_keywords(list(X), y, top_k=10, min_count=2)
        partners = confusable_partners(list(X), y)
        (OUT / f"keywords_{name}.json").write_text(json.dumps(
            {"statistic": "weighted log-odds, informative Dirichlet prior (alpha0=1000), class vs rest",
             "partners": partners, "keywords": keywords}, indent=1, ensure_ascii=False) + "\n")
        for kind in ("addition", "replacement"):
            adv = make_adversarial(list(X_test), y_test, keywords, kind=kind, partners=partners, random_state=SEED)
            with open(OUT / f"{name}_{kind}.csv", "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["text", "label", "source_index", "source_text", "keyword", "confusable_with"])
                for text, label, e in zip(adv.texts, adv.labels, adv.edits):
                    w.writerow([text, label, e.source, X_test[e.source], e.keyword, e.confused_with])
            print(f"{name} {kind}: {len(adv)} texts ({adv.n_skipped} test texts admitted no edit)")


if __name__ == "__main__":
    main()
