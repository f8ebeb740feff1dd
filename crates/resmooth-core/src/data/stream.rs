//! The file side of folder datasets and of streaming: an ImageFolder split listed once (classes sorted by name, as
//! torchvision's ImageFolder, files sorted within each class) and held compactly, one string of
//! relative names for the whole split, so that a million files cost tens of megabytes, not a
//! `PathBuf` each; and what to do with a file that cannot be decoded.

use super::decode::is_image;
use super::DataError;
use std::path::{Path, PathBuf};

pub use crate::config::OnBadImage;

pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// The sorted names of the sub-folders of `dir`.
pub(crate) fn class_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect())
}

/// The images of one class folder, checked to be JPEG or PNG files.
pub(crate) fn class_images(class_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let images: Vec<PathBuf> = sorted_entries(class_dir)?.into_iter().filter(|p| p.is_file()).collect();
    if let Some(bad) = images.iter().find(|p| !is_image(p)) {
        return Err(DataError::malformed(bad, "not a .jpg, .jpeg or .png image; remove it from the class folder"));
    }
    Ok(images)
}

/// An image left out of a batch, and why.
#[derive(Debug, Clone)]
pub struct BadImage {
    pub index: usize,
    pub path: PathBuf,
    pub reason: String,
}

/// The labelled image files of one ImageFolder split, in ImageFolder's order.
#[derive(Debug, Clone, PartialEq)]
pub struct FileList {
    root: PathBuf,
    /// The class folder names, sorted; a file's label is its folder's position here.
    pub classes: Vec<String>,
    /// Every file's path relative to `root`, one after the other.
    names: String,
    /// End of each file's name in `names`.
    ends: Vec<usize>,
    labels: Vec<u32>,
}

impl FileList {
    /// Lists `dir/<class>/*` with the classes of `dir`'s own sub-folders (a training split).
    pub fn list(dir: &Path) -> Result<FileList, DataError> {
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir.to_path_buf(),
                hint: "a split of a folder dataset is a folder of <class>/ folders of JPEG or PNG images (DIR/train/<class>/*, \
                       DIR/test/<class>/*; ImageNet's val/ for test/)"
                    .into(),
            });
        }
        let classes = class_folders(dir)?;
        if classes.len() < 2 {
            return Err(DataError::malformed(dir, "needs at least two class folders"));
        }
        Self::list_with_classes(dir, classes)
    }

    /// Lists `dir/<class>/*` for the given `classes` (a test split labelled as its training
    /// split); every class needs its folder, with at least one image.
    pub fn list_with_classes(dir: &Path, classes: Vec<String>) -> Result<FileList, DataError> {
        let mut list = FileList {
            root: dir.to_path_buf(),
            classes: Vec::new(),
            names: String::new(),
            ends: Vec::new(),
            labels: Vec::new(),
        };
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
            for path in images {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let Some(rel) = rel.to_str() else {
                    return Err(DataError::malformed(&path, "has a name that is not UTF-8; rename it"));
                };
                list.names.push_str(rel);
                list.ends.push(list.names.len());
                list.labels.push(label as u32);
            }
        }
        list.classes = classes;
        Ok(list)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the split holds no file.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The path of file `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.root.join(&self.names[start..self.ends[i]])
    }

    /// The label of file `i`.
    pub fn label(&self, i: usize) -> i64 {
        self.labels[i] as i64
    }

    /// The files at `keep` (positions in this list), in that order, with the same classes.
    pub fn select(&self, keep: &[usize]) -> FileList {
        let mut list = FileList {
            root: self.root.clone(),
            classes: self.classes.clone(),
            names: String::new(),
            ends: Vec::with_capacity(keep.len()),
            labels: Vec::with_capacity(keep.len()),
        };
        for &i in keep {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            list.names.push_str(&self.names[start..self.ends[i]]);
            list.ends.push(list.names.len());
            list.labels.push(self.labels[i]);
        }
        list
    }

    /// Every file's path with its label, in order.
    pub fn labelled(&self) -> Vec<(PathBuf, i64)> {
        (0..self.len()).map(|i| (self.path(i), self.label(i))).collect()
    }

    /// Bytes the listing holds (names, offsets, labels): what the file list costs in memory.
    pub fn heap_bytes(&self) -> usize {
        self.names.capacity() + self.ends.capacity() * std::mem::size_of::<usize>() + self.labels.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3])).save(path).unwrap();
    }

    #[test]
    fn lists_sorted_classes_and_files_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["zebra/b.png", "zebra/a.png", "ant/x.png", "moth/1.png"] {
            write_png(&dir.path().join("train").join(f));
        }
        let list = FileList::list(&dir.path().join("train")).unwrap();
        assert_eq!(list.classes, vec!["ant", "moth", "zebra"]);
        assert_eq!(list.len(), 4);
        let files: Vec<(PathBuf, i64)> = (0..4).map(|i| (list.path(i), list.label(i))).collect();
        let train = dir.path().join("train");
        assert_eq!(files[0], (train.join("ant/x.png"), 0));
        assert_eq!(files[2], (train.join("zebra/a.png"), 2));
        assert_eq!(files[3], (train.join("zebra/b.png"), 2));
        assert!(list.heap_bytes() >= "ant/x.pngmoth/1.pngzebra/a.pngzebra/b.png".len());
    }

    #[test]
    fn a_test_split_takes_the_training_classes_and_needs_each_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("val/b/1.png"));
        let classes = vec!["a".to_string(), "b".to_string()];
        let err = FileList::list_with_classes(&dir.path().join("val"), classes.clone()).unwrap_err().to_string();
        assert!(err.contains("val/a") && err.contains("class folders"), "{err}");
        write_png(&dir.path().join("val/a/9.png"));
        let list = FileList::list_with_classes(&dir.path().join("val"), classes).unwrap();
        assert_eq!((list.label(0), list.label(1)), (0, 1));
        let err = FileList::list(&dir.path().join("nowhere")).unwrap_err().to_string();
        assert!(err.contains("nowhere"), "{err}");
    }
}
