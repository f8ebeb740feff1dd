//! `resmooth run`: the whole method in one command (`workflow::run`): the baseline when its
//! weights are missing, then the given run, then a table of the runs beside it and their HTML
//! report.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::{bail, Result};
use resmooth::dist::Launch;
use resmooth::workflow::run::{comparison_table, run_method};

/// Runs `resmooth run`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    if let Some(launch) = Launch::from_env()? {
        bail!(
            "resmooth run trains in one process, but a launcher started this one as RANK {} of WORLD_SIZE {}: \
             launch `resmooth train` under torchrun for each run instead (the baseline first, then the method)",
            launch.rank,
            launch.world_size
        );
    }
    let mut terminal = Terminal::stop_on_signals()?;
    let done = run_method(&config, &mut terminal)?;
    print!("{}", comparison_table(&done.parent, &done.siblings));
    println!("report: {}", done.report.display());
    Ok(())
}
