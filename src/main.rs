//! The `resmooth` command: parse the command line, dispatch to a command.

mod cli;
mod commands;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};

fn main() {
    let args = match cli::expand_long_prefixes(&Cli::command(), std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(args) => commands::train(args),
        Command::Run(args) => commands::run(args, &cli::given_flags(&matches)),
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
