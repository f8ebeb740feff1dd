//! `resmooth data fetch|check|info`: get, verify and describe datasets without training.

use super::fetch::{check, fetch, FetchOptions, MIRROR_ENV};
use super::sources::{official_count, CIFAR100_FOLDER, CIFAR10_FOLDER, SVHN_EXTRA, SVHN_TRAIN};
use super::{load, read_cifar100, read_svhn_split, Cifar100Labels, DataError, ImageSet, DATASETS, MEAN, STD};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// Flags of `resmooth data`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
}

/// The `resmooth data` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum DataAction {
    /// Download (when missing), verify and extract a dataset (cifar10, cifar100 or svhn) into --dataroot.
    Fetch {
        /// cifar10, cifar100 or svhn.
        name: String,
        /// Folder holding the dataset files.
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
        /// Download from this URL prefix instead of the official host (serving the official file names).
        #[arg(long, env = MIRROR_ENV)]
        mirror: Option<String>,
        /// SVHN: also fetch the extra split (extra_32x32.mat, 1.3 GB).
        #[arg(long)]
        extra: bool,
    },
    /// Check a dataset in --dataroot (formats and record counts, MD5 of an archive) without the network.
    Check {
        /// cifar10, cifar100 or svhn.
        name: String,
        /// Folder holding the dataset files.
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
        /// SVHN: also check the extra split.
        #[arg(long)]
        extra: bool,
    },
    /// Print counts per split and per class, the image size and the normalisation of a dataset.
    Info {
        /// A dataset name (read from --dataroot), or a folder: an ImageFolder tree or a dataroot
        /// holding official files.
        target: String,
        /// Folder holding the dataset files (for a dataset name).
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
    },
}

/// Runs one `resmooth data` action, printing its report on stdout.
pub fn run(args: &DataArgs) -> Result<(), DataError> {
    match &args.action {
        DataAction::Fetch { name, dataroot, mirror, extra } => {
            let opts = FetchOptions { mirror: mirror.clone(), verbose: true, extra: *extra };
            for line in fetch(name, dataroot, &opts)? {
                println!("{line}");
            }
            for line in check(name, dataroot, *extra)? {
                println!("{line}");
            }
        }
        DataAction::Check { name, dataroot, extra } => {
            for line in check(name, dataroot, *extra)? {
                println!("{line}");
            }
        }
        DataAction::Info { target, dataroot } => print!("{}", info(target, dataroot)?),
    }
    Ok(())
}

/// The datasets found in a folder: (name, dataroot) pairs.
fn detect(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        return vec![("imagefolder", dir.to_path_buf())];
    }
    let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    for (name, folder) in [("cifar10", CIFAR10_FOLDER.dir), ("cifar100", CIFAR100_FOLDER.dir)] {
        if dir.file_name().is_some_and(|f| f == folder) {
            return vec![(name, parent)];
        }
    }
    let mut found = Vec::new();
    for (name, marker) in
        [("cifar10", CIFAR10_FOLDER.dir), ("cifar100", CIFAR100_FOLDER.dir), ("svhn", SVHN_TRAIN.file)]
    {
        if dir.join(marker).exists() {
            found.push((name, dir.to_path_buf()));
        }
    }
    found
}

/// The `data info` report for a dataset name (in `dataroot`) or a folder.
pub fn info(target: &str, dataroot: &Path) -> Result<String, DataError> {
    let found = if DATASETS.contains(&target) {
        vec![(DATASETS.iter().find(|d| **d == target).copied().unwrap_or("imagefolder"), dataroot.to_path_buf())]
    } else {
        let dir = Path::new(target);
        if !dir.is_dir() {
            return Err(DataError::Invalid(format!(
                "'{target}' is neither a dataset ({}) nor a folder",
                DATASETS.join(", ")
            )));
        }
        let found = detect(dir);
        if found.is_empty() {
            return Err(DataError::Missing {
                path: dir.to_path_buf(),
                hint: "holds no dataset: expected train/ and test/ class folders, cifar-10-batches-bin/, \
                       cifar-100-binary/ or train_32x32.mat"
                    .into(),
            });
        }
        found
    };
    let mut out = String::new();
    for (name, root) in found {
        out += &describe(name, &root)?;
    }
    Ok(out)
}

fn describe(name: &str, root: &Path) -> Result<String, DataError> {
    let ds = load(name, root)?;
    let mut splits: Vec<(&str, ImageSet)> = vec![("train", ds.train), ("test", ds.test)];
    let extra = root.join(SVHN_EXTRA.file);
    if name == "svhn" && extra.is_file() {
        splits.push(("extra", read_svhn_split(&extra)?));
    }
    let (h, w) = (splits[0].1.height, splits[0].1.width);
    let f = |v: [f32; 3]| format!("({:.4}, {:.4}, {:.4})", v[0], v[1], v[2]);
    let mut out = format!("{name} in {}\n", root.display());
    out += &format!("  image size     {h}x{w} RGB, uint8\n");
    out += &format!("  normalisation  mean {}, std {}\n", f(MEAN), f(STD));
    out += &format!("  classes        {}\n", ds.classes.len());
    for (split, set) in &splits {
        let official = match official_count(name, split) {
            Some(n) if n != set.len() => format!(" (the official split has {n})"),
            _ => String::new(),
        };
        out += &format!("  {split:<14} {} images{official}\n", set.len());
    }
    out += &table("class", &ds.classes, &splits);
    if name == "cifar100" {
        let coarse = read_cifar100(root, Cifar100Labels::Coarse)?;
        let names = coarse.classes.clone();
        out += &table("coarse class", &names, &[("train", coarse.train), ("test", coarse.test)]);
    }
    Ok(out)
}

fn table(title: &str, classes: &[String], splits: &[(&str, ImageSet)]) -> String {
    let width = classes.iter().map(|c| c.len()).max().unwrap_or(0).max(title.len()) + 8;
    let counts: Vec<Vec<usize>> = splits.iter().map(|(_, s)| s.class_counts(classes.len())).collect();
    let mut out = format!("  {:<width$}", format!("label {title}"));
    for (split, _) in splits {
        out += &format!("{split:>8}");
    }
    out.push('\n');
    for (c, class) in classes.iter().enumerate() {
        out += &format!("  {:<width$}", format!("{c:>5} {class}"));
        for col in &counts {
            out += &format!("{:>8}", col[c]);
        }
        out.push('\n');
    }
    out
}
