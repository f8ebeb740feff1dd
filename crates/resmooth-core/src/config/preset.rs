//! Presets: values a command fills in for the flags its command line leaves out. `resmooth run
//! --dataset demo` takes the demo's, so that the whole method (baseline, detection, ReSmooth,
//! comparison, report) runs in a few minutes on a CPU; a flag given on the command line keeps
//! its value.

use super::flags::{self, Flag};
use super::{ConfigError, DatasetName, TrainConfig};
use serde_json::{json, Value};

/// A named set of flag values (each as the field's JSON in the flat configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// What the messages call it (`demo`).
    pub name: &'static str,
    /// Each flag it sets and its value, as the flat configuration's JSON field holds it.
    pub values: Vec<(Flag, Value)>,
}

/// The preset `resmooth run` applies to a configuration of `dataset`, if any: the demo's.
pub fn for_run(dataset: DatasetName) -> Option<Preset> {
    (dataset == DatasetName::Demo).then(demo)
}

/// The demo's: our `small_cnn`, a short schedule (the reference's warmup and cosine over 15
/// epochs) in batches of 128, and the method as Table 1 runs it on CIFAR-10 (RandAugment
/// N 2, M 28, augmented views only, the GMM, SampleSmooth 0.4).
pub fn demo() -> Preset {
    Preset {
        name: "demo",
        values: vec![
            (flags::MODEL, json!("small_cnn")),
            (flags::EPOCHS, json!(15)),
            (flags::BATCH_SIZE, json!(128)),
            (flags::PROB, json!(0.0)),
            (flags::N, json!(2)),
            (flags::M, json!(28)),
            (flags::GMM, json!(true)),
            (flags::LOSS, json!("SampleSmooth")),
            (flags::SMOOTH_AUG, json!(0.4)),
            (flags::TAG, json!("demo/small_cnn/rs_ra")),
        ],
    }
}

impl Preset {
    /// The values of this preset whose flags `given` says are not on the command line.
    pub fn missing_from(&self, given: &dyn Fn(&Flag) -> bool) -> Vec<(Flag, Value)> {
        self.values.iter().filter(|(flag, _)| !given(flag)).cloned().collect()
    }

    /// `config` with the values of this preset for the flags `given` says are not on the
    /// command line, checked.
    pub fn fill(&self, config: &TrainConfig, given: &dyn Fn(&Flag) -> bool) -> Result<TrainConfig, ConfigError> {
        let mut flat = serde_json::to_value(config).expect("a configuration serialises");
        for (flag, value) in self.missing_from(given) {
            flat[flag.key] = value;
        }
        let filled: TrainConfig = serde_json::from_value(flat)
            .map_err(|e| ConfigError(format!("the {} preset does not fit the configuration: {e}", self.name)))?;
        filled.validate()?;
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LossName, ModelName, ModelSpec};

    fn demo_config() -> TrainConfig {
        let mut c = TrainConfig::default();
        c.data.dataset = DatasetName::Demo;
        c
    }

    #[test]
    fn the_demo_fills_the_flags_left_out_and_keeps_those_given() {
        let nothing_given = |_: &Flag| false;
        let c = demo().fill(&demo_config(), &nothing_given).unwrap();
        assert_eq!(c.model.model, ModelSpec::Builtin(ModelName::SmallCnn));
        assert_eq!((c.optim.epochs, c.optim.batch_size, c.aug.prob, c.aug.n, c.aug.m), (15, 128, 0.0, 2, 28));
        assert_eq!((c.method.gmm, c.method.loss, c.method.smooth_aug), (true, LossName::SampleSmooth, 0.4));
        assert_eq!(c.run.tag, "demo/small_cnn/rs_ra");
        // what is not in the preset keeps the command line's value
        assert_eq!((c.optim.lr, c.run.seed, c.data.dataset), (0.1, 0, DatasetName::Demo));

        let mut given = demo_config();
        (given.optim.epochs, given.run.tag) = (3, "mine".into());
        let epochs_and_tag = |f: &Flag| *f == flags::EPOCHS || *f == flags::TAG;
        let c = demo().fill(&given, &epochs_and_tag).unwrap();
        assert_eq!((c.optim.epochs, c.run.tag.as_str(), c.optim.batch_size), (3, "mine", 128));
        let left: Vec<&str> = demo().missing_from(&epochs_and_tag).iter().map(|(f, _)| f.spelling).collect();
        assert!(!left.contains(&"--epochs") && left.contains(&"--model"), "{left:?}");
    }

    #[test]
    fn a_filled_configuration_is_still_checked() {
        let mut c = demo_config();
        c.method.smooth_aug = 1.0;
        let smooth_given = |f: &Flag| *f == flags::SMOOTH_AUG;
        let err = demo().fill(&c, &smooth_given).unwrap_err().to_string();
        assert!(err.contains("--smooth-aug 1"), "{err}");
        assert!(for_run(DatasetName::Cifar10).is_none());
        assert_eq!(for_run(DatasetName::Demo), Some(demo()));
    }
}
