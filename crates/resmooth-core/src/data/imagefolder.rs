//! ImageFolder trees: `DIR/train/<class>/*` and `DIR/test/<class>/*`, JPEG or PNG, classes sorted
//! by name; images of any size when `--image-size` is given, normalised with the statistics of
//! their own training images.

use super::decode::{decode_files, Size, SIZE_HINT};
use super::stats::folder_normalisation;
use super::stream::{class_images, sorted_entries, FileList};
use super::{DataError, Dataset, ImageSet};
use crate::progress::{Progress, Silent};
use std::path::{Path, PathBuf};

/// Reads a tree `dir/<class>/*` whose folders are named after the dataset's `classes` (absent
/// ones hold no image), labelling each image by its folder's position in `classes`: the
/// evaluation trees of `--evalDA`, which `resmooth detect --export` writes.
pub fn read_labelled_folder(dir: &Path, classes: &[String]) -> Result<ImageSet, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            hint: "write it with `resmooth detect --export DIR` (DIR/DAOOD, DIR/DAID) or pass its path".into(),
        });
    }
    let mut files: Vec<(PathBuf, i64)> = Vec::new();
    for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(DataError::malformed(
                &sub,
                format!("is not a class of the dataset; class folders must be named {}", classes.join(", ")),
            ));
        };
        files.extend(class_images(&sub)?.into_iter().map(|p| (p, label as i64)));
    }
    if files.is_empty() {
        return Err(DataError::malformed(dir, "holds no image in any <class>/ folder"));
    }
    decode_files(&files, Size::Native, "reading images", &mut Silent)
}

/// Reads the train and test files of a folder dataset at `size`, checking that both splits
/// share one image size.
pub(crate) fn read_splits(
    root: &Path,
    train: &[(PathBuf, i64)],
    test: &[(PathBuf, i64)],
    size: Size,
    progress: &mut dyn Progress,
) -> Result<(ImageSet, ImageSet), DataError> {
    let train_set = decode_files(train, size, "reading training images", progress)?;
    let test_set = decode_files(test, size, "reading test images", progress)?;
    if (train_set.height, train_set.width) != (test_set.height, test_set.width) {
        return Err(DataError::malformed(
            root,
            format!(
                "the training images are {}x{} but the test images {}x{}: {SIZE_HINT}",
                train_set.width, train_set.height, test_set.width, test_set.height
            ),
        ));
    }
    Ok((train_set, test_set))
}

/// Reads an ImageFolder tree rooted at `root` (with `train/` and `test/` subfolders) at `size`,
/// normalised with the statistics of its training images (cached beside them).
pub fn read_imagefolder(root: &Path, size: Size, progress: &mut dyn Progress) -> Result<Dataset, DataError> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    for d in [&train_dir, &test_dir] {
        if !d.is_dir() {
            return Err(DataError::Missing {
                path: d.clone(),
                hint: "an ImageFolder --dataroot needs train/<class>/* and test/<class>/*".into(),
            });
        }
    }
    let train = FileList::list(&train_dir)?;
    let test = FileList::list_with_classes(&test_dir, train.classes.clone())?;
    read_listed_folder(root, &train, &test, size, progress)
}

/// [`read_imagefolder`] of the splits `train` and `test` of the tree at `root`, already listed.
pub(crate) fn read_listed_folder(
    root: &Path,
    train: &FileList,
    test: &FileList,
    size: Size,
    progress: &mut dyn Progress,
) -> Result<Dataset, DataError> {
    let (train_files, test_files) = (train.labelled(), test.labelled());
    let (train_set, test_set) = read_splits(root, &train_files, &test_files, size, progress)?;
    let normalisation = folder_normalisation(root, &train_files, size, &train_set, progress)?;
    let classes = train.classes.clone();
    Ok(Dataset { name: "imagefolder".into(), classes, train: train_set, test: test_set, normalisation })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, rgb: [u8; 3], side: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(side, side, image::Rgb(rgb)).save(path).unwrap();
    }

    #[test]
    fn reads_sorted_classes_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            write_png(&dir.path().join(split).join("red/a.png"), [200, 0, 0], 8);
            write_png(&dir.path().join(split).join("blue/a.png"), [0, 0, 200], 8);
        }
        let ds = read_imagefolder(dir.path(), Size::Native, &mut Silent).unwrap();
        assert_eq!(ds.classes, vec!["blue", "red"]);
        assert_eq!(ds.train.labels, vec![0, 1]);
        assert_eq!(&ds.train.image(1)[..3], &[200, 0, 0]);
        assert_eq!((ds.test.height, ds.test.width), (8, 8));
    }

    #[test]
    fn mixed_sizes_need_image_size_and_get_their_own_normalisation() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            write_png(&dir.path().join(split).join("dark/a.png"), [0, 0, 0], 8);
            write_png(&dir.path().join(split).join("light/b.png"), [255, 255, 51], 20);
        }
        let err = read_imagefolder(dir.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("b.png") && err.contains("--image-size"), "{err}");
        let ds = read_imagefolder(dir.path(), Size::Square(8), &mut Silent).unwrap();
        assert_eq!((ds.train.height, ds.test.width, ds.train.len()), (8, 8, 2));
        assert_eq!(ds.normalisation.mean, [0.5, 0.5, 0.1]);
        assert_eq!(ds.normalisation.std, [0.5, 0.5, 0.1]);
        assert!(dir.path().join(super::super::stats::STATS_FILE).is_file());
    }

    #[test]
    fn labelled_folders_take_the_dataset_class_order() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("ood/truck/1.png"), [9, 9, 9], 4);
        write_png(&dir.path().join("ood/bird/7.png"), [5, 5, 5], 4);
        let classes: Vec<String> = ["airplane", "bird", "cat", "truck"].map(String::from).to_vec();
        let set = read_labelled_folder(&dir.path().join("ood"), &classes).unwrap();
        assert_eq!(set.labels, vec![1, 3]);
        assert_eq!(set.image(1)[0], 9);
        write_png(&dir.path().join("ood/ship/1.png"), [9, 9, 9], 4);
        let err = read_labelled_folder(&dir.path().join("ood"), &classes).unwrap_err().to_string();
        assert!(err.contains("ship") && err.contains("truck"), "{err}");
        let err = read_labelled_folder(&dir.path().join("none"), &classes).unwrap_err().to_string();
        assert!(err.contains("none") && err.contains("--export"), "{err}");
    }

    #[test]
    fn corrupt_and_foreign_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            write_png(&dir.path().join(split).join("a/x.png"), [1, 2, 3], 8);
            write_png(&dir.path().join(split).join("b/x.png"), [1, 2, 3], 8);
        }
        std::fs::write(dir.path().join("train/b/broken.png"), b"not a png").unwrap();
        let err = read_imagefolder(dir.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        std::fs::remove_file(dir.path().join("train/b/broken.png")).unwrap();
        std::fs::write(dir.path().join("train/b/notes.txt"), b"hi").unwrap();
        let err = read_imagefolder(dir.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("notes.txt"), "{err}");
        std::fs::remove_file(dir.path().join("train/b/notes.txt")).unwrap();
        write_png(&dir.path().join("train/b/big.png"), [1, 2, 3], 9);
        let err = read_imagefolder(dir.path(), Size::Native, &mut Silent).unwrap_err().to_string();
        assert!(err.contains("big.png") && err.contains("size"), "{err}");
    }
}
