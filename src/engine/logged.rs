//! The logs a training run keeps in its folder beside what it shows: `train.log` gets every notice
//! and epoch line the observer gets, and the TensorBoard event file gets each epoch.

use super::{EngineError, TrainObserver};
use crate::config::TrainConfig;
use crate::progress::{Progress, Unit};
use crate::report::tensorboard::{keep_steps, EventWriter};
use crate::report::train_log::TrainLog;
use crate::report::{EpochMetrics, ReportError};
use std::path::Path;

/// An observer that also writes its notices and epoch lines to `train.log` (in the process that
/// writes the run's files). A failed write is kept and returned by [`Logged::check`].
pub(super) struct Logged<'a> {
    inner: &'a mut dyn TrainObserver,
    log: Option<TrainLog>,
    failed: Option<ReportError>,
}

impl<'a> Logged<'a> {
    /// Opens the log at `path` (none: a rank other than 0, which writes no file) and records the
    /// start of a session of `config`.
    pub(super) fn open(
        path: Option<&Path>,
        config: &TrainConfig,
        inner: &'a mut dyn TrainObserver,
    ) -> Result<Self, EngineError> {
        let Some(path) = path else { return Ok(Logged { inner, log: None, failed: None }) };
        let log = TrainLog::open(path)?;
        let json = serde_json::to_string(config).expect("a configuration serialises");
        log.line(&format!(
            "session start: resmooth {} (pid {})\nconfig {json}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ))?;
        Ok(Logged { inner, log: Some(log), failed: None })
    }

    fn write(&mut self, text: &str) {
        if let Some(Err(e)) = self.log.as_ref().map(|log| log.line(text)) {
            self.failed.get_or_insert(e);
        }
    }

    /// The first write to `train.log` that failed since the last check.
    pub(super) fn check(&mut self) -> Result<(), EngineError> {
        match self.failed.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Progress for Logged<'_> {
    fn note(&mut self, text: &str) {
        self.write(text);
        self.inner.note(text);
    }

    fn start(&mut self, what: &str, total: Option<u64>, done: u64, unit: Unit) {
        self.inner.start(what, total, done, unit);
    }

    fn advance(&mut self, done: u64, status: &str) {
        self.inner.advance(done, status);
    }

    fn finish(&mut self) {
        self.inner.finish();
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

impl TrainObserver for Logged<'_> {
    fn epoch_end(&mut self, metrics: &EpochMetrics, epochs: usize) {
        self.write(&metrics.line(epochs));
        self.inner.epoch_end(metrics, epochs);
    }
}

/// The run's new event file in `dir`, after dropping from the older ones the epochs after `epoch`
/// (those a resumed run trains again).
pub(super) fn open_events(dir: &Path, epoch: usize, progress: &mut dyn Progress) -> Result<EventWriter, EngineError> {
    let dropped = keep_steps(dir, epoch as i64)?;
    if dropped > 0 {
        progress.note(&format!("dropped {dropped} TensorBoard events of epochs after {epoch} (not in the checkpoint)"));
    }
    Ok(EventWriter::create(dir)?)
}
