//! A reference user's files, made by PyTorch itself (scripts/reference_pth.py, the PyTorch in the
//! project's .venv): the reference's model.pth read wherever weights are read and as a `--save`
//! warm start; resmooth's .pth files loaded by torch.load and load_state_dict(strict=True);
//! the order of parameters and state_dict keys, on which optimizer states depend; torchvision's
//! pickled CIFAR folders.

mod common;

use common::{resmooth, text, write_colour_folder, Colours};
use resmooth::config::{ModelName, TrainConfig};
use resmooth::data::Normalisation;
use resmooth::engine::checkpoint::ResumeMeta;
use resmooth::engine::warm_start::{read_save, SaveStart};
use resmooth::model::{read_safetensors, Model};
use resmooth::optim::Sgd;
use resmooth::progress::Silent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(p.exists(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// Runs scripts/reference_pth.py with `args`; its output, after asserting it succeeded.
fn reference(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_pth.py");
    let out = std::process::Command::new(python()).arg(script).args(args).output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "reference_pth.py {args:?}: {log}");
    log
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn expected(dir: &Path) -> BTreeMap<String, Tensor> {
    read_safetensors(&dir.join("expected.safetensors")).unwrap().into_iter().collect()
}

fn assert_weights(model: &Model, want: &BTreeMap<String, Tensor>, what: &str) {
    for (k, v) in model.state_dict() {
        assert!(v.equal(&want[&format!("model.{k}")]), "{what}: {k} differs");
    }
    let logits = tch::no_grad(|| model.forward_t(&want["x"], false));
    let diff = (logits - &want["logits"]).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "{what}: logits differ from PyTorch's by {diff}");
}

fn config(save: &Path, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.run.save = Some(save.to_path_buf());
    c.optim.epochs = epochs;
    c
}

/// `read_save` of `file` for a run of `epochs` epochs: the case, the model, the optimizer, where the run stands.
fn start(file: &Path, epochs: usize) -> (SaveStart, Model, Sgd, ResumeMeta) {
    let c = config(file, epochs);
    let mut model = Model::new(ModelName::ResNet18, 3, Device::Cpu);
    let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
    let mut meta = ResumeMeta::fresh(&c);
    let case = read_save(&c, &mut model, &mut opt, &mut meta, Normalisation::CIFAR, &mut Silent).unwrap();
    (case, model, opt, meta)
}

/// The reference's checkpoint (epoch 2 of its ResNet-18, after an SGD step) as `--pretrained`,
/// `--only-eval --save` and a `--save` warm start in each of the reference's cases.
#[test]
fn a_reference_checkpoint_is_read_as_the_reference_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    reference(&["write", "resnet18", "3", "2", s(dir)]);
    let want = expected(dir);

    // weights: the checkpoint's 'model', DataParallel's module. keys, a bare state_dict
    for file in ["model.pth", "data_parallel.pth", "bare.pth"] {
        let mut m = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        m.load(&dir.join(file)).unwrap();
        assert_weights(&m, &want, file);
    }
    let spec = ModelName::ResNet18.into();
    let dataset = resmooth::config::DatasetName::Cifar10;
    let m = resmooth::method::load_pretrained(&dir.join("model.pth"), &spec, dataset, (3, [8, 8]), "t", Device::Cpu)
        .unwrap();
    assert_weights(&m, &want, "--pretrained");

    // --save on start: a checkpoint below --epochs restores weights, momentum and epoch
    let (case, model, opt, meta) = start(&dir.join("data_parallel.pth"), 5);
    assert_eq!(case, SaveStart::Checkpoint { epoch: 2 });
    assert_eq!(meta.epoch, 1, "the reference trains the checkpoint's epoch again");
    assert_weights(&model, &want, "warm start");
    let momentum = opt.state();
    assert_eq!(momentum.len(), want.keys().filter(|k| k.starts_with("optimizer.")).count());
    for (k, t) in momentum {
        assert!(t.equal(&want[&format!("optimizer.momentum_buffer.{k}")]), "momentum of {k}");
    }
    // its epoch not below --epochs: evaluation only; a bare state_dict: starting weights; no file: fresh
    assert_eq!(start(&dir.join("model.pth"), 2).0, SaveStart::EvaluateOnly { epoch: 2 });
    let (case, model, opt, meta) = start(&dir.join("bare.pth"), 5);
    assert_eq!((case, meta.epoch, opt.state().len()), (SaveStart::Weights, 0, 0));
    assert_weights(&model, &want, "bare state_dict");
    assert_eq!(start(&dir.join("none.pth"), 5).0, SaveStart::Fresh);

    // the command line: a warm start goes on from the checkpoint's epoch, said at start and in train.log
    let data = dir.join("colours");
    write_colour_folder(&data, 8, 4, Colours { seed: 3, base: 150, div: 3 });
    let save = dir.join("ckpt/warm/model.pth");
    std::fs::create_dir_all(save.parent().unwrap()).unwrap();
    std::fs::copy(dir.join("model.pth"), &save).unwrap();
    let logs = dir.join("logs");
    let pretrained = dir.join("model.pth");
    let mut args = common::on_folder("train", &data, &logs);
    args.extend(["--tag", "warm", "--save", s(&save), "--prob", "1.0", "--batch-size", "8", "--epochs", "3"]);
    // --pretrained takes the reference's file too; with --prob 1.0 the detection pass scores
    // RandAugment views, as the reference's (its data.py augments whatever --prob is)
    args.extend(["--warm-epoch", "1", "--workers", "1", "--gmm", "--pretrained", s(&pretrained)]);
    let out = resmooth(&args);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("checkpoint epoch@2") && log.contains("momentum (62 buffers) restored"), "{log}");
    let train_log = std::fs::read_to_string(logs.join("warm/train.log")).unwrap();
    assert!(train_log.contains("checkpoint epoch@2"), "{train_log}");
    let epochs: Vec<u64> = std::fs::read_to_string(logs.join("warm/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [2, 3]);
    let losses = std::fs::read_to_string(logs.join("warm/losses.csv")).unwrap();
    let augmented: Vec<&str> = losses.lines().filter(|l| l.contains(",augmented,")).collect();
    assert!(!augmented.is_empty() && augmented.iter().all(|l| !l.contains("\"\"")), "{losses}");
    // the run wrote its weights over --save in the format its name says: PyTorch loads them
    let check = reference(&["check", "resnet18", "3", s(&save), s(&logs.join("warm/checkpoint.safetensors"))]);
    assert!(check.contains("strict=True load, epoch 3"), "{check}");

    // --only-eval --save model.pth evaluates the checkpoint's weights
    let mut args = common::on_folder("train", &data, &logs);
    args.extend(["--tag", "eval", "--only-eval", "--save"]);
    let reference_file = dir.join("model.pth");
    args.push(s(&reference_file));
    let out = resmooth(&args);
    assert!(out.status.success() && text(&out).contains("\"test_top1\""), "{}", text(&out));
}

/// Runs of `--save-format pth` write model.pth and best.pth, and `resmooth export` a run's
/// checkpoint, in the reference's layout: torch.load, load_state_dict(strict=True) and the
/// optimizer's load_state_dict take them, with the run's weights and momentum.
#[test]
fn pth_files_written_by_resmooth_load_in_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    write_colour_folder(&data, 8, 4, Colours { seed: 4, base: 150, div: 3 });
    let logs = tmp.path().join("logs");
    let mut args = common::on_folder("train", &data, &logs);
    args.extend(["--tag", "p", "--save-format", "pth", "--prob", "1.0", "--batch-size", "8", "--epochs", "1"]);
    args.extend(["--workers", "1"]);
    let out = resmooth(&args);
    assert!(out.status.success(), "{}", text(&out));
    let run = logs.join("p");
    assert!(run.join("best.pth").is_file() && !run.join("model.safetensors").exists());
    let checkpoint = run.join("checkpoint.safetensors");
    let check = reference(&["check", "resnet18", "3", s(&run.join("model.pth")), s(&checkpoint)]);
    assert!(check.contains("strict=True load, epoch 1, 62 momentum buffers"), "{check}");
    let exported = tmp.path().join("exported.pth");
    let out = resmooth(&["export", s(&run), "--pth", s(&exported)]);
    assert!(out.status.success(), "{}", text(&out));
    let check = reference(&["check", "resnet18", "3", s(&exported), s(&checkpoint)]);
    assert!(check.contains("strict=True load, epoch 1, 62 momentum buffers"), "{check}");
    let out = resmooth(&["export", s(tmp.path()), "--pth", s(&exported)]);
    assert!(!out.status.success() && text(&out).contains("checkpoint.safetensors"), "{}", text(&out));
}

/// The parameters are made in the order of the reference's `model.parameters()` (the indices
/// of its optimizer state) and the state_dict is written in its `state_dict()` order, for every model.
#[test]
fn parameter_and_state_dict_orders_are_the_reference_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("order.json");
    reference(&["order", s(&path)]);
    let orders: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for name in ModelName::ALL {
        let m = Model::new_uninitialised(*name, 10, Device::Cpu);
        let want = |k: &str| -> Vec<String> {
            orders[name.name()][k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        assert_eq!(m.parameter_names(), want("parameters"), "{name}: parameters");
        let keys: Vec<String> = m.state_dict_ordered().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, want("state_dict"), "{name}: state_dict");
    }
}

/// torchvision's cifar-10-batches-py, pickled by numpy 2 with protocols 2 (bytes through
/// _codecs.encode) and 5 (_frombuffer), gives the pixels and labels of the binary files;
/// `data check` compares its files with torchvision's MD5s.
#[test]
fn torchvision_cifar_folders_read_as_the_binary_files() {
    let tmp = tempfile::tempdir().unwrap();
    for protocol in ["2", "5"] {
        let root = tmp.path().join(format!("p{protocol}"));
        reference(&["cifar", s(&root), protocol]);
        let both = resmooth::data::read_cifar10(&root).unwrap(); // the binary files when both are there
        let bin_only = tmp.path().join(format!("bin{protocol}"));
        std::fs::create_dir(&bin_only).unwrap();
        std::fs::rename(root.join("cifar-10-batches-bin"), bin_only.join("cifar-10-batches-bin")).unwrap();
        let pickled = resmooth::data::read_cifar10(&root).unwrap();
        assert_eq!((pickled.train.len(), pickled.test.len()), (10, 2));
        assert_eq!((&pickled.train, &pickled.test), (&both.train, &both.test), "protocol {protocol}");
        let out = resmooth(&["data", "check", "cifar10", "--dataroot", s(&root)]);
        let log = text(&out);
        assert!(out.status.success() && log.contains("data_batch_1") && log.contains("prepared copy"), "{log}");
        let out = resmooth(&["data", "info", s(&root)]);
        assert!(out.status.success() && text(&out).contains("cifar10"), "{}", text(&out));
    }
}
