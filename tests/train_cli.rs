//! End-to-end tests of `resmooth train` on a synthetic ImageFolder the test writes: the class
//! is the dominant colour of an otherwise noisy image.

mod common;

use common::{resmooth, resmooth_cmd, text, write_colour_folder, Colours};
use std::path::{Path, PathBuf};

/// The JSON header of a safetensors file (its tensors' dtypes and shapes, and `__metadata__`).
fn safetensors_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

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
    let mut args = common::on_folder("train", &run.data, &run.logs);
    args.extend([
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
    ]);
    args
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
    assert!(m.iter().all(|e| e["step_mode"] == "eager"), "--cuda-graphs is off by default");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 5);
    assert_eq!(summary["last_test_top1"], m[4]["test_top1"]);
    assert_eq!(summary["config"]["model"], "resnet18");
    let best = m.iter().map(|e| e["test_top1"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(summary["best_test_top1"].as_f64().unwrap(), best);
    for f in ["model.safetensors", "best.safetensors", "checkpoint.safetensors"] {
        assert!(dir.join(f).is_file(), "{f} missing");
        // every weights file carries the checksum of its tensors, checked when it is read
        let crc = &safetensors_header(&dir.join(f))["__metadata__"][resmooth::model::CHECKSUM_KEY];
        assert!(crc.as_str().is_some_and(|c| c.len() == 8), "{f}: {crc}");
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
    // killed for good in the first step of epoch 4 (96 images, 6 steps an epoch): epochs 1 and
    // 2 are on disk, epoch 3's files perhaps
    let marker = run.data.with_file_name("paused");
    let mut child = resmooth_cmd()
        .args(&args)
        .env("RESMOOTH_TEST_PAUSE", "step#19")
        .env("RESMOOTH_TEST_PAUSE_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !marker.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its pause point");
        assert!(std::time::Instant::now() < deadline, "the run never reached its pause point");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = metrics(&metrics_path).len();
    assert!((2..=3).contains(&before), "{before} epochs recorded before the kill");

    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    // this session resumed after the last epoch on disk (the line of an epoch whose checkpoint
    // was written just before the kill is restored) and trained only the ones after it
    let resumed = format!("resuming {} after epoch ", run.logs.join("resume").display());
    let at = log.find(&resumed).unwrap_or_else(|| panic!("the run did not resume: {log}"));
    let epoch: usize = log[at + resumed.len()..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
    assert!((before..=3).contains(&epoch), "resumed after epoch {epoch}, {before} recorded: {log}");
    assert!(!log.contains(&format!("epoch {epoch}/4")) && log.contains("epoch 4/4"), "{log}");
    let m = metrics(&metrics_path);
    let epochs: Vec<u64> = m.iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4], "{log}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.logs.join("resume/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 4);

    // other flags on the same tag are refused, naming the way out
    let out = resmooth(&train_args(&run, "resume", "6"));
    assert!(!out.status.success());
    assert!(text(&out).contains("--restart"), "{}", text(&out));
}

#[test]
fn restart_starts_the_run_over() {
    let run = setup();
    let args = train_args(&run, "again", "3");
    let first = resmooth(&[&args[..], &["--stop-after", "1"]].concat());
    assert!(first.status.success(), "{}", text(&first));
    let path = run.logs.join("again/metrics.jsonl");
    let once = metrics(&path);
    assert_eq!(once.len(), 1);
    // resumed, the next session would train epoch 2; --restart trains epoch 1 again, from scratch
    let out = resmooth(&[&args[..], &["--restart", "--stop-after", "1"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(log.contains("epoch 1/3") && !log.contains("epoch 2/3") && !log.contains("resuming"), "{log}");
    let again = metrics(&path);
    assert_eq!(again.len(), 1, "the first session's epoch is replaced, not kept");
    // the same fresh start: the same numbers, bit for bit on the CPU
    for key in ["train_loss", "test_loss", "test_top1", "lr"] {
        assert_eq!(again[0][key], once[0][key], "{key}");
    }
}

/// `--precision bf16` trains on the CPU (bf16 autocast exists there) in bf16: the same run in
/// fp32 gives other numbers, and the weights it saves stay fp32.
#[test]
fn bf16_runs_end_to_end_in_bf16() {
    let run = setup();
    let fp32 = resmooth(&train_args(&run, "fp32", "1"));
    assert!(fp32.status.success(), "{}", text(&fp32));
    let bf16 = resmooth(&[&train_args(&run, "bf16", "1")[..], &["--precision", "bf16"]].concat());
    assert!(bf16.status.success(), "{}", text(&bf16));
    let a = &metrics(&run.logs.join("fp32/metrics.jsonl"))[0];
    let b = &metrics(&run.logs.join("bf16/metrics.jsonl"))[0];
    let loss = |m: &serde_json::Value, key: &str| m[key].as_f64().unwrap();
    assert!(loss(b, "train_loss").is_finite() && loss(b, "test_loss").is_finite(), "{b}");
    // the same seed, batches and draws: only bf16's rounding tells the runs apart
    assert_ne!(loss(a, "train_loss"), loss(b, "train_loss"), "bf16 trained exactly as fp32: bf16 is not used");
    assert_ne!(loss(a, "test_loss"), loss(b, "test_loss"), "bf16 evaluated exactly as fp32: bf16 is not used");
    let rel = (loss(a, "train_loss") - loss(b, "train_loss")).abs() / loss(a, "train_loss");
    assert!(rel < 0.5, "bf16's training loss is far from fp32's: {a} vs {b}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.logs.join("bf16/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["config"]["precision"], "bf16");
    let header = safetensors_header(&run.logs.join("bf16/model.safetensors"));
    assert_eq!(header["classifier.weight"]["dtype"], "F32", "master weights stay fp32");
}

/// `--train-size` and `--test-size` draw the subsets a run trains and evaluates on.
#[test]
fn train_and_test_size_subsets_are_what_the_run_uses() {
    let run = setup();
    let mut args = train_args(&run, "subset", "1");
    args.extend(["--train-size", "48", "--test-size", "20"]);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("48 training images, 20 test images, 3 classes"), "{}", text(&out));
    let log = std::fs::read_to_string(run.logs.join("subset/train.log")).unwrap();
    assert!(log.contains("48 training images, 20 test images"), "{log}");
    let m = &metrics(&run.logs.join("subset/metrics.jsonl"))[0];
    // accuracies count the 20 test images and the 48 training images (3 batches of 16)
    for (key, n) in [("test_top1", 20.0), ("train_top1", 48.0)] {
        let correct = m[key].as_f64().unwrap() * n;
        assert!((correct - correct.round()).abs() < 1e-9, "{key} is not a count of {n}: {m}");
    }
    // more than the folder holds is refused, naming the flag
    let mut args = train_args(&run, "subset2", "1");
    args.extend(["--train-size", "500"]);
    let out = resmooth(&args);
    assert!(!out.status.success() && text(&out).contains("--train-size"), "{}", text(&out));
}

/// The `--save` folder is held for the run as its own folder is: a second process on it is
/// refused before any work, and the lock goes with its holder.
#[test]
fn the_save_folder_is_locked_for_the_run() {
    let run = setup();
    let weights = run.data.with_file_name("weights");
    let save = weights.join("model.safetensors");
    let mut args = train_args(&run, "saved", "1");
    args.extend(["--save", save.to_str().unwrap()]);
    let held = resmooth::io::lock_dir(&weights).unwrap();
    let out = resmooth(&args);
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains(&format!("{} is in use by another resmooth process", weights.display())), "{log}");
    assert!(!run.logs.join("saved/metrics.jsonl").exists(), "the refused run trained");
    drop(held);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(save.is_file());
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
    // how the steps run is not part of what the run computes: --cuda-graphs may change on resume
    let out = resmooth(&[&part[..], &["--cuda-graphs", "auto"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("resuming"), "{}", text(&out));
    let a = metrics(&run.logs.join("full/metrics.jsonl"));
    let b = metrics(&run.logs.join("split/metrics.jsonl"));
    for key in ["train_loss", "test_loss", "test_top1", "lr"] {
        let (x, y) = (a[2][key].as_f64().unwrap(), b[2][key].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{key}: {x} vs {y}");
    }
    if !text(&out).contains("no CUDA GPU found") {
        return; // on a GPU, scripts/gpu_proof.py checks the graph's steps
    }
    assert!(text(&out).contains("training steps run eagerly: no GPU"), "{}", text(&out));
    assert_eq!(b[2]["step_mode"], "eager");
    // on the CPU, --cuda-graphs on is refused before training, saying what to pass instead
    let out = resmooth(&[&train_args(&run, "graphs", "1")[..], &["--cuda-graphs", "on"]].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("--cuda-graphs on: no GPU") && text(&out).contains("auto"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert!(!run.logs.join("graphs/metrics.jsonl").exists());
}

#[test]
fn bad_input_gets_clear_errors() {
    let run = setup();
    let mut args = train_args(&run, "bad", "1");
    args[4] = "/nonexistent/folder";
    let out = resmooth(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent/folder/train"), "{}", text(&out));

    // a training split smaller than one batch: the cause and the flag to change
    let mut args = train_args(&run, "big-batch", "1");
    let at = args.iter().position(|a| *a == "--batch-size").unwrap() + 1;
    args[at] = "200";
    let out = resmooth(&args);
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains("96 images, fewer than one batch of 200") && log.contains("--batch-size 96 or less"), "{log}");

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

/// A JPEG whose frame header declares 4 components (CMYK), as print workflows write them.
fn cmyk_jpeg_header() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x14, 8, 0, 16, 0, 16, 4];
    b.extend([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0, 0xFF, 0xD9]);
    b
}

/// DIR/{train,test}/{dark,light}/ of JPEGs and PNGs of several sizes, one grey and one RGBA.
fn write_mixed_folder(dir: &Path) {
    for (split, count) in [("train", 6), ("test", 2)] {
        for (class, base) in [("dark", 40u8), ("light", 210u8)] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..count {
                let (w, h) = [(20, 30), (40, 24), (17, 17), (64, 48), (16, 16), (33, 21)][i];
                let v = base.wrapping_add((i * 7) as u8);
                let rgb = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([v, v / 2 + (x % 5) as u8, v / 3 + (y % 3) as u8])
                });
                match i {
                    0 => rgb.save(d.join("a.jpg")).unwrap(),
                    1 => image::DynamicImage::ImageRgb8(rgb).to_luma8().save(d.join("grey.png")).unwrap(),
                    2 => image::DynamicImage::ImageRgb8(rgb).to_rgba8().save(d.join("alpha.png")).unwrap(),
                    3 => image::DynamicImage::ImageRgb8(rgb).to_luma8().save(d.join("grey.jpeg")).unwrap(),
                    _ => rgb.save(d.join(format!("{i}.png"))).unwrap(),
                }
            }
        }
    }
}

#[test]
fn own_images_of_mixed_sizes_and_modes_train_with_image_size() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mixed");
    write_mixed_folder(&data);
    let logs = tmp.path().join("logs");
    let mut base = common::on_folder("train", &data, &logs);
    base.extend([
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--prob",
        "0.5",
        "--aug",
        "severe",
        "--N",
        "2",
        "--workers",
        "1",
    ]);
    // without --image-size the sizes disagree: the error names a file and the flag
    let out = resmooth(&[&base[..], &["--tag", "own/native"]].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("--image-size") && text(&out).contains("differ in size"), "{}", text(&out));

    let out = resmooth(&[&base[..], &["--tag", "own/s16", "--image-size", "16", "--crop-padding", "2"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let m = metrics(&logs.join("own/s16/metrics.jsonl"));
    assert_eq!(m.len(), 1);
    assert!(m[0]["train_loss"].as_f64().unwrap().is_finite());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("own/s16/summary.json")).unwrap()).unwrap();
    assert_eq!(
        (summary["config"]["image_size"].as_u64(), summary["config"]["crop_padding"].as_u64()),
        (Some(16), Some(2))
    );

    // the normalisation of the folder's own training images, cached beside them and shown by `data info`
    let cache: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("resmooth-normalisation.json")).unwrap()).unwrap();
    let mean: Vec<f64> = cache["mean"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(mean[0] > 0.4 && mean[0] < 0.6 && mean[2] < mean[0], "{mean:?}");
    let out = resmooth(&["data", "info", data.to_str().unwrap(), "--image-size", "16"]);
    let info = text(&out);
    assert!(out.status.success(), "{info}");
    assert!(info.contains("16x16 RGB") && info.contains(&format!("mean ({:.4},", mean[0])), "{info}");
    assert!(info.contains("resmooth-normalisation.json") && !info.contains("0.4914"), "{info}");

    // malformed inputs are refused, naming the file
    std::fs::write(data.join("train/dark/print.jpg"), cmyk_jpeg_header()).unwrap();
    let out = resmooth(&[&base[..], &["--tag", "own/cmyk", "--image-size", "16"]].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("print.jpg") && text(&out).contains("CMYK"), "{}", text(&out));
    std::fs::remove_file(data.join("train/dark/print.jpg")).unwrap();
    let deep: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_pixel(8, 8, image::Rgb([9, 9, 9]));
    image::DynamicImage::ImageRgb16(deep).save(data.join("test/light/deep.png")).unwrap();
    let out = resmooth(&[&base[..], &["--tag", "own/deep", "--image-size", "16"]].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("deep.png") && text(&out).contains("16 bits"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

/// `resmooth bench train` on tiny synthetic data: the line the GPU scripts read, every phase in
/// the JSON, and the flags checked as `resmooth train` checks them.
#[test]
fn bench_train_reports_every_phase_and_checks_flags_as_train_does() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let tiny = ["bench", "train", "--synthetic", "--steps", "1", "--warmup", "0", "--batch-size", "2"];
    let mut args = tiny.to_vec();
    args.extend(["--eval-images", "2", "--workers", "1", "--prob", "0.5", "--gmm", "--json", json.to_str().unwrap()]);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        line.starts_with("bench train: resnet18 on ")
            && line.contains(", fp32 nchw, fused SGD, eager steps, batch 2, prob 0.5, scorer + GMM: step ")
            && line.contains("img/s; loop ")
            && line.contains("(2 images + evaluation of 2 + checkpoint); time in data wait "),
        "{line}"
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for phase in ["data_wait", "upload", "scorer", "step", "optimizer", "account", "evaluation", "checkpoint"] {
        assert!(r["seconds"][phase].is_number() && r["share"][phase].is_number(), "{phase} missing in {r}");
    }
    // --M is checked by --aug's scale, as in resmooth train (severe's is 0..=10)
    let mut severe = tiny.to_vec();
    severe.extend(["--aug", "severe", "--M", "11"]);
    let out = resmooth(&severe);
    assert!(
        !out.status.success() && text(&out).contains("--M 11 is outside 0..=10, the scale of --aug severe"),
        "{}",
        text(&out)
    );
}
