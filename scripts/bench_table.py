#!/usr/bin/env python3
"""The table of a scripts/gpu-session.sh run: before / after / PyTorch ceiling, per measurement.

usage: bench_table.py SESSION_DIR --before 'COMMIT NOTE' [--doc docs/BENCHMARKS.md]

Reads SESSION_DIR/{before,after}/*.json (resmooth bench train), their logs/*/metrics.jsonl and
log.txt (real runs), SESSION_DIR/ceiling-*.json (scripts/torch_ceiling.py) and prints a markdown
section. With --doc, replaces the text between the `<!-- gpu-table -->` and
`<!-- /gpu-table -->` lines of that file with it. Needs only the standard library.
"""
import argparse
import glob
import json
import os
import re

STEP_NAMES = {
    "step-resnet18-fp32-nchw": "ResNet-18 train step, fp32",
    "step-resnet18-fp32-nchw-per-parameter": "ResNet-18 train step, fp32, per-parameter SGD (same binary)",
    "step-resnet18-bf16-channels_last": "ResNet-18 train step, bf16 + channels_last",
    "step-wresnet28_10-fp32-nchw": "WRN-28-10 train step, fp32",
    "step-wresnet28_10-bf16-channels_last": "WRN-28-10 train step, bf16 + channels_last",
    "pipeline-rs-fp32-nchw": "ReSmooth loop (CIFAR-10, RA 2/28, scorer + GMM), fp32",
    "step-resnet18-fp32-nchw-graph": "ResNet-18 train step, fp32, CUDA graph",
    "step-resnet18-bf16-channels_last-graph": "ResNet-18 train step, bf16 + channels_last, CUDA graph",
    "step-wresnet28_10-fp32-nchw-graph": "WRN-28-10 train step, fp32, CUDA graph",
    "step-wresnet28_10-bf16-channels_last-graph": "WRN-28-10 train step, bf16 + channels_last, CUDA graph",
    "pipeline-rs-fp32-nchw-graph": "ReSmooth loop (CIFAR-10, RA 2/28, scorer + GMM), fp32, CUDA graph",
}
RUNS = [("bench/res18/baseline", "ResNet-18 baseline epoch, fp32"),
        ("bench/res18/rs_ra", "ResNet-18 ReSmooth epoch, fp32"),
        ("bench/res18/baseline-graph", "ResNet-18 baseline epoch, fp32, CUDA graph"),
        ("bench/res18/rs_ra-graph", "ResNet-18 ReSmooth epoch, fp32, CUDA graph"),
        ("bench/w10/baseline", "WRN-28-10 baseline epoch, fp32")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rate(r):
    if not r:
        return "not measured"
    return f"{r:,.0f} img/s" if r >= 100 else f"{r:.3g} img/s"


def mode_note(r, name):
    """A graph configuration whose steps ran eagerly (--cuda-graphs auto on a CPU) says so."""
    return " (ran eagerly)" if r and name.endswith("-graph") and r.get("step_mode") == "eager" else ""


def step_cell(r):
    return rate(r and r.get("step_images_per_sec"))


def loop_cell(r):
    if not r:
        return "not measured"
    if "loop_images_per_sec" in r:
        shares = ", ".join(f"{k.replace('_', ' ')} {100 * v:.0f}%" for k, v in r["share"].items() if v >= 0.005)
        return f"{rate(r['loop_images_per_sec'])} ({shares})"
    # binaries before the fused optimizer: the pipeline without evaluation and checkpoint
    return (f"{rate(r.get('pipeline_images_per_sec'))} (no eval/checkpoint; per step: wait {r['wait_ms']:.1f} ms, "
            f"upload {r['transfer_ms']:.1f} ms, scorer {r['scorer_ms']:.1f} ms, step {r['step_ms']:.1f} ms)")


def runs(side_dir):
    out = {}
    for tag, _ in RUNS:
        path = os.path.join(side_dir, "logs", tag, "metrics.jsonl")
        if os.path.exists(path):
            with open(path) as f:
                ms = [json.loads(line) for line in f if line.strip()]
            if ms:
                out[tag] = dict(min(ms, key=lambda m: m["train_seconds"]))
                out[tag]["epochs"] = len(ms)
                out[tag]["all"] = ms
    log = os.path.join(side_dir, "log.txt")
    text = open(log).read() if os.path.exists(log) else ""
    m = re.search(r"detection pass \(([0-9.]+)s\)", text)
    if m:
        out["detection"] = float(m.group(1))
    return out


def ceiling(session, model, precision, memory_format):
    rows = []
    for path in glob.glob(os.path.join(session, "ceiling-*.json")):
        rows += load(path) or []
    best = [r["images_per_sec"] for r in rows
            if r["model"] == model and r["precision"] == precision and r["memory_format"] == memory_format]
    return rate(max(best)) if best else "not measured"


def graph_check(runs_after):
    """The CUDA-graph runs against the eager runs of the same seed: per-epoch metrics side by side."""
    out = []
    for eager, label in (("bench/res18/baseline", "baseline"), ("bench/res18/rs_ra", "ReSmooth")):
        e, g = runs_after.get(eager), runs_after.get(eager + "-graph")
        if not e or not g:
            continue
        pairs = list(zip(e["all"], g["all"]))
        diff = lambda k: max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for a, b in pairs)
        modes = sorted({m.get("step_mode", "?") for m in g["all"]})
        out.append(f"| CUDA graph check, ResNet-18 {label}: {len(pairs)} epochs, graph run's step_mode "
                   f"{'/'.join(modes)} | train loss differs from the eager run's by at most "
                   f"{100 * diff('train_loss'):.2f}% | test top-1 {e['all'][-1]['test_top1']:.4f} eager, "
                   f"{g['all'][-1]['test_top1']:.4f} graph | |")
    return out


def table(session, before_name):
    before, after = os.path.join(session, "before"), os.path.join(session, "after")
    gpu = open(os.path.join(after, "gpu.txt")).read().strip() if os.path.exists(os.path.join(after, "gpu.txt")) else "?"
    lines = [f"Measured by `scripts/gpu-session.sh` on {gpu}. Before: {before_name}. After: this tree. "
             "Ceiling: `scripts/torch_ceiling.py`, a PyTorch step loop on the same libtorch (best of its "
             "foreach and fused SGD).", "",
             "| measurement | before | after | PyTorch ceiling |", "| --- | --- | --- | --- |"]
    for name, label in STEP_NAMES.items():
        b, a = load(os.path.join(before, name + ".json")), load(os.path.join(after, name + ".json"))
        if not a and not b:
            continue
        parts = name.split("-")
        ceil = ceiling(session, parts[1], parts[2], parts[3]) if name.startswith("step-") and "per" not in name else ""
        if name.startswith("step-"):
            lines.append(f"| {label}: step alone | {step_cell(b)} | {step_cell(a)}{mode_note(a, name)} | {ceil} |")
        lines.append(f"| {label}: whole loop | {loop_cell(b)} | {loop_cell(a)}{mode_note(a, name)} | |")
    rb, ra = runs(before), runs(after)
    for tag, label in RUNS:
        def cell(r):
            m = r.get(tag)
            if not m:
                return "not measured"
            return (f"{m['train_seconds']:.2f} s ({m['images_per_sec']:,.0f} img/s, data wait "
                    f"{m['data_wait_seconds']:.2f} s; best of {m['epochs']})")
        if tag in rb or tag in ra:
            lines.append(f"| {label} (train only) | {cell(rb)} | {cell(ra)} | |")
            ev = lambda r: f"{r[tag]['eval_seconds']:.2f} s" if tag in r else "not measured"
            lines.append(f"| {label.split(' epoch')[0]} test evaluation | {ev(rb)} | {ev(ra)} | |")
    if "detection" in rb or "detection" in ra:
        det = lambda r: f"{r['detection']:.1f} s" if "detection" in r else "not measured"
        lines.append(f"| GMM detection pass | {det(rb)} | {det(ra)} | |")
    lines += graph_check(ra)
    stages = os.path.join(session, "stages.txt")
    if os.path.exists(stages):
        lines += ["", "Stages: " + "; ".join(line.strip().replace("gpu-session: ", "") for line in open(stages))]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session")
    ap.add_argument("--before", required=True)
    ap.add_argument("--doc")
    a = ap.parse_args()
    text = table(a.session, a.before)
    if a.doc:
        doc = open(a.doc).read()
        start, end = "<!-- gpu-table -->\n", "<!-- /gpu-table -->"
        i, j = doc.index(start) + len(start), doc.index(end)
        with open(a.doc, "w") as f:
            f.write(doc[:i] + text + doc[j:])
    print(text, end="")


if __name__ == "__main__":
    main()
