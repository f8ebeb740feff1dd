//! The command lines of a configuration: the reference's `python train.py …` that computes the
//! same run, and `resmooth train …` with our additions, for the report to show. Both are derived
//! from the configuration through the flag table of [`crate::config::flags`]: every field that
//! differs from its default is written, in the spelling clap parses, so a new flag cannot be
//! left out.

use crate::config::flags::{self, Flag, Form, FLAGS};
use crate::config::{DatasetName, ModelName, ModelSpec, TrainConfig};
use serde_json::Value;

/// A run's command lines and what the reference cannot express of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLines {
    /// `python train.py …`: the reference's flags that differ from its defaults, with
    /// `--dataset`, `--tag` and `--gpu` always given.
    pub reference: String,
    /// `resmooth train …`: the same flags and our additions that differ from their defaults;
    /// pasted into a shell, it runs (or resumes) the same run.
    pub resmooth: String,
    /// What of the configuration the reference cannot run as such.
    pub notes: Vec<String>,
}

/// A value as a shell word (quoted when it holds anything but plain characters).
fn word(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// A number of the configuration's JSON as clap reads it back: integers as such, `f64`s in
/// Rust's shortest round-trip form (`0`, `0.0005`).
fn number(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u.to_string(),
        (None, Some(i)) => i.to_string(),
        _ => n.as_f64().expect("a JSON number").to_string(),
    }
}

/// The words of `flag` for `value` (the field's JSON) on a command line: none when a switch is
/// off or an optional value is absent.
pub fn flag_words(flag: &Flag, value: &Value) -> Vec<String> {
    let spelling = flag.spelling.to_string();
    let text = match (flag.form, value) {
        (Form::Switch, Value::Bool(true)) => return vec![spelling],
        (Form::Switch, _) | (_, Value::Null) => return Vec::new(),
        // the reference's argparse `type=bool`: any non-empty text is true, only '' is false
        (Form::PythonBool, Value::Bool(b)) => (if *b { "True" } else { "''" }).to_string(),
        // the per-channel values are f32s
        (Form::PerChannel, Value::Array(channels)) => channels
            .iter()
            .map(|v| (v.as_f64().expect("a per-channel number") as f32).to_string())
            .collect::<Vec<_>>()
            .join(","),
        (_, Value::String(s)) => word(s),
        (_, Value::Number(n)) => number(n),
        // no flag of the table has another JSON value (its tests check the defaults' forms)
        (_, v) => word(&v.to_string()),
    };
    vec![spelling, text]
}

/// The command lines of `c`.
pub fn command_lines(c: &TrainConfig) -> CommandLines {
    let (now, default) = (flat(c), flat(&TrainConfig::default()));
    let (mut reference, mut additions) = (Vec::new(), Vec::new());
    for flag in FLAGS {
        let value = &now[flag.key];
        if !flag.always && *value == default[flag.key] {
            continue;
        }
        let words = flag_words(flag, value);
        if !words.is_empty() {
            let list = if flag.reference { &mut reference } else { &mut additions };
            list.push((flag, words.join(" ")));
        }
    }
    let join = |flags: &[(&Flag, String)]| flags.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(" ");
    let both: Vec<(&Flag, String)> = reference.iter().chain(&additions).cloned().collect();
    CommandLines {
        reference: format!("python train.py {}", join(&reference)),
        resmooth: format!("resmooth train {}", join(&both)),
        notes: notes(c, &additions),
    }
}

/// The flat JSON of a configuration (one key per field, as `summary.json` holds it).
fn flat(c: &TrainConfig) -> Value {
    serde_json::to_value(c).expect("a configuration serialises")
}

/// What the reference cannot run of `c`, whose resmooth-only flags are `additions`.
fn notes(c: &TrainConfig, additions: &[(&Flag, String)]) -> Vec<String> {
    let d = TrainConfig::default();
    let mut notes = Vec::new();
    let named: Vec<&str> = additions.iter().map(|(f, _)| f.spelling).filter(|s| *s != flags::LOGDIR.spelling).collect();
    if !named.is_empty() {
        notes.push(format!("the reference has no {} (resmooth additions)", named.join(", ")));
    }
    match &c.model.model {
        ModelSpec::TorchScript(_) => {
            notes.push(format!("the reference has no {} {}PATH", flags::MODEL.spelling, ModelSpec::TORCHSCRIPT))
        }
        ModelSpec::Builtin(name @ ModelName::SmallCnn) => {
            notes.push(format!("the reference has no {} {name} (ours)", flags::MODEL.spelling))
        }
        ModelSpec::Builtin(_) => {}
    }
    if matches!(c.data.dataset, DatasetName::ImageFolder | DatasetName::Demo) {
        notes.push(format!("the reference has no {} {}", flags::DATASET.spelling, c.data.dataset));
    }
    if c.data.dataset == DatasetName::ImageNet && !c.run.only_eval {
        notes.push(format!(
            "the reference's train.py cannot train with {} imagenet (its data.py builds no original/augmented pair there): only {} runs",
            flags::DATASET.spelling,
            flags::ONLY_EVAL.spelling
        ));
    }
    if c.optim.warm_multiplier.fract() != 0.0 {
        let (flag, value) = (flags::WARM_MULTIPLIER.spelling, c.optim.warm_multiplier);
        notes.push(format!("the reference's {flag} takes a whole number, not {value}"));
    }
    if c.run.logdir != d.run.logdir {
        notes.push(format!("the reference writes to logs/{} whatever --logdir says", c.run.tag));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LossName;

    #[test]
    fn the_table_1_command_line_comes_back() {
        let mut c = TrainConfig::default();
        (c.aug.prob, c.aug.m, c.aug.n, c.method.smooth_aug, c.method.gmm) = (0.0, 28, 2, 0.4, true);
        c.method.loss = LossName::SampleSmooth;
        c.run.tag = "cifar10/res18/rs_ra".into();
        let lines = command_lines(&c);
        assert_eq!(
            lines.reference,
            "python train.py --dataset cifar10 --tag cifar10/res18/rs_ra --gpu 0 --N 2 --M 28 --prob 0 --gmm --loss SampleSmooth --smooth-aug 0.4"
        );
        assert_eq!(lines.resmooth, lines.reference.replace("python train.py", "resmooth train"));
        assert!(lines.notes.is_empty(), "{:?}", lines.notes);
    }

    #[test]
    fn additions_and_what_the_reference_cannot_run_are_named() {
        let mut c = TrainConfig::default();
        c.data.dataset = DatasetName::ImageFolder;
        c.data.dataroot = "my data".into();
        c.data.train_size = Some(2000);
        c.optim.cosine = false;
        c.optim.warm_multiplier = 1.5;
        c.run.seed = 3;
        c.model.model = ModelSpec::TorchScript("net.pt".into());
        let lines = command_lines(&c);
        assert!(
            lines.reference.contains("--dataroot 'my data'") && lines.reference.contains("--cosine ''"),
            "{}",
            lines.reference
        );
        assert!(
            !lines.reference.contains("--seed") && lines.resmooth.ends_with("--seed 3 --train-size 2000"),
            "{}",
            lines.resmooth
        );
        let notes = lines.notes.join("; ");
        assert!(lines.reference.contains("--model torchscript:net.pt"), "{}", lines.reference);
        for needle in ["--seed, --train-size", "imagefolder", "--warm-multiplier", "torchscript"] {
            assert!(notes.contains(needle), "{needle}: {notes}");
        }
    }

    #[test]
    fn imagenet_training_and_its_data_flags_are_named_as_ours() {
        let mut c = TrainConfig::default();
        c.data.dataset = DatasetName::ImageNet;
        (c.data.reduced_dct, c.data.on_bad_image) = (true, crate::config::OnBadImage::Skip);
        c.data.data_in_memory = crate::config::DataInMemory::No;
        let lines = command_lines(&c);
        assert!(
            lines.resmooth.ends_with("--reduced-dct --on-bad-image skip --data-in-memory no"),
            "{}",
            lines.resmooth
        );
        let notes = lines.notes.join("; ");
        assert!(notes.contains("--reduced-dct, --on-bad-image, --data-in-memory"), "{notes}");
        assert!(notes.contains("cannot train with --dataset imagenet"), "{notes}");
        c.run.only_eval = true;
        assert!(!command_lines(&c).notes.join("; ").contains("cannot train"));
    }

    #[test]
    fn the_image_size_and_normalisation_of_a_run_are_on_its_line() {
        let mut c = TrainConfig::default();
        c.data.dataset = DatasetName::ImageFolder;
        (c.data.image_size, c.aug.crop_padding) = (Some(48), Some(2));
        (c.data.mean, c.data.std) = (Some([0.5, -0.25, 0.125]), Some([0.2, 0.3, 0.1]));
        c.run.tag = "own/s48".into();
        let lines = command_lines(&c);
        assert!(
            lines.resmooth.ends_with("--image-size 48 --mean 0.5,-0.25,0.125 --std 0.2,0.3,0.1 --crop-padding 2"),
            "{}",
            lines.resmooth
        );
        assert!(
            !lines.reference.contains("--image-size") && !lines.reference.contains("--mean"),
            "{}",
            lines.reference
        );
        let notes = lines.notes.join("; ");
        assert!(notes.contains("--image-size, --mean, --std, --crop-padding"), "{notes}");
    }

    #[test]
    fn switches_python_bools_and_quoted_paths_are_written_as_clap_reads_them() {
        let mut c = TrainConfig::default();
        (c.optim.nesterov, c.run.eval_da, c.run.deterministic) = (false, true, true);
        (c.run.daood, c.run.tag) = ("it's here".into(), String::new());
        let lines = command_lines(&c);
        assert_eq!(
            lines.resmooth,
            "resmooth train --dataset cifar10 --tag '' --gpu 0 --nesterov '' --evalDA --daood 'it'\\''s here' --deterministic"
        );
        assert_eq!(lines.reference, "python train.py --dataset cifar10 --tag '' --gpu 0 --nesterov '' --evalDA");
    }
}
