//! `resmooth data fetch|check|info`: get, verify and describe datasets without training.

use super::Terminal;
use crate::cli::{DataAction, DataArgs};
use anyhow::Result;
use resmooth::data::{check, fetch, info, FetchOptions};

/// Runs one `resmooth data` action, printing its report on stdout.
pub fn data(args: DataArgs) -> Result<()> {
    match args.action {
        DataAction::Fetch { name, dataroot, mirror, extra } => {
            let opts = FetchOptions { mirror, extra };
            for line in fetch(name, &dataroot, &opts, &mut Terminal::default())? {
                println!("{line}");
            }
            for line in check(name, &dataroot, extra)? {
                println!("{line}");
            }
        }
        DataAction::Check { name, dataroot, extra } => {
            for line in check(name, &dataroot, extra)? {
                println!("{line}");
            }
        }
        DataAction::Info { target, dataroot } => print!("{}", info(&target, &dataroot)?),
    }
    Ok(())
}
