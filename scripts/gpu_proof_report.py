#!/usr/bin/env python3
"""The tables of a GPU proof run (scripts/gpu_proof.py): read back from its raw records.

usage: gpu_proof_report.py RECORDS [--out DIR] [--docs DIR] [--patch-docs]

RECORDS is the records folder of a run (or its proof-records.tar.gz). Writes DIR/proof.md (every
table, the phases and their commands), DIR/proof.json (the parsed data), DIR/FIDELITY.md and
DIR/BENCHMARKS.md (copies of docs/ with the tables between their `gpu-proof` markers); prints
proof.md. With --patch-docs (never for a --quick run's records) it also writes the tables into
docs/ itself: how the figures of a GPU run are committed from its records, as measured.
scripts/gpu_proof.py calls the same functions after every phase. Needs only the standard library.

This file owns the phase names, the speed targets and the follow-up criteria of issue 19; the
orchestrator (gpu_proof.py) owns what each phase runs.
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys
import tarfile
import tempfile

# ----------------------------------------------------------------------------------------------
# the phases, in the order (gpu_proof.py runs them in this order)
DATA = "0-data"
REF_BASELINE = "1-ref-baseline"
OURS_BASELINE = "1-ours-baseline"
REF_RESMOOTH = "2-ref-resmooth"
OURS_RESMOOTH = "2-ours-resmooth"
CEILING = "3-torch-ceiling"
BENCH_FP32 = "3-bench-fp32"
BENCH_BF16 = "3-bench-bf16-cl"
BENCH_FP32_GRAPH = "3-bench-fp32-graph"
BENCH_BF16_GRAPH = "3-bench-bf16-cl-graph"
BENCH_RESMOOTH = "3-bench-resmooth-loop"
BF16_BASELINE = "4-ours-bf16-baseline"
BF16_RESMOOTH = "4-ours-bf16-resmooth"
REF_WRN = "4-ref-wrn"
OURS_WRN = "4-ours-wrn"
OURS_GRAPH = "4-ours-graph-baseline"
NCCL = "5-nccl-world-size-1"
INPUT_PIPELINE = "5-input-pipeline"

# bench train configurations: phase, label, (model, precision, memory format) of the PyTorch ceiling
BENCHES = [
    (BENCH_FP32, "ResNet-18, fp32", ("resnet18", "fp32", "nchw")),
    (BENCH_BF16, "ResNet-18, bf16 + channels_last", ("resnet18", "bf16", "channels_last")),
    (BENCH_FP32_GRAPH, "ResNet-18, fp32, `--cuda-graphs on`", ("resnet18", "fp32", "nchw")),
    (BENCH_BF16_GRAPH, "ResNet-18, bf16 + channels_last, `--cuda-graphs on`", ("resnet18", "bf16", "channels_last")),
    (BENCH_RESMOOTH, "ReSmooth loop on CIFAR-10 (RA 2/28, scorer + GMM posterior), fp32", None),
]
GRAPH_PAIRS = [(BENCH_FP32, BENCH_FP32_GRAPH, "fp32"), (BENCH_BF16, BENCH_BF16_GRAPH, "bf16 + channels_last")]

# the speed targets of issue 19 (H200, CIFAR-10, batch 256, fp32): label, target s, how each is measured
TARGETS = [
    ("ResNet-18 baseline epoch (`--prob 1.0`), train only", 1.8, "epoch", REF_BASELINE, OURS_BASELINE, BENCH_FP32),
    ("ResNet-18 ReSmooth epoch (`--prob 0.0 --M 28 --N 2 --gmm --loss SampleSmooth`), train only", 2.5, "epoch",
     REF_RESMOOTH, OURS_RESMOOTH, BENCH_RESMOOTH),
    ("GMM detection pass", 1.5, "detection", REF_RESMOOTH, OURS_RESMOOTH, None),
    ("test-set evaluation (10k)", 0.3, "eval", REF_BASELINE, OURS_BASELINE, None),
    ("WRN-28-10 baseline epoch, train only", 7.0, "epoch", REF_WRN, OURS_WRN, None),
]

# follow-up criteria (issue 19, "After the figures exist"); this script reports them, never acts on them
BF16_GMM_MEANS = 1e-3          # |mean bf16 - mean fp32| of each component
BF16_VIEWS_AGREE = 0.999       # share of detection views with the same ID/OOD call
NOISE_EPOCHS = 3               # the reference's noise: largest top1 change between its last epochs
GRAPH_LOSS_REL = 0.01          # graph run's per-epoch train loss against the eager run's, relative

MARKERS = {"FIDELITY.md": "gpu-proof:fidelity", "BENCHMARKS.md": "gpu-proof:benchmarks"}


# ----------------------------------------------------------------------------------------------
# reading
def read_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path, errors="replace") as f:
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


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def parse_reference(d):
    """Per-epoch records of one reference run (fidelity_probe.py's scalars and events)."""
    scalars = read_jsonl(os.path.join(d, "scalars.jsonl"))
    events = read_jsonl(os.path.join(d, "events.jsonl"))
    train_starts, test_starts = {}, {}
    for e in events:
        if e.get("kind") != "loop":
            continue
        m = re.match(r"\[train (\d+)/", e["desc"])
        if m:
            train_starts.setdefault(int(m.group(1)), e["wall"])
        m = re.match(r"\[test (\d+)\]", e["desc"])
        if m:
            test_starts.setdefault(int(m.group(1)), e["wall"])
    epochs = []
    prev = train_starts[min(train_starts)] if train_starts else None
    for s in (s for s in scalars if s["tag"] == "test/1.test_acc"):
        ep = s["step"]
        rec = {"epoch": ep, "test_top1": s["value"]}
        if prev is not None:
            rec["seconds"] = s["wall"] - prev
        if ep in train_starts and ep in test_starts:
            rec["train_seconds"] = test_starts[ep] - train_starts[ep]
        if ep in test_starts:
            rec["eval_seconds"] = s["wall"] - test_starts[ep]
        for tag, key in (("train/2.train_loss", "train_loss"), ("train/1.train_acc", "train_top1")):
            v = [x["value"] for x in scalars if x["tag"] == tag and x["step"] == ep]
            if v:
                rec[key] = v[0]
        epochs.append(rec)
        prev = s["wall"]
    out = {"epochs": epochs, "gmm": None}
    gmm = read_json(os.path.join(d, "gmm.json"))
    if gmm:
        loads = [e for e in events if e.get("kind") == "torch_load"]
        out["gmm"] = {
            "means": gmm["means"], "variances": gmm["variances"], "weights": gmm["weights"],
            "iterations": gmm.get("n_iter"), "converged": gmm.get("converged"),
            "ood_fraction_augmented": gmm.get("ood_fraction_augmented"),
            "ood_fraction_original": gmm.get("ood_fraction_original"),
            "n_augmented": gmm.get("n_augmented"),
            # from loading the baseline to the end of the fit: the scoring pass and the fit
            "detection_seconds": gmm["fit_ended"] - loads[0]["wall"] if loads else None,
        }
    patched = [e for e in events if e.get("kind") == "patched"]
    out["stubbed"] = patched[-1].get("stubs") if patched else None
    return out


def read_views(path):
    """(index, view) -> p_ID of a detection pass's losses.csv (header index,label,view,ops,log_loss,p_id)."""
    views = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                views[(row["index"], row["view"])] = float(row["p_id"])
    except (OSError, KeyError, ValueError):
        return None
    return views or None


def parse_ours(d):
    """Per-epoch records, the GMM and the detection pass of one `resmooth train` run."""
    epochs = read_jsonl(os.path.join(d, "metrics.jsonl"))
    out = {"epochs": epochs, "gmm": None}
    gmm = read_json(os.path.join(d, "gmm.json"))
    if gmm:
        g = {"means": gmm.get("means"), "variances": gmm.get("variances"), "weights": gmm.get("weights"),
             "iterations": gmm.get("iterations"), "converged": gmm.get("converged")}
        views = read_views(os.path.join(d, "losses.csv"))
        if views:
            for kind in ("original", "augmented"):
                p = [v for (_, view), v in views.items() if view == kind]
                if p:
                    g["ood_fraction_" + kind] = sum(x < 0.5 for x in p) / len(p)
                    g["n_" + kind] = len(p)
        # the run's train.log (its terminal output when that is missing) says how long the pass took
        log = read_text(os.path.join(d, "train.log")) or read_text(os.path.join(d, "stderr.log"))
        m = re.search(r"detection pass \(([0-9.]+)s\)", log)
        g["detection_seconds"] = float(m.group(1)) if m else None
        out["gmm"] = g
    modes = sorted({e.get("step_mode") for e in epochs if e.get("step_mode")})
    out["step_modes"] = modes
    return out


def load(records):
    """Everything a run recorded, parsed: config, phases by id, and each phase's results."""
    phases = {}
    for ph in read_jsonl(os.path.join(records, "phases.jsonl")):
        phases[ph["id"]] = ph  # a phase is recorded once; a later line would be a rerun
    data = {"config": read_json(os.path.join(records, "config.json")) or {}, "phases": phases, "results": {}}
    for pid, ph in phases.items():
        d = os.path.join(records, pid)
        if ph.get("side") == "reference":
            data["results"][pid] = parse_reference(d)
        elif ph.get("kind") == "train":
            data["results"][pid] = parse_ours(d)
        elif ph.get("kind") == "bench":
            data["results"][pid] = read_json(os.path.join(d, "bench.json"))
        elif pid == CEILING:
            data["results"][pid] = read_json(os.path.join(d, "ceiling.json"))
        else:
            data["results"][pid] = {"stdout_tail": read_text(os.path.join(d, "stdout.log"))[-2000:]}
    return data


# ----------------------------------------------------------------------------------------------
# formatting
def pct(v):
    return "—" if v is None else "%.2f" % (100 * v)


def secs(v, digits=1):
    return "—" if v is None else "%.*f" % (digits, v)


def num(v, f="%.4f"):
    return "—" if v is None else f % v


def rate(r):
    if not r:
        return "—"
    return "{:,.0f} img/s".format(r) if r >= 100 else "%.3g img/s" % r


def status_word(data, pid):
    ph = data["phases"].get(pid)
    if ph is None:
        return "NOT RUN"  # the run ended (or is still going) before this phase
    return ph["status"]


def status_line(data, pid):
    ph = data["phases"].get(pid)
    if ph is None:
        return "`%s` NOT RUN" % pid
    why = " (%s)" % ph["reason"] if ph.get("reason") else ""
    return "`%s` %s%s" % (pid, ph["status"], why)


def cell(data, pid, value):
    """A measured value, or the phase's status where it has none (no silent holes)."""
    if value is not None and value != "—":
        return value
    word = status_word(data, pid)
    return "—" if word == "ok" else word


def epochs_of(data, pid):
    r = data["results"].get(pid) or {}
    return {e["epoch"]: e for e in r.get("epochs", []) if e.get("epoch") is not None}


def steady(data, pid, key):
    """The median of `key` over the epochs after the first (which includes cuDNN's autotuning), and how many."""
    eps = epochs_of(data, pid)
    later = [e.get(key) for n, e in sorted(eps.items()) if n > 1 and e.get(key) is not None]
    if later:
        return median(later), "median of epochs 2–%d" % max(eps) if len(later) > 1 else "epoch %d" % max(eps)
    first = [e.get(key) for e in eps.values() if e.get(key) is not None]
    return (first[0], "epoch 1 alone") if first else (None, "")


def command_of(ph):
    return ph.get("command") or ""


def failed_block(data, ids):
    lines = []
    for pid in ids:
        ph = data["phases"].get(pid)
        if ph and ph["status"] == "FAILED":
            lines += ["", "**`%s` FAILED** (%s); the end of its log:" % (pid, ph.get("reason", "")), "", "```"]
            lines += (ph.get("log_tail") or "(empty)").rstrip().splitlines()
            lines += ["```"]
    return lines


def commands_block(data, ids):
    lines = ["", "Commands (each in the folder named):", ""]
    for pid in ids:
        ph = data["phases"].get(pid)
        if not ph or not ph.get("command"):
            continue
        where = " (in `%s`)" % ph["cwd"] if ph.get("cwd") and ph.get("cwd") != data["config"].get("repo") else ""
        env = " ".join("%s=%s" % kv for kv in sorted((ph.get("env") or {}).items()))
        lines.append("- `%s` %s%s: `%s%s`" % (pid, ph["status"], where, env + " " if env else "", command_of(ph)))
    return lines


def header(data):
    c = data["config"]
    lines = ["Measured by `%s` on %s, %s (%s)." % (c.get("command", "?"), c.get("device", "?"), c.get("date", "?"),
                                                 c.get("mode", "?"))]
    b = c.get("binary") or {}
    lines.append("resmooth: %s (%s); reference train.py MD5 %s; torch %s. Raw records: `proof-records.tar.gz` of "
                 "that run." % (b.get("version", "?"), b.get("built_from", "commit not recorded"),
                                c.get("reference_train_py_md5", "?"), c.get("torch", "?")))
    return lines


# ----------------------------------------------------------------------------------------------
# docs/FIDELITY.md
def epochs_text(n):
    return "%s epoch%s" % (n, "" if n == 1 else "s")


def epoch_table(data, title, sides, planned):
    """One row per epoch: top1, seconds and train seconds of each side (label, phase)."""
    statuses = "; ".join("%s %s" % (label, status_line(data, pid)) for label, pid in sides)
    L = ["", "#### " + title, "", "status: " + statuses, ""]
    heads = ["top1 " + s for s, _ in sides] + ["s " + s for s, _ in sides] + ["train s " + s for s, _ in sides]
    L.append("| epoch | " + " | ".join(heads) + " |")
    L.append("|" + " --- |" * (len(heads) + 1))
    by = {pid: epochs_of(data, pid) for _, pid in sides}
    n = max([max(v) if v else 0 for v in by.values()] + [0])
    for ep in range(1, n + 1):
        row = [str(ep)]
        for key, fmt in (("test_top1", pct), ("seconds", secs), ("train_seconds", secs)):
            for _, pid in sides:
                e = by[pid].get(ep)
                row.append(cell(data, pid, fmt(e.get(key)) if e else None))
        L.append("| " + " | ".join(row) + " |")
    row = ["best"]
    for _, pid in sides:
        eps = [e for e in by[pid].values() if e.get("test_top1") is not None]
        best = max(eps, key=lambda e: e["test_top1"]) if eps else None
        row.append(cell(data, pid, "%s (ep %d)" % (pct(best["test_top1"]), best["epoch"]) if best else None))
    for key in ("seconds", "train_seconds"):
        for _, pid in sides:
            v = [e[key] for e in by[pid].values() if e.get(key) is not None]
            row.append(cell(data, pid, "total %.1f" % sum(v) if v else None))
    L.append("| " + " | ".join(row) + " |")
    if n == 0:
        L.append("")
        L.append("No epoch was measured (%s planned)." % epochs_text(planned))
    return L


def gmm_of(data, pid):
    return (data["results"].get(pid) or {}).get("gmm")


def id_ood(g):
    i = 0 if g["means"][0] <= g["means"][1] else 1
    return i, 1 - i


def gmm_table(data, sides):
    L = ["", "#### GMM of the detection pass (ID component: the smaller mean of log(loss + 1e-10))", "",
         "| side | ID mean | ID var | ID weight | OOD mean | OOD var | OOD weight | EM iters | converged | "
         "OOD augmented views | OOD original views | detection s |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, pid in sides:
        g = gmm_of(data, pid)
        if not g or not g.get("means"):
            word = cell(data, pid, None)
            L.append("| %s | %s |" % (label, " | ".join([word if word != "—" else "no GMM recorded"] * 11)))
            continue
        i, o = id_ood(g)
        aug = g.get("ood_fraction_augmented")
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, num(g["means"][i]), num(g["variances"][i]), num(g["weights"][i]),
            num(g["means"][o]), num(g["variances"][o]), num(g["weights"][o]),
            g.get("iterations", "—"), g.get("converged", "—"),
            "—" if aug is None else "%s%% of %s" % (pct(aug), g.get("n_augmented", "?")),
            pct(g.get("ood_fraction_original")), secs(g.get("detection_seconds"))))
    return L


def reference_noise(data):
    """The largest change of the reference baseline's test top1 between consecutive epochs among its last ones."""
    eps = epochs_of(data, REF_BASELINE)
    top = [eps[n]["test_top1"] for n in sorted(eps) if eps[n].get("test_top1") is not None][-NOISE_EPOCHS:]
    if len(top) < 2:
        return None
    return max(abs(a - b) for a, b in zip(top, top[1:]))


def best_top1(data, pid):
    v = [e["test_top1"] for e in epochs_of(data, pid).values() if e.get("test_top1") is not None]
    return max(v) if v else None


def views_agreement(records, a, b):
    va = read_views(os.path.join(records, a, "losses.csv"))
    vb = read_views(os.path.join(records, b, "losses.csv"))
    if not va or not vb:
        return None, 0
    common = set(va) & set(vb)
    if not common:
        return None, 0
    same = sum((va[k] < 0.5) == (vb[k] < 0.5) for k in common)
    return same / len(common), len(common)


def bf16_criteria(data, records):
    """The follow-up's test of bf16 against fp32 (issue 19): measured values against its thresholds."""
    rows = []
    ga, gb = gmm_of(data, OURS_RESMOOTH), gmm_of(data, BF16_RESMOOTH)
    if ga and gb and ga.get("means") and gb.get("means"):
        ia, oa = id_ood(ga)
        ib, ob = id_ood(gb)
        d = max(abs(ga["means"][ia] - gb["means"][ib]), abs(ga["means"][oa] - gb["means"][ob]))
        rows.append(("GMM means, bf16 against fp32 (each component)", "≤ %g" % BF16_GMM_MEANS, "%.2e" % d,
                     d <= BF16_GMM_MEANS))
    else:
        rows.append(("GMM means, bf16 against fp32 (each component)", "≤ %g" % BF16_GMM_MEANS,
                     "not measured (%s; %s)" % (status_line(data, OURS_RESMOOTH), status_line(data, BF16_RESMOOTH)),
                     None))
    agree, n = views_agreement(records, OURS_RESMOOTH, BF16_RESMOOTH)
    rows.append(("detection views with the same ID/OOD call", "≥ %.1f%%" % (100 * BF16_VIEWS_AGREE),
                 "%.3f%% of %d" % (100 * agree, n) if agree is not None else "not measured",
                 None if agree is None else agree >= BF16_VIEWS_AGREE))
    noise = reference_noise(data)
    for label, fp, bf in (("baseline", OURS_BASELINE, BF16_BASELINE), ("ReSmooth", OURS_RESMOOTH, BF16_RESMOOTH)):
        a, b = best_top1(data, fp), best_top1(data, bf)
        if a is None or b is None or noise is None:
            rows.append(("best test top1, %s, bf16 against fp32" % label, "≤ the reference's noise",
                         "not measured", None))
        else:
            rows.append(("best test top1, %s, bf16 against fp32" % label,
                         "≤ %.2f points (the reference's noise)" % (100 * noise),
                         "%.2f points" % (100 * abs(a - b)), abs(a - b) <= noise))
    return rows


def criteria_table(rows):
    L = ["| criterion | threshold | measured | holds |", "| --- | --- | --- | --- |"]
    for name, thr, measured, holds in rows:
        L.append("| %s | %s | %s | %s |" % (name, thr, measured, {True: "yes", False: "no", None: "—"}[holds]))
    return L


def render_fidelity(data, records):
    c = data["config"]
    ep = c.get("epochs", {})
    L = header(data)
    L += ["", "Both programs read the same decoded pixels (`cifar_from_jpeg.py`, the binary and the pickled "
          "layout of one decode); same flags, fp32 unless named; seconds per epoch are train + test (the "
          "reference: between consecutive `test/1.test_acc` records, the first from the start of its first "
          "train loop), train s the training loop alone; top1 in %."]
    sides_b = [("ref", REF_BASELINE), ("fp32", OURS_BASELINE), ("bf16", BF16_BASELINE)]
    sides_r = [("ref", REF_RESMOOTH), ("fp32", OURS_RESMOOTH), ("bf16", BF16_RESMOOTH)]
    L += epoch_table(data, "Baseline (`--prob 1.0`), ResNet-18, %s" % epochs_text(ep.get("baseline", "?")), sides_b,
                     ep.get("baseline", "?"))
    L += epoch_table(data, "ReSmooth (`--prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth`) from "
                     "each side's own baseline, %s" % epochs_text(ep.get("resmooth", "?")), sides_r,
                     ep.get("resmooth", "?"))
    L += gmm_table(data, [("reference", REF_RESMOOTH), ("ours fp32", OURS_RESMOOTH), ("ours bf16", BF16_RESMOOTH)])
    L += ["", "#### bf16 against fp32 (the follow-up's criteria; defaults are not changed by this script)", ""]
    L += criteria_table(bf16_criteria(data, records))
    L += ["", "The reference's noise: the largest change of its baseline's test top1 between consecutive epochs "
          "among its last %d. When every row holds, docs/FIDELITY.md may say that bf16 matches fp32 here."
          % NOISE_EPOCHS]
    L += epoch_table(data, "WRN-28-10 baseline (`--model wresnet28_10 --prob 1.0`), %s" % epochs_text(
                     ep.get("wrn", "?")),
                     [("ref", REF_WRN), ("ours", OURS_WRN)], ep.get("wrn", "?"))
    ids = [REF_BASELINE, OURS_BASELINE, REF_RESMOOTH, OURS_RESMOOTH, BF16_BASELINE, BF16_RESMOOTH, REF_WRN, OURS_WRN]
    L += failed_block(data, [DATA] + ids)
    L += commands_block(data, [DATA] + ids)
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------------------------
# docs/BENCHMARKS.md
def largest_share(bench):
    if not bench or not bench.get("share"):
        return None
    k, v = max(bench["share"].items(), key=lambda kv: kv[1])
    return "%s %.0f%%" % (k.replace("_", " "), 100 * v)


def target_value(data, kind, pid):
    """A target's measured seconds from one run, and how it was taken."""
    if kind == "epoch":
        return steady(data, pid, "train_seconds")
    if kind == "eval":
        return steady(data, pid, "eval_seconds")
    g = gmm_of(data, pid)
    return (g.get("detection_seconds"), "scoring both views + fit") if g else (None, "")


def targets_table(data):
    L = ["| phase | reference (this run) | target | resmooth (this run) | met | largest phase when missed |",
         "| --- | --- | --- | --- | --- | --- |"]
    for label, target, kind, ref, ours, bench in TARGETS:
        rv, rhow = target_value(data, kind, ref)
        ov, ohow = target_value(data, kind, ours)
        met = "—" if ov is None else ("yes" if ov <= target else "**no**")
        why = ""
        if ov is not None and ov > target:
            parts = []
            b = data["results"].get(bench) if bench else None
            if b:
                parts.append("%s (`%s`, whole loop)" % (largest_share(b), bench))
            if kind == "epoch":
                wait, _ = steady(data, ours, "data_wait_seconds")
                if wait is not None and ov:
                    parts.append("data wait %.0f%% of the run's train s" % (100 * wait / ov))
            why = "; ".join(parts) or "no breakdown measured for this phase"
        L.append("| %s | %s | ≤ %s s | %s | %s | %s |" % (
            label, cell(data, ref, "%.2f s (%s)" % (rv, rhow) if rv is not None else None), target,
            cell(data, ours, "%.2f s (%s)" % (ov, ohow) if ov is not None else None), met, why))
    return L


def ceiling_of(data, key):
    rows = data["results"].get(CEILING) or []
    best = [r for r in rows if (r["model"], r["precision"], r["memory_format"]) == key]
    if not best:
        return None
    r = max(best, key=lambda r: r["images_per_sec"])
    return "%s (%s SGD)" % (rate(r["images_per_sec"]), r["optimizer"])


def loop_cell(b):
    if not b:
        return None
    shares = ", ".join("%s %.0f%%" % (k.replace("_", " "), 100 * v)
                       for k, v in b.get("share", {}).items() if v >= 0.005)
    return "%s (%s)" % (rate(b.get("loop_images_per_sec")), shares)


def engine_table(data):
    L = ["| configuration | resmooth step alone | resmooth whole loop (share of time per phase) | step mode | "
         "PyTorch step loop, same libtorch | phase |", "| --- | --- | --- | --- | --- | --- |"]
    for pid, label, key in BENCHES:
        b = data["results"].get(pid)
        step = rate(b.get("step_images_per_sec")) if b else None
        ceil = (cell(data, CEILING, ceiling_of(data, key)) if key and "graph" not in pid else "")
        L.append("| %s | %s | %s | %s | %s | `%s` |" % (label, cell(data, pid, step), cell(data, pid, loop_cell(b)),
                                                       cell(data, pid, b.get("step_mode") if b else None), ceil, pid))
    return L


def graph_rows(data):
    """The CUDA-graph criteria of the follow-up: faster than eager and the same losses."""
    rows = []
    for eager, graph, label in GRAPH_PAIRS:
        e, g = data["results"].get(eager), data["results"].get(graph)
        if not e or not g:
            rows.append(("%s: graph step and loop faster than eager" % label, "faster",
                         "not measured (%s; %s)" % (status_line(data, eager), status_line(data, graph)), None))
            continue
        mode = g.get("step_mode")
        ratio_s = g["step_images_per_sec"] / max(e["step_images_per_sec"], 1e-12)
        ratio_l = g["loop_images_per_sec"] / max(e["loop_images_per_sec"], 1e-12)
        rows.append(("%s: graph step and loop faster than eager" % label, "> 1x both",
                     "step %.2fx, loop %.2fx (graph run's step mode: %s)" % (ratio_s, ratio_l, mode),
                     ratio_s > 1 and ratio_l > 1 and mode == "cuda-graph"))
    ea, ga = epochs_of(data, OURS_BASELINE), epochs_of(data, OURS_GRAPH)
    pairs = [(ea[n], ga[n]) for n in sorted(ga) if n in ea and ga[n].get("train_loss") is not None]
    if pairs:
        worst = max(abs(a["train_loss"] - b["train_loss"]) / max(abs(a["train_loss"]), 1e-12) for a, b in pairs)
        modes = sorted({b.get("step_mode", "?") for _, b in pairs})
        rows.append(("ResNet-18 baseline, %s with `--cuda-graphs on` against the eager run (same seed): "
                     "train loss per epoch" % epochs_text(len(pairs)), "within %g%%" % (100 * GRAPH_LOSS_REL),
                     "largest difference %.3f%%; test top1 %s vs %s (eager); step mode %s" % (
                         100 * worst, pct(pairs[-1][1].get("test_top1")), pct(pairs[-1][0].get("test_top1")),
                         "/".join(modes)),
                     worst <= GRAPH_LOSS_REL and modes == ["cuda-graph"]))
    else:
        rows.append(("ResNet-18 baseline epochs with `--cuda-graphs on` against the eager run: train loss",
                     "within %g%%" % (100 * GRAPH_LOSS_REL),
                     "not measured (%s; %s)" % (status_line(data, OURS_BASELINE), status_line(data, OURS_GRAPH)), None))
    return rows


def placeholders(data):
    L = ["| measurement | result | phase |", "| --- | --- | --- |"]
    ph = data["phases"].get(NCCL)
    nccl = data["results"].get(NCCL)
    plain = data["results"].get(BENCH_FP32)
    if nccl and plain and nccl.get("step_images_per_sec"):
        over = plain["step_images_per_sec"] / max(nccl["step_images_per_sec"], 1e-12) - 1
        text = "step %s through NCCL at world size 1 vs %s with no process group: %.1f%% overhead (target ≤ 3%%)" % (
            rate(nccl["step_images_per_sec"]), rate(plain["step_images_per_sec"]), 100 * over)
    else:
        text = cell(data, NCCL, None) + (" (%s)" % ph["reason"] if ph and ph.get("reason") else "")
    L.append("| ResNet-18 step, NCCL at world size 1 against no process group | %s | `%s` |" % (text, NCCL))
    ph = data["phases"].get(INPUT_PIPELINE)
    r = data["results"].get(INPUT_PIPELINE) or {}
    if ph and ph["status"] == "ok":
        last = [line for line in r.get("stdout_tail", "").splitlines() if line.strip()]
        text = "`%s`" % (last[-1] if last else "no output")
    else:
        text = cell(data, INPUT_PIPELINE, None) + (" (%s)" % ph["reason"] if ph and ph.get("reason") else "")
    L.append("| input pipeline, img/s on all %s cores | %s | `%s` |" % (
        data["config"].get("cpus", "?"), text, INPUT_PIPELINE))
    return L


def render_benchmarks(data):
    L = header(data)
    scale = data["config"].get("scale", "?")
    L += ["", "#### Targets (the H200's: CIFAR-10, batch 256, fp32; this run: %s)" % scale, "",
          "Seconds from each program's own records in this run: the training loop of an epoch (the median over "
          "the epochs after the first, whose cuDNN autotuning is counted apart), the test pass, the detection pass "
          "(resmooth: its `detection pass (Ns)` report; the reference: from loading its baseline to the end of "
          "the GMM fit). A missed target names its largest phase from `resmooth bench train`'s breakdown.", ""]
    L += targets_table(data)
    L += ["", "#### resmooth bench train against a PyTorch step loop on the same libtorch", "",
          "`resmooth bench train`: the step alone on one batch already on the device, and the whole loop "
          "(data pipeline, upload, scorer, step, optimizer, then a 10k evaluation and a checkpoint) with its "
          "share of time per phase. PyTorch: `scripts/torch_ceiling.py`, the best of foreach and fused SGD.", ""]
    L += engine_table(data)
    L += ["", "#### CUDA graphs against eager (the follow-up's criteria; the default stays `off` until they hold)", ""]
    L += criteria_table(graph_rows(data))
    L += ["", "#### Waiting for other issues (phase 5)", ""]
    L += placeholders(data)
    runs = [REF_BASELINE, OURS_BASELINE, REF_RESMOOTH, OURS_RESMOOTH, REF_WRN, OURS_WRN]  # the targets' sources
    ids = [CEILING] + [b[0] for b in BENCHES] + [OURS_GRAPH, NCCL, INPUT_PIPELINE]
    L += failed_block(data, [DATA] + runs + ids)
    L += commands_block(data, runs + ids)
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------------------------
# proof.md and the docs
def phases_table(data):
    c = data["config"]
    L = ["| phase | status | why | wall s | estimate s |", "| --- | --- | --- | --- | --- |"]
    for pid, ph in data["phases"].items():
        L.append("| `%s` %s | %s | %s | %s | %s |" % (pid, ph.get("title", ""), ph["status"], ph.get("reason", ""),
                                                   secs(ph.get("seconds")), secs(ph.get("estimate"), 0)))
    wall = c.get("wall_seconds")
    L += ["", "Wall time of the whole script: %s s of a %s s budget." % (secs(wall), c.get("budget_s", "?"))]
    return L


def render_proof(data, records):
    failed = [pid for pid, ph in data["phases"].items() if ph["status"] == "FAILED"]
    L = ["# GPU proof", ""] + header(data)
    L += ["", "Result: %s." % ("every phase that ran succeeded" if not failed else
                                "FAILED: " + ", ".join("`%s`" % p for p in failed)), "", "## Phases", ""]
    L += phases_table(data)
    L += ["", "## Fidelity (docs/FIDELITY.md)", "", render_fidelity(data, records)]
    L += ["## Speed (docs/BENCHMARKS.md)", "", render_benchmarks(data)]
    return "\n".join(L)


def patch(text, marker, body, name):
    """`text` with the lines between `<!-- marker -->` and `<!-- /marker -->` replaced by `body`."""
    start, end = "<!-- %s -->\n" % marker, "<!-- /%s -->" % marker
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError("%s has no `%s` ... `%s` markers; put them around the section the tables replace" % (
            name, start.strip(), end))
    return text[:i + len(start)] + body + text[j:]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_all(records, out, docs_dir, patch_repo_docs):
    """Renders everything into `out`; with `patch_repo_docs`, the same sections into docs_dir's files."""
    data = load(records)
    os.makedirs(out, exist_ok=True)
    bodies = {"FIDELITY.md": render_fidelity(data, records), "BENCHMARKS.md": render_benchmarks(data)}
    # both documents are patched in memory first: a missing marker leaves neither half done
    texts = {name: patch(read_text(os.path.join(docs_dir, name)), MARKERS[name], body, os.path.join(docs_dir, name))
             for name, body in bodies.items()}
    for name, text in texts.items():
        write_atomic(os.path.join(out, name), text)
        if patch_repo_docs:
            write_atomic(os.path.join(docs_dir, name), text)
    proof = render_proof(data, records)
    write_atomic(os.path.join(out, "proof.md"), proof)
    write_atomic(os.path.join(out, "proof.json"), json.dumps(data, indent=1, default=str))
    return data, proof


def records_at(path):
    """The records folder at `path`: the folder itself, or unpacked from proof-records.tar.gz (`records/`)."""
    if not os.path.isdir(path):
        if not os.path.isfile(path):
            raise SystemExit("gpu_proof_report: %s does not exist" % path)
        dest = tempfile.mkdtemp(prefix="gpu-proof-records.")
        with tarfile.open(path) as tar:
            tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
        path = os.path.join(dest, "records")
    if not os.path.isfile(os.path.join(path, "phases.jsonl")) or not os.path.isfile(os.path.join(path, "config.json")):
        raise SystemExit("gpu_proof_report: %s holds no phases.jsonl and config.json: not the records of a "
                         "scripts/gpu_proof.py run" % path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", help="a run's records folder or its proof-records.tar.gz")
    ap.add_argument("--out", default=".", help="where proof.md, proof.json and the docs' copies go")
    ap.add_argument("--docs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"),
                    help="the docs folder whose FIDELITY.md and BENCHMARKS.md are copied and patched")
    ap.add_argument("--patch-docs", action="store_true",
                    help="also write the tables into --docs (refused for the records of a --quick run)")
    a = ap.parse_args()
    records = records_at(a.records)
    if a.patch_docs and (read_json(os.path.join(records, "config.json")) or {}).get("mode", "").startswith("quick"):
        raise SystemExit("gpu_proof_report: these records are from a --quick run, whose figures say nothing about the "
                         "GPU; the docs are left alone (drop --patch-docs)")
    try:
        _, proof = write_all(records, a.out, a.docs, patch_repo_docs=a.patch_docs)
    except ValueError as e:
        raise SystemExit("gpu_proof_report: %s" % e)
    print(proof)


if __name__ == "__main__":
    sys.exit(main())
