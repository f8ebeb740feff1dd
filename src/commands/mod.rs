//! The commands: each turns its parsed flags into the library's configuration, runs the library
//! and shows the outcome (terminal progress, tables, files written).

mod augment;
mod bench;
mod data;
mod detect;
mod export;
mod report;
mod run;
mod terminal;
mod train;

pub use augment::augment;
pub use bench::bench;
pub use data::data;
pub use detect::detect;
pub use export::export;
pub use report::report;
pub use run::run;
pub use terminal::{stop_signalled, Terminal};
pub use train::train;
