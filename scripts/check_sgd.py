#!/usr/bin/env python3
"""Check resmooth's SGD steps against torch.optim.SGD, bit for bit.

usage: check_sgd.py STEPS.safetensors

STEPS holds `lr` (S), `momentum`, `wd`, `nesterov` (one value each), the parameters before the
first step as `initial.<name>`, the gradient of each step as `grad<s>.<name>` and resmooth's
parameters after the S steps as `final.<name>`. The same steps of torch.optim.SGD (single-tensor,
foreach and fused forms, which agree on the CPU) must give exactly `final.*`.
Needs only torch. Exit status 0 when they do.
"""
import sys

import torch

from check_weights import read_safetensors


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    io = read_safetensors(sys.argv[1])
    names = sorted(k[len("initial."):] for k in io if k.startswith("initial."))
    lrs = io["lr"].tolist()
    momentum, wd, nesterov = io["momentum"].item(), io["wd"].item(), bool(io["nesterov"].item())
    failed = False
    for form in [dict(foreach=False), dict(foreach=True), dict(fused=True)]:
        params = [torch.nn.Parameter(io["initial." + n].clone()) for n in names]
        opt = torch.optim.SGD(params, lr=lrs[0], momentum=momentum, weight_decay=wd, nesterov=nesterov, **form)
        for s, lr in enumerate(lrs):
            for group in opt.param_groups:
                group["lr"] = lr
            for n, p in zip(names, params):
                p.grad = io[f"grad{s}.{n}"].clone()
            opt.step()
        worst = max((p.detach() - io["final." + n]).abs().max().item() for n, p in zip(names, params))
        same = all(torch.equal(p.detach(), io["final." + n]) for n, p in zip(names, params))
        print(f"torch.optim.SGD {form}: {'identical' if same else 'DIFFERENT'} (largest difference {worst:.3g})")
        failed |= not same
    if failed:
        sys.exit("resmooth's SGD steps differ from torch.optim.SGD's")


if __name__ == "__main__":
    main()
