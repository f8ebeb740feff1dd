//! Run folders written by earlier versions (tests/fixtures/runs) are still read: their
//! `summary.json` parses into today's configuration, and a checkpoint carrying their resume
//! identity is resumed by the same command line, keeping the finished epoch's metrics.

mod common;

use common::{resmooth, text, write_colour_folder, Colours};
use resmooth::config::{AugName, DatasetName, LossName, Precision};
use resmooth::engine::checkpoint::{self, ResumeMeta};
use resmooth::model::Model;
use resmooth::optim::Sgd;
use std::path::{Path, PathBuf};

const VERSIONS: [&str; 2] = ["v0.1.0-e2cdaea", "v0.1.0-b0220c4"];

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs").join(version)
}

#[test]
fn old_summaries_parse_into_todays_configuration() {
    for v in VERSIONS {
        let s = resmooth::report::read_summary(&fixture(v).join("summary.json")).unwrap();
        let c = &s.config;
        assert_eq!(
            (c.data.dataset, c.aug.aug, c.aug.n, c.aug.m, c.aug.prob),
            (DatasetName::ImageFolder, AugName::RandAugment, 1, 9, 0.5)
        );
        assert_eq!(
            (c.method.loss, c.method.smooth_aug, c.run.seed, c.optim.warm_epoch),
            (LossName::LabelSmooth, 0.1, 3, 1)
        );
        // written as null before fp32 became the explicit default
        assert_eq!(c.model.precision, Precision::Fp32);
        assert!(c.optim.cosine && c.optim.warm && c.optim.nesterov, "{v}: flags added later take their defaults");
        assert_eq!((s.epochs, s.best_epoch), (1, 1));
    }
}

#[test]
fn old_checkpoints_resume_with_the_same_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colours");
    write_colour_folder(&data, 16, 4, Colours { seed: 5, base: 160, div: 4 });
    for v in VERSIONS {
        let logs = tmp.path().join(v);
        let run = logs.join("golden/ls");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::copy(fixture(v).join("metrics.jsonl"), run.join("metrics.jsonl")).unwrap();
        let meta: ResumeMeta =
            serde_json::from_str(&std::fs::read_to_string(fixture(v).join("resume_meta.json")).unwrap()).unwrap();
        let model = Model::new(resmooth::config::ModelName::ResNet18, 3, tch::Device::Cpu);
        let opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
        checkpoint::save(&run.join("checkpoint.safetensors"), &model, &opt, &meta).unwrap();
        let mut args = common::on_folder("train", &data, &logs);
        args.extend([
            "--tag",
            "golden/ls",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--prob",
            "0.5",
            "--aug",
            "ra",
            "--N",
            "1",
            "--M",
            "9",
            "--smooth-aug",
            "0.1",
            "--seed",
            "3",
            "--workers",
            "1",
            "--lr",
            "0.05",
            "--warm-epoch",
            "1",
        ]);
        let out = resmooth(&args);
        assert!(out.status.success(), "{v}: {}", text(&out));
        assert!(text(&out).contains("after epoch 1"), "{v}: {}", text(&out));
        // those versions normalised every dataset with CIFAR's statistics; the run goes on with them
        assert!(text(&out).contains("keeps the normalisation it started with"), "{v}: {}", text(&out));
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let old = std::fs::read_to_string(fixture(v).join("metrics.jsonl")).unwrap();
        let lines: Vec<&str> = metrics.lines().collect();
        assert_eq!(lines.len(), 2, "{v}: {metrics}");
        assert_eq!(lines[0], old.trim_end(), "{v}: the finished epoch's line is kept");
        // another configuration is refused, naming the checkpoint
        let mut other = args.to_vec();
        let smooth = other.iter().position(|a| *a == "0.1").unwrap();
        other[smooth] = "0.2";
        let epochs = other.iter().position(|a| *a == "2").unwrap();
        other[epochs] = "3";
        let out = resmooth(&other);
        assert!(!out.status.success() && text(&out).contains("checkpoint.safetensors"), "{v}: {}", text(&out));
    }
}
