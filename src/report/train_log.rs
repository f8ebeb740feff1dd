//! `train.log`: the plain-text log of a run beside its progress bar: each session's start, what
//! it noted (a resumed run, the baseline chosen, the detection pass) and one line per epoch, each
//! entry stamped with the UTC time. Sessions append; nothing is rewritten.

use super::ReportError;
use crate::io::append_line;
use std::path::{Path, PathBuf};

/// The log file of one run.
#[derive(Debug, Clone)]
pub struct TrainLog {
    path: PathBuf,
}

impl TrainLog {
    /// The log at `path`; its folder is made if missing.
    pub fn open(path: &Path) -> Result<Self, ReportError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::io::FileError::new("create", dir, e))?;
        }
        Ok(TrainLog { path: path.to_path_buf() })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `text` stamped with the time; its further lines are indented under the first.
    pub fn line(&self, text: &str) -> Result<(), ReportError> {
        let stamp = utc_stamp(std::time::SystemTime::now());
        let indent = format!("\n{}", " ".repeat(stamp.len() + 1));
        let body = text.trim_end().replace('\n', &indent);
        Ok(append_line(&self.path, &format!("{stamp} {body}"))?)
    }
}

/// `YYYY-MM-DD HH:MM:SSZ` of a time (UTC).
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_civil_utc_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "1970-01-01 00:00:00Z");
        // 2024-02-29 (a leap day) 13:45:07 and 2000-03-01 00:00:00
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_214_307)), "2024-02-29 13:45:07Z");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(951_868_800)), "2000-03-01 00:00:00Z");
    }

    #[test]
    fn lines_append_with_stamps_and_indented_continuations() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrainLog::open(&dir.path().join("run/train.log")).unwrap();
        log.line("first").unwrap();
        log.line("two\nlines\n").unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("Z first") && lines[1].ends_with("Z two"), "{text}");
        assert_eq!(lines[2], format!("{}lines", " ".repeat(21)));
    }
}
