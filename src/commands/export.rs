//! `resmooth export`: a run folder's last finished epoch as the reference's torch.save checkpoint.

use crate::cli::ExportArgs;
use anyhow::{bail, Result};
use resmooth::engine::pth_files::export_pth;

/// Runs `resmooth export`.
pub fn export(args: ExportArgs) -> Result<()> {
    if resmooth::config::SaveFormat::of_path(&args.pth) != resmooth::config::SaveFormat::Pth {
        bail!("--pth {}: name the file *.pth (or *.pt), as torch.save files are", args.pth.display());
    }
    let epoch = export_pth(&args.run, &args.pth)?;
    println!(
        "wrote {} (epoch {epoch} of {}): torch.load(f)['model'] is its state_dict",
        args.pth.display(),
        args.run.display()
    );
    Ok(())
}
