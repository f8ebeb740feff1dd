//! The `resmooth` command.
use clap::Parser;
use resmooth::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => resmooth::train::run(args).map(|_| ()),
        Command::Augment(args) => resmooth::augment::tools::run_augment(args),
        Command::Bench(args) => resmooth::augment::tools::run_bench(args),
        Command::Detect(args) => resmooth::workflow::run_detect(args),
        Command::Run(args) => resmooth::workflow::run_all(args),
        Command::Data(args) => resmooth::data::run_command(&args).map_err(anyhow::Error::from),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
