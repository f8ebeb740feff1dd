//! `resmooth data fetch|check|info`: get, verify and describe datasets without training.

use super::Terminal;
use crate::cli::{DataAction, DataArgs};
use anyhow::Result;
use resmooth::data::{check, fetch, info, FetchOptions, Size};

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
        DataAction::Info { target, dataroot, image_size } => {
            if image_size.is_some_and(|s| s < resmooth::config::MIN_IMAGE_SIZE) {
                anyhow::bail!("--image-size must be at least {}", resmooth::config::MIN_IMAGE_SIZE);
            }
            let report = info(&target, &dataroot, Size::from_flag(image_size), &mut Terminal::default())?;
            print!("{report}");
        }
    }
    Ok(())
}
