//! End to end, the ReSmooth method on a synthetic task where part of the augmentation destroys
//! the class: images are labelled by their dominant colour, and RandAugment's Invert (and the
//! per-channel AutoContrast and Equalize) destroy that colour while geometric ops keep it.

mod common;

use common::{resmooth, text, write_colour_folder, Colours};
use std::path::{Path, PathBuf};
use std::process::Output;

fn data_flags<'a>(data: &'a Path, logs: &'a Path) -> Vec<&'a str> {
    vec![
        "--dataset",
        "imagefolder",
        "--dataroot",
        data.to_str().unwrap(),
        // the folder's own mean/std, as by default
        "--logdir",
        logs.to_str().unwrap(),
        "--workers",
        "1",
        "--gpu",
        "0",
    ]
}

fn train(data: &Path, logs: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train"];
    args.extend(data_flags(data, logs));
    args.extend(["--batch-size", "16", "--lr", "0.05", "--warm-epoch", "1"]);
    args.extend_from_slice(extra);
    resmooth(&args)
}

#[test]
fn detection_marks_destroyed_views_ood_and_retraining_logs_id_ood_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    let logs: PathBuf = tmp.path().join("logs");
    write_colour_folder(&data, 48, 12, Colours { seed: 777, base: 160, div: 4 });

    // without the baseline, --gmm names the missing file and the command that makes it
    let out = train(
        &data,
        &logs,
        &["--tag", "syn/res/rs", "--epochs", "1", "--prob", "0.5", "--aug", "ra", "--gmm", "--loss", "SampleSmooth"],
    );
    assert!(!out.status.success());
    let log = text(&out);
    // the scorer is the baseline's best-test-epoch weights, as the reference's model.pth
    assert!(log.contains("syn/res/baseline/best.safetensors") && log.contains("--tag syn/res/baseline"), "{log}");

    let out = train(&data, &logs, &["--tag", "syn/res/baseline", "--epochs", "4", "--prob", "1.0"]);
    assert!(out.status.success(), "{}", text(&out));

    // step 2 alone
    let mut args = vec!["detect"];
    args.extend(data_flags(&data, &logs));
    let export = tmp.path().join("export");
    args.extend(["--aug", "ra", "--N", "1", "--M", "28", "--tag", "syn/res/detect", "--batch-size", "16"]);
    args.extend(["--export", export.to_str().unwrap()]);
    // a folder another process holds is refused, naming it, before any work
    let held = resmooth::io::lock_dir(&logs.join("syn/res/detect")).unwrap();
    let out = resmooth(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("syn/res/detect is in use by another resmooth process"), "{}", text(&out));
    drop(held);
    // a batch larger than the training split: the cause and the flag to change
    let out = resmooth(&[&args[..], &["--batch-size", "200"]].concat());
    assert!(!out.status.success());
    let log = text(&out);
    assert!(
        log.contains("144 images, fewer than one batch of 200") && log.contains("--batch-size 144 or less"),
        "{log}"
    );
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("OOD (p_ID < 0.5)") && report.contains("Invert"), "{report}");
    let dir = logs.join("syn/res/detect");
    // this baseline fits the task so closely (in 4 epochs) that most of its losses are exactly
    // 0: the ID component collapses onto log(1e-10), the fit is the reference's, and the pass
    // says so on the terminal and in detect.json
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("detect.json")).unwrap()).unwrap();
    let diagnosis = &summary["diagnosis"];
    assert!(diagnosis["at_floor"].as_u64().unwrap() > 144, "{summary}");
    assert_eq!(diagnosis["collapsed"]["id"], true, "{summary}");
    let warning = summary["warning"].as_str().unwrap_or_else(|| panic!("no warning in {summary}"));
    assert!(warning.contains("degenerate") && warning.contains("--pretrained"), "{warning}");
    assert!(report.contains(&format!("warning: {warning}")), "{report}");
    assert!(report.contains("losses at the underflow floor"), "{report}");
    compare_with_scikit_learn(&dir);
    let gmm: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("gmm.json")).unwrap()).unwrap();
    for key in ["weights", "means", "variances", "converged", "iterations"] {
        assert!(!gmm[key].is_null(), "gmm.json lacks {key}");
    }
    let csv = std::fs::read_to_string(dir.join("losses.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "index,label,view,ops,log_loss,p_id");
    let (mut destroyed, mut destroyed_ood, mut kept, mut kept_ood, mut originals, mut originals_ood) =
        (0, 0, 0, 0, 0, 0);
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        let p_id: f64 = cols[cols.len() - 1].parse().unwrap();
        let ood = usize::from(p_id < 0.5);
        let ops = cols[3];
        if cols[2] == "original" {
            originals += 1;
            originals_ood += ood;
        } else if ops.contains("Invert") {
            destroyed += 1;
            destroyed_ood += ood;
        } else if !(ops.contains("AutoContrast")
            || ops.contains("Equalize")
            || ops.contains("Solarize")
            || ops.contains("Posterize"))
        {
            kept += 1;
            kept_ood += ood;
        }
    }
    assert_eq!(originals, 144);
    assert!(destroyed >= 4, "too few inverted views ({destroyed}) to judge");
    let f = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    assert!(
        f(destroyed_ood, destroyed) >= 0.75,
        "only {destroyed_ood}/{destroyed} inverted views judged OOD\n{report}"
    );
    assert!(f(kept_ood, kept) <= 0.25, "{kept_ood}/{kept} class-keeping views judged OOD\n{report}");
    assert!(f(originals_ood, originals) <= 0.1, "{originals_ood}/{originals} original views judged OOD");
    // --export wrote every scored augmented view into the tree of its verdict, by class
    let count = |tree: &str| -> usize {
        common::CLASSES
            .iter()
            .map(|c| std::fs::read_dir(export.join(tree).join(c)).map(|d| d.count()).unwrap_or(0))
            .sum()
    };
    let augmented: Vec<f64> = csv
        .lines()
        .filter(|l| l.contains(",augmented,"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(count("DAOOD"), augmented.iter().filter(|p| **p < 0.5).count());
    assert_eq!(count("DAID"), augmented.iter().filter(|p| **p >= 0.5).count());
    check_exported_views(&dir, &export);
    // the report of the detection pass alone: detect.json says what was scored, so the four
    // augmented views of lowest p_ID in losses.csv are made again, with their ops
    let out = resmooth(&["report", dir.to_str().unwrap(), "--views", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("id=\"views-0\"") && page.contains("detection pass"), "{}", text(&out));
    assert!(
        page.contains("Warning: the GMM fit of the detection pass is degenerate"),
        "the report hides the diagnosis"
    );
    let grid = &page[page.find("Most OOD (lowest p_ID)").unwrap()..page.find("Most ID (highest p_ID)").unwrap()];
    assert_eq!(grid.matches("<img").count(), 4);
    let mut scored: Vec<(f64, f64, String)> = csv
        .lines()
        .filter(|l| l.contains(",augmented,"))
        .map(|l| {
            let ops = l.split('"').nth(1).unwrap().to_string();
            let nums: Vec<f64> = l.rsplit(',').take(2).map(|v| v.parse().unwrap()).collect();
            (nums[0], nums[1], ops)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut at = 0;
    for (_, _, ops) in scored.iter().take(4) {
        at += grid[at..].find(ops.as_str()).unwrap_or_else(|| panic!("{ops} missing from the grid, in order"));
    }

    // step 3: retraining with sample-wise smoothing logs the ID/OOD metrics
    let out = train(
        &data,
        &logs,
        &[
            "--tag",
            "syn/res/rs",
            "--epochs",
            "2",
            "--prob",
            "0.5",
            "--aug",
            "ra",
            "--N",
            "1",
            "--M",
            "28",
            "--gmm",
            "--loss",
            "SampleSmooth",
            "--smooth-aug",
            "0.4",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // train --gmm runs the same pass, and says the same, in its train.log too
    let log = std::fs::read_to_string(logs.join("syn/res/rs/train.log")).unwrap();
    assert!(log.contains("warning: the GMM fit of the detection pass is degenerate"), "{log}");
    assert!(text(&out).contains("warning: the GMM fit of the detection pass is degenerate"), "{}", text(&out));
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(logs.join("syn/res/rs/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 2);
    for m in &metrics {
        let ood = m["ood_fraction"].as_f64().unwrap();
        assert!(ood > 0.0 && ood < 0.6, "{m}");
        let smooth = m["mean_smooth"].as_f64().unwrap();
        assert!(smooth > 0.0 && smooth < 0.4, "{m}");
        assert!(m["train_top1_id"].is_number(), "{m}");
        assert!(m["train_top1_ood"].is_number() || m["train_top1_ood"].is_null(), "{m}");
    }
    assert!(logs.join("syn/res/rs/gmm.json").is_file());

    // the other modes of the reference run end to end from the same baseline
    for (tag, extra) in [
        ("syn/res/fair", &["--gmm", "--loss", "SampleSmooth", "--fair-comparison", "DAOOD", "--smooth-aug", "0.4"][..]),
        ("syn/res/reverse", &["--gmm", "--loss", "SampleSmooth", "--weighting", "reverse", "--smooth-aug", "0.4"][..]),
        ("syn/res/distill", &["--loss", "Distillation", "--K", "2", "--T", "4"][..]),
        // a copied reference command line: argparse type=bool flags with values, and --evalDA on
        // the trees that detect --export wrote
        ("syn/res/evalda", &["--cosine", "True", "--warm", "True", "--nesterov", "True", "--evalDA"][..]),
    ] {
        let mut args = vec!["--tag", tag, "--epochs", "1", "--prob", "0.5", "--aug", "ra", "--N", "1", "--M", "28"];
        args.extend_from_slice(extra);
        let (daood, daid) = (export.join("DAOOD"), export.join("DAID"));
        args.extend(["--daood", daood.to_str().unwrap(), "--daid", daid.to_str().unwrap()]);
        let out = train(&data, &logs, &args);
        assert!(out.status.success(), "{tag}: {}", text(&out));
        let line = std::fs::read_to_string(logs.join(tag).join("metrics.jsonl")).unwrap();
        let m: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        assert!(m["train_loss"].as_f64().unwrap().is_finite(), "{tag}: {m}");
        assert_eq!(m["daood_top1"].is_number(), extra.contains(&"--evalDA"), "{tag}: {m}");
        assert_eq!(m["daid_loss"].is_number(), extra.contains(&"--evalDA"), "{tag}: {m}");
        if tag == "syn/res/evalda" {
            check_eval_da(&data, &logs, &export, &m);
        } else {
            // the run records the baseline it loaded
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(logs.join(tag).join("summary.json")).unwrap()).unwrap();
            let pretrained = summary["pretrained"].as_str().unwrap_or_default();
            assert!(pretrained.ends_with("syn/res/baseline/best.safetensors"), "{tag}: {summary}");
            assert!(text(&out).contains(pretrained), "{tag}: the chosen baseline is printed at start");
        }
    }

    // the whole method in one command: the baseline exists, so it retrains and compares
    let mut args = vec!["run"];
    args.extend(data_flags(&data, &logs));
    args.extend([
        "--batch-size",
        "16",
        "--tag",
        "syn/res/rs_uniform",
        "--epochs",
        "1",
        "--prob",
        "0.5",
        "--aug",
        "ra",
        "--N",
        "1",
    ]);
    args.extend(["--M", "28", "--gmm", "--loss", "SampleSmooth", "--smooth-aug", "0.4", "--weighting", "uniform"]);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    for run in ["baseline", "rs ", "rs_uniform"] {
        assert!(table.contains(run), "{run} missing from\n{table}");
    }
    assert!(text(&out).contains("baseline found"), "{}", text(&out));
}

/// The `.venv`'s Python with scikit-learn, or `None` (saying so past the harness's capture)
/// where it is not installed and RESMOOTH_REQUIRE_SKLEARN is not set.
fn python_with_sklearn() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let found = std::process::Command::new(&python).args(["-c", "import sklearn"]).output();
    if found.is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    assert!(
        std::env::var_os("RESMOOTH_REQUIRE_SKLEARN").is_none(),
        "RESMOOTH_REQUIRE_SKLEARN is set but {} cannot import sklearn (pip install scikit-learn)",
        python.display()
    );
    common::skipped(
        "the comparison of the detection pass's GMM with scikit-learn's",
        "no scikit-learn in .venv (.venv/bin/python -m pip install scikit-learn runs it)",
    );
    None
}

/// The reference's GaussianMixture, fitted by scikit-learn with five k-means seeds on the
/// log-losses of `losses.csv`: each fit's parameters by increasing mean, and p_ID of every view.
const SKLEARN_FIT: &str = r#"
import csv, json, sys
import numpy as np
from sklearn.mixture import GaussianMixture
x = np.array([float(r["log_loss"]) for r in csv.DictReader(open(sys.argv[1]))]).reshape(-1, 1)
fits = []
for seed in range(5):
    g = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed).fit(x)
    o = np.argsort(g.means_[:, 0], kind="stable")
    fits.append({"means": g.means_[o, 0].tolist(), "variances": g.covariances_[o, 0, 0].tolist(),
                 "weights": g.weights_[o].tolist(), "p_id": g.predict_proba(x)[:, o[0]].tolist()})
print(json.dumps(fits))
"#;

/// Our fit (gmm.json) and p_ID (losses.csv) are scikit-learn's on the very log-losses of the pass.
fn compare_with_scikit_learn(dir: &Path) {
    let Some(python) = python_with_sklearn() else { return };
    let csv = dir.join("losses.csv");
    let out = std::process::Command::new(python).args(["-c", SKLEARN_FIT]).arg(&csv).output().unwrap();
    assert!(out.status.success(), "scikit-learn: {}", text(&out));
    let fits: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gmm.json")).unwrap()).unwrap();
    let pair = |v: &serde_json::Value| [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()];
    let (means, variances, weights) = (pair(&ours["means"]), pair(&ours["variances"]), pair(&ours["weights"]));
    let order = if means[0] <= means[1] { [0, 1] } else { [1, 0] };
    let p_ids: Vec<f64> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    // losses.csv rounds the log-losses to 1e-6, so the fits agree to about that
    for (seed, fit) in fits.iter().enumerate() {
        for (k, &c) in order.iter().enumerate() {
            let close = |what: &str, ours: f64, theirs: f64| {
                assert!(
                    (ours - theirs).abs() < 1e-4 * theirs.abs().max(1.0),
                    "seed {seed} {what} {k}: {ours} vs {theirs}"
                );
            };
            close("mean", means[c], pair(&fit["means"])[k]);
            close("variance", variances[c], pair(&fit["variances"])[k]);
            close("weight", weights[c], pair(&fit["weights"])[k]);
        }
        let theirs: Vec<f64> = fit["p_id"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        assert_eq!(theirs.len(), p_ids.len());
        for (i, (a, b)) in p_ids.iter().zip(&theirs).enumerate() {
            assert!((a - b).abs() < 1e-3, "seed {seed}, view {i}: p_ID {a} vs scikit-learn's {b}");
        }
    }
}

/// Every exported PNG is the augmented view the pass scored: made again from its seeded draws
/// it has the same pixels, the ops losses.csv records for it, and its label's folder and tree.
fn check_exported_views(dir: &Path, export: &Path) {
    let summary = resmooth::report::detect_summary::read_detect_summary(&dir.join("detect.json")).unwrap();
    let c = &summary.config;
    let ds = resmooth::data::load_configured(&c.data, &mut resmooth::progress::Silent).unwrap();
    let aug = resmooth::engine::augmenter(c);
    let csv = std::fs::read_to_string(dir.join("losses.csv")).unwrap();
    let mut checked = 0;
    for line in csv.lines().filter(|l| l.contains(",augmented,")) {
        let cols: Vec<&str> = line.splitn(4, ',').collect();
        let (index, label): (usize, usize) = (cols[0].parse().unwrap(), cols[1].parse().unwrap());
        let ops = line.split('"').nth(1).unwrap();
        let p_id: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        let tree = if p_id < 0.5 { "DAOOD" } else { "DAID" };
        let class = common::CLASSES[label];
        assert_eq!(ds.train.labels[index] as usize, label, "sample {index}");
        let path = export.join(tree).join(class).join(format!("{index:05}.png"));
        let png = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
        let (pixels, applied) = resmooth::pipeline::shown_view(
            &ds.train,
            &aug,
            ds.normalisation,
            c.run.seed,
            resmooth::method::DETECTION_EPOCH,
            index,
            false,
        );
        assert_eq!(
            resmooth::method::ops_text(&applied.unwrap_or_default()),
            ops,
            "sample {index}: not the scored view"
        );
        assert!(png.as_raw() == &pixels, "{}: not the pixels of the scored view", path.display());
        checked += 1;
    }
    assert_eq!(checked, 144);
}

/// `--evalDA`'s accuracy and loss on the exported trees are those of `--only-eval` of the run's
/// weights on a folder whose test split is that tree.
fn check_eval_da(data: &Path, logs: &Path, export: &Path, epoch: &serde_json::Value) {
    let weights = logs.join("syn/res/evalda/model.safetensors");
    for tree in ["DAOOD", "DAID"] {
        let root = logs.with_file_name(format!("eval-{tree}"));
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(data.join("train"), root.join("train")).unwrap();
        std::os::unix::fs::symlink(export.join(tree), root.join("test")).unwrap();
        let mut args = common::on_folder("train", &root, logs);
        args.extend(["--tag", "syn/res/eval", "--batch-size", "16", "--workers", "1", "--gpu", "0", "--only-eval"]);
        args.extend(["--save", weights.to_str().unwrap()]);
        let out = resmooth(&args);
        assert!(out.status.success(), "{tree}: {}", text(&out));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
        let eval: serde_json::Value = serde_json::from_str(&line).unwrap();
        let key = tree.to_lowercase();
        assert_eq!(eval["test_top1"], epoch[format!("{key}_top1")], "{tree}: {eval} vs {epoch}");
        let (a, b) = (eval["test_loss"].as_f64().unwrap(), epoch[format!("{key}_loss")].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{tree}: loss {a} vs {b}");
    }
}
