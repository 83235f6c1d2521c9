import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from sklearn_cap import ExplanationGuidedClassifier, IGPriorTransformer, LIMEPriorTransformer
from sklearn_cap.priors.lime import lime_weights, lime_weights_many, text_rng

from test_classifier import planted_data


def ref(folder, **kw):
    params = dict(beta=0, epochs=3, batch_size=16, learning_rate=2e-3, random_state=0, progress_bar=False,
                  attribution="grad_input")
    params.update(kw)
    return ExplanationGuidedClassifier(folder, **params)


@pytest.fixture(scope="module")
def data():
    X, y, _ = planted_data(60, seed=3)
    return X, y


@pytest.fixture(scope="module")
def fitted_ref(tiny_encoder, data):
    return ref(tiny_encoder).fit(*data)


def test_ig_prior_shape_and_padding(tiny_encoder, data):
    X, y = data
    texts = X[:6] + ["card", "where is my card please tell me now"]
    labels = np.concatenate([y[:6], ["card_arrival", "card_arrival"]])
    ig = IGPriorTransformer(ref(tiny_encoder), n_steps=8, progress_bar=False)
    P = ig.fit_transform(texts, labels)
    M = np.asarray(P)
    assert M.shape == (8, 8)
    assert np.isfinite(M[6, :1]).all() and np.isnan(M[6, 1:]).all()
    assert np.isfinite(M[7]).all()
    out = ig.transform(["unlabelled text"])
    assert not out.has_values


def _ig(model, texts, labels, n_steps, batch_size=1):
    prior = IGPriorTransformer(model, prefit=True, n_steps=n_steps, batch_size=batch_size, progress_bar=False)
    return prior.explain_with(model, list(texts), np.asarray(labels))


def test_ig_prior_completeness_and_batching(fitted_ref, data):
    X, y = data
    texts = X[:5]
    batched = _ig(fitted_ref, texts, y[:5], 200, batch_size=5)
    single = np.vstack([_ig(fitted_ref, [t], y[i:i + 1], 200)[:, : batched.shape[1]] for i, t in enumerate(texts)])
    assert np.allclose(batched, single, atol=1e-4, equal_nan=True)
    # IG completeness: the words' attributions add up to log P(x) - log P(baseline)
    target = fitted_ref.class_index(y[:5])
    tok = fitted_ref.tokenizer_
    for i, text in enumerate(texts):
        enc = tok([text], return_tensors="pt")
        ids = enc["input_ids"]
        base = torch.where(torch.isin(ids, torch.tensor(tok.all_special_ids)), ids, torch.full_like(ids, tok.pad_token_id))
        with torch.no_grad():
            f = lambda t: torch.log_softmax(fitted_ref.model_(input_ids=t).logits, -1)[0, target[i]]
            gap = float(f(ids) - f(base))
        assert np.nansum(batched[i]) == pytest.approx(gap, abs=0.02 * abs(gap) + 1e-3)


def test_one_ig_for_loss_explain_and_prior(fitted_ref, data):
    """The same model gives the same IG from explain, the IG prior, the training path and captum."""
    from captum.attr import LayerIntegratedGradients

    X, y = data
    texts, labels = X[:6], y[:6]
    k = 5
    explained = np.asarray(fitted_ref.explain(texts, target=labels, method="ig", n_steps=k))
    prior = np.asarray(IGPriorTransformer(fitted_ref, prefit=True, n_steps=k, progress_bar=False)
                       .fit_transform(texts, labels))
    enc = fitted_ref.encode(texts)
    batch = enc.batch(np.arange(len(texts)), fitted_ref.device_)
    target = torch.as_tensor(fitted_ref.class_index(labels))
    fitted_ref.model_.eval()
    words, _ = fitted_ref.word_attributions(batch, target, method="ig", n_steps=k, create_graph=True)
    loss_path = np.where(enc.complete, words.detach().numpy(), np.nan)
    assert np.allclose(explained, prior, equal_nan=True, atol=1e-6)
    assert np.allclose(explained, loss_path, equal_nan=True, atol=1e-5)
    # captum's layer IG on the word-embedding layer, right Riemann sum, same baseline
    model, tok = fitted_ref.model_, fitted_ref.tokenizer_

    def fwd(ids, mask):
        return torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits, -1)

    base = torch.where(batch.special, batch.input_ids, torch.full_like(batch.input_ids, tok.pad_token_id))
    attr = LayerIntegratedGradients(fwd, model.get_input_embeddings()).attribute(
        batch.input_ids, baselines=base, target=target, additional_forward_args=(batch.attention_mask,),
        n_steps=k, method="riemann_right")
    from sklearn_cap.attribution import pool_to_words

    ref = pool_to_words(attr.sum(-1).float(), batch.word_index, enc.width).detach().numpy()
    assert np.allclose(explained, np.where(enc.complete, ref, np.nan), equal_nan=True, atol=1e-5)


def test_prefit_uses_the_given_model(fitted_ref, data, tiny_encoder):
    X, y = data
    ig = IGPriorTransformer(fitted_ref, prefit=True, n_steps=4, progress_bar=False).fit(X[:4], y[:4])
    assert ig.estimator_ is fitted_ref
    with pytest.raises(NotFittedError):
        IGPriorTransformer(ref(tiny_encoder), prefit=True, progress_bar=False).fit(X[:4], y[:4])


def test_cross_fitting_uses_models_that_did_not_see_the_text(tiny_encoder, data):
    X, y = data
    ig = IGPriorTransformer(ref(tiny_encoder, epochs=1), cv=2, n_steps=4, progress_bar=False)
    P = np.asarray(ig.fit_transform(X[:20], y[:20]))
    assert ig.estimator_ is None and len(ig.estimators_) == 2
    from sklearn.model_selection import StratifiedKFold

    for (train, test), model in zip(StratifiedKFold(2).split(np.zeros(20), y[:20]), ig.estimators_):
        own = _ig(model, [X[i] for i in test], y[:20][test], 4)
        assert np.allclose(P[test, : own.shape[1]], own, equal_nan=True, atol=1e-5)


def test_fast_lime_equals_plain_lime(fitted_ref, data):
    X, y = data
    texts = ["card my card please where", "card"] + list(X[:4])
    target = fitted_ref.class_index(list(y[:2]) + list(y[:4]))
    plain = [lime_weights(t, fitted_ref.predict_proba, target[i], num_samples=300, random_state=text_rng(0, t))
             for i, t in enumerate(texts)]
    fast = lime_weights_many(fitted_ref.predict_proba, texts, target, [text_rng(0, t) for t in texts],
                             num_samples=300)
    for a, b in zip(fast, plain):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-6)
    # positions, not bag of words: the two "card"s get their own weights
    assert fast[0][0] != fast[0][2]
    prior = LIMEPriorTransformer(fitted_ref, prefit=True, num_samples=300, random_state=0, progress_bar=False)
    P = np.asarray(prior.fit_transform(texts, list(y[:2]) + list(y[:4])))
    assert all(np.allclose(P[i, : len(b)], b, atol=1e-6) for i, b in enumerate(plain))


def test_lime_prior_transformer(tiny_encoder, data):
    X, y = data
    lime = LIMEPriorTransformer(ref(tiny_encoder), num_samples=200, progress_bar=False)
    P = lime.fit_transform(X[:6], y[:6])
    M = np.asarray(P)
    assert M.shape == P.shape and np.isfinite(M[P.word_mask]).all()
    again = np.asarray(lime.compute_priors(X[:6], y[:6]))
    assert np.allclose(M, again, equal_nan=True)  # same seed per text
    with pytest.raises(ValueError, match="not seen in the reference"):
        lime.compute_priors(X[:1], ["other"])


def test_reference_priors_need_labels(tiny_encoder, data):
    X, y = data
    with pytest.raises(ValueError, match="needs the labels"):
        IGPriorTransformer(ref(tiny_encoder)).fit_transform(X[:4])
    with pytest.raises(ValueError, match="different lengths"):
        LIMEPriorTransformer(ref(tiny_encoder)).fit(X[:4], y[:3])
    with pytest.raises(ValueError, match="has no word"):
        LIMEPriorTransformer(ref(tiny_encoder)).fit(["", "a b"], ["x", "y"])


def test_the_default_reference_is_a_probe_shared_by_ig_and_lime():
    """estimator=None: a linear probe on the frozen default encoder, one set of references for both priors."""
    from sklearn_cap import ExplanationGuidedClassifier, make_probe_reference

    ig, lime = IGPriorTransformer(), LIMEPriorTransformer()
    assert ig.estimator is None  # __init__ stores the parameter; the default is built when it is needed
    default = ig._estimator()
    assert default.get_params()["stages"] is not None
    assert repr(default.get_params()) == repr(make_probe_reference().get_params())
    assert ig.reference_key() == lime.reference_key()
    assert ig.reference_key() == IGPriorTransformer(make_probe_reference()).reference_key()
    # the fine-tuned reference of before stays one parameter away, and is another reference
    assert ig.reference_key() != IGPriorTransformer(ExplanationGuidedClassifier(beta=0)).reference_key()


def test_probe_reference_leaves_the_encoder_frozen_and_serves_ig_and_lime(tiny_encoder, data):
    """A cross-fitted probe reference: each fold model is the pretrained encoder plus a fitted linear head."""
    from transformers import AutoModel

    from sklearn_cap import make_probe_reference
    from sklearn_cap.priors import References
    from sklearn_cap.stages import LinearProbe

    X, y = data
    reference = make_probe_reference(tiny_encoder, C=1.0, random_state=0, progress_bar=False)
    assert reference.beta == 0 and reference.pooling == "mean" and repr(reference.stages) == repr([LinearProbe(C=1.0)])
    ig = IGPriorTransformer(reference, cv=2, n_steps=4, progress_bar=False)
    refs = ig.fit_reference(X, y)
    pretrained = AutoModel.from_pretrained(tiny_encoder).state_dict()
    for _, model in refs.folds:
        assert model.probe_["C"] == 1.0
        body = {k.split(".", 1)[1]: v for k, v in model.model_.state_dict().items() if k.startswith("encoder.")}
        shared = set(body) & set(pretrained)
        assert len(shared) > 10 and all(torch.equal(body[k], pretrained[k]) for k in shared)
    lime = LIMEPriorTransformer(reference, cv=2, num_samples=50, progress_bar=False)
    assert lime.reference_key() == ig.reference_key()  # PriorUnion trains the probes once for both
    for prior in (ig, lime):
        P = np.asarray(prior.fit_transform_with(refs, X, y))
        assert P.shape[0] == len(X) and np.isfinite(P[:, 0]).all()
    assert isinstance(refs, References)
    with pytest.raises(TypeError, match="sets beta"):
        make_probe_reference(tiny_encoder, beta=1.0)
