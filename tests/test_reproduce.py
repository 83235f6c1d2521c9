"""The experiment runner's resumable parts: cross-fitted priors kept in parts, and full-data priors shared."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import registry  # noqa: E402
import reproduce  # noqa: E402

from sklearn_cap import ExplanationGuidedClassifier, IGPriorTransformer, LIMEPriorTransformer  # noqa: E402

X = ["my card has not arrived yet", "i lost my card", "card still not here", "where is my new card",
     "why was i charged a fee", "fee for the transfer", "transfer fee charged twice", "what is this fee",
     "top up by apple pay", "apple pay top up failed", "top up not working", "how do i top up"]
Y = np.array(["arrival"] * 4 + ["fee"] * 4 + ["top_up"] * 4, dtype=object)


def _seed(tmp_path, encoder, seed):
    s = reproduce.Seed("banking77", "full", seed, (X, Y, X, Y), tmp_path)
    s.classifier = lambda **kw: ExplanationGuidedClassifier(
        encoder, **{"epochs": 1, "batch_size": 4, "random_state": s.seed, "progress_bar": False, **kw})
    return s


def test_cross_fitted_parts_equal_one_pass_and_resume(tmp_path, tiny_encoder):
    s = _seed(tmp_path, tiny_encoder, 0)
    for prior in (IGPriorTransformer(cv=3, n_steps=4, progress_bar=False),
                  LIMEPriorTransformer(cv=3, num_samples=50, random_state=0, progress_bar=False)):
        name = type(prior).__name__
        got = s.cross_fitted(name, prior, chunk=2)
        expected = prior.fit_transform_with(s.references(), X, Y)
        np.testing.assert_allclose(np.asarray(got.values), np.asarray(expected), atol=1e-6)
        parts = sorted(s.dir.glob(f"{name}_part*.npz"))
        assert len(parts) == 6 and got.seconds > 0  # 3 folds of 4 texts, 2 texts a part
    # A later run (a new process: references from disk) reads the finished parts instead of recomputing them.
    assert (s.dir / "refs.joblib").exists()
    part = s.dir / "IGPriorTransformer_part1_0.npz"
    z = np.load(part)
    np.savez(part, values=np.full_like(z["values"], 7.0), seconds=z["seconds"])
    again = _seed(tmp_path, tiny_encoder, 0).cross_fitted(
        "IGPriorTransformer", IGPriorTransformer(cv=3, n_steps=4, progress_bar=False), chunk=2)
    rows = s.references().folds[1][0][:2]
    assert np.all(np.asarray(again.values)[rows][np.isfinite(np.asarray(again.values)[rows])] == 7.0)


def test_full_data_seeds_share_their_priors(tmp_path, tiny_encoder):
    a, b = _seed(tmp_path, tiny_encoder, 0), _seed(tmp_path, tiny_encoder, 2)
    assert a.dir == b.dir and b.prior_seed == 0 and b.seed == 2
    few = reproduce.Seed("banking77", "5-shot", 2, (X * 2, np.concatenate([Y, Y]), X, Y), tmp_path)
    assert few.prior_seed == 2 and few.dir != a.dir


def test_beta_is_chosen_by_cross_validation_on_the_training_sample(tmp_path, tiny_encoder):
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from sklearn_cap.text import WordAttributions

    s = _seed(tmp_path, tiny_encoder, 1)
    priors = np.random.default_rng(0).random(WordAttributions(X).shape)
    beta, scores = reproduce.choose_beta(s, priors)
    assert list(scores) == [f"{b:g}" for b in reproduce.BETA_GRID]
    assert beta in reproduce.BETA_GRID and scores[f"{beta:g}"] == max(scores.values())
    # the same folds of the training sample as a plain cross-validation: nothing else is seen
    folds = StratifiedKFold(reproduce.CV, shuffle=True, random_state=s.seed)
    plain = cross_val_score(s.classifier(beta=0), X, Y, cv=folds)
    assert scores["0"] == plain.mean()


def test_scored_priors_keep_a_cache_per_seed_and_a_resumed_run_is_recorded(tmp_path, tiny_encoder, tiny_llm,
                                                                            monkeypatch):
    from results_doc import cost_seconds

    from sklearn_cap import embedded

    monkeypatch.setattr(embedded, "LLM", tiny_llm)
    s = _seed(tmp_path, tiny_encoder, 0)
    values, _ = s.cap("llm")
    asked = s.queries["cap_llm"]
    assert asked > 0 and s.scored["cap_llm"] == asked  # an empty cache: every query scored in the timed run
    # A 5-shot sample is part of its seed's 10-shot sample: their scores must not be shared across settings.
    few = reproduce.Seed("banking77", "5-shot", 0, (X * 2, np.concatenate([Y, Y]), X, Y), tmp_path)
    assert s.scores_dir.parent == s.dir and few.scores_dir != s.scores_dir
    # A killed extraction (its scores written, its prior file not) resumes from the seed's cache ...
    (s.dir / "cap_llm.npz").unlink()
    again = _seed(tmp_path, tiny_encoder, 0)
    np.testing.assert_allclose(again.cap("llm")[0], values)
    assert again.queries["cap_llm"] == asked and again.scored["cap_llm"] == 0
    # ... and its cell's seconds are then not taken as the method's cost.
    cell = {"method": "cap_llm", "seed": 0, "config": {}, "seconds": {"priors": 1.0, "train": 2.0},
            "prior_queries": dict(again.queries), "prior_scored": dict(again.scored)}
    assert np.isnan(cost_seconds(cell, [cell]))


def test_cells_record_the_cpu_their_seconds_were_measured_on(monkeypatch, tmp_path):
    """bfloat16 speed differs by CPU (1.4x to 2.1x float32), so a cell says which CPU it ran on."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx2 avx512f amx_bf16 "
                       "avx512_bf16\n\nprocessor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu\n")
    real = Path

    def fake_path(p, *rest):
        return real(cpuinfo) if str(p) == "/proc/cpuinfo" else real(p, *rest)

    monkeypatch.setattr(registry, "Path", fake_path)
    m = reproduce.machine()
    assert m["cpu"] == "Example CPU 9000" and m["bf16_matmul"] == "amx" and m["threads"] >= 1
    cpuinfo.write_text("model name\t: Other\nflags\t\t: avx2\n")
    assert reproduce.machine()["bf16_matmul"] == "none"
    cpuinfo.unlink()  # no /proc/cpuinfo (macOS, Windows): no CPU fields, nothing raised
    assert "cpu" not in reproduce.machine()
    # machines that report the same model ran 3x apart: each cell also measures its float32 matrix-product speed
    assert 0 < m["matmul_gflops"] < 1e5 and 0 < reproduce.matmul_gflops(n=128, repeats=2) < 1e5


def _sets():
    return {"adv_addition": (X[:6], Y[:6]), "hand_addition": ([], Y[:0])}


def test_a_cell_of_a_registered_prior_method(tmp_path, tiny_encoder):
    s = _seed(tmp_path, tiny_encoder, 0)
    cell = reproduce.run_cell("ig", s, (X, Y, X, Y), _sets(), np.arange(4), {})
    # the page's columns, in the page's order, and the per-text correctness of each set
    assert list(cell["metrics"]) == ["test", "adv_addition", "hand_addition", "comprehensiveness_grad_input",
                                     "sufficiency_grad_input", "comprehensiveness_ig", "sufficiency_ig"]
    assert cell["set_sizes"] == {"adv_addition": 6, "hand_addition": 0} and np.isnan(cell["metrics"]["hand_addition"])
    bits = registry.unpack(cell["correct"]["test"], len(X))
    assert bits.mean() == cell["metrics"]["test"]
    # the cross-fitted prior's seconds include its reference models, counted once
    assert cell["seconds"]["priors"] >= s.refs_seconds() > 0
    assert cell["config"]["classifier"]["beta"] == 1.0 and cell["config"]["ig_prior"]["cv"] == reproduce.CV


def test_a_new_row_is_one_registry_entry(tmp_path, tiny_encoder, monkeypatch):
    """An anchor that is not explanation-guided: one Method with its own estimator, run and named like any row."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def tfidf_lr(seed, params):
        return make_pipeline(TfidfVectorizer(), LogisticRegression(**params))

    row = registry.Method("tfidf_lr", "TF-IDF + logistic regression", "extra", classifier={"C": 10.0},
                          recipe="anchors", estimator=tfidf_lr, attributions=())
    monkeypatch.setitem(registry.METHODS, row.name, row)
    s = _seed(tmp_path, tiny_encoder, 0)
    cell = reproduce.run_cell("tfidf_lr", s, (X, Y, X, Y), _sets(), np.arange(4), {})
    expected = tfidf_lr(s, {"C": 10.0}).fit(X, Y).score(X, Y)
    assert cell["metrics"]["test"] == expected and list(cell["metrics"]) == ["test", "adv_addition", "hand_addition"]
    assert cell["config"]["classifier"]["C"] == 10.0 and cell["seconds"]["priors"] == 0.0
    assert registry.name_of("tfidf_lr") == "TF-IDF + logistic regression"
    assert registry.method_of("tfidf_lr").recipe == "anchors" != registry.method_of("vanilla").recipe


def test_a_prior_with_settings_of_its_own_is_cached_apart_and_recorded(tmp_path, tiny_encoder, monkeypatch):
    """LIME at 250 samples over the probe references: its own file, its own values, its setting in the cell."""
    row = registry.Method("lime_probe_250_only", "LIME, probe reference, 250 samples", "recipe", ("lime_probe_250",),
                          recipe="lpft")
    monkeypatch.setitem(registry.METHODS, row.name, row)
    s = _seed(tmp_path, tiny_encoder, 0)
    plain = s.classifier
    s.classifier = lambda **kw: plain(**{"pooling": "mean", **kw})  # the probe reads mean-pooled features
    cell = reproduce.run_cell(row.name, s, (X, Y, X, Y), _sets(), np.arange(4), {})
    assert cell["config"]["prior_settings"] == {"lime_probe_250": {"num_samples": 250}}
    assert cell["config"]["lime_prior"]["num_samples"] == 500  # the other LIME priors' setting, unchanged
    assert cell["seconds"]["priors"] >= s.refs_seconds("probe") > 0 and s.refs_seconds() == 0.0
    fewer, _ = s.named_prior("lime_probe_250")
    more, _ = s.named_prior("lime_probe")
    assert (tmp_path.glob("**/lime_probe_250.npz")) and fewer.shape == more.shape
    assert not np.allclose(np.nan_to_num(fewer), np.nan_to_num(more))  # fewer samples, another fit
