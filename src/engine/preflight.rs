//! The checks made before a run trains, each failing with the thing at fault and the fix: the
//! run folder is this process's alone (an OS lock), it and the `--save` folder can be written
//! and hold enough free space, `--save` is not another run's file, and the pretrained baseline
//! exists and is a baseline of this dataset.

use super::checkpoint;
use super::EngineError;
use crate::config::TrainConfig;
use crate::io::{check_writable, free_space, lock_dir, partial_path, DirLock};
use crate::method::{baseline_command, MethodError};
use crate::model::Model;
use crate::run_folder::{pretrained_path, RunFolder};
use std::path::{Path, PathBuf};

/// What a run holds while it trains: the locks of its folders.
pub(super) struct RunGuard {
    _locks: Vec<DirLock>,
}

/// The folder `--save`'s file is in, when it is not the run folder.
fn save_dir(paths: &RunFolder) -> Option<PathBuf> {
    let dir = paths.weights.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    (dir != paths.dir).then(|| dir.to_path_buf())
}

/// Takes the run folder (and the `--save` folder) for this process and checks, before the data
/// is loaded, everything about the run's files that can be checked without it.
pub(super) fn claim(config: &TrainConfig, paths: &RunFolder) -> Result<RunGuard, EngineError> {
    check_save(config, paths)?;
    check_pretrained(config)?;
    let mut locks = Vec::new();
    for (flag, dir) in [("--logdir", Some(paths.dir.clone())), ("--save", save_dir(paths))] {
        let Some(dir) = dir else { continue };
        let unwritable = |source| EngineError::Unwritable { flag, dir: dir.clone(), source };
        locks.push(lock_dir(&dir).map_err(|e| match e {
            crate::io::LockError::File(f) => unwritable(f),
            held => held.into(),
        })?);
        check_writable(&dir).map_err(unwritable)?;
    }
    // what a killed write left behind (the lock says no other process is writing it)
    for file in [&paths.checkpoint, &paths.weights, &paths.best, &paths.summary, &paths.gmm, &paths.metrics] {
        let _ = std::fs::remove_file(partial_path(file));
    }
    Ok(RunGuard { _locks: locks })
}

/// Refuses a `--save` that would overwrite a file of this run, the baseline it reads, or the
/// weights of another run.
fn check_save(config: &TrainConfig, paths: &RunFolder) -> Result<(), EngineError> {
    let Some(save) = &config.run.save else { return Ok(()) };
    let refuse = |why: String| Err(EngineError::Save { path: save.clone(), why });
    let example = paths.weights.with_file_name(format!("model.{}", config.save_format().extension()));
    let example = example.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if paths.weights == paths.best {
        return refuse(format!(
            "the best epoch's weights are written as {} beside it; name the file otherwise (e.g. {example})",
            paths.best.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ));
    }
    for own in [&paths.checkpoint, &paths.metrics, &paths.summary, &paths.gmm] {
        if paths.weights == *own {
            return refuse(format!("is one of the run's own files; name the weights file otherwise (e.g. {example})"));
        }
    }
    if config.needs_pretrained() {
        let baseline = pretrained_path(config);
        if [&paths.weights, &paths.best].contains(&&baseline) {
            return refuse(format!("this run would overwrite its own pretrained baseline {}", baseline.display()));
        }
    }
    let Some(dir) = save_dir(paths) else { return Ok(()) };
    if let Some(tag) = run_tag_in(&dir).filter(|t| *t != config.run.tag) {
        return refuse(format!(
            "{} holds the files of run '{tag}', whose weights this run would replace; pass a --save in a folder of this run's own",
            dir.display()
        ));
    }
    Ok(())
}

/// The tag of the run whose files `dir` holds (its summary or checkpoint), if any.
fn run_tag_in(dir: &Path) -> Option<String> {
    let folder = RunFolder::at(dir);
    if let Ok(s) = crate::report::read_summary(&folder.summary) {
        return Some(s.config.run.tag);
    }
    let meta = checkpoint::read_meta(&folder.checkpoint).ok()?;
    meta.config.get("tag")?.as_str().map(str::to_string)
}

/// Checks that the run's pretrained baseline (with `--gmm` or Distillation) exists and, where
/// its run folder says what it is, that it is a baseline (originals only, no GMM) of this
/// dataset. Its model and class count are checked when it is loaded.
fn check_pretrained(config: &TrainConfig) -> Result<(), EngineError> {
    if !config.needs_pretrained() {
        return Ok(());
    }
    let path = pretrained_path(config);
    if !path.is_file() {
        let make = baseline_command(&config.model.model, config.data.dataset, &config.run.tag);
        return Err(MethodError::MissingBaseline { path, make }.into());
    }
    let baseline = RunFolder::at(path.parent().unwrap_or(Path::new(".")));
    let Ok(summary) = crate::report::read_summary(&baseline.summary) else { return Ok(()) };
    let (theirs, ours) = (&summary.config, &config.data.dataset);
    let why = if theirs.data.dataset != *ours {
        format!("was trained on --dataset {} (its {}), not {ours}", theirs.data.dataset, baseline.summary.display())
    } else if theirs.aug.prob < 1.0 || theirs.method.gmm {
        format!(
            "is not a baseline: its run '{}' trained with --prob {}{} (a baseline trains on original views only, --prob 1.0)",
            theirs.run.tag,
            theirs.aug.prob,
            if theirs.method.gmm { " --gmm" } else { "" }
        )
    } else {
        return Ok(());
    };
    Err(EngineError::NotABaseline { path, dataset: ours.to_string(), why })
}

/// Checks that the file systems of the run folder and the `--save` folder have room for the
/// run's files: the weights, the best weights and the checkpoint (weights and momentum), each
/// with the temporary copy an atomic replacement writes beside it.
pub(super) fn check_space(paths: &RunFolder, model: &Model) -> Result<(), EngineError> {
    let weights: u64 = model.state_dict().values().map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64).sum();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    // the largest temporary copy (the checkpoint's) plus every file not yet at its full size
    let run_need = (2 * weights + 2 * weights).saturating_sub(size(&paths.checkpoint));
    let save_need = (2 * weights).saturating_sub(size(&paths.weights) + size(&paths.best));
    let mut needs = vec![("--logdir", paths.dir.clone(), run_need + 1_000_000)];
    match save_dir(paths) {
        Some(dir) if !same_file_system(&dir, &paths.dir) => needs.push(("--save", dir, save_need + weights)),
        _ => needs[0].2 += save_need,
    }
    for (flag, dir, need) in needs {
        if let Some(free) = free_space(&dir).filter(|&free| free < need) {
            return Err(EngineError::NoSpace { flag, dir, free, need });
        }
    }
    Ok(())
}

fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    }
}
