#!/usr/bin/env python3
"""The reference's files, written and read by PyTorch itself, for tests/reference_files.rs.

usage: reference_pth.py write MODEL CLASSES EPOCH DIR
       reference_pth.py check MODEL CLASSES FILE.pth EXPECTED.safetensors
       reference_pth.py order OUT.json
       reference_pth.py cifar DIR PROTOCOL

write: the reference's model (scripts/check_weights.py) after one step of its SGD (lr 0.1,
momentum 0.9, Nesterov, weight decay 5e-4) on random 8x8 images, saved as the reference's
train.py saves it: DIR/model.pth, torch.save({'epoch', 'log', 'optimizer', 'model'}); the same
with the state_dict of nn.DataParallel(model) (keys under `module.`): DIR/data_parallel.pth; the
state_dict alone: DIR/bare.pth. DIR/expected.safetensors gets `model.<key>` for the state_dict,
`optimizer.momentum_buffer.<name>` for each parameter's momentum buffer, and `x`, `logits`:
eval-mode logits on random 8x8 images.

check: torch.load(FILE) (weights_only, PyTorch's default), load_state_dict(strict=True) of its
['model'] into the reference's model and optimizer.load_state_dict(['optimizer']) into the
reference's SGD; the weights and momentum buffers must equal EXPECTED's (the keys written by
`write`, as resmooth's checkpoint.safetensors also names them).

order: every model's parameter names and state_dict keys, in order (10 classes): the reference's, and small_cnn (ours).

cifar: torchvision's `cifar-10-batches-py` in DIR (six batches of two random images each,
pickled by numpy with pickle protocol PROTOCOL) and the same images as `cifar-10-batches-bin`.
"""
import json
import os
import pickle
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_weights import build, read_safetensors  # noqa: E402

NAMES = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}


def write_safetensors(path, tensors):
    header, body = {}, b""
    for name, t in tensors.items():
        raw = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def write(name, classes, epoch, out):
    torch.manual_seed(7)
    model = build(name, classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    model.train()
    x = torch.randn(4, 3, 8, 8)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(4) % classes)
    opt.zero_grad()
    loss.backward()
    opt.step()
    log = {"train": {"loss": loss.item()}, "test": {"top1": 0.5}}
    for file, saved in [("model.pth", model), ("data_parallel.pth", torch.nn.DataParallel(model))]:
        torch.save({"epoch": epoch, "log": log, "optimizer": opt.state_dict(), "model": saved.state_dict()},
                   os.path.join(out, file))
    torch.save(model.state_dict(), os.path.join(out, "bare.pth"))
    tensors = {"model." + k: v for k, v in model.state_dict().items()}
    for n, p in model.named_parameters():
        buf = opt.state[p].get("momentum_buffer")
        if buf is not None:
            tensors["optimizer.momentum_buffer." + n] = buf
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        tensors["x"], tensors["logits"] = x, model(x)
    write_safetensors(os.path.join(out, "expected.safetensors"), tensors)


def check(name, classes, path, expected):
    want = read_safetensors(expected)
    data = torch.load(path)
    model = build(name, classes)
    model.load_state_dict(data["model"], strict=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    opt.load_state_dict(data["optimizer"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, want["model." + k]), k
    buffers = 0
    for n, p in model.named_parameters():
        key = "optimizer.momentum_buffer." + n
        buf = opt.state[p].get("momentum_buffer") if p in opt.state else None
        assert (buf is None) == (key not in want), n
        if buf is not None:
            assert torch.equal(buf, want[key]), n
            buffers += 1
    print("strict=True load, epoch %d, %d momentum buffers, log %s" % (data["epoch"], buffers, sorted(data["log"])))


def order(out):
    names = ["resnet18", "resnet50", "resnet200", "wresnet40_2", "wresnet28_10", "shakeshake26_2x32d",
             "shakeshake26_2x64d", "shakeshake26_2x96d", "shakeshake26_2x112d", "shakeshake26_2x96d_next",
             "small_cnn"]
    result = {}
    for name in names:
        with torch.device("meta"):
            model = build(name, 10)
        result[name] = {"parameters": [n for n, _ in model.named_parameters()], "state_dict": list(model.state_dict())}
    with open(out, "w") as f:
        json.dump(result, f)


def cifar(root, protocol):
    import numpy as np
    rng = np.random.default_rng(3)
    py, bin_ = os.path.join(root, "cifar-10-batches-py"), os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(py)
    os.makedirs(bin_)
    for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=2)]
        with open(os.path.join(py, name), "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": ["a.png", "b.png"]},
                        f, protocol=protocol)
        with open(os.path.join(bin_, name + ".bin"), "wb") as f:
            for row, label in zip(data, labels):
                f.write(bytes([label]) + row.tobytes())


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "check":
        check(args[0], int(args[1]), args[2], args[3])
    elif cmd == "order":
        order(args[0])
    elif cmd == "cifar":
        cifar(args[0], int(args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
