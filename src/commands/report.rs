//! `resmooth report`: the HTML page of one or more run folders.

use super::Terminal;
use crate::cli::ReportArgs;
use anyhow::Result;
use resmooth::run_folder::REPORT;
use resmooth::workflow::review::{write_report, ReportOptions};
use std::path::{Path, PathBuf};

/// Runs `resmooth report`.
pub fn report(args: ReportArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| common_folder(&args.dirs)).join(REPORT);
    let opts = ReportOptions { dataroot: args.dataroot.clone(), views: args.views };
    let page = write_report(&args.dirs, &out, &opts, &mut Terminal::default())?;
    println!("wrote {} ({} runs)", out.display(), page.runs.len());
    Ok(())
}

/// The folder of one run, or the deepest folder holding all of several.
pub fn common_folder(dirs: &[PathBuf]) -> PathBuf {
    match dirs {
        [one] => one.clone(),
        _ => {
            let mut common: Option<PathBuf> = None;
            for d in dirs {
                let parent = d.parent().unwrap_or(Path::new("")).to_path_buf();
                common = Some(match common {
                    None => parent,
                    Some(c) => {
                        c.components().zip(parent.components()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect()
                    }
                });
            }
            common.filter(|c| !c.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_goes_beside_the_runs() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(common_folder(&[p("logs/c10/rs")]), p("logs/c10/rs"));
        assert_eq!(common_folder(&[p("logs/c10/base"), p("logs/c10/rs")]), p("logs/c10"));
        assert_eq!(common_folder(&[p("logs/c10/base"), p("logs/c100/rs")]), p("logs"));
        assert_eq!(common_folder(&[p("a"), p("b")]), p("."));
    }
}
