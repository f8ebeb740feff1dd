//! Tiny-ImageNet-200 as the reference's `--dataset tiny` reads it: `DATAROOT/tiny-imagenet-200/`
//! with `train/<wnid>/images/*.JPEG` (classes: the wnid folders, sorted) and the `val/` split as
//! the test split, either as the official zip lays it out (`val/images/*.JPEG` labelled by
//! `val/val_annotations.txt`) or reorganised into `val/<wnid>/` folders (what the reference's
//! ImageFolder needs). Normalised with the reference's Tiny-ImageNet mean and std.

use super::decode::{is_image, Size};
use super::imagefolder::read_splits;
use super::sources::TINY_FOLDER;
use super::stream::{class_folders, sorted_entries};
use super::{DataError, Dataset, Normalisation};
use crate::progress::Progress;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The JPEG and PNG files under `dir`, at any depth, sorted by path (as torchvision's ImageFolder
/// walks a class folder); other files (the official `*_boxes.txt`) are skipped.
fn images_under(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            out.extend(images_under(&entry)?);
        } else if is_image(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The images of `dir/<class>/**` for each class folder of `dir`, labelled by the position of
/// its name in `classes`.
fn class_tree(dir: &Path, classes: &[String], all_needed: bool) -> Result<Vec<(PathBuf, i64)>, DataError> {
    let mut files = Vec::new();
    for name in class_folders(dir)? {
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(DataError::malformed(
                &dir.join(&name),
                "is not a class of the training split (a folder of tiny-imagenet-200/train/)",
            ));
        };
        let images = images_under(&dir.join(&name))?;
        if images.is_empty() && all_needed {
            return Err(DataError::malformed(&dir.join(&name), "class folder holds no image"));
        }
        files.extend(images.into_iter().map(|p| (p, label as i64)));
    }
    Ok(files)
}

/// The official validation layout: `val/images/*` labelled by `val/val_annotations.txt` (lines
/// `FILE<TAB>WNID<TAB>box`), sorted by file name.
fn official_val(val: &Path, classes: &[String]) -> Result<Vec<(PathBuf, i64)>, DataError> {
    let annotations = val.join("val_annotations.txt");
    let text = std::fs::read_to_string(&annotations).map_err(|e| DataError::io(&annotations, e))?;
    let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(DataError::malformed(&annotations, format!("line {} is not FILE<TAB>WNID…", n + 1)));
        };
        let Some(&label) = index.get(wnid.trim()) else {
            return Err(DataError::malformed(
                &annotations,
                format!("line {}: {wnid} is not a class of the training split", n + 1),
            ));
        };
        let path = val.join("images").join(file.trim());
        if !path.is_file() {
            return Err(DataError::Missing {
                path,
                hint: format!("listed on line {} of {}", n + 1, annotations.display()),
            });
        }
        files.push((path, label as i64));
    }
    files.sort();
    Ok(files)
}

/// Reads Tiny-ImageNet from `root/tiny-imagenet-200` at `size` (64x64 as distributed).
pub fn read_tiny(root: &Path, size: Size, progress: &mut dyn Progress) -> Result<Dataset, DataError> {
    let dir = root.join(TINY_FOLDER.dir);
    let (train_dir, val_dir) = (dir.join("train"), dir.join("val"));
    for d in [&train_dir, &val_dir] {
        if !d.is_dir() {
            return Err(DataError::Missing {
                path: d.clone(),
                hint: format!(
                    "run `resmooth data fetch tiny --dataroot {}` (or unzip the official tiny-imagenet-200.zip there)",
                    root.display()
                ),
            });
        }
    }
    let classes = class_folders(&train_dir)?;
    if classes.len() < 2 {
        return Err(DataError::malformed(&train_dir, "needs at least two class (wnid) folders"));
    }
    let train_files = class_tree(&train_dir, &classes, true)?;
    let test_files = if val_dir.join("images").is_dir() && val_dir.join("val_annotations.txt").is_file() {
        official_val(&val_dir, &classes)?
    } else {
        class_tree(&val_dir, &classes, false)?
    };
    if test_files.is_empty() {
        return Err(DataError::malformed(
            &val_dir,
            "holds no image: expected images/ with val_annotations.txt (the official layout) or <wnid>/ folders",
        ));
    }
    let (train, test) = read_splits(&dir, &train_files, &test_files, size, progress)?;
    Ok(Dataset { name: "tiny".into(), classes, train, test, normalisation: Normalisation::TINY })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn jpeg(path: &Path, value: u8, side: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(side, side, image::Rgb([value, value, value])).save(path).unwrap();
    }

    /// The official zip's layout with two classes, three training and two validation images.
    fn official(root: &Path) -> PathBuf {
        let dir = root.join("tiny-imagenet-200");
        for (wnid, v) in [("n02", 200u8), ("n01", 20)] {
            for i in 0..(if wnid == "n01" { 2 } else { 1 }) {
                jpeg(&dir.join(format!("train/{wnid}/images/{wnid}_{i}.JPEG")), v, 16);
            }
            std::fs::write(dir.join(format!("train/{wnid}/{wnid}_boxes.txt")), "x\t0\t0\t1\t1\n").unwrap();
        }
        jpeg(&dir.join("val/images/val_0.JPEG"), 200, 16);
        jpeg(&dir.join("val/images/val_1.JPEG"), 20, 16);
        std::fs::write(
            dir.join("val/val_annotations.txt"),
            "val_1.JPEG\tn01\t0\t0\t1\t1\nval_0.JPEG\tn02\t0\t0\t1\t1\n",
        )
        .unwrap();
        std::fs::write(dir.join("wnids.txt"), "n02\nn01\n").unwrap();
        dir
    }

    #[test]
    fn reads_the_official_layout_with_sorted_wnids() {
        let root = tempfile::tempdir().unwrap();
        official(root.path());
        let ds = read_tiny(root.path(), Size::Native, &mut Silent).unwrap();
        assert_eq!(ds.classes, vec!["n01", "n02"]);
        assert_eq!(ds.train.labels, vec![0, 0, 1]);
        assert_eq!(ds.test.labels, vec![1, 0], "val_0 is n02, val_1 is n01");
        assert!(ds.test.image(0).iter().all(|&v| v.abs_diff(200) <= 2));
        assert_eq!((ds.train.height, ds.train.width), (16, 16));
        assert_eq!(ds.normalisation, Normalisation::TINY);
        let small = read_tiny(root.path(), Size::Square(8), &mut Silent).unwrap();
        assert_eq!((small.test.height, small.test.len()), (8, 2));
    }

    #[test]
    fn reads_the_reorganised_val_layout() {
        let root = tempfile::tempdir().unwrap();
        let dir = official(root.path());
        std::fs::remove_dir_all(dir.join("val")).unwrap();
        jpeg(&dir.join("val/n02/images/a.JPEG"), 200, 16);
        jpeg(&dir.join("val/n02/b.JPEG"), 200, 16);
        jpeg(&dir.join("val/n01/c.JPEG"), 20, 16);
        let ds = read_tiny(root.path(), Size::Native, &mut Silent).unwrap();
        assert_eq!(ds.test.labels, vec![0, 1, 1]);
        jpeg(&dir.join("val/n99/d.JPEG"), 20, 16);
        let err = read_tiny(root.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("n99") && err.contains("not a class"), "{err}");
    }

    #[test]
    fn missing_folders_and_bad_annotations_are_named() {
        let root = tempfile::tempdir().unwrap();
        let err = read_tiny(root.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("tiny-imagenet-200") && err.contains("data fetch tiny"), "{err}");
        let dir = official(root.path());
        std::fs::write(dir.join("val/val_annotations.txt"), "val_0.JPEG\tn07\n").unwrap();
        let err = read_tiny(root.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("val_annotations.txt") && err.contains("n07"), "{err}");
        std::fs::write(dir.join("val/val_annotations.txt"), "val_9.JPEG\tn01\n").unwrap();
        let err = read_tiny(root.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("val_9.JPEG") && err.contains("line 1"), "{err}");
    }
}
