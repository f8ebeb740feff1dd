//! HTTP downloads into `NAME.part`, resumed where a previous try stopped, MD5-checked, then
//! renamed to `NAME`: a file under its final name is always whole and verified.

use super::DataError;
use crate::progress::{Progress, Unit};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tries per download before giving up on a connection that keeps dropping.
const ATTEMPTS: usize = 3;

/// MD5 of a file, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Why one transfer stopped.
enum Stop {
    /// The connection dropped mid-body: worth another try that resumes.
    Dropped(String),
    /// The server sent something the part file cannot continue with: start over.
    Restart(String),
    /// No point retrying (host unreachable, HTTP error, local disk error).
    Fatal(DataError),
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(Duration::from_secs(10)))
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("resmooth/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`, checking that its MD5 is `md5`. A previous `dest.part` is resumed
/// (HTTP Range) or, if the server cannot resume, restarted. `hint` says how to get the file by
/// hand and ends every error about the network. The transfer's bytes and retries are reported
/// to `progress`.
pub fn download(url: &str, md5: &str, dest: &Path, hint: &str, progress: &mut dyn Progress) -> Result<(), DataError> {
    let part = part_path(dest);
    let agent = agent();
    let mut fresh_try_done = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resumed = match transfer(&agent, url, &part, hint, progress) {
            Ok(resumed) => resumed,
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::Restart(why)) if attempt < ATTEMPTS => {
                progress.note(&format!("{url}: {why}; starting the download over"));
                remove(&part)?;
                continue;
            }
            Err(Stop::Dropped(why)) if attempt < ATTEMPTS => {
                progress.note(&format!("{url}: {why}; resuming (try {} of {ATTEMPTS})", attempt + 1));
                std::thread::sleep(Duration::from_millis(500 * attempt as u64));
                continue;
            }
            Err(Stop::Dropped(why) | Stop::Restart(why)) => {
                return Err(DataError::Download {
                    url: url.into(),
                    what: format!(
                        "{why} after {ATTEMPTS} tries; the partial file {} is kept and the next run resumes it",
                        part.display()
                    ),
                    hint: hint.into(),
                })
            }
        };
        let got = md5_file(&part)?;
        if got == md5 {
            return std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e));
        }
        remove(&part)?;
        if resumed && !fresh_try_done {
            // the bytes kept from an earlier try may be stale: one clean restart before refusing
            progress.note(&format!(
                "{url}: the resumed file does not match its checksum; downloading it again from the start"
            ));
            fresh_try_done = true;
            attempt = 0;
            continue;
        }
        return Err(DataError::Checksum {
            path: dest.to_path_buf(),
            got,
            want: md5.into(),
            what: format!("the file served at {url} is not the official one (tampered, damaged or a different version); it was deleted"),
        });
    }
}

fn remove(path: &Path) -> Result<(), DataError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(path, e)),
        _ => Ok(()),
    }
}

/// First byte of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// One request; on success returns whether it continued an earlier part file.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    hint: &str,
    progress: &mut dyn Progress,
) -> Result<bool, Stop> {
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| {
        Stop::Fatal(DataError::Download {
            url: url.into(),
            what: format!("cannot reach the host ({e})"),
            hint: hint.into(),
        })
    })?;
    let status = response.status().as_u16();
    let start = match status {
        200 => 0,
        206 => {
            let from = response.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(range_start);
            if from != Some(have) {
                return Err(Stop::Restart(format!("the server resumed at byte {from:?} instead of {have}")));
            }
            have
        }
        416 => return Err(Stop::Restart("the partial file is longer than the file served".into())),
        _ => {
            return Err(Stop::Fatal(DataError::Download {
                url: url.into(),
                what: format!("the server answered HTTP {status}"),
                hint: hint.into(),
            }))
        }
    };
    let body_len = response.body().content_length();
    let total = body_len.map(|n| n + start);
    let disk = |e| Stop::Fatal(DataError::io(part, e));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(part).map_err(disk)?;
    if start == 0 {
        file.set_len(0).map_err(disk)?;
    }
    progress.start(url.rsplit('/').next().unwrap_or(url), total, start, Unit::Bytes);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.finish();
                file.flush().map_err(disk)?;
                return Err(Stop::Dropped(format!("connection lost after {} bytes ({e})", start + got)));
            }
        };
        file.write_all(&buf[..n]).map_err(disk)?;
        got += n as u64;
        progress.advance(start + got, "");
    }
    file.sync_all().map_err(disk)?;
    progress.finish();
    match body_len {
        Some(len) if got != len => {
            Err(Stop::Dropped(format!("connection closed after {} of {} bytes", start + got, start + len)))
        }
        _ => Ok(start > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn md5_of_known_content_and_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(md5_file(&path).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(part_path(&path), dir.path().join("abc.part"));
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("items 1-2/3"), None);
    }

    #[test]
    fn an_unreachable_host_fails_fast_with_the_hint() {
        // a port nobody listens on: connection refused at once
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let t = std::time::Instant::now();
        let err = download(&format!("http://127.0.0.1:{port}/f.bin"), "00", &dest, "put f.bin in DIR", &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot reach") && err.contains("put f.bin in DIR"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!dest.exists());
    }
}
