#!/usr/bin/env python3
"""Instrumentation and reporting for the side-by-side fidelity run (scripts/fidelity.sh, docs/FIDELITY.md).

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
      Writes OUT_DIR/cifar-10-batches-py with the first N/10 training and test images of each
      class of SRC_DIR/cifar-10-batches-py (the CPU smoke test's dataset for the reference).

  fidelity_probe.py report RECORDS [--out DIR]
      Reads what scripts/fidelity.sh recorded in RECORDS and writes DIR/fidelity.md (tables) and
      DIR/fidelity.json (the parsed data); prints the tables.
"""
import argparse
import json
import math
import os
import pickle
import re
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
    dst = os.path.join(a.out, "cifar-10-batches-py")
    os.makedirs(dst, exist_ok=True)

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
    for i, part in enumerate(np.array_split(np.arange(len(y)), 5)):
        with open(os.path.join(dst, "data_batch_%d" % (i + 1)), "wb") as f:
            pickle.dump({"data": x[part], "labels": y[part].tolist()}, f)
    xt, yt = pick(*load("test_batch"), a.test)
    with open(os.path.join(dst, "test_batch"), "wb") as f:
        pickle.dump({"data": xt, "labels": yt.tolist()}, f)
    with open(os.path.join(src, "batches.meta"), "rb") as f:
        meta = f.read()
    with open(os.path.join(dst, "batches.meta"), "wb") as f:
        f.write(meta)
    print("wrote %d train and %d test images under %s" % (len(y), len(yt), dst))


# ----------------------------------------------------------------------------------------------
# report
SIDES = [("ref", "reference (PyTorch)"), ("fp32", "ours fp32"), ("bf16", "ours bf16")]
RUNS = [("baseline", "baseline (--prob 1.0)"), ("rs_ra", "ReSmooth (--prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth)")]


def read_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a line cut by a kill
    return out


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def reference_run(d):
    """Per-epoch records of one reference run from its scalars and events."""
    scalars = read_jsonl(os.path.join(d, "scalars.jsonl"))
    events = read_jsonl(os.path.join(d, "events.jsonl"))
    acc = [s for s in scalars if s["tag"] == "test/1.test_acc"]
    loops = [e for e in events if e["kind"] == "loop"]
    train_starts = {}
    test_starts = {}
    for e in loops:
        m = re.match(r"\[train (\d+)/", e["desc"])
        if m:
            train_starts.setdefault(int(m.group(1)), e["wall"])
        m = re.match(r"\[test (\d+)\]", e["desc"])
        if m:
            test_starts.setdefault(int(m.group(1)), e["wall"])
    epochs = []
    prev = train_starts.get(min(train_starts)) if train_starts else None
    for s in acc:
        ep = s["step"]
        rec = {"epoch": ep, "test_top1": s["value"]}
        if prev is not None:
            rec["seconds"] = s["wall"] - prev
        if ep in train_starts and ep in test_starts:
            rec["train_seconds"] = test_starts[ep] - train_starts[ep]
        loss = [x["value"] for x in scalars if x["tag"] == "test/2.test_loss" and x["step"] == ep]
        if loss:
            rec["test_loss"] = loss[0]
        tr = [x["value"] for x in scalars if x["tag"] == "train/1.train_acc" and x["step"] == ep]
        if tr:
            rec["train_top1"] = tr[0]
        epochs.append(rec)
        prev = s["wall"]
    gmm = read_json(os.path.join(d, "gmm.json"))
    detect = None
    if gmm:
        loads = [e for e in events if e["kind"] == "torch_load"]
        if loads:
            detect = gmm["fit_ended"] - loads[0]["wall"]
        gmm = {
            "means": gmm["means"], "variances": gmm["variances"], "weights": gmm["weights"],
            "iterations": gmm.get("n_iter"), "converged": gmm.get("converged"),
            "ood_fraction_augmented": gmm.get("ood_fraction_augmented"),
            "ood_fraction_original": gmm.get("ood_fraction_original"),
            "n_augmented": gmm.get("n_augmented"), "detection_seconds": detect,
            "fit_seconds": gmm["fit_ended"] - gmm["fit_started"], "layout": gmm.get("layout"),
        }
    patched = [e for e in events if e["kind"] == "patched"]
    start = [e for e in events if e["kind"] == "process_start"]
    end = [e for e in events if e["kind"] == "process_end"]
    return {"epochs": epochs, "gmm": gmm,
            "stubbed": patched[-1]["stubs"] if patched else None,
            "tensorboard": patched[-1]["tensorboard"] if patched else None,
            "first_train_after_s": (train_starts[min(train_starts)] - start[0]["wall_start"]) if (train_starts and start) else None,
            "status": end[-1]["status"] if end else ("no record" if not events else "killed or crashed")}


def ours_run(d):
    metrics = read_jsonl(os.path.join(d, "metrics.jsonl"))
    epochs = [{k: m.get(k) for k in ("epoch", "test_top1", "test_loss", "train_top1", "seconds", "train_seconds",
                                       "ood_fraction", "images_per_sec")} for m in metrics]
    log = read_text(os.path.join(d, "stderr.log"))
    gmm = read_json(os.path.join(d, "gmm.json"))
    if gmm is not None:
        gmm = {"means": gmm.get("means"), "variances": gmm.get("variances"), "weights": gmm.get("weights"),
               "iterations": gmm.get("iterations"), "converged": gmm.get("converged")}
    m = re.search(r"augmented views:\s*([0-9.]+)% of (\d+)", log)
    if gmm is not None and m:
        gmm["ood_fraction_augmented"] = float(m.group(1)) / 100
        gmm["n_augmented"] = int(m.group(2))
    m = re.search(r"original views:\s*([0-9.]+)% of (\d+)", log)
    if gmm is not None and m:
        gmm["ood_fraction_original"] = float(m.group(1)) / 100
    m = re.search(r"detection pass \(([0-9.]+)s\)", log)
    if gmm is not None and m:
        gmm["detection_seconds"] = float(m.group(1))
    return {"epochs": epochs, "gmm": gmm, "summary": read_json(os.path.join(d, "summary.json")),
            "on_cpu": "no CUDA GPU found" in log}


def pct(v):
    return "—" if v is None else "%.2f" % (100 * v)


def secs(v):
    return "—" if v is None else "%.1f" % v


def num(v, f="%.4f"):
    return "—" if v is None else f % v


def cmd_report(argv):
    p = argparse.ArgumentParser(prog="fidelity_probe.py report")
    p.add_argument("records", help="the folder fidelity.sh records into")
    p.add_argument("--out", help="where fidelity.md and fidelity.json go (default: RECORDS)")
    a = p.parse_args(argv)
    out = a.records
    dest = a.out or a.records
    os.makedirs(dest, exist_ok=True)
    phases = {}
    for ph in read_jsonl(os.path.join(out, "phases.jsonl")):
        phases[ph["phase"]] = ph
    config = read_json(os.path.join(out, "config.json")) or {}
    data = {"config": config, "phases": list(phases.values()), "runs": {}}
    for side, _ in SIDES:
        for run, _ in RUNS:
            d = os.path.join(out, side, run)
            r = reference_run(d) if side == "ref" else ours_run(d)
            ph = phases.get("%s/%s" % (side, run))
            r["phase"] = ph
            data["runs"]["%s/%s" % (side, run)] = r

    def state(side, run):
        ph = data["runs"]["%s/%s" % (side, run)]["phase"]
        if ph is None:
            return "not run"
        cpu = " (ran on the CPU)" if data["runs"]["%s/%s" % (side, run)].get("on_cpu") else ""
        return ph["status"] + cpu

    L = []
    L.append("# Fidelity: reference train.py vs resmooth train")
    L.append("")
    for k in ("date", "device", "epochs", "batch_size", "mode", "reference_train_py_md5", "resmooth_version", "torch"):
        if k in config:
            L.append("- %s: %s" % (k, config[k]))
    stubs = sorted({m for r in ("baseline", "rs_ra") for m in (data["runs"]["ref/" + r].get("stubbed") or [])})
    if any(data["runs"]["ref/" + r].get("stubbed") is not None for r in ("baseline", "rs_ra")):
        L.append("- reference: modules stubbed because missing: %s; SummaryWriter: %s" % (
            ", ".join(stubs) or "none", data["runs"]["ref/baseline"].get("tensorboard") or data["runs"]["ref/rs_ra"].get("tensorboard")))
    L.append("- accuracies: test top1 in %; seconds: per epoch, train + test (the reference: between consecutive "
             "`test/1.test_acc` records, the first from the start of its first train loop; ours: `seconds` of metrics.jsonl); "
             "train s: the training loop alone")
    L.append("")
    L.append("## Phases")
    L.append("")
    L.append("| phase | status | wall s | command |")
    L.append("| --- | --- | --- | --- |")
    for ph in data["phases"]:
        L.append("| %s | %s | %s | `%s` |" % (ph["phase"], ph["status"], secs(ph.get("seconds")), ph.get("command", "").replace("|", "\\|")))
    for run, title in RUNS:
        L.append("")
        L.append("## %s" % title)
        L.append("")
        L.append("status: " + "; ".join("%s %s" % (label, state(side, run)) for side, label in SIDES))
        L.append("")
        L.append("| epoch | top1 ref | top1 fp32 | top1 bf16 | s ref | s fp32 | s bf16 | train s ref | train s fp32 | train s bf16 |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        by = {side: {e["epoch"]: e for e in data["runs"]["%s/%s" % (side, run)]["epochs"]} for side, _ in SIDES}
        n = max([config.get("epochs", 0)] + [max(v) if v else 0 for v in by.values()])
        for ep in range(1, n + 1):
            row = [str(ep)]
            for key, fmt in (("test_top1", pct), ("seconds", secs), ("train_seconds", secs)):
                for side, _ in SIDES:
                    e = by[side].get(ep)
                    if e is None:
                        row.append("—")
                    else:
                        row.append(fmt(e.get(key)))
            L.append("| " + " | ".join(row) + " |")
        row = ["best"]
        for side, _ in SIDES:
            eps = [e for e in by[side].values() if e.get("test_top1") is not None]
            row.append("—" if not eps else "%s (ep %d)" % (pct(max(e["test_top1"] for e in eps)), max(eps, key=lambda e: e["test_top1"])["epoch"]))
        for key in ("seconds", "train_seconds"):
            for side, _ in SIDES:
                v = [e[key] for e in by[side].values() if e.get(key) is not None]
                row.append("—" if not v else "total %.1f" % sum(v))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("## GMM of the detection pass (ID component = smaller mean of log(loss + 1e-10))")
    L.append("")
    L.append("| side | ID mean | ID var | ID weight | OOD mean | OOD var | OOD weight | EM iters | converged | OOD augmented views | OOD original views | detection s |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for side, label in SIDES:
        g = data["runs"]["%s/rs_ra" % side]["gmm"]
        if not g or not g.get("means"):
            L.append("| %s | %s |" % (label, " | ".join(["—"] * 10 + ["not measured (%s)" % state(side, "rs_ra")])))
            continue
        i = 0 if g["means"][0] <= g["means"][1] else 1
        o = 1 - i
        aug = g.get("ood_fraction_augmented")
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, num(g["means"][i]), num(g["variances"][i]), num(g["weights"][i]),
            num(g["means"][o]), num(g["variances"][o]), num(g["weights"][o]),
            g.get("iterations", "—"), g.get("converged", "—"),
            "—" if aug is None else "%s%% of %s" % (pct(aug), g.get("n_augmented", "?")),
            pct(g.get("ood_fraction_original")), secs(g.get("detection_seconds"))))
    text = "\n".join(L) + "\n"
    for name, write in (("fidelity.md", lambda f: f.write(text)),
                        ("fidelity.json", lambda f: json.dump(data, f, indent=1, default=str))):
        path = os.path.join(dest, name)
        with open(path + ".tmp", "w") as f:
            write(f)
        os.replace(path + ".tmp", path)
    print(text)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "tiny-cifar", "report"):
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"run": cmd_run, "tiny-cifar": cmd_tiny, "report": cmd_report}[cmd](rest)


if __name__ == "__main__":
    main()
