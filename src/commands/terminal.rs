//! What the commands show on the terminal while library work runs: progress bars (drawn only
//! on a terminal), notices on stderr, and the per-epoch lines of training on stdout.

use indicatif::{ProgressBar, ProgressStyle};
use resmooth::engine::TrainObserver;
use resmooth::progress::{Progress, Unit};
use resmooth::report::EpochMetrics;

/// The terminal: one progress bar at a time, notices and epoch lines printed above it.
#[derive(Default)]
pub struct Terminal {
    bar: Option<ProgressBar>,
}

impl Terminal {
    /// Prints `text` on stderr without tearing the bar.
    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

fn style(unit: Unit, total: Option<u64>) -> ProgressStyle {
    let template = match (unit, total) {
        (Unit::Steps, _) => "{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}",
        (Unit::Bytes, Some(_)) => "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        (Unit::Bytes, None) => "{prefix} {spinner} {bytes} {binary_bytes_per_sec}",
    };
    ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ")
}

impl Progress for Terminal {
    fn note(&mut self, text: &str) {
        self.say(text.trim_end());
    }

    fn start(&mut self, what: &str, total: Option<u64>, done: u64, unit: Unit) {
        self.finish();
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(style(unit, total));
        bar.set_prefix(what.to_string());
        bar.set_position(done);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: u64, status: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if !status.is_empty() {
                bar.set_message(status.to_string());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl TrainObserver for Terminal {
    fn epoch_end(&mut self, metrics: &EpochMetrics, epochs: usize) {
        println!("{}", metrics.line(epochs));
    }
}
