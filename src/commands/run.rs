//! `resmooth run`: the whole method in one command (`workflow::run`): the baseline when its
//! weights are missing, then the given run, then a table of the runs beside it and their HTML
//! report.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::{bail, Result};
use resmooth::config::flags::Flag;
use resmooth::dist::Launch;
use resmooth::progress::Progress;
use resmooth::report::reproduce::flag_words;
use resmooth::workflow::run::{comparison_table, run_method};

/// Runs `resmooth run`; `given` are the flags on its command line (the others may take the
/// values of the dataset's preset, which are shown).
pub fn run(args: TrainArgs, given: &[Flag]) -> Result<()> {
    if let Some(launch) = Launch::from_env()? {
        bail!(
            "resmooth run trains in one process, but a launcher started this one as RANK {} of WORLD_SIZE {}: \
             launch `resmooth train` under torchrun for each run instead (the baseline first, then the method)",
            launch.rank,
            launch.world_size
        );
    }
    let (config, filled) = args.into_run_config(given)?;
    let mut terminal = Terminal::stop_on_signals()?;
    if !filled.is_empty() {
        let words: Vec<String> = filled.iter().flat_map(|(flag, value)| flag_words(flag, value)).collect();
        terminal.note(&format!("the {} preset, for the flags not given: {}", config.data.dataset, words.join(" ")));
    }
    let done = run_method(&config, &mut terminal)?;
    print!("{}", comparison_table(&done.parent, &done.siblings));
    println!("report: {}", done.report.display());
    Ok(())
}
