"""resmooth.losses against the reference's criteria written out as distributions over classes."""
import pytest
import torch
import torch.nn.functional as F

from resmooth.losses import Distillation, LabelSmooth, SampleSmooth


def batch(n=64, c=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64) * 3, torch.randint(0, c, (n,), generator=g)


def smoothed_target_loss(x, y, confidence, smoothing):
    """Cross-entropy against the target distribution confidence * onehot + smoothing / C (per
    sample), batch mean: the reference's (1 - eps) * nll + eps * mean_c(-log p_c)."""
    c = x.shape[1]
    q = confidence * F.one_hot(y, c).to(x.dtype) + (smoothing.reshape(-1, 1) if torch.is_tensor(smoothing)
                                                      else smoothing) / c
    return -(q * F.log_softmax(x, dim=1)).sum(1).mean()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_label_smooth_is_the_references_and_torchs(eps):
    x, y = batch()
    got = LabelSmooth(eps)(x, y)
    assert abs(got - smoothed_target_loss(x, y, 1 - eps, eps)) < 1e-6
    assert abs(got - F.cross_entropy(x, y, label_smoothing=eps)) < 1e-6


@pytest.mark.parametrize("eps", [0.1, 0.4, 1.0])
def test_sample_smooth_scales_only_the_uniform_term(eps):
    x, y = batch(seed=1)
    p = torch.rand(x.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = SampleSmooth(eps)(x, y, p)
    assert abs(got - smoothed_target_loss(x, y, 1 - eps, (1 - p) * eps)) < 1e-6
    # p_ID = 1 everywhere: no smoothing term, the confidence stays 1 - eps (the reference's quirk)
    assert abs(SampleSmooth(eps)(x, y, 1.0) - (1 - eps) * F.cross_entropy(x, y)) < 1e-6
    assert abs(SampleSmooth(eps)(x, y, torch.zeros(len(y))) - LabelSmooth(eps)(x, y)) < 1e-6


@pytest.mark.parametrize("K,lamda,T", [(-1, 0.5, 5.0), (3, 0.9, 2.0), (10, 0.1, 1.0)])
def test_distillation_is_the_references(K, lamda, T):
    x, y = batch(seed=3)
    teacher = torch.randn_like(x) * 2
    xs, xt = x / T, teacher / T
    k = xt.shape[1] if K == -1 else K
    top, index = torch.topk(xt, k, dim=1)
    student = torch.gather(xs, 1, index)
    # the reference's KLDivLoss(LogSoftmax(teacher top-K), Softmax(student at those classes))
    kl = F.kl_div(F.log_softmax(top, dim=1), F.softmax(student, dim=1), reduction="none").sum(1)
    want = (F.cross_entropy(xs, y, reduction="none") + lamda * T ** 2 * kl).mean()
    got = Distillation(K, lamda, T)(x, y, teacher)
    assert abs(got - want) < 1e-6


def test_gradients_flow_and_empty_parts_are_zero():
    x, y = batch(8)
    x = x.float().requires_grad_(True)
    loss = 0.5 * LabelSmooth(0.1)(x[:4], y[:4]) + 0.5 * SampleSmooth(0.4)(x[4:], y[4:], torch.rand(4))
    loss = loss + Distillation()(x, y, x.detach() * 2)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    empty = x[:0]
    for crit, args in [(LabelSmooth(0.1), ()), (SampleSmooth(0.1), (torch.ones(0),)), (Distillation(), (empty,))]:
        assert crit(empty, y[:0], *args).item() == 0.0
