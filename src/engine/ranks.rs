//! A run trained by several processes (`torchrun`, Slurm's srun, any launcher): joining their
//! group from the launcher's environment on the right device, and what the epoch loop asks of
//! the group besides the step's own collectives: that every rank starts from the same place,
//! stops at the same step, and sums the epoch's metrics. Rank 0 alone writes the run's files;
//! the others hold nothing but the group.

use super::checkpoint::ResumeMeta;
use super::EngineError;
use crate::config::TrainConfig;
use crate::dist::{Dist, DistError, DistOptions, Launch};
use std::time::Duration;
use tch::{Kind, Tensor};

/// Joins the group `launch` describes for a run of `config`: on GPU `LOCAL_RANK` with NCCL
/// where CUDA is available (on GPU 0 when the launcher shows each process one GPU, as Slurm's
/// `--gpus-per-task` does), else on the CPU with gloo; every collective waits at most
/// `--dist-timeout`.
pub fn join(config: &TrainConfig, mut launch: Launch) -> Result<Dist, EngineError> {
    let cuda = tch::Cuda::is_available();
    if cuda {
        let count = tch::Cuda::device_count() as usize;
        launch.local_rank = match (launch.local_rank, count) {
            (local, count) if local < count => local,
            (_, 1) => 0,
            (local, count) => {
                return Err(DistError::BadVariable {
                    name: "LOCAL_RANK",
                    value: local.to_string(),
                    expected: format!(
                        "this machine shows {count} CUDA devices, 0..{}: start at most one process per GPU \
                         (torchrun --nproc-per-node {count})",
                        count - 1
                    ),
                }
                .into())
            }
        };
    }
    let timeout = Duration::from_secs(config.run.dist_timeout);
    Ok(Dist::join(launch, &DistOptions { timeout, cuda })?)
}

/// Whether this process writes the run's files: one process, or rank 0.
pub(super) fn primary(dist: Option<&Dist>) -> bool {
    dist.is_none_or(Dist::is_primary)
}

/// Whether to stop now: the user's stop (`mine`, this process's signal) as every rank agrees
/// on it, so that all stop at the same step (torchrun forwards a signal to every rank, but each
/// may be at another step when it arrives). One all-reduce of one number with several processes.
pub(super) fn stop_agreed(dist: Option<&Dist>, mine: bool) -> Result<bool, EngineError> {
    match dist {
        Some(d) => Ok(d.any(mine)?),
        None => Ok(mine),
    }
}

/// Checks that every rank resumes from where rank 0 does (the same epoch, batches and steps),
/// as they do when they read the same checkpoint; otherwise names the rank that differs.
pub(super) fn check_same_start(
    dist: &Dist,
    meta: &ResumeMeta,
    checkpoint: &std::path::Path,
) -> Result<(), EngineError> {
    let mine = |m: &ResumeMeta| {
        let (batches, steps) = m.partial.as_ref().map_or((0, 0), |p| (p.batches as i64, p.steps));
        [m.epoch as i64, batches, m.steps + steps]
    };
    let all = dist.all_gather(&Tensor::from_slice(&mine(meta)))?;
    let all = Vec::<i64>::try_from(&all.to_kind(Kind::Int64).view([-1])).expect("a 1-D i64 tensor");
    let rows: Vec<&[i64]> = all.chunks(3).collect();
    match rows.iter().position(|r| r != &rows[0]) {
        None => Ok(()),
        Some(rank) => Err(EngineError::RanksDisagree {
            rank,
            rank_at: position(rows[rank]),
            primary_at: position(rows[0]),
            checkpoint: checkpoint.to_path_buf(),
        }),
    }
}

/// Where a rank's `[epoch, batches, steps]` says it starts, in words.
fn position(row: &[i64]) -> String {
    match row {
        [0, 0, _] => "a fresh start".into(),
        [epoch, 0, _] => format!("after epoch {epoch}"),
        [epoch, batches, _] => format!("in epoch {} after {batches} batches", epoch + 1),
        _ => format!("{row:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_is_primary_and_stops_when_asked() {
        assert!(primary(None));
        assert!(stop_agreed(None, true).unwrap());
        assert!(!stop_agreed(None, false).unwrap());
        assert_eq!(position(&[0, 0, 0]), "a fresh start");
        assert_eq!(position(&[3, 0, 30]), "after epoch 3");
        assert_eq!(position(&[3, 5, 35]), "in epoch 4 after 5 batches");
    }
}
