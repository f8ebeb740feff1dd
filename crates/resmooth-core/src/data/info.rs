//! `resmooth data info`: what a dataset or a folder holds, per split and per class.

use super::sources::{official_count, CIFAR100_FOLDER, CIFAR10_FOLDER, SVHN_EXTRA, SVHN_TRAIN, TINY_FOLDER};
use super::sources::{CIFAR100_PYTHON, CIFAR10_PYTHON};
use super::{load, read_cifar100, read_svhn_split, Cifar100Labels, DataError, ImageSet, Size, DEMO_SEED, STATS_FILE};
use crate::config::DatasetName;
use crate::progress::Progress;
use std::path::{Path, PathBuf};

/// The datasets found in a folder: (name, dataroot) pairs.
fn detect(dir: &Path) -> Vec<(DatasetName, PathBuf)> {
    let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    for (name, folder) in [
        (DatasetName::Cifar10, CIFAR10_FOLDER.dir),
        (DatasetName::Cifar100, CIFAR100_FOLDER.dir),
        (DatasetName::Cifar10, CIFAR10_PYTHON.dir),
        (DatasetName::Cifar100, CIFAR100_PYTHON.dir),
        (DatasetName::Tiny, TINY_FOLDER.dir),
    ] {
        if dir.file_name().is_some_and(|f| f == folder) {
            return vec![(name, parent)];
        }
    }
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        return vec![(DatasetName::ImageFolder, dir.to_path_buf())];
    }
    let mut found: Vec<(DatasetName, PathBuf)> = Vec::new();
    for (name, marker) in [
        (DatasetName::Cifar10, CIFAR10_FOLDER.dir),
        (DatasetName::Cifar100, CIFAR100_FOLDER.dir),
        (DatasetName::Cifar10, CIFAR10_PYTHON.dir),
        (DatasetName::Cifar100, CIFAR100_PYTHON.dir),
        (DatasetName::Svhn, SVHN_TRAIN.file),
        (DatasetName::Tiny, TINY_FOLDER.dir),
    ] {
        if dir.join(marker).exists() && !found.iter().any(|(n, _)| *n == name) {
            found.push((name, dir.to_path_buf()));
        }
    }
    found
}

/// The `data info` report for a dataset name (in `dataroot`) or a folder, folder images read at
/// `size`; reading image files reports to `progress`.
pub fn info(target: &str, dataroot: &Path, size: Size, progress: &mut dyn Progress) -> Result<String, DataError> {
    let found = if let Ok(name) = target.parse::<DatasetName>() {
        vec![(name, dataroot.to_path_buf())]
    } else {
        let dir = Path::new(target);
        if !dir.is_dir() {
            let names: Vec<&str> = DatasetName::ALL.iter().map(|d| d.name()).collect();
            return Err(DataError::Invalid(format!(
                "'{target}' is neither a dataset ({}) nor a folder",
                names.join(", ")
            )));
        }
        let found = detect(dir);
        if found.is_empty() {
            return Err(DataError::Missing {
                path: dir.to_path_buf(),
                hint: "holds no dataset: expected train/ and test/ class folders, cifar-10-batches-bin/, \
                       cifar-100-binary/, cifar-10-batches-py/, cifar-100-python/, tiny-imagenet-200/ or train_32x32.mat"
                    .into(),
            });
        }
        found
    };
    let mut out = String::new();
    for (name, root) in found {
        out += &describe(name, &root, size, progress)?;
    }
    Ok(out)
}

fn describe(name: DatasetName, root: &Path, size: Size, progress: &mut dyn Progress) -> Result<String, DataError> {
    let ds = load(name, root, size, progress)?;
    let mut splits: Vec<(&str, ImageSet)> = vec![("train", ds.train), ("test", ds.test)];
    let extra = root.join(SVHN_EXTRA.file);
    if name == DatasetName::Svhn && extra.is_file() {
        splits.push(("extra", read_svhn_split(&extra)?));
    }
    let (h, w) = (splits[0].1.height, splits[0].1.width);
    let f = |v: [f32; 3]| format!("({:.4}, {:.4}, {:.4})", v[0], v[1], v[2]);
    let mut out = if name == DatasetName::Demo {
        format!("{name}: built in, generated in memory from seed {DEMO_SEED} (no files, no download)\n")
    } else {
        format!("{name} in {}\n", root.display())
    };
    let resized = match size {
        Size::Square(s) if matches!(name, DatasetName::ImageFolder | DatasetName::Tiny) => {
            format!(" (resized: shorter side to {s}, centre crop, bilinear)")
        }
        _ => String::new(),
    };
    out += &format!("  image size     {h}x{w} RGB, uint8{resized}\n");
    let source = if name == DatasetName::ImageFolder {
        format!(" (of the training images, cached in {})", root.join(STATS_FILE).display())
    } else if name == DatasetName::Demo {
        " (of its training images)".to_string()
    } else {
        " (the reference's)".to_string()
    };
    let n = ds.normalisation;
    out += &format!("  normalisation  mean {}, std {}{source}\n", f(n.mean), f(n.std));
    out += &format!("  classes        {}\n", ds.classes.len());
    for (split, set) in &splits {
        let official = match official_count(name.name(), split) {
            Some(n) if n != set.len() => format!(" (the official split has {n})"),
            _ => String::new(),
        };
        out += &format!("  {split:<14} {} images{official}\n", set.len());
    }
    out += &table("class", &ds.classes, &splits);
    if name == DatasetName::Cifar100 {
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
