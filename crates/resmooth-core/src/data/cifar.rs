//! CIFAR binary files: records of label byte(s) then 1024 R, 1024 G, 1024 B bytes (row-major).

use super::cifar_format::{push_chw, Cifar100Labels, PIXELS, SIDE};
use super::cifar_format::{CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES};
use super::sources::{CIFAR100_PYTHON, CIFAR10_PYTHON};
use super::{DataError, Dataset, ImageSet, Normalisation};
use std::path::Path;

/// Reads the records of one CIFAR binary file: each record has `label_bytes` label bytes, of
/// which the one at `label_at` is kept, then 3,072 CHW pixel bytes; labels must be below
/// `num_classes`. Images are returned in HWC order.
pub fn read_cifar_records(
    path: &Path,
    label_bytes: usize,
    label_at: usize,
    num_classes: usize,
    into: &mut ImageSet,
) -> Result<usize, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let record = label_bytes + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(DataError::malformed(
            path,
            format!(
                "size {} bytes is not a whole number of {record}-byte records (truncated or not a CIFAR binary file)",
                bytes.len()
            ),
        ));
    }
    let mut hwc = vec![0u8; PIXELS];
    for (r, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_at] as usize;
        if label >= num_classes {
            return Err(DataError::malformed(
                path,
                format!("record {r} has label {label}, expected below {num_classes}"),
            ));
        }
        push_chw(&rec[label_bytes..], label as i64, &mut hwc, into);
    }
    Ok(bytes.len() / record)
}

fn extracted_dir(root: &Path, folder: &str, archive: &str, name: &str) -> Result<std::path::PathBuf, DataError> {
    let dir = root.join(folder);
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir,
            hint: format!(
                "run `resmooth data fetch {name}`, or unpack {archive} into --dataroot (or pass --dataroot DIR that holds {folder})"
            ),
        });
    }
    Ok(dir)
}

/// Reads CIFAR-100 from `<root>/cifar-100-binary` (the official binary distribution), or, when
/// only that is there, from torchvision's `<root>/cifar-100-python`, keeping the fine or the
/// coarse labels.
pub fn read_cifar100(root: &Path, labels: Cifar100Labels) -> Result<Dataset, DataError> {
    if !root.join("cifar-100-binary").is_dir() && root.join(CIFAR100_PYTHON.dir).is_dir() {
        return super::cifar_py::read_cifar100_python(root, labels);
    }
    let dir = extracted_dir(root, "cifar-100-binary", "cifar-100-binary.tar.gz", "cifar100")?;
    let (label_at, names): (usize, &[&str]) = match labels {
        Cifar100Labels::Coarse => (0, &CIFAR100_COARSE_CLASSES),
        Cifar100Labels::Fine => (1, &CIFAR100_FINE_CLASSES),
    };
    let mut train = ImageSet::new(SIDE, SIDE);
    read_cifar_records(&dir.join("train.bin"), 2, label_at, names.len(), &mut train)?;
    let mut test = ImageSet::new(SIDE, SIDE);
    read_cifar_records(&dir.join("test.bin"), 2, label_at, names.len(), &mut test)?;
    Ok(Dataset {
        name: "cifar100".into(),
        classes: names.iter().map(|s| s.to_string()).collect(),
        train,
        test,
        normalisation: Normalisation::CIFAR,
    })
}

/// Reads CIFAR-10 from `<root>/cifar-10-batches-bin` (the official binary distribution), or,
/// when only that is there, from torchvision's `<root>/cifar-10-batches-py`.
pub fn read_cifar10(root: &Path) -> Result<Dataset, DataError> {
    if !root.join("cifar-10-batches-bin").is_dir() && root.join(CIFAR10_PYTHON.dir).is_dir() {
        return super::cifar_py::read_cifar10_python(root);
    }
    let dir = extracted_dir(root, "cifar-10-batches-bin", "cifar-10-binary.tar.gz", "cifar10")?;
    let mut train = ImageSet::new(SIDE, SIDE);
    for i in 1..=5 {
        read_cifar_records(&dir.join(format!("data_batch_{i}.bin")), 1, 0, 10, &mut train)?;
    }
    let mut test = ImageSet::new(SIDE, SIDE);
    read_cifar_records(&dir.join("test_batch.bin"), 1, 0, 10, &mut test)?;
    Ok(Dataset {
        name: "cifar10".into(),
        classes: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        train,
        test,
        normalisation: Normalisation::CIFAR,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..PIXELS).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        r
    }

    #[test]
    fn reads_records_in_hwc_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bin");
        let mut bytes = record(3, 0);
        bytes.extend(record(9, 1));
        std::fs::write(&path, &bytes).unwrap();
        let mut set = ImageSet::new(32, 32);
        assert_eq!(read_cifar_records(&path, 1, 0, 10, &mut set).unwrap(), 2);
        assert_eq!(set.labels, vec![3, 9]);
        // pixel (row 1, col 2), channel G of image 1 = byte 1 + 1024 + 32 + 2 of record 1
        let want = bytes[PIXELS + 1 + 1 + 1024 + 32 + 2];
        assert_eq!(set.image(1)[(32 + 2) * 3 + 1], want);
    }

    #[test]
    fn truncated_and_bad_labels_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.bin");
        let mut bytes = record(1, 0);
        bytes.truncate(3000);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_cifar_records(&path, 1, 0, 10, &mut ImageSet::new(32, 32)).unwrap_err();
        assert!(err.to_string().contains("cut.bin") && err.to_string().contains("truncated"), "{err}");
        std::fs::write(&path, record(12, 0)).unwrap();
        let err = read_cifar_records(&path, 1, 0, 10, &mut ImageSet::new(32, 32)).unwrap_err();
        assert!(err.to_string().contains("label 12"), "{err}");
        let err = read_cifar10(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cifar-10-batches-bin"), "{err}");
    }

    #[test]
    fn cifar100_keeps_fine_or_coarse_labels() {
        assert_eq!(CIFAR100_FINE_CLASSES.iter().collect::<std::collections::BTreeSet<_>>().len(), 100);
        assert!(CIFAR100_FINE_CLASSES.windows(2).all(|w| w[0] < w[1]), "fine names are in label (alphabetical) order");
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("cifar-100-binary");
        std::fs::create_dir(&folder).unwrap();
        let rec = |coarse: u8, fine: u8| {
            let mut r = vec![coarse, fine];
            r.extend((0..PIXELS).map(|i| (i % 251) as u8));
            r
        };
        std::fs::write(folder.join("train.bin"), [rec(4, 99), rec(19, 0)].concat()).unwrap();
        std::fs::write(folder.join("test.bin"), rec(17, 96)).unwrap();
        let fine = read_cifar100(dir.path(), Cifar100Labels::Fine).unwrap();
        assert_eq!(
            (fine.train.labels.clone(), fine.test.labels.clone(), fine.num_classes()),
            (vec![99, 0], vec![96], 100)
        );
        assert_eq!(fine.classes[96], "willow_tree");
        let coarse = read_cifar100(dir.path(), Cifar100Labels::Coarse).unwrap();
        assert_eq!((coarse.num_classes(), coarse.train.labels, coarse.test.labels), (20, vec![4, 19], vec![17]));
        // red of pixel (0, 1) is byte 2 + 1 of the record, green of it byte 2 + 1024 + 1
        assert_eq!(&fine.train.image(1)[3..5], &[1, (1025 % 251) as u8]);
        std::fs::write(folder.join("test.bin"), rec(20, 3)).unwrap();
        let err = read_cifar100(dir.path(), Cifar100Labels::Coarse).unwrap_err().to_string();
        assert!(err.contains("test.bin") && err.contains("label 20"), "{err}");
    }
}
