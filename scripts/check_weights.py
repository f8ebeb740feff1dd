#!/usr/bin/env python3
"""Load resmooth weights into the reference architectures (plain torch.nn, strict=True) and check
their logits.

usage: check_weights.py MODEL NUM_CLASSES WEIGHTS.safetensors [INPUTS.safetensors]
       check_weights.py MODEL NUM_CLASSES INITIAL.safetensors --train STEPS.safetensors
       check_weights.py --keys KEYS.json
       check_weights.py --script NET OUT.pt NUM_CLASSES [script|trace-train|trace-eval]
       check_weights.py --torchscript MODULE.pt WEIGHTS.safetensors INPUTS.safetensors

--train: STEPS holds `x` (N,3,H,W), `y` (N), `lr`, `wd`, `losses` (S) and the weights after S
steps as `final.<key>`; the same S steps of torch.optim.SGD(momentum 0.9, nesterov, weight
decay wd) on cross-entropy, in train mode from INITIAL, must give the same losses and weights.

--keys: KEYS.json is a list of {"model", "classes", "parameters", "state": {key: shape}}; each
model is built here and its parameter count and state_dict keys and shapes must be those listed
(built on the meta device: no memory, no initialisation, so the largest models are quick).

--script: saves NET (`tiny`: conv-BN-ReLU twice, global pool, linear; `tiny32`: the same without
the pool, for 32x32 images only; or a torchvision model
such as `torchvision.resnet18`) with NUM_CLASSES outputs as a TorchScript module, scripted
(default) or traced in training or evaluation mode, for `resmooth train --model torchscript:OUT`.
--torchscript: loads WEIGHTS (a state_dict resmooth wrote for that module) into MODULE with
strict=True and compares its eval-mode logits on INPUTS' `x` with INPUTS' `logits`.

MODEL is one of the reference's `get_model` names, built with the reference's module layout:
resnet18 (`feature` = torchvision ResNet-18 children with a 3x3 stride-1 stem and no max-pool,
then `classifier`), resnet50 and resnet200 (ImageNet-style bottleneck ResNets: 7x7 stem,
max-pool, `fc`), wresnet40_2 and wresnet28_10 (pre-activation WideResNets),
shakeshake26_2x{32,64,96,112}d (shake-shake ResNet-26) and shakeshake26_2x96d_next (shake-shake
ResNeXt-26, cardinality 4); or small_cnn, resmooth's own small network for the demo dataset (three
conv-BN-ReLU-max-pool stages, global average pooling, `classifier`), not the reference's. If
INPUTS is given it must hold tensors `x` (N,3,H,W) and `logits` (N,C): the eval-mode logits of
the model on `x` are compared. Needs only torch. Exit status 0 when everything matches.
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


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, each followed by BatchNorm; projection shortcut."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ImageNetResNet(nn.Module):
    """The reference's ResNet(dataset='imagenet', bottleneck=True): 7x7/2 stem, 3x3/2 max-pool,
    four stages of bottlenecks, global average pool, `fc`."""

    STAGES = {50: [3, 4, 6, 3], 200: [3, 24, 36, 3]}

    def __init__(self, depth, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, blocks) in enumerate(zip([64, 128, 256, 512], self.STAGES[depth])):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(cin, planes, 2 if b == 0 and i > 0 else 1))
                cin = planes * 4
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ShakeMix(torch.autograd.Function):
    """a * x1 + (1 - a) * x2 with a ~ U(0, 1) per sample in training (0.5 in eval); the gradient
    is split by an independent b ~ U(0, 1) per sample, drawn in the backward pass."""

    @staticmethod
    def forward(ctx, x1, x2, training):
        if not training:
            return 0.5 * x1 + 0.5 * x2
        a = torch.rand(x1.shape[0], 1, 1, 1, dtype=x1.dtype, device=x1.device)
        return a * x1 + (1 - a) * x2

    @staticmethod
    def backward(ctx, grad):
        b = torch.rand(grad.shape[0], 1, 1, 1, dtype=grad.dtype, device=grad.device)
        return b * grad, (1 - b) * grad, None


class ShakeShortcut(nn.Module):
    """Shake-shake's projection: ReLU, then two strided 1x1 convs, the second on the input shifted
    by one pixel up and left (zero-filled), concatenated and batch-normalised."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        h = F.relu(x)
        shifted = F.pad(h[:, :, 1:, 1:], (0, 1, 0, 1))
        s = self.stride
        return self.bn(torch.cat([self.conv1(h[:, :, ::s, ::s]), self.conv2(shifted[:, :, ::s, ::s])], 1))


class ShakeBlock(nn.Module):
    """Two ReLU-conv-BN-ReLU-conv-BN branches mixed by ShakeMix, plus the input or its projection.
    Like the reference, every block owns a `shortcut` (its `x and None or y` idiom always builds
    one), used only where the width changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.project = cin != cout
        self.shortcut = ShakeShortcut(cin, cout, stride)
        self.branch1, self.branch2 = (nn.Sequential(
            nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)) for _ in range(2))

    def forward(self, x):
        h = ShakeMix.apply(self.branch1(x), self.branch2(x), self.training)
        return h + (self.shortcut(x) if self.project else x)


class ShakeBottleneck(nn.Module):
    """Two 1x1-BN-ReLU, grouped 3x3-BN-ReLU, 1x1-BN branches mixed by ShakeMix; a shortcut
    projection only where the width changes."""

    def __init__(self, cin, mid, cout, groups, stride):
        super().__init__()
        self.shortcut = ShakeShortcut(cin, cout, stride) if cin != cout else None
        self.branch1, self.branch2 = (nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)) for _ in range(2))

    def forward(self, x):
        h = ShakeMix.apply(self.branch1(x), self.branch2(x), self.training)
        return h + (x if self.shortcut is None else self.shortcut(x))


class ShakeNet(nn.Module):
    """A shake-shake network of depth 26: a 3x3 `c_in` stem (with bias), three stages of blocks,
    ReLU, the reference's 8x8 average pool (global at 32x32 inputs) and `fc_out`."""

    def __init__(self, stem, stages, num_classes):
        super().__init__()
        self.c_in = nn.Conv2d(3, stem, 3, padding=1)
        for i, blocks in enumerate(stages):
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.fc_out = nn.Linear(stages[-1][-1].branch1[-1].num_features, num_classes)

    def forward(self, x):
        h = self.layer3(self.layer2(self.layer1(self.c_in(x))))
        return self.fc_out(F.avg_pool2d(F.relu(h), 8).flatten(1))


def shake_resnet26(width, num_classes):
    """shakeshake26_2x{width}d: widths 16 -> w -> 2w -> 4w, four blocks per stage."""
    stages, cin = [], 16
    for i, cout in enumerate([width, 2 * width, 4 * width]):
        stages.append([ShakeBlock(cin if b == 0 else cout, cout, 2 if b == 0 and i > 0 else 1) for b in range(4)])
        cin = cout
    return ShakeNet(16, stages, num_classes)


def shake_resnext26(width, groups, num_classes):
    """shakeshake26_2x96d_next: a 64-channel stem, then stages of two bottlenecks with 4n outputs
    and n * (width // 64) * groups middle channels, for n = 64, 128, 256."""
    stages, cin = [], 64
    for i, n in enumerate([64, 128, 256]):
        mid, cout = n * (width // 64) * groups, 4 * n
        stages.append([ShakeBottleneck(cin if b == 0 else cout, mid, cout, groups, 2 if b == 0 and i > 0 else 1)
                       for b in range(2)])
        cin = cout
    return ShakeNet(64, stages, num_classes)


class SmallCNN(nn.Module):
    """resmooth's own `small_cnn` (not the reference's): the demo's network on a CPU."""

    def __init__(self, num_classes):
        super().__init__()
        layers, cin = [], 3
        for cout in (16, 32, 64):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                       nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def build(name, num_classes):
    """The reference's `get_model(name, num_classes)`, from the classes above; `small_cnn` is ours."""
    shake = {"shakeshake26_2x%dd" % w: w for w in (32, 64, 96, 112)}
    if name == "resnet18":
        return ResNet18(num_classes)
    if name in ("resnet50", "resnet200"):
        return ImageNetResNet(int(name[6:]), num_classes)
    if name in ("wresnet40_2", "wresnet28_10"):
        depth, k = name[7:].split("_")
        return WideResNet(int(depth), int(k), num_classes)
    if name in shake:
        return shake_resnet26(shake[name], num_classes)
    if name == "shakeshake26_2x96d_next":
        return shake_resnext26(96, 4, num_classes)
    if name == "small_cnn":
        return SmallCNN(num_classes)
    sys.exit("unknown model %s" % name)


def check_keys(path):
    with open(path) as f:
        cases = json.load(f)
    bad = 0
    for case in cases:
        with torch.device("meta"):
            model = build(case["model"], case["classes"])
        params = sum(p.numel() for p in model.parameters())
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        theirs = case["state"]
        missing = sorted(set(ours) - set(theirs))
        extra = sorted(set(theirs) - set(ours))
        shapes = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
        ok = not missing and not extra and not shapes and params == case["parameters"]
        bad += not ok
        print("%s %d classes: %d parameters (resmooth %d), %d state_dict entries, %d missing %s, "
              "%d unexpected %s, %d shapes differ %s: %s" % (
                  case["model"], case["classes"], params, case["parameters"], len(ours), len(missing),
                  missing[:3], len(extra), extra[:3], len(shapes), shapes[:3], "ok" if ok else "MISMATCH"))
    if bad:
        sys.exit("%d of %d models differ" % (bad, len(cases)))
    print("all %d models agree" % len(cases))


class TinyNet(nn.Module):
    """A small BatchNorm network for TorchScript tests."""

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class Tiny32Net(TinyNet):
    """TinyNet whose head reads the flattened 16x16 feature map: it takes 32x32 images only."""

    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.features[-2] = nn.Identity()
        self.head = nn.Linear(16 * 16 * 16, num_classes)


def save_torchscript(net, out, num_classes, how="script"):
    torch.manual_seed(0)
    if net == "tiny":
        model = TinyNet(num_classes)
    elif net == "tiny32":
        model = Tiny32Net(num_classes)
    elif net.startswith("torchvision."):
        import torchvision
        model = getattr(torchvision.models, net.split(".", 1)[1])(num_classes=num_classes)
    else:
        sys.exit("unknown network %s: tiny, tiny32 or torchvision.NAME" % net)
    if how == "script":
        module = torch.jit.script(model)
    else:
        model.train(how == "trace-train")
        module = torch.jit.trace(model, torch.randn(2, 3, 32, 32))
    torch.jit.save(module, out)
    print("saved %s (%s, %d classes, %d parameters) to %s" % (
        net, how, num_classes, sum(p.numel() for p in model.parameters()), out))


def check_torchscript(module_path, weights, inputs):
    module = torch.jit.load(module_path)
    state = read_safetensors(weights)
    module.load_state_dict(state, strict=True)
    print("loaded %d tensors into %s with strict=True" % (len(state), module_path))
    io = read_safetensors(inputs)
    module.eval()
    with torch.no_grad():
        diff = (module(io["x"]) - io["logits"]).abs().max().item()
    print("max |logits difference| = %.3g" % diff)
    if diff > 1e-4:
        sys.exit("logits differ from resmooth's by %g" % diff)


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
    if len(sys.argv) == 3 and sys.argv[1] == "--keys":
        return check_keys(sys.argv[2])
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--script":
        return save_torchscript(sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:])
    if len(sys.argv) == 5 and sys.argv[1] == "--torchscript":
        return check_torchscript(*sys.argv[2:])
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    name, classes, weights = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    model = build(name, classes)
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
