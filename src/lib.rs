//! resmooth: the ReSmooth training method (Wang et al., IEEE TNNLS 2022) on libtorch.
//!
//! The library, from the ground up (each layer imports only those below it):
//! - `config` (the typed configuration), `io` (atomic files), `progress` (how work reports);
//! - `data` (datasets as uint8 images) → `augment` (the views) → `pipeline` (batches to the device)
//!   → `streaming` (batches decoded from image files every epoch);
//! - `model` (the networks), `loss`, `optim`, `schedule`, `device`, `graph` (CUDA graphs); `report` (metrics and summary files);
//! - `method` (the GMM, the scorer, the detection pass, one step of the method);
//! - `engine` (setup, evaluation, checkpoints, the epoch loop, benchmarks).
//!
//! The `resmooth` binary adds the command line (`cli`, clap) and the commands on top.
pub mod augment;
pub mod config;
pub mod data;
pub mod device;
pub mod engine;
pub mod graph;
pub mod io;
pub mod loss;
pub mod method;
pub mod model;
pub mod optim;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod streaming;
