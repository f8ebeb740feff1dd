//! How fast the input pipeline makes training batches, and how much memory the process holds:
//! what `resmooth bench data` reports and `benches/data.rs` prints. The batches come from a
//! [`Loader`] over any [`BatchSource`] (images in memory, or files streamed), epoch after epoch,
//! as training takes them.

use crate::data::DataError;
use crate::pipeline::{BatchSource, EpochPlan, Loader, Part, Views};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one measurement of the loader gave.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LoaderRate {
    /// Images in the timed batches (each view counts: a batch of both views holds 2B images).
    pub images: usize,
    /// Timed batches (the first batch, which starts the pool and the decoders, is not timed).
    pub batches: usize,
    /// Wall seconds of the timed batches.
    pub seconds: f64,
    /// User + system CPU seconds of the process over the same time.
    pub cpu_seconds: f64,
}

impl LoaderRate {
    /// Images per second of wall time.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds
    }

    /// Images per CPU-second (what one core makes, whatever the load of the machine).
    pub fn images_per_cpu_second(&self) -> f64 {
        self.images as f64 / self.cpu_seconds
    }
}

/// User + system CPU seconds of this process so far.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The peak resident memory of this process in bytes: `VmHWM` of /proc/self/status, else
/// getrusage's `ru_maxrss` (kilobytes on Linux).
pub fn peak_resident_bytes() -> u64 {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    });
    from_proc.unwrap_or_else(|| {
        // SAFETY: getrusage only fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        u.ru_maxrss.max(0) as u64 * 1024
    })
}

/// The machine's load averages over 1, 5 and 15 minutes (/proc/loadavg), when known.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text.split_whitespace().take(3).filter_map(|t| t.parse().ok()).collect();
    <[f64; 3]>::try_from(v).ok()
}

/// Takes batches of `views` of `batch_size` samples from `source`, made by a pool of `threads`
/// workers with training's prefetch depth, over shuffled epochs one after the other, for
/// `seconds` after a first untimed batch (at least one batch is timed). An error of the source
/// (a file that cannot be read) ends the measurement with it.
pub fn loader_rate(
    source: Arc<dyn BatchSource>,
    views: Views,
    batch_size: usize,
    threads: usize,
    seconds: f64,
) -> Result<LoaderRate, DataError> {
    if source.is_empty() || batch_size == 0 || threads == 0 || !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(DataError::Invalid(format!(
            "a loader measurement needs samples, a batch size and threads of at least 1 and finite seconds \
             (got {} samples, batch {batch_size}, {threads} threads, {seconds} s)",
            source.len()
        )));
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| DataError::Invalid(format!("cannot start {threads} worker threads: {e}")))?,
    );
    let mut warm: Option<(Instant, f64)> = None;
    let (mut images, mut batches) = (0usize, 0usize);
    let done = |warm: &Option<(Instant, f64)>, batches: usize| {
        warm.as_ref().is_some_and(|(t, _)| batches > 0 && t.elapsed().as_secs_f64() >= seconds)
    };
    let mut epoch = 0u64;
    while !done(&warm, batches) {
        epoch += 1;
        let plan = EpochPlan { seed: 0, epoch, batch_size, shuffle: true, drop_last: false, views, part: Part::WHOLE };
        let mut loader = Loader::start_source(source.clone(), plan, pool.clone(), 3, 0);
        while let Some(b) = loader.try_next_batch()? {
            if warm.is_none() {
                warm = Some((Instant::now(), cpu_seconds()));
            } else {
                images += b.len();
                batches += 1;
            }
            loader.recycle(b);
            if done(&warm, batches) {
                break;
            }
        }
    }
    let (start, cpu0) = warm.unwrap_or((Instant::now(), cpu_seconds()));
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    Ok(LoaderRate { images, batches, seconds: elapsed.as_secs_f64(), cpu_seconds: cpu_seconds() - cpu0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Augmenter;
    use crate::config::{AugName, DatasetName};
    use crate::pipeline::InMemory;

    #[test]
    fn counts_every_view_of_whole_batches() {
        let set = Arc::new(crate::data::synthetic_set(10, 0));
        let aug = Arc::new(Augmenter::new(AugName::Default, 0, 0, 0, DatasetName::Cifar10));
        let source: Arc<dyn BatchSource> = Arc::new(InMemory { set, aug });
        let r = loader_rate(source.clone(), Views::Both, 10, 2, 0.05).unwrap();
        assert!(r.batches >= 1 && r.images == r.batches * 20, "{r:?}");
        assert!(r.images_per_second() > 0.0 && r.seconds >= 0.05);
        assert!(loader_rate(source, Views::Both, 0, 1, 1.0).is_err());
        assert!(peak_resident_bytes() > 1 << 20);
    }
}
