//! ImageFolder trees: `DIR/train/<class>/*` and `DIR/test/<class>/*`, JPEG or PNG, classes sorted by name.

use super::{DataError, Dataset, ImageSet};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

fn is_image(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Decodes one image file to RGB8, returning (height, width, HWC bytes).
pub fn decode_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let img = image::open(path).map_err(|e| DataError::malformed(path, format!("not a readable image: {e}")))?;
    let rgb = img.to_rgb8();
    Ok((rgb.height() as usize, rgb.width() as usize, rgb.into_raw()))
}

fn read_split(dir: &Path, classes: &[String]) -> Result<ImageSet, DataError> {
    let mut files: Vec<(PathBuf, i64)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            return Err(DataError::Missing {
                path: class_dir,
                hint: format!(
                    "every split needs the same class folders as {}",
                    dir.parent().unwrap_or(dir).join("train").display()
                ),
            });
        }
        let images = class_images(&class_dir)?;
        if images.is_empty() {
            return Err(DataError::malformed(&class_dir, "class folder holds no image"));
        }
        files.extend(images.into_iter().map(|p| (p, label as i64)));
    }
    decode_all(&files)
}

/// The images of one class folder, checked to be JPEG or PNG files.
fn class_images(class_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let images: Vec<PathBuf> = sorted_entries(class_dir)?.into_iter().filter(|p| p.is_file()).collect();
    if let Some(bad) = images.iter().find(|p| !is_image(p)) {
        return Err(DataError::malformed(bad, "not a .jpg, .jpeg or .png image; remove it from the class folder"));
    }
    Ok(images)
}

/// Decodes labelled image files (in parallel) into one set; all must share the first one's size.
fn decode_all(files: &[(PathBuf, i64)]) -> Result<ImageSet, DataError> {
    let decoded = files.par_iter().map(|(p, _)| decode_rgb(p)).collect::<Result<Vec<_>, _>>()?;
    let (h, w) = (decoded[0].0, decoded[0].1);
    let mut set = ImageSet::new(h, w);
    set.pixels.reserve(files.len() * h * w * 3);
    for ((path, label), (ih, iw, bytes)) in files.iter().zip(decoded) {
        if (ih, iw) != (h, w) {
            return Err(DataError::malformed(
                path,
                format!(
                    "image is {iw}x{ih} but the first image of the split is {w}x{h}; all images must share one size"
                ),
            ));
        }
        set.push(&bytes, *label);
    }
    Ok(set)
}

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
    decode_all(&files)
}

/// Reads an ImageFolder tree rooted at `root` (with `train/` and `test/` subfolders).
pub fn read_imagefolder(root: &Path) -> Result<Dataset, DataError> {
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
    let classes: Vec<String> = sorted_entries(&train_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    if classes.len() < 2 {
        return Err(DataError::malformed(&train_dir, "needs at least two class folders"));
    }
    let train = read_split(&train_dir, &classes)?;
    let test = read_split(&test_dir, &classes)?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::malformed(root, "train and test images differ in size"));
    }
    Ok(Dataset { name: "imagefolder".into(), classes, train, test })
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
        let ds = read_imagefolder(dir.path()).unwrap();
        assert_eq!(ds.classes, vec!["blue", "red"]);
        assert_eq!(ds.train.labels, vec![0, 1]);
        assert_eq!(&ds.train.image(1)[..3], &[200, 0, 0]);
        assert_eq!((ds.test.height, ds.test.width), (8, 8));
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
        let err = read_imagefolder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        std::fs::remove_file(dir.path().join("train/b/broken.png")).unwrap();
        std::fs::write(dir.path().join("train/b/notes.txt"), b"hi").unwrap();
        let err = read_imagefolder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("notes.txt"), "{err}");
        std::fs::remove_file(dir.path().join("train/b/notes.txt")).unwrap();
        write_png(&dir.path().join("train/b/big.png"), [1, 2, 3], 9);
        let err = read_imagefolder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("big.png") && err.contains("size"), "{err}");
    }
}
