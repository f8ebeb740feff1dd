//! torchvision's CIFAR folders, read as they are: `cifar-10-batches-py` and `cifar-100-python`
//! hold pickled dicts (`data`, a uint8 numpy array of N x 3,072 CHW bytes; `labels`, or
//! `fine_labels` and `coarse_labels`, lists of ints). They are read with [`crate::pickle`],
//! which builds the arrays without running anything and refuses any other global, and give
//! the pixels and labels of the binary distribution.

use super::cifar_format::{push_chw, Cifar100Labels, PIXELS};
use super::cifar_format::{CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES};
use super::download::md5_file;
use super::sources::{PickledFolder, CIFAR100_PYTHON, CIFAR10_PYTHON};
use super::{DataError, Dataset, ImageSet, Normalisation};
use crate::pickle::{self, Value};
use std::path::Path;

/// Adds the images and labels (`labels`, below `classes`) of one pickled batch file to `into`;
/// returns how many it holds.
fn read_batch(path: &Path, labels: &str, classes: usize, into: &mut ImageSet) -> Result<usize, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bad = |what: String| DataError::malformed(path, what);
    let v = pickle::load(&bytes).map_err(|e| bad(format!("is not a CIFAR batch of torchvision's: {e}")))?;
    let Some(Value::Array(data)) = v.get("data") else {
        return Err(bad("has no 'data' array (not a CIFAR batch of torchvision's)".into()));
    };
    let images = data.shape.first().copied().unwrap_or(0) as usize;
    let per: u64 = data.shape.iter().skip(1).product();
    if data.dtype.descr.trim_start_matches('|') != "u1" || data.fortran || per != PIXELS as u64 {
        return Err(bad(format!(
            "its 'data' is a {:?} array of shape {:?}, not uint8 rows of {PIXELS} bytes",
            data.dtype.descr, data.shape
        )));
    }
    let Some(Value::List(list)) = v.get(labels) else { return Err(bad(format!("has no '{labels}' list"))) };
    if list.len() != images {
        return Err(bad(format!("holds {images} images but {} labels", list.len())));
    }
    let mut hwc = vec![0u8; PIXELS];
    for (i, (chw, label)) in data.data.chunks_exact(PIXELS).zip(list).enumerate() {
        let label = label.as_int().filter(|&l| (0..classes as i64).contains(&l));
        let Some(label) = label else {
            return Err(bad(format!("image {i} has label {:?}, expected an int below {classes}", list[i])));
        };
        push_chw(chw, label, &mut hwc, into);
    }
    Ok(images)
}

/// Reads CIFAR-10 from torchvision's `<root>/cifar-10-batches-py`.
pub fn read_cifar10_python(root: &Path) -> Result<Dataset, DataError> {
    let dir = root.join(CIFAR10_PYTHON.dir);
    let mut train = ImageSet::new(32, 32);
    for (file, _) in CIFAR10_PYTHON.train {
        read_batch(&dir.join(file), "labels", 10, &mut train)?;
    }
    let mut test = ImageSet::new(32, 32);
    read_batch(&dir.join(CIFAR10_PYTHON.test.0), "labels", 10, &mut test)?;
    Ok(Dataset {
        name: "cifar10".into(),
        classes: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        train,
        test,
        normalisation: Normalisation::CIFAR,
    })
}

/// Reads CIFAR-100 from torchvision's `<root>/cifar-100-python`, with the fine or coarse labels.
pub fn read_cifar100_python(root: &Path, labels: Cifar100Labels) -> Result<Dataset, DataError> {
    let dir = root.join(CIFAR100_PYTHON.dir);
    let (key, names): (&str, &[&str]) = match labels {
        Cifar100Labels::Fine => ("fine_labels", &CIFAR100_FINE_CLASSES),
        Cifar100Labels::Coarse => ("coarse_labels", &CIFAR100_COARSE_CLASSES),
    };
    let mut train = ImageSet::new(32, 32);
    read_batch(&dir.join(CIFAR100_PYTHON.train[0].0), key, names.len(), &mut train)?;
    let mut test = ImageSet::new(32, 32);
    read_batch(&dir.join(CIFAR100_PYTHON.test.0), key, names.len(), &mut test)?;
    Ok(Dataset {
        name: "cifar100".into(),
        classes: names.iter().map(|s| s.to_string()).collect(),
        train,
        test,
        normalisation: Normalisation::CIFAR,
    })
}

/// The pickled folder of `dataset` (`cifar10`, `cifar100`), if it has one.
pub fn pickled_folder(dataset: &str) -> Option<PickledFolder> {
    match dataset {
        "cifar10" => Some(CIFAR10_PYTHON),
        "cifar100" => Some(CIFAR100_PYTHON),
        _ => None,
    }
}

/// Checks torchvision's folder `dir` without the network: every data file is there and its MD5
/// is compared with torchvision's (the label names' file too, when present). One line per
/// file; a file that differs is said to be a prepared copy (it is read all the same).
pub fn check_pickled(name: &str, folder: &PickledFolder, dir: &Path) -> Result<Vec<String>, DataError> {
    let mut lines = Vec::new();
    let files = folder.train.iter().chain([&folder.test]);
    for &(file, md5) in files.chain(Some(&folder.meta).filter(|(f, _)| dir.join(f).is_file())) {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(DataError::Missing {
                path,
                hint: format!(
                    "{} is incomplete: download it again with torchvision, or run `resmooth data fetch {name}` for the binary version",
                    dir.display()
                ),
            });
        }
        let origin = if md5_file(&path)? == md5 {
            "official MD5".to_string()
        } else {
            format!("not the official file (MD5 {md5} expected): a prepared copy")
        };
        lines.push(format!("ok {}: {origin}", path.display()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch file as CIFAR's authors wrote it with Python 2's cPickle (protocol 2): str keys
    /// and the array's bytes as SHORT_BINSTRING/BINSTRING, the dtype and ndarray globals of numpy.
    fn python2_batch(images: &[[u8; PIXELS]], labels: &[u8], key: &str) -> Vec<u8> {
        let mut p = b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01".to_vec();
        p.extend_from_slice(b"M");
        p.extend_from_slice(&(images.len() as u16).to_le_bytes());
        p.extend_from_slice(b"M\x00\x0c\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
        let raw: Vec<u8> = images.iter().flatten().copied().collect();
        p.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        p.extend_from_slice(&raw);
        p.extend_from_slice(b"tbU");
        p.push(key.len() as u8);
        p.extend_from_slice(key.as_bytes());
        p.extend_from_slice(b"]q\x08(");
        for l in labels {
            p.extend_from_slice(&[b'K', *l]);
        }
        p.extend_from_slice(b"eu.");
        p
    }

    fn image(seed: u8) -> [u8; PIXELS] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
    }

    #[test]
    fn python_2_batches_give_the_binary_files_pixels_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join("py/cifar-10-batches-py");
        let bin = dir.path().join("bin/cifar-10-batches-bin");
        std::fs::create_dir_all(&py).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        for (i, (file, _)) in CIFAR10_PYTHON.train.iter().chain([&CIFAR10_PYTHON.test]).enumerate() {
            let (a, b) = (image(i as u8), image(100 + i as u8));
            let labels = [i as u8, 9 - i as u8];
            std::fs::write(py.join(file), python2_batch(&[a, b], &labels, "labels")).unwrap();
            let mut records = vec![labels[0]];
            records.extend_from_slice(&a);
            records.push(labels[1]);
            records.extend_from_slice(&b);
            std::fs::write(bin.join(format!("{file}.bin")), records).unwrap();
        }
        let from_py = read_cifar10_python(&dir.path().join("py")).unwrap();
        let from_bin = super::super::read_cifar10(&dir.path().join("bin")).unwrap();
        assert_eq!((from_py.train.len(), from_py.test.len()), (10, 2));
        assert_eq!(from_py.train, from_bin.train);
        assert_eq!(from_py.test, from_bin.test);
        // read_cifar10 takes the pickled folder when it is the only one
        assert_eq!(super::super::read_cifar10(&dir.path().join("py")).unwrap().test, from_bin.test);
        // check names the files and says they are not torchvision's
        let lines = check_pickled("cifar10", &CIFAR10_PYTHON, &py).unwrap();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].contains("data_batch_1") && lines[0].contains("prepared copy"), "{lines:?}");
    }

    #[test]
    fn bad_batches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1");
        std::fs::write(&path, python2_batch(&[image(1)], &[10], "labels")).unwrap();
        let err = read_batch(&path, "labels", 10, &mut ImageSet::new(32, 32)).unwrap_err().to_string();
        assert!(err.contains("data_batch_1") && err.contains("label"), "{err}");
        std::fs::write(&path, python2_batch(&[image(1)], &[1, 2], "labels")).unwrap();
        let err = read_batch(&path, "labels", 10, &mut ImageSet::new(32, 32)).unwrap_err().to_string();
        assert!(err.contains("1 images but 2 labels"), "{err}");
        let err = read_batch(&path, "fine_labels", 100, &mut ImageSet::new(32, 32)).unwrap_err().to_string();
        assert!(err.contains("'fine_labels'"), "{err}");
        std::fs::write(&path, b"cos\nsystem\n(S'id'\ntR.").unwrap();
        let err = read_batch(&path, "labels", 10, &mut ImageSet::new(32, 32)).unwrap_err().to_string();
        assert!(err.contains("data_batch_1") && err.contains("os.system"), "{err}");
    }
}
