//! How long-running library work tells the user what it is doing without printing itself: the
//! commands hand it a [`Progress`] (terminal bars, log lines); tests and benchmarks a [`Silent`].

/// Receives what a download, a detection pass or a training run is doing.
pub trait Progress {
    /// A one-line notice: a resumed run, the baseline chosen, a retried download.
    fn note(&mut self, text: &str);
    /// A piece of work of `total` units (`None`: unknown) starts, `done` of them already done
    /// (a resumed download).
    fn start(&mut self, what: &str, total: Option<u64>, done: u64, unit: Unit);
    /// `done` units of the current piece of work are finished; `status` is a short summary of
    /// where it stands (loss, rate).
    fn advance(&mut self, done: u64, status: &str);
    /// The current piece of work ended.
    fn finish(&mut self);
    /// Whether the user asked the work to stop (Ctrl-C, SIGTERM): long work checks it between
    /// steps and ends early, keeping what can be resumed.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// What the units of a piece of work are, so they can be shown as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Training or evaluation steps, batches, views.
    Steps,
    /// Bytes of a transfer.
    Bytes,
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn note(&mut self, _: &str) {}
    fn start(&mut self, _: &str, _: Option<u64>, _: u64, _: Unit) {}
    fn advance(&mut self, _: u64, _: &str) {}
    fn finish(&mut self) {}
}
