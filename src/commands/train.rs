//! `resmooth train`: one training run (or `--only-eval`), with the reference's flags; under a
//! launcher (torchrun, srun: RANK, WORLD_SIZE, ... set), one of the processes training it
//! together, of which rank 0 alone shows more than errors.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::Result;
use resmooth::dist::Launch;
use resmooth::engine;

/// Runs `resmooth train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    let launch = Launch::from_env()?;
    let mut terminal = Terminal::stop_on_signals()?;
    if launch.as_ref().is_some_and(|l| l.rank != 0) {
        terminal = terminal.quiet();
    }
    if config.run.only_eval {
        if launch.as_ref().is_some_and(|l| l.rank != 0) {
            return Ok(()); // one evaluation is enough: rank 0's
        }
        let (weights, report) = engine::evaluate_weights(&config, &mut terminal)?;
        let t = report.test;
        let mut line =
            serde_json::json!({"weights": weights, "test_loss": t.loss, "test_top1": t.top1, "test_top5": t.top5});
        if let (Some(da), Some(object)) = (report.da, line.as_object_mut()) {
            if let serde_json::Value::Object(fields) = serde_json::to_value(da)? {
                object.extend(fields);
            }
        }
        println!("{line}");
        return Ok(());
    }
    let dist = launch.map(|launch| engine::join(&config, launch)).transpose()?;
    engine::train_in(&config, dist.as_ref(), &mut terminal)?;
    Ok(())
}
