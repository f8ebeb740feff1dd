//! End-to-end tests of `resmooth train` on a synthetic ImageFolder the test writes: the class
//! is the dominant colour of an otherwise noisy image.

mod common;

use common::{resmooth, resmooth_cmd, text, write_colour_folder, Colours};
use std::path::{Path, PathBuf};

fn metrics(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct Run {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    logs: PathBuf,
}

fn setup() -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    write_colour_folder(&data, 32, 16, Colours { seed: 12345, base: 150, div: 3 });
    let logs = tmp.path().join("logs");
    Run { _tmp: tmp, data, logs }
}

fn train_args<'a>(run: &'a Run, tag: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--dataset",
        "imagefolder",
        "--dataroot",
        run.data.to_str().unwrap(),
        "--logdir",
        run.logs.to_str().unwrap(),
        "--tag",
        tag,
        "--model",
        "resnet18",
        "--prob",
        "1.0",
        "--batch-size",
        "16",
        "--epochs",
        epochs,
        "--lr",
        "0.05",
        "--warm-epoch",
        "1",
        "--gpu",
        "0",
        "--workers",
        "1",
    ]
}

#[test]
fn trains_learns_saves_and_evaluates() {
    let run = setup();
    let out = resmooth(&train_args(&run, "e2e/base", "5"));
    assert!(out.status.success(), "{}", text(&out));
    let dir = run.logs.join("e2e/base");
    let m = metrics(&dir.join("metrics.jsonl"));
    assert_eq!(m.len(), 5);
    for (i, e) in m.iter().enumerate() {
        assert_eq!(e["epoch"], i + 1);
        for key in [
            "lr",
            "train_loss",
            "train_top1",
            "train_top5",
            "test_loss",
            "test_top1",
            "test_top5",
            "seconds",
            "images_per_sec",
        ] {
            assert!(e[key].is_number(), "{key} missing in {e}");
        }
    }
    let first = m[0]["train_loss"].as_f64().unwrap();
    let last = m[4]["train_loss"].as_f64().unwrap();
    assert!(last < first * 0.7, "train loss did not fall: {first} -> {last}");
    let top1 = m[4]["test_top1"].as_f64().unwrap();
    assert!(top1 >= 0.8, "test top1 {top1} is not far above chance (1/3)");
    assert_eq!(m[0]["lr"].as_f64().unwrap(), 0.05);
    assert!((m[1]["lr"].as_f64().unwrap() - 0.1).abs() < 1e-12);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 5);
    assert_eq!(summary["last_test_top1"], m[4]["test_top1"]);
    assert_eq!(summary["config"]["model"], "resnet18");
    let best = m.iter().map(|e| e["test_top1"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(summary["best_test_top1"].as_f64().unwrap(), best);
    for f in ["model.safetensors", "best.safetensors", "checkpoint.safetensors"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    if summary["device"] == "Cpu" {
        assert!(text(&out).contains("no CUDA GPU found; running on the CPU"), "{}", text(&out));
    }

    // --only-eval on the saved weights reproduces the reported test accuracy
    let weights = dir.join("model.safetensors");
    let mut args = train_args(&run, "e2e/eval", "5");
    args.extend(["--only-eval", "--save", weights.to_str().unwrap()]);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    let eval: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!((eval["test_top1"].as_f64().unwrap() - top1).abs() < 1e-9, "{eval} vs {top1}");
    assert!((eval["test_loss"].as_f64().unwrap() - m[4]["test_loss"].as_f64().unwrap()).abs() < 1e-4);

    // weights of this model refused by another architecture, with the file named
    let mut args = train_args(&run, "e2e/eval", "5");
    args.extend(["--only-eval", "--save", weights.to_str().unwrap()]);
    args[10] = "wresnet28_10";
    let out = resmooth(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("model.safetensors") && text(&out).contains("resnet18"), "{}", text(&out));

    // rerunning the finished command does not train again
    let out = resmooth(&train_args(&run, "e2e/base", "5"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("complete"), "{}", text(&out));
    assert_eq!(metrics(&dir.join("metrics.jsonl")).len(), 5);
}

#[test]
fn an_interrupted_run_resumes_at_the_next_epoch() {
    let run = setup();
    let args = train_args(&run, "resume", "4");
    let metrics_path = run.logs.join("resume/metrics.jsonl");
    let mut child = resmooth_cmd()
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let lines = std::fs::read_to_string(&metrics_path).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();

    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    let m = metrics(&metrics_path);
    let epochs: Vec<u64> = m.iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4], "{log}");
    assert!(log.contains("resuming") || log.contains("complete"), "{log}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.logs.join("resume/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 4);

    // other flags on the same tag are refused, naming the way out
    let out = resmooth(&train_args(&run, "resume", "6"));
    assert!(!out.status.success());
    assert!(text(&out).contains("--restart"), "{}", text(&out));
}

#[test]
fn resumed_training_matches_an_uninterrupted_one() {
    let run = setup();
    let full = train_args(&run, "full", "3");
    assert!(resmooth(&full).status.success());
    // the same run done as two sessions: 2 epochs, then the checkpoint is reused for epoch 3
    let part = train_args(&run, "split", "3");
    let out = resmooth(&[&part[..], &["--stop-after", "2"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(metrics(&run.logs.join("split/metrics.jsonl")).len(), 2);
    let out = resmooth(&part);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("resuming"), "{}", text(&out));
    let a = metrics(&run.logs.join("full/metrics.jsonl"));
    let b = metrics(&run.logs.join("split/metrics.jsonl"));
    for key in ["train_loss", "test_loss", "test_top1", "lr"] {
        let (x, y) = (a[2][key].as_f64().unwrap(), b[2][key].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{key}: {x} vs {y}");
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let run = setup();
    let mut args = train_args(&run, "bad", "1");
    args[4] = "/nonexistent/folder";
    let out = resmooth(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent/folder/train"), "{}", text(&out));

    let out = resmooth(&["train", "--prob", "2", "--dataroot", run.data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--prob"), "{}", text(&out));

    let out = resmooth(&[
        "train",
        "--only-eval",
        "--save",
        "/nonexistent/w.safetensors",
        "--dataset",
        "imagefolder",
        "--dataroot",
        run.data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent/w.safetensors"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}
