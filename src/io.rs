//! Files that are never half-written: one atomic replace (write a temporary sibling, fsync it,
//! rename it over the target, fsync the folder) and appends of whole lines.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct FileError {
    /// What was being done: "write", "read", "create", …
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// The error of `action` on `path`.
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        FileError { action, path: path.to_path_buf(), source }
    }
}

/// The temporary sibling a replacement of `path` is written to.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Replaces `path` atomically with what `write` puts into the temporary path it is given: readers
/// see the old file or the whole new one, never a part, even after a crash. The folder is made
/// if missing. `write`'s own error type must say which file it failed on.
pub fn replace_with<E: From<FileError>>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FileError::new("create", dir, e))?;
    let tmp = partial_path(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let sync = std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| FileError::new("write", &tmp, e));
    if let Err(e) = sync.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| FileError::new("replace", path, e))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    // the rename itself is durable once the folder is synced (best effort: not every file system allows it)
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `path` atomically with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    replace_with(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| FileError::new("write", tmp, e)))
}

/// Appends `line` and a newline to `path` (made if missing) in one write, and syncs it.
pub fn append_line(path: &Path, line: &str) -> Result<(), FileError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| FileError::new("open", path, e))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| FileError::new("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_replacement_keeps_the_old_file_and_leaves_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"one").unwrap();
        let failed: Result<(), FileError> = replace_with(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(FileError::new("write", tmp, std::io::Error::other("disk full")))
        });
        let err = failed.unwrap_err();
        assert!(err.to_string().contains("a.json.partial"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert!(!partial_path(&path).exists());
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        append_line(&dir.path().join("m.jsonl"), "{}").unwrap();
        append_line(&dir.path().join("m.jsonl"), "{\"a\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("m.jsonl")).unwrap(), "{}\n{\"a\":1}\n");
    }
}
