//! The command lines of a configuration: the reference's `python train.py …` that computes the
//! same run, and `resmooth train …` with our additions, for the report to show.

use crate::config::{DatasetName, ModelSpec, TrainConfig};

/// A run's command lines and what the reference cannot express of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLines {
    /// `python train.py …`: the reference's flags that differ from its defaults, with
    /// `--dataset`, `--tag` and `--gpu` always given.
    pub reference: String,
    /// `resmooth train …`: the same flags and our additions that differ from their defaults.
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

/// The reference's argparse `type=bool` value: `''` is the only false.
fn python_bool(v: bool) -> String {
    if v {
        "True".into()
    } else {
        "''".into()
    }
}

/// The command lines of `c`.
pub fn command_lines(c: &TrainConfig) -> CommandLines {
    let d = TrainConfig::default();
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut flag = |name: &str, value: String| flags.push((name.to_string(), value));
    let (r, a, m, o, me) = (&c.run, &c.aug, &c.model, &c.optim, &c.method);
    if c.data.dataroot != d.data.dataroot {
        flag("--dataroot", word(&c.data.dataroot.to_string_lossy()));
    }
    flag("--dataset", c.data.dataset.to_string());
    flag("--tag", word(&r.tag));
    flag("--gpu", r.gpu.to_string());
    let mut differ = |name: &str, differs: bool, value: String| {
        if differs {
            flags.push((name.to_string(), value));
        }
    };
    differ("--save", r.save.is_some(), r.save.as_ref().map(|s| word(&s.to_string_lossy())).unwrap_or_default());
    differ("--aug", a.aug != d.aug.aug, a.aug.to_string());
    differ("--N", a.n != d.aug.n, a.n.to_string());
    differ("--M", a.m != d.aug.m, a.m.to_string());
    differ("--cutout", a.cutout != d.aug.cutout, a.cutout.to_string());
    differ("--prob", a.prob != d.aug.prob, a.prob.to_string());
    differ("--model", m.model != d.model.model, m.model.to_string());
    differ("--epochs", o.epochs != d.optim.epochs, o.epochs.to_string());
    differ("--lr", o.lr != d.optim.lr, o.lr.to_string());
    differ("--cosine", o.cosine != d.optim.cosine, python_bool(o.cosine));
    differ("--warm", o.warm != d.optim.warm, python_bool(o.warm));
    differ("--warm-multiplier", o.warm_multiplier != d.optim.warm_multiplier, o.warm_multiplier.to_string());
    differ("--warm-epoch", o.warm_epoch != d.optim.warm_epoch, o.warm_epoch.to_string());
    differ("--batch-size", o.batch_size != d.optim.batch_size, o.batch_size.to_string());
    differ("--weight-decay", o.weight_decay != d.optim.weight_decay, o.weight_decay.to_string());
    differ("--nesterov", o.nesterov != d.optim.nesterov, python_bool(o.nesterov));
    differ("--evalDA", r.eval_da, String::new());
    differ("--fair-comparison", me.fair_comparison != d.method.fair_comparison, me.fair_comparison.to_string());
    differ("--gmm", me.gmm, String::new());
    differ("--weighting", me.weighting != d.method.weighting, me.weighting.to_string());
    differ("--loss", me.loss != d.method.loss, me.loss.to_string());
    differ("--smooth-org", me.smooth_org != d.method.smooth_org, me.smooth_org.to_string());
    differ("--smooth-aug", me.smooth_aug != d.method.smooth_aug, me.smooth_aug.to_string());
    differ("--K", me.k != d.method.k, me.k.to_string());
    differ("--lamda", me.lamda != d.method.lamda, me.lamda.to_string());
    differ("--T", me.t != d.method.t, me.t.to_string());
    differ(
        "--pretrained",
        me.pretrained.is_some(),
        me.pretrained.as_ref().map(|p| word(&p.to_string_lossy())).unwrap_or_default(),
    );
    let join = |flags: &[(String, String)]| {
        flags
            .iter()
            .map(|(f, v)| if v.is_empty() { f.clone() } else { format!("{f} {v}") })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let reference = format!("python train.py {}", join(&flags));

    let mut ours = flags.clone();
    let mut add = |name: &str, differs: bool, value: String| {
        if differs {
            ours.push((name.to_string(), value));
        }
    };
    add("--logdir", r.logdir != d.run.logdir, word(&r.logdir.to_string_lossy()));
    add("--seed", r.seed != d.run.seed, r.seed.to_string());
    add("--train-size", c.data.train_size.is_some(), c.data.train_size.map(|n| n.to_string()).unwrap_or_default());
    add("--test-size", c.data.test_size.is_some(), c.data.test_size.map(|n| n.to_string()).unwrap_or_default());
    add("--precision", m.precision != d.model.precision, m.precision.to_string());
    add("--memory-format", m.memory_format != d.model.memory_format, m.memory_format.to_string());
    add("--normalised-sample-smooth", me.normalised_sample_smooth, String::new());
    add("--daood", r.eval_da && r.daood != d.run.daood, word(&r.daood.to_string_lossy()));
    add("--daid", r.eval_da && r.daid != d.run.daid, word(&r.daid.to_string_lossy()));
    let resmooth = format!("resmooth train {}", join(&ours));

    let mut notes = Vec::new();
    let additions: Vec<&str> =
        ours[flags.len()..].iter().map(|(f, _)| f.as_str()).filter(|f| *f != "--logdir").collect();
    if !additions.is_empty() {
        notes.push(format!("the reference has no {} (resmooth additions)", additions.join(", ")));
    }
    if let ModelSpec::TorchScript(_) = m.model {
        notes.push("the reference has no --model torchscript:PATH".into());
    }
    if c.data.dataset == DatasetName::ImageFolder {
        notes.push("the reference has no --dataset imagefolder".into());
    }
    if o.warm_multiplier.fract() != 0.0 {
        notes.push(format!("the reference's --warm-multiplier takes a whole number, not {}", o.warm_multiplier));
    }
    if r.logdir != d.run.logdir {
        notes.push(format!("the reference writes to logs/{} whatever --logdir says", r.tag));
    }
    CommandLines { reference, resmooth, notes }
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
}
