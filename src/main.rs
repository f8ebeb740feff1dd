//! The `resmooth` command: parse the command line, dispatch to a command.

mod cli;
mod commands;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};

fn main() {
    let args = match cli::expand_long_prefixes(&Cli::command(), std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Train(args) => commands::train(args),
        Command::Run(args) => commands::run(args),
        Command::Detect(args) => commands::detect(args),
        Command::Augment(args) => commands::augment(args),
        Command::Bench(args) => commands::bench(args),
        Command::Data(args) => commands::data(args),
        Command::Report(args) => commands::report(args),
        Command::Export(args) => commands::export(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        // stopped by SIGINT or SIGTERM: the shell's status for an interrupted command
        std::process::exit(if commands::stop_signalled() { 130 } else { 1 });
    }
}
