#!/usr/bin/env python3
"""Instrumentation of the reference train.py for the GPU proof (scripts/gpu_proof.py, docs/FIDELITY.md).

usage:
  fidelity_probe.py run --record DIR [--cpu] [--force-stubs] RUN_REFERENCE.py [train.py flags ...]
      Runs the staged reference (run_reference.py, which runs train.py unchanged) in this process
      after patching, from the outside, the few library entry points it reports through:
        torch.utils.tensorboard.SummaryWriter  -> a recorder: every add_scalar as one JSON line
                                                  {tag, value, step, wall} in DIR/scalars.jsonl;
                                                  images, figures, histograms are dropped
        sklearn GaussianMixture.fit            -> after fitting, DIR/gmm.json: means, variances,
                                                  weights, n_iter, converged, and the OOD fraction
                                                  (p_ID < 0.5) of the original and augmented views
        tqdm.set_description, torch.load       -> timestamped events in DIR/events.jsonl (start of
                                                  each train/test loop, loading the baseline, exit)
      Stubs are inserted only for modules that are missing (tensorboard, matplotlib, tqdm,
      skimage); --force-stubs inserts them anyway (to test them). --cpu makes the CUDA-only
      reference run on a CPU: Tensor.cuda and Module.cuda become the identity and
      torch.tensor(..., device='cuda') is made on the CPU (for the CPU smoke test only).
      The environment variable FIDELITY_RECORD may stand in for --record.

  fidelity_probe.py tiny-cifar SRC_DIR OUT_DIR [--train N] [--test N]
      Writes OUT_DIR/cifar-10-batches-py (the reference's torchvision reads it) and
      OUT_DIR/cifar-10-batches-bin (resmooth reads it) holding the same images: the first N/10
      training and test images of each class of SRC_DIR/cifar-10-batches-py (the data of the
      CPU smoke test, gpu_proof.py --quick, so that both programs read the very same pixels).

What the records mean is read by scripts/gpu_proof_report.py.
"""
import argparse
import json
import os
import pickle
import sys
import time
import types

PROCESS_START = time.time()


# ----------------------------------------------------------------------------------------------
# recording
class Recorder:
    """Appends JSON lines to files under one folder, flushing each line (a killed run keeps its data)."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.files = {}

    def append(self, name, obj):
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = open(os.path.join(self.folder, name), "a", buffering=1)
        f.write(json.dumps(obj) + "\n")
        f.flush()

    def event(self, kind, **fields):
        self.append("events.jsonl", dict(kind=kind, wall=time.time(), **fields))

    def write_json(self, name, obj):
        path = os.path.join(self.folder, name)
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(path + ".tmp", path)


def _as_float(v):
    try:
        return float(v.item()) if hasattr(v, "item") else float(v)
    except Exception:
        return None


def _nop(*args, **kwargs):
    return None


def make_summary_writer(rec):
    class RecordingSummaryWriter:
        """Stands in for torch.utils.tensorboard.SummaryWriter: scalars are recorded, the rest dropped."""

        def __init__(self, log_dir=None, *args, **kwargs):
            self.log_dir = log_dir
            rec.event("summary_writer", log_dir=str(log_dir))

        def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, *args, **kwargs):
            rec.append("scalars.jsonl", {"tag": tag, "value": _as_float(scalar_value),
                                         "step": None if global_step is None else int(global_step),
                                         "wall": time.time()})

        def add_figure(self, tag, figure, *args, **kwargs):
            # the real writer closes the figure after rendering it; do the same so figures do not pile up
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None and hasattr(plt, "close"):
                try:
                    plt.close(figure)
                except Exception:
                    pass

        add_image = add_images = add_histogram = add_text = add_graph = add_hparams = _nop
        flush = close = _nop

        def __getattr__(self, name):
            return _nop

    return RecordingSummaryWriter


# ----------------------------------------------------------------------------------------------
# stubs for missing modules
class _Anything:
    """An object every attribute, call and item of which is itself (a do-nothing matplotlib)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __iter__(self):
        return iter(())


def _missing(name, force):
    if force:
        return True
    import importlib.util
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _module(name):
    """An empty module with a spec (torch looks some optional modules up with importlib.util.find_spec)."""
    import importlib.machinery
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return mod


def install_stubs(rec, force):
    stubbed = []
    if _missing("matplotlib", force):
        mpl = _module("matplotlib")
        plt = _module("matplotlib.pyplot")
        plt.subplots = lambda *a, **k: (_Anything(), _Anything())
        plt.figure = lambda *a, **k: _Anything()
        plt.close = _nop
        mpl.pyplot = plt
        mpl.use = _nop
        sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = mpl, plt
        stubbed.append("matplotlib")
    else:
        os.environ.setdefault("MPLBACKEND", "Agg")
    if _missing("tqdm", force):
        tq = _module("tqdm")

        class tqdm:  # noqa: N801 (the name the reference imports)
            def __init__(self, iterable=None, *args, **kwargs):
                self.iterable = iterable

            def __iter__(self):
                return iter(self.iterable)

            def __len__(self):
                return len(self.iterable)

            set_description = set_postfix = update = close = refresh = _nop

        tq.tqdm = tqdm
        sys.modules["tqdm"] = tq
        stubbed.append("tqdm")
    if _missing("skimage", force):
        # the reference imports skimage.filters for its 'sobel' augmentation only (not used here)
        sk = _module("skimage")
        filters = _module("skimage.filters")

        def sobel(*a, **k):
            raise RuntimeError("skimage is not installed (fidelity_probe stub)")

        filters.sobel = sobel
        sk.filters = filters
        sys.modules["skimage"], sys.modules["skimage.filters"] = sk, filters
        stubbed.append("skimage")
    return stubbed


# ----------------------------------------------------------------------------------------------
# patches
def patch_tensorboard(rec, force):
    import torch.utils
    writer = make_summary_writer(rec)
    try:
        if force:
            raise ImportError("forced stub")
        import torch.utils.tensorboard as tb
        tb.SummaryWriter = writer
        return "patched"
    except Exception:
        mod = _module("torch.utils.tensorboard")
        mod.SummaryWriter = writer
        sys.modules["torch.utils.tensorboard"] = mod
        torch.utils.tensorboard = mod
        return "stub module"


def patch_tqdm(rec):
    import tqdm as tq
    base = tq.tqdm

    class RecordingTqdm(base):
        def set_description(self, desc=None, *args, **kwargs):
            rec.event("loop", desc=str(desc))
            return super().set_description(desc, *args, **kwargs)

    tq.tqdm = RecordingTqdm


def patch_torch_load(rec):
    import torch
    original = torch.load

    def load(f, *args, **kwargs):
        rec.event("torch_load", path=str(f))
        return original(f, *args, **kwargs)

    torch.load = load


def batch_size_of(argv, default=256):
    """train.py's --batch-size (default 256) from its command line."""
    for i, a in enumerate(argv):
        if a == "--batch-size" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--batch-size="):
            return int(a.split("=", 1)[1])
    return default


def patch_gmm(rec, batch):
    import numpy as np
    from sklearn.mixture import GaussianMixture
    original = GaussianMixture.fit

    def fit(self, X, y=None):
        started = time.time()
        result = original(self, X, y)
        ended = time.time()
        try:
            x = np.asarray(X, dtype=np.float64).reshape(-1)
            means = np.asarray(self.means_, dtype=np.float64).reshape(-1)
            variances = np.asarray(self.covariances_, dtype=np.float64).reshape(-1)
            weights = np.asarray(self.weights_, dtype=np.float64).reshape(-1)
            id_k = int(np.argmin(means))
            p_id = self.predict_proba(np.asarray(X).reshape(-1, 1))[:, id_k]
            n = len(x)
            out = {
                "means": means.tolist(), "variances": variances.tolist(), "weights": weights.tolist(),
                "id_component": id_k, "n_iter": int(getattr(self, "n_iter_", -1)),
                "converged": bool(getattr(self, "converged_", False)),
                "lower_bound": _as_float(getattr(self, "lower_bound_", float("nan"))),
                "max_iter": self.max_iter, "tol": self.tol, "reg_covar": self.reg_covar,
                "n_values": n, "batch_size": batch, "fit_started": started, "fit_ended": ended,
                "ood_fraction_all": float(np.mean(p_id < 0.5)),
            }
            # the reference concatenates, per loader batch, the B losses of the original views then the
            # B of the augmented views (drop_last=True, so every batch has B samples)
            if batch > 0 and n % (2 * batch) == 0:
                aug = (np.arange(n) // batch) % 2 == 1
                out.update({
                    "layout": "per batch: %d original then %d augmented" % (batch, batch),
                    "n_augmented": int(aug.sum()), "n_original": int((~aug).sum()),
                    "ood_fraction_augmented": float(np.mean(p_id[aug] < 0.5)),
                    "ood_fraction_original": float(np.mean(p_id[~aug] < 0.5)),
                    "mean_log_loss_augmented": float(np.mean(x[aug])),
                    "mean_log_loss_original": float(np.mean(x[~aug])),
                })
            else:
                out["layout"] = "unknown: %d values are not a multiple of 2 x batch %d" % (n, batch)
            rec.write_json("gmm.json", out)
            rec.event("gmm_fit", seconds=ended - started)
        except Exception as e:  # never break the reference run
            rec.event("gmm_dump_failed", error=repr(e))
        return result

    GaussianMixture.fit = fit


def patch_cpu():
    import torch

    def same(self, *args, **kwargs):
        return self

    torch.Tensor.cuda = same
    torch.nn.Module.cuda = same
    original = torch.tensor

    def tensor(data, *args, **kwargs):
        d = kwargs.get("device")
        if d is not None and str(d).startswith("cuda"):
            kwargs["device"] = "cpu"
        return original(data, *args, **kwargs)

    torch.tensor = tensor


def cmd_run(argv):
    p = argparse.ArgumentParser(prog="fidelity_probe.py run")
    p.add_argument("--record", default=os.environ.get("FIDELITY_RECORD"), help="folder for the records")
    p.add_argument("--cpu", action="store_true", help="run the CUDA-only reference on the CPU (smoke test)")
    p.add_argument("--force-stubs", action="store_true", help="stub tensorboard/matplotlib/tqdm/skimage even if present")
    p.add_argument("script", help="the staged run_reference.py (or train.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="train.py's flags")
    a = p.parse_args(argv)
    if not a.record:
        p.error("--record DIR (or FIDELITY_RECORD) is required")
    rec = Recorder(a.record)
    rec.event("process_start", wall_start=PROCESS_START, argv=a.args, cpu=a.cpu)
    stubbed = install_stubs(rec, a.force_stubs)
    tb = patch_tensorboard(rec, a.force_stubs)
    patch_tqdm(rec)
    patch_torch_load(rec)
    batch = batch_size_of(a.args)
    patch_gmm(rec, batch)
    if a.cpu:
        patch_cpu()
    rec.event("patched", stubs=stubbed, tensorboard=tb, batch_size=batch)
    import runpy
    script = os.path.abspath(a.script)
    sys.argv = [script] + a.args
    status = "ok"
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        status = "exit %s" % (e.code,)
        if e.code not in (None, 0):
            raise
    except BaseException as e:
        status = "error: %r" % (e,)
        raise
    finally:
        rec.event("process_end", status=status)


# ----------------------------------------------------------------------------------------------
# tiny dataset for the CPU smoke test
def cmd_tiny(argv):
    import numpy as np
    p = argparse.ArgumentParser(prog="fidelity_probe.py tiny-cifar")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=512)
    p.add_argument("--test", type=int, default=256)
    a = p.parse_args(argv)
    src = os.path.join(a.src, "cifar-10-batches-py")

    def load(name):
        with open(os.path.join(src, name), "rb") as f:
            d = pickle.load(f, encoding="latin1")
        return np.asarray(d["data"], dtype=np.uint8), np.asarray(d["labels"])

    def pick(x, y, n):
        per, extra = divmod(n, 10)
        keep = []
        for c in range(10):
            keep.extend(np.flatnonzero(y == c)[:per + (1 if c < extra else 0)].tolist())
        keep.sort()
        return x[keep], y[keep]

    xs, ys = zip(*(load("data_batch_%d" % i) for i in range(1, 6)))
    x, y = pick(np.concatenate(xs), np.concatenate(ys), a.train)
    xt, yt = pick(*load("test_batch"), a.test)
    batches = [("data_batch_%d" % (i + 1), x[part], y[part])
               for i, part in enumerate(np.array_split(np.arange(len(y)), 5))]
    batches.append(("test_batch", xt, yt))
    py_dir = os.path.join(a.out, "cifar-10-batches-py")
    bin_dir = os.path.join(a.out, "cifar-10-batches-bin")
    os.makedirs(py_dir, exist_ok=True)
    os.makedirs(bin_dir, exist_ok=True)
    for name, bx, by in batches:
        with open(os.path.join(py_dir, name), "wb") as f:
            pickle.dump({"data": bx, "labels": by.tolist()}, f)
        # the official binary record: 1 label byte, then the 3,072 pixel bytes as stored in the pickle
        np.concatenate([by.astype(np.uint8)[:, None], bx], axis=1).tofile(os.path.join(bin_dir, name + ".bin"))
    with open(os.path.join(src, "batches.meta"), "rb") as f:
        meta = f.read()
    with open(os.path.join(py_dir, "batches.meta"), "wb") as f:
        f.write(meta)
    with open(os.path.join(a.src, "cifar-10-batches-bin", "batches.meta.txt"), "rb") as f:
        meta_txt = f.read()
    with open(os.path.join(bin_dir, "batches.meta.txt"), "wb") as f:
        f.write(meta_txt)
    print("wrote %d train and %d test images under %s (cifar-10-batches-py and -bin)" % (len(y), len(yt), a.out))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "tiny-cifar"):
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"run": cmd_run, "tiny-cifar": cmd_tiny}[cmd](rest)


if __name__ == "__main__":
    main()
