//! Getting a named dataset into `--dataroot`: what is already there in the official layout is
//! checked for format and size; what is missing is downloaded (MD5-verified) and extracted into
//! a temporary folder that is renamed into place only once complete.

use super::cifar_py::{check_pickled, pickled_folder};
use super::download::{download, md5_file};
use super::mat::check_mat_header;
use super::sources::PickledFolder;
use super::sources::{Folder, Remote, CIFAR100_ARCHIVE, CIFAR100_FOLDER, CIFAR10_ARCHIVE, CIFAR10_FOLDER};
use super::sources::{SVHN_EXTRA, SVHN_TEST, SVHN_TRAIN, TINY_ARCHIVE, TINY_FOLDER};
use super::svhn::read_svhn_split;
use super::DataError;
use crate::config::DatasetName;
use crate::progress::Progress;
use flate2::read::GzDecoder;
use std::path::{Component, Path, PathBuf};

/// The environment variable that sets the download mirror when `--mirror` is not given.
pub const MIRROR_ENV: &str = "RESMOOTH_MIRROR";

/// How to fetch: an optional mirror replacing the official host, and whether SVHN's `extra`
/// split is wanted too.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub mirror: Option<String>,
    pub extra: bool,
}

/// What a downloadable dataset needs on disk.
#[derive(Debug, Clone)]
pub enum Layout {
    /// One archive that extracts to a folder.
    Archive(Remote, Folder),
    /// Files used as they are downloaded.
    Files(Vec<Remote>),
}

/// The layout of a downloadable dataset (`cifar10`, `cifar100`, `svhn`, `tiny`; `extra` adds
/// SVHN's extra split); `None` for an ImageFolder tree.
pub fn layout(name: DatasetName, extra: bool) -> Option<Layout> {
    match name {
        DatasetName::Cifar10 => Some(Layout::Archive(CIFAR10_ARCHIVE, CIFAR10_FOLDER)),
        DatasetName::Cifar100 => Some(Layout::Archive(CIFAR100_ARCHIVE, CIFAR100_FOLDER)),
        DatasetName::Svhn if extra => Some(Layout::Files(vec![SVHN_TRAIN, SVHN_TEST, SVHN_EXTRA])),
        DatasetName::Svhn => Some(Layout::Files(vec![SVHN_TRAIN, SVHN_TEST])),
        DatasetName::Tiny => Some(Layout::Archive(TINY_ARCHIVE, TINY_FOLDER)),
        DatasetName::ImageFolder | DatasetName::ImageNet | DatasetName::Demo => None,
    }
}

/// [`layout`], or an error for a dataset that cannot be downloaded.
fn downloadable(name: DatasetName, extra: bool) -> Result<Layout, DataError> {
    layout(name, extra).ok_or_else(|| {
        DataError::Invalid(format!("'{name}' is not a downloadable dataset; expected cifar10, cifar100, svhn or tiny"))
    })
}

fn manual_hint(remote: &Remote, root: &Path, folder: Option<&Folder>) -> String {
    let extracted =
        folder.map(|f| format!(" (or its extracted folder {}/)", root.join(f.dir).display())).unwrap_or_default();
    format!(
        "without network access, download {} elsewhere and put it at {}{extracted}; or pass --mirror URL \
         (or set {MIRROR_ENV}) to a host that serves the official files",
        remote.url,
        root.join(remote.file).display()
    )
}

/// Makes `name` ready to load from `root`, downloading and extracting what is missing; returns
/// one line per file saying what was found or done (the built-in demo needs nothing). Downloads
/// report to `progress`.
pub fn fetch(
    name: DatasetName,
    root: &Path,
    opts: &FetchOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<String>, DataError> {
    if name == DatasetName::Demo {
        return Ok(vec![super::demo::described()]);
    }
    let layout = downloadable(name, opts.extra)?;
    std::fs::create_dir_all(root).map_err(|e| DataError::io(root, e))?;
    match layout {
        Layout::Archive(_, folder) if pickled_instead(name, root, &Some(folder)).is_some() => {
            let (pickled, dir) = pickled_instead(name, root, &Some(folder)).expect("just seen");
            check_pickled_files(name.name(), &pickled, &dir)?;
            Ok(vec![format!("present {} (torchvision's version)", dir.display())])
        }
        Layout::Archive(remote, folder) => {
            Ok(vec![fetch_archive(name.name(), &remote, &folder, root, opts, progress)?])
        }
        Layout::Files(remotes) => remotes.iter().map(|r| fetch_file(r, root, opts, progress)).collect(),
    }
}

/// Checks `name` in `root` without any network access: the extracted folder's files (or SVHN's
/// .mat files) for format and record counts, an archive not yet extracted for its MD5; the
/// built-in demo by generating it.
pub fn check(name: DatasetName, root: &Path, extra: bool) -> Result<Vec<String>, DataError> {
    if name == DatasetName::Demo {
        return Ok(vec![super::demo::checked()]);
    }
    let layout = downloadable(name, extra)?;
    if let Some((pickled, dir)) = pickled_instead(name, root, &folder_of(&layout)) {
        return check_pickled(name.name(), &pickled, &dir);
    }
    let name = name.name();
    match layout {
        Layout::Archive(remote, folder) => {
            let dir = root.join(folder.dir);
            if dir.exists() {
                let counts = check_folder(name, &folder, &dir)?;
                if counts.is_empty() {
                    let dirs: Vec<String> = folder.dirs.iter().map(|d| format!("{d}/")).collect();
                    return Ok(vec![format!("ok {}: {} present", dir.display(), dirs.join(" and "))]);
                }
                let listed: Vec<String> = counts.iter().map(|(f, n)| format!("{f} {n}")).collect();
                return Ok(vec![format!("ok {}: {} records", dir.display(), listed.join(", "))]);
            }
            let archive = root.join(remote.file);
            if !archive.is_file() {
                return Err(missing(name, &remote, root, Some(&folder)));
            }
            verify_archive(name, &remote, &archive)?;
            Ok(vec![format!(
                "ok {}: official MD5; not extracted yet (`resmooth data fetch {name}` extracts it)",
                archive.display()
            )])
        }
        Layout::Files(remotes) => remotes
            .iter()
            .map(|remote| {
                let path = root.join(remote.file);
                if !path.is_file() {
                    return Err(missing(name, remote, root, None));
                }
                let n = read_svhn_split(&path)?.len();
                let origin = if md5_file(&path)? == remote.md5 {
                    "official file"
                } else {
                    "not the official file: a prepared copy"
                };
                Ok(format!("ok {}: {n} images ({origin})", path.display()))
            })
            .collect(),
    }
}

/// torchvision's pickled folder of `name` and where it is, when it is in `root` and the binary
/// `folder` is not (the binary one is read when both are).
fn pickled_instead(name: DatasetName, root: &Path, folder: &Option<Folder>) -> Option<(PickledFolder, PathBuf)> {
    let pickled = pickled_folder(name.name())?;
    let dir = root.join(pickled.dir);
    let binary = folder.as_ref().is_some_and(|f| root.join(f.dir).exists());
    (dir.is_dir() && !binary).then_some((pickled, dir))
}

/// The folder an archive layout extracts to.
fn folder_of(layout: &Layout) -> Option<Folder> {
    match layout {
        Layout::Archive(_, folder) => Some(*folder),
        Layout::Files(_) => None,
    }
}

/// Checks that every data file of torchvision's folder `dir` is there (without reading it).
fn check_pickled_files(name: &str, folder: &PickledFolder, dir: &Path) -> Result<(), DataError> {
    for (file, _) in folder.train.iter().chain([&folder.test]) {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(DataError::Missing {
                path,
                hint: format!(
                    "{} is incomplete: download it again with torchvision, or delete it and run `resmooth data fetch {name}`",
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

fn missing(name: &str, remote: &Remote, root: &Path, folder: Option<&Folder>) -> DataError {
    DataError::Missing {
        path: root.join(folder.map(|f| f.dir).unwrap_or(remote.file)),
        hint: format!("run `resmooth data fetch {name}`; {}", manual_hint(remote, root, folder)),
    }
}

fn verify_archive(name: &str, remote: &Remote, archive: &Path) -> Result<(), DataError> {
    let got = md5_file(archive)?;
    if got != remote.md5 {
        return Err(DataError::Checksum {
            path: archive.to_path_buf(),
            got,
            want: remote.md5.into(),
            what: format!(
                "it is not the official {} (damaged, truncated or another version); delete it and run \
                 `resmooth data fetch {name}` again",
                remote.file
            ),
        });
    }
    Ok(())
}

/// Ensures `root/<folder.dir>` exists: checks it if present, else extracts the archive, which is
/// first downloaded if absent. The archive's MD5 is verified in either case.
pub fn fetch_archive(
    name: &str,
    remote: &Remote,
    folder: &Folder,
    root: &Path,
    opts: &FetchOptions,
    progress: &mut dyn Progress,
) -> Result<String, DataError> {
    let dir = root.join(folder.dir);
    if dir.exists() {
        check_folder(name, folder, &dir)?;
        return Ok(format!("present {}", dir.display()));
    }
    let archive = root.join(remote.file);
    let how = if archive.is_file() {
        verify_archive(name, remote, &archive)?;
        "verified"
    } else {
        let url = remote.url_with(opts.mirror.as_deref());
        progress.note(&format!("downloading {url} to {}", archive.display()));
        download(&url, remote.md5, &archive, &manual_hint(remote, root, Some(folder)), progress)?;
        "downloaded"
    };
    progress.note(&format!("extracting {} into {}", archive.display(), dir.display()));
    extract(name, &archive, folder, root)?;
    Ok(format!("{how} {} and extracted {}", archive.display(), dir.display()))
}

/// Ensures `root/<remote.file>` exists: a present file is checked for its header only (a prepared
/// copy loads); a missing one is downloaded and MD5-verified.
pub fn fetch_file(
    remote: &Remote,
    root: &Path,
    opts: &FetchOptions,
    progress: &mut dyn Progress,
) -> Result<String, DataError> {
    let path = root.join(remote.file);
    if path.is_file() {
        check_mat_header(&path)?;
        return Ok(format!("present {}", path.display()));
    }
    let url = remote.url_with(opts.mirror.as_deref());
    progress.note(&format!("downloading {url} to {}", path.display()));
    download(&url, remote.md5, &path, &manual_hint(remote, root, None), progress)?;
    Ok(format!("downloaded {}", path.display()))
}

/// Checks that every sub-folder of `folder` is in `dir` and every file of it too, holding a
/// whole, non-zero number of records; returns the record count of each record file.
pub fn check_folder(name: &str, folder: &Folder, dir: &Path) -> Result<Vec<(&'static str, u64)>, DataError> {
    for sub in folder.dirs {
        let path = dir.join(sub);
        if !path.is_dir() {
            return Err(DataError::Missing {
                path,
                hint: format!(
                    "{} is incomplete: delete the folder and run `resmooth data fetch {name}`",
                    dir.display()
                ),
            });
        }
    }
    let mut counts = Vec::new();
    for &(file, record) in folder.files {
        let path = dir.join(file);
        let len = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                return Err(DataError::Missing {
                    path,
                    hint: format!(
                        "{} is incomplete: copy the file from the official archive, or delete the folder and run \
                         `resmooth data fetch {name}`",
                        dir.display()
                    ),
                })
            }
        };
        if record > 0 {
            if len == 0 || len % record as u64 != 0 {
                return Err(DataError::malformed(
                    &path,
                    format!("size {len} bytes is not a whole number of {record}-byte records (truncated, or not the binary version)"),
                ));
            }
            counts.push((file, len / record as u64));
        }
    }
    Ok(counts)
}

/// Extracts the members `<folder.dir>/*` of a .tar.gz (or everything under `<folder.dir>/` of a
/// .zip) into `root/.<folder.dir>.partial`, checks them, then renames the folder into `root`. On
/// any error nothing is left behind.
pub fn extract(name: &str, archive: &Path, folder: &Folder, root: &Path) -> Result<(), DataError> {
    let tmp = root.join(format!(".{}.partial", folder.dir));
    let io = |p: &Path, e| DataError::io(p, e);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(tmp.join(folder.dir)).map_err(|e| io(&tmp, e))?;
    let is_zip = archive.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let unpacked = if is_zip { unzip(name, archive, folder, &tmp) } else { unpack(name, archive, folder, &tmp) };
    let result = unpacked.and_then(|()| {
        check_folder(name, folder, &tmp.join(folder.dir))
            .map_err(|e| DataError::malformed(archive, format!("is not the expected archive: {e}")))
    });
    let result = result.and_then(|_| {
        std::fs::rename(tmp.join(folder.dir), root.join(folder.dir)).map_err(|e| io(&root.join(folder.dir), e))
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn unpack(name: &str, archive: &Path, folder: &Folder, tmp: &Path) -> Result<(), DataError> {
    let bad = |e: std::io::Error| {
        DataError::malformed(
            archive,
            format!("cannot be extracted ({e}): it is truncated or not a .tar.gz; delete it and run `resmooth data fetch {name}` again"),
        )
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let parts: Vec<Component> = path.components().filter(|c| *c != Component::CurDir).collect();
        let [Component::Normal(dir), Component::Normal(file)] = parts.as_slice() else { continue };
        if *dir != folder.dir {
            continue;
        }
        let out = tmp.join(folder.dir).join(file);
        let mut dest = std::fs::File::create(&out).map_err(|e| DataError::io(&out, e))?;
        std::io::copy(&mut entry, &mut dest).map_err(bad)?;
    }
    Ok(())
}

fn unzip(name: &str, archive: &Path, folder: &Folder, tmp: &Path) -> Result<(), DataError> {
    let bad = |e: &dyn std::fmt::Display| {
        DataError::malformed(
            archive,
            format!("cannot be extracted ({e}): it is truncated or not a .zip; delete it and run `resmooth data fetch {name}` again"),
        )
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(&e))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(&e))?;
        // only plain relative paths under the folder: nothing can land outside it
        let Some(path) = entry.enclosed_name().map(Path::to_path_buf) else { continue };
        let mut parts = path.components();
        if parts.next() != Some(Component::Normal(folder.dir.as_ref()))
            || !parts.all(|c| matches!(c, Component::Normal(_)))
        {
            continue;
        }
        let out = tmp.join(&path);
        let dir = if entry.is_dir() { out.as_path() } else { out.parent().unwrap_or(tmp) };
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        if entry.is_file() {
            let mut dest = std::fs::File::create(&out).map_err(|e| DataError::io(&out, e))?;
            std::io::copy(&mut entry, &mut dest).map_err(|e| bad(&e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDER: Folder = Folder { dir: "toy-bin", files: &[("a.bin", 4), ("names.txt", 0)], dirs: &[] };

    fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, &data[..]).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn extracts_only_the_folder_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("toy.tar.gz");
        let good = tar_gz(&[
            ("./toy-bin/a.bin", vec![1, 2, 3, 4, 5, 6, 7, 8]),
            ("toy-bin/names.txt", b"x".to_vec()),
            ("other/evil.bin", vec![0]),
        ]);
        std::fs::write(&archive, &good).unwrap();
        extract("toy", &archive, &FOLDER, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("toy-bin/a.bin")).unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(!dir.path().join("other").exists() && !dir.path().join(".toy-bin.partial").exists());
        assert_eq!(check_folder("toy", &FOLDER, &dir.path().join("toy-bin")).unwrap(), vec![("a.bin", 2)]);
    }

    #[test]
    fn a_truncated_or_wrong_archive_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("toy.tar.gz");
        let good = tar_gz(&[("toy-bin/a.bin", vec![7; 4000]), ("toy-bin/names.txt", b"x".to_vec())]);
        std::fs::write(&archive, &good[..good.len() / 2]).unwrap();
        let err = extract("toy", &archive, &FOLDER, dir.path()).unwrap_err().to_string();
        assert!(err.contains("toy.tar.gz") && err.contains("truncated"), "{err}");
        let wrong = tar_gz(&[("toy-bin/a.bin", vec![7; 5])]);
        std::fs::write(&archive, wrong).unwrap();
        let err = extract("toy", &archive, &FOLDER, dir.path()).unwrap_err().to_string();
        assert!(err.contains("toy.tar.gz") && err.contains("a.bin") && err.contains("4-byte records"), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("toy.tar.gz")]);
    }

    fn zip_file(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (path, data) in members {
            if path.ends_with('/') {
                zip.add_directory(*path, zip::write::FileOptions::default()).unwrap();
            } else {
                zip.start_file(*path, zip::write::FileOptions::default()).unwrap();
                std::io::Write::write_all(&mut zip, data).unwrap();
            }
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn extracts_a_zip_tree_and_nothing_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("tiny-imagenet-200.zip");
        let good = zip_file(&[
            ("tiny-imagenet-200/", b""),
            ("tiny-imagenet-200/train/n01/images/n01_0.JPEG", b"jpeg"),
            ("tiny-imagenet-200/val/val_annotations.txt", b"n01_0.JPEG\tn01\n"),
            ("tiny-imagenet-200/../escape.txt", b"no"),
            ("elsewhere/file.txt", b"no"),
        ]);
        std::fs::write(&archive, &good).unwrap();
        extract("tiny", &archive, &TINY_FOLDER, dir.path()).unwrap();
        let root = dir.path().join("tiny-imagenet-200");
        assert_eq!(std::fs::read(root.join("train/n01/images/n01_0.JPEG")).unwrap(), b"jpeg");
        assert!(root.join("val/val_annotations.txt").is_file());
        assert!(!dir.path().join("escape.txt").exists() && !dir.path().join("elsewhere").exists());
        assert!(!dir.path().join(".tiny-imagenet-200.partial").exists());
        assert!(check(DatasetName::Tiny, dir.path(), false).unwrap()[0].contains("train/ and val/ present"));
        // a truncated zip, or one without val/, leaves nothing behind
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::write(&archive, &good[..good.len() / 2]).unwrap();
        let err = extract("tiny", &archive, &TINY_FOLDER, dir.path()).unwrap_err().to_string();
        assert!(err.contains("tiny-imagenet-200.zip") && err.contains("truncated"), "{err}");
        std::fs::write(&archive, zip_file(&[("tiny-imagenet-200/train/a.JPEG", b"x")])).unwrap();
        let err = extract("tiny", &archive, &TINY_FOLDER, dir.path()).unwrap_err().to_string();
        assert!(err.contains("val") && err.contains("incomplete"), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tiny-imagenet-200.zip")]);
        // an archive in place is checked against the published MD5
        let err = check(DatasetName::Tiny, dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("90528d7ca1a48142e341f4ef8d21d0de"), "{err}");
    }

    #[test]
    fn check_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(DatasetName::Cifar100, dir.path(), false).unwrap_err().to_string();
        assert!(
            err.contains("cifar-100-binary") && err.contains("data fetch cifar100") && err.contains("--mirror"),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("cifar-100-binary")).unwrap();
        let err = check(DatasetName::Cifar100, dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("train.bin") && err.contains("incomplete"), "{err}");
        std::fs::write(dir.path().join("cifar-10-binary.tar.gz"), b"not it").unwrap();
        let err = check(DatasetName::Cifar10, dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("cifar-10-binary.tar.gz") && err.contains("c32a1d4ab5d03f1284b67883e8d87530"), "{err}");
        assert!(layout(DatasetName::ImageFolder, false).is_none());
        let err = check(DatasetName::ImageFolder, dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("not a downloadable dataset"), "{err}");
    }
}
