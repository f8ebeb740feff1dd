//! TensorBoard event files: the protobuf messages TensorBoard reads (TensorFlow's `Event`,
//! `Summary`, `HistogramProto`; the fields we write, with their field numbers), TFRecord framing
//! with masked CRC32C, a writer with the reference's tags, and a reader that checks the framing.
//!
//! A run writes `events.out.tfevents.<time>.<host>.<pid>.<n>` into its folder, so the reference's
//! `logs/<tag>/` and ours sit side by side in one TensorBoard. The tags ([`tags`], for the writer
//! and the report that reads them back) are the reference's (see `train.py`): `train/1.train_acc`
//! (and `_ID`, `_OOD` with a GMM), `train/2.train_loss`, `train/3.train_loss_origin` (and `_ce`,
//! `_uniform`), `train/4.train_loss_augmentation` (and `_ce`, `_uniform` or `_kl`), the images
//! `train/1.origin_image`, `train/2.augmented_image` and the figure `train/3.loss_histogram`, the
//! histogram `train/4.smoothness`, `test/1.test_acc`, `test/2.test_loss` (and `DAOOD/…`,
//! `DAID/…` with `--evalDA`); and ours: the log-loss histograms `train/3.log_loss_origin` and
//! `train/4.log_loss_augmentation`, and `resmooth/…` scalars (lr, top-5, images/s, times, OOD
//! fraction, mean smoothing).

use super::epoch::{EpochRecord, RgbImage};
use super::{figure, ReportError};
use crate::io::{write_atomic, FileError};
use crate::run_folder::EVENTS_PREFIX;
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The tags a run writes, one constant each: the writer and the report both use these.
pub mod tags {
    /// Training top-1 (the reference's).
    pub const TRAIN_ACC: &str = "train/1.train_acc";
    /// Training top-1 on the views the GMM judges ID (the reference's).
    pub const TRAIN_ACC_ID: &str = "train/1.train_acc_ID";
    /// Training top-1 on the views the GMM judges OOD (the reference's).
    pub const TRAIN_ACC_OOD: &str = "train/1.train_acc_OOD";
    /// Training loss (the reference's).
    pub const TRAIN_LOSS: &str = "train/2.train_loss";
    /// Loss of the original views; its terms follow as `<tag>_<term>` (the reference's).
    pub const TRAIN_LOSS_ORIGIN: &str = "train/3.train_loss_origin";
    /// Loss of the augmented views; its terms follow as `<tag>_<term>` (the reference's).
    pub const TRAIN_LOSS_AUGMENTATION: &str = "train/4.train_loss_augmentation";
    /// The original view of the shown sample (the reference's).
    pub const ORIGIN_IMAGE: &str = "train/1.origin_image";
    /// The augmented view of the shown sample (the reference's).
    pub const AUGMENTED_IMAGE: &str = "train/2.augmented_image";
    /// The figure of both log-loss histograms (the reference's).
    pub const LOSS_HISTOGRAM: &str = "train/3.loss_histogram";
    /// The label smoothing of the augmented views, as a histogram (the reference's).
    pub const SMOOTHNESS: &str = "train/4.smoothness";
    /// The log-losses of the original views, as a histogram (ours).
    pub const LOG_LOSS_ORIGIN: &str = "train/3.log_loss_origin";
    /// The log-losses of the augmented views, as a histogram (ours).
    pub const LOG_LOSS_AUGMENTATION: &str = "train/4.log_loss_augmentation";
    /// Test top-1 (the reference's).
    pub const TEST_ACC: &str = "test/1.test_acc";
    /// Test loss (the reference's).
    pub const TEST_LOSS: &str = "test/2.test_loss";
    /// `--evalDA`: top-1 on the DAOOD tree (the reference's).
    pub const DAOOD_TEST_ACC: &str = "DAOOD/1.test_acc";
    /// `--evalDA`: loss on the DAOOD tree (the reference's).
    pub const DAOOD_TEST_LOSS: &str = "DAOOD/2.test_loss";
    /// `--evalDA`: top-1 on the DAID tree (the reference's).
    pub const DAID_TEST_ACC: &str = "DAID/1.test_acc";
    /// `--evalDA`: loss on the DAID tree (the reference's).
    pub const DAID_TEST_LOSS: &str = "DAID/2.test_loss";
    /// The epoch's learning rate (ours).
    pub const LR: &str = "resmooth/lr";
    /// Training top-5 (ours).
    pub const TRAIN_TOP5: &str = "resmooth/train_top5";
    /// Test top-5 (ours).
    pub const TEST_TOP5: &str = "resmooth/test_top5";
    /// Training images per second (ours).
    pub const IMAGES_PER_SEC: &str = "resmooth/images_per_sec";
    /// Wall time of the epoch (ours).
    pub const EPOCH_SECONDS: &str = "resmooth/epoch_seconds";
    /// Time the training loop waited for data (ours).
    pub const DATA_WAIT_SECONDS: &str = "resmooth/data_wait_seconds";
    /// The OOD share of the augmented views (ours).
    pub const OOD_FRACTION: &str = "resmooth/ood_fraction";
    /// The mean label smoothing of the augmented views (ours).
    pub const MEAN_SMOOTH: &str = "resmooth/mean_smooth";

    /// The tag of loss term `term` of the part tagged `part` (`train/3.train_loss_origin_ce`).
    pub fn term(part: &str, term: &str) -> String {
        format!("{part}_{term}")
    }
}

/// TensorFlow's `Event` (tensorflow/core/util/event.proto), the fields TensorBoard reads here.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// What an [`Event`] holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The first event of a file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// TensorFlow's `Summary` (tensorflow/core/framework/summary.proto).
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`: one tagged value.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(oneof = "ValueKind", tags = "2, 4, 5")]
    pub value: Option<ValueKind>,
}

/// The kinds of value we write.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
    #[prost(message, tag = "5")]
    Histo(HistogramProto),
}

/// `Summary.Image`: an encoded PNG.
#[derive(Clone, PartialEq, Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 3: RGB.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `HistogramProto`: bucket `i` holds the values up to `bucket_limit[i]` (TensorBoard takes the
/// first bucket to start at `min` and the last to end at `max`).
#[derive(Clone, PartialEq, Message)]
pub struct HistogramProto {
    #[prost(double, tag = "1")]
    pub min: f64,
    #[prost(double, tag = "2")]
    pub max: f64,
    #[prost(double, tag = "3")]
    pub num: f64,
    #[prost(double, tag = "4")]
    pub sum: f64,
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// Buckets of the histograms we write (TensorBoard rebins them for display).
pub const HISTOGRAM_BUCKETS: usize = 64;

impl HistogramProto {
    /// The histogram of the finite `values` in [`HISTOGRAM_BUCKETS`] equal buckets from their
    /// minimum to their maximum; `None` when there is none.
    pub fn of(values: &[f32]) -> Option<Self> {
        let values: Vec<f64> = values.iter().map(|&v| v as f64).filter(|v| v.is_finite()).collect();
        let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if values.is_empty() {
            return None;
        }
        let n = if max > min { HISTOGRAM_BUCKETS } else { 1 };
        let width = (max - min) / n as f64;
        let mut bucket = vec![0.0; n];
        for &v in &values {
            let i = if width > 0.0 { ((v - min) / width) as usize } else { 0 };
            bucket[i.min(n - 1)] += 1.0;
        }
        let mut bucket_limit: Vec<f64> = (1..=n).map(|i| min + i as f64 * width).collect();
        bucket_limit[n - 1] = max;
        Some(HistogramProto {
            min,
            max,
            num: values.len() as f64,
            sum: values.iter().sum(),
            sum_squares: values.iter().map(|v| v * v).sum(),
            bucket_limit,
            bucket,
        })
    }
}

/// An event file that is not a sequence of intact TFRecords.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    /// A record's length or data does not match its CRC32C.
    #[error("{} is corrupt at byte {offset}: {what} does not match its checksum; delete the file", path.display())]
    Checksum { path: PathBuf, offset: u64, what: &'static str },
    /// A record is not an `Event` message.
    #[error("{} holds a record at byte {offset} that is not a TensorBoard event; delete the file", path.display())]
    Decode {
        path: PathBuf,
        offset: u64,
        #[source]
        source: prost::DecodeError,
    },
}

/// CRC32C as TFRecord stores it: rotated and offset ("masked").
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The events of a file and how much of it they cover: a last record cut short (a writer
/// stopped mid-record) is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFile {
    pub events: Vec<Event>,
    /// Bytes of intact records.
    pub intact: u64,
    /// Bytes after them (a record cut short).
    pub cut: u64,
}

/// Reads the events of `path`, checking each record's CRCs.
pub fn read_events(path: &Path) -> Result<EventFile, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| FileError::new("read", path, e))?;
    let mut events = Vec::new();
    let mut at = 0usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("four bytes"));
    let corrupt = |offset: usize, what| EventFileError::Checksum { path: path.into(), offset: offset as u64, what };
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        if masked_crc(len_bytes) != u32_at(at + 8) {
            return Err(corrupt(at, "the record length").into());
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("eight bytes"));
        let end = at as u64 + 12 + len + 4;
        if end > bytes.len() as u64 {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len as usize];
        if masked_crc(data) != u32_at(at + 12 + len as usize) {
            return Err(corrupt(at, "the record data").into());
        }
        let event = Event::decode(data).map_err(|source| EventFileError::Decode {
            path: path.into(),
            offset: at as u64,
            source,
        })?;
        events.push(event);
        at = end as usize;
    }
    Ok(EventFile { events, intact: at as u64, cut: (bytes.len() - at) as u64 })
}

/// The event files in `dir`, by name (TensorBoard's order: by creation time).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(FileError::new("list", dir, e).into()),
    };
    for entry in entries {
        let path = entry.map_err(|e| FileError::new("list", dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(EVENTS_PREFIX) && !name.ends_with(".partial") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Drops, from every event file in `dir`, the events of steps after `last` (epochs a resumed run
/// trains again) and a last record cut short; each file changed is replaced atomically, or
/// removed when no summary is left in it. Returns the number of summary events dropped.
pub fn keep_steps(dir: &Path, last: i64) -> Result<usize, ReportError> {
    let mut dropped = 0;
    for path in event_files(dir)? {
        let file = read_events(&path)?;
        let keep: Vec<&Event> = file.events.iter().filter(|e| e.step <= last).collect();
        if keep.len() == file.events.len() && file.cut == 0 {
            continue;
        }
        dropped += file.events.len() - keep.len();
        if keep.iter().all(|e| !matches!(e.what, Some(What::Summary(_)))) {
            std::fs::remove_file(&path).map_err(|e| FileError::new("remove", &path, e))?;
            continue;
        }
        let bytes: Vec<u8> = keep.iter().flat_map(|e| frame(&e.encode_to_vec())).collect();
        write_atomic(&path, &bytes)?;
    }
    Ok(dropped)
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Appends events to a new event file.
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl EventWriter {
    /// A new event file in `dir` (made if missing), named as TensorFlow names them, starting
    /// with the file-version event.
    pub fn create(dir: &Path) -> Result<Self, ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| FileError::new("create", dir, e))?;
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{EVENTS_PREFIX}{:010}.{}.{}.{n}", now() as u64, host_name(), std::process::id());
        let path = dir.join(name);
        let file = std::fs::File::create_new(&path).map_err(|e| FileError::new("create", &path, e))?;
        let mut writer = EventWriter { path, file: std::io::BufWriter::new(file) };
        writer.write(&Event { wall_time: now(), step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &Event) -> Result<(), ReportError> {
        let record = frame(&event.encode_to_vec());
        Ok(self.file.write_all(&record).map_err(|e| FileError::new("write", &self.path, e))?)
    }

    fn value(&mut self, step: usize, tag: &str, value: ValueKind) -> Result<(), ReportError> {
        let summary = Summary { value: vec![SummaryValue { tag: tag.into(), value: Some(value) }] };
        self.write(&Event { wall_time: now(), step: step as i64, what: Some(What::Summary(summary)) })
    }

    /// A scalar (stored as float32, as TensorBoard's `simple_value`).
    pub fn scalar(&mut self, step: usize, tag: &str, value: f64) -> Result<(), ReportError> {
        self.value(step, tag, ValueKind::SimpleValue(value as f32))
    }

    /// An RGB image, stored as PNG.
    pub fn image(&mut self, step: usize, tag: &str, image: &RgbImage) -> Result<(), ReportError> {
        let image = Image {
            height: image.height as i32,
            width: image.width as i32,
            colorspace: 3,
            encoded_image_string: image.png(),
        };
        self.value(step, tag, ValueKind::Image(image))
    }

    /// The histogram of `values` (see [`HistogramProto::of`]); nothing when none is finite.
    pub fn histogram(&mut self, step: usize, tag: &str, values: &[f32]) -> Result<(), ReportError> {
        match HistogramProto::of(values) {
            Some(h) => self.value(step, tag, ValueKind::Histo(h)),
            None => Ok(()),
        }
    }

    /// Writes what is buffered through to the disk.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        let path = &self.path;
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_data())
            .map_err(|e| FileError::new("write", path, e))?;
        Ok(())
    }

    /// Writes one epoch under the reference's tags and ours (see the module documentation) and
    /// flushes the file.
    pub fn epoch(&mut self, record: &EpochRecord) -> Result<(), ReportError> {
        let m = record.metrics;
        let step = m.epoch;
        self.scalar(step, tags::TRAIN_ACC, m.train_top1)?;
        if let Some(g) = m.gmm {
            for (tag, value) in [(tags::TRAIN_ACC_ID, g.train_top1_id), (tags::TRAIN_ACC_OOD, g.train_top1_ood)] {
                if let Some(v) = value {
                    self.scalar(step, tag, v)?;
                }
            }
        }
        self.scalar(step, tags::TRAIN_LOSS, m.train_loss)?;
        if let Some(s) = record.stats {
            for (prefix, part) in
                [(tags::TRAIN_LOSS_ORIGIN, &s.origin), (tags::TRAIN_LOSS_AUGMENTATION, &s.augmentation)]
            {
                self.scalar(step, prefix, part.loss)?;
                for (name, value) in &part.terms {
                    self.scalar(step, &tags::term(prefix, name), *value)?;
                }
            }
        }
        if let Some(v) = record.views {
            self.image(step, tags::ORIGIN_IMAGE, &v.original)?;
            self.image(step, tags::AUGMENTED_IMAGE, &v.augmented)?;
        }
        if let Some(s) = record.stats {
            let (origin, augmentation) = (&s.origin.log_losses, &s.augmentation.log_losses);
            self.image(step, tags::LOSS_HISTOGRAM, &figure::loss_histogram(origin, augmentation))?;
            self.histogram(step, tags::LOG_LOSS_ORIGIN, origin)?;
            self.histogram(step, tags::LOG_LOSS_AUGMENTATION, augmentation)?;
            self.histogram(step, tags::SMOOTHNESS, &s.smoothing)?;
        }
        self.scalar(step, tags::TEST_ACC, m.test_top1)?;
        self.scalar(step, tags::TEST_LOSS, m.test_loss)?;
        if let Some(d) = m.da {
            for (tag, value) in [
                (tags::DAOOD_TEST_ACC, d.daood_top1),
                (tags::DAOOD_TEST_LOSS, d.daood_loss),
                (tags::DAID_TEST_ACC, d.daid_top1),
                (tags::DAID_TEST_LOSS, d.daid_loss),
            ] {
                self.scalar(step, tag, value)?;
            }
        }
        for (tag, value) in [
            (tags::LR, m.lr),
            (tags::TRAIN_TOP5, m.train_top5),
            (tags::TEST_TOP5, m.test_top5),
            (tags::IMAGES_PER_SEC, m.images_per_sec),
            (tags::EPOCH_SECONDS, m.seconds),
            (tags::DATA_WAIT_SECONDS, m.data_wait_seconds),
        ] {
            self.scalar(step, tag, value)?;
        }
        if let Some(g) = m.gmm {
            self.scalar(step, tags::OOD_FRACTION, g.ood_fraction)?;
            self.scalar(step, tags::MEAN_SMOOTH, g.mean_smooth)?;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_tfrecord() {
        // the CRC-32C check value, and masks as TensorBoard's own `masked_crc32c` gives them
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(&0u64.to_le_bytes()), 0x0798_0329);
        assert_eq!(masked_crc(b"hello"), 0x191c_1fbb);
    }

    #[test]
    fn histograms_count_every_finite_value_once() {
        let values = [0.0f32, 1.0, 1.0, 2.0, 4.0, f32::NAN, f32::INFINITY];
        let h = HistogramProto::of(&values).unwrap();
        assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (0.0, 4.0, 5.0, 8.0, 22.0));
        assert_eq!(h.bucket.len(), HISTOGRAM_BUCKETS);
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!(h.bucket_limit.last(), Some(&4.0));
        assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((h.bucket[0], h.bucket[HISTOGRAM_BUCKETS - 1]), (1.0, 1.0));
        let one = HistogramProto::of(&[0.3, 0.3]).unwrap();
        assert_eq!((one.bucket, one.bucket_limit), (vec![2.0], vec![0.3f32 as f64]));
        assert!(HistogramProto::of(&[f32::NAN]).is_none());
    }

    #[test]
    fn resumed_logs_drop_later_steps_and_cut_records_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        for step in 1..=3 {
            w.scalar(step, "a", step as f64).unwrap();
        }
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        // a writer stopped in the middle of a record
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&frame(b"partial")[..9]);
        std::fs::write(&path, &bytes).unwrap();
        let file = read_events(&path).unwrap();
        assert_eq!((file.events.len(), file.cut), (4, 9));
        assert_eq!(keep_steps(dir.path(), 2).unwrap(), 1);
        let steps: Vec<i64> = read_events(&path).unwrap().events.iter().map(|e| e.step).collect();
        assert_eq!(steps, [0, 1, 2]);
        assert_eq!(read_events(&path).unwrap().cut, 0);
        // a flipped byte is found and the file named
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = keep_steps(dir.path(), 9).unwrap_err().to_string();
        assert!(err.contains("events.out.tfevents.") && err.contains("checksum"), "{err}");
        // a restarted run (nothing kept) removes the files
        std::fs::remove_file(&path).unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalar(1, "a", 1.0).unwrap();
        w.flush().unwrap();
        assert_eq!(keep_steps(dir.path(), 0).unwrap(), 1);
        assert!(event_files(dir.path()).unwrap().is_empty());
    }
}
