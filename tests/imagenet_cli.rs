//! End-to-end: `resmooth bench data` on a tiny folder of JPEGs made here, and `resmooth augment
//! apply` of the ImageNet ops against the library's functions and torchvision's fixtures.

use resmooth::augment::imagenet::{eval_view, Enhancement, Jitter, Lighting, RandomResizedCrop};
use resmooth::data::resize::Region;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn resmooth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resmooth")).args(args).output().expect("run resmooth")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet")
}

/// (height, width, HWC bytes) of an image.
fn rgb(path: &Path) -> (usize, usize, Vec<u8>) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    (img.height() as usize, img.width() as usize, img.into_raw())
}

/// DIR/train/<class>/<i>.jpg for the (class, height, width) given, a gradient each.
fn jpeg_folder(dir: &Path, images: &[(&str, u32, u32)]) {
    for (i, &(class, h, w)) in images.iter().enumerate() {
        let folder = dir.join("train").join(class);
        std::fs::create_dir_all(&folder).unwrap();
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, (x + y + i as u32) as u8]));
        img.save(folder.join(format!("{i}.jpg"))).unwrap();
    }
}

#[test]
fn bench_data_streams_a_jpeg_folder_and_reports_rate_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let images = [("cat", 40, 60), ("cat", 75, 50), ("cat", 32, 32), ("dog", 90, 120), ("dog", 57, 41)];
    jpeg_folder(dir.path(), &images);
    let json = dir.path().join("bench.json");
    let root = dir.path().to_str().unwrap();
    let o = resmooth(&[
        "bench",
        "data",
        "--dataset",
        "imagenet",
        "--dataroot",
        root,
        "--threads",
        "2",
        "--seconds",
        "0.3",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("5 samples, 2 classes") && text.contains("img/s") && text.contains("peak resident"),
        "{text}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (r["samples"].as_u64(), r["classes"].as_u64(), r["source"].as_str()),
        (Some(5), Some(2), Some("stream"))
    );
    // the 5 files are one batch: each timed batch is a whole epoch of one view per file
    let (images, batches) = (r["images"].as_u64().unwrap(), r["batches"].as_u64().unwrap());
    assert!(batches >= 1 && images == 5 * batches, "{r}");
    assert!(r["images_per_second"].as_f64().unwrap() > 0.0 && r["seconds"].as_f64().unwrap() >= 0.3, "{r}");
    assert!(r["peak_resident_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
}

#[test]
fn bench_data_counts_both_views_in_memory_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = resmooth(&[
        "bench",
        "data",
        "--dataset",
        "synthetic",
        "--batch-size",
        "64",
        "--seconds",
        "0.2",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&o);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((r["samples"].as_u64(), r["source"].as_str()), (Some(4096), Some("memory")));
    assert_eq!(r["images"].as_u64().unwrap(), 2 * 64 * r["batches"].as_u64().unwrap(), "{r}");

    let root = dir.path().to_str().unwrap();
    let err = stderr(&resmooth(&["bench", "data", "--dataset", "imagenet", "--dataroot", root]));
    assert!(err.contains("train") && err.contains("--dataroot"), "{err}");
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    let err = stderr(&resmooth(&["bench", "data", "--dataset", "imagenet", "--dataroot", root]));
    assert!(err.contains("train") && err.contains("class folders"), "{err}");
    let err = stderr(&resmooth(&["bench", "data", "--dataset", "imagenett", "--dataroot", root]));
    assert!(err.contains("'imagenett'") && err.contains("imagenet"), "{err}");
    let err = stderr(&resmooth(&["bench", "data", "--dataset", "imagenet", "--dataroot", root, "--image-size", "64"]));
    assert!(err.contains("--image-size 64"), "{err}");
    let err = stderr(&resmooth(&["bench", "data", "--dataset", "synthetic", "--reduced-dct"]));
    assert!(err.contains("--reduced-dct"), "{err}");
}

/// Runs `augment apply` with `args` on `input`; returns the output image.
fn apply(input: &Path, args: &[&str]) -> (usize, usize, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let mut all = vec!["augment", "apply"];
    all.extend_from_slice(args);
    all.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
    ok(&resmooth(&all));
    rgb(&out)
}

#[test]
fn apply_random_resized_crop_gives_the_library_and_torchvision_pixels() {
    let input = fixtures().join("input_a.png");
    let (h, w, src) = rgb(&input);
    // the fixture crop_a_5_7_40_33: box (5, 7, 40, 33) resized to 24 by torchvision
    let got = apply(&input, &["--op", "random-resized-crop", "--box", "5,7,40,33", "--size", "24"]);
    assert_eq!(got, rgb(&fixtures().join("crop_a_5_7_40_33.png")));
    let region = Region { top: 10, left: 3, height: 51, width: 80 };
    let mut want = vec![0u8; 224 * 224 * 3];
    RandomResizedCrop::IMAGENET.apply(&src, (h, w), region, &mut want);
    assert_eq!(apply(&input, &["--op", "random-resized-crop", "--box", "10,3,51,80"]), (224, 224, want));
}

#[test]
fn apply_color_jitter_and_eval_give_the_library_and_torchvision_pixels() {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    let input = fixtures().join("input_a.png");
    let (h, w, src) = rgb(&input);
    for c in m["jitter"].as_array().unwrap().iter().filter(|c| c["image"] == "a").step_by(5) {
        let order: Vec<String> = c["order"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
        let factors: Vec<&str> = c["factors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let got =
            apply(&input, &["--op", "color-jitter", "--factors", &factors.join(","), "--order", &order.join(",")]);
        assert_eq!(got, rgb(&fixtures().join(c["file"].as_str().unwrap())), "{c}");
    }
    let jitter = Jitter {
        order: [Enhancement::Contrast, Enhancement::Saturation, Enhancement::Brightness],
        factors: [0.7, 1.3, 0.9],
    };
    let mut want = src.clone();
    jitter.apply(&mut want, &mut Vec::new());
    assert_eq!(apply(&input, &["--op", "color-jitter", "--factors", "0.7,1.3,0.9", "--order", "1,2,0"]), (h, w, want));
    // eval_a_20_17: Resize(20) + CenterCrop(17) by torchvision; the default is the reference's 256, 224
    let got = apply(&input, &["--op", "imagenet-eval", "--resize", "20", "--size", "17"]);
    assert_eq!(got, rgb(&fixtures().join("eval_a_20_17.png")));
    let mut want = vec![0u8; 224 * 224 * 3];
    eval_view(&src, (h, w), &mut want);
    assert_eq!(apply(&input, &["--op", "imagenet-eval"]), (224, 224, want));
}

#[test]
fn apply_lighting_writes_its_offset_and_refuses_a_png_and_misplaced_flags() {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    let input = fixtures().join("input_a.png");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lighting.json");
    let (inp, outp) = (input.to_str().unwrap(), out.to_str().unwrap());
    for c in m["lighting"].as_array().unwrap() {
        let alphas: Vec<&str> = c["alphas"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        ok(&resmooth(&["augment", "apply", "--op", "lighting", "--alphas", &alphas.join(","), inp, outp]));
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let offset: Vec<u32> =
            r["offset"].as_array().unwrap().iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect();
        let want: Vec<u32> = c["offset_bits"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(offset, want, "{c}");
        let a: Vec<f32> = alphas.iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(offset, Lighting::IMAGENET.offset([a[0], a[1], a[2]]).map(f32::to_bits).to_vec());
    }
    let png = dir.path().join("lighting.png");
    let err = stderr(&resmooth(&[
        "augment",
        "apply",
        "--op",
        "lighting",
        "--alphas",
        "0.1,0,-0.1",
        inp,
        png.to_str().unwrap(),
    ]));
    assert!(err.contains("no uint8 pixel") && err.contains(".json"), "{err}");
    assert!(!png.exists());
    let err = stderr(&resmooth(&["augment", "apply", "--op", "random-resized-crop", "--box", "1,2,3", inp, outp]));
    assert!(err.contains("--box takes 4"), "{err}");
    let err = stderr(&resmooth(&["augment", "apply", "--op", "random-resized-crop", "--box", "0,0,500,10", inp, outp]));
    assert!(err.contains("--box 0,0,500,10") && err.contains("inside"), "{err}");
    let err = stderr(&resmooth(&[
        "augment",
        "apply",
        "--op",
        "color-jitter",
        "--factors",
        "1,1,1",
        "--order",
        "0,1,1",
        inp,
        outp,
    ]));
    assert!(err.contains("--order"), "{err}");
    let err = stderr(&resmooth(&["augment", "apply", "--op", "rotate", "--box", "0,0,5,5", inp, outp]));
    assert!(err.contains("--box is a parameter of the ImageNet ops"), "{err}");
    let err = stderr(&resmooth(&["augment", "apply", "--op", "imagenet-eval", "--value", "1", inp, outp]));
    assert!(err.contains("takes no --value"), "{err}");
}
