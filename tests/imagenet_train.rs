//! End to end, `--dataset imagenet`: ReSmooth's baseline, detection pass and retraining on an
//! ImageNet-layout folder of mixed-size JPEGs, streamed from disk (`--data-in-memory no`), then
//! the same with the images held in memory, which must score the same views the same; and an
//! unreadable file refused or left out as `--on-bad-image` says.

mod common;

use common::{resmooth, text};
use std::path::Path;

/// DIR/imagenet-pytorch/{train,val}/<class>/<i>.jpg: two classes told apart by their colour,
/// each image of its own size, with texture so that crops and RandAugment's ops change it.
fn imagenet_folder(root: &Path, train: usize, val: usize) {
    for (split, n) in [("train", train), ("val", val)] {
        for (c, class) in ["n01440764", "n01443537"].iter().enumerate() {
            let dir = root.join("imagenet-pytorch").join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let (w, h) = (40 + (i as u32 * 7) % 37, 36 + (i as u32 * 11) % 41);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    let t = ((x * 13 + y * 7 + i as u32 * 5) % 40) as u8;
                    match c {
                        0 => image::Rgb([200 + t / 2, 40 + t, 30]),
                        _ => image::Rgb([30, 50 + t, 190 + t / 2]),
                    }
                });
                img.save(dir.join(format!("{split}_{i:03}.jpg"))).unwrap();
            }
        }
    }
}

fn train(root: &Path, logs: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--dataset", "imagenet", "--dataroot", root.to_str().unwrap()];
    args.extend(["--logdir", logs.to_str().unwrap(), "--gpu", "0", "--workers", "2"]);
    args.extend(["--model", "small_cnn", "--image-size", "24", "--lr", "0.05", "--warm-epoch", "1"]);
    args.extend_from_slice(extra);
    resmooth(&args)
}

#[test]
fn resmooth_trains_on_a_streamed_imagenet_folder_and_in_memory_gives_the_same_views() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, logs) = (tmp.path().join("inet"), tmp.path().join("logs"));
    imagenet_folder(&root, 32, 8);

    let three = ["--epochs", "3", "--batch-size", "16"];
    let baseline = [&three[..], &["--data-in-memory", "no", "--prob", "1.0", "--tag", "inet/small/baseline"]].concat();
    let out = train(&root, &logs, &baseline);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("64 training images, 16 test images, 2 classes, streamed from disk"), "{log}");

    // streamed, a run stopped after an epoch and resumed ends with the weights of one that was not
    let resumed = [&three[..], &["--data-in-memory", "no", "--prob", "1.0", "--tag", "inet/small/resumed"]].concat();
    let out = train(&root, &logs, &[&resumed[..], &["--stop-after", "1"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let out = train(&root, &logs, &resumed);
    assert!(out.status.success() && text(&out).contains("resum"), "{}", text(&out));
    let weights = |tag: &str| std::fs::read(logs.join(tag).join("model.safetensors")).unwrap();
    assert!(weights("inet/small/resumed") == weights("inet/small/baseline"), "the resumed run's weights differ");

    let resmooth_flags = ["--prob", "0.0", "--M", "28", "--N", "2", "--smooth-aug", "0.4", "--gmm"];
    let resmooth_flags = [&three[..], &resmooth_flags[..], &["--loss", "SampleSmooth"]].concat();
    let streamed = [&resmooth_flags[..], &["--data-in-memory", "no", "--tag", "inet/small/rs_ra"]].concat();
    let out = train(&root, &logs, &streamed);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let run = logs.join("inet/small/rs_ra");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let csv = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let views: Vec<&str> = csv.lines().skip(1).collect();
    // the detection pass scored both views of every sample of its 4 batches of 16
    assert_eq!(views.len(), 128, "{csv}");
    assert_eq!(views.iter().filter(|l| l.split(',').nth(2) == Some("original")).count(), 64);
    assert!(views.iter().any(|l| l.contains("Invert") || l.contains("Rotate") || l.contains("Shear")), "{csv}");

    // the report's grids make the scored views again from the streamed files, checked against
    // the ops the run recorded
    let pages = tmp.path().join("pages");
    let out = resmooth(&["report", run.to_str().unwrap(), "--out", pages.to_str().unwrap(), "--views", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(pages.join("report.html")).unwrap();
    assert!(!html.contains("not at hand") && !html.contains("not the run's data"), "{}", text(&out));
    assert_eq!(html.matches("data:image/png;base64,").count(), 6, "{}", text(&out));

    // held in memory: the same views, so the same losses from the same baseline
    let baseline = logs.join("inet/small/baseline/best.safetensors");
    let memory_logs = tmp.path().join("memory");
    let held = [&resmooth_flags[..], &["--data-in-memory", "yes", "--tag", "inet/small/rs_ra"]].concat();
    let held = [&held[..], &["--pretrained", baseline.to_str().unwrap()]].concat();
    let out = train(&root, &memory_logs, &held);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("streamed from disk"), "{log}");
    let held_csv = std::fs::read_to_string(memory_logs.join("inet/small/rs_ra/losses.csv")).unwrap();
    assert_eq!(held_csv, csv, "the detection pass scored other views in memory than streamed");
}

#[test]
fn an_unreadable_imagenet_file_is_named_then_left_out_with_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, logs) = (tmp.path().join("inet"), tmp.path().join("logs"));
    imagenet_folder(&root, 10, 2);
    let bad = root.join("imagenet-pytorch/train/n01443537/train_004.jpg");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let flags = ["--prob", "1.0", "--epochs", "1", "--data-in-memory", "no", "--batch-size", "10"];
    let out = train(&root, &logs, &[&flags[..], &["--tag", "fail"]].concat());
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("train_004.jpg") && log.contains("--on-bad-image skip"), "{log}");

    let out = train(&root, &logs, &[&flags[..], &["--tag", "skip", "--on-bad-image", "skip"]].concat());
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("left out 1 training image(s)") && log.contains("train_004.jpg"), "{log}");

    // the flags that do not apply to a dataset say so
    let out = resmooth(&["train", "--dataset", "cifar10", "--data-in-memory", "no", "--epochs", "1"]);
    assert!(!out.status.success() && text(&out).contains("--data-in-memory no streams folder datasets"));
    let out = resmooth(&["train", "--dataset", "imagefolder", "--reduced-dct", "--epochs", "1"]);
    assert!(!out.status.success() && text(&out).contains("--reduced-dct"), "{}", text(&out));
    let out = train(tmp.path(), &logs, &["--tag", "nowhere"]);
    assert!(!out.status.success() && text(&out).contains("val/<class>"), "{}", text(&out));
}
