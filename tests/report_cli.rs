//! End to end, what a run leaves to look at: TensorBoard event files (read back here with a
//! decoder of the TFRecord and protobuf wire formats written from TensorFlow's .proto files, not
//! from ours), `train.log`, progress lines off a terminal, and the HTML report, also opened in
//! headless Chromium when it is installed.

mod common;

use common::{resmooth, resmooth_cmd, text, write_colour_folder, Colours};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The runs the tests look at: `resmooth run` of a ReSmooth run (which trains its baseline first).
struct Runs {
    data: PathBuf,
    logs: PathBuf,
    stdout: String,
    stderr: String,
}

const EPOCHS: usize = 2;
/// 24 training images per class: 72 in all, 4 batches of 16 (the last partial one dropped).
const TRAIN_PER_CLASS: usize = 24;
const BATCH: usize = 16;
const STEPS: usize = 3 * TRAIN_PER_CLASS / BATCH;

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = common::scratch("report_cli");
        let data = root.join("colours");
        write_colour_folder(&data, TRAIN_PER_CLASS, 8, Colours { seed: 99, base: 160, div: 4 });
        let logs = root.join("logs");
        let (batch, epochs) = (BATCH.to_string(), EPOCHS.to_string());
        let mut args = common::on_folder("run", &data, &logs);
        args.extend([
            "--workers",
            "1",
            "--gpu",
            "0",
            "--batch-size",
            &batch,
            "--lr",
            "0.05",
            "--warm-epoch",
            "1",
            "--epochs",
            &epochs,
            "--tag",
            "syn/r/rs",
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
        ]);
        // off a terminal, a progress line for every step
        let out = resmooth_cmd().args(args).env("RESMOOTH_PROGRESS_SECONDS", "0").output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into());
        Runs { data, logs, stdout, stderr }
    })
}

// ---- a reader of TFRecord files and of the protobuf wire format --------------------------------

/// CRC-32C, bit by bit.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The records of a TFRecord file, their CRCs checked.
fn records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked(len_bytes), "length CRC");
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(crc, masked(data), "data CRC");
        out.push(data.to_vec());
        at += 16 + len;
    }
    out
}

/// One protobuf field: its number and value (varint, fixed 64 or 32 bits, or bytes).
#[derive(Debug, Clone)]
enum Field {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Vec<u8>),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn fields(bytes: &[u8]) -> Vec<(u64, Field)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let field = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(u64::from_le_bytes(bytes[at - 8..at].try_into().unwrap()))
            }
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Field::Bytes(bytes[at - len..at].to_vec())
            }
            5 => {
                at += 4;
                Field::Fixed32(u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap()))
            }
            t => panic!("wire type {t}"),
        };
        out.push((key >> 3, field));
    }
    out
}

fn bytes_of(f: &Field) -> &[u8] {
    match f {
        Field::Bytes(b) => b,
        other => panic!("not a length-delimited field: {other:?}"),
    }
}

fn double_of(f: &Field) -> f64 {
    match f {
        Field::Fixed64(v) => f64::from_bits(*v),
        other => panic!("not a double: {other:?}"),
    }
}

/// `repeated double` written packed.
fn packed_doubles(f: &Field) -> Vec<f64> {
    bytes_of(f).chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// What one summary value holds (tensorflow/core/framework/summary.proto).
#[derive(Debug, Clone)]
enum Value {
    Scalar(f32),
    /// height, width, colorspace, PNG bytes.
    Image(i64, i64, i64, Vec<u8>),
    /// min, max, num, sum, bucket_limit, bucket.
    Histogram {
        min: f64,
        max: f64,
        num: f64,
        sum: f64,
        limits: Vec<f64>,
        buckets: Vec<f64>,
    },
}

/// Every (tag, step, value) of the summaries of an event file (tensorflow/core/util/event.proto:
/// 1 wall_time, 2 step, 3 file_version, 5 summary), and its file version.
fn summaries(path: &Path) -> (String, Vec<(String, i64, Value)>) {
    let mut version = String::new();
    let mut out = Vec::new();
    for record in records(path) {
        let mut step = 0;
        for (n, f) in fields(&record) {
            match n {
                1 => assert!(double_of(&f) > 1.6e9, "wall time in seconds"),
                2 => step = if let Field::Varint(v) = f { v as i64 } else { panic!("step") },
                3 => version = String::from_utf8(bytes_of(&f).to_vec()).unwrap(),
                5 => {
                    for (vn, vf) in fields(bytes_of(&f)) {
                        assert_eq!(vn, 1, "Summary.value");
                        let mut tag = String::new();
                        let mut value = None;
                        for (k, x) in fields(bytes_of(&vf)) {
                            match (k, &x) {
                                (1, _) => tag = String::from_utf8(bytes_of(&x).to_vec()).unwrap(),
                                (2, Field::Fixed32(v)) => value = Some(Value::Scalar(f32::from_bits(*v))),
                                (4, _) => {
                                    let mut img = (0, 0, 0, Vec::new());
                                    for (i, y) in fields(bytes_of(&x)) {
                                        match (i, y) {
                                            (1, Field::Varint(v)) => img.0 = v as i64,
                                            (2, Field::Varint(v)) => img.1 = v as i64,
                                            (3, Field::Varint(v)) => img.2 = v as i64,
                                            (4, Field::Bytes(b)) => img.3 = b,
                                            other => panic!("Image field {other:?}"),
                                        }
                                    }
                                    value = Some(Value::Image(img.0, img.1, img.2, img.3));
                                }
                                (5, _) => {
                                    // proto3 leaves out fields at their default (0, empty)
                                    let h = fields(bytes_of(&x));
                                    let get = |n: u64| h.iter().find(|(k, _)| *k == n).map(|(_, f)| f.clone());
                                    let double = |n| get(n).map_or(0.0, |f| double_of(&f));
                                    let doubles = |n| get(n).map_or(Vec::new(), |f| packed_doubles(&f));
                                    value = Some(Value::Histogram {
                                        min: double(1),
                                        max: double(2),
                                        num: double(3),
                                        sum: double(4),
                                        limits: doubles(6),
                                        buckets: doubles(7),
                                    });
                                }
                                other => panic!("Summary.Value field {other:?}"),
                            }
                        }
                        out.push((tag, step, value.expect("a value")));
                    }
                }
                other => panic!("Event field {other}"),
            }
        }
    }
    (version, out)
}

/// The event files of a run folder.
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    files
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn event_files_hold_the_reference_tags_with_the_run_values() {
    let r = runs();
    let dir = r.logs.join("syn/r/rs");
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let (version, values) = summaries(&files[0]);
    assert_eq!(version, "brain.Event:2");
    let mut by_tag: BTreeMap<&str, Vec<(i64, &Value)>> = BTreeMap::new();
    for (tag, step, v) in &values {
        by_tag.entry(tag.as_str()).or_default().push((*step, v));
    }
    let scalar = |tag: &str| -> Vec<(i64, f64)> {
        by_tag
            .get(tag)
            .unwrap_or_else(|| panic!("no {tag} in {:?}", by_tag.keys()))
            .iter()
            .map(|(s, v)| match v {
                Value::Scalar(x) => (*s, *x as f64),
                other => panic!("{tag}: {other:?}"),
            })
            .collect()
    };
    let m = metrics(&dir);
    let steps: Vec<i64> = (1..=EPOCHS as i64).collect();
    for (tag, key) in [
        ("train/1.train_acc", "train_top1"),
        ("train/1.train_acc_ID", "train_top1_id"),
        ("train/2.train_loss", "train_loss"),
        ("test/1.test_acc", "test_top1"),
        ("test/2.test_loss", "test_loss"),
        ("resmooth/lr", "lr"),
        ("resmooth/ood_fraction", "ood_fraction"),
        ("resmooth/images_per_sec", "images_per_sec"),
    ] {
        let got = scalar(tag);
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), steps, "{tag}");
        for ((_, v), e) in got.iter().zip(&m) {
            assert_eq!(*v, e[key].as_f64().unwrap() as f32 as f64, "{tag} vs metrics.jsonl {key}");
        }
    }
    // the parts of the loss: the batch loss is 0.5 of each; the originals' criterion is plain
    // cross-entropy (--smooth-org 0), the augmented views' SampleSmooth with a uniform term
    for step in 0..EPOCHS {
        let at = |tag: &str| scalar(tag)[step].1;
        let (org, aug) = (at("train/3.train_loss_origin"), at("train/4.train_loss_augmentation"));
        assert!((at("train/2.train_loss") - 0.5 * (org + aug)).abs() < 1e-4, "step {step}: {org} {aug}");
        assert!((org - at("train/3.train_loss_origin_ce")).abs() < 1e-4);
        assert!(at("train/4.train_loss_augmentation_ce") > 0.0 && at("train/4.train_loss_augmentation_uniform") > 0.0);
        assert!(at("train/3.train_loss_origin_uniform") > 0.0);
    }
    // the images: both views of one 8x8 sample, and the loss histogram figure
    for (tag, size) in
        [("train/1.origin_image", (8, 8)), ("train/2.augmented_image", (8, 8)), ("train/3.loss_histogram", (496, 800))]
    {
        let images = &by_tag[tag];
        assert_eq!(images.iter().map(|p| p.0).collect::<Vec<_>>(), steps, "{tag}");
        for (_, v) in images {
            let Value::Image(h, w, colorspace, png) = v else { panic!("{tag}: {v:?}") };
            assert_eq!(((*h, *w), *colorspace), (size, 3), "{tag}");
            let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap();
            assert_eq!((img.height() as i64, img.width() as i64), size, "{tag}: the PNG is the size the event says");
        }
    }
    // the histograms: every sample of the epoch once; smoothness (1 - p_ID) * 0.4, its mean the metric's
    for (tag, count) in [
        ("train/3.log_loss_origin", 8 * STEPS),
        ("train/4.log_loss_augmentation", 8 * STEPS),
        ("train/4.smoothness", 8 * STEPS),
    ] {
        let hists = &by_tag[tag];
        assert_eq!(hists.iter().map(|p| p.0).collect::<Vec<_>>(), steps, "{tag}");
        for (step, v) in hists {
            let Value::Histogram { min, max, num, sum, limits, buckets } = v else { panic!("{tag}: {v:?}") };
            assert_eq!((*num, buckets.iter().sum::<f64>()), (count as f64, count as f64), "{tag} step {step}");
            assert_eq!(limits.len(), buckets.len());
            assert!(limits.windows(2).all(|w| w[0] <= w[1]) && min <= max && *limits.last().unwrap() == *max, "{tag}");
            if tag == "train/4.smoothness" {
                assert!(*min >= 0.0 && *max <= 0.4 + 1e-6, "{min} {max}");
                let mean_smooth = m[*step as usize - 1]["mean_smooth"].as_f64().unwrap();
                assert!((sum / num - mean_smooth).abs() < 1e-4, "{} vs {mean_smooth}", sum / num);
            } else {
                assert!(*max < 5.0 && *min > -24.0, "log-losses: {min} {max}");
            }
        }
    }
    // the baseline (every view an original) has the same scalars, no smoothness
    let (_, base) = summaries(&event_files(&r.logs.join("syn/r/baseline"))[0]);
    assert!(base.iter().any(|(t, s, _)| t == "test/1.test_acc" && *s == EPOCHS as i64));
    assert!(!base.iter().any(|(t, _, _)| t == "train/4.smoothness" || t == "train/1.train_acc_ID"));
}

#[test]
fn train_log_and_progress_lines_follow_the_run() {
    let r = runs();
    let log = std::fs::read_to_string(r.logs.join("syn/r/rs/train.log")).unwrap();
    let epochs: Vec<&str> = log.lines().filter(|l| l.contains("Z epoch ")).collect();
    assert_eq!(epochs.len(), EPOCHS, "{log}");
    assert!(epochs[0].contains("epoch 1/2 lr") && epochs[0].contains("OOD"), "{log}");
    for needle in ["session start", "pretrained baseline", "detection pass", "done: last test top1"] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    // every line starts with its time
    assert!(log.lines().all(|l| l.starts_with(' ') || l.as_bytes()[4] == b'-' && l[..21].ends_with("Z ")), "{log}");
    // the per-epoch lines on stdout as before, progress lines on stderr off a terminal
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("epoch ")).count(), 2 * EPOCHS, "{}", r.stdout);
    let step_lines = format!("train    2/2: {STEPS}/{STEPS} (100%)");
    for needle in ["train    1/2: 1/", step_lines.as_str(), "detection pass: "] {
        assert!(r.stderr.contains(needle), "{needle} missing from\n{}", r.stderr);
    }
}

/// The `data:image/png;base64,` images of a page, decoded.
fn page_images(html: &str) -> Vec<image::DynamicImage> {
    use base64::Engine;
    html.split("src=\"")
        .skip(1)
        .map(|s| {
            let uri = &s[..s.find('"').unwrap()];
            let data = uri
                .strip_prefix("data:image/png;base64,")
                .unwrap_or_else(|| panic!("an image that is not embedded: {uri:.60}"));
            let png = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
            image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap()
        })
        .collect()
}

#[test]
fn the_report_has_every_section_and_every_image() {
    let r = runs();
    let page_path = r.logs.join("syn/r/report.html");
    assert!(r.stdout.contains(page_path.to_str().unwrap()), "{}", r.stdout);
    let html = std::fs::read_to_string(&page_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // self-contained: nothing fetched, no script
    for banned in ["<script", "<link", "src=\"http", "href=\"http", "url(", "@import", "@font-face"] {
        assert!(!html.contains(banned), "{banned}");
    }
    for needle in [
        "id=\"comparison\"",
        "syn/r/baseline",
        "syn/r/rs",
        "--dataset imagefolder --tag syn/r/rs --gpu 0 --N 1 --M 28 --prob 0.5 --epochs 2 --lr 0.05 --warm-epoch 1 --batch-size 16 --gmm --loss SampleSmooth --smooth-aug 0.4",
        "python train.py --dataroot ",
        "id=\"config-1\"",
        "id=\"curves-0\"",
        "id=\"curves-1\"",
        "Top-1 accuracy",
        "Learning rate",
        "Training loss: original vs augmented views",
        "Log-loss of the training views, epoch 2",
        "id=\"id-ood-1\"",
        "ID vs OOD training accuracy",
        "id=\"detection-1\"",
        "Log-loss of the detection pass",
        "ID component",
        "p_ID = 0.5 at",
        "OOD fraction per op",
        "Invert |",
        "id=\"views-1\"",
        "Most OOD (lowest p_ID)",
        "Most ID (highest p_ID)",
        "Test top-1 accuracy",
    ] {
        assert!(html.contains(needle), "{needle} missing from the report");
    }
    // the baseline has no detection pass; every plot is drawn
    assert!(!html.contains("id=\"detection-0\""));
    // 4 overlaid; the baseline 3 and its training log-losses; the ReSmooth run 3, its losses by
    // part and log-losses, ID vs OOD, the detection histogram
    assert_eq!(html.matches("<svg").count(), 4 + 4 + 7, "{}", html.matches("<svg").count());
    assert!(!html.contains(">no data<"));
    // every image is an embedded PNG of a view: the 24 most OOD and 24 most ID of the augmented
    // views the detection pass scored (4 batches of 16)
    let images = page_images(&html);
    assert_eq!(images.len(), 2 * 24);
    assert!(images.iter().all(|i| (i.width(), i.height()) == (8, 8)));

    // resmooth report on chosen folders, and without the data the page says so instead of the views
    let out_dir = r.logs.join("pages");
    let rs = r.logs.join("syn/r/rs");
    let missing = r.logs.join("nowhere");
    let out = resmooth(&[
        "report",
        rs.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--dataroot",
        missing.to_str().unwrap(),
        "--views",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("the training images are not at hand") && html.contains("--dataroot"), "{}", text(&out));
    assert!(page_images(&html).is_empty() && html.contains("OOD fraction per op"));
    let out = resmooth(&[
        "report",
        rs.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--dataroot",
        r.data.to_str().unwrap(),
        "--views",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(page_images(&std::fs::read_to_string(out_dir.join("report.html")).unwrap()).len(), 8);
    // a folder that holds no run is named
    let out = resmooth(&["report", r.data.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("is not a run folder"), "{}", text(&out));
}

/// Chromium's binary, when installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    })
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("RESMOOTH_REQUIRE_CHROMIUM").is_none(),
            "RESMOOTH_REQUIRE_CHROMIUM is set but no chromium is installed (apt-get install chromium)"
        );
        common::skipped(
            "the_report_renders_in_headless_chromium",
            "no chromium on PATH (apt-get install chromium runs this test; RESMOOTH_REQUIRE_CHROMIUM=1 makes it required)",
        );
        return;
    };
    let r = runs();
    let page = r.logs.join("syn/r/report.html");
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("shot.png");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", tmp.path().join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1360,9000")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    // console messages (errors included) are logged as CONSOLE lines; the page has none
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1360, 9000));
    // the plots are drawn: the series colours (tab10 blue, orange, green) are on the page
    let near = |p: &image::Rgb<u8>, c: [u8; 3]| p.0.iter().zip(c).all(|(a, b)| (*a as i32 - b as i32).abs() <= 8);
    for colour in [[31, 119, 180], [255, 127, 14], [44, 160, 44]] {
        let n = img.pixels().filter(|p| near(p, colour)).count();
        assert!(n > 200, "{n} pixels of {colour:?}: the plots are not drawn");
    }
    let white = img.pixels().filter(|p| p.0.iter().all(|&v| v >= 245)).count() as f64;
    assert!(white / ((img.width() * img.height()) as f64) < 0.995, "the screenshot is blank");
}

#[test]
fn a_resumed_run_keeps_one_event_per_epoch_and_appends_to_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    write_colour_folder(&data, 16, 4, Colours { seed: 7, base: 160, div: 4 });
    let logs = tmp.path().join("logs");
    let mut args = common::on_folder("train", &data, &logs);
    args.extend([
        "--workers",
        "1",
        "--gpu",
        "0",
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--tag",
        "res/base",
        "--prob",
        "1.0",
    ]);
    let out = resmooth(&[&args[..], &["--stop-after", "1"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let dir = logs.join("res/base");
    // a session that logged epochs 2 and 3 but was killed before their checkpoint
    let mut w = resmooth::report::tensorboard::EventWriter::create(&dir).unwrap();
    w.scalar(2, "train/1.train_acc", 0.25).unwrap();
    w.scalar(3, "train/1.train_acc", 0.5).unwrap();
    w.flush().unwrap();
    drop(w);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("dropped 2 TensorBoard events of epochs after 1"), "{}", text(&out));
    let files = event_files(&dir);
    assert_eq!(files.len(), 2, "the killed session's file is gone: {files:?}");
    let mut steps: Vec<i64> = files
        .iter()
        .flat_map(|f| summaries(f).1)
        .filter(|(tag, _, _)| tag == "train/1.train_acc")
        .map(|(_, step, _)| step)
        .collect();
    steps.sort();
    assert_eq!(steps, [1, 2, 3]);
    let log = std::fs::read_to_string(dir.join("train.log")).unwrap();
    assert_eq!(log.matches("session start").count(), 2, "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("Z epoch ")).count(), 3, "{log}");
    assert!(log.contains("resuming") && log.contains("stopped after epoch 1"), "{log}");
}

/// The text of the first `<pre>` after `label` on a report page, its HTML entities decoded.
fn pre_after(html: &str, label: &str) -> String {
    let from = html.find(label).unwrap_or_else(|| panic!("no {label} on the page")) + label.len();
    let pre = &html[from..];
    let (start, end) = (pre.find("<pre>").unwrap() + "<pre>".len(), pre.find("</pre>").unwrap());
    [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")]
        .iter()
        .fold(pre[start..end].to_string(), |text, (entity, c)| text.replace(entity, c))
}

#[test]
fn the_reports_command_line_pasted_into_a_shell_resumes_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    // paths a shell must be given quoted
    let root = tmp.path().join("my runs/it's");
    let data = root.join("colours");
    write_colour_folder(&data, 8, 4, Colours { seed: 5, base: 160, div: 4 });
    let logs = root.join("logs");
    let mut args = common::on_folder("train", &data, &logs);
    // the flags of a run's identity that the report's command line once left out
    let identity = ["--image-size", "16", "--mean", "0.5,0.45,0.4", "--std", "0.25,0.25,0.3", "--crop-padding", "2"];
    let session = ["--workers", "1", "--tag", "own/s16", "--epochs", "2", "--batch-size", "8", "--prob", "1.0"];
    args.extend(identity.iter().chain(&session));
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let dir = logs.join("own/s16");
    let out = resmooth(&["report", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let line = pre_after(&std::fs::read_to_string(dir.join("report.html")).unwrap(), "resmooth's:");
    assert!(line.starts_with("resmooth train ") && line.contains(&identity.join(" ")), "{line}");

    // pasted into a shell, it is the same run (a finished one: nothing left to train)
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_resmooth"));
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let pasted = |line: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", line])
            .env("PATH", &path)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    let (ok, said) = pasted(&line);
    assert!(ok && said.contains("is complete (2 epochs)"), "{line}\n{said}");
    // without one of those flags it is another run, refused on this tag
    let drifted = line.replace(" --crop-padding 2", "");
    let (ok, said) = pasted(&drifted);
    assert!(!ok && said.contains("other flags"), "{drifted}\n{said}");
}
