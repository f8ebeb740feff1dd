//! What the commands show on the terminal while library work runs: progress bars (drawn only
//! on a terminal), notices on stderr, and the per-epoch lines of training on stdout. When stderr
//! is not a terminal (a cluster job, nohup, CI) there is no bar: a progress line is printed every
//! [`LINE_EVERY`] instead (`RESMOOTH_PROGRESS_SECONDS` overrides it), so the output of a long
//! epoch or detection pass never goes silent for minutes.

use indicatif::{ProgressBar, ProgressStyle};
use resmooth::engine::TrainObserver;
use resmooth::progress::{Progress, Unit};
use resmooth::report::EpochMetrics;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Set by the first SIGINT (Ctrl-C) or SIGTERM once [`Terminal::stop_on_signals`] is called.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Whether a stop signal arrived.
pub fn stop_signalled() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How often a progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(30);

/// The variable that sets the seconds between progress lines (e.g. 0: a line per step).
pub const LINE_EVERY_ENV: &str = "RESMOOTH_PROGRESS_SECONDS";

/// The terminal: one progress bar at a time, notices and epoch lines printed above it; or, off
/// a terminal, timed progress lines.
pub struct Terminal {
    bar: Option<ProgressBar>,
    /// Off a terminal: the current piece of work and when its last line was printed.
    lines: Option<Lines>,
    /// `None` on a terminal; otherwise the time between progress lines.
    line_every: Option<Duration>,
    /// Shows nothing (a rank other than 0 of a distributed run: its errors are printed by `main`).
    quiet: bool,
}

/// The piece of work that progress lines describe.
struct Lines {
    what: String,
    total: Option<u64>,
    unit: Unit,
    started: Instant,
    last: Instant,
}

impl Default for Terminal {
    fn default() -> Self {
        let line_every = (!std::io::stderr().is_terminal()).then(|| {
            std::env::var(LINE_EVERY_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map_or(LINE_EVERY, Duration::from_secs_f64)
        });
        Terminal { bar: None, lines: None, line_every, quiet: false }
    }
}

/// `1h02m03s`, `4m05s` or `6s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// One progress line: what, how far, how long, and the status.
fn progress_line(l: &Lines, done: u64, status: &str) -> String {
    let elapsed = l.started.elapsed();
    let count = |v: u64| match l.unit {
        Unit::Steps => v.to_string(),
        Unit::Bytes => format!("{:.1} MB", v as f64 / 1e6),
    };
    let mut line = format!("{}: {}", l.what, count(done));
    if let Some(total) = l.total {
        line += &format!("/{} ({:.0}%)", count(total), 100.0 * done as f64 / total.max(1) as f64);
        if done > 0 && done < total {
            let left = elapsed.mul_f64((total - done) as f64 / done as f64);
            line += &format!(", {} elapsed, {} left", duration(elapsed), duration(left));
        } else {
            line += &format!(", {} elapsed", duration(elapsed));
        }
    } else {
        line += &format!(", {} elapsed", duration(elapsed));
    }
    if !status.is_empty() {
        line += &format!(", {status}");
    }
    line
}

impl Terminal {
    /// The terminal of a command that stops cleanly on a signal: the first SIGINT or SIGTERM
    /// asks the library work to stop at its next step (a training run saves a checkpoint
    /// first); a second one ends the process at once (status 128 + the signal).
    pub fn stop_on_signals() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM] {
            // registered first, so it sees the flag as the previous signal left it
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&STOP))?;
            signal_hook::flag::register(signal, Arc::clone(&STOP))?;
        }
        Ok(Terminal::default())
    }

    /// This terminal showing nothing, but still stopping on signals.
    pub fn quiet(self) -> Self {
        Terminal { quiet: true, ..self }
    }

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
        if !self.quiet {
            self.say(text.trim_end());
        }
    }

    fn start(&mut self, what: &str, total: Option<u64>, done: u64, unit: Unit) {
        self.finish();
        if self.quiet {
            return;
        }
        if self.line_every.is_some() {
            let now = Instant::now();
            self.lines = Some(Lines { what: what.trim().to_string(), total, unit, started: now, last: now });
            return;
        }
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
        if let (Some(l), Some(every)) = (&mut self.lines, self.line_every) {
            if l.last.elapsed() >= every {
                l.last = Instant::now();
                eprintln!("{}", progress_line(l, done, status));
            }
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if !status.is_empty() {
                bar.set_message(status.to_string());
            }
        }
    }

    fn finish(&mut self) {
        self.lines = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn stop_requested(&self) -> bool {
        stop_signalled()
    }
}

impl TrainObserver for Terminal {
    fn epoch_end(&mut self, metrics: &EpochMetrics, epochs: usize) {
        if !self.quiet {
            println!("{}", metrics.line(epochs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_how_far_how_long_and_how_it_goes() {
        let started = Instant::now() - Duration::from_secs(100);
        let l = Lines { what: "train   3/200".into(), total: Some(200), unit: Unit::Steps, started, last: started };
        let line = progress_line(&l, 50, "loss 1.2345");
        assert!(line.starts_with("train   3/200: 50/200 (25%), 1m40s elapsed, 5m0"), "{line}");
        assert!(line.ends_with("left, loss 1.2345"), "{line}");
        let bytes = Lines { what: "cifar10".into(), total: None, unit: Unit::Bytes, started, last: started };
        assert!(progress_line(&bytes, 2_500_000, "").starts_with("cifar10: 2.5 MB, 1m40s elapsed"));
        assert_eq!(duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
