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

/// Training steps (train-mode BatchNorm, cross-entropy, SGD with Nesterov momentum and weight
/// decay) give the losses and weights PyTorch's own training gives from the same start.
#[test]
fn training_steps_match_pytorch() {
    use resmooth::loss::Criterion;
    use resmooth::optim::Sgd;
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(5);
    let model = Model::new("resnet18", 10, Device::Cpu).unwrap();
    let initial = dir.path().join("initial.safetensors");
    model.save(&initial).unwrap();
    let x = Tensor::randn([16, 3, 16, 16], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
    // a large weight decay, so that a wrong decay rule shows in the weights
    let (lr, wd) = (0.02, 0.05);
    let mut opt = Sgd::new(&model.vs, 0.9, wd, true);
    let mut losses = Vec::new();
    for _ in 0..4 {
        let loss = Criterion::LabelSmooth(0.0).loss(&model.forward_t(&x, true), &y, None, None);
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        losses.push(loss.double_value(&[]) as f32);
    }
    model.set_batches_tracked(4);
    let mut io: Vec<(String, Tensor)> = vec![
        ("x".into(), x),
        ("y".into(), y),
        ("lr".into(), Tensor::from_slice(&[lr])),
        ("wd".into(), Tensor::from_slice(&[wd])),
        ("losses".into(), Tensor::from_slice(&losses)),
    ];
    io.extend(model.state_dict().into_iter().map(|(k, v)| (format!("final.{k}"), v.detach().copy())));
    let steps = dir.path().join("steps.safetensors");
    write_safetensors_atomic(&steps, &io).unwrap();
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_weights.py"))
        .args(["resnet18", "10"])
        .arg(&initial)
        .arg("--train")
        .arg(&steps)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{log}");
    assert!(out.status.success(), "{log}");
}

#[test]
fn resnet18_weights_load_into_the_reference_model() {
    check("resnet18", 10);
}

#[test]
fn wresnet28_10_weights_load_into_the_reference_model() {
    check("wresnet28_10", 100);
}
