//! Files that are never half-written: one atomic replace (write a temporary sibling, fsync it,
//! rename it over the target, fsync the folder) and appends of whole lines; the lock that keeps
//! one run per folder; the free-space and writability checks made before a run starts; and the
//! test hooks that pause a process or fail a write at a chosen point (see [`test_point`]).

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

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
    let written = write(&tmp).and_then(|()| match injected_failure(path) {
        Some(e) => Err(FileError::new("write", &tmp, e).into()),
        None => Ok(()),
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    test_point(&format!("write:{}", file_name(path)));
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

/// Appends `line` and a newline to `path` (made if missing) in one write, and syncs it. When
/// the write fails (a full disk), the file is cut back to its former length: it never ends in
/// part of a line.
pub fn append_line(path: &Path, line: &str) -> Result<(), FileError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| FileError::new("open", path, e))?;
    let before = f.metadata().map_err(|e| FileError::new("read", path, e))?.len();
    let text = format!("{line}\n");
    let written = match injected_failure(path) {
        Some(e) => f.write_all(&text.as_bytes()[..text.len() / 2]).and(Err(e)),
        None => f.write_all(text.as_bytes()).and_then(|()| f.sync_data()),
    };
    written.map_err(|e| {
        let _ = f.set_len(before).and_then(|()| f.sync_data());
        FileError::new("write", path, e)
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// The file of the lock in a run folder.
pub const LOCK_FILE: &str = ".lock";

/// A run folder is in use by another process.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{} is in use by another resmooth process ({holder}); wait for it to finish or stop it, or pass another --tag",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error(transparent)]
    File(#[from] FileError),
}

/// The lock of a run folder, held while this value lives: an OS file lock on `<dir>/.lock`,
/// released by the OS when the process ends however it ends (never a stale lock). The file
/// names the holder (process id and command line) for the message of a refused second run.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    pub dir: PathBuf,
}

/// Takes the lock of `dir` (made if missing), or says which process holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError::new("create", dir, e))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| FileError::new("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "process id not yet written".into() } else { holder.to_string() };
            return Err(LockError::Held { dir: dir.to_path_buf(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(FileError::new("lock", &path, e).into()),
    }
    let args: Vec<String> = std::env::args().collect();
    let who = format!("pid {}: {}\n", std::process::id(), args.join(" "));
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(who.as_bytes()))
        .map_err(|e| FileError::new("write", &path, e))?;
    Ok(DirLock { _file: file, dir: dir.to_path_buf() })
}

/// Bytes free for an unprivileged writer on the file system of `dir`; `None` where the system
/// does not say.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a properly sized, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The probe file [`check_writable`] writes and removes.
pub const PROBE_FILE: &str = ".write-probe";

/// Checks that files can be made, written, synced and removed in `dir` (made if missing), as a
/// run does, before it starts.
pub fn check_writable(dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError::new("create", dir, e))?;
    let probe = dir.join(PROBE_FILE);
    let result = write_atomic(&probe, &[0u8; 4096]);
    let _ = std::fs::remove_file(&probe);
    result
}

/// Test hooks, read from the environment; documented in README.md ("Test hooks"). Each names
/// a point and, after `#`, which time the process reaches it (the first by default).
pub const PAUSE_ENV: &str = "RESMOOTH_TEST_PAUSE";
/// With [`PAUSE_ENV`]: the file written (holding the point's name) when the pause begins.
pub const PAUSE_MARKER_ENV: &str = "RESMOOTH_TEST_PAUSE_MARKER";
/// With [`PAUSE_ENV`]: seconds the pause lasts (default 3600).
pub const PAUSE_SECS_ENV: &str = "RESMOOTH_TEST_PAUSE_SECS";
/// `<file name>[#n]`: the n-th write to a file of that name fails as on a full disk (ENOSPC).
pub const ENOSPC_ENV: &str = "RESMOOTH_TEST_ENOSPC";

static REACHED: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether `spec` (`<name>[#n]`, from the variable `var`) names this, the n-th, arrival at `point`.
fn hook_fires(var: &str, point: &str) -> bool {
    let Ok(spec) = std::env::var(var) else { return false };
    let (name, nth) = match spec.rsplit_once('#') {
        Some((name, n)) => (name, n.parse::<usize>().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if name != point {
        return false;
    }
    let mut reached = REACHED.lock().unwrap_or_else(|e| e.into_inner());
    let count = reached.entry(format!("{var}={point}")).or_insert(0);
    *count += 1;
    *count == nth
}

/// A test hook: when `RESMOOTH_TEST_PAUSE` names `point`, the process writes the point's name
/// to `RESMOOTH_TEST_PAUSE_MARKER` and sleeps, so that a test can kill or signal it exactly
/// there. Points: `step` (after a training step), `eval` (before an evaluation batch), `detect`
/// (after a detection batch), `write:<file name>` (inside an atomic write: the data is written,
/// the file not yet renamed into place). Without the variable it does nothing.
pub fn test_point(point: &str) {
    if !hook_fires(PAUSE_ENV, point) {
        return;
    }
    if let Ok(marker) = std::env::var(PAUSE_MARKER_ENV) {
        let _ = std::fs::write(marker, point);
    }
    let secs = std::env::var(PAUSE_SECS_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(3600.0);
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
}

/// A test hook: the error of a full disk when `RESMOOTH_TEST_ENOSPC` names this write.
fn injected_failure(path: &Path) -> Option<std::io::Error> {
    hook_fires(ENOSPC_ENV, &file_name(path)).then(|| std::io::Error::from_raw_os_error(libc::ENOSPC))
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
