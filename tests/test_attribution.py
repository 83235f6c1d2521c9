import numpy as np
import pytest
import torch

from sklearn_cap.attribution import gradient_x_input, integrated_gradients, normalize, normalize_np, pool_to_words
from sklearn_cap.encoding import align_words
from sklearn_cap.text import segment


def test_normalize_methods():
    v = torch.tensor([[1.0, 3.0, 2.0, 9.0], [-1.0, 1.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, True, False], [True, True, True, True]])
    mm = normalize(v, m, "minmax")
    assert torch.allclose(mm[0], torch.tensor([0.0, 1.0, 0.5, 0.0]))
    assert torch.allclose(mm[1], torch.tensor([0.0, 1.0, 0.5, 0.5]))
    l1 = normalize(v, m, "l1")
    assert torch.allclose(l1[0, :3], torch.tensor([1.0, 3.0, 2.0]) / 6) and l1[0, 3] == 0
    sm = normalize(v, m, "softmax")
    assert torch.allclose(sm.sum(1), torch.ones(2)) and sm[0, 3] == 0
    with pytest.raises(ValueError, match="Unknown normalization"):
        normalize(v, m, "zscore")


def test_normalize_edge_rows():
    v = torch.tensor([[2.0, 2.0], [5.0, 1.0]])
    m = torch.tensor([[True, True], [False, False]])
    out = normalize(v, m, "minmax")
    assert torch.equal(out, torch.zeros(2, 2))  # constant row -> 0, empty row -> 0
    assert np.isnan(normalize_np(np.array([[np.nan, 1.0]]))[0, 0])


def test_normalize_is_differentiable():
    v = torch.tensor([[1.0, 3.0, 2.0]], requires_grad=True)
    normalize(v, torch.ones(1, 3, dtype=torch.bool)).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_pool_to_words_sums_subwords_and_drops_specials():
    scores = torch.tensor([[0.5, 1.0, 2.0, 3.0, 0.7]])
    widx = torch.tensor([[-1, 0, 0, 1, -1]])
    assert torch.allclose(pool_to_words(scores, widx, 3), torch.tensor([[3.0, 3.0, 0.0]]))


def test_align_words_with_truncation(tiny_encoder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    texts = ["my card, has not arrived", "where is it"]
    spans = [segment(t)[1] for t in texts]
    ids, widx, complete = align_words(tok, texts, spans, max_length=5)
    # [CLS] my card , [SEP]: the comma and specials map to no word; "has" and on are cut
    assert widx[0] == [-1, 0, 1, -1, -1]
    assert complete[0].tolist() == [True, True, False, False, False]
    assert widx[1] == [-1, 0, 1, 2, -1] and complete[1].all()


@pytest.fixture(scope="module")
def tiny_clf_model(tiny_encoder):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).eval()


def _inputs(model):
    torch.manual_seed(1)
    ids = torch.randint(5, 40, (3, 6))
    mask = torch.ones_like(ids)
    return model.get_input_embeddings()(ids).detach(), mask, torch.tensor([0, 1, 2])


def test_grad_input_matches_autograd(tiny_clf_model):
    emb, mask, target = _inputs(tiny_clf_model)
    attr, logits = gradient_x_input(tiny_clf_model, emb, mask, target)
    e = emb.clone().requires_grad_(True)
    lp = torch.log_softmax(tiny_clf_model(inputs_embeds=e, attention_mask=mask).logits, -1)
    g = torch.autograd.grad(lp[0, 0], e)[0]
    assert torch.allclose(attr[0], (g[0] * e[0]).sum(-1), atol=1e-5)
    assert logits.shape == (3, 3)


def test_integrated_gradients_completeness(tiny_clf_model):
    # IG's axiom: attributions sum to f(input) - f(baseline) as steps grow.
    emb, mask, target = _inputs(tiny_clf_model)
    attr, _ = integrated_gradients(tiny_clf_model, emb, mask, target, torch.zeros_like(emb), n_steps=300)
    with torch.no_grad():
        f = lambda x: torch.log_softmax(tiny_clf_model(inputs_embeds=x, attention_mask=mask).logits, -1)
        gap = (f(emb) - f(torch.zeros_like(emb))).gather(1, target[:, None]).squeeze(1)
    assert torch.allclose(attr.sum(1), gap, atol=2e-2 * gap.abs().max() + 1e-4)


def test_ig_equals_captum_riemann_right(tiny_clf_model):
    # The library's one IG is captum's right Riemann sum, step for step.
    from captum.attr import IntegratedGradients

    emb, mask, target = _inputs(tiny_clf_model)
    base = torch.randn_like(emb) * 0.1
    ours, logits = integrated_gradients(tiny_clf_model, emb, mask, target, base, n_steps=7)
    fwd = lambda x: torch.log_softmax(tiny_clf_model(inputs_embeds=x, attention_mask=mask.repeat(len(x) // 3, 1)).logits, -1)
    ref = IntegratedGradients(fwd).attribute(emb, baselines=base, target=target, n_steps=7,
                                             method="riemann_right").sum(-1)
    assert torch.allclose(ours, ref.float(), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(logits, tiny_clf_model(inputs_embeds=emb, attention_mask=mask).logits, atol=1e-5)


def test_ig_chunks_give_the_same_sum(tiny_clf_model):
    emb, mask, target = _inputs(tiny_clf_model)
    base = torch.zeros_like(emb)
    whole, _ = integrated_gradients(tiny_clf_model, emb, mask, target, base, n_steps=10)
    chunked, _ = integrated_gradients(tiny_clf_model, emb, mask, target, base, n_steps=10, internal_batch_size=7)
    assert torch.allclose(whole, chunked, atol=1e-6)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        integrated_gradients(tiny_clf_model, emb, mask, target, base, n_steps=0)


def test_attribution_keeps_graph_for_training(tiny_clf_model):
    _, _, target = _inputs(tiny_clf_model)
    for method in ("grad_input", "ig"):
        e = tiny_clf_model.get_input_embeddings()(torch.randint(5, 40, (2, 4)))
        m = torch.ones(2, 4, dtype=torch.long)
        if method == "ig":
            attr, _ = integrated_gradients(tiny_clf_model, e, m, target[:2], torch.zeros_like(e), n_steps=3,
                                           create_graph=True)
        else:
            attr, _ = gradient_x_input(tiny_clf_model, e, m, target[:2], create_graph=True)
        attr.pow(2).sum().backward()
        w = tiny_clf_model.get_input_embeddings().weight
        assert w.grad is not None and torch.isfinite(w.grad).all()
        tiny_clf_model.zero_grad()


def test_stochastic_ig_is_unbiased(tiny_clf_model):
    # The mean of many one-point draws converges to the path integral (exact IG with a fine grid).
    emb, mask, target = _inputs(tiny_clf_model)
    base = torch.zeros_like(emb)
    exact, _ = integrated_gradients(tiny_clf_model, emb, mask, target, base, n_steps=400)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([integrated_gradients(tiny_clf_model, emb, mask, target, base,
                                              alphas=torch.rand((1, 3), generator=gen))[0] for _ in range(600)])
    mean, sem = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert (torch.abs(mean - exact) <= 4 * sem + 1e-4).float().mean() > 0.95
    # and stacking the draws as steps of one call is the same estimate
    alphas = torch.rand((5, 3), generator=gen)
    one_call, logits = integrated_gradients(tiny_clf_model, emb, mask, target, base, alphas=alphas)
    singles = torch.stack([integrated_gradients(tiny_clf_model, emb, mask, target, base, alphas=a[None])[0]
                           for a in alphas]).mean(0)
    assert torch.allclose(one_call, singles, atol=1e-5) and logits is None
