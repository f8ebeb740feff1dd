//! `resmooth train`: one training run (or `--only-eval`), with the reference's flags.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::Result;
use resmooth::engine;

/// Runs `resmooth train`.
pub fn train(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    let mut terminal = Terminal::stop_on_signals()?;
    if config.run.only_eval {
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
    engine::train(&config, &mut terminal)?;
    Ok(())
}
