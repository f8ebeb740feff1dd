"""The method's criteria as torch modules, equal to the reference's classes (its
`RandAugment/loss.py`): plain PyTorch, no libtorch linkage of ours.

    LabelSmooth(eps)(x, y)          (1 - eps) * nll + eps * mean_c(-log p_c), batch mean
    SampleSmooth(eps)(x, y, p_id)   (1 - eps) * nll + (1 - p_id) * eps * mean_c(-log p_c)
    Distillation(K, lamda, T)(x, y, x_teacher)
                                    CE(x / T, y) + lamda * T^2 * KL over the teacher's top K

A ReSmooth step (the reference's `train.py`, `--loss SampleSmooth --weighting regular`):

    loss = prob * LabelSmooth(smooth_org)(x[:n_ori], y[:n_ori]) \\
        + (1 - prob) * SampleSmooth(smooth_aug)(x[n_ori:], y[n_ori:], p_id[n_ori:])

An empty batch part gives 0, as the reference's `get_loss` does, so `prob = 0` or `1` needs no
special case.
"""
import torch
import torch.nn.functional as F


def _smoothed(x, target, confidence, smoothing):
    """`confidence * nll + smoothing * mean_c(-log p_c)`, averaged over the batch; 0 when empty."""
    if x.shape[0] == 0:
        return x.new_zeros(())
    logp = F.log_softmax(x, dim=-1)
    nll = -logp.gather(dim=-1, index=target.unsqueeze(1)).squeeze(1)
    uniform = -logp.mean(dim=-1)
    return (confidence * nll + smoothing * uniform).mean()


class LabelSmooth(torch.nn.Module):
    """Cross-entropy with label smoothing `smoothing` (the reference's `LabelSmoothing`)."""

    def __init__(self, smoothing=0.0):
        super().__init__()
        self.smoothing = float(smoothing)

    def forward(self, x, target):
        return _smoothed(x, target, 1.0 - self.smoothing, self.smoothing)

    def extra_repr(self):
        return f"smoothing={self.smoothing}"


class SampleSmooth(torch.nn.Module):
    """Sample-wise label smoothing (the reference's `SampleLabelSmoothing`): sample i's uniform
    term is weighted by `(1 - p_id[i]) * smoothing` while the target keeps weight
    `1 - smoothing`, as the reference computes it (its weights do not sum to 1 unless p_id = 0).
    `p_id`: a tensor (N,) or a number."""

    def __init__(self, smoothing=0.0):
        super().__init__()
        self.smoothing = float(smoothing)

    def forward(self, x, target, p_id):
        p_id = torch.as_tensor(p_id, dtype=x.dtype, device=x.device)
        return _smoothed(x, target, 1.0 - self.smoothing, (1 - p_id) * self.smoothing)

    def extra_repr(self):
        return f"smoothing={self.smoothing}"


class Distillation(torch.nn.Module):
    """Knowledge distillation from a teacher's logits (the reference's `DistillationLoss`):
    cross-entropy of `x / T`, plus `lamda * T^2` times the KL term the reference computes over
    the teacher's top-`K` classes (K = -1: all): `sum_k softmax(x_k / T) * (log softmax(x_k / T)
    - log_softmax(t_k / T))`, the softmaxes taken over those K classes, batch mean.

    Departures, on purpose: the teacher's logits are detached here, where the reference asserts
    they need no grad; and K = -1 is read per call, where the reference overwrites its K with
    the first batch's class count."""

    def __init__(self, K=-1, lamda=0.5, T=5.0):
        super().__init__()
        self.K, self.lamda, self.T = int(K), float(lamda), float(T)

    def forward(self, x, target, x_teacher):
        if x.dim() != 2 or x_teacher.dim() != 2:
            raise ValueError(f"logits must be (N, C): got {tuple(x.shape)} and teacher {tuple(x_teacher.shape)}")
        if x.shape[0] == 0:
            return x.new_zeros(())
        x, x_teacher = x / self.T, x_teacher.detach() / self.T
        ce = F.cross_entropy(x, target, reduction="none")
        k = x_teacher.shape[1] if self.K == -1 else self.K
        top, index = torch.topk(x_teacher, k=k, dim=1)
        student = torch.gather(x, dim=1, index=index)
        log_student = F.log_softmax(student, dim=1)
        kl = (log_student.exp() * (log_student - F.log_softmax(top, dim=1))).sum(dim=1)
        return (ce + self.lamda * self.T ** 2 * kl).mean()

    def extra_repr(self):
        return f"K={self.K}, lamda={self.lamda}, T={self.T}"
