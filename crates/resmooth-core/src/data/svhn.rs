//! SVHN cropped digits: `train_32x32.mat` / `test_32x32.mat` / `extra_32x32.mat` in the dataroot,
//! each with X (32x32x3xN uint8, column-major) and y (Nx1, labels 1..10 where 10 means digit 0).

use super::mat::{read_mat, write_mat, MatArray, MatData};
use super::{DataError, Dataset, ImageSet, Normalisation};
use std::path::Path;

const SIDE: usize = 32;

/// SVHN class names in label order (the digit itself).
pub const SVHN_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Reads one SVHN split file into HWC images with labels 0..=9.
pub fn read_svhn_split(path: &Path) -> Result<ImageSet, DataError> {
    let arrays = read_mat(path)?;
    let find = |name: &str| {
        arrays
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| DataError::malformed(path, format!("has no array '{name}' (an SVHN split holds X and y)")))
    };
    let (x, y) = (find("X")?, find("y")?);
    let (MatData::U8(pixels), [SIDE, SIDE, 3, n] | [SIDE, SIDE, 3, n, ..]) = (&x.data, x.dims.as_slice()) else {
        return Err(DataError::malformed(
            path,
            format!("X must be a 32x32x3xN uint8 array, found shape {:?} ({})", x.dims, kind(&x.data)),
        ));
    };
    let n = *n;
    let labels = match &y.data {
        MatData::F64(v) => v.clone(),
        MatData::U8(v) => v.iter().map(|&b| b as f64).collect(),
    };
    if labels.len() != n || y.dims.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(DataError::malformed(path, format!("y has shape {:?}, expected {n}x1 to match X", y.dims)));
    }
    let mut set = ImageSet::new(SIDE, SIDE);
    set.pixels.reserve(n * SIDE * SIDE * 3);
    let mut hwc = vec![0u8; SIDE * SIDE * 3];
    for (i, &label) in labels.iter().enumerate() {
        if !(label.fract() == 0.0 && (1.0..=10.0).contains(&label)) {
            return Err(DataError::malformed(path, format!("y[{i}] = {label}, expected a label in 1..=10")));
        }
        // X[row, col, channel, i] lives at row + 32 col + 1024 channel + 3072 i
        let img = &pixels[i * SIDE * SIDE * 3..(i + 1) * SIDE * SIDE * 3];
        for c in 0..3 {
            for col in 0..SIDE {
                for row in 0..SIDE {
                    hwc[(row * SIDE + col) * 3 + c] = img[row + SIDE * col + SIDE * SIDE * c];
                }
            }
        }
        set.push(&hwc, label as i64 % 10);
    }
    Ok(set)
}

fn kind(d: &MatData) -> &'static str {
    match d {
        MatData::U8(_) => "uint8",
        MatData::F64(_) => "not uint8",
    }
}

/// Reads SVHN's train and test splits from `root`.
pub fn read_svhn(root: &Path) -> Result<Dataset, DataError> {
    let split = |file: &str| {
        let path = root.join(file);
        if !path.is_file() {
            return Err(DataError::Missing {
                path,
                hint: "run `resmooth data fetch svhn`, or put the official .mat files in --dataroot".into(),
            });
        }
        read_svhn_split(&path)
    };
    Ok(Dataset {
        name: "svhn".into(),
        classes: SVHN_CLASSES.iter().map(|s| s.to_string()).collect(),
        train: split(super::sources::SVHN_TRAIN.file)?,
        test: split(super::sources::SVHN_TEST.file)?,
        normalisation: Normalisation::CIFAR,
    })
}

/// Writes a set of 32x32 images with labels 0..=9 in SVHN's format (digit 0 stored as 10);
/// used to make synthetic SVHN files.
pub fn write_svhn_split(path: &Path, set: &ImageSet, compress: bool) -> Result<(), DataError> {
    let n = set.len();
    let mut x = vec![0u8; n * SIDE * SIDE * 3];
    for i in 0..n {
        let img = set.image(i);
        for (p, px) in img.chunks_exact(3).enumerate() {
            let (row, col) = (p / SIDE, p % SIDE);
            for (c, &v) in px.iter().enumerate() {
                x[i * SIDE * SIDE * 3 + row + SIDE * col + SIDE * SIDE * c] = v;
            }
        }
    }
    let y = set.labels.iter().map(|&l| if l == 0 { 10.0 } else { l as f64 }).collect();
    let arrays = [
        MatArray { name: "X".into(), dims: vec![SIDE, SIDE, 3, n], data: MatData::U8(x) },
        MatArray { name: "y".into(), dims: vec![n, 1], data: MatData::F64(y) },
    ];
    write_mat(path, &arrays, compress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_order_and_label_ten_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train_32x32.mat");
        // hand-built column-major X for two images: value = (row + 2 col + 5 channel + 7 image) mod 256
        let n = 2;
        let mut x = vec![0u8; SIDE * SIDE * 3 * n];
        for (idx, v) in x.iter_mut().enumerate() {
            let (row, col, c, i) = (idx % 32, idx / 32 % 32, idx / 1024 % 3, idx / 3072);
            *v = (row + 2 * col + 5 * c + 7 * i) as u8;
        }
        let arrays = [
            MatArray { name: "X".into(), dims: vec![32, 32, 3, n], data: MatData::U8(x) },
            MatArray { name: "y".into(), dims: vec![n, 1], data: MatData::F64(vec![10.0, 3.0]) },
        ];
        write_mat(&path, &arrays, true).unwrap();
        let set = read_svhn_split(&path).unwrap();
        assert_eq!(set.labels, vec![0, 3]);
        // image 1, row 4, col 9, channel 2 (blue)
        assert_eq!(set.image(1)[(4 * 32 + 9) * 3 + 2], (4 + 18 + 10 + 7) as u8);
        assert_eq!(set.image(0)[(31 * 32) * 3], 31);
        // and the writer is the reader's inverse
        write_svhn_split(&path, &set, false).unwrap();
        assert_eq!(read_svhn_split(&path).unwrap(), set);
    }

    #[test]
    fn wrong_shapes_and_labels_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_32x32.mat");
        let cases = [
            (vec![32, 32, 1, 2], vec![2, 1], vec![1.0, 2.0], "32x32x3xN"),
            (vec![32, 32, 3, 2], vec![3, 1], vec![1.0, 2.0, 3.0], "expected 2x1"),
            (vec![32, 32, 3, 2], vec![2, 1], vec![1.0, 11.0], "y[1] = 11"),
        ];
        for (xd, yd, y, needle) in cases {
            let n: usize = xd.iter().product();
            let arrays = [
                MatArray { name: "X".into(), dims: xd, data: MatData::U8(vec![0; n]) },
                MatArray { name: "y".into(), dims: yd, data: MatData::F64(y) },
            ];
            write_mat(&path, &arrays, false).unwrap();
            let err = read_svhn_split(&path).unwrap_err().to_string();
            assert!(err.contains("test_32x32.mat") && err.contains(needle), "{err}");
        }
        let err = read_svhn(dir.path()).unwrap_err().to_string();
        assert!(err.contains("train_32x32.mat") && err.contains("data fetch svhn"), "{err}");
    }
}
