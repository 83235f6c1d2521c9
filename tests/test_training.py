"""The training loop's structure: callbacks, stages, attribution objects, and the pinned predictions."""

import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_cap import ExplanationGuidedClassifier, WordAttributions
from sklearn_cap.attribution import GradientXInput, IntegratedGradients, StochasticIntegratedGradients
from sklearn_cap.callbacks import Callback, EarlyStopping, GradientNormClipping
from sklearn_cap.stages import FineTune, LinearProbe, Stage, TrainingData

from _pinning import COMMON, PINNED, RUNS, run_all
from test_classifier import planted_data


def test_refactor_changed_no_prediction(tiny_encoder):
    # tests/data/pinned_predictions.json was written by `python -m tests._pinning`
    # with the loop as it was before callbacks and stages (commit f17c04b).
    pinned = json.loads(PINNED.read_text())
    now = run_all(tiny_encoder)
    assert set(now) == set(RUNS)
    for name in RUNS:
        np.testing.assert_allclose(now[name], pinned[name], atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def data():
    X, y, P = planted_data(64)
    return WordAttributions(X, P), y


def _clf(folder, **kw):
    return ExplanationGuidedClassifier(folder, **{**COMMON, "epochs": 2, **kw})


class Recorder(Callback):
    """Records every hook it sees, in order."""

    def __init__(self, tag="r"):
        self.tag = tag

    def initialize(self):
        self.seen_ = []
        return self

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def hook(clf, **kwargs):
                self.seen_.append(name)
                return False
            return hook
        return super().__getattribute__(name)


def test_callbacks_are_named_ordered_and_notified_in_loop_order(tiny_encoder, data):
    wa, y = data
    rec = Recorder()
    clf = _clf(tiny_encoder, beta=0, early_stopping=True, epochs=2, callbacks=[rec, ("second", Recorder())]).fit(wa, y)
    assert list(clf.callbacks_) == ["progress_bar", "gradient_clipping", "validation", "early_stopping",
                                    "Recorder", "second"]
    seen = clf.callbacks_["Recorder"].seen_
    assert seen[:3] == ["on_train_begin", "on_stage_begin", "on_epoch_begin"]
    assert seen[-3:] == ["on_epoch_end", "on_stage_end", "on_train_end"]
    n_batches = seen.count("on_batch_begin")
    assert n_batches == seen.count("on_grad_computed") == seen.count("on_batch_end") > 0
    assert seen.count("on_epoch_end") == clf.n_epochs_ == 2
    assert "val_accuracy" in clf.history_[-1]
    # Callbacks have scikit-learn parameters and clone like estimators.
    assert clf.callbacks_["early_stopping"].get_params() == {"patience": 2}
    assert clone(GradientNormClipping(0.5)).set_params(max_norm=2.0).max_norm == 2.0
    pickle.loads(pickle.dumps(clf))  # no tqdm bar or saved weights left behind in a callback


def test_no_clipping_and_no_validation_callbacks_when_switched_off(tiny_encoder, data):
    wa, y = data
    clf = _clf(tiny_encoder, beta=0, max_grad_norm=None, epochs=1).fit(wa, y)
    assert list(clf.callbacks_) == ["progress_bar"]


def test_clipping_callback_bounds_the_gradient_norm(tiny_encoder, data):
    wa, y = data
    norms = []

    class Norm(Callback):
        def on_grad_computed(self, clf, named_parameters, **kwargs):
            norms.append(torch.norm(torch.stack([p.grad.norm() for _, p in named_parameters if p.grad is not None])))

    # The user's callback runs after the default clipping: it sees clipped gradients.
    _clf(tiny_encoder, beta=0, epochs=1, max_grad_norm=1e-3, callbacks=[Norm()]).fit(wa, y)
    assert norms and max(float(n) for n in norms) <= 1e-3 * 1.01


def test_a_callback_can_stop_training(tiny_encoder, data):
    wa, y = data

    class StopAfterOne(Callback):
        def on_epoch_end(self, clf, record, **kwargs):
            return True

    clf = _clf(tiny_encoder, beta=0, epochs=5, callbacks=[StopAfterOne()]).fit(wa, y)
    assert clf.n_epochs_ == 1 and clf.n_train_steps_ == 5 * int(np.ceil(len(y) / COMMON["batch_size"]))


def test_early_stopping_keeps_the_best_epoch_weights(tiny_encoder, data):
    wa, y = data
    clf = _clf(tiny_encoder, beta=0, epochs=6, early_stopping=True, n_iter_no_change=1, learning_rate=5e-2).fit(wa, y)
    es = clf.callbacks_["early_stopping"]
    assert es.best_ == max(r["val_accuracy"] for r in clf.history_)
    assert es.best_state_ is None  # the copy of the weights is not kept


@pytest.mark.parametrize("bad", [lambda clf, record: None, "print", ("a", "b")])
def test_callbacks_that_are_not_callbacks_are_refused_before_training(tiny_encoder, data, bad):
    wa, y = data
    with pytest.raises(TypeError, match="Subclass Callback"):
        _clf(tiny_encoder, beta=0, callbacks=[bad]).fit(wa, y)


def test_duplicate_callback_names_are_refused(tiny_encoder, data):
    wa, y = data
    with pytest.raises(ValueError, match="named 'x'"):
        _clf(tiny_encoder, beta=0, callbacks=[("x", Recorder()), ("x", Recorder())]).fit(wa, y)
    clf = _clf(tiny_encoder, beta=0, epochs=1, callbacks=[Recorder(), Recorder()]).fit(wa, y)
    assert list(clf.callbacks_)[-2:] == ["Recorder", "Recorder_2"]


def test_optimizer_factory_returning_none_says_what_to_pass(tiny_encoder, data):
    wa, y = data
    with pytest.raises(TypeError, match="not a torch.optim.Optimizer"):
        _clf(tiny_encoder, beta=0, optimizer=lambda groups, lr: None).fit(wa, y)


def test_divergent_training_stops_with_the_epoch_and_step(tiny_encoder, data):
    wa, y = data
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+.*Lower learning_rate"):
        _clf(tiny_encoder, beta=0, epochs=3, learning_rate=1e12, max_grad_norm=None).fit(wa, y)


def test_a_stage_is_one_object_added_without_editing_fit(tiny_encoder, data):
    wa, y = data

    class FreezeHeadBias(Stage):
        """Zero the head's bias before fine-tuning; counts no step."""

        def run(self, clf, data):
            head = [m for m in clf.model_.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                head.bias.fill_(0.0)
            clf.history_.append({"stage": "freeze"})

    clf = _clf(tiny_encoder, beta=0, stages=[FreezeHeadBias(), FineTune(epochs=1)]).fit(wa, y)
    assert clf.history_[0] == {"stage": "freeze"} and clf.history_[1]["epoch"] == 1
    assert clf.n_train_steps_ == int(np.ceil(len(y) / COMMON["batch_size"]))
    # The default is one FineTune stage: the same model as stages=[FineTune()].
    a = _clf(tiny_encoder, beta=0).fit(wa, y).predict_proba(wa.texts[:8])
    b = _clf(tiny_encoder, beta=0, stages=[FineTune()]).fit(wa, y).predict_proba(wa.texts[:8])
    np.testing.assert_allclose(a, b, atol=1e-7)
    with pytest.raises(TypeError, match="Stage objects"):
        _clf(tiny_encoder, beta=0, stages=["finetune"]).fit(wa, y)


@pytest.mark.parametrize("name, obj", [("grad_input", GradientXInput()), ("ig", IntegratedGradients()),
                                       ("ig_stochastic", StochasticIntegratedGradients())])
def test_attribution_accepts_a_name_or_the_same_object(tiny_encoder, data, name, obj):
    wa, y = data
    by_name = _clf(tiny_encoder, beta=1.0, attribution=name, n_steps=3).fit(wa, y)
    by_obj = _clf(tiny_encoder, beta=1.0, attribution=obj, n_steps=3).fit(wa, y)
    np.testing.assert_allclose(by_name.predict_proba(wa.texts[:8]), by_obj.predict_proba(wa.texts[:8]), atol=1e-7)
    np.testing.assert_allclose(np.asarray(by_name.explain(wa.texts[:4], n_steps=5)),
                               np.asarray(by_obj.explain(wa.texts[:4], n_steps=5)), atol=1e-6)
    assert clone(by_obj).attribution == obj


def test_attribution_objects_own_their_parameters(tiny_encoder, data):
    wa, y = data
    clf = _clf(tiny_encoder, beta=0, epochs=1).fit(wa, y)
    texts = wa.texts[:4]
    pad = np.asarray(clf.explain(texts, method=IntegratedGradients(n_steps=5)))
    zeros = np.asarray(clf.explain(texts, method=IntegratedGradients(n_steps=5, baseline="zeros")))
    # BERT initialises its pad embedding (padding_idx) to zeros, so the two baselines agree here.
    assert np.isfinite(pad[:, 0]).all()
    np.testing.assert_allclose(pad, zeros, atol=1e-6)
    assert not np.allclose(pad, np.asarray(clf.explain(texts, method=IntegratedGradients(n_steps=1))), equal_nan=True)
    # An object's own n_steps wins over explain's; with none, explain's applies.
    np.testing.assert_allclose(np.asarray(clf.explain(texts, method=IntegratedGradients(n_steps=5), n_steps=40)),
                               np.asarray(clf.explain(texts, method="ig", n_steps=5)), atol=1e-6)
    assert StochasticIntegratedGradients(baseline="zeros").for_explanation() == IntegratedGradients(baseline="zeros")
    with pytest.raises(ValueError, match="AttributionMethod"):
        clf.explain(texts, method="ig_stochastic")


def _frozen_features(folder, texts, normalize):
    """Mean-pooled features of the untouched encoder, computed here with transformers alone."""
    from transformers import AutoModel, AutoTokenizer

    tok, enc = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tok(list(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = enc(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy() if normalize else pooled.numpy()


@pytest.mark.parametrize("normalize", [False, True])
def test_linear_probe_head_reproduces_logistic_regression_on_frozen_features(tiny_encoder, data, normalize):
    from sklearn.linear_model import LogisticRegression

    wa, y = data
    X = wa.texts
    clf = _clf(tiny_encoder, beta=0, pooling="mean", normalize_features=normalize,
               stages=[LinearProbe(C=10.0)]).fit(X, y)
    feats = _frozen_features(tiny_encoder, X, normalize)
    lr = LogisticRegression(C=10.0, max_iter=1000).fit(feats, np.unique(y, return_inverse=True)[1])
    np.testing.assert_allclose(clf.predict_proba(X), lr.predict_proba(feats), atol=1e-4)
    assert (clf.predict(X) == clf.classes_[lr.predict(feats)]).all()


def test_lpft_recipe_is_reproducible_and_starts_from_the_probe(tiny_encoder, data):
    wa, y = data
    X = wa.texts
    params = dict(beta=0, pooling="mean", head_init="probe", normalize_features=True, head_learning_rate=1e-2,
                  learning_rate=1e-3, epochs=2)
    a, b = _clf(tiny_encoder, **params).fit(X, y), _clf(tiny_encoder, **params).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-7)
    assert [type(s).__name__ for s in a.get_stages()] == ["LinearProbe", "FineTune"] and a.n_epochs_ == 2
    # "auto" is the probe with mean pooling and a random head with the model's own head.
    assert type(_clf(tiny_encoder, head_init="auto", pooling="mean").get_stages()[0]).__name__ == "LinearProbe"
    assert [type(s).__name__ for s in _clf(tiny_encoder, head_init="auto", pooling="cls").get_stages()] == ["FineTune"]
    # The head gets its own learning rate.
    probe_only = _clf(tiny_encoder, **params, stages=[LinearProbe()]).fit(X, y)
    probe_only.optimizer_ = None
    opt = probe_only.initialize_optimizer()
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [1e-3, 1e-2]
    head_ids = {id(p) for p in probe_only.model_.classifier.parameters()}
    assert all(g["lr"] == 1e-2 for g in opt.param_groups for p in g["params"] if id(p) in head_ids)


def test_cosine_head_trains_and_round_trips_through_pickle(tiny_encoder, data):
    wa, y = data
    X = wa.texts
    clf = _clf(tiny_encoder, beta=0, pooling="mean", head="cosine", temperature=0.1, head_init="probe",
               learning_rate=2e-3, epochs=3).fit(X, y)
    assert clf.model_.classifier.bias is None
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert clf.score(X, y) > 0.5


def test_mean_pooling_options_are_refused_with_the_models_own_head(tiny_encoder, data):
    wa, y = data
    with pytest.raises(ValueError, match="needs pooling='mean'"):
        _clf(tiny_encoder, beta=0, pooling="cls", normalize_features=True).fit(wa.texts, y)
    with pytest.raises(ValueError, match="needs pooling='mean'"):
        _clf(tiny_encoder, beta=0, pooling="cls", head_init="probe").fit(wa.texts, y)


def _supcon_by_hand(z, labels, t):
    """Khosla et al.'s L_out, anchor by anchor, with plain Python loops: the reference for the vectorised loss."""
    z = torch.nn.functional.normalize(z, dim=-1)
    losses = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        others = [a for a in range(len(z)) if a != i]
        denom = torch.logsumexp(torch.stack([z[i] @ z[a] / t for a in others]), 0)
        losses.append(-torch.stack([z[i] @ z[p] / t - denom for p in pos]).mean())
    return torch.stack(losses).mean()


def test_supervised_contrastive_loss_matches_the_definition_and_ignores_anchors_without_positives():
    from sklearn_cap.stages import supervised_contrastive_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(9, 5, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4 have no positive
    loss = supervised_contrastive_loss(z, labels, 0.1)
    torch.testing.assert_close(loss, _supcon_by_hand(z, labels, 0.1))
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[[0, 1]].abs().sum() > 0
    lone = torch.randn(3, 5, requires_grad=True)
    zero = supervised_contrastive_loss(lone, torch.tensor([0, 1, 2]))
    assert zero.item() == 0.0 and zero.requires_grad


def test_contrastive_batches_hold_every_text_once_with_positives():
    from sklearn_cap.stages import ContrastiveBody

    y_idx = np.repeat(np.arange(7), [5, 5, 3, 2, 4, 1, 6])
    rows = np.arange(len(y_idx))
    batches = ContrastiveBody(per_class=2).batches(y_idx, rows, 8, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat) == list(rows)
    for b in batches:
        counts = np.bincount(y_idx[b])
        assert counts[(counts > 0) & (np.bincount(y_idx)[: len(counts)] > 1)].min() >= 2
    n_steps = ContrastiveBody(per_class=2, epochs=3).n_steps(
        type("C", (), {"batch_size": 8})(), TrainingData(None, y_idx, None, rows, None, None))
    assert n_steps == 3 * len(batches)
    with pytest.raises(ValueError, match="per_class >= 2"):
        ContrastiveBody(per_class=1).batches(y_idx, rows, 8, np.random.default_rng(0))


def test_contrastive_stage_pulls_classes_together_and_leaves_the_head_alone(tiny_encoder, data):
    from sklearn_cap.stages import ContrastiveBody

    wa, y = data
    X = wa.texts
    params = dict(beta=0, pooling="mean", head_init="probe", learning_rate=2e-3)
    clf = _clf(tiny_encoder, **params, stages=[ContrastiveBody(epochs=4)]).fit(X, y)
    losses = clf.contrastive_["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0]

    def separation(feats):
        z = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        same = y[:, None] == y[None, :]
        cos = z @ z.T
        return cos[same & ~np.eye(len(y), dtype=bool)].mean() - cos[~same].mean()

    before = separation(_frozen_features(tiny_encoder, X, normalize=False))
    after = separation(clf.features(clf.encode(X)))
    assert after > before + 0.05
    untouched = _clf(tiny_encoder, **params, stages=[]).fit(X, y)  # the model as initialised, same seed
    assert torch.equal(clf.model_.classifier.weight, untouched.model_.classifier.weight)
    assert not torch.equal(clf.model_.encoder.embeddings.word_embeddings.weight,
                           untouched.model_.encoder.embeddings.word_embeddings.weight)
    # The parameter adds the stage before LP-FT, reproducibly; a head that starts at random refuses it.
    a = _clf(tiny_encoder, **params, contrastive_epochs=1, epochs=1).fit(X, y)
    b = _clf(tiny_encoder, **params, contrastive_epochs=1, epochs=1).fit(X, y)
    assert [type(s).__name__ for s in a.get_stages()] == ["ContrastiveBody", "LinearProbe", "FineTune"]
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-7)
    with pytest.raises(ValueError, match="contrastive_epochs=1"):
        _clf(tiny_encoder, beta=0, head_init="random", contrastive_epochs=1).fit(X, y)


def test_label_smoothing_keeps_the_training_fit_less_confident(tiny_encoder, data):
    wa, y = data
    X = wa.texts
    params = dict(beta=0, pooling="mean", head_init="probe", learning_rate=2e-3, epochs=4)
    sharp = _clf(tiny_encoder, **params).fit(X, y).predict_proba(X).max(1).mean()
    smooth = _clf(tiny_encoder, **params, label_smoothing=0.3).fit(X, y).predict_proba(X).max(1).mean()
    assert smooth < sharp - 0.02
