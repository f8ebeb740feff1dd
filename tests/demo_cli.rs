//! End to end, the README's main job at a smaller size: `resmooth run --dataset demo` trains the
//! baseline, detects, retrains with ReSmooth and writes the comparison and the report, and its
//! detection pass finds the views the demo was designed to break (Invert swaps the colour
//! family, Rotate turns stripes into another class's) more often OOD than those with Identity.

mod common;

use common::{resmooth, text};

/// The share of the augmented views in `losses.csv` holding `op` that the GMM calls OOD
/// (p_ID < 0.5), and how many views hold it.
fn ood_share(csv: &str, op: &str) -> (f64, usize) {
    let (mut views, mut ood) = (0, 0);
    for line in csv.lines().skip(1).filter(|l| l.contains(",augmented,")) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols[3].split(' ').any(|o| o.starts_with(&format!("{op}("))) {
            views += 1;
            ood += usize::from(cols[cols.len() - 1].parse::<f64>().unwrap() < 0.5);
        }
    }
    (ood as f64 / views.max(1) as f64, views)
}

#[test]
fn the_demo_run_reports_and_finds_the_views_that_destroy_the_class_cue() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let out = resmooth(&[
        "run",
        "--dataset",
        "demo",
        "--train-size",
        "2000",
        "--test-size",
        "200",
        "--epochs",
        "5",
        "--logdir",
        logs.to_str().unwrap(),
        "--workers",
        "1",
    ]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // the preset's values are said, no download is attempted, and the report is where it says
    assert!(log.contains("the demo preset") && log.contains("--model small_cnn"), "{log}");
    let parent = logs.join("demo/small_cnn");
    let report = parent.join("report.html");
    assert!(log.contains(&format!("report: {}", report.display())), "{log}");
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains("OOD fraction per op") && page.contains("rs_ra"), "the report lacks the detection pass");
    let table = &log[log.find("runs in ").expect("a comparison table")..];
    assert!(table.contains("baseline") && table.contains("rs_ra"), "{table}");

    let csv = std::fs::read_to_string(parent.join("rs_ra/losses.csv")).unwrap();
    let (invert, n_invert) = ood_share(&csv, "Invert");
    let (rotate, n_rotate) = ood_share(&csv, "Rotate");
    let (identity, n_identity) = ood_share(&csv, "Identity");
    assert!(n_invert >= 50 && n_rotate >= 50 && n_identity >= 50, "{n_invert} {n_rotate} {n_identity} views");
    let shares = format!("OOD share: Invert {invert:.2}, Rotate {rotate:.2}, Identity {identity:.2}\n{log}");
    assert!(invert >= 0.7 && invert >= identity + 0.3, "{shares}");
    assert!(rotate >= identity + 0.15, "{shares}");
}
