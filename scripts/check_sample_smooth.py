#!/usr/bin/env python3
"""Check resmooth's batch losses against the reference's criteria, written out here in PyTorch.

usage: check_sample_smooth.py CASES.json TENSORS.safetensors

TENSORS holds `logits` (N,C) float32 and `y` (N) int64; for each case i, `case{i}.p_raw` (the
GMM's p_ID: 1 for the originals), `case{i}.p` (p after --weighting, as resmooth drew it) and
`case{i}.loss` (resmooth's batch loss). CASES.json lists per case: weighting, normalised,
prob, n_ori, smooth_org, smooth_aug.

The reference's criteria, as its RandAugment/loss.py and train.py compute them:
  LabelSmoothing(eps):        (1 - eps) * nll + eps * mean_c(-log p_c), batch mean
  SampleLabelSmoothing(eps):  (1 - eps) * nll + (1 - p) * eps * mean_c(-log p_c), batch mean
                              (the confidence stays 1 - eps; only the smoothing term is scaled)
  pairs (originals, augmented): regular (LS(org), SLS(aug)); reverse (LS(aug), SLS(aug)) with
  p -> 1 - p; random and uniform (SLS(aug), SLS(aug)) with p permuted / drawn from U(0, 1)
  loss = prob * part(originals) + (1 - prob) * part(augmented), an empty part counting 0.
`normalised` cases check resmooth's documented deviation: confidence 1 - (1 - p) * eps.
Exit status 0 when every case agrees to 1e-6.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_weights import read_safetensors  # noqa: E402


def smoothed(x, y, confidence, smoothing):
    if x.size(0) == 0:
        return torch.tensor(0.0)
    logp = F.log_softmax(x, dim=-1)
    nll = -logp.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
    uniform = -logp.mean(dim=-1)
    return (confidence * nll + smoothing * uniform).mean()


def label_smoothing(eps):
    return lambda x, y, p: smoothed(x, y, 1.0 - eps, eps)


def sample_smoothing(eps, normalised):
    def loss(x, y, p):
        smoothing = (1 - p) * eps
        return smoothed(x, y, 1.0 - smoothing if normalised else 1.0 - eps, smoothing)
    return loss


def main():
    cases = json.load(open(sys.argv[1]))
    t = read_safetensors(sys.argv[2])
    logits, y = t["logits"], t["y"]
    worst = 0.0
    for i, c in enumerate(cases):
        p_raw, p_ours, got = t[f"case{i}.p_raw"], t[f"case{i}.p"], float(t[f"case{i}.loss"][0])
        w, n_ori, prob = c["weighting"], c["n_ori"], c["prob"]
        org_eps, aug_eps, norm = c["smooth_org"], c["smooth_aug"], c["normalised"]
        if w == "regular":
            p, crit = p_raw, (label_smoothing(org_eps), sample_smoothing(aug_eps, norm))
        elif w == "reverse":
            p, crit = 1 - p_raw, (label_smoothing(aug_eps), sample_smoothing(aug_eps, norm))
        else:
            # the draws are resmooth's; check they are what the weighting allows
            if w == "random":
                assert torch.equal(p_ours.sort().values, p_raw.sort().values), f"case {i}: not a permutation"
            else:
                assert bool(((p_ours >= 0) & (p_ours < 1)).all()), f"case {i}: not in [0, 1)"
            p, crit = p_ours, (sample_smoothing(aug_eps, norm), sample_smoothing(aug_eps, norm))
        assert torch.allclose(p, p_ours, atol=0, rtol=0), f"case {i}: p after {w} differs"
        want = prob * crit[0](logits[:n_ori], y[:n_ori], p[:n_ori]) \
            + (1 - prob) * crit[1](logits[n_ori:], y[n_ori:], p[n_ori:])
        diff = abs(float(want) - got)
        worst = max(worst, diff)
        status = "ok" if diff <= 1e-6 else "MISMATCH"
        print(f"case {i}: {w:8} normalised={norm!s:5} prob={prob} n_ori={n_ori}: "
              f"resmooth {got:.8f} reference {float(want):.8f} |diff| {diff:.2e} {status}")
        if diff > 1e-6:
            sys.exit(1)
    print(f"all {len(cases)} cases agree; largest difference {worst:.2e}")


if __name__ == "__main__":
    main()
