//! Weights written by resmooth load into the reference architectures in PyTorch with
//! `strict=True` and give the same logits, and TorchScript modules scripted by PyTorch train,
//! save and reload here (uses the PyTorch in the project's .venv).

mod common;

use resmooth::model::{write_safetensors_atomic, Model};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn python() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(p.exists(), "{} missing: run scripts/setup.sh", p.display());
    p
}

fn check_weights() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_weights.py")
}

/// Runs scripts/check_weights.py with `args`; its output, after asserting it succeeded.
fn run_check_weights(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(python()).arg(check_weights()).args(args).output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check_weights.py {args:?}: {log}");
    log
}

/// Saves model `name`'s weights (with non-trivial BatchNorm statistics) and its eval-mode logits
/// on `size`x`size` images, and checks that PyTorch loads them with strict=True and agrees.
fn check(name: &str, classes: i64, size: i64) {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(3);
    let model = Model::new(name.parse().unwrap(), classes, Device::Cpu);
    // a few training steps' worth of non-trivial BatchNorm statistics
    let x = Tensor::randn([4, 3, size, size], (Kind::Float, Device::Cpu));
    tch::no_grad(|| {
        let _ = model.forward_t(&(&x * 2.0 + 0.5), true);
    });
    model.set_batches_tracked(1);
    let weights = dir.path().join("w.safetensors");
    model.save(&weights).unwrap();
    let logits = tch::no_grad(|| model.forward_t(&x, false));
    let io = dir.path().join("io.safetensors");
    write_safetensors_atomic(&io, &[("x".into(), x), ("logits".into(), logits)]).unwrap();
    let log = run_check_weights(&[name.as_ref(), classes.to_string().as_ref(), weights.as_os_str(), io.as_os_str()]);
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
    check("resnet18", 10, 32);
}

#[test]
fn wresnet28_10_weights_load_into_the_reference_model() {
    check("wresnet28_10", 100, 32);
}

#[test]
fn wresnet40_2_weights_load_into_the_reference_model() {
    check("wresnet40_2", 10, 16);
}

#[test]
fn resnet50_weights_load_into_the_reference_model() {
    check("resnet50", 10, 16);
}

/// The reference's shake-shake networks pool with an 8x8 window, so they take 32x32 images.
#[test]
fn shakeshake26_2x32d_weights_load_into_the_reference_model() {
    check("shakeshake26_2x32d", 100, 32);
}

#[test]
fn shakeshake26_2x96d_next_weights_load_into_the_reference_model() {
    check("shakeshake26_2x96d_next", 10, 32);
}

/// Every model, for 10 and 100 classes: the PyTorch versions in scripts/check_weights.py have
/// our parameter counts and exactly our state_dict keys and shapes (so weights of any of them
/// load there with strict=True; the unit tests check the same figures against the reference's).
#[test]
fn every_model_has_the_same_keys_shapes_and_parameter_counts_in_pytorch() {
    use resmooth::config::ModelName;
    let mut cases = Vec::new();
    for name in ModelName::ALL {
        for classes in [10, 100] {
            let m = Model::new_uninitialised(*name, classes, Device::Cpu);
            let state: serde_json::Map<String, serde_json::Value> =
                m.state_dict().into_iter().map(|(k, v)| (k, serde_json::json!(v.size()))).collect();
            cases.push(serde_json::json!({
                "model": name.name(), "classes": classes, "parameters": m.num_parameters(), "state": state,
            }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_string(&cases).unwrap()).unwrap();
    let log = run_check_weights(&["--keys".as_ref(), keys.as_os_str()]);
    eprintln!("{log}");
    assert!(log.contains(&format!("all {} models agree", cases.len())), "{log}");
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

/// Saves `net` (`tiny` or `torchvision.NAME`) with `classes` outputs as a TorchScript file in
/// `dir`, scripted (`how` = "script") or traced ("trace-train", "trace-eval").
fn torchscript(dir: &Path, net: &str, classes: i64, how: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{net}-{classes}-{how}.pt"));
    let classes = classes.to_string();
    run_check_weights(&["--script".as_ref(), net.as_ref(), path.as_os_str(), classes.as_ref(), how.as_ref()]);
    path
}

/// A scripted PyTorch module trains here: SGD updates its parameters in place, its BatchNorm
/// layers use and update batch statistics in training mode and use the running ones in
/// evaluation mode; its weights and statistics are saved under its own state_dict keys, reload
/// into a fresh copy of the module, and load into the module in PyTorch with strict=True.
#[test]
fn a_scripted_module_trains_and_its_weights_and_statistics_round_trip() {
    use resmooth::config::ModelSpec;
    use resmooth::loss::Criterion;
    use resmooth::optim::Sgd;
    let dir = tempfile::tempdir().unwrap();
    let module = torchscript(dir.path(), "tiny", 3, "script");
    let spec = ModelSpec::TorchScript(module.clone());
    let model = Model::build(&spec, 3, Device::Cpu).unwrap();
    let state = model.state_dict();
    let bn = ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"];
    let mut want: Vec<String> = vec!["features.0.weight".into(), "features.3.weight".into()];
    want.extend(bn.iter().flat_map(|k| [format!("features.1.{k}"), format!("features.4.{k}")]));
    want.extend(["head.bias".into(), "head.weight".into()]);
    want.sort();
    assert_eq!(state.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(model.num_parameters(), 1467, "the parameter count PyTorch gives");
    assert_eq!(model.batches_tracked(), 0, "building checks the module and leaves it as loaded");

    tch::manual_seed(7);
    let x = Tensor::randn([16, 3, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 + 0.5;
    let y = Tensor::randint(3, [16], (Kind::Int64, Device::Cpu));
    let initial = tch::no_grad(|| model.forward_t(&x, false));
    let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
    let mut losses = Vec::new();
    for _ in 0..6 {
        let loss = Criterion::LabelSmooth(0.0).loss(&model.forward_t(&x, true), &y, None, None);
        opt.zero_grad();
        loss.backward();
        opt.step(0.1);
        losses.push(loss.double_value(&[]));
    }
    assert!(losses[5] < losses[0], "training lowers the loss: {losses:?}");
    assert_eq!(model.batches_tracked(), 6, "the module counts its training batches");
    let mean = state["features.1.running_mean"].abs().sum(Kind::Float).double_value(&[]);
    assert!(mean > 0.01, "the running statistics moved from zero: {mean}");
    let trained = tch::no_grad(|| model.forward_t(&x, false));
    assert!(!trained.allclose(&initial, 1e-4, 1e-4, false));
    // evaluation uses the running statistics: an image's logits do not depend on its batch
    let alone = tch::no_grad(|| model.forward_t(&x.narrow(0, 0, 1), false));
    assert!(alone.allclose(&trained.narrow(0, 0, 1), 1e-5, 1e-5, false));

    let weights = dir.path().join("w.safetensors");
    model.save(&weights).unwrap();
    let mut fresh = Model::build(&spec, 3, Device::Cpu).unwrap();
    assert!(!tch::no_grad(|| fresh.forward_t(&x, false)).allclose(&trained, 1e-4, 1e-4, false));
    fresh.load(&weights).unwrap();
    assert_eq!(fresh.batches_tracked(), 6);
    let reloaded = tch::no_grad(|| fresh.forward_t(&x, false));
    assert_eq!((&reloaded - &trained).abs().max().double_value(&[]), 0.0);

    let io = dir.path().join("io.safetensors");
    write_safetensors_atomic(&io, &[("x".into(), x), ("logits".into(), trained)]).unwrap();
    let log = run_check_weights(&["--torchscript".as_ref(), module.as_os_str(), weights.as_os_str(), io.as_os_str()]);
    assert!(log.contains("strict=True"), "{log}");
}

/// Modules that cannot be trained and evaluated here are refused when built, with the reason:
/// traced modules whose BatchNorm mode was fixed when they were traced, a module with another
/// number of outputs than the dataset's classes, a missing or corrupt file.
#[test]
fn torchscript_modules_that_cannot_train_here_are_refused_with_the_reason() {
    use resmooth::config::ModelSpec;
    let dir = tempfile::tempdir().unwrap();
    let build_err = |path: std::path::PathBuf, classes: i64| {
        Model::build(&ModelSpec::TorchScript(path), classes, Device::Cpu).unwrap_err().to_string()
    };
    // a module made for 32x32 images is refused for a dataset of 48x48 ones, before any training
    let fixed = ModelSpec::TorchScript(torchscript(dir.path(), "tiny32", 3, "script"));
    assert!(Model::build_for(&fixed, 3, [32, 32], Device::Cpu).is_ok());
    let Err(err) = Model::build_for(&fixed, 3, [48, 48], Device::Cpu) else { panic!("48x48 images accepted") };
    let err = err.to_string();
    assert!(err.contains("3x48x48") && err.contains("tiny32-3-script.pt"), "{err}");
    let err = build_err(torchscript(dir.path(), "tiny", 3, "trace-train"), 3);
    assert!(err.contains("traced in training mode") && err.contains("torch.jit.script"), "{err}");
    let err = build_err(torchscript(dir.path(), "tiny", 3, "trace-eval"), 3);
    assert!(err.contains("traced in evaluation mode"), "{err}");
    let err = build_err(torchscript(dir.path(), "tiny", 3, "script"), 10);
    assert!(err.contains("[2, 10]") && err.contains("10 classes") && err.contains("tiny-3-script.pt"), "{err}");
    let err = build_err(dir.path().join("none.pt"), 3);
    assert!(err.contains("none.pt") && err.contains("not found"), "{err}");
    std::fs::write(dir.path().join("junk.pt"), b"not a module").unwrap();
    let err = build_err(dir.path().join("junk.pt"), 3);
    assert!(err.contains("junk.pt") && err.contains("not a TorchScript module"), "{err}");
}

/// `resmooth train --model torchscript:PATH` end to end: a session stopped after one epoch
/// resumes from its checkpoint, summary.json records the model as given, the best weights carry
/// the module's BatchNorm statistics, and a ReSmooth run scores its views with that baseline
/// through the GMM.
#[test]
fn torchscript_model_trains_resumes_and_scores_for_the_gmm_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    common::write_colour_folder(&data, 16, 4, common::Colours { seed: 11, base: 160, div: 4 });
    let module = torchscript(tmp.path(), "tiny", 3, "script");
    let model = format!("torchscript:{}", module.display());
    let logs = tmp.path().join("logs");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--dataset", "imagefolder", "--dataroot", data.to_str().unwrap()];
        args.extend(["--logdir", logs.to_str().unwrap(), "--model", &model, "--workers", "1", "--batch-size", "8"]);
        args.extend(["--lr", "0.05", "--warm-epoch", "1"]);
        args.extend_from_slice(extra);
        let out = common::resmooth(&args);
        let log = common::text(&out);
        assert!(out.status.success(), "{args:?}: {log}");
        log
    };
    let baseline = ["--tag", "ts/tiny/baseline", "--prob", "1.0", "--epochs", "2"];
    train(&[&baseline[..], &["--stop-after", "1"]].concat());
    let log = train(&baseline);
    assert!(log.contains("resuming") && log.contains("after epoch 1"), "{log}");
    let run = logs.join("ts/tiny/baseline");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["config"]["model"], model.as_str());
    assert_eq!(summary["epochs"], 2);
    let best: std::collections::BTreeMap<String, Tensor> =
        Tensor::read_safetensors(run.join("best.safetensors")).unwrap().into_iter().collect();
    assert!((&best["features.1.running_var"] - 1.0).abs().max().double_value(&[]) > 1e-3);
    assert!(best["features.1.num_batches_tracked"].int64_value(&[]) > 0);

    let log = train(&["--tag", "ts/tiny/rs", "--prob", "0.5", "--epochs", "1", "--gmm", "--loss", "SampleSmooth"]);
    assert!(log.contains("ts/tiny/baseline/best.safetensors"), "{log}");
    assert!(logs.join("ts/tiny/rs/gmm.json").is_file());
}

/// The fused SGD step (what training uses) gives torch.optim.SGD's weights bit for bit on the
/// CPU, over several steps with Nesterov momentum, weight decay and a changing learning rate.
#[test]
fn fused_sgd_steps_equal_torch_optim_sgd_bit_for_bit() {
    use resmooth::optim::Sgd;
    use tch::nn;
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(13);
    let vs = nn::VarStore::new(Device::Cpu);
    for (name, shape) in [("conv", &[32i64, 16, 3, 3][..]), ("bn", &[32]), ("fc", &[10, 512])] {
        let _ = vs.root().var(name, shape, nn::Init::Randn { mean: 0.0, stdev: 1.0 });
    }
    let vars = vs.variables();
    let mut io: Vec<(String, Tensor)> = vars.iter().map(|(k, v)| (format!("initial.{k}"), v.detach().copy())).collect();
    let (momentum, wd, lrs) = (0.9, 5e-4, [0.1, 0.1, 0.12, 0.05, 0.05]);
    let mut opt = Sgd::new(&vs, momentum, wd, true);
    for (s, &lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for (k, v) in &vars {
            let r = Tensor::randn(v.size(), (Kind::Float, Device::Cpu));
            loss += (v * &r).sum(Kind::Float);
            io.push((format!("grad{s}.{k}"), r));
        }
        loss.backward();
        opt.step(lr);
    }
    io.extend(vars.iter().map(|(k, v)| (format!("final.{k}"), v.detach().copy())));
    io.push(("lr".into(), Tensor::from_slice(&lrs)));
    io.push(("momentum".into(), Tensor::from_slice(&[momentum])));
    io.push(("wd".into(), Tensor::from_slice(&[wd])));
    io.push(("nesterov".into(), Tensor::from_slice(&[1i64])));
    let steps = dir.path().join("sgd.safetensors");
    write_safetensors_atomic(&steps, &io).unwrap();
    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_sgd.py"))
        .arg(&steps)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{log}");
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("identical").count(), 3, "{log}");
}
