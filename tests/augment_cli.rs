//! End-to-end: `resmooth augment apply`, `resmooth augment preview` and `resmooth bench augment`.

use std::path::Path;
use std::process::Command;

fn resmooth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_resmooth")).args(args).output().expect("run resmooth")
}

fn rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path).unwrap().to_rgb8();
    (img.height(), img.width(), img.into_raw())
}

#[test]
fn apply_writes_pillows_pixels() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/augment");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    // the first case of the Rotate strip is M = 0 (value 0.0), the third M = 1 negated
    let input = fixtures.join("input_rect.png");
    let o = resmooth(&[
        "augment",
        "apply",
        "--op",
        "rotate",
        "--value",
        "-1.0",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, w, got) = rgb(&out);
    let (_, _, strip) = rgb(&fixtures.join("ra_Rotate_rect.png"));
    let n = (h * w * 3) as usize;
    assert_eq!(got, strip[2 * n..3 * n]);
}

#[test]
fn apply_names_a_bad_op() {
    let o = resmooth(&["augment", "apply", "--op", "Blur", "--value", "1", "a.png", "b.png"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--op 'Blur'") && err.contains("Sharpness"), "{err}");
}

#[test]
fn preview_writes_a_grid_and_bench_reports_pairs_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.png");
    let o = resmooth(&[
        "augment",
        "preview",
        "--aug",
        "ra",
        "--N",
        "2",
        "--M",
        "28",
        "--cutout",
        "16",
        "--count",
        "10",
        "--out",
        grid.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, w, _) = rgb(&grid);
    assert!(w > 8 * 2 * 32 && h > 2 * 32, "{w}x{h}");
    let o = resmooth(&["bench", "augment", "--aug", "jigsaw", "--cutout", "8", "--threads", "1", "--seconds", "0.2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let rate: f64 = text.split_whitespace().rev().nth(1).unwrap().parse().unwrap();
    assert!(rate > 0.0, "{text}");
}

#[test]
fn views_are_the_pipelines_views_of_that_epoch_and_sample() {
    use resmooth::augment::Augmenter;
    use resmooth::config::{AugName, DatasetName};
    use resmooth::data::synthetic_set;
    use resmooth::pipeline::make_view;

    let dir = tempfile::tempdir().unwrap();
    let args = ["--aug", "ra", "--N", "2", "--M", "28", "--cutout", "8", "--seed", "3", "--epoch", "2"];
    let out = dir.path().to_str().unwrap();
    let o = resmooth(&[&["augment", "views", "--index", "1,4", "--out", out][..], &args[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let set = synthetic_set(5, 3);
    let aug = Augmenter::new(AugName::RandAugment, 2, 28, 8, DatasetName::Cifar10);
    for (line, i) in lines.iter().zip([1usize, 4]) {
        let mut want = vec![0u8; set.image_bytes()];
        make_view(&set, &aug, 3, 2, i, true, &mut want);
        assert_eq!(rgb(&dir.path().join(format!("{i}_original.png"))).2, want);
        let applied = make_view(&set, &aug, 3, 2, i, false, &mut want).unwrap();
        assert_eq!(rgb(&dir.path().join(format!("{i}_augmented.png"))).2, want);
        assert_eq!(line["index"], i);
        assert_eq!(line["ops"][0][0], applied.ops[0].name.name());
        assert_eq!(line["ops"].as_array().unwrap().len(), 2);
        let cutout: Vec<u64> = line["cutout"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(cutout, applied.cutout.unwrap().map(u64::from));
    }
    let o = resmooth(&["augment", "views", "--index", "7", "--dataset", "synthetic", "--out", out]);
    assert!(o.status.success(), "synthetic makes as many images as the largest index needs");
}
