"""The one evaluation of a fitted model: accuracy per set, faithfulness of the attribution it was trained with."""

import numpy as np
import pytest

from sklearn_cap import ExplanationGuidedClassifier
from sklearn_cap.experiment import adversarial_sets, evaluate
from sklearn_cap.keywords import confusable_partners, logodds_keywords
from sklearn_cap.metrics import faithfulness

X = ["my card has not arrived yet", "i lost my card", "card still not here", "where is my new card",
     "why was i charged a fee", "fee for the transfer", "transfer fee charged twice", "what is this fee"]
Y = np.array(["arrival"] * 4 + ["fee"] * 4, dtype=object)


@pytest.fixture
def model(tiny_encoder):
    return ExplanationGuidedClassifier(tiny_encoder, beta=0, attribution="grad_input", epochs=2, batch_size=4,
                                       random_state=0, progress_bar=False).fit(X, Y)


def test_accuracy_per_set_and_faithfulness_of_the_trained_attribution_then_ig(model):
    kw = logodds_keywords(X, Y, top_k=3, min_count=1)
    adversarial = adversarial_sets(X, Y, kw, partners=confusable_partners(X, Y))
    out = evaluate(model, {"test": (X, Y), **adversarial, "empty": ([], Y[:0])}, k=(0.2, 0.5), ig_steps=4)
    m = out["metrics"]
    assert list(m) == ["test", "adv_addition", "adv_replacement", "empty", "comprehensiveness_grad_input",
                       "sufficiency_grad_input", "comprehensiveness_ig", "sufficiency_ig"]
    assert m["test"] == model.score(X, Y) and np.isnan(m["empty"])
    add = adversarial["adv_addition"]
    assert m["adv_addition"] == model.score(add.texts, add.labels)
    assert out["correct"]["adv_addition"].tolist() == (model.predict(add.texts) == add.labels).tolist()
    # faithfulness of the explanations of the first set's texts, by the attribution the model was trained with
    ex = model.explain(X, method="grad_input", batch_size=16)
    expected = faithfulness(model, ex, k=(0.2, 0.5))["comprehensiveness"]
    assert m["comprehensiveness_grad_input"] == pytest.approx(expected)
    assert list(out["explanations"]) == ["grad_input", "ig"] and out["explanations"]["ig"].texts == X


def test_a_model_trained_with_ig_is_measured_with_ig_once(model):
    ig_model = model.set_params(attribution="ig")  # what evaluate() and explain() read; no refit needed here
    out = evaluate(ig_model, {"test": (X[:4], Y[:4])}, explain=X[4:], k=(0.5,), ig_steps=2)
    assert list(out["explanations"]) == ["ig"] and out["explanations"]["ig"].texts == X[4:]
    assert list(evaluate(ig_model, {"test": (X, Y)}, attributions=())["metrics"]) == ["test"]
