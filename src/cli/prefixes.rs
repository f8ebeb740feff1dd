//! Long flags as argparse takes them: a flag may be shortened to any prefix that names one flag
//! of the command (`--epoch 200`, `--batch 128`, `--fair mix`); a prefix of several is refused
//! naming them all. The command line is rewritten with the full names before clap reads it
//! (clap's own `infer_long_args` would refuse an ambiguous prefix without naming the
//! candidates). A flag given twice takes its last value, as in argparse, through clap's
//! `args_override_self` on the root command.

use clap::Command;
use std::ffi::OsString;

/// The long names (and aliases) of `cmd`'s flags, each with the flag it names.
fn long_names(cmd: &Command) -> Vec<(String, String)> {
    let mut names = vec![("help".to_string(), "help".to_string())];
    if cmd.get_version().is_some() {
        names.push(("version".into(), "version".into()));
    }
    for arg in cmd.get_arguments() {
        let id = arg.get_id().to_string();
        names.extend(arg.get_long().map(|l| (l.to_string(), id.clone())));
        names.extend(arg.get_all_aliases().unwrap_or_default().into_iter().map(|a| (a.to_string(), id.clone())));
    }
    names
}

/// `args` (the program name first) with every long flag that is a prefix of exactly one flag of
/// its (sub)command written in full; an error naming the candidates for a prefix of several.
/// Tokens after a bare `--` are left as they are.
pub fn expand_long_prefixes(root: &Command, args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut cmd = root;
    let mut names = long_names(cmd);
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next());
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(args.by_ref());
            break;
        }
        if !text.starts_with('-') {
            if let Some(sub) = cmd.find_subcommand(text) {
                cmd = sub;
                names = long_names(cmd);
            }
            out.push(arg);
            continue;
        }
        let Some(flag) = text.strip_prefix("--").filter(|f| !f.is_empty()) else {
            out.push(arg);
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if names.iter().any(|(n, _)| n == name) {
            out.push(arg);
            continue;
        }
        let mut matches: Vec<&(String, String)> = names.iter().filter(|(n, _)| n.starts_with(name)).collect();
        let mut flags: Vec<&String> = matches.iter().map(|(_, id)| id).collect();
        flags.dedup();
        match flags.len() {
            // unknown: clap says so, with its suggestions
            0 => out.push(arg),
            1 => {
                let full = &matches[0].0;
                out.push(match value {
                    Some(v) => format!("--{full}={v}").into(),
                    None => format!("--{full}").into(),
                });
            }
            _ => {
                matches.sort();
                let listed: Vec<String> = matches.iter().map(|(n, _)| format!("--{n}")).collect();
                return Err(format!(
                    "ambiguous option: --{name} could match {}; type more of its name",
                    listed.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command as Sub};
    use super::*;
    use clap::{CommandFactory, Parser};

    fn expand(args: &[&str]) -> Result<Vec<String>, String> {
        let mut full = vec!["resmooth"];
        full.extend_from_slice(args);
        let out = expand_long_prefixes(&Cli::command(), full.into_iter().map(OsString::from).collect())?;
        Ok(out.into_iter().skip(1).map(|s| s.into_string().unwrap()).collect())
    }

    fn train(args: &[&str]) -> resmooth::config::TrainConfig {
        let mut full = vec!["train"];
        full.extend_from_slice(args);
        let mut argv = vec!["resmooth".to_string()];
        argv.extend(expand(&full).unwrap());
        match Cli::try_parse_from(argv).unwrap().command {
            Sub::Train(t) => t.into_config().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unambiguous_prefixes_are_the_full_flags() {
        assert_eq!(
            expand(&["train", "--epoch", "200", "--batch", "128", "--fair", "mix", "--warm-m=3", "--learning", "0.2"])
                .unwrap(),
            [
                "train",
                "--epochs",
                "200",
                "--batch-size",
                "128",
                "--fair-comparison",
                "mix",
                "--warm-multiplier=3",
                "--learning-rate",
                "0.2"
            ]
        );
        // exact names stay even when they are prefixes of others (--warm of --warm-epoch)
        assert_eq!(expand(&["train", "--warm", "", "--lr", "0.1"]).unwrap(), ["train", "--warm", "", "--lr", "0.1"]);
        // subcommands' own flags, values and what follows -- are left alone
        assert_eq!(
            expand(&["data", "fetch", "cifar10", "--data", "x", "--", "--ep"]).unwrap(),
            ["data", "fetch", "cifar10", "--dataroot", "x", "--", "--ep"]
        );
        assert_eq!(expand(&["train", "--mean", "-0.5,0,0"]).unwrap(), ["train", "--mean", "-0.5,0,0"]);
        let c = train(&["--epoch", "7", "--batch", "64", "--smooth-a", "0.3"]);
        assert_eq!((c.optim.epochs, c.optim.batch_size, c.method.smooth_aug), (7, 64, 0.3));
    }

    #[test]
    fn ambiguous_prefixes_name_the_candidates() {
        let err = expand(&["train", "--w", "1"]).unwrap_err();
        assert!(
            err.contains("--w could match") && err.contains("--warm-multiplier") && err.contains("--workers"),
            "{err}"
        );
        let err = expand(&["train", "--smooth", "0.1"]).unwrap_err();
        assert!(err.contains("--smooth-aug") && err.contains("--smooth-org"), "{err}");
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_as_in_argparse() {
        let c = train(&["--epochs", "3", "--gmm", "--prob", "0.5", "--epochs", "50", "--gmm", "--epoch", "60"]);
        assert_eq!((c.optim.epochs, c.method.gmm, c.aug.prob), (60, true, 0.5));
        // --warm-multiplier is an int, as the reference's type=int
        assert_eq!(train(&["--warm-multiplier", "3"]).optim.warm_multiplier, 3.0);
        let argv = ["resmooth", "train", "--warm-multiplier", "2.5"];
        let err = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("--warm-multiplier") && err.contains("2.5"), "{err}");
    }
}
