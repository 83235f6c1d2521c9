"""The method-free keyword statistic behind the stored adversarial sets."""

import inspect
import unicodedata

import numpy as np
import pytest

from sklearn_cap.adversarial import make_adversarial
from sklearn_cap.keywords import confusable_partners, logodds_keywords, word_counts

TEXTS = ["my card has not arrived", "where is my new card", "card still not here",
         "how long does delivery of a card take", "when will the card be delivered", "delivery time for cards",
         "why was i charged a fee", "fee for my transfer", "the transfer fee is too high"]
LABELS = ["arrival"] * 3 + ["delivery"] * 3 + ["fee"] * 3


def test_keyword_statistic_takes_texts_and_labels_only():
    # the adversarial sets must not depend on any prior under test: no prior can be passed
    params = list(inspect.signature(logodds_keywords).parameters)
    assert params[:2] == ["texts", "labels"] and not any("prior" in p or "attribution" in p for p in params)
    assert list(inspect.signature(confusable_partners).parameters) == ["texts", "labels"]


def test_logodds_matches_a_hand_computation():
    kw = logodds_keywords(TEXTS, LABELS, top_k=3, alpha0=10.0, min_count=2)
    counts, classes, vocab = word_counts(TEXTS, LABELS)
    j, i = vocab.index("fee"), list(classes).index("fee")
    a = 10.0 * counts[:, j].sum() / counts.sum()
    yc, yr = counts[i, j], counts[:, j].sum() - counts[i, j]
    nc, nr = counts[i].sum(), counts.sum() - counts[i].sum()
    delta = np.log((yc + a) / (nc + 10 - yc - a)) - np.log((yr + a) / (nr + 10 - yr - a))
    z = delta / np.sqrt(1 / (yc + a) + 1 / (yr + a))
    assert kw["fee"][0] == ("fee", pytest.approx(z))
    assert kw["delivery"][0][0] == "delivery" and all(c >= 2 for c in [counts[i, vocab.index(w)] for w, _ in kw["fee"]])


def test_words_are_case_folded_and_nfc():
    nfd = unicodedata.normalize("NFD", "Café")
    kw = logodds_keywords([nfd + " open", "café open", "tea shut", "tea shut"], ["a", "a", "b", "b"], min_count=2)
    assert kw["a"][0][0] == "café"


def test_partners_and_adversarial_sets_from_counts():
    partners = confusable_partners(TEXTS, LABELS)
    assert partners["arrival"] in {"delivery", "fee"} and partners["arrival"] != "arrival"
    kw = logodds_keywords(TEXTS, LABELS, top_k=3, min_count=1)
    adv = make_adversarial(TEXTS, LABELS, kw, kind="addition", partners=partners, random_state=0)
    assert len(adv) == len(TEXTS)
    for text, e in zip(adv.texts, adv.edits):
        assert e.undo(text) == TEXTS[e.source] and e.confused_with == partners[LABELS[e.source]]
