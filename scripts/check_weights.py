#!/usr/bin/env python3
"""Load resmooth weights into the reference architectures (plain torch.nn, strict=True) and check
their logits.

usage: check_weights.py MODEL NUM_CLASSES WEIGHTS.safetensors [INPUTS.safetensors]
       check_weights.py MODEL NUM_CLASSES INITIAL.safetensors --train STEPS.safetensors

--train: STEPS holds `x` (N,3,H,W), `y` (N), `lr`, `wd`, `losses` (S) and the weights after S
steps as `final.<key>`; the same S steps of torch.optim.SGD(momentum 0.9, nesterov, weight
decay wd) on cross-entropy, in train mode from INITIAL, must give the same losses and weights.

MODEL is resnet18 or wresnet28_10, built with the reference's module layout (resnet18:
`feature` = torchvision ResNet-18 children with a 3x3 stride-1 stem and no max-pool, then
`classifier`; wresnet28_10: pre-activation WideResNet-28-10). If INPUTS is given it must hold
tensors `x` (N,3,H,W) and `logits` (N,C): the eval-mode logits of the model on `x` are compared.
Needs only torch. Exit status 0 when everything matches.
"""
import json
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8,
          "BF16": torch.bfloat16, "F16": torch.float16, "I32": torch.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=DTYPES[info["dtype"]]) if end > start \
            else torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        layers += [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(1)]
        self.feature = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(self.feature(x))


class WideBasic(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=0.1)
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=0.0)
        self.bn2 = nn.BatchNorm2d(planes, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=True))

    def forward(self, x):
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, num_classes):
        super().__init__()
        n = (depth - 4) // 6
        stages = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, stages[0], 3, 1, 1, bias=True)
        cin = stages[0]
        for li in range(3):
            blocks = []
            for b in range(n):
                blocks.append(WideBasic(cin, stages[li + 1], (2 if li > 0 else 1) if b == 0 else 1))
                cin = stages[li + 1]
            setattr(self, "layer%d" % (li + 1), nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(cin, momentum=0.1)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(F.relu(self.bn1(out)), (1, 1))
        return self.linear(out.view(out.size(0), -1))


def check_training(model, steps_path):
    io = read_safetensors(steps_path)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=io["lr"].item(), momentum=0.9, nesterov=True,
                          weight_decay=io["wd"].item())
    model.train()
    losses = []
    for _ in range(len(io["losses"])):
        loss = F.cross_entropy(model(io["x"]), io["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print("losses: pytorch %s, resmooth %s" % (["%.6f" % l for l in losses], ["%.6f" % l for l in io["losses"].tolist()]))
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(losses, io["losses"].tolist()))
    state = model.state_dict()
    # the whole update, as one vector: |ours - pytorch| / |pytorch - initial|; float32 rounding in
    # multithreaded reductions gives ~1e-4, a wrong update rule (decay, momentum) far more
    num = sum((state[k[6:]].double() - v.double()).pow(2).sum().item() for k, v in io.items()
              if k.startswith("final.") and v.is_floating_point())
    den = sum((state[k[6:]].double() - initial[k[6:]].double()).pow(2).sum().item() for k, v in io.items()
              if k.startswith("final.") and v.is_floating_point())
    wdiff = (num / den) ** 0.5
    print("max relative loss difference %.3g, relative difference of the weight updates %.3g" % (worst, wdiff))
    if worst > 1e-4 or wdiff > 2e-3:
        sys.exit("training diverges from PyTorch's")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    name, classes, weights = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    model = ResNet18(classes) if name == "resnet18" else WideResNet(28, 10, classes)
    state = read_safetensors(weights)
    model.load_state_dict(state, strict=True)
    print("loaded %d tensors into %s with strict=True" % (len(state), name))
    if len(sys.argv) > 5 and sys.argv[4] == "--train":
        torch.use_deterministic_algorithms(True)
        check_training(model, sys.argv[5])
    elif len(sys.argv) > 4:
        io = read_safetensors(sys.argv[4])
        model.eval()
        with torch.no_grad():
            got = model(io["x"])
        diff = (got - io["logits"]).abs().max().item()
        print("max |logits difference| = %.3g" % diff)
        if diff > 1e-3:
            sys.exit("logits differ from resmooth's by %g" % diff)


if __name__ == "__main__":
    main()
