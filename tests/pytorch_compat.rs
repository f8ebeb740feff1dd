//! Weights written by resmooth load into the reference architectures in PyTorch with
//! `strict=True` and give the same logits (uses the PyTorch in the project's .venv).

use resmooth::model::{write_safetensors_atomic, Model};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn python() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(p.exists(), "{} missing: run scripts/setup.sh", p.display());
    p
}

fn check(name: &str, classes: i64) {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(3);
    let model = Model::new(name, classes, Device::Cpu).unwrap();
    // a few training steps' worth of non-trivial BatchNorm statistics
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    tch::no_grad(|| {
        let _ = model.forward_t(&(&x * 2.0 + 0.5), true);
    });
    model.set_batches_tracked(1);
    let weights = dir.path().join("w.safetensors");
    model.save(&weights).unwrap();
    let logits = tch::no_grad(|| model.forward_t(&x, false));
    let io = dir.path().join("io.safetensors");
    write_safetensors_atomic(&io, &[("x".into(), x), ("logits".into(), logits)]).unwrap();
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_weights.py"))
        .args([name, &classes.to_string()])
        .arg(&weights)
        .arg(&io)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name}: {log}");
    assert!(log.contains("strict=True"), "{log}");
}

#[test]
fn resnet18_weights_load_into_the_reference_model() {
    check("resnet18", 10);
}

#[test]
fn wresnet28_10_weights_load_into_the_reference_model() {
    check("wresnet28_10", 100);
}
