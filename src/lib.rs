//! resmooth: the ReSmooth training method (Wang et al., IEEE TNNLS 2022) on libtorch.
//!
//! The library, from the ground up (each layer imports only those below it):
//! - from `resmooth_core` (no libtorch), shown here under the same names: `config` (the typed
//!   configuration), `io` (atomic files), `pickle` (Python's pickle format, read without running anything),
//!   `progress` (how work reports), `run_folder` (the files
//!   of a run folder, the baseline a run loads, a tag's siblings); `data` (datasets as uint8
//!   images) → `augment` (the views) → `pipeline` (uint8 batches; here also their upload to the
//!   device, `upload`) → `streaming` (batches decoded from image files every epoch) → `throughput` (the input pipeline's rate and peak memory); the GMM (`method::gmm`);
//! - `model` (the networks), `loss`, `optim`, `schedule`, `device`, `dist` (data-parallel processes), `graph` (CUDA graphs); `report` (metrics and summary files);
//! - `method` (the GMM, the scorer, the detection pass, one step of the method);
//! - `engine` (setup, evaluation, checkpoints, the epoch loop, benchmarks);
//! - `workflow` (`resmooth run`'s baseline-then-method sequence, the HTML report of run folders).
//!
//! The `resmooth` binary adds the command line (`cli`, clap) and the commands on top.
pub use resmooth_core::{augment, config, data, io, pickle, progress, run_folder, splits, streaming, throughput};
pub mod device;
pub mod dist;
pub mod engine;
pub mod graph;
pub mod loss;
pub mod method;
pub mod model;
pub mod optim;
pub mod report;
pub mod schedule;
pub mod upload;
pub mod workflow;

/// The batch pipeline: uint8 views assembled ahead of the training step (`resmooth_core`), and
/// their upload to the device, normalised there (`upload`).
pub mod pipeline {
    pub use crate::upload::{to_device, to_device_lit, upload, Placement, Upload};
    pub use resmooth_core::pipeline::*;
}
