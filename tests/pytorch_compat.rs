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
    let model = Model::new(name.parse().unwrap(), classes, Device::Cpu);
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
    let model = Model::new(resmooth::config::ModelName::ResNet18, 10, Device::Cpu);
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

/// Our batch losses (LabelSmooth and SampleSmooth pairs under all four `--weighting`s, the
/// normalised deviation, `--prob` weighting of originals and augmented views) equal the
/// reference's criteria written in PyTorch, to 1e-6.
#[test]
fn batch_losses_match_the_reference_criteria_in_pytorch() {
    use resmooth::config::{LossName, TrainConfig, Weighting};
    use resmooth::loss::{weight_p, BatchLoss, Criterion};
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(11);
    let (n, classes) = (16i64, 10i64);
    let logits = Tensor::randn([n, classes], (Kind::Float, Device::Cpu)) * 2.0;
    let y = Tensor::randint(classes, [n], (Kind::Int64, Device::Cpu));
    let p_aug = Tensor::rand([n], (Kind::Float, Device::Cpu));
    let (smooth_org, smooth_aug) = (0.1, 0.4);
    let mut tensors: Vec<(String, Tensor)> = vec![("logits".into(), logits.copy()), ("y".into(), y.copy())];
    let mut cases = Vec::new();
    for weighting in Weighting::ALL.iter().copied() {
        for normalised in [false, true] {
            for prob in [0.0, 0.25, 0.5] {
                let n_ori = (n as f64 * prob).floor() as i64;
                let mut method = TrainConfig::default().method;
                (method.loss, method.weighting, method.smooth_org, method.smooth_aug) =
                    (LossName::SampleSmooth, weighting, smooth_org, smooth_aug);
                let (mut org, mut aug) = Criterion::pair(&method);
                if normalised {
                    (org, aug) = (org.normalised(), aug.normalised());
                }
                let ones = Tensor::ones([n_ori], (Kind::Float, Device::Cpu));
                let p_raw = Tensor::cat(&[ones, p_aug.narrow(0, n_ori, n - n_ori)], 0);
                let p = weight_p(&p_raw, weighting);
                let loss = BatchLoss { org, aug, prob }.loss(&logits, &y, n_ori, Some(&p), None);
                let i = cases.len();
                tensors.push((format!("case{i}.p_raw"), p_raw));
                tensors.push((format!("case{i}.p"), p));
                tensors.push((format!("case{i}.loss"), Tensor::from_slice(&[loss.double_value(&[]) as f32])));
                cases.push(serde_json::json!({
                    "weighting": weighting.name(), "normalised": normalised, "prob": prob, "n_ori": n_ori,
                    "smooth_org": smooth_org, "smooth_aug": smooth_aug,
                }));
            }
        }
    }
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();
    let tensors_path = dir.path().join("tensors.safetensors");
    write_safetensors_atomic(&tensors_path, &tensors).unwrap();
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_sample_smooth.py"))
        .arg(&cases_path)
        .arg(&tensors_path)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{log}");
    assert!(out.status.success(), "{log}");
    assert!(log.contains("all 24 cases agree"), "{log}");
}
