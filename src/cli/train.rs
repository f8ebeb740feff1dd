//! `resmooth train` and `resmooth run`: the reference's flags, grouped, and their conversion
//! into a [`TrainConfig`].

use super::flags::{
    AugFlags, ComputeFlags, DataFlags, DeviceFlags, EvalFlags, MethodFlags, ModelFlags, OptimFlags, RunFlags,
};
use clap::Args;
use resmooth::config::{ConfigError, MethodConfig, OptimConfig, RunConfig, TrainConfig};

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
        let TrainArgs { data, aug, model, compute, optim, method, run, eval, device } = self;
        let config = TrainConfig {
            data: data.config(eval.test_size),
            aug: aug.config(method.prob),
            model: compute.config(model.model),
            optim: OptimConfig {
                epochs: optim.epochs,
                lr: optim.lr,
                cosine: optim.cosine,
                warm: optim.warm,
                warm_multiplier: optim.warm_multiplier,
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
                gpu: device.gpu,
                seed: run.seed,
                workers: device.workers,
                deterministic: run.deterministic,
                cuda_graphs: device.cuda_graphs,
                restart: run.restart,
                stop_after: run.stop_after,
                only_eval: eval.only_eval,
                eval_da: eval.eval_da,
                daood: eval.daood,
                daid: eval.daid,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::Parser;
    use resmooth::config::*;

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
