//! `resmooth run`: the whole method in one command (`workflow::run`): the baseline when its
//! weights are missing, then the given run, then a table of the runs beside it and their HTML
//! report.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::Result;
use resmooth::workflow::run::{comparison_table, run_method};

/// Runs `resmooth run`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    let mut terminal = Terminal::stop_on_signals()?;
    let done = run_method(&config, &mut terminal)?;
    print!("{}", comparison_table(&done.parent, &done.siblings));
    println!("report: {}", done.report.display());
    Ok(())
}
