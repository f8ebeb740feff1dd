//! `resmooth train` and `resmooth run`: the reference's flags, grouped, and their conversion
//! into a [`TrainConfig`].

use super::flags::{
    AugFlags, ComputeFlags, DataFlags, DeviceFlags, EvalFlags, MethodFlags, ModelFlags, OptimFlags, RunFlags,
};
use clap::Args;
use resmooth::config::flags::Flag;
use resmooth::config::{preset, ConfigError, MethodConfig, OptimConfig, RunConfig, TrainConfig};
use serde_json::Value;

/// Flags of `resmooth train`, named and defaulted as the reference's.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub aug: AugFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub compute: ComputeFlags,
    #[command(flatten)]
    pub optim: OptimFlags,
    #[command(flatten)]
    pub method: MethodFlags,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub eval: EvalFlags,
    #[command(flatten)]
    pub device: DeviceFlags,
}

impl TrainArgs {
    /// The configuration these flags describe, checked.
    pub fn into_config(self) -> Result<TrainConfig, ConfigError> {
        let config = self.unchecked();
        config.validate()?;
        Ok(config)
    }

    /// The configuration of `resmooth run`: these flags, and for those not `given` on the
    /// command line the values of the dataset's preset (the demo's), checked; with the values
    /// the preset filled in.
    pub fn into_run_config(self, given: &[Flag]) -> Result<(TrainConfig, Vec<(Flag, Value)>), ConfigError> {
        let config = self.unchecked();
        let Some(preset) = preset::for_run(config.data.dataset) else {
            config.validate()?;
            return Ok((config, Vec::new()));
        };
        let given = |f: &Flag| given.contains(f);
        Ok((preset.fill(&config, &given)?, preset.missing_from(&given)))
    }

    fn unchecked(self) -> TrainConfig {
        let TrainArgs { data, aug, model, compute, optim, method, run, eval, device } = self;
        TrainConfig {
            data: data.config(eval.test_size),
            aug: aug.config(method.prob),
            model: compute.config(model.model),
            optim: OptimConfig {
                epochs: optim.epochs,
                lr: optim.lr,
                cosine: optim.cosine,
                warm: optim.warm,
                warm_multiplier: f64::from(optim.warm_multiplier),
                warm_epoch: optim.warm_epoch,
                batch_size: optim.batch_size,
                weight_decay: optim.weight_decay,
                nesterov: optim.nesterov,
            },
            method: MethodConfig {
                gmm: method.gmm,
                weighting: method.weighting,
                loss: method.loss,
                smooth_org: method.smooth_org,
                smooth_aug: method.smooth_aug,
                normalised_sample_smooth: method.normalised_sample_smooth,
                k: method.k,
                lamda: method.lamda,
                t: method.t,
                fair_comparison: method.fair_comparison,
                pretrained: method.pretrained,
            },
            run: RunConfig {
                tag: run.tag,
                logdir: run.logdir,
                save: run.save,
                save_format: run.save_format,
                gpu: device.gpu,
                seed: run.seed,
                workers: device.workers,
                deterministic: run.deterministic,
                cuda_graphs: device.cuda_graphs,
                dist_timeout: device.dist_timeout,
                restart: run.restart,
                stop_after: run.stop_after,
                only_eval: eval.only_eval,
                eval_da: eval.eval_da,
                daood: eval.daood,
                daid: eval.daid,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::Parser;
    use resmooth::config::*;
    use resmooth::report::reproduce::command_lines;

    fn parse(args: &[&str]) -> Result<TrainConfig, String> {
        let mut full = vec!["resmooth", "train"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).map_err(|e| e.to_string())?.command {
            Command::Train(t) => t.into_config().map_err(|e| e.to_string()),
            other => panic!("not a train command: {other:?}"),
        }
    }

    #[test]
    fn reference_command_line_parses() {
        let c = parse(&[
            "--dataset",
            "cifar10",
            "--prob",
            "0.0",
            "--M",
            "28",
            "--N",
            "2",
            "--smooth-aug",
            "0.4",
            "--gmm",
            "--loss",
            "SampleSmooth",
            "--gpu",
            "0",
            "--tag",
            "cifar10/res18/rs_ra",
            "--wd",
            "1e-4",
            "--K",
            "-1",
            "--T",
            "4",
        ])
        .unwrap();
        assert_eq!((c.aug.prob, c.aug.m, c.aug.n, c.method.smooth_aug, c.method.gmm), (0.0, 28, 2, 0.4, true));
        assert_eq!(
            (c.method.loss, c.run.tag.as_str(), c.optim.weight_decay, c.method.k, c.method.t),
            (LossName::SampleSmooth, "cifar10/res18/rs_ra", 1e-4, -1, 4.0)
        );
    }

    #[test]
    fn every_reference_model_and_torchscript_files_parse() {
        for name in ModelName::ALL {
            assert_eq!(parse(&["--model", name.name()]).unwrap().model.model, ModelSpec::Builtin(*name));
        }
        let c = parse(&["--model", "torchscript:nets/r18.pt"]).unwrap();
        assert_eq!(c.model.model, ModelSpec::TorchScript("nets/r18.pt".into()));
        let err = parse(&["--model", "torchscript:nets/r18.pt", "--precision", "bf16"]).unwrap_err();
        assert!(err.contains("--precision bf16"), "{err}");
    }

    #[test]
    fn the_flags_default_to_the_reference_defaults() {
        assert_eq!(parse(&[]).unwrap(), TrainConfig::default());
    }

    #[test]
    fn reference_bool_flags_parse_as_python_bool() {
        let c = parse(&["--cosine", "True", "--warm", "False", "--nesterov", "0"]).unwrap();
        assert!(
            c.optim.cosine && c.optim.warm && c.optim.nesterov,
            "any non-empty value is true, as bool(str) in Python"
        );
        let c = parse(&["--cosine", "", "--warm=", "--nesterov", ""]).unwrap();
        assert!(!c.optim.cosine && !c.optim.warm && !c.optim.nesterov);
        let c = parse(&["--evalDA", "--daood", "x/ood"]).unwrap();
        assert!(c.run.eval_da);
        assert_eq!((c.run.daood.to_str(), c.run.daid.to_str()), (Some("x/ood"), Some("DAID")));
    }

    #[test]
    fn data_and_augmentation_flags_reach_the_configuration() {
        let c = parse(&[
            "--dataset",
            "imagefolder",
            "--image-size",
            "48",
            "--mean",
            "0.5, 0.4,0.3",
            "--std=0.2,0.2,0.25",
            "--crop-padding",
            "3",
            "--aug",
            "severe",
            "--M",
            "10",
        ])
        .unwrap();
        assert_eq!((c.data.image_size, c.aug.crop_padding, c.aug.aug), (Some(48), Some(3), AugName::Severe));
        assert_eq!((c.data.mean, c.data.std), (Some([0.5, 0.4, 0.3]), Some([0.2, 0.2, 0.25])));
        let c = parse(&["--dataset", "tiny", "--aug", "sobel"]).unwrap();
        assert_eq!((c.data.dataset, c.aug.aug, c.data.image_size), (DatasetName::Tiny, AugName::Sobel, None));
        for aug in ["vertical", "blur"] {
            assert_eq!(parse(&["--aug", aug]).unwrap().aug.aug.name(), aug);
        }
    }

    /// `line` split into words as a shell splits it: what a user who pastes it runs.
    fn shell_words(line: &str) -> Vec<String> {
        let out =
            std::process::Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().expect("runs sh");
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().split_terminator('\0').map(String::from).collect()
    }

    /// The configuration that `resmooth train`, given the report's command line of `c`, runs.
    fn reparsed(c: &TrainConfig) -> TrainConfig {
        let line = command_lines(c).resmooth;
        let words = shell_words(&line);
        assert_eq!(words[..2], ["resmooth", "train"], "{line}");
        let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
        parse(&args).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Every field on the command line changed from its default, in two configurations (some
    /// values exclude others: a TorchScript model runs in fp32, Distillation has no
    /// --fair-comparison), with spaces and quotes in every path.
    fn everything_changed() -> [TrainConfig; 2] {
        let mut a = TrainConfig::default();
        a.data = DataConfig {
            dataset: DatasetName::ImageNet,
            dataroot: "my data/it's".into(),
            train_size: Some(40),
            test_size: Some(20),
            image_size: Some(48),
            mean: Some([0.5, -0.25, 0.125]),
            std: Some([0.2, 0.3, 0.1]),
            data_in_memory: DataInMemory::No,
            reduced_dct: true,
            on_bad_image: OnBadImage::Skip,
            ..a.data
        };
        a.aug = AugConfig { aug: AugName::Jigsaw, n: 2, m: 28, cutout: 16, prob: 0.5, crop_padding: Some(2) };
        a.model.model = ModelSpec::TorchScript("nets/my net.pt".into());
        a.model.memory_format = MemoryFormat::ChannelsLast;
        a.optim = OptimConfig {
            epochs: 3,
            lr: 0.05,
            cosine: false,
            warm: false,
            warm_multiplier: 3.0,
            warm_epoch: 1,
            batch_size: 16,
            weight_decay: 1e-4,
            nesterov: false,
        };
        a.method = MethodConfig {
            gmm: true,
            weighting: Weighting::Reverse,
            loss: LossName::SampleSmooth,
            smooth_org: 0.1,
            smooth_aug: 0.4,
            normalised_sample_smooth: true,
            k: 3,
            lamda: 0.25,
            t: 2.5,
            fair_comparison: FairComparison::Daood,
            pretrained: Some("base line/model.safetensors".into()),
        };
        a.run = RunConfig {
            tag: "folder/res 18/rs".into(),
            logdir: "my logs".into(),
            save: Some("out dir/w.safetensors".into()),
            gpu: 1,
            seed: 7,
            deterministic: true,
            cuda_graphs: CudaGraphs::Auto,
            dist_timeout: 90,
            only_eval: true,
            eval_da: true,
            daood: "DA OOD".into(),
            daid: "da'id".into(),
            ..a.run
        };
        let mut b = TrainConfig::default();
        b.data.dataset = DatasetName::Tiny;
        (b.aug.aug, b.aug.m) = (AugName::Severe, 10);
        b.model = ModelConfig {
            model: ModelName::WResNet28x10.into(),
            precision: Precision::Bf16,
            memory_format: MemoryFormat::Nchw,
            sync_bn: true,
        };
        (b.method.loss, b.method.k, b.method.pretrained) = (LossName::Distillation, 5, Some("b.safetensors".into()));
        (b.run.tag, b.run.cuda_graphs) = ("tiny/w10/kd".into(), CudaGraphs::On);
        b.run.save_format = Some(SaveFormat::Pth);
        [a, b]
    }

    #[test]
    fn the_reports_command_line_parses_back_to_the_same_configuration() {
        let mut tagged = TrainConfig::default();
        tagged.run.tag = "cifar10/res18/baseline".into();
        for c in [TrainConfig::default(), tagged].iter().chain(&everything_changed()) {
            c.validate().unwrap();
            assert_eq!(&reparsed(c), c, "{}", command_lines(c).resmooth);
        }
        // the configurations above change every field the command line writes
        let default = serde_json::to_value(TrainConfig::default()).unwrap();
        let changed: Vec<serde_json::Value> =
            everything_changed().iter().map(|c| serde_json::to_value(c).unwrap()).collect();
        for flag in flags::FLAGS {
            assert!(
                changed.iter().any(|c| c[flag.key] != default[flag.key]),
                "{} is never changed: add it to everything_changed()",
                flag.spelling
            );
        }
        let line = command_lines(&everything_changed()[0]).resmooth;
        for words in ["--image-size 48 --mean 0.5,-0.25,0.125 --std 0.2,0.3,0.1 --crop-padding 2", "--cosine ''"] {
            assert!(line.contains(words), "{words}: {line}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        for (args, needle) in [
            (&["--prob", "1.5"][..], "--prob"),
            (&["--smooth-aug", "1.0"][..], "--smooth-aug"),
            (&["--M", "31"][..], "--M"),
            (&["--epochs", "0"][..], "--epochs"),
            (&["--model", "vgg"][..], "--model"),
            (&["--model", "torchscript:"][..], "--model"),
            (&["--loss", "Focal"][..], "--loss"),
            (&["--dataset", "mnist"][..], "--dataset"),
            (&["--aug", "mixup"][..], "--aug"),
            (&["--aug", "severe", "--M", "11"][..], "--aug severe"),
            (&["--image-size", "32"][..], "--image-size"),
            (&["--dataset", "imagefolder", "--image-size", "4"][..], "--image-size 4"),
            (&["--mean", "0.5,0.5"][..], "--mean"),
            (&["--std", "0.2,0,0.2"][..], "--std"),
            (&["--weighting", "x"][..], "--weighting"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(parse(&["--N", "-1"]).is_err());
    }
}
